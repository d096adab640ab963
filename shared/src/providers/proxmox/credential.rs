//! The API token: `Authorization: PVEAPIToken=<user>@<realm>!<token name>=<secret>`, the secret read
//! from the config's `token_value` reference on the first call (never while building), so a config
//! whose secret does not resolve fails its own calls and nothing else.

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::OnceCell;

use super::Error;
use crate::config::SecretRef;
use crate::http::Redactor;
use crate::secrets::Secrets;

/// Where the token's secret comes from.
pub(crate) enum Source {
    /// The config's `token_value` reference.
    Secret { secrets: Arc<dyn Secrets>, reference: SecretRef },
    /// Already known (tests).
    #[allow(dead_code)]
    Given(SecretString),
}

impl std::fmt::Debug for Source {
    // Names the reference only: the secrets port may hold values (a test's static map).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Secret { reference, .. } => f.debug_struct("Secret").field("reference", reference).finish(),
            Source::Given(_) => f.write_str("Given(..)"),
        }
    }
}

/// The header and a redactor that knows the secret, once resolved.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) header: HeaderValue,
    pub(crate) redactor: Redactor,
}

/// The token, resolved once and kept (a failed resolution is retried by the next call).
#[derive(Debug)]
pub(crate) struct Credential {
    user: String,
    token_name: String,
    source: Source,
    auth: OnceCell<Auth>,
}

impl Credential {
    pub(crate) fn new(user: &str, token_name: &str, source: Source) -> Self {
        Credential { user: user.to_string(), token_name: token_name.to_string(), source, auth: OnceCell::new() }
    }

    /// The header and redactor, resolving the secret on the first call.
    pub(crate) async fn get(&self) -> Result<&Auth, Error> {
        self.auth
            .get_or_try_init(|| async {
                let secret = match &self.source {
                    Source::Given(s) => s.clone(),
                    Source::Secret { secrets, reference } => secrets
                        .resolve(reference)
                        .await
                        .map_err(|e| Error::Credential { message: format!("token_value: {e}") })?,
                };
                let value = SecretString::from(format!(
                    "PVEAPIToken={}!{}={}",
                    self.user,
                    self.token_name,
                    secret.expose_secret()
                ));
                let mut header = HeaderValue::from_str(value.expose_secret()).map_err(|_| Error::Config {
                    message:
                        "the API token (user, token name or secret) holds characters not allowed in an HTTP header"
                            .into(),
                })?;
                header.set_sensitive(true);
                Ok(Auth { header, redactor: Redactor::new().with_secret(&secret).with_secret(&value) })
            })
            .await
    }

    /// The redactor knowing the secret once resolved (before that, no secret has been used).
    pub(crate) fn redactor(&self) -> Redactor {
        self.auth.get().map(|a| a.redactor.clone()).unwrap_or_default()
    }
}
