//! The bearer token: `Authorization: Bearer <token>`, read from the config's token reference on the
//! first call (never while building). Kubernetes tokens given to us (a ServiceAccount token) carry no
//! expiry the API tells us, so there is no timed refresh: after a 401 the token is read again from its
//! secret once, and the request is sent again only when it changed (rotated).

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

use super::Error;
use crate::config::SecretRef;
use crate::http::Redactor;
use crate::secrets::{Secrets, resolve_nonempty};

/// Where the token comes from: the config's reference and the field name for messages.
pub(crate) struct Source {
    pub(crate) secrets: Arc<dyn Secrets>,
    pub(crate) reference: SecretRef,
    pub(crate) field: &'static str,
}

impl std::fmt::Debug for Source {
    // Names the reference only: the secrets port may hold values (a test's static map).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("reference", &self.reference).finish()
    }
}

/// The header and a redactor that knows the token, once resolved.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) header: HeaderValue,
    pub(crate) redactor: Redactor,
}

/// The token, resolved on first use and kept; re-read from its secret after a 401.
#[derive(Debug)]
pub(crate) struct Credential {
    source: Source,
    auth: tokio::sync::Mutex<Option<Arc<Auth>>>,
}

impl Credential {
    pub(crate) fn new(source: Source) -> Self {
        Credential { source, auth: tokio::sync::Mutex::new(None) }
    }

    async fn resolve(&self) -> Result<Auth, Error> {
        let Source { secrets, reference, field } = &self.source;
        let token = resolve_nonempty(secrets.as_ref(), reference, field, "token", true)
            .await
            .map_err(|message| Error::Credential { message })?;
        let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
        let mut header = HeaderValue::from_str(value.expose_secret()).map_err(|_| Error::Credential {
            message: format!("{field}: the token holds characters not allowed in an HTTP header"),
        })?;
        header.set_sensitive(true);
        Ok(Auth { header, redactor: Redactor::new().with_secret(&token).with_secret(&value) })
    }

    /// The header and redactor, resolving the token on the first call (a failed resolution is retried
    /// by the next call).
    pub(crate) async fn get(&self) -> Result<Arc<Auth>, Error> {
        let mut g = self.auth.lock().await;
        if let Some(a) = &*g {
            return Ok(a.clone());
        }
        let a = Arc::new(self.resolve().await?);
        *g = Some(a.clone());
        Ok(a)
    }

    /// After the API refused `used` (401): the token read again. `Some` when it differs (rotated;
    /// another call may have refreshed it already), `None` when the same (a retry could not help).
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
