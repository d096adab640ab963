//! OAuth 2.0 client credentials against Microsoft Entra ID (the Microsoft identity platform's
//! `v2.0` token endpoint): `POST {authority}/{tenant}/oauth2/v2.0/token` with the form
//! `grant_type=client_credentials`, `client_id`, `client_secret` and `scope=<ARM resource>/.default`,
//! answered `{"token_type": "Bearer", "expires_in": <seconds>, "access_token": "..."}`; errors are
//! `{"error": "invalid_client", "error_description": "AADSTS...: ..."}`.
//!
//! The client secret is read from its reference on the first call (never while building), the token
//! is cached until [`REFRESH_BEFORE`] before it expires ([`crate::http::TokenCache`], one fetch at a
//! time), and neither is ever logged or put in an error (a [`Redactor`] knows both).

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Error;
use crate::config::SecretRef;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig, Token, TokenCache};
use crate::secrets::{Secrets, resolve_nonempty};

/// A token is fetched anew this long before it expires.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Where the client secret comes from.
pub(crate) enum Source {
    /// The config's reference, and the field name for messages.
    Secret { secrets: Arc<dyn Secrets>, reference: SecretRef, field: &'static str },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Secret { reference, .. } => f.debug_struct("Secret").field("reference", reference).finish(),
        }
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; a number in `v2.0`, a string in the older endpoint.
    expires_in: serde_json::Value,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Client credentials for one tenant and app, and the cached access token.
pub(crate) struct Credential {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    scope: String,
    source: Source,
    retry: RetryConfig,
    cache: TokenCache,
    /// Knows the client secret and the tokens handed out, for every error message.
    redactor: Mutex<Redactor>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Credentials for app `client_id` of `tenant` at `authority` (e.g. `https://login.microsoftonline.com`),
    /// asking for `scope` (e.g. `https://management.azure.com/.default`).
    pub(crate) fn new(
        http: reqwest::Client,
        authority: &Url,
        tenant: &str,
        client_id: &str,
        scope: String,
        source: Source,
        retry: RetryConfig,
    ) -> Self {
        let mut token_url = authority.clone();
        if let Ok(mut p) = token_url.path_segments_mut() {
            p.pop_if_empty().push(tenant.trim()).push("oauth2").push("v2.0").push("token");
        }
        Credential {
            http,
            token_url,
            client_id: client_id.trim().to_string(),
            scope,
            source,
            retry,
            cache: TokenCache::new(REFRESH_BEFORE),
            redactor: Mutex::new(Redactor::new()),
        }
    }

    /// The token endpoint.
    #[cfg(test)]
    pub(crate) fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// A redactor that knows every secret this credential has seen.
    pub(crate) fn redactor(&self) -> Redactor {
        self.redactor.lock().expect("redactor").clone()
    }

    fn learn(&self, s: &SecretString) {
        let mut r = self.redactor.lock().expect("redactor");
        *r = r.clone().with_secret(s);
    }

    /// A valid access token: the cached one, or a new one.
    pub(crate) async fn token(&self) -> Result<SecretString, Error> {
        self.cache.get_or_fetch(|| self.fetch()).await
    }

    /// Forgets the cached token (after ARM refused it).
    pub(crate) async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    async fn client_secret(&self) -> Result<SecretString, Error> {
        let Source::Secret { secrets, reference, field } = &self.source;
        resolve_nonempty(secrets.as_ref(), reference, field, "client secret", true)
            .await
            .map_err(|message| Error::Credential { message })
    }

    async fn fetch(&self) -> Result<Token, Error> {
        let secret = self.client_secret().await?;
        self.learn(&secret);
        let redactor = self.redactor();
        let what = "get an access token from Microsoft Entra ID";
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", secret.expose_secret())
            .append_pair("scope", &self.scope)
            .finish();
        let form = SecretString::from(form);
        let req = self
            .http
            .post(self.token_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.expose_secret().to_string())
            .build()
            .map_err(|e| Error::Http { what: what.into(), source: HttpError::from_reqwest(e, &redactor) })?;
        // Asking for a token twice makes nothing: safe to retry.
        let resp = match crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &redactor).await {
            Ok(r) => r,
            Err(HttpError::Status { status, body, .. }) if matches!(status.as_u16(), 400 | 401) => {
                let e: TokenError = serde_json::from_str(&body).unwrap_or(TokenError {
                    error: String::new(),
                    error_description: crate::http::answer_message(&body),
                });
                // The first line of the description is the AADSTS code and its text; the rest is trace ids.
                let said = e.error_description.lines().next().unwrap_or_default().to_string();
                return Err(Error::Credential {
                    message: format!(
                        "Microsoft Entra ID refused the client credentials of app {} at {}: {} {}",
                        self.client_id,
                        self.token_url.origin().ascii_serialization(),
                        e.error,
                        redactor.redact(&said)
                    )
                    .trim_end()
                    .to_string(),
                });
            }
            Err(source) => return Err(Error::Http { what: what.into(), source }),
        };
        let text = resp
            .text()
            .await
            .map_err(|e| Error::Http { what: what.into(), source: HttpError::from_reqwest(e, &redactor) })?;
        let t: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| Error::Decode { what: what.into(), message: format!("the token answer: {e}") })?;
        let secs = match &t.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| Error::Decode { what: what.into(), message: "the token answer has no expires_in".into() })?;
        let token = SecretString::from(t.access_token);
        if token.expose_secret().is_empty() {
            return Err(Error::Decode {
                what: what.into(),
                message: "the token answer's access_token is empty".into(),
            });
        }
        self.learn(&token);
        tracing::debug!(expires_in = secs, "fetched an ARM access token");
        Ok(Token::expiring_in(token, Duration::from_secs(secs)))
    }
}
