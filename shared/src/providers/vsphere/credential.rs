//! vCenter's session authentication, as the vSphere Automation API defines it
//! (`com.vmware.cis.session`): `POST /api/session` with HTTP Basic credentials answers the session
//! id as a JSON string; every later request sends it in the `vmware-api-session-id` header;
//! `DELETE /api/session` ends it.
//!
//! The password is read from `vsphere_vcenter_password` on the first call (never while building).
//! The session is cached without a clock (vCenter ends idle sessions on its own schedule, which the
//! API does not report): a request answered 401 forgets it, creates one new session (the password
//! read again, so a rotated one is picked up) and is sent once more; a second 401 is
//! [`crate::providers::ProviderError::Unauthenticated`]. The password and the session id are never
//! logged: both are in the [`Redactor`] of every request.

use base64::Engine as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

use super::Error;
use crate::config::SecretRef;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig};
use crate::secrets::{Secrets, resolve_nonempty};

/// The header carrying the session id.
pub const SESSION_HEADER: &str = "vmware-api-session-id";

/// Where the credentials come from.
pub(crate) struct Source {
    pub(crate) secrets: Arc<dyn Secrets>,
    pub(crate) username: String,
    pub(crate) password: SecretRef,
}

impl std::fmt::Debug for Source {
    // Names the reference only: the secrets port may hold values (a test's static map).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("username", &self.username).field("password", &self.password).finish()
    }
}

impl Source {
    /// `vsphere_vcenter_password`, read now (a rotated one is picked up by the next session); an
    /// empty secret is a credential error. Both the `/api` session and the vim25 login use it.
    pub(crate) async fn password(&self) -> Result<SecretString, Error> {
        resolve_nonempty(self.secrets.as_ref(), &self.password, "vsphere_vcenter_password", "secret", false)
            .await
            .map_err(|message| Error::Credential { message })
    }
}

/// One vCenter session: its id as a header value and a redactor knowing the password and the id.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) header: HeaderValue,
    pub(crate) redactor: Redactor,
}

/// The session, created on first use and kept until vCenter refuses it.
#[derive(Debug)]
pub(crate) struct Credential {
    source: Source,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

/// The `Authorization` value of `username` and `password` (RFC 7617).
pub(crate) fn basic(username: &str, password: &str) -> SecretString {
    let raw = format!("{username}:{password}");
    SecretString::from(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())))
}

impl Credential {
    pub(crate) fn new(source: Source) -> Self {
        Credential { source, session: tokio::sync::Mutex::new(None) }
    }

    /// `POST /api/session` with Basic credentials; the answer is the session id as a JSON string.
    async fn create(&self, http: &reqwest::Client, base: &Url, retry: &RetryConfig) -> Result<Session, Error> {
        let s = &self.source;
        let what = "create a vCenter session (POST /api/session)";
        let password = s.password().await?;
        let value = basic(&s.username, password.expose_secret());
        let redactor = Redactor::new().with_secret(&password).with_secret(&value);
        let mut auth = HeaderValue::from_str(value.expose_secret()).map_err(|_| Error::Credential {
            message: "vsphere_vcenter_password: the credentials hold characters not allowed in an HTTP header".into(),
        })?;
        auth.set_sensitive(true);
        let url = super::client::api_url(base, &["session"]);
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = http
            .request(Method::POST, url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .build()
            .map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        // Creating a session twice is harmless (the first is left to expire), so it may be retried.
        let resp = crate::http::send(http, req, Idempotency::Idempotent, retry, &redactor).await.map_err(http_err)?;
        let text = resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        let id: String = serde_json::from_str(&text).map_err(|_| Error::Decode {
            what: what.into(),
            message: "the answer is not a JSON string (the session id)".into(),
        })?;
        if id.is_empty() {
            return Err(Error::Decode { what: what.into(), message: "the session id is empty".into() });
        }
        let id = SecretString::from(id);
        let mut header = HeaderValue::from_str(id.expose_secret()).map_err(|_| Error::Decode {
            what: what.into(),
            message: "the session id holds characters not allowed in an HTTP header".into(),
        })?;
        header.set_sensitive(true);
        tracing::info!(user = %s.username, "vCenter session created");
        Ok(Session { header, redactor: redactor.with_secret(&id) })
    }

    /// The current session, creating one when there is none (a failed creation is tried again by the
    /// next call).
    pub(crate) async fn get(
        &self,
        http: &reqwest::Client,
        base: &Url,
        retry: &RetryConfig,
    ) -> Result<Arc<Session>, Error> {
        let mut g = self.session.lock().await;
        if let Some(s) = &*g {
            return Ok(s.clone());
        }
        let s = Arc::new(self.create(http, base, retry).await?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// After vCenter refused `used` (401): a new session, unless another call already made one.
    pub(crate) async fn renew(
        &self,
        used: &Arc<Session>,
        http: &reqwest::Client,
        base: &Url,
        retry: &RetryConfig,
    ) -> Result<Arc<Session>, Error> {
        let mut g = self.session.lock().await;
        if let Some(cur) = &*g
            && !Arc::ptr_eq(cur, used)
        {
            return Ok(cur.clone());
        }
        *g = None;
        let s = Arc::new(self.create(http, base, retry).await?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// Takes the session out (for `DELETE /api/session`); `None` when there is none.
    pub(crate) async fn take(&self) -> Option<Arc<Session>> {
        self.session.lock().await.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_rfc_7617() {
        // RFC 7617 section 2's example: Aladdin / open sesame.
        assert_eq!(basic("Aladdin", "open sesame").expose_secret(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }
}
