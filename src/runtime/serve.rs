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
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

use crate::runtime::config::HttpLimits;
use crate::runtime::shutdown::Shutdown;

/// How long one connection may live, keep-alive or not.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(120);

/// How long a request in flight may take to finish once the bot stops (or
/// the connection's life is up) before its connection is dropped.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` in the background, within `limits`, until
/// the stop signal; the accept loop and every connection are tasks of
/// `stop`, so the bot's exit waits for requests in flight. `name` labels
/// the metrics (`admin`, `webhook`).
pub fn serve_until(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    name: &'static str,
    shutdown: &Shutdown,
) {
    shutdown.spawn(accept_loop(listener, app, limits, name, shutdown.clone()));
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    name: &'static str,
    shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let limits = Arc::new(limits);
    let http = http_builder(&limits);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.stopped() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
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
        let conn = Connection {
            app: app.clone(),
            limits: limits.clone(),
            http: http.clone(),
            _permit: permit,
        };
        shutdown.spawn(conn.serve(stream, Peer(peer), shutdown.clone()));
    }
}

/// The address a request came from, in its extensions (the console
/// believes a proxy's header only from its trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// hyper's HTTP/1 server with our header timeout and buffer size.
fn http_builder(limits: &HttpLimits) -> http1::Builder {
    let mut http = http1::Builder::new();
    // Headers are small: 64 KiB a connection (hyper's default is ~400 KiB)
    // keeps the connection cap within the unit's MemoryMax.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    http
}

/// One accepted connection, holding its slot under the cap until it ends.
struct Connection {
    app: axum::Router,
    limits: Arc<HttpLimits>,
    http: http1::Builder,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: Peer, shutdown: Shutdown) {
        let (app, limits) = (self.app.clone(), self.limits.clone());
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(peer);
            handle(app.clone(), limits.clone(), req)
        });
        let conn = self.http.serve_connection(TokioIo::new(stream), svc);
        tokio::pin!(conn);
        let ended = tokio::select! {
            _ = conn.as_mut() => true,
            _ = shutdown.stopped() => false,
            _ = tokio::time::sleep(MAX_CONNECTION_LIFE) => false,
        };
        if !ended {
            // Let a request in flight finish, then drop the connection
            // whatever the peer does.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
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
