//! HTTP Basic authentication (`Authorization: Basic base64(username:password)`), as Prism Central's
//! v3 API takes it. The password is read from the config's `password` reference on the first call
//! (never while building), so a config whose secret does not resolve fails its own calls and
//! nothing else. Basic credentials do not expire, so there is no timed refresh: after a 401 the
//! password is read again from its secret once, and the request is sent again only when it changed
//! (rotated); otherwise the refusal is [`crate::providers::ProviderError::Unauthenticated`].

use base64::Engine as _;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

use super::Error;
use crate::config::SecretRef;
use crate::http::Redactor;
use crate::secrets::{Secrets, resolve_nonempty};

/// Where the password comes from.
pub(crate) struct Source {
    pub(crate) secrets: Arc<dyn Secrets>,
    pub(crate) reference: SecretRef,
    pub(crate) username: String,
}

impl std::fmt::Debug for Source {
    // Names the reference only: the secrets port may hold values (a test's static map).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("username", &self.username).field("reference", &self.reference).finish()
    }
}

/// The header and a redactor that knows the password, once resolved.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) header: HeaderValue,
    pub(crate) redactor: Redactor,
}

/// The credentials, resolved on first use and kept; re-read from the secret after a 401.
#[derive(Debug)]
pub(crate) struct Credential {
    source: Source,
    auth: tokio::sync::Mutex<Option<Arc<Auth>>>,
}

/// The `Authorization` value of `username` and `password`.
pub(crate) fn basic(username: &str, password: &str) -> SecretString {
    let raw = format!("{username}:{password}");
    SecretString::from(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())))
}

impl Credential {
    pub(crate) fn new(source: Source) -> Self {
        Credential { source, auth: tokio::sync::Mutex::new(None) }
    }

    async fn resolve(&self) -> Result<Auth, Error> {
        let s = &self.source;
        let password = resolve_nonempty(s.secrets.as_ref(), &s.reference, "password", "secret", false)
            .await
            .map_err(|message| Error::Credential { message })?;
        let value = basic(&s.username, password.expose_secret());
        let mut header = HeaderValue::from_str(value.expose_secret()).map_err(|_| Error::Credential {
            message: "password: the credentials hold characters not allowed in an HTTP header".into(),
        })?;
        header.set_sensitive(true);
        Ok(Auth { header, redactor: Redactor::new().with_secret(&password).with_secret(&value) })
    }

    /// The header and redactor, resolving the password on the first call (a failed resolution is
    /// retried by the next call).
    pub(crate) async fn get(&self) -> Result<Arc<Auth>, Error> {
        let mut g = self.auth.lock().await;
        if let Some(a) = &*g {
            return Ok(a.clone());
        }
        let a = Arc::new(self.resolve().await?);
        *g = Some(a.clone());
        Ok(a)
    }

    /// After the API refused `used` (401): the password read again from its secret. `Some` when the
    /// credentials differ (rotated; another call may have refreshed them already), `None` when they
    /// are the same (a retry could not help).
    pub(crate) async fn refresh(&self, used: &Arc<Auth>) -> Result<Option<Arc<Auth>>, Error> {
        let mut g = self.auth.lock().await;
        if let Some(cur) = &*g
            && !Arc::ptr_eq(cur, used)
        {
            return Ok((cur.header != used.header).then(|| cur.clone()));
        }
        let fresh = self.resolve().await?;
        if fresh.header == used.header {
            return Ok(None);
        }
        let a = Arc::new(fresh);
        *g = Some(a.clone());
        Ok(Some(a))
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
