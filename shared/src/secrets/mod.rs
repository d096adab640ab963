//! Secrets: resolves [`SecretRef`]s. Values are [`SecretString`]s, never logged or put in errors.

#[cfg(feature = "dynamodb")]
pub mod aws;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::config::SecretRef;

/// Why a secret could not be had. Names the reference, never the value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret does not exist.
    #[error("secret {reference} not found: {cause}")]
    NotFound {
        /// The reference.
        reference: String,
        /// Why.
        cause: String,
    },
    /// The secret exists but could not be read or has no such JSON key.
    #[error("secret {reference} is unreadable: {cause}")]
    Unreadable {
        /// The reference.
        reference: String,
        /// Why.
        cause: String,
    },
    /// This resolver does not handle that kind of reference.
    #[error("secret {reference}: {cause}")]
    Unsupported {
        /// The reference.
        reference: String,
        /// Why.
        cause: String,
    },
}

/// The secrets port.
///
/// # Behavior
/// - Every value an implementation hands out is first given to [`crate::http::remember`], so the
///   process's exits (logs, CLI output, `last_error`) scrub it in any encoding.
#[async_trait]
pub trait Secrets: Send + Sync + std::fmt::Debug {
    /// The value `r` points to.
    async fn resolve(&self, r: &SecretRef) -> Result<SecretString, SecretError>;
}

/// Resolves the secret of config field `field` and refuses an empty one (after dropping surrounding
/// whitespace when `trim`, as a token pasted into a file often has): the message names the field and
/// what the secret is, never the value. Each provider wraps it in its own credential error.
pub async fn resolve_nonempty(
    secrets: &dyn Secrets,
    r: &SecretRef,
    field: &str,
    what: &str,
    trim: bool,
) -> Result<SecretString, String> {
    use secrecy::ExposeSecret;
    let s = secrets.resolve(r).await.map_err(|e| format!("{field}: {e}"))?;
    let s = if trim { SecretString::from(s.expose_secret().trim().to_string()) } else { s };
    if s.expose_secret().is_empty() {
        return Err(format!("{field}: the {what} is empty"));
    }
    Ok(s)
}

/// `value`, remembered process-wide (see [`crate::http::remember`]): what every resolver returns.
pub(crate) fn remembered(value: SecretString) -> SecretString {
    crate::http::remember(&value);
    value
}

/// Resolves `env:` and `file:` references (the local daemon; no AWS).
#[derive(Debug, Default, Clone)]
pub struct LocalSecrets;

#[async_trait]
impl Secrets for LocalSecrets {
    async fn resolve(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        match r {
            SecretRef::Env(name) => std::env::var(name).map(|v| remembered(SecretString::from(v))).map_err(|_| {
                SecretError::NotFound { reference: r.to_string(), cause: "the environment variable is not set".into() }
            }),
            SecretRef::File(path) => match tokio::fs::read_to_string(path).await {
                Ok(s) => Ok(remembered(SecretString::from(s.trim_end_matches(['\n', '\r']).to_string()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(SecretError::NotFound { reference: r.to_string(), cause: "no such file".into() })
                }
                Err(e) => Err(SecretError::Unreadable { reference: r.to_string(), cause: e.kind().to_string() }),
            },
            SecretRef::SecretsManager { .. } => Err(SecretError::Unsupported {
                reference: r.to_string(),
                cause: "Secrets Manager references need the AWS resolver (Lambda deployment)".into(),
            }),
        }
    }
}

/// A fixed map of references to values (tests and the simulator).
#[derive(Default)]
pub struct StaticSecrets(pub std::collections::HashMap<String, String>);

/// The references only: whatever holds the port (a provider, a context) may be printed.
impl std::fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_tuple("StaticSecrets").field(&keys).finish()
    }
}

#[async_trait]
impl Secrets for StaticSecrets {
    async fn resolve(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        self.0
            .get(&r.to_string())
            .map(|v| remembered(SecretString::from(v.clone())))
            .ok_or_else(|| SecretError::NotFound { reference: r.to_string(), cause: "not in the static map".into() })
    }
}
