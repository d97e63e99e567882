//! Sessions: app-password logins, their JWTs, refresh with revocation, and
//! the check every authenticated call makes.
//!
//! Tokens are real JWTs signed by this fake (HMAC-SHA256, as the reference
//! PDS signs its own): the access token's `scope` is
//! `com.atproto.appPassPrivileged` when the app password has DM access,
//! else `com.atproto.appPass`; the refresh token's is
//! `com.atproto.refresh`. `sub` is the DID, `iat` and `exp` are seconds,
//! `jti` is unique.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::{Inner, Quota, Req, XrpcError, err, ids, rate_limited, str_field};
use crate::domain::clock::Millis;

/// The access scope of an app password without DM access.
pub(super) const APP_PASS: &str = "com.atproto.appPass";
/// The access scope of an app password with DM access.
pub(super) const PRIVILEGED: &str = "com.atproto.appPassPrivileged";
/// The scope of refresh tokens.
pub(super) const REFRESH: &str = "com.atproto.refresh";

/// What the PDS remembers of the tokens it issued.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// Successful `createSession` calls.
    pub(super) created: usize,
    /// Successful `refreshSession` calls.
    pub(super) refreshed: usize,
    /// The `jti` of every access token issued.
    access: Vec<String>,
    /// Access tokens a test expired early.
    expired: HashSet<String>,
    /// Refresh tokens by `jti`: whether revoked (used once already).
    refresh: HashMap<String, bool>,
}

impl Sessions {
    /// Every access token issued so far counts as expired from now on.
    pub(super) fn expire_all(&mut self) {
        self.expired.extend(self.access.iter().cloned());
    }
}

/// Who an access token speaks for.
#[derive(Debug, Clone)]
pub(super) struct Auth {
    /// The account's DID.
    pub(super) did: String,
    /// Whether its app password has DM access.
    pub(super) privileged: bool,
}

fn expired() -> XrpcError {
    err(400, "ExpiredToken", "Token has expired")
}

/// The claims of the bearer token, its signature and expiry checked.
fn bearer(g: &Inner, req: &Req<'_>, now: Millis) -> Result<Value, XrpcError> {
    let Some(header) = req.header("authorization") else {
        return Err(err(
            401,
            "AuthenticationRequired",
            "Authentication Required",
        ));
    };
    let Some(token) = header.strip_prefix("Bearer ") else {
        return Err(err(
            401,
            "AuthenticationRequired",
            "Unexpected authorization type",
        ));
    };
    let Some(claims) = ids::verify(&g.key, token.trim()) else {
        return Err(err(400, "InvalidToken", "Token could not be verified"));
    };
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if now.div_euclid(1000) >= exp {
        return Err(expired());
    }
    Ok(claims)
}

fn claim<'v>(claims: &'v Value, key: &str) -> &'v str {
    claims.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The account an access token speaks for: 401 without one, 400
/// `InvalidToken` for a garbled one or a refresh token, 400 `ExpiredToken`
/// for an expired one.
pub(super) fn access(g: &Inner, req: &Req<'_>, now: Millis) -> Result<Auth, XrpcError> {
    let claims = bearer(g, req, now)?;
    let scope = claim(&claims, "scope");
    if scope != APP_PASS && scope != PRIVILEGED {
        return Err(err(400, "InvalidToken", "Bad token scope"));
    }
    if g.sessions.expired.contains(claim(&claims, "jti")) {
        return Err(expired());
    }
    Ok(Auth {
        did: claim(&claims, "sub").to_owned(),
        privileged: scope == PRIVILEGED,
    })
}

impl Inner {
    /// The DID document of the brand: its handle and this PDS as its
    /// service endpoint, where a client learns whom to talk to.
    fn did_doc(&self) -> Value {
        json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": self.setup.did,
            "alsoKnownAs": [format!("at://{}", self.brand().handle)],
            "service": [{
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": self.base_url,
            }],
        })
    }

    fn session_view(&self) -> Value {
        json!({
            "handle": self.brand().handle,
            "did": self.setup.did,
            "didDoc": self.did_doc(),
            "active": true,
        })
    }

    /// A new access and refresh pair for the brand.
    fn issue(&mut self, now: Millis) -> Value {
        let iat = now.div_euclid(1000);
        let scope = if self.setup.dm_access {
            PRIVILEGED
        } else {
            APP_PASS
        };
        // did:web spells a port's colon as %3A.
        let host = self
            .base_url
            .trim_start_matches("http://")
            .replace(':', "%3A");
        let aud = format!("did:web:{host}");
        let (access_jti, refresh_jti) = (jti(), jti());
        let access = ids::sign(
            &self.key,
            "at+jwt",
            &json!({"scope": scope, "sub": self.setup.did, "aud": aud, "iat": iat,
                "exp": iat + self.setup.access_ttl.as_secs() as i64, "jti": access_jti}),
        );
        let refresh = ids::sign(
            &self.key,
            "refresh+jwt",
            &json!({"scope": REFRESH, "sub": self.setup.did, "aud": aud, "iat": iat,
                "exp": iat + self.setup.refresh_ttl.as_secs() as i64, "jti": refresh_jti}),
        );
        self.sessions.access.push(access_jti);
        self.sessions.refresh.insert(refresh_jti, false);
        let mut v = self.session_view();
        v["accessJwt"] = json!(access);
        v["refreshJwt"] = json!(refresh);
        v
    }
}

/// A unique token id.
fn jti() -> String {
    ids::b64(&rand::random::<[u8; 16]>())
}

/// `com.atproto.server.createSession`.
pub(super) fn create(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    let input = req.input()?;
    let identifier = str_field(&input, "identifier")?;
    let password = str_field(&input, "password")?;
    // The limit counts per account, failed logins included: it is what
    // stops guessing. An unknown identifier is its own account.
    let account = g
        .resolve(identifier)
        .unwrap_or_else(|| identifier.to_ascii_lowercase());
    let l = g.setup.limits;
    let spends = [
        (format!("session-5m:{account}"), l.sessions_short),
        (format!("session-day:{account}"), l.sessions_daily),
    ];
    match g.spend(&spends, 1, now) {
        Ok(q) => *quota = q,
        Err(q) => {
            *quota = q;
            return Err(rate_limited());
        }
    }
    if account != g.setup.did || password != g.setup.app_password {
        return Err(err(
            401,
            "AuthenticationRequired",
            "Invalid identifier or password",
        ));
    }
    g.sessions.created += 1;
    Ok(g.issue(now))
}

/// `com.atproto.server.refreshSession`: the bearer is the refresh JWT,
/// single-use.
pub(super) fn refresh(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    let claims = bearer(g, req, now)?;
    if claim(&claims, "scope") != REFRESH {
        // A choice of wording; the lexicon names the error only.
        return Err(err(400, "InvalidToken", "Invalid token type"));
    }
    let jti = claim(&claims, "jti").to_owned();
    match g.sessions.refresh.get(&jti) {
        Some(false) => {}
        Some(true) => return Err(err(400, "ExpiredToken", "Token has been revoked")),
        None => return Err(err(400, "InvalidToken", "Token could not be verified")),
    }
    g.sessions.refresh.insert(jti, true);
    g.sessions.refreshed += 1;
    Ok(g.issue(now))
}

/// `com.atproto.server.getSession`.
pub(super) fn get(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    access(g, req, now)?;
    Ok(g.session_view())
}
