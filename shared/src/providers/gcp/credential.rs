//! Service-account authentication: the config's `gcp_credentials` reference holds the service
//! account's JSON key file; an RS256-signed JWT assertion is exchanged at the file's `token_uri` for an
//! access token (the OAuth 2.0 JWT bearer grant, Google's "Using OAuth 2.0 for Server to Server
//! Applications"), sent as `Authorization: Bearer <token>` and cached until `expires_in` minus
//! [`REFRESH_MARGIN`] ([`crate::http::TokenCache`], single flight).
//!
//! - The assertion: header `{"alg":"RS256","typ":"JWT","kid":<private_key_id>}`, claims `iss` (the
//!   `client_email`), `scope` ([`SCOPE`]), `aud` (the `token_uri`), `iat` and `exp` (one hour later, the
//!   most Google accepts), signed with the key file's PKCS#8 `private_key` (RSASSA-PKCS1-v1_5 with
//!   SHA-256, the `rsa` crate).
//! - The token request: `POST <token_uri>` form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//!   and `assertion=<jwt>`; the answer `{access_token, expires_in, token_type}`.
//! - The key file is read on first use (never while building). After the API refuses a token (401)
//!   the cached token is dropped and the key file read again: the request is sent once more only when
//!   the file changed (a rotated key); otherwise the refusal stands (a fresh token from the same key
//!   would be refused the same way: the account is disabled or lacks the API).
//! - Neither the key, the assertion nor the token is ever logged or put in an error: errors name the
//!   field (`gcp_credentials`) and the JSON key that is wrong.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

use super::Error;
use crate::config::SecretRef;
use crate::http::retry::Idempotency;
use crate::http::{HttpError, Redactor, RetryConfig, Token, TokenCache};
use crate::secrets::Secrets;

/// The OAuth scope we ask for: Compute Engine and Cloud DNS both list it in their discovery documents.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The grant type of the JWT bearer flow (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A token is fetched anew this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long an assertion is valid (Google accepts at most one hour).
pub const ASSERTION_TTL: i64 = 3600;

/// The fields of a service-account key file we use.
#[derive(Clone, Deserialize)]
pub(crate) struct KeyFile {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub client_email: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    pub private_key: String,
    pub token_uri: String,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("client_email", &self.client_email).field("token_uri", &self.token_uri).finish()
    }
}

impl KeyFile {
    /// Parses a key file; the error names the JSON key that is missing or wrong, never a value.
    pub(crate) fn parse(json: &str) -> Result<KeyFile, String> {
        let k: KeyFile = serde_json::from_str(json.trim()).map_err(|e| {
            // serde's message names the missing field and position, not the text.
            format!("not a service-account JSON key file: {e}")
        })?;
        if let Some(t) = &k.kind
            && t != "service_account"
        {
            return Err(format!("`type` is `{t}`; a service-account key file (`service_account`) is needed"));
        }
        if k.client_email.trim().is_empty() {
            return Err("`client_email` is empty".into());
        }
        let uri = url::Url::parse(&k.token_uri).map_err(|_| "`token_uri` is not a URL".to_string())?;
        if !matches!(uri.scheme(), "http" | "https") {
            return Err("`token_uri` is not an http(s) URL".into());
        }
        Ok(k)
    }
}

/// The RS256 JWT assertion for `key`, issued at `now` (Unix seconds).
pub(crate) fn assertion(key: &KeyFile, scope: &str, now: i64) -> Result<SecretString, String> {
    let pk = rsa::RsaPrivateKey::from_pkcs8_pem(&key.private_key)
        .map_err(|_| "`private_key` is not a PKCS#8 PEM RSA private key".to_string())?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key.private_key_id.as_deref().filter(|k| !k.is_empty()) {
        header["kid"] = serde_json::Value::from(kid);
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": scope,
        "aud": key.token_uri,
        "iat": now,
        "exp": now + ASSERTION_TTL,
    });
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = SigningKey::<Sha256>::new(pk).sign(signing_input.as_bytes());
    Ok(SecretString::from(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))))
}

/// Where the key file comes from.
pub(crate) enum Source {
    /// The config's reference, and the field name for messages.
    Secret { secrets: Arc<dyn Secrets>, reference: SecretRef, field: &'static str },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Source::Secret { reference, .. } = self;
        f.debug_struct("Secret").field("reference", reference).finish()
    }
}

/// The header to send and a redactor that knows every secret of it.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) header: HeaderValue,
    pub(crate) redactor: Redactor,
    /// The key file text it was made from (compared after a 401).
    key_text: Arc<SecretString>,
}

/// The token source: the key file, the token endpoint, the cache.
#[derive(Debug)]
pub(crate) struct Credential {
    source: Source,
    http: reqwest::Client,
    retry: RetryConfig,
    cache: TokenCache,
    /// The key file text and its parse, once read.
    key: tokio::sync::Mutex<Option<(Arc<SecretString>, Arc<KeyFile>)>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Credential {
    pub(crate) fn new(source: Source, http: reqwest::Client, retry: RetryConfig) -> Self {
        Credential { source, http, retry, cache: TokenCache::new(REFRESH_MARGIN), key: tokio::sync::Mutex::new(None) }
    }

    fn field(&self) -> &'static str {
        let Source::Secret { field, .. } = &self.source;
        field
    }

    async fn read_key_text(&self) -> Result<SecretString, Error> {
        let Source::Secret { secrets, reference, field } = &self.source;
        secrets.resolve(reference).await.map_err(|e| Error::Credential { message: format!("{field}: {e}") })
    }

    /// The key file, read and parsed on first use (or again when `reread`).
    async fn key(&self, reread: bool) -> Result<(Arc<SecretString>, Arc<KeyFile>), Error> {
        let mut g = self.key.lock().await;
        if !reread && let Some(k) = &*g {
            return Ok(k.clone());
        }
        let text = self.read_key_text().await?;
        let parsed = KeyFile::parse(text.expose_secret())
            .map_err(|m| Error::Credential { message: format!("{}: {m}", self.field()) })?;
        let k = (Arc::new(text), Arc::new(parsed));
        *g = Some(k.clone());
        Ok(k)
    }

    /// Exchanges an assertion for an access token at the key file's `token_uri`.
    async fn fetch(&self, key: &KeyFile) -> Result<Token, Error> {
        let field = self.field();
        let jwt = assertion(key, SCOPE, chrono::Utc::now().timestamp())
            .map_err(|m| Error::Credential { message: format!("{field}: {m}") })?;
        let redactor = Redactor::new().with_secret(&jwt);
        let what = format!("get an access token from the token_uri of {field}");
        let http_err = |source| Error::Http { what: what.clone(), source };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_TYPE)
            .append_pair("assertion", jwt.expose_secret())
            .finish();
        let req = self
            .http
            .post(&key.token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .build()
            .map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        // Asking for a token twice is harmless.
        let resp =
            crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &redactor).await.map_err(|e| {
                match e {
                    // The token endpoint answers a refused grant with 400 `invalid_grant`: the key is refused.
                    HttpError::Status { status, body, .. } if status.as_u16() == 400 || status.as_u16() == 401 => {
                        Error::Credential {
                            message: format!(
                                "{field}: the token endpoint refused the key: {}",
                                crate::http::answer_message(&body)
                            ),
                        }
                    }
                    other => http_err(other),
                }
            })?;
        let text = resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, &redactor)))?;
        let a: TokenAnswer = serde_json::from_str(&text).map_err(|e| Error::Decode {
            what: what.clone(),
            message: format!("the token answer is not {{access_token, expires_in}}: {e}"),
        })?;
        if a.access_token.is_empty() {
            return Err(Error::Decode { what, message: "`access_token` is empty".into() });
        }
        // Google's tokens live an hour; an answer without `expires_in` is taken as that.
        let ttl = Duration::from_secs(a.expires_in.unwrap_or(3600));
        tracing::debug!(ttl_secs = ttl.as_secs(), "got a GCP access token");
        Ok(Token::expiring_in(SecretString::from(a.access_token), ttl))
    }

    /// The header for the next request (a cached token while it is fresh).
    pub(crate) async fn get(&self) -> Result<Auth, Error> {
        let (text, key) = self.key(false).await?;
        let token = self.cache.get_or_fetch(|| self.fetch(&key)).await?;
        let value = SecretString::from(format!("Bearer {}", token.expose_secret()));
        let mut header = HeaderValue::from_str(value.expose_secret()).map_err(|_| Error::Credential {
            message: format!("{}: the access token holds characters not allowed in a header", self.field()),
        })?;
        header.set_sensitive(true);
        Ok(Auth { header, redactor: Redactor::new().with_secret(&token).with_secret(&value), key_text: text })
    }

    /// Drops the cached token (the next call fetches a new one).
    pub(crate) async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    /// After the API refused `used` (401): the token is dropped and the key file read again. `Some`
    /// (a new header) when the key file changed, `None` when it did not (a retry could not help).
    pub(crate) async fn refresh(&self, used: &Auth) -> Result<Option<Auth>, Error> {
        self.cache.invalidate().await;
        let (text, _) = self.key(true).await?;
        if text.expose_secret() == used.key_text.expose_secret() {
            return Ok(None);
        }
        tracing::info!("the GCP key file changed; fetching a token with the new key");
        self.get().await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    /// A 2048-bit key made for these tests only (`openssl genpkey -algorithm RSA`).
    pub(crate) const TEST_KEY: &str = include_str!("fixtures/test-key.pem");

    fn key_file(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account", "project_id": "pensive-voice-547511", "private_key_id": "k-1",
            "private_key": TEST_KEY, "client_email": "kasm@pensive-voice-547511.iam.gserviceaccount.com",
            "client_id": "1", "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        })
        .to_string()
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_the_public_key_verifies() {
        let k = KeyFile::parse(&key_file("https://oauth2.example.test/token")).unwrap();
        let jwt = assertion(&k, SCOPE, 1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "k-1"}));
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iss": "kasm@pensive-voice-547511.iam.gserviceaccount.com", "scope": SCOPE,
                "aud": "https://oauth2.example.test/token", "iat": 1_700_000_000, "exp": 1_700_003_600})
        );
        let public = rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY).unwrap().to_public_key();
        let sig = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(public);
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(signed.as_bytes(), &sig).expect("the signature verifies");
        assert!(verifier.verify(format!("{signed}x").as_bytes(), &sig).is_err(), "a changed input does not");
    }

    #[test]
    fn key_files_are_checked_without_showing_the_key() {
        assert!(KeyFile::parse("{}").unwrap_err().contains("client_email"));
        let e = KeyFile::parse(&key_file("not a url")).unwrap_err();
        assert!(e.contains("token_uri"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(&key_file("https://t.test/token")).unwrap();
        v["type"] = "authorized_user".into();
        assert!(KeyFile::parse(&v.to_string()).unwrap_err().contains("authorized_user"));
        v["type"] = "service_account".into();
        v["private_key"] = "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n".into();
        let k = KeyFile::parse(&v.to_string()).unwrap();
        let e = assertion(&k, SCOPE, 0).unwrap_err();
        assert!(e.contains("private_key") && !e.contains("not-a-key"), "{e}");
        assert!(!format!("{k:?}").contains("PRIVATE KEY"));
    }
}
