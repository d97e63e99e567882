//! When to poll each stream of a platform: pure bookkeeping, no IO.
//!
//! Each stream has a due time. After a poll the platform says, from its
//! rate-limit headers, how long to wait so the window's budget lasts until
//! its reset (`Batch::next_poll`); after a 429, nothing before the reset
//! plus one second; after a failure, exponential backoff. When several
//! streams are due, the first in priority order goes first.

use std::time::Duration;

use crate::domain::Stream;
use crate::domain::clock::Millis;

/// What a poll of one stream came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// It worked; the platform asked for this pause (if it said).
    Ok(Option<Duration>),
    /// 429: the window resets at this time (Unix ms).
    RateLimited(Millis),
    /// Anything else went wrong.
    Failed,
}

/// The due times of one platform's streams.
#[derive(Debug, Clone)]
pub struct Schedule {
    streams: Vec<Stream>,
    due: Vec<Millis>,
    failures: Vec<u32>,
    polled_since_summary: Vec<bool>,
    /// No request before this time (a 429's reset).
    blocked_until: Vec<Millis>,
    default_pause: Duration,
}

impl Schedule {
    /// Every stream is due at `now`; `streams` is in priority order.
    pub fn new(streams: Vec<Stream>, now: Millis, default_pause: Duration) -> Schedule {
        let n = streams.len();
        Schedule {
            streams,
            due: vec![now; n],
            failures: vec![0; n],
            polled_since_summary: vec![false; n],
            blocked_until: vec![0; n],
            default_pause,
        }
    }

    /// The first stream in priority order that is due at `now`.
    pub fn due(&self, now: Millis) -> Option<Stream> {
        (0..self.streams.len())
            .find(|&i| self.due[i] <= now)
            .map(|i| self.streams[i])
    }

    /// When the next stream falls due.
    pub fn next_due(&self) -> Option<Millis> {
        self.due.iter().copied().min()
    }

    /// Records a poll of `stream` that ended at `now`.
    pub fn record(&mut self, stream: Stream, outcome: Polled, now: Millis) {
        let Some(i) = self.streams.iter().position(|s| *s == stream) else {
            return;
        };
        self.polled_since_summary[i] = true;
        self.due[i] = match outcome {
            Polled::Ok(pause) => {
                self.failures[i] = 0;
                now + pause.unwrap_or(self.default_pause).as_millis() as Millis
            }
            Polled::RateLimited(reset) => {
                self.blocked_until[i] = reset.max(now) + 1000;
                self.blocked_until[i]
            }
            Polled::Failed => {
                self.failures[i] += 1;
                let secs = (1u64 << self.failures[i].min(6)).min(60);
                now + secs as Millis * 1000
            }
        };
    }

    /// Makes every stream due at `now` (a push stream connected or
    /// dropped: polling covers the switch), except one waiting out a 429.
    pub fn poll_now(&mut self, now: Millis) {
        for (d, blocked) in self.due.iter_mut().zip(&self.blocked_until) {
            *d = now.max(*blocked);
        }
    }

    /// Puts the next poll of `stream` off until `until` at the earliest.
    pub fn defer(&mut self, stream: Stream, until: Millis) {
        if let Some(i) = self.streams.iter().position(|s| *s == stream) {
            self.due[i] = self.due[i].max(until);
        }
    }

    /// True once per cycle: when every stream has been polled since the
    /// last time it returned true.
    pub fn cycle_done(&mut self) -> bool {
        if self.polled_since_summary.iter().all(|p| *p) {
            self.polled_since_summary
                .iter_mut()
                .for_each(|p| *p = false);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::spread;

    #[test]
    fn the_budget_is_spread_until_the_reset() {
        let min = Duration::from_millis(100);
        assert_eq!(spread(9, 900_000, 0, min), Duration::from_secs(100));
        assert_eq!(spread(0, 5_000, 0, min), Duration::from_secs(6));
        assert_eq!(spread(1000, 1_000, 0, min), min);
    }

    #[test]
    fn priority_order_and_pauses() {
        let mut s = Schedule::new(
            vec![Stream::Dms, Stream::Mentions],
            0,
            Duration::from_secs(60),
        );
        assert_eq!(s.due(0), Some(Stream::Dms));
        s.record(Stream::Dms, Polled::Ok(Some(Duration::from_secs(90))), 0);
        assert_eq!(s.due(0), Some(Stream::Mentions));
        s.record(Stream::Mentions, Polled::RateLimited(5_000), 0);
        assert!(s.cycle_done());
        assert_eq!(s.due(5_999), None);
        assert_eq!(s.due(6_000), Some(Stream::Mentions));
        assert_eq!(s.next_due(), Some(6_000));
        s.record(Stream::Mentions, Polled::Failed, 6_000);
        assert_eq!(s.due(7_999), None);
        assert_eq!(s.due(8_000), Some(Stream::Mentions));
        // A push stream dropped: everything is due now, but a 429 still holds.
        s.record(Stream::Mentions, Polled::RateLimited(20_000), 8_000);
        s.defer(Stream::Dms, 50_000);
        s.poll_now(9_000);
        assert_eq!(s.due(9_000), Some(Stream::Dms));
        assert_eq!(s.next_due(), Some(9_000));
        s.record(Stream::Dms, Polled::Ok(None), 9_000);
        assert_eq!(s.due(20_999), None);
        assert_eq!(s.due(21_000), Some(Stream::Mentions));
    }
}
