//! The HTTP server of the webhook and admin endpoints: axum routes behind
//! our own accept loop, so that no peer can starve the process.
//!
//! `axum::serve` has no header timeout, no connection cap and no body
//! limit of its own; 300 silent connections used up the process's file
//! descriptors (and with them every X poll) and 150 unsigned 2 MiB bodies
//! took 300 MB. Here:
//!
//! - at most `max_connections` connections are served at once; one more is
//!   accepted and closed at once (counted in
//!   `helpdesk_http_connections_refused_total`), so the endpoint never holds
//!   more descriptors than that and the HTTP client keeps its own;
//! - a request's headers must arrive within `header_timeout_ms`, which also
//!   closes a keep-alive connection left idle (hyper starts that timer
//!   whenever it waits for a request head);
//! - a whole request must be answered within `request_timeout_ms` (408);
//! - a body is limited while it is read (`http_body_util::Limited`), and one
//!   whose `Content-Length` is over the limit is refused (413) unread;
//! - a connection lives at most [`MAX_CONNECTION_LIFE`], so a peer that
//!   never reads its answer lets go of its descriptor too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use crate::runtime::bot::stopped;
use crate::runtime::config::HttpLimits;

/// How long one connection may live, keep-alive or not.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(120);

/// Serves `app` on `listener` in the background, within `limits`, until
/// `stop` turns true. `name` labels the metrics (`admin`, `webhook`).
pub fn serve_until(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    name: &'static str,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(accept_loop(listener, app, limits, name, stop));
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    name: &'static str,
    stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let limits = Arc::new(limits);
    let mut http = hyper::server::conn::http1::Builder::new();
    // Headers are small: 64 KiB a connection (hyper's default is ~400 KiB)
    // keeps the connection cap within the unit's MemoryMax.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let stopping = stopped(stop.clone());
    tokio::pin!(stopping);
    loop {
        let accepted = tokio::select! {
            _ = &mut stopping => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: do not spin; the descriptors free up
                // as connections time out.
                tracing::warn!(endpoint = name, error = %e, "cannot accept a connection; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("helpdesk_http_connections_refused_total", "endpoint" => name)
                .increment(1);
            drop(stream); // closed at once: its descriptor is freed now
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let http = http.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                handle(app.clone(), limits.clone(), req)
            });
            let conn = http.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let ended = tokio::select! {
                _ = conn.as_mut() => true,
                _ = stopped(stop) => false,
                _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => false,
            };
            if !ended {
                // Let a request in flight finish, then drop the connection
                // whatever the peer does.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            }
        });
    }
}

async fn handle(
    app: axum::Router,
    limits: Arc<HttpLimits>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_limit_bytes as u64) {
        return Ok(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than http.body_limit_bytes\n",
        ));
    }
    let limit = limits.body_limit_bytes;
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
    match tokio::time::timeout(limits.request_timeout(), app.oneshot(req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(never)) => match never {},
        Err(_) => Ok(refuse(
            StatusCode::REQUEST_TIMEOUT,
            "the request took longer than http.request_timeout_ms\n",
        )),
    }
}

/// An answer that also closes the connection: the peer's body may be
/// unread, and a misbehaving peer gets no second request on it.
fn refuse(code: StatusCode, why: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(why));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}
