//! The admin endpoint for operators: Prometheus `/metrics`, `/healthz`
//! (the process is alive) and `/readyz` (database reachable, platforms
//! authenticated, rules loaded).
//!
//! Counters are recorded where things happen (pipeline, outbox, X client,
//! reloads) through the `metrics` facade; gauges that describe the database
//! (outbox depth and age, open tickets, SLA breaches) are read at scrape time.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::runtime::bot::Bot;
use crate::runtime::shutdown::Shutdown;
use crate::storage::StoreError;
use crate::storage::views;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder (once per process).
pub fn install_recorder() -> Option<PrometheusHandle> {
    match PrometheusBuilder::new().install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    }
}

#[derive(Clone)]
struct Admin {
    bot: Arc<Bot>,
    metrics: Option<PrometheusHandle>,
}

/// Serves the admin routes on `listen` until `stop` (its tasks are
/// `stop`'s); returns the bound address.
pub async fn serve(
    listen: &str,
    bot: Arc<Bot>,
    metrics: Option<PrometheusHandle>,
    limits: crate::runtime::config::HttpLimits,
    stop: &Shutdown,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Admin { bot, metrics });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    crate::runtime::serve::serve_until(listener, app, limits, "admin", stop);
    Ok(addr)
}

async fn render(State(a): State<Admin>) -> Response {
    let Some(h) = &a.metrics else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are not enabled\n").into_response();
    };
    if let Err(e) = database_gauges(&a.bot).await {
        tracing::warn!(error = %e, "database gauges not updated");
    }
    h.render().into_response()
}

async fn database_gauges(bot: &Bot) -> Result<(), StoreError> {
    let now = bot.clock().now_ms();
    let b = views::backlog(bot.store(), now).await?;
    metrics::gauge!("helpdesk_outbox_depth").set(b.outbox_depth as f64);
    metrics::gauge!("helpdesk_outbox_oldest_age_seconds").set(
        b.oldest_queued_at
            .map(|t| (now - t) as f64 / 1000.0)
            .unwrap_or(0.0),
    );
    for (queue, n) in b.open_tickets_per_queue {
        metrics::gauge!("helpdesk_open_tickets", "queue" => queue).set(n as f64);
    }
    metrics::gauge!("helpdesk_sla_breaches").set(b.overdue_open_tickets as f64);
    Ok(())
}

async fn ready(State(a): State<Admin>) -> Response {
    // Reachable, and the bot's own writes work (a locked or full SQLite
    // file still answers SELECT 1).
    // A dead server must not hold /readyz for the pool's 10 s acquire timeout.
    let probe = a.bot.store().ping();
    let db = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), probe).await,
        Ok(Ok(_))
    ) && a.bot.database_failing_since().is_none();
    let auth = !a.bot.sender().auth_paused();
    let rules = !a.bot.rules().load().rules().is_empty();
    let failing = a.bot.failing_streams();
    let body = serde_json::json!({
        "database": db,
        "platforms_authenticated": auth,
        "rules_loaded": rules,
        "failing_streams": failing,
    });
    let code = if db && auth && rules && failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}
