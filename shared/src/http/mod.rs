//! The HTTP client layer every REST provider and the Kasm client stand on (the object_store `client/`
//! model): one way to build a reqwest client ([`build_client`]), retries with decorrelated jitter that
//! honour `Retry-After` ([`retry`]), a single-flight cache for expiring credentials ([`token`]),
//! and redaction of secrets from anything that becomes an error message ([`mod@redact`]). It depends on
//! nothing above it: the one HTTP status → provider error mapping is `providers::ProviderError::from_http`.
//!
//! Backends never hand-roll retries or status mapping: they call [`retry::send`] and convert an
//! [`HttpError`] at their boundary.

pub mod answer;
#[cfg(feature = "aws-sdk")]
pub mod aws;
pub mod redact;
pub mod retry;
pub mod token;

pub use answer::{MESSAGE_CHARS, answer_message, message_field};
pub use redact::{REDACTED, Redactor, ScrubLines, redact, remember, sanitise, scrub_known};
pub use retry::{RetryConfig, send};
pub use token::{Token, TokenCache};

use reqwest::StatusCode;
use std::time::Duration;

/// How many characters of an error answer's body are kept for the parsers that read its error
/// code and message (a whole ARM or OpenStack error document fits). Never shown as such: messages
/// carry only what [`answer_message`] takes from it.
pub const BODY_SNIPPET_CHARS: usize = 16 * 1024;

/// TLS settings of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Verify the server's certificate chain and hostname. Off only when explicitly asked (a lab with
    /// a self-signed certificate); prefer [`TlsOptions::ca_pem`].
    pub verify: bool,
    /// Extra CA certificates (PEM, one or more) trusted in addition to the built-in roots.
    pub ca_pem: Option<String>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { verify: true, ca_pem: None }
    }
}

/// How to build a client for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// TLS settings.
    pub tls: TlsOptions,
    /// Time allowed to establish a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, from sending to the end of the response body.
    pub request_timeout: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls: TlsOptions::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            user_agent: concat!("kasm-autoscale/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Builds the one kind of reqwest client we use: rustls, timeouts, the endpoint's TLS options.
pub fn build_client(opts: &ClientOptions) -> Result<reqwest::Client, HttpError> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .user_agent(opts.user_agent.clone());
    if let Some(pem) = &opts.tls.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| HttpError::Config { message: format!("the CA certificate PEM does not parse: {e}") })?;
        if certs.is_empty() {
            return Err(HttpError::Config { message: "the CA certificate PEM holds no certificate".into() });
        }
        b = b.tls_certs_merge(certs);
    }
    if !opts.tls.verify {
        tracing::warn!("TLS certificate verification is off for this endpoint (explicitly configured)");
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| HttpError::Config { message: format!("cannot build the HTTP client: {}", e.without_url()) })
}

/// Makes ring the process's rustls crypto provider (reqwest is built without one of its own, so
/// one TLS stack serves reqwest and the AWS SDK). Idempotent; a provider already installed stays.
pub fn install_crypto_provider() {
    // An error only says a provider is already installed, which is all this wants.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What went wrong with one HTTP exchange. Every message has been through redaction.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server answered with a non-success status.
    #[error("HTTP {status}{}", shown(.body))]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the response body ([`BODY_SNIPPET_CHARS`]), redacted: for parsers. Display
        /// shows only its [`answer_message`].
        body: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The request or the response did not complete in time.
    #[error("timed out: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// No connection could be made (DNS, refused, TLS handshake).
    #[error("cannot connect: {message}")]
    Connect {
        /// The transport error.
        message: String,
    },
    /// Another transport failure (connection reset mid-request, body read error).
    #[error("request failed: {message}")]
    Transport {
        /// The transport error.
        message: String,
    },
    /// The client is misconfigured (bad CA PEM, bad URL).
    #[error("HTTP client configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

impl HttpError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Converts a reqwest error, dropping its URL (query strings can carry tokens) and redacting.
    pub fn from_reqwest(e: reqwest::Error, redactor: &Redactor) -> HttpError {
        let (timeout, connect, builder) = (e.is_timeout(), e.is_connect(), e.is_builder());
        let message = redactor.redact(&error_chain(&e.without_url()));
        if timeout {
            HttpError::Timeout { message }
        } else if connect {
            HttpError::Connect { message }
        } else if builder {
            HttpError::Config { message }
        } else {
            HttpError::Transport { message }
        }
    }
}

/// `: <the answer's message>`, or nothing for an empty body.
fn shown(body: &str) -> String {
    let m = answer_message(body);
    if m.is_empty() { m } else { format!(": {m}") }
}

/// The error and its sources, joined: reqwest's top-level message alone ("error sending request")
/// hides the useful part ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// The first [`BODY_SNIPPET_CHARS`] characters of `body`, redacted.
///
/// Redacts before cutting: a cut through a known secret would leave a prefix that no longer matches it.
pub fn body_snippet(body: &str, redactor: &Redactor) -> String {
    let clean = redactor.redact(body);
    let mut s: String = clean.chars().take(BODY_SNIPPET_CHARS).collect();
    if clean.chars().nth(BODY_SNIPPET_CHARS).is_some() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn snippets_are_cut_and_redacted() {
        let long = format!(r#"{{"token":"abc","x":"{}"}}"#, "y".repeat(2 * BODY_SNIPPET_CHARS));
        let s = body_snippet(&long, &Redactor::new());
        let secret = SecretString::from(format!("S{}", "e".repeat(BODY_SNIPPET_CHARS)));
        let cut = body_snippet(
            &format!("x {}", secrecy::ExposeSecret::expose_secret(&secret)),
            &Redactor::new().with_secret(&secret),
        );
        assert_eq!(cut, format!("x {REDACTED}"));
        assert!(s.chars().count() <= BODY_SNIPPET_CHARS + 1);
        assert!(s.ends_with('…'));
        assert!(!s.contains("abc"));
    }

    /// Issue 21: an error carries the server's message field, never the body (a proxy that echoes the
    /// request would put its headers, tokens included, in our errors, logs and state).
    #[test]
    fn status_errors_show_the_servers_message_never_the_body() {
        let status = |body: &str| HttpError::Status {
            status: StatusCode::BAD_GATEWAY,
            body: body.to_string(),
            retry_after: None,
        };
        let e = status(r#"{"echo":{"X-Api-Key":"k3y-v4lue"},"message":"upstream down"}"#);
        assert_eq!(e.to_string(), "HTTP 502 Bad Gateway: upstream down");
        let e = status(r#"{"echo":{"X-Api-Key":"k3y-v4lue"},"url":"/x?sig=s1gn4ture"}"#);
        assert_eq!(e.to_string(), "HTTP 502 Bad Gateway: (no message field in the answer; its keys: echo, url)");
        let provider = crate::providers::ProviderError::from_http(e, "t").to_string();
        assert!(!provider.contains("k3y-v4lue") && !provider.contains("s1gn4ture"), "{provider}");
        assert_eq!(status("").to_string(), "HTTP 502 Bad Gateway");
    }

    #[test]
    fn a_bad_ca_pem_is_a_config_error() {
        let opts = ClientOptions {
            tls: TlsOptions { verify: true, ca_pem: Some("not a pem".into()) },
            ..ClientOptions::default()
        };
        assert!(matches!(build_client(&opts), Err(HttpError::Config { .. })));
        assert!(build_client(&ClientOptions::default()).is_ok());
    }
}

/// Retries against a real local HTTP server (axum on 127.0.0.1:0) with short real durations: reqwest's
/// own timeouts run on tokio's clock, and a paused clock would fire them while sockets are busy.
#[cfg(test)]
mod network_tests {
    use super::retry::Idempotency;
    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode as AxStatus};
    use axum::response::IntoResponse;
    use axum::routing::any;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::time::Instant;

    /// A server whose `i`-th answer (0-based) is `script(i)`; counts hits.
    async fn serve<F, Fut>(script: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = axum::response::Response> + Send,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = Router::new().route(
            "/{*p}",
            any(move || {
                let (h, script) = (h.clone(), script.clone());
                async move { script(h.fetch_add(1, Ordering::SeqCst)).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), hits)
    }

    fn fast() -> RetryConfig {
        RetryConfig {
            base: Duration::from_millis(5),
            cap: Duration::from_secs(3),
            max_retries: 4,
            budget: Duration::from_secs(10),
        }
    }

    fn client(timeout_ms: u64) -> reqwest::Client {
        build_client(&ClientOptions { request_timeout: Duration::from_millis(timeout_ms), ..ClientOptions::default() })
            .unwrap()
    }

    async fn go(
        c: &reqwest::Client,
        m: reqwest::Method,
        url: &str,
        i: Idempotency,
        cfg: &RetryConfig,
    ) -> Result<String, HttpError> {
        let req = c.request(m, format!("{url}/x")).body("{}").build().unwrap();
        let resp = send(c, req, i, cfg, &Redactor::new()).await?;
        Ok(resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn a_500_then_success_is_retried() {
        let (url, hits) = serve(|i| async move {
            if i == 0 { (AxStatus::INTERNAL_SERVER_ERROR, "boom").into_response() } else { "ok".into_response() }
        })
        .await;
        let body = go(&client(2000), reqwest::Method::POST, &url, Idempotency::FromMethod, &fast()).await.unwrap();
        assert_eq!(body, "ok");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_400_is_not_retried_and_carries_the_redacted_body() {
        let (url, hits) =
            serve(|_| async { (AxStatus::BAD_REQUEST, r#"{"error":"bad","password":"pw-123456"}"#).into_response() })
                .await;
        let err = go(&client(2000), reqwest::Method::GET, &url, Idempotency::FromMethod, &fast()).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
        assert!(!err.to_string().contains("pw-123456"), "{err}");
        assert!(err.to_string().contains("bad"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_429_retry_after_is_honoured() {
        let (url, hits) = serve(|i| async move {
            if i == 0 {
                let mut h = HeaderMap::new();
                h.insert("retry-after", "1".parse().unwrap());
                (AxStatus::TOO_MANY_REQUESTS, h, "slow down").into_response()
            } else {
                "ok".into_response()
            }
        })
        .await;
        let t = Instant::now();
        let body = go(&client(2000), reqwest::Method::POST, &url, Idempotency::FromMethod, &fast()).await.unwrap();
        assert_eq!(body, "ok");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert!(t.elapsed() >= Duration::from_secs(1), "waited only {:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_cap_ends_retries_with_the_wait() {
        let (url, hits) = serve(|_| async {
            let mut h = HeaderMap::new();
            h.insert("retry-after", "3600".parse().unwrap());
            (AxStatus::TOO_MANY_REQUESTS, h, "later").into_response()
        })
        .await;
        let err = go(&client(2000), reqwest::Method::GET, &url, Idempotency::FromMethod, &fast()).await.unwrap_err();
        assert!(matches!(err, HttpError::Status { retry_after: Some(d), .. } if d == Duration::from_secs(3600)));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let pe = crate::providers::ProviderError::from_http(err, "t");
        assert!(matches!(pe, crate::providers::ProviderError::RateLimited { retry_after: Some(_), .. }));
    }

    fn slow_first()
    -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>> + Clone
    {
        |i| {
            Box::pin(async move {
                if i == 0 {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                }
                "ok".into_response()
            })
        }
    }

    #[tokio::test]
    async fn a_post_timeout_is_not_retried() {
        let (url, hits) = serve(slow_first()).await;
        let err = go(&client(300), reqwest::Method::POST, &url, Idempotency::FromMethod, &fast()).await.unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_get_timeout_is_retried() {
        let (url, hits) = serve(slow_first()).await;
        let body = go(&client(300), reqwest::Method::GET, &url, Idempotency::FromMethod, &fast()).await.unwrap();
        assert_eq!(body, "ok");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_post_marked_idempotent_is_retried_on_timeout() {
        let (url, hits) = serve(slow_first()).await;
        let body = go(&client(300), reqwest::Method::POST, &url, Idempotency::Idempotent, &fast()).await.unwrap();
        assert_eq!(body, "ok");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_exhausted_budget_returns_the_last_error() {
        let (url, hits) = serve(|_| async { (AxStatus::SERVICE_UNAVAILABLE, "down").into_response() }).await;
        let cfg = RetryConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(200),
            max_retries: 100,
            budget: Duration::from_millis(500),
        };
        let t = Instant::now();
        let err = go(&client(2000), reqwest::Method::GET, &url, Idempotency::FromMethod, &cfg).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(t.elapsed() < Duration::from_millis(1500), "{:?}", t.elapsed());
        let n = hits.load(Ordering::SeqCst);
        assert!((2..=6).contains(&n), "{n} attempts");
    }

    #[tokio::test]
    async fn max_retries_bounds_attempts() {
        let (url, hits) = serve(|_| async { (AxStatus::BAD_GATEWAY, "down").into_response() }).await;
        let cfg = RetryConfig { max_retries: 2, ..fast() };
        let err = go(&client(2000), reqwest::Method::POST, &url, Idempotency::FromMethod, &cfg).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn connection_refused_is_retried_even_for_post_then_reported() {
        // Bind then drop: the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let cfg = RetryConfig { max_retries: 2, ..fast() };
        let err = go(&client(2000), reqwest::Method::POST, &url, Idempotency::FromMethod, &cfg).await.unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
    }
}
