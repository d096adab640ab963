//! The personal access token: `Authorization: Bearer <token>`, read from the config's
//! `digital_ocean_token` reference on the first call (never while building), so a config whose
//! secret does not resolve fails its own calls and nothing else. DigitalOcean tokens do not expire
//! on a schedule we could learn from the API (the operator sets an expiry when creating one), so
//! there is nothing to refresh: a refused token is [`crate::providers::ProviderError::Unauthenticated`].

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::OnceCell;

use super::Error;
use crate::config::SecretRef;
use crate::http::Redactor;
use crate::secrets::Secrets;

/// Where the token comes from.
pub(crate) enum Source {
    /// The config's token reference, and the field name for messages.
    Secret { secrets: Arc<dyn Secrets>, reference: SecretRef, field: &'static str },
    /// Already resolved (the DNS backend resolves at build time).
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

/// The header and a redactor that knows the token, once resolved.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) header: HeaderValue,
    pub(crate) redactor: Redactor,
}

/// The token, resolved once and kept (a failed resolution is retried by the next call).
#[derive(Debug)]
pub(crate) struct Credential {
    source: Source,
    auth: OnceCell<Auth>,
}

impl Credential {
    pub(crate) fn new(source: Source) -> Self {
        Credential { source, auth: OnceCell::new() }
    }

    /// The header and redactor, resolving the token on the first call.
    pub(crate) async fn get(&self) -> Result<&Auth, Error> {
        self.auth
            .get_or_try_init(|| async {
                let token = match &self.source {
                    Source::Given(s) => s.clone(),
                    Source::Secret { secrets, reference, field } => secrets
                        .resolve(reference)
                        .await
                        .map_err(|e| Error::Credential { message: format!("{field}: {e}") })?,
                };
                let token = SecretString::from(token.expose_secret().trim().to_string());
                if token.expose_secret().is_empty() {
                    return Err(Error::Credential { message: "digital_ocean_token: the token is empty".into() });
                }
                let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
                let mut header = HeaderValue::from_str(value.expose_secret()).map_err(|_| Error::Credential {
                    message: "digital_ocean_token: the token holds characters not allowed in an HTTP header".into(),
                })?;
                header.set_sensitive(true);
                Ok(Auth { header, redactor: Redactor::new().with_secret(&token).with_secret(&value) })
            })
            .await
    }
}
