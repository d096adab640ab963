//! Keystone v3 authentication (`POST /v3/auth/tokens`, Identity API v3 "Password authentication
//! with scoped authorization" and "Authenticating with an Application Credential"): the request body
//! of the configured method, the token from the `X-Subject-Token` header and its `expires_at` from the
//! body, cached in a [`TokenCache`] until `expires_at` minus a margin. The secret (application
//! credential secret or password) is read from its reference on the first call, never while
//! building, and kept out of every message through the [`Redactor`].
//!
//! - Password: `identity.methods = ["password"]`, `password.user = {name, domain: {name}, password}`,
//!   scoped to `project = {name, domain: {name}}`.
//! - Application credential: `identity.methods = ["application_credential"]`,
//!   `application_credential = {id, secret}` and no scope (an application credential is bound to its
//!   project; Keystone scopes the token itself).
//!
//! After a 401 from a service the client forgets the token ([`Credential::invalidate`]) and sends
//! the request once more with a fresh one; a second 401 is the answer.

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Error;
use crate::config::SecretRef;
use crate::config::providers::{OpenstackAuthMethod, OpenstackConfig};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig, Token, TokenCache};
use crate::secrets::{Secrets, resolve_nonempty};

/// How long before its `expires_at` a token is replaced (Keystone's default token lifetime is an
/// hour).
pub(crate) const DEFAULT_MARGIN: Duration = Duration::from_secs(120);

/// Who we authenticate as (no secret values: those are resolved on use).
#[derive(Debug, Clone)]
pub(crate) enum Method3 {
    /// `application_credential` with this id; the secret from `secret`.
    ApplicationCredential { id: String, secret: SecretRef },
    /// `password` of `user` in `user_domain`; the password from `password`; scoped to the project.
    Password { user: String, user_domain: String, password: SecretRef, project: String, project_domain: String },
}

impl Method3 {
    /// The method of `c` (the config's checks made sure its fields are there; a missing one is a
    /// config error naming it).
    pub(crate) fn of(c: &OpenstackConfig) -> Result<Method3, Error> {
        let need = |v: &Option<String>, field: &str| {
            v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| Error::Config {
                message: format!("{field} is required for {} authentication", method_name(c.authentication_method)),
            })
        };
        let need_ref = |v: &Option<SecretRef>, field: &str| {
            v.clone().ok_or_else(|| Error::Config {
                message: format!("{field} is required for {} authentication", method_name(c.authentication_method)),
            })
        };
        Ok(match c.authentication_method {
            OpenstackAuthMethod::ApplicationCredential => Method3::ApplicationCredential {
                id: need(&c.application_credential_id, "application_credential_id")?,
                secret: need_ref(&c.application_credential_secret, "application_credential_secret")?,
            },
            OpenstackAuthMethod::Password => Method3::Password {
                user: need(&c.username, "username")?,
                user_domain: need(&c.user_domain_name, "user_domain_name")?,
                password: need_ref(&c.password, "password")?,
                project: c.project_name.clone(),
                project_domain: need(&c.project_domain_name, "project_domain_name")?,
            },
        })
    }

    fn field(&self) -> &'static str {
        match self {
            Method3::ApplicationCredential { .. } => "application_credential_secret",
            Method3::Password { .. } => "password",
        }
    }

    fn reference(&self) -> &SecretRef {
        match self {
            Method3::ApplicationCredential { secret, .. } => secret,
            Method3::Password { password, .. } => password,
        }
    }

    fn describe(&self) -> String {
        match self {
            Method3::ApplicationCredential { id, .. } => format!("application credential {id}"),
            Method3::Password { user, user_domain, project, project_domain, .. } => {
                format!("user {user} (domain {user_domain}) for project {project} (domain {project_domain})")
            }
        }
    }

    /// The `POST /v3/auth/tokens` body.
    fn body(&self, secret: &SecretString) -> serde_json::Value {
        match self {
            Method3::ApplicationCredential { id, .. } => serde_json::json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": id, "secret": secret.expose_secret()}
            }}}),
            Method3::Password { user, user_domain, project, project_domain, .. } => serde_json::json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": user, "domain": {"name": user_domain}, "password": secret.expose_secret()
                }}},
                "scope": {"project": {"name": project, "domain": {"name": project_domain}}}
            }}),
        }
    }
}

fn method_name(m: OpenstackAuthMethod) -> &'static str {
    match m {
        OpenstackAuthMethod::ApplicationCredential => "application_credential",
        OpenstackAuthMethod::Password => "password",
    }
}

/// What the token's body tells (the fields we read of `token`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TokenInfo {
    /// When Keystone stops accepting it (ISO 8601, e.g. `2015-08-27T10:49:46.000000Z`).
    #[serde(default)]
    pub expires_at: String,
    /// The project the token is scoped to.
    #[serde(default)]
    pub project: Option<Named>,
    /// The token's roles.
    #[serde(default)]
    pub roles: Vec<Named>,
    /// The service catalogue.
    #[serde(default)]
    pub catalog: Vec<CatalogEntry>,
}

/// `{id, name}` (projects, roles).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Named {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// One catalogue service.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CatalogEntry {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One catalogue endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CatalogEndpoint {
    #[serde(default)]
    pub interface: String,
    #[serde(default)]
    pub url: String,
}

impl TokenInfo {
    /// The public URL of the catalogue's service of `kind` (`network`, `compute`, ...).
    pub(crate) fn public_url(&self, kind: &str) -> Option<String> {
        self.catalog
            .iter()
            .find(|c| c.kind == kind)?
            .endpoints
            .iter()
            .find(|e| e.interface == "public")
            .map(|e| e.url.clone())
    }
}

/// The Keystone token, fetched on first use and kept until its expiry minus the margin.
#[derive(Debug)]
pub(crate) struct Credential {
    http: reqwest::Client,
    tokens_url: Url,
    method: Method3,
    secrets: Arc<dyn Secrets>,
    retry: RetryConfig,
    cache: TokenCache,
    /// The secret values seen so far (for redaction) and the last token's body.
    seen: Mutex<(Redactor, Option<TokenInfo>)>,
}

impl Credential {
    pub(crate) fn new(
        http: reqwest::Client,
        tokens_url: Url,
        method: Method3,
        secrets: Arc<dyn Secrets>,
        retry: RetryConfig,
        margin: Duration,
    ) -> Self {
        Credential {
            http,
            tokens_url,
            method,
            secrets,
            retry,
            cache: TokenCache::new(margin),
            seen: Mutex::new((Redactor::new(), None)),
        }
    }

    /// Another refresh margin (forgets any cached token).
    pub(crate) fn set_margin(&mut self, margin: Duration) {
        self.cache = TokenCache::new(margin);
    }

    /// A redactor knowing every secret and token seen so far.
    pub(crate) fn redactor(&self) -> Redactor {
        self.seen.lock().expect("credential state").0.clone()
    }

    /// What the last token's body said (project, roles, catalogue), once a token was fetched.
    pub(crate) fn info(&self) -> Option<TokenInfo> {
        self.seen.lock().expect("credential state").1.clone()
    }

    /// The token, fetched when none is cached or it expires within the margin.
    pub(crate) async fn token(&self) -> Result<SecretString, Error> {
        self.cache.get_or_fetch(|| self.fetch()).await
    }

    /// After a service answered 401 to `used`: whether sending again with a new token can help.
    /// The token is forgotten, a new one issued, and Keystone asked about `used` (`GET
    /// /v3/auth/tokens` with `X-Subject-Token`; a token's own subject may validate it): `true` when
    /// Keystone no longer accepts it (expired or revoked before its `expires_at`), `false` when it
    /// still does (the 401 is about something else, such as an access rule, and is the answer).
    pub(crate) async fn renew_after_401(&self, used: &SecretString) -> Result<bool, Error> {
        self.cache.invalidate().await;
        let fresh = self.token().await?;
        if fresh.expose_secret() == used.expose_secret() {
            return Ok(false);
        }
        let redactor = self.redactor();
        let req = self
            .http
            .request(Method::GET, self.tokens_url.clone())
            .header("X-Auth-Token", Self::header(&fresh)?)
            .header("X-Subject-Token", Self::header(used)?)
            // Keystone reports an application credential's token with access rules as not found
            // to a caller that does not say it understands access rules.
            .header("OpenStack-Identity-Access-Rules", "1")
            .build()
            .map_err(|e| Error::Http {
                what: "validate the refused token".into(),
                source: HttpError::from_reqwest(e, &redactor),
            })?;
        match crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &redactor).await {
            Ok(_) => Ok(false),
            // Keystone's answer for a subject token it no longer accepts (TokenNotFound); a 401
            // would be about the fresh token asking (e.g. access rules without identity).
            Err(HttpError::Status { status, .. }) if status.as_u16() == 404 => Ok(true),
            Err(e) => {
                tracing::debug!(error = %e, "could not ask Keystone about the refused token");
                Ok(false)
            }
        }
    }

    async fn fetch(&self) -> Result<Token, Error> {
        let field = self.method.field();
        let secret = resolve_nonempty(self.secrets.as_ref(), self.method.reference(), field, "secret", false)
            .await
            .map_err(|message| Error::Credential { message })?;
        let redactor = {
            let mut g = self.seen.lock().expect("credential state");
            g.0.add_secret(&secret);
            g.0.clone()
        };
        let what = format!("authenticate to Keystone as {}", self.method.describe());
        let body = serde_json::to_vec(&self.method.body(&secret)).unwrap_or_default();
        let req = self
            .http
            .request(Method::POST, self.tokens_url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| Error::Http { what: what.clone(), source: HttpError::from_reqwest(e, &redactor) })?;
        // Issuing a token creates nothing: safe to send again after a timeout.
        let resp = crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &redactor).await.map_err(
            |source| match source {
                HttpError::Status { status, .. } if status.as_u16() == 401 => Error::Credential {
                    message: format!(
                        "Keystone refused {} (HTTP 401): check {field} and the other credential fields",
                        self.method.describe()
                    ),
                },
                source => Error::Http { what: what.clone(), source },
            },
        )?;
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(|v| SecretString::from(v.to_string()))
            .ok_or_else(|| Error::Decode { what: what.clone(), message: "no X-Subject-Token header".into() })?;
        self.seen.lock().expect("credential state").0.add_secret(&token);
        let text = resp
            .text()
            .await
            .map_err(|e| Error::Http { what: what.clone(), source: HttpError::from_reqwest(e, &redactor) })?;
        #[derive(Deserialize)]
        struct Body {
            token: TokenInfo,
        }
        let info = serde_json::from_str::<Body>(&text)
            .map_err(|e| Error::Decode { what: what.clone(), message: format!("the token body: {e}") })?
            .token;
        let expires = chrono::DateTime::parse_from_rfc3339(&info.expires_at).map_err(|e| Error::Decode {
            what: what.clone(),
            message: format!("token.expires_at `{}`: {e}", info.expires_at),
        })?;
        let ttl = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tracing::debug!(ttl_secs = ttl.as_secs(), "Keystone issued a token");
        self.seen.lock().expect("credential state").1 = Some(info);
        Ok(Token::expiring_in(token, ttl))
    }

    /// The token as a header value (marked sensitive).
    pub(crate) fn header(token: &SecretString) -> Result<HeaderValue, Error> {
        let mut h = HeaderValue::from_str(token.expose_secret())
            .map_err(|_| Error::Credential { message: "Keystone's token is not a valid header value".into() })?;
        h.set_sensitive(true);
        Ok(h)
    }
}
