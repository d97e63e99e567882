//! What a batch has decided so far that its later messages must see (the
//! database is read once, before the batch), and the rows it writes in a
//! few statements before its commit (SQLite pays a thread round trip per
//! statement, PostgreSQL a network one).

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use crate::domain::clock::Millis;
use crate::domain::states::Origin;
use crate::domain::{Platform, Priority, TicketRef};
use crate::platforms::ReplyKind;
use crate::storage::messages::NewMessage;
use crate::storage::opt_outs::{self, OptOut};
use crate::storage::outbox::{self, NewRow};
use crate::storage::tickets::{self, Latest};
use crate::storage::{Backend, StoreError, messages};

/// What the batch's messages decided so far that its later messages must
/// see (the database is read once, before the batch).
#[derive(Default)]
pub(super) struct BatchState {
    /// Message ids already handled in this batch.
    pub seen: HashSet<String>,
    /// Customers who said a stop word in this batch.
    pub stopped: HashSet<String>,
    /// Each customer's latest ticket after this batch's messages.
    pub tickets: HashMap<String, Option<Latest>>,
    /// (customer, text) of the replies queued.
    pub texts: HashSet<(String, String)>,
    /// Automatic replies queued per conversation.
    pub per_conversation: HashMap<String, i64>,
    /// Messages per customer in this batch so far (repeated contact).
    pub written: HashMap<String, i64>,
    /// (incident, customer) joined in this batch: answered once.
    pub incident_members: HashSet<(crate::domain::IncidentRef, String)>,
}

impl BatchState {
    /// Notes an automatic reply queued to `customer` in `conversation`.
    pub fn replied(&mut self, customer: &str, conversation: &str, text: &str) {
        self.texts.insert((customer.to_owned(), text.to_owned()));
        *self
            .per_conversation
            .entry(conversation.to_owned())
            .or_default() += 1;
    }
}

/// One automatic reply for the outbox.
pub(super) struct OutRow {
    pub platform: Platform,
    pub kind: ReplyKind,
    pub ticket: Option<TicketRef>,
    pub customer_id: String,
    pub handle: String,
    pub conversation: String,
    pub in_reply_to: String,
    pub text: String,
}

/// A batch's rows, written together before its commit.
#[derive(Default)]
pub(super) struct Pending {
    pub messages: Vec<NewMessage>,
    pub opt_outs: Vec<OptOut>,
    pub rows: Vec<OutRow>,
    /// Signals for tickets, in message order.
    pub signals: Vec<tickets::Signal>,
}

impl Pending {
    /// Writes the signals noted since the last call (three statements,
    /// [`tickets::signal_many`]). Called before a write that adds its own
    /// ticket event, so that a ticket's history keeps the messages' order.
    pub async fn flush_signals(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        due_for: &(dyn Fn(Priority, Millis) -> Millis + Sync),
        now: Millis,
    ) -> Result<(), StoreError> {
        tickets::signal_many(conn, backend, &self.signals, due_for, now).await?;
        self.signals.clear();
        Ok(())
    }

    /// Writes the batch's signals, messages, opt-outs and outbox rows, in
    /// that order (the later rows point at the messages, by the ids their
    /// insert returns): six statements for a batch of up to 100 (more
    /// for rows past [`crate::storage::dialect::statement_bytes`]).
    /// `due_for`: a raised ticket's first-response deadline.
    pub async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        due_for: &(dyn Fn(Priority, Millis) -> Millis + Sync),
        now: Millis,
    ) -> Result<(), StoreError> {
        self.flush_signals(conn, backend, due_for, now).await?;
        let ids = messages::insert_batch(conn, backend, &self.messages).await?;
        // A batch holds each platform id once (a message met twice is
        // recorded once), and one platform.
        let row_of: HashMap<&str, i64> = self
            .messages
            .iter()
            .map(|m| m.id.as_str())
            .zip(ids)
            .collect();
        let row = |platform_id: &str| {
            row_of
                .get(platform_id)
                .copied()
                .ok_or(StoreError::Inconsistent(
                    "a row points at a message the batch did not write",
                ))
        };
        let opt_outs = self
            .opt_outs
            .iter()
            .map(|o| Ok((row(&o.message_id)?, o)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        opt_outs::insert(conn, backend, &opt_outs).await?;
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let new = NewRow {
                    platform: r.platform,
                    kind: r.kind,
                    origin: Origin::Auto,
                    ticket: r.ticket,
                    customer_id: &r.customer_id,
                    handle: &r.handle,
                    conversation: &r.conversation,
                    in_reply_to: &r.in_reply_to,
                    text: &r.text,
                };
                Ok((row(&r.in_reply_to)?, new))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        outbox::insert_automatic(conn, backend, &rows, now).await?;
        self.messages.clear();
        self.opt_outs.clear();
        self.rows.clear();
        Ok(())
    }
}
