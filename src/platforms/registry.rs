//! Builds the connectors the configuration asks for: one per platform
//! section, with its secrets from the environment and its way of
//! listening (X's webhook, where configured).
//!
//! What a connector needs from the layers above comes in as a parameter,
//! so this stays below storage and runtime: a login several instances
//! share (`[x] token_store = "database"`) is kept by storage, and the
//! caller hands over how to open it.

use std::sync::Arc;

use crate::domain::clock::{Clock, Millis};
use crate::domain::secret::{MissingSecret, Secret};
use crate::platforms::Connector;
use crate::platforms::bluesky::BlueskyClient;
use crate::platforms::bluesky::config::BlueskyConfig;
use crate::platforms::bluesky::session::{SessionHome, Sessions};
use crate::platforms::mastodon::MastodonClient;
use crate::platforms::mastodon::config::MastodonConfig;
use crate::platforms::x::XClient;
use crate::platforms::x::auth::{
    AuthError, Credentials, Exchange, Refreshed, SharedLogin, TokenSet,
};
use crate::platforms::x::config::{TokenStore, XConfig};
use crate::platforms::x::webhook::WithWebhook;

/// A platform's own posting limit, where it has one the sender holds
/// beside `[limits] global` (the connector's `posting_budget`), for
/// what previews the sending without a connector (`rules replay`).
pub fn own_posting_budget(
    platform: crate::domain::Platform,
) -> Option<crate::domain::limits::Budget> {
    use crate::domain::Platform;
    match platform {
        Platform::X => None,
        Platform::Mastodon => Some(crate::platforms::mastodon::POSTING_BUDGET),
        Platform::Bluesky => Some(crate::platforms::bluesky::POSTING_BUDGET),
    }
}

/// The platform sections of the configuration; `None`: not served.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sections<'a> {
    /// `[x]`.
    pub x: Option<&'a XConfig>,
    /// `[mastodon]`.
    pub mastodon: Option<&'a MastodonConfig>,
    /// `[bluesky]`.
    pub bluesky: Option<&'a BlueskyConfig>,
}

/// Opens the X login every instance shares, for `token_store =
/// "database"`; called only then. Storage implements it
/// (`storage::oauth_tokens::SharedTokens`).
pub type SharedLoginFor<'a> =
    dyn Fn(&XConfig) -> Result<Arc<dyn SharedLogin>, AuthError> + Sync + 'a;

/// Opens where the Bluesky session is kept, given the section and its app
/// password (storage keeps it in the database, sealed under a key derived
/// from the password: `storage::oauth_tokens::bluesky`).
pub type SessionHomeFor<'a> = dyn Fn(&BlueskyConfig, &Secret) -> Arc<dyn SessionHome> + Sync + 'a;

/// What the connectors need from the layers above: where logins live.
pub struct Homes<'a> {
    /// X's login shared through the database (`token_store = "database"`).
    pub x_login: &'a SharedLoginFor<'a>,
    /// Bluesky's session.
    pub bluesky_session: &'a SessionHomeFor<'a>,
}

/// Why the connectors cannot be built. Each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A secret the configuration names is not in the environment.
    #[error(transparent)]
    MissingSecret(#[from] MissingSecret),
    /// X's OAuth 2.0 login cannot be read.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The configuration serves no platform.
    #[error(
        "no platform is configured: add an [x], a [mastodon] or a [bluesky] section to the configuration (see the README's \"Connect …\" sections)"
    )]
    NoPlatform,
}

/// The connectors for `sections`, in a fixed order (X, Mastodon, Bluesky).
pub async fn connectors(
    sections: Sections<'_>,
    clock: &Clock,
    homes: &Homes<'_>,
) -> Result<Vec<Arc<dyn Connector>>, RegistryError> {
    let mut out: Vec<Arc<dyn Connector>> = Vec::new();
    if let Some(x) = sections.x {
        out.push(x_connector(x, clock, homes.x_login).await?);
    }
    if let Some(m) = sections.mastodon {
        let token = Secret::from_env(&m.access_token_env)?;
        out.push(Arc::new(MastodonClient::new(m, token, clock.clone())));
    }
    if let Some(b) = sections.bluesky {
        let password = Secret::from_env(&b.app_password_env)?;
        let sessions = Sessions::new((homes.bluesky_session)(b, &password), clock.clone());
        out.push(Arc::new(BlueskyClient::new(
            b,
            password,
            sessions,
            clock.clone(),
        )));
    }
    if out.is_empty() {
        return Err(RegistryError::NoPlatform);
    }
    Ok(out)
}

/// X's client, listening through the Account Activity webhook where
/// `[x.webhook]` is set.
async fn x_connector(
    x: &XConfig,
    clock: &Clock,
    shared_login: &SharedLoginFor<'_>,
) -> Result<Arc<dyn Connector>, RegistryError> {
    let credentials = x_credentials(x, shared_login).await?;
    let client: Arc<dyn Connector> =
        Arc::new(XClient::with_credentials(x, credentials, clock.clone()));
    Ok(match &x.webhook {
        Some(w) => {
            let secret = Secret::from_env(&w.consumer_secret_env)?;
            Arc::new(WithWebhook::new(client, w, &secret))
        }
        None => client,
    })
}

/// A static token, tokens that refresh themselves in a file, or a login
/// shared through the database, as `[x]` says.
async fn x_credentials(
    x: &XConfig,
    shared_login: &SharedLoginFor<'_>,
) -> Result<Credentials, RegistryError> {
    let token_url = format!("{}/2/oauth2/token", x.base_url.trim_end_matches('/'));
    let client = || -> Result<(String, Option<Secret>), MissingSecret> {
        Ok((
            Secret::from_env(&x.client_id_env)?.expose().to_owned(),
            x.client_secret_env
                .as_deref()
                .map(Secret::from_env)
                .transpose()?,
        ))
    };
    Ok(match (&x.token_store, &x.token_file) {
        (TokenStore::Database, _) => {
            let login = Shared(shared_login(x)?);
            let (id, secret) = client()?;
            Credentials::shared(login, id, secret, token_url).await?
        }
        (TokenStore::File, Some(file)) => {
            let (id, secret) = client()?;
            Credentials::refreshing(file.clone(), id, secret, token_url)?
        }
        (TokenStore::File, None) => Credentials::Static(Secret::from_env(&x.access_token_env)?),
    })
}

/// A shared login behind a pointer, as `Credentials::shared` takes a value.
struct Shared(Arc<dyn SharedLogin>);

#[async_trait::async_trait]
impl SharedLogin for Shared {
    async fn load(&self) -> Result<TokenSet, AuthError> {
        self.0.load().await
    }

    async fn refresh<'a>(
        &'a self,
        used: &'a str,
        force: bool,
        fresh_after: Millis,
        now: Millis,
        call: Exchange<'a>,
    ) -> Result<Refreshed, AuthError> {
        self.0.refresh(used, force, fresh_after, now, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_shared_login(_: &XConfig) -> Result<Arc<dyn SharedLogin>, AuthError> {
        panic!("asked for a shared login although the tokens are not in the database")
    }

    fn memory_session(_: &BlueskyConfig, _: &Secret) -> Arc<dyn SessionHome> {
        Arc::new(crate::platforms::bluesky::session::MemoryHome::default())
    }

    const HOMES: Homes<'static> = Homes {
        x_login: &no_shared_login,
        bluesky_session: &memory_session,
    };

    #[tokio::test]
    async fn no_section_is_refused_with_what_to_add() {
        let e = connectors(Sections::default(), &Clock::new(), &HOMES)
            .await
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .contains("add an [x], a [mastodon] or a [bluesky] section"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn each_section_gives_its_connector_and_a_webhook_its_listener() {
        use crate::platforms::Listening;
        use crate::platforms::x::config::WebhookConfig;
        // PATH stands in for every secret: setting variables would race
        // the other tests reading theirs, and nothing here calls out.
        let mut x = XConfig {
            access_token_env: "PATH".into(),
            ..XConfig::default()
        };
        let m = MastodonConfig {
            access_token_env: "PATH".into(),
            streaming: false,
            ..MastodonConfig::default()
        };
        let b = BlueskyConfig {
            identifier: Some("acme.bsky.social".to_owned().try_into().unwrap()),
            app_password_env: "PATH".into(),
            ..BlueskyConfig::default()
        };
        let both = Sections {
            x: Some(&x),
            mastodon: Some(&m),
            bluesky: Some(&b),
        };
        let c = connectors(both, &Clock::new(), &HOMES).await.unwrap();
        let names: Vec<_> = c.iter().map(|c| c.platform().as_str()).collect();
        assert_eq!(names, ["x", "mastodon", "bluesky"]);
        assert!(c[0].listening().is_none(), "X without a webhook only polls");
        x.webhook = Some(WebhookConfig {
            listen: "127.0.0.1:0".into(),
            path: "/webhooks/x".into(),
            consumer_secret_env: "PATH".into(),
        });
        let only_x = Sections {
            x: Some(&x),
            mastodon: None,
            bluesky: None,
        };
        let c = connectors(only_x, &Clock::new(), &HOMES).await.unwrap();
        assert!(matches!(c[0].listening(), Some(Listening::Endpoint(_))));
    }

    #[tokio::test]
    async fn a_missing_secret_names_its_variable() {
        let x = XConfig {
            access_token_env: "HD_REGISTRY_TEST_UNSET".into(),
            ..XConfig::default()
        };
        let only_x = Sections {
            x: Some(&x),
            mastodon: None,
            bluesky: None,
        };
        let e = connectors(only_x, &Clock::new(), &HOMES)
            .await
            .err()
            .expect("refused");
        assert!(e.to_string().contains("HD_REGISTRY_TEST_UNSET"), "{e}");
    }
}
