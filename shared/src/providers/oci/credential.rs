//! The API key: the config's `oci_private_key` reference is read on the first call (never while
//! building) and turned into a [`RequestSigner`] with the key id `<tenancy>/<user>/<fingerprint>`.
//! OCI keys do not expire; after a 401 the key is read again once, and the request signed again only
//! when the key changed (rotated); otherwise the refusal stands.

use secrecy::ExposeSecret;
use std::sync::Arc;

use super::Error;
use super::signer::RequestSigner;
use crate::config::SecretRef;
use crate::secrets::Secrets;

/// Where the key comes from, and the ids that make the key id.
pub(crate) struct Source {
    pub(crate) secrets: Arc<dyn Secrets>,
    pub(crate) reference: SecretRef,
    pub(crate) tenancy: String,
    pub(crate) user: String,
    pub(crate) fingerprint: String,
}

impl std::fmt::Debug for Source {
    // Names the reference only: the secrets port may hold values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("reference", &self.reference).finish_non_exhaustive()
    }
}

/// The signer, resolved on first use and kept; re-read after a 401.
#[derive(Debug)]
pub(crate) struct Credential {
    source: Source,
    signer: tokio::sync::Mutex<Option<(Arc<RequestSigner>, String)>>,
}

impl Credential {
    pub(crate) fn new(source: Source) -> Self {
        Credential { source, signer: tokio::sync::Mutex::new(None) }
    }

    async fn resolve(&self) -> Result<(Arc<RequestSigner>, String), Error> {
        let s = &self.source;
        let pem = s
            .secrets
            .resolve(&s.reference)
            .await
            .map_err(|e| Error::Credential { message: format!("oci_private_key: {e}") })?;
        let signer = RequestSigner::from_pem(&s.tenancy, &s.user, &s.fingerprint, pem.expose_secret())
            .map_err(|e| Error::Credential { message: format!("oci_private_key: {e}") })?;
        // A digest of the key tells a rotated key from the same one without keeping the PEM around.
        use sha2::Digest;
        let digest = format!("{:x}", sha2::Sha256::digest(pem.expose_secret().trim().as_bytes()));
        Ok((Arc::new(signer), digest))
    }

    /// The signer, reading the key on the first call (a failed read is retried by the next call).
    pub(crate) async fn get(&self) -> Result<Arc<RequestSigner>, Error> {
        let mut g = self.signer.lock().await;
        if let Some((s, _)) = &*g {
            return Ok(s.clone());
        }
        let (s, d) = self.resolve().await?;
        *g = Some((s.clone(), d));
        Ok(s)
    }

    /// After a 401 with `used`: the key read again. `Some` when it changed (or another call already
    /// replaced it), `None` when it is the same key (signing again could not help).
    pub(crate) async fn refresh(&self, used: &Arc<RequestSigner>) -> Result<Option<Arc<RequestSigner>>, Error> {
        let mut g = self.signer.lock().await;
        let old_digest = match &*g {
            Some((cur, _)) if !Arc::ptr_eq(cur, used) => return Ok(Some(cur.clone())),
            Some((_, d)) => Some(d.clone()),
            None => None,
        };
        let (s, d) = self.resolve().await?;
        if old_digest.as_deref() == Some(d.as_str()) {
            return Ok(None);
        }
        *g = Some((s.clone(), d));
        Ok(Some(s))
    }
}
