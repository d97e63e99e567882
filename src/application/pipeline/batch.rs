//! What a batch has done so far that its later messages must see (the
//! database is read once, before the batch), and the rows it writes in a
//! few statements before its commit (SQLite pays a thread round trip per
//! statement).

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use crate::domain::clock::Millis;
use crate::domain::states::Origin;
use crate::domain::{Platform, TicketRef};
use crate::platforms::ReplyKind;
use crate::storage::messages::NewMessage;
use crate::storage::opt_outs::{self, OptOut};
use crate::storage::outbox::{self, NewRow};
use crate::storage::tickets::Latest;
use crate::storage::{Backend, StoreError, messages};

/// The batch so far.
#[derive(Default)]
pub(super) struct BatchState {
    /// Rows to write before the commit.
    pub pending: Pending,
    /// Message ids already handled in this batch.
    pub seen: HashSet<String>,
    /// Customers who said a stop word in this batch.
    pub stopped: HashSet<String>,
    /// Each customer's latest ticket after this batch's messages.
    pub tickets: HashMap<String, Option<Latest>>,
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

/// A batch's rows, and what later messages of the same batch must see of
/// them.
#[derive(Default)]
pub(super) struct Pending {
    pub messages: Vec<NewMessage>,
    pub opt_outs: Vec<OptOut>,
    rows: Vec<OutRow>,
    /// (customer, text) of the replies queued.
    pub texts: HashSet<(String, String)>,
    /// Automatic replies queued per conversation.
    pub per_conversation: HashMap<String, i64>,
}

impl Pending {
    /// Adds an automatic reply.
    pub fn push(&mut self, r: OutRow) {
        self.texts.insert((r.customer_id.clone(), r.text.clone()));
        *self
            .per_conversation
            .entry(r.conversation.clone())
            .or_default() += 1;
        self.rows.push(r);
    }

    /// Writes the batch's messages, opt-outs and outbox rows, in that
    /// order (the later rows point at the messages).
    pub async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        now: Millis,
    ) -> Result<(), StoreError> {
        messages::insert_batch(conn, backend, &self.messages).await?;
        opt_outs::insert(conn, &self.opt_outs).await?;
        let rows: Vec<NewRow<'_>> = self
            .rows
            .iter()
            .map(|r| NewRow {
                platform: r.platform,
                kind: r.kind,
                origin: Origin::Auto,
                ticket: r.ticket,
                customer_id: &r.customer_id,
                handle: &r.handle,
                conversation: &r.conversation,
                in_reply_to: &r.in_reply_to,
                text: &r.text,
            })
            .collect();
        outbox::insert_automatic(conn, &rows, now).await?;
        self.messages.clear();
        self.opt_outs.clear();
        self.rows.clear();
        Ok(())
    }
}
