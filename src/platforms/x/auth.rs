//! X credentials: a static token, or OAuth 2.0 user-context tokens that
//! refresh themselves, and the PKCE login that obtains them.
//!
//! Tokens are [`Secret`]s from the moment they are read. The refreshing
//! kind lives in a JSON file written with 0600 permissions (by `helpdesk x
//! login`, then by each refresh), so a restart keeps the newest refresh
//! token: X's refresh tokens are single-use. Several instances share one
//! login through the database instead (a [`SharedLogin`], kept by the storage layer): sealed,
//! and refreshed by one instance at a time under the row's lock.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::clock::{Clock, Millis};
use crate::domain::secret::Secret;
use crate::platforms::ApiError;

/// Refresh this long before the access token expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The scopes the bot needs: read mentions and DMs, post replies and DMs,
/// and a refresh token.
pub const SCOPES: &str = "tweet.read tweet.write users.read dm.read dm.write offline.access";

/// The token file's content.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    /// The bearer token.
    pub access_token: String,
    /// The single-use refresh token.
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix ms).
    pub expires_at: Option<Millis>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why credentials could not be read, refreshed or stored.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file could not be read or written.
    #[error("token file {path}: {message}; run `helpdesk x login` to create it")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The token endpoint refused.
    #[error("X refused the token request ({status}): {detail}; run `helpdesk x login` again")]
    Refused {
        /// HTTP status.
        status: u16,
        /// X's explanation (never a token).
        detail: String,
    },
    /// The token endpoint could not be reached.
    #[error("cannot reach the X token endpoint: {0}")]
    Transport(String),
    /// The key that seals the tokens in the database is missing or wrong.
    #[error(
        "the environment variable {var} {problem}: it must hold the base64 32-byte key that seals the X tokens in the database; make one with `openssl rand -base64 32` and give every instance (and `helpdesk x login`) the same value"
    )]
    Key {
        /// The variable `[x] token_key_env` names.
        var: String,
        /// What is wrong with it (never its value).
        problem: String,
    },
    /// The stored tokens were sealed with another key.
    #[error(
        "the X tokens in the database were sealed with a different key than the one in {var}: give this instance the key the other instances use, or run `helpdesk x login` again to store a new login under this key"
    )]
    WrongKey {
        /// The variable `[x] token_key_env` names.
        var: String,
    },
    /// The stored tokens do not open although the key is the right one.
    #[error(
        "the sealed X tokens in the database are damaged or were altered: run `helpdesk x login` again"
    )]
    Damaged,
    /// There is no login in the database yet.
    #[error(
        "the database has no X login yet: run `helpdesk x login` with the same configuration (token_store = \"database\")"
    )]
    NoLogin,
    /// The tokens could not be sealed.
    #[error("cannot seal the X tokens: {0}; try again")]
    Seal(String),
    /// The database failed while reading or storing the tokens.
    #[error(
        "database error while reading or storing the X tokens: {0}; check database_url and that the server is up"
    )]
    Database(String),
}

/// Where the bearer token comes from.
pub enum Credentials {
    /// A token from the environment; it never changes while running.
    Static(Secret),
    /// OAuth 2.0 tokens in a file or the database, refreshed before expiry
    /// and on a 401.
    Refreshing(Refreshing),
}

/// OAuth 2.0 tokens that refresh themselves.
pub struct Refreshing {
    home: Home,
    client_id: String,
    client_secret: Option<Secret>,
    token_url: String,
    /// The set in use: a cache of the file or the row, read again near
    /// expiry and after a 401.
    state: Mutex<TokenSet>,
}

/// What [`SharedLogin::refresh`] did.
#[derive(Debug)]
pub enum Refreshed {
    /// This instance called the token endpoint and stored the new set.
    Here(TokenSet),
    /// Another instance had already refreshed: its set, X not called.
    Elsewhere(TokenSet),
}

/// The call that exchanges a refresh token for a new set at X's token
/// endpoint, handed to [`SharedLogin::refresh`] to make under its lock.
pub type Exchange<'a> = Box<
    dyn FnOnce(String) -> Pin<Box<dyn Future<Output = Result<TokenSet, AuthError>> + Send + 'a>>
        + Send
        + 'a,
>;

/// A login shared by every instance on one database (`token_store =
/// "database"`). The storage layer keeps it; this trait is what the
/// connector needs of it, so that the platform does not reach up into
/// storage.
#[async_trait::async_trait]
pub trait SharedLogin: Send + Sync {
    /// The stored set, read without a lock (a committed refresh or nothing).
    async fn load(&self) -> Result<TokenSet, AuthError>;

    /// Refreshes the login once across every instance.
    ///
    /// `used` is the access token this instance has been using. Under the
    /// row's lock the stored set is read again: if it is not the one this
    /// instance used and is not about to expire (`fresh_after`), another
    /// instance refreshed it first, and it is returned without calling X.
    /// With `force` unset, a stored set that is not about to expire is
    /// returned too. Otherwise `call` exchanges the stored refresh token
    /// and the new set is stored before the lock is released.
    async fn refresh<'a>(
        &'a self,
        used: &'a str,
        force: bool,
        fresh_after: Millis,
        now: Millis,
        call: Exchange<'a>,
    ) -> Result<Refreshed, AuthError>;
}

/// Where the refreshing tokens are kept.
enum Home {
    /// A 0600 file, for one instance.
    File(PathBuf),
    /// The `oauth_tokens` row, shared by every instance on the database
    /// (boxed: it is much larger than a path).
    Database(Box<dyn SharedLogin>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Static(_) => f.write_str("Credentials::Static([redacted])"),
            Credentials::Refreshing(r) => match &r.home {
                Home::File(file) => write!(f, "Credentials::Refreshing({})", file.display()),
                Home::Database(_) => f.write_str("Credentials::Refreshing(database)"),
            },
        }
    }
}

/// Writes the token file, readable by its owner only, so that a crash or a
/// power cut leaves either the old file or the new one, never half of one
/// and never a refresh token X has already consumed.
///
/// The bytes go to a fresh temporary file beside the target (random name,
/// created exclusively with mode 0600), which is synced, renamed over the
/// target, and then the directory is synced so the rename itself survives a
/// power cut. A stale or planted temporary file from an earlier version
/// (`x-token.tmp`) is never opened.
pub fn write_token_file(path: &Path, tokens: &TokenSet) -> Result<(), AuthError> {
    let err = |message: String| AuthError::File {
        path: path.to_owned(),
        message,
    };
    let json = serde_json::to_vec_pretty(tokens).map_err(|e| err(e.to_string()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| err("not a file name".into()))?
        .to_string_lossy()
        .into_owned();
    let (tmp, mut file) = create_temp(&dir, &name).map_err(|e| err(e.to_string()))?;
    let written = (|| {
        use std::io::Write;
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        // Rename: a crash never leaves half a file, and the refresh token
        // in it is always the newest one X accepted.
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    // The rename lives in the directory: until the directory is synced, a
    // power cut can bring back the old file and its consumed refresh token.
    sync_dir(&dir).map_err(|e| err(format!("saved, but syncing {}: {e}", dir.display())))
}

/// Creates `DIR/.NAME.RANDOM.tmp` for writing, mode 0600, refusing any
/// existing path.
///
/// `create_new` is `O_CREAT | O_EXCL`, which fails on an existing path,
/// a symlink included (dangling or not): POSIX says O_EXCL does not follow
/// it. That is why there is no `O_NOFOLLOW` here: `libc` is only in
/// Cargo.lock as a transitive dependency, and the flag would add nothing.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    use rand::Rng;
    let mut last = None;
    // A clash of 64 random bits means someone is planting names; a few
    // tries then give up rather than loop.
    for _ in 0..4 {
        let suffix: u64 = rand::rng().random();
        let tmp = dir.join(format!(".{name}.{suffix:016x}.tmp"));
        match create_private(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("the loop ran"))
}

/// Opens a new file at `path` with mode 0600; fails if anything (a file, a
/// directory, a symlink) is already there.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Windows cannot open a directory as a file; its rename is the best there is.
    Ok(())
}

/// Reads the token file.
pub fn read_token_file(path: &Path) -> Result<TokenSet, AuthError> {
    let bytes = std::fs::read(path).map_err(|e| AuthError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AuthError::File {
        path: path.to_owned(),
        message: format!("not a token file ({e})"),
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

/// Calls the token endpoint with a form; never logs the form.
pub async fn token_request(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    client_secret: Option<&Secret>,
    form: &[(&str, &str)],
    now: Millis,
) -> Result<TokenSet, AuthError> {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    fields.push(("client_id", client_id));
    // Short: on SQLite the shared login holds the write lock meanwhile.
    let mut req = http
        .post(token_url)
        .form(&fields)
        .timeout(Duration::from_secs(10));
    if let Some(s) = client_secret {
        // Confidential clients authenticate with Basic auth.
        req = req.basic_auth(client_id, Some(s.expose()));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| AuthError::Transport(crate::platforms::error_chain(&e.without_url())))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| AuthError::Transport(crate::platforms::error_chain(&e.without_url())))?;
    if !status.is_success() {
        #[derive(Deserialize)]
        struct Err {
            error: Option<String>,
            error_description: Option<String>,
        }
        let detail = serde_json::from_slice::<Err>(&body)
            .ok()
            .and_then(|e| e.error_description.or(e.error))
            .unwrap_or_else(|| "no explanation".into());
        return Err(AuthError::Refused {
            status: status.as_u16(),
            detail,
        });
    }
    let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| AuthError::Refused {
        status: status.as_u16(),
        // serde's message could quote a token: only where it failed.
        detail: format!(
            "unreadable token response ({})",
            crate::platforms::json_error_position(&e)
        ),
    })?;
    Ok(TokenSet {
        access_token: t.access_token,
        refresh_token: t.refresh_token,
        expires_at: t.expires_in.map(|s| now + s * 1000),
    })
}

impl Credentials {
    /// Refreshing credentials from a token file.
    pub fn refreshing(
        file: PathBuf,
        client_id: String,
        client_secret: Option<Secret>,
        token_url: String,
    ) -> Result<Credentials, AuthError> {
        let state = read_token_file(&file)?;
        Ok(Credentials::Refreshing(Refreshing {
            home: Home::File(file),
            client_id,
            client_secret,
            token_url,
            state: Mutex::new(state),
        }))
    }

    /// Refreshing credentials shared through the database with every
    /// instance that has the same key: fails at once (clearly) when there
    /// is no login or it was sealed with another key.
    pub async fn shared(
        tokens: impl SharedLogin + 'static,
        client_id: String,
        client_secret: Option<Secret>,
        token_url: String,
    ) -> Result<Credentials, AuthError> {
        let state = tokens.load().await?;
        Ok(Credentials::Refreshing(Refreshing {
            home: Home::Database(Box::new(tokens)),
            client_id,
            client_secret,
            token_url,
            state: Mutex::new(state),
        }))
    }

    /// The bearer token to use now, refreshed first if it is about to expire.
    pub async fn bearer(&self, http: &reqwest::Client, clock: &Clock) -> Result<Secret, ApiError> {
        match self {
            Credentials::Static(s) => Ok(s.clone()),
            Credentials::Refreshing(r) => {
                let mut st = r.state.lock().await;
                if expires_soon(&st, clock) && st.refresh_token.is_some() {
                    r.refresh(&mut st, http, clock, false).await?;
                }
                Ok(Secret::new(st.access_token.clone()))
            }
        }
    }

    /// After a 401: refresh (or re-read the file or the row, which an
    /// operator or another instance may have replaced). True when there is
    /// a new token worth one more try.
    pub async fn recover(&self, http: &reqwest::Client, clock: &Clock, used: &Secret) -> bool {
        let Credentials::Refreshing(r) = self else {
            return false;
        };
        let mut st = r.state.lock().await;
        if st.access_token != used.expose() {
            return true; // another task already refreshed
        }
        let stored = match &r.home {
            Home::File(file) => read_token_file(file).ok(),
            Home::Database(db) => db.load().await.ok(),
        };
        if let Some(stored) = stored
            && stored.access_token != st.access_token
            && !expires_soon(&stored, clock)
        {
            *st = stored;
            return true;
        }
        if st.refresh_token.is_none() {
            return false;
        }
        r.refresh(&mut st, http, clock, true).await.is_ok()
    }
}

/// Whether `t` expires within [`REFRESH_MARGIN`].
fn expires_soon(t: &TokenSet, clock: &Clock) -> bool {
    t.expires_at.is_some_and(|e| e <= refresh_horizon(clock))
}

/// A token expiring at or before this time is refreshed now.
fn refresh_horizon(clock: &Clock) -> Millis {
    clock.now_ms() + REFRESH_MARGIN.as_millis() as Millis
}

impl Refreshing {
    /// Replaces `st` with a newer set: from X, or (database) from the
    /// instance that refreshed first. `force` (after a 401) refreshes even
    /// a stored set that is not near expiry, unless it is not `st`'s.
    async fn refresh(
        &self,
        st: &mut TokenSet,
        http: &reqwest::Client,
        clock: &Clock,
        force: bool,
    ) -> Result<(), ApiError> {
        let call = |rt: String| async move {
            token_request(
                http,
                &self.token_url,
                &self.client_id,
                self.client_secret.as_ref(),
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                clock.now_ms(),
            )
            .await
        };
        let to_api = |e: AuthError| {
            tracing::error!(error = %e, "refreshing the X access token failed");
            match e {
                AuthError::Transport(m) => ApiError::Transient(m),
                AuthError::Database(m) => ApiError::Transient(m),
                _ => ApiError::Unauthorized,
            }
        };
        match &self.home {
            Home::File(file) => {
                let Some(rt) = st.refresh_token.clone() else {
                    return Err(ApiError::Unauthorized);
                };
                let fresh = call(rt.clone()).await.map_err(to_api)?;
                let next = TokenSet {
                    refresh_token: fresh.refresh_token.or(Some(rt)),
                    ..fresh
                };
                if let Err(e) = write_token_file(file, &next) {
                    tracing::error!(error = %e, "the refreshed token could not be saved; a restart will need `helpdesk x login`");
                }
                *st = next;
                tracing::info!("X access token refreshed");
            }
            Home::Database(db) => {
                let done = db
                    .refresh(
                        &st.access_token,
                        force,
                        refresh_horizon(clock),
                        clock.now_ms(),
                        Box::new(move |rt| Box::pin(call(rt))),
                    )
                    .await
                    .map_err(to_api)?;
                match done {
                    Refreshed::Here(next) => {
                        *st = next;
                        tracing::info!("X access token refreshed and shared in the database");
                    }
                    Refreshed::Elsewhere(next) => {
                        *st = next;
                        tracing::info!(
                            "X access token taken from the database (refreshed by another instance)"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// PKCE: a random verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    use base64::Engine;
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier.clone(), b64.encode(digest.as_ref()))
}

/// The URL the operator opens to authorise the bot.
pub fn authorize_url(
    authorize_base: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    let q = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", SCOPES),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ])
    .expect("strings encode");
    format!("{authorize_base}?{q}")
}

/// Takes what the operator pasted (the whole redirect URL, or only the
/// code) and returns the code, checking `state` when present.
pub fn code_from_paste(pasted: &str, state: &str) -> Result<String, String> {
    let pasted = pasted.trim();
    let Some((_, query)) = pasted.split_once('?') else {
        return if pasted.is_empty() {
            Err("nothing was pasted".into())
        } else {
            Ok(pasted.to_owned())
        };
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| format!("not a redirect URL: {e}"))?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(e) = get("error") {
        return Err(format!("X did not authorise the app: {e}"));
    }
    if get("state").is_some_and(|s| s != state) {
        return Err(
            "the `state` in the URL is not the one sent: start `helpdesk x login` again".into(),
        );
    }
    get("code").ok_or_else(|| "the URL has no `code`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_s256_of_the_verifier() {
        let (v, c) = pkce_pair();
        assert_eq!(v.len(), 43);
        assert_eq!(c.len(), 43);
        assert_ne!(v, c);
    }

    #[test]
    fn pasted_redirects_give_the_code() {
        assert_eq!(
            code_from_paste("http://127.0.0.1/cb?state=s1&code=abc", "s1").unwrap(),
            "abc"
        );
        assert_eq!(code_from_paste(" abc \n", "s1").unwrap(), "abc");
        assert!(code_from_paste("http://x/cb?state=other&code=abc", "s1").is_err());
        assert!(code_from_paste("http://x/cb?error=access_denied&state=s1", "s1").is_err());
    }

    #[test]
    fn token_files_are_private_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-token.json");
        let t = TokenSet {
            access_token: "AT-secret".into(),
            refresh_token: Some("RT-secret".into()),
            expires_at: Some(5),
        };
        write_token_file(&p, &t).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_token_file(&p).unwrap().access_token, "AT-secret");
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    fn tokens(at: &str) -> TokenSet {
        TokenSet {
            access_token: at.into(),
            refresh_token: Some("RT".into()),
            expires_at: None,
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_readable_temp_file_does_not_make_the_token_file_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-token.json");
        // What an older version could leave behind: x-token.tmp, mode 0644.
        let stale = dir.path().join("x-token.tmp");
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        // And an existing token file that is too open.
        std::fs::write(&p, "{}").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_token_file(&p, &tokens("AT-1")).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(read_token_file(&p).unwrap().access_token, "AT-1");
        assert_eq!(
            std::fs::read_to_string(&stale).unwrap(),
            "old",
            "never opened"
        );
        // Nothing but the stale file and the token file: no temp file left.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["x-token.json", "x-token.tmp"]);
    }

    #[cfg(unix)]
    #[test]
    fn planted_symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-token.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // At the old fixed temp name: the writer no longer uses it.
        std::os::unix::fs::symlink(&victim, dir.path().join("x-token.tmp")).unwrap();
        write_token_file(&p, &tokens("AT-2")).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(mode(&p), 0o600);
        // At a name the writer would pick: the exclusive create refuses
        // it, whether the link points at a file or nowhere.
        let planted = dir.path().join(".x-token.json.0123456789abcdef.tmp");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let e = create_private(&planted).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        let dangling = dir.path().join(".x-token.json.fedcba9876543210.tmp");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let e = create_private(&dangling).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        let p = dir.path().join("x-token.json");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("keep"), "").unwrap();
        let e = write_token_file(&p, &tokens("AT-3")).unwrap_err();
        assert!(e.to_string().contains("helpdesk x login"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the directory itself");
    }
}
