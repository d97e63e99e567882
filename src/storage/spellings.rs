//! Holds every enum stored as a name to its column's `CHECK (… IN (…))`
//! list in the schema the migrations build: a variant added without a
//! migration, or a migration that allows a name no variant has, fails here
//! rather than in production.

use std::collections::BTreeSet;

use sqlx::Row;

use super::Store;
use crate::domain::states::{
    Action, ActionStatus, AlertKind, AlertStatus, AutoReply, Direction, EventKind, IncidentStatus,
    Origin, OutboxStatus, TicketStatus, Verb,
};

/// The names a `CHECK (column IN ('a', 'b'))` of `table_sql` allows.
fn allowed(table_sql: &str, column: &str) -> BTreeSet<String> {
    let flat: String = table_sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let needle = format!("CHECK ({column} IN (");
    let start = flat
        .find(&needle)
        .unwrap_or_else(|| panic!("no `{needle}` in {flat}"))
        + needle.len();
    let end = start + flat[start..].find(')').expect("closing parenthesis");
    flat[start..end]
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_owned())
        .collect()
}

fn names(all: impl IntoIterator<Item = &'static str>) -> BTreeSet<String> {
    all.into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn every_stored_enum_matches_its_check_constraint() {
    // A file: each pooled connection to `:memory:` would be its own database.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let store = Store::open(&url).await.unwrap();
    let schema = |table: &str| {
        let table = table.to_owned();
        let pool = store.pool().clone();
        async move {
            sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<String, _>(0)
        }
    };
    let tickets = schema("tickets").await;
    let outbox = schema("outbox").await;
    let messages = schema("messages").await;
    let agent_actions = schema("agent_actions").await;
    let cases = [
        (
            allowed(&tickets, "status"),
            names(TicketStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&outbox, "status"),
            names(OutboxStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&outbox, "origin"),
            names(Origin::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&messages, "action"),
            names(Action::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&messages, "auto_reply"),
            names(AutoReply::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&schema("ticket_messages").await, "direction"),
            names(Direction::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&schema("ticket_events").await, "kind"),
            names(EventKind::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&agent_actions, "action"),
            names(Verb::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&agent_actions, "status"),
            names(ActionStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&schema("incidents").await, "status"),
            names(IncidentStatus::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&schema("incident_alerts").await, "kind"),
            names(AlertKind::ALL.iter().map(|s| s.as_str())),
        ),
        (
            allowed(&schema("incident_alerts").await, "status"),
            names(AlertStatus::ALL.iter().map(|s| s.as_str())),
        ),
    ];
    for (check, variants) in cases {
        assert_eq!(check, variants);
    }
}
