//! Running a platform's listener: holding [`Connector::listen`] open with
//! backoff between attempts, and serving the endpoint a platform calls.
//!
//! What the listener passes on is the ingest tasks' business
//! ([`crate::runtime::ingest`]); this module only keeps it running, and
//! puts every endpoint behind the same hardened server
//! ([`crate::runtime::serve`]), so no platform faces the network itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::domain::Platform;
use crate::domain::clock::Clock;
use crate::platforms::{ApiError, Connector, Endpoint, Pushed};
use crate::runtime::config::HttpLimits;
use crate::runtime::shutdown::Shutdown;

/// An endpoint that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {address} for the {platform} {endpoint} endpoint: {source}; free that address or change it in the configuration"
)]
pub struct ListenError {
    /// Whose endpoint.
    pub platform: Platform,
    /// Which (`webhook`).
    pub endpoint: &'static str,
    /// The address the configuration gives.
    pub address: String,
    /// What binding said.
    pub source: std::io::Error,
}

/// Binds `ep.listen` now and serves `ep.routes` within `limits` until
/// `shutdown`; returns the bound address.
pub async fn serve_endpoint(
    platform: Platform,
    ep: Endpoint,
    limits: HttpLimits,
    shutdown: &Shutdown,
) -> Result<SocketAddr, ListenError> {
    let error = |source| ListenError {
        platform,
        endpoint: ep.name,
        address: ep.listen.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(&ep.listen)
        .await
        .map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    tracing::info!(%platform, endpoint = ep.name, listen = %addr, "endpoint ready");
    crate::runtime::serve::serve_until(listener, ep.routes, limits, ep.name, shutdown);
    Ok(addr)
}

/// Holds `c`'s listener until `shutdown`, calling [`Connector::listen`]
/// again after each end with backoff, and telling `tx` each time it ends
/// ([`Pushed::Lost`]). Returns once `tx` is closed.
pub async fn hold(
    c: Arc<dyn Connector>,
    tx: mpsc::Sender<Pushed>,
    clock: Clock,
    shutdown: Shutdown,
) {
    let mut failures: u32 = 0;
    loop {
        let opened = Instant::now();
        let outcome = tokio::select! {
            r = c.listen(&tx) => r,
            _ = shutdown.stopped() => return,
        };
        if opened.elapsed() > Duration::from_secs(30) {
            failures = 0;
        }
        failures += 1;
        let (reason, pause) = pause_after(c.platform(), outcome, failures, &clock);
        if tx.send(Pushed::Lost(reason)).await.is_err() || shutdown.sleep(pause).await {
            return;
        }
    }
}

/// Why the listener ended, and how long to wait before listening again.
fn pause_after(
    platform: Platform,
    outcome: Result<(), ApiError>,
    failures: u32,
    clock: &Clock,
) -> (String, Duration) {
    // 1 s, doubling to a minute while connections keep failing or closing
    // early, so a flapping server never sets off a storm of reconnections
    // and the polls that cover them.
    let backoff = Duration::from_secs((1u64 << (failures - 1).min(6)).min(60));
    match outcome {
        Ok(()) => ("closed by the server".to_owned(), backoff),
        // No streaming here (404, not an event stream): polling does the
        // job; look again now and then in case it is switched on.
        Err(e @ ApiError::Rejected { .. }) => {
            if failures == 1 {
                tracing::info!(%platform, error = %e, "no usable streaming API; polling only, trying again in 10 minutes");
            }
            (e.to_string(), Duration::from_secs(600))
        }
        Err(ApiError::RateLimited { reset_ms }) => (
            "rate limited".to_owned(),
            Duration::from_millis((reset_ms - clock.now_ms()).clamp(1000, 900_000) as u64),
        ),
        Err(e) => (e.to_string(), backoff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_a_refusal_waits_ten() {
        let clock = Clock::new();
        let pause =
            |failures, outcome| pause_after(Platform::Mastodon, outcome, failures, &clock).1;
        assert_eq!(pause(1, Ok(())), Duration::from_secs(1));
        assert_eq!(pause(3, Ok(())), Duration::from_secs(4));
        assert_eq!(pause(12, Ok(())), Duration::from_secs(60));
        let refused = ApiError::Rejected {
            status: 404,
            detail: "no streaming".into(),
        };
        assert_eq!(pause(1, Err(refused)), Duration::from_secs(600));
    }
}
