//! A fault-injecting HTTP proxy in front of any fake platform (the X
//! sandbox, a fake Mastodon): the network trouble a real API shows, at the
//! byte level, where the client sees it.
//!
//! Each request is answered by a [`Fault`], taken from a script for its
//! route first, else drawn at the configured rate. Some faults act first
//! (the request reaches the platform, which posts; then the answer is lost
//! or spoilt), others never reach it. The proxy keeps a log of what it did.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded and answered as the platform answered.
    Pass,
    /// Forwarded (the platform acted), then the connection is closed before
    /// a byte of the answer.
    CutBeforeHeaders,
    /// Forwarded, then the answer is cut in the middle of its body.
    CutMidBody,
    /// Forwarded, then a gateway's 502 page instead of the answer.
    BadGatewayAfterActing,
    /// Forwarded, then the answer's body replaced by JSON that is not.
    GarbageAfterActing,
    /// Not forwarded: 503 with a JSON problem.
    Unavailable,
    /// Not forwarded: a 500 HTML page.
    Html500,
    /// Not forwarded: 429 with a reset a few seconds away.
    TooMany,
}

impl Fault {
    /// The faults drawn at random, in the proportions they are drawn.
    pub const MIX: [Fault; 7] = [
        Fault::CutBeforeHeaders,
        Fault::CutMidBody,
        Fault::BadGatewayAfterActing,
        Fault::GarbageAfterActing,
        Fault::Unavailable,
        Fault::Html500,
        Fault::TooMany,
    ];
}

struct Plan {
    /// Scripted faults: (method, path prefix, faults in order).
    scripts: Vec<(String, String, VecDeque<Fault>)>,
    /// Share of the other requests that get a random fault from the mix.
    rate: f64,
    /// Only requests whose path starts with one of these get random faults
    /// (all when empty).
    only: Vec<String>,
    rng: rand::rngs::StdRng,
    log: Vec<(String, String, Fault)>,
}

/// A running proxy; dropping it does not stop it (tests are short-lived).
#[derive(Clone)]
pub struct FaultProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, seed: u64) -> FaultProxy {
        let up: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream as http://ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(Plan {
            scripts: Vec::new(),
            rate: 0.0,
            only: Vec::new(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            log: Vec::new(),
        }));
        let p = plan.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                tokio::spawn(async move {
                    let _ = serve(client, up, p).await;
                });
            }
        });
        FaultProxy { addr, plan }
    }

    /// The proxy's base URL, to give the bot instead of the platform's.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests `METHOD path-prefix…` get these faults, in order.
    pub fn script(&self, method: &str, path_prefix: &str, faults: &[Fault]) {
        self.plan.lock().unwrap().scripts.push((
            method.to_owned(),
            path_prefix.to_owned(),
            faults.iter().copied().collect(),
        ));
    }

    /// Every other request (under `only`'s prefixes, all if empty) gets a
    /// random fault of [`Fault::MIX`] with probability `rate`.
    pub fn random(&self, rate: f64, only: &[&str]) {
        let mut g = self.plan.lock().unwrap();
        g.rate = rate;
        g.only = only.iter().map(|s| s.to_string()).collect();
    }

    /// What the proxy did: (method, path, fault) per request.
    pub fn log(&self) -> Vec<(String, String, Fault)> {
        self.plan.lock().unwrap().log.clone()
    }

    /// How many requests got a fault other than [`Fault::Pass`].
    pub fn faults(&self) -> usize {
        self.log()
            .iter()
            .filter(|(_, _, f)| *f != Fault::Pass)
            .count()
    }
}

fn choose(plan: &Mutex<Plan>, method: &str, path: &str) -> Fault {
    let mut g = plan.lock().unwrap();
    let scripted = g
        .scripts
        .iter_mut()
        .find(|(m, p, q)| m == method && path.starts_with(p.as_str()) && !q.is_empty())
        .and_then(|(_, _, q)| q.pop_front());
    let fault = scripted.unwrap_or_else(|| {
        let eligible = g.only.is_empty() || g.only.iter().any(|p| path.starts_with(p.as_str()));
        let rate = g.rate;
        if eligible && rate > 0.0 && g.rng.random_bool(rate) {
            let i = g.rng.random_range(0..Fault::MIX.len());
            Fault::MIX[i]
        } else {
            Fault::Pass
        }
    });
    g.log.push((method.to_owned(), path.to_owned(), fault));
    fault
}

/// Reads one HTTP/1.1 request (head and Content-Length body); `None` at EOF.
async fn read_request(c: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Vec<u8>, String, String)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 8192];
                let n = c.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let req: Vec<u8> = buf.drain(..end + 4 + len).collect();
            let mut first = head.lines().next().unwrap_or("").split(' ');
            let method = first.next().unwrap_or("").to_owned();
            let path = first.next().unwrap_or("").to_owned();
            return Some((req, method, path));
        }
        let mut chunk = [0u8; 8192];
        let n = c.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The request with `Connection: close`, so the platform's answer ends at EOF.
fn closing(req: &[u8]) -> Vec<u8> {
    let end = find(req, b"\r\n\r\n").expect("a whole request");
    let head = String::from_utf8_lossy(&req[..end]);
    let mut out: Vec<u8> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes();
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(&req[end + 4..]);
    out
}

fn canned(status: &str, content_type: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(
    mut client: TcpStream,
    up: SocketAddr,
    plan: Arc<Mutex<Plan>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some((req, method, path)) = read_request(&mut client, &mut buf).await {
        let fault = choose(&plan, &method, &path);
        let reply = match fault {
            Fault::Unavailable => canned(
                "503 Service Unavailable",
                "application/json",
                r#"{"title":"Service Unavailable","detail":"Service Unavailable","type":"about:blank","status":503}"#,
                "",
            ),
            Fault::Html500 => canned(
                "500 Internal Server Error",
                "text/html",
                "<html><body><h1>Internal Server Error</h1></body></html>",
                "",
            ),
            Fault::TooMany => {
                let reset = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    + 2;
                let reset_iso = time::OffsetDateTime::from_unix_timestamp(reset as i64)
                    .unwrap()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                canned(
                    "429 Too Many Requests",
                    "application/json",
                    r#"{"title":"Too Many Requests","detail":"Too Many Requests","status":429,"error":"Too many requests"}"#,
                    &format!(
                        "x-rate-limit-remaining: 0\r\nx-rate-limit-reset: {reset}\r\nx-ratelimit-remaining: 0\r\nx-ratelimit-reset: {reset_iso}\r\nratelimit-remaining: 0\r\nratelimit-reset: {reset}\r\n"
                    ),
                )
            }
            Fault::Pass => {
                // Streamed through, so long-lived answers (SSE) work too.
                let mut upstream = TcpStream::connect(up).await?;
                upstream.write_all(&closing(&req)).await?;
                let (mut ur, _uw) = upstream.split();
                tokio::io::copy(&mut ur, &mut client).await?;
                return Ok(());
            }
            acted => {
                let mut upstream = TcpStream::connect(up).await?;
                upstream.write_all(&closing(&req)).await?;
                let mut answer = Vec::new();
                upstream.read_to_end(&mut answer).await?;
                match acted {
                    Fault::CutBeforeHeaders => return Ok(()),
                    Fault::CutMidBody => {
                        let body_at = find(&answer, b"\r\n\r\n").map_or(0, |e| e + 4);
                        let cut = body_at + (answer.len() - body_at) / 2;
                        client.write_all(&answer[..cut.max(body_at)]).await?;
                        client.flush().await?;
                        return Ok(());
                    }
                    Fault::BadGatewayAfterActing => canned(
                        "502 Bad Gateway",
                        "text/html",
                        "<html><body>502 Bad Gateway</body></html>",
                        "",
                    ),
                    _ => canned(
                        "200 OK",
                        "application/json",
                        r#"{"data": {"id": 12, "text": [}"#,
                        "",
                    ),
                }
            }
        };
        client.write_all(&reply).await?;
    }
    Ok(())
}
