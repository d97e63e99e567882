//! The agents' console: a web inbox served by the bot (`[console] listen`
//! on `helpdesk run`) or alone (`helpdesk console`).
//!
//! Pages are rendered on the server (askama templates, compiled with the
//! crate and escaping every value); htmx, vendored in `static/`, refreshes
//! parts of them (the inbox, a ticket's timeline, colleagues' presence,
//! the reply counter). Every action is a plain form that works with
//! JavaScript off: [`auth`] signs agents in and guards every other route
//! (session, CSRF), [`inbox`] lists tickets, [`ticket`] shows one and
//! applies actions through [`crate::application::tickets::apply`], the
//! CLI's own code, so the refusals and the event log are the same.
//!
//! Served through [`crate::runtime::serve`]'s accept loop (connection cap,
//! timeouts, body limit), with a Content-Security-Policy that allows no
//! inline script or style.

pub mod auth;
pub mod inbox;
mod pages;
pub mod ticket;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use crate::runtime::config::ConsoleSettings;

use crate::application::tickets::TicketPolicy;
use crate::domain::clock::Clock;
use crate::runtime::config::{Config, HttpLimits};
use crate::runtime::reload::SharedRules;
use crate::runtime::shutdown::Shutdown;
use crate::storage::{Store, StoreError};

/// What every handler reads: the database, the rules (for saved replies),
/// the ticket policy the CLI applies, and the settings.
pub struct Console {
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) policy: TicketPolicy,
    pub(crate) protected_handles: Vec<String>,
    pub(crate) rules: SharedRules,
    pub(crate) settings: ConsoleSettings,
    pub(crate) mastodon_base: Option<String>,
    pub(crate) hours: Option<crate::domain::hours::BusinessHours>,
    pub(crate) limiter: auth::LoginLimiter,
}

/// Shared by every request.
pub type Shared = Arc<Console>;

impl Console {
    /// The console of `config`, over `store` and `rules`.
    pub fn new(config: &Config, store: Store, rules: SharedRules, clock: Clock) -> Console {
        Console {
            store,
            clock,
            policy: config.ticket_policy(),
            protected_handles: config.protection.bots.clone(),
            rules,
            limiter: auth::LoginLimiter::new(config.console.login_attempts_per_min),
            settings: config.console.clone(),
            mastodon_base: config.mastodon.as_ref().map(|m| m.base_url.clone()),
            hours: config.hours.clone(),
        }
    }
}

impl Console {
    /// A time for agents without JavaScript: on the brand's wall clock with
    /// `[hours]`, else UTC (the page turns it into the agent's own zone).
    pub(crate) fn when(&self, at: crate::domain::clock::Millis) -> String {
        match &self.hours {
            Some(h) => h.local(at),
            None => format!(
                "{} UTC",
                crate::domain::clock::rfc3339(at)[..16].replace('T', " ")
            ),
        }
    }
}

/// The console's routes, behind sign-in (but `/login` and `/static`).
pub fn router(console: Shared) -> Router {
    let signed_in = Router::new()
        .route("/", get(inbox::page))
        .route("/inbox/live", get(inbox::live))
        .route("/tickets/{ticket}", get(ticket::page))
        .route("/tickets/{ticket}/live", get(ticket::live))
        .route("/tickets/{ticket}/presence", post(ticket::presence))
        .route("/tickets/{ticket}/draft", post(ticket::draft))
        .route("/tickets/{ticket}/reply", post(ticket::reply))
        .route("/tickets/{ticket}/note", post(ticket::note))
        .route("/tickets/{ticket}/assign", post(ticket::assign))
        .route("/tickets/{ticket}/saved", post(ticket::saved))
        .route("/tickets/{ticket}/{verb}", post(ticket::act))
        .route("/logout", post(auth::logout))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            auth::require_agent,
        ));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/static/{file}", get(static_file))
        .merge(signed_in)
        .fallback(not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// Serves the console on `settings.listen` until `stop`, with a sweeper of
/// ended sessions; returns the bound address.
pub async fn serve(
    console: Shared,
    limits: HttpLimits,
    stop: &Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(&console.settings.listen).await?;
    let addr = listener.local_addr()?;
    stop.spawn(sweep_sessions(console.clone(), stop.clone()));
    crate::runtime::serve::serve_until(listener, router(console), limits, "console", stop);
    Ok(addr)
}

/// Deletes ended sessions and stale presence every minute, and forgets the
/// sign-in limiter's idle keys.
async fn sweep_sessions(console: Shared, stop: Shutdown) {
    let policy = console.settings.sessions();
    loop {
        let now = console.clock.now_ms();
        let presence_cutoff = now - crate::application::console::PRESENCE_FRESH_MS * 3;
        if let Err(e) = crate::storage::console::sweep(
            &console.store,
            now,
            now - policy.idle_ms,
            presence_cutoff,
        )
        .await
        {
            tracing::warn!(error = %e, "console: ended sessions not swept; trying again in a minute");
        }
        console.limiter.forget_idle();
        tokio::select! {
            _ = stop.stopped() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
    }
}

/// The policy every answer carries: scripts and styles from this origin
/// only (none inline), no framing, no referrer leaving for another site
/// with a ticket's address (within the site it stays, so that browsers
/// send the `Origin` the CSRF guard checks), no caching of pages that hold
/// customers' words.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The files the pages load: htmx (pinned, with its licence), the
/// console's own script and style.
async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static [u8], &'static str) = match file.as_str() {
        HTMX_FILE => (
            include_bytes!("static/htmx-2.0.11.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "LICENSE-htmx.txt" => (
            include_bytes!("static/LICENSE-htmx.txt"),
            "text/plain; charset=utf-8",
        ),
        "console.js" => (
            include_bytes!("static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_bytes!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        _ => return not_found().await,
    };
    // htmx's name carries its version: cached for good. The console's own
    // files change with the binary: checked each time (they are small).
    let cache = if file == HTMX_FILE {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        body,
    )
        .into_response()
}

/// htmx's file name: its version is in it, so a new one is a new address.
pub(crate) const HTMX_FILE: &str = "htmx-2.0.11.min.js";

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Why a request could not be served; what the agent sees says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A page could not be rendered (a bug).
    #[error("a page could not be rendered: {0}")]
    Render(#[from] askama::Error),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self, "console: request failed");
        let body = match self {
            ConsoleError::Store(_) => {
                "The database did not answer. Try again in a moment; if it goes on, the operator's log says why.\n"
            }
            ConsoleError::Render(_) => {
                "This page could not be shown. The operator's log says why.\n"
            }
        };
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
