//! The one time source of the bot, shared by the store, the outbox, the rate
//! limiters and the sandbox.
//!
//! Real time by default. Tests (and the sandbox's fake X) can move it forward
//! with [`Clock::advance`], so a one-hour rate-limit window passes in no time
//! and no test ever sleeps to wait for a limit. It also serves as governor's
//! clock, so the quotas see the same time as everything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch: how times are stored and compared.
pub type Millis = i64;

/// A cheap-to-clone clock: real time plus an offset that only grows.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base_instant: Instant,
    base_wall: Millis,
    offset_nanos: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock that follows real time.
    pub fn new() -> Clock {
        let base_wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0);
        Clock {
            inner: Arc::new(Inner {
                base_instant: Instant::now(),
                base_wall,
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves time forward for everyone who shares this clock.
    pub fn advance(&self, by: Duration) {
        self.inner
            .offset_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Monotonic time since the clock was made, advances included.
    pub fn elapsed(&self) -> Duration {
        self.inner.base_instant.elapsed()
            + Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst))
    }

    /// Wall-clock time, in Unix milliseconds.
    pub fn now_ms(&self) -> Millis {
        self.inner.base_wall + self.elapsed().as_millis() as Millis
    }

    /// Wall-clock time.
    pub fn now(&self) -> OffsetDateTime {
        from_ms(self.now_ms())
    }

    /// The wall-clock time at which `elapsed()` reads `at`.
    pub fn wall_at(&self, at: Duration) -> Millis {
        self.inner.base_wall + at.as_millis() as Millis
    }
}

/// Converts Unix milliseconds into a date-time (clamped to the representable range).
pub fn from_ms(ms: Millis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Converts a date-time into Unix milliseconds.
pub fn to_ms(t: OffsetDateTime) -> Millis {
    (t.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// RFC 3339 with milliseconds, as X writes `created_at`.
pub fn rfc3339(ms: Millis) -> String {
    let t = from_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(to_ms)
}

impl governor::clock::Clock for Clock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_wall_and_monotonic_time_together() {
        let c = Clock::new();
        let w = c.now_ms();
        c.advance(Duration::from_secs(3600));
        assert!(c.now_ms() - w >= 3_600_000);
        assert!(c.elapsed() >= Duration::from_secs(3600));
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_700_000_000_123;
        assert_eq!(rfc3339(ms), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
    }
}
