//! Signing in and the guard on every other route.
//!
//! - `/login` is a form (`name`, `password`, and a CSRF token that a
//!   cookie of its own doubles, since there is no session yet). Attempts
//!   are limited per name and per address (governor); a wrong name, a wrong
//!   password and a disabled account get the same answer.
//! - The session cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and
//!   `Secure` with `[console] secure_cookies`.
//! - [`require_agent`] finds the session (or a trusted proxy's header),
//!   sends a browser without one to `/login`, and refuses any POST whose
//!   CSRF token (form field `csrf` or header `X-CSRF-Token`) is not the
//!   session's, or whose `Origin` is another site's.

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use governor::clock::DefaultClock;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use super::pages::LoginPage;
use super::{ConsoleError, Shared};
use crate::application::console::{self as app, SignedIn, same_secret};
use crate::domain::AgentName;
use crate::domain::secret::Secret;
use crate::runtime::serve::Peer;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "helpdesk_session";
/// The sign-in form's CSRF cookie.
const LOGIN_COOKIE: &str = "helpdesk_login";
/// The largest form the guard reads to find its CSRF token.
const FORM_LIMIT: usize = 256 * 1024;

/// The agent a request is from, put in its extensions by [`require_agent`].
#[derive(Debug, Clone)]
pub struct Agent {
    /// Their name.
    pub name: String,
    /// Their session's CSRF token, for the page's forms.
    pub csrf: String,
}

type Keyed<K> = RateLimiter<K, HashMapStateStore<K>, DefaultClock>;

/// In a request's extensions: its form's CSRF token was not the session's,
/// and the route shows the form back rather than act.
#[derive(Debug, Clone, Copy)]
pub struct StaleForm;

/// Sign-in attempts, right or wrong: `per_min` a minute per agent name,
/// ten times that per address (a team behind one office address signs in
/// at nine together).
pub struct LoginLimiter {
    by_name: Keyed<String>,
    by_addr: Keyed<IpAddr>,
}

impl LoginLimiter {
    /// `per_min` attempts a minute per name (at least one).
    pub fn new(per_min: u32) -> LoginLimiter {
        let n = NonZeroU32::new(per_min).unwrap_or(NonZeroU32::MIN);
        let per_addr = n.saturating_mul(NonZeroU32::new(10).expect("ten is not zero"));
        LoginLimiter {
            by_name: RateLimiter::hashmap(Quota::per_minute(n)),
            by_addr: RateLimiter::hashmap(Quota::per_minute(per_addr)),
        }
    }

    /// Whether an attempt for `name` (as parsed: at most 64 characters,
    /// trimmed, so that spellings of one name share its quota) from `addr`
    /// may go on; both keys pay. An IPv6 address counts by its /64, which
    /// one host holds whole.
    fn allow(&self, name: &AgentName, addr: Option<IpAddr>) -> bool {
        let by_name = self
            .by_name
            .check_key(&name.as_str().to_lowercase())
            .is_ok();
        let by_addr = addr.is_none_or(|a| self.by_addr.check_key(&network_of(a)).is_ok());
        by_name && by_addr
    }

    /// Forgets keys that have recovered their whole quota.
    pub fn forget_idle(&self) {
        self.by_name.retain_recent();
        self.by_addr.retain_recent();
    }
}

/// The address a quota is kept for: an IPv4 address, an IPv6 /64.
fn network_of(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => a,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

/// The client's address: the peer's, or behind a trusted proxy the last
/// address of `X-Forwarded-For` (the one the proxy itself added).
fn client_addr(c: &Shared, peer: Option<Peer>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.0.ip();
    if !c.settings.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()
        .and_then(|a| a.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, secure: bool, max_age_secs: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie values are URL-safe base64")
}

/// The form at `/login`, with a fresh CSRF token in it and in a cookie.
pub async fn login_page(State(c): State<Shared>) -> Result<Response, ConsoleError> {
    login_form(&c, StatusCode::OK, None, "")
}

fn login_form(
    c: &Shared,
    status: StatusCode,
    error: Option<&str>,
    name: &str,
) -> Result<Response, ConsoleError> {
    let csrf = app::new_csrf();
    let page = LoginPage {
        csrf: &csrf,
        error,
        name,
    };
    let mut resp = (status, Html(askama::Template::render(&page)?)).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &csrf, c.settings.secure_cookies, Some(3600)),
    );
    Ok(resp)
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

/// Checks a sign-in; on success the session cookie and the inbox.
pub async fn login(
    State(c): State<Shared>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !same_secret(expected, &form.csrf) {
        return login_form(
            &c,
            StatusCode::FORBIDDEN,
            Some("This form had expired. Sign in again."),
            "",
        );
    }
    let wrong = || {
        login_form(
            &c,
            StatusCode::UNAUTHORIZED,
            Some("The name or the password is wrong (or the account is disabled)."),
            "",
        )
    };
    // A name no agent can have needs no hash to refuse.
    let Ok(name) = AgentName::parse(&form.name) else {
        return wrong();
    };
    let addr = client_addr(&c, peer.map(|p| p.0), &headers);
    if !c.limiter.allow(&name, addr) {
        tracing::warn!("console: sign-in attempts over the limit");
        return login_form(
            &c,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many sign-in attempts. Wait a minute, then try again."),
            "",
        );
    }
    let now = c.clock.now_ms();
    let password = Secret::new(form.password);
    match app::sign_in(&c.store, &name, &password, c.settings.sessions(), now).await? {
        Some(s) => {
            tracing::info!(agent = %name.as_str(), "console: signed in");
            Ok(signed_in(&c, &s, Redirect::to("/").into_response()))
        }
        None => {
            tracing::info!("console: sign-in refused");
            wrong()
        }
    }
}

/// `resp` with the session's cookie set and the sign-in form's cleared.
fn signed_in(c: &Shared, s: &SignedIn, mut resp: Response) -> Response {
    let secure = c.settings.secure_cookies;
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, s.token.expose(), secure, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", secure, Some(0)),
    );
    resp
}

/// Ends the session.
pub async fn logout(State(c): State<Shared>, headers: HeaderMap) -> Result<Response, ConsoleError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        app::sign_out(&c.store, token).await?;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", c.settings.secure_cookies, Some(0)),
    );
    Ok(resp)
}

/// The guard of every route but `/login` and `/static`: finds the agent,
/// checks a POST's origin and CSRF token, then runs the route.
pub async fn require_agent(
    State(c): State<Shared>,
    req: Request,
    next: Next,
) -> Result<Response, ConsoleError> {
    let now = c.clock.now_ms();
    let policy = c.settings.sessions();
    let proxied = proxied_agent(&c, &req);
    // The pages' own refreshes are not the agent at work: they must not
    // keep an unattended tab signed in past the idle timeout.
    let activity = !is_refresh(req.uri().path());
    let mut session = match cookie(req.headers(), SESSION_COOKIE) {
        Some(token) => app::session(&c.store, token, policy, now, activity).await?,
        None => None,
    };
    // The proxy's word wins over a cookie of someone else's.
    if let (Some(s), Some(p)) = (&session, &proxied)
        && &s.agent != p
    {
        session = None;
    }
    let mut opened: Option<SignedIn> = None;
    let agent = match (session, proxied) {
        (Some(s), _) => Agent {
            name: s.agent,
            csrf: s.csrf,
        },
        (None, Some(name)) if crate::storage::agents::is_active(&c.store, &name).await? => {
            let s = app::open(&c.store, &name, policy, now).await?;
            let agent = Agent {
                name: s.agent.clone(),
                csrf: s.csrf.clone(),
            };
            opened = Some(s);
            agent
        }
        _ => return Ok(to_login(&req)),
    };
    let req = match *req.method() {
        Method::GET | Method::HEAD => req,
        _ => match checked_post(req, &agent.csrf).await {
            Ok(req) => req,
            Err(refusal) => {
                return Ok(match opened {
                    Some(s) => signed_in(&c, &s, refusal),
                    None => refusal,
                });
            }
        },
    };
    let mut req = req;
    req.extensions_mut().insert(agent);
    let resp = next.run(req).await;
    Ok(match opened {
        Some(s) => signed_in(&c, &s, resp),
        None => resp,
    })
}

/// The routes the pages call by themselves every few seconds.
fn is_refresh(path: &str) -> bool {
    path == "/inbox/live" || path.ends_with("/live") || path.ends_with("/presence")
}

/// The agent a trusted proxy says the request is from, if the console is
/// configured to believe one and the request came through it. The header
/// must come once: a proxy that appends its value after the client's
/// would otherwise let the client's speak.
fn proxied_agent(c: &Shared, req: &Request) -> Option<String> {
    let header = c.settings.trusted_header.as_deref()?;
    let peer = req.extensions().get::<Peer>()?;
    if !c.settings.trusted_proxies.contains(&peer.0.ip()) {
        return None;
    }
    let mut values = req.headers().get_all(header).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    AgentName::parse(value.to_str().ok()?.trim())
        .ok()
        .map(|n| n.as_str().to_owned())
}

/// A browser is sent to the sign-in form; a script's request (htmx) is
/// told to go there too.
fn to_login(req: &Request) -> Response {
    if req.headers().contains_key("HX-Request") {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert("HX-Redirect", HeaderValue::from_static("/login"));
        return r;
    }
    if *req.method() == Method::GET {
        Redirect::to("/login").into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "Your session has ended: sign in again at /login.\n",
        )
            .into_response()
    }
}

/// A POST from this site with this session's CSRF token, its body intact
/// for the route; or the refusal.
async fn checked_post(req: Request, csrf: &str) -> Result<Request, Response> {
    let forbidden = |why: &'static str| (StatusCode::FORBIDDEN, why).into_response();
    let foreign = || forbidden("This form was sent from another site: the console refuses it.\n");
    // Browsers say where a request comes from; behind a reverse proxy the
    // `Host` the console sees is not the one the browser used, so this
    // comes first and `Origin` against `Host` only for a browser that does
    // not send it. `null` is a browser that will not say: the token decides.
    let site = req.headers().get("sec-fetch-site");
    let origin = req.headers().get(header::ORIGIN).filter(|o| *o != "null");
    if let Some(site) = site {
        if site != "same-origin" {
            return Err(foreign());
        }
    } else if let Some(origin) = origin {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, rest)| Some(rest) == host);
        if !same {
            return Err(foreign());
        }
    }
    if let Some(token) = req.headers().get("X-CSRF-Token") {
        return match token.to_str().is_ok_and(|t| same_secret(t, csrf)) {
            true => Ok(req),
            false => Err(forbidden(
                "This page has expired (its form token is not your session's): reload it.\n",
            )),
        };
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.\n").into_response());
    };
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf"))
        .map(|(_, v)| v);
    let keeps_text = parts.uri.path().ends_with("/reply") || parts.uri.path().ends_with("/note");
    match token {
        Some(t) if same_secret(&t, csrf) => Ok(Request::from_parts(parts, Body::from(bytes))),
        // A reply or a note written on a page older than the session (the
        // session ended and the agent signed in again meanwhile): shown
        // back with its text, never acted on, never lost.
        _ if keeps_text => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut().insert(StaleForm);
            Ok(req)
        }
        _ => Err(forbidden(
            "This page has expired (its form token is not your session's): reload it and send again.\n",
        )),
    }
}
