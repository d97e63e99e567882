//! What the bot's tasks report for `/readyz`: since when each stream's
//! polls and the bot's own database writes have been failing.
//!
//! The tasks write it, the admin endpoint reads it through the `Bot`; it
//! lives apart from both so that neither imports the other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::clock::{Clock, Millis};
use crate::domain::{Platform, Stream};
use crate::runtime::schedule::Polled;

/// Failures under way, each with the time it started.
#[derive(Debug)]
pub struct Health {
    clock: Clock,
    /// Since when each stream's polls have been failing (Unix ms); a
    /// stream that polled fine is absent.
    failing: Mutex<HashMap<(Platform, Stream), Millis>>,
    /// How long a stream may fail before `/readyz` says so.
    failing_after: Duration,
    /// Since when the bot's database work (polls recorded, outbox rounds)
    /// has been failing.
    db_failing: Mutex<Option<Millis>>,
}

impl Health {
    /// Nothing failing; a stream counts as failing after `failing_after`.
    pub fn new(clock: Clock, failing_after: Duration) -> Health {
        Health {
            clock,
            failing: Mutex::new(HashMap::new()),
            failing_after,
            db_failing: Mutex::new(None),
        }
    }

    /// Remembers whether the last write to the database worked: a database
    /// that answers `SELECT 1` but refuses writes (a SQLite file locked by
    /// another writer, a full disk) is not ready either.
    pub fn note_database(&self, ok: bool) {
        let mut t = self.db_failing.lock().expect("poisoned");
        match (ok, *t) {
            (true, _) => *t = None,
            (false, None) => *t = Some(self.clock.now_ms()),
            (false, Some(_)) => {}
        }
    }

    /// Since when the bot's own database work has been failing, if it is.
    pub fn database_failing_since(&self) -> Option<Millis> {
        *self.db_failing.lock().expect("poisoned")
    }

    /// Remembers since when a stream has been failing. A 429 is the
    /// platform pacing us, not a failure.
    pub fn note_stream(&self, p: Platform, s: Stream, outcome: &Polled) {
        let mut failing = self.failing.lock().expect("poisoned");
        match outcome {
            Polled::Failed => {
                failing.entry((p, s)).or_insert(self.clock.now_ms());
            }
            _ => {
                failing.remove(&(p, s));
            }
        }
    }

    /// The streams that have kept failing for longer than
    /// `stream_failing_secs`, as `platform:stream`, sorted.
    pub fn failing_streams(&self) -> Vec<String> {
        let now = self.clock.now_ms();
        let after = self.failing_after.as_millis() as Millis;
        let mut out: Vec<String> = self
            .failing
            .lock()
            .expect("poisoned")
            .iter()
            .filter(|(_, since)| now - **since >= after)
            .map(|((p, s), _)| format!("{p}:{}", s.as_str()))
            .collect();
        out.sort();
        out
    }
}
