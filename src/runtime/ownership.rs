//! Who does what when several instances share one PostgreSQL database.
//!
//! Each role (polling one platform, sending for one platform, applying
//! agent actions) has one owner at a time: the instance holding a
//! PostgreSQL session-level advisory lock named after it. The lock lives in
//! one dedicated connection; when the owner dies, PostgreSQL ends its
//! session and releases the lock, and another instance takes the role on
//! its next try (every second). No table, no heartbeat, nothing home-made.
//! On SQLite there is one instance, which owns every role.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::Mutex;

use crate::runtime::shutdown::Shutdown;
use crate::storage::{Backend, Store, StoreError, locks};

/// The roles of this instance, on the database the bot writes to: what the
/// bot's tasks ask before each unit of work.
#[derive(Debug)]
pub struct Roles {
    ownership: Ownership,
    store: Store,
}

impl Roles {
    /// Roles shared through `store` (PostgreSQL) or all ours (SQLite).
    pub fn for_store(store: &Store) -> Roles {
        Roles {
            ownership: Ownership::for_store(store),
            store: store.clone(),
        }
    }

    /// Whether this instance holds `role`. When it does not, waits a second
    /// first (less if the bot stops), so a hot spare asks once a second.
    pub async fn wait_for(&self, role: &str, shutdown: &Shutdown) -> bool {
        match self.ownership.owns(&self.store, role).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => tracing::warn!(role, error = %e, "cannot check who owns the role"),
        }
        shutdown.sleep(Duration::from_secs(1)).await;
        false
    }
}

/// The roles this instance holds, and the session that holds them.
pub struct Ownership {
    session: Option<Mutex<Session>>,
}

struct Session {
    conn: Option<AnyConnection>,
    held: HashSet<String>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("shared", &self.session.is_some())
            .finish()
    }
}

impl Ownership {
    /// Everything is ours (SQLite: a single instance).
    pub fn sole() -> Ownership {
        Ownership { session: None }
    }

    /// Roles are shared with other instances through `store` (PostgreSQL).
    pub fn for_store(store: &Store) -> Ownership {
        match store.backend() {
            Backend::Sqlite => Ownership::sole(),
            Backend::Postgres => Ownership {
                session: Some(Mutex::new(Session {
                    conn: None,
                    held: HashSet::new(),
                })),
            },
        }
    }

    /// Whether this instance holds `role`, taking it if it is free.
    pub async fn owns(&self, store: &Store, role: &str) -> Result<bool, StoreError> {
        let Some(session) = &self.session else {
            return Ok(true);
        };
        let mut s = session.lock().await;
        if s.conn.is_none() {
            // A fresh session holds nothing.
            s.held.clear();
            s.conn = Some(locks::session(store).await?);
        }
        if s.held.contains(role) {
            // Still alive? If the session died, its locks died with it.
            if locks::alive(s.conn.as_mut().expect("set above")).await {
                return Ok(true);
            }
            tracing::warn!(role, "lost the database session: giving up every role");
            s.conn = None;
            s.held.clear();
            return Ok(false);
        }
        let name = format!("helpdesk:{role}");
        match locks::try_lock(s.conn.as_mut().expect("set above"), &name).await {
            Ok(ok) => {
                if ok {
                    tracing::info!(role, "this instance now owns the role");
                    s.held.insert(role.to_owned());
                }
                Ok(ok)
            }
            Err(e) => {
                s.conn = None;
                s.held.clear();
                Err(e)
            }
        }
    }
}
