//! Secrets Manager references (`secretsmanager:<name-or-arn>[#json-key]`) for the Lambda deployment.
//!
//! One `GetSecretValue` per secret per cache period: a cold start reads a secret once, and a rotated
//! secret is picked up within the TTL. `env:` and `file:` references go to [`LocalSecrets`].

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{LocalSecrets, SecretError, Secrets};
use crate::config::SecretRef;

/// A sensible cache period: long enough that an evaluation every minute reads each secret rarely,
/// short enough that a rotation is noticed soon.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Resolves Secrets Manager references through the AWS SDK (and `env:` / `file:` locally), caching
/// each secret's value for a short time.
pub struct AwsSecrets {
    client: Client,
    ttl: Duration,
    // Keyed by secret id (name or ARN); the whole value, so every JSON key of it shares one read.
    cache: Mutex<HashMap<String, (Instant, SecretString)>>,
    local: LocalSecrets,
}

impl std::fmt::Debug for AwsSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the cache: it holds values.
        f.debug_struct("AwsSecrets").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl AwsSecrets {
    /// A resolver that keeps each secret for `ttl` (zero: read every time).
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self { client, ttl, cache: Mutex::new(HashMap::new()), local: LocalSecrets }
    }

    fn cached(&self, id: &str) -> Option<SecretString> {
        let cache = self.cache.lock().ok()?;
        cache.get(id).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    async fn fetch(&self, id: &str, r: &SecretRef) -> Result<SecretString, SecretError> {
        if let Some(v) = self.cached(id) {
            return Ok(v);
        }
        let out = self.client.get_secret_value().secret_id(id).send().await.map_err(|e| map_error(r, &e))?;
        let Some(text) = out.secret_string else {
            return Err(SecretError::Unreadable {
                reference: r.to_string(),
                cause: "it is a binary secret; only text secrets (SecretString) are supported".into(),
            });
        };
        let value = SecretString::from(text);
        if !self.ttl.is_zero()
            && let Ok(mut cache) = self.cache.lock()
        {
            cache.insert(id.to_string(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }
}

/// What a failed `GetSecretValue` means for the caller. Names the reference, never a value.
fn map_error(r: &SecretRef, e: &SdkError<GetSecretValueError>) -> SecretError {
    let reference = r.to_string();
    if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) {
        return SecretError::NotFound { reference, cause: "no such secret in Secrets Manager".into() };
    }
    let cause = match e.code() {
        Some("AccessDeniedException") => "access denied (the function's role may not read it)".to_string(),
        Some("DecryptionFailure") => "its KMS key could not decrypt it".to_string(),
        Some("InvalidRequestException") => "it is scheduled for deletion or has no current version".to_string(),
        _ => format!("Secrets Manager GetSecretValue failed: {}", crate::aws_error::describe(e)),
    };
    SecretError::Unreadable { reference, cause }
}

/// The value of `key` in a secret whose value is a JSON object. Errors name the key, never the value.
fn json_key(r: &SecretRef, value: &SecretString, key: &str) -> Result<SecretString, SecretError> {
    let unreadable = |cause: String| SecretError::Unreadable { reference: r.to_string(), cause };
    // The parse error is dropped: serde_json's messages are positions only today, but a value is no
    // place to take chances with.
    let doc: serde_json::Value = serde_json::from_str(value.expose_secret())
        .map_err(|_| unreadable(format!("the secret is not JSON, so it has no key {key:?}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| unreadable(format!("the secret is not a JSON object, so it has no key {key:?}")))?;
    match obj.get(key) {
        None => Err(unreadable(format!("the secret's JSON has no key {key:?}"))),
        Some(serde_json::Value::String(s)) => Ok(SecretString::from(s.clone())),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Ok(SecretString::from(v.to_string())),
        Some(_) => Err(unreadable(format!("key {key:?} of the secret's JSON is not a string"))),
    }
}

#[async_trait]
impl Secrets for AwsSecrets {
    async fn resolve(&self, r: &SecretRef) -> Result<SecretString, SecretError> {
        match r {
            SecretRef::SecretsManager { id, json_key: key } => {
                let value = self.fetch(id, r).await?;
                match key {
                    None => Ok(super::remembered(value)),
                    Some(k) => json_key(r, &value, k).map(super::remembered),
                }
            }
            SecretRef::Env(_) | SecretRef::File(_) => self.local.resolve(r).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::error::ErrorMetadata;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn service_error(code: &str) -> SdkError<GetSecretValueError> {
        let err = GetSecretValueError::generic(
            ErrorMetadata::builder().code(code).message("User: x is not authorized").build(),
        );
        SdkError::service_error(err, HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::empty()))
    }

    #[test]
    fn access_denied_is_unreadable_and_names_the_reference() {
        let r: SecretRef = "secretsmanager:prod/kasm#api_key".parse().unwrap();
        match map_error(&r, &service_error("AccessDeniedException")) {
            SecretError::Unreadable { reference, cause } => {
                assert_eq!(reference, "secretsmanager:prod/kasm#api_key");
                assert!(cause.contains("access denied"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
        let e = map_error(&r, &service_error("ThrottlingException"));
        assert!(e.to_string().contains("ThrottlingException"), "{e}");
    }

    #[test]
    fn json_keys_are_selected_without_showing_the_value() {
        let r: SecretRef = "secretsmanager:s#k".parse().unwrap();
        let v = SecretString::from(r#"{"k":"v4lue-S3CRET","n":42,"o":{"x":1}}"#.to_string());
        assert_eq!(json_key(&r, &v, "k").unwrap().expose_secret(), "v4lue-S3CRET");
        assert_eq!(json_key(&r, &v, "n").unwrap().expose_secret(), "42");
        for (value, key) in [(&v, "missing"), (&v, "o"), (&SecretString::from("plain-S3CRET".to_string()), "k")] {
            let e = json_key(&r, value, key).expect_err("no such string key");
            let text = format!("{e} {e:?}");
            assert!(text.contains(key) && text.contains("secretsmanager:s#k"), "{text}");
            assert!(!text.contains("S3CRET"), "an error shows the value: {text}");
        }
    }
}
