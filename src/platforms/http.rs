//! The HTTP clients every connector uses: one TLS provider (rustls with
//! ring), one user agent, a connect timeout.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::platforms::{ApiError, decode_success, error_chain};

/// Builds the HTTP client every connector uses: rustls with the ring provider.
pub fn http_client() -> reqwest::Client {
    client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("the TLS provider is installed in client_builder")
}

/// A client for long-lived streams: no overall timeout (the caller times
/// out a silent stream itself), the same TLS and user agent.
pub fn streaming_http_client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("the TLS provider is installed in client_builder")
}

fn client_builder() -> reqwest::ClientBuilder {
    // One crypto provider for reqwest and sqlx; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("helpdesk/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
}

/// Reads a platform's answer: a 2xx decoded as `T` (with its headers), any
/// other status mapped by `error_from`. `acts`: the call may have created
/// something, so an unknown outcome (a connection cut after the request
/// left, an unreadable answer, a 5xx that `error_from` calls transient) is
/// [`ApiError::InDoubt`]; a connection never made is transient. Never
/// quotes the body: it holds customers' messages.
pub async fn read_answer<T: DeserializeOwned>(
    resp: Result<reqwest::Response, reqwest::Error>,
    acts: bool,
    error_from: impl FnOnce(u16, &HeaderMap, &[u8]) -> ApiError,
) -> Result<(T, HeaderMap), ApiError> {
    let doubt = |why: String| {
        if acts {
            ApiError::InDoubt(why)
        } else {
            ApiError::Transient(why)
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(ApiError::Transient(error_chain(&e.without_url()))),
        Err(e) => return Err(doubt(error_chain(&e.without_url()))),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| doubt(error_chain(&e.without_url())))?;
    if (200..300).contains(&status) {
        return decode_success(&body, acts).map(|t| (t, headers));
    }
    match error_from(status, &headers, &body) {
        ApiError::Transient(why) => Err(doubt(why)),
        e => Err(e),
    }
}
