//! The HTTP clients every connector uses: one TLS provider (rustls with
//! ring), one user agent, a connect timeout.

use std::time::Duration;

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
