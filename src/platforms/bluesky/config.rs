//! `[bluesky]` in `helpdesk.toml`: the Bluesky account, beside the connector that reads it.

use serde::{Deserialize, Serialize};

/// `[bluesky]`: a Bluesky (AT Protocol) account, logged in with an app
/// password, as Bluesky advises for bots.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlueskyConfig {
    /// The account's PDS (its home server): `https://bsky.social` for
    /// accounts made on bsky.app.
    pub service: String,
    /// The account's handle (`acme.bsky.social`) or DID (`did:plc:…`);
    /// required.
    pub identifier: Option<Identifier>,
    /// The environment variable holding an app password with access to
    /// direct messages (Settings → Privacy and security → App passwords).
    pub app_password_env: String,
    /// Read and answer direct messages (the app password must allow them).
    pub dms: bool,
    /// The `atproto-proxy` target of the chat service, which the PDS
    /// forwards `chat.bsky.*` calls to.
    pub chat_proxy: String,
    /// The languages replies are written in (BCP 47), put in each post's
    /// `langs` so that feeds and translation know them.
    pub langs: Vec<String>,
    /// The shortest pause between two polls of one stream.
    pub min_poll_interval_ms: u64,
    /// The pause when the server sends no rate-limit headers.
    pub poll_interval_ms: u64,
}

impl Default for BlueskyConfig {
    fn default() -> Self {
        BlueskyConfig {
            service: "https://bsky.social".into(),
            identifier: None,
            app_password_env: "HELPDESK_BLUESKY_APP_PASSWORD".into(),
            dms: true,
            chat_proxy: "did:web:api.bsky.chat#bsky_chat".into(),
            langs: vec!["en".into()],
            min_poll_interval_ms: 1000,
            poll_interval_ms: 15_000,
        }
    }
}

/// A handle (`acme.bsky.social`) or a DID (`did:plc:…`, `did:web:…`): what
/// `createSession` takes as `identifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Identifier(String);

impl Identifier {
    /// The identifier as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Identifier> for String {
    fn from(i: Identifier) -> String {
        i.0
    }
}

impl TryFrom<String> for Identifier {
    type Error = String;

    fn try_from(s: String) -> Result<Identifier, String> {
        let s = s.trim().trim_start_matches('@').to_owned();
        let is_did = s
            .strip_prefix("did:")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(method, id)| {
                !method.is_empty()
                    && method.bytes().all(|b| b.is_ascii_lowercase())
                    && !id.is_empty()
                    && !id.contains(char::is_whitespace)
            });
        let labels: Vec<&str> = s.split('.').collect();
        let is_handle = labels.len() >= 2
            && s.len() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
            && labels
                .last()
                .is_some_and(|t| t.as_bytes()[0].is_ascii_alphabetic());
        if is_did || is_handle {
            Ok(Identifier(s))
        } else {
            Err(format!(
                "`{s}` is neither a handle (such as acme.bsky.social) nor a DID (such as did:plc:ewvi7nxzyoun6zhxrhs64oiz): write the account's handle as shown on its profile"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_dids_are_identifiers() {
        for ok in [
            "acme.bsky.social",
            "@Acme.example.com",
            "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
            "did:web:support.acme.com",
        ] {
            assert!(Identifier::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "acme",
            "acme .bsky.social",
            "did:plc:",
            "a.-b.com",
            "acme.bsky.1",
        ] {
            let e = Identifier::try_from(bad.to_owned()).unwrap_err();
            assert!(e.contains("handle"), "{bad}: {e}");
        }
    }
}
