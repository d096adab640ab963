//! The one public provider error, its classes, and the one mapping from HTTP to it.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::http::HttpError;

/// Whether an error class is worth retrying and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Not found.
    NotFound,
    /// Credentials refused.
    Auth,
    /// Not allowed.
    Permission,
    /// Conflict (exists / being changed).
    Conflict,
    /// Throttled: retry after a while.
    RateLimited,
    /// No capacity for this shape/region: back off the config.
    OutOfCapacity,
    /// Invalid request or config: retrying cannot help.
    Invalid,
    /// Temporary (5xx, timeout): retry.
    Transient,
    /// The provider cannot do that.
    NotSupported,
}

/// The one public provider error. Messages never carry secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No such VM.
    #[error("{provider}: VM {id} not found")]
    NotFound {
        /// Provider short name.
        provider: &'static str,
        /// The VM id.
        id: String,
    },
    /// Credentials were refused (401).
    #[error("{provider}: authentication failed: {message}")]
    Unauthenticated {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// Not allowed (403).
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// Conflict (409).
    #[error("{provider}: conflict: {message}")]
    Conflict {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// Throttled (429, RequestLimitExceeded).
    #[error("{provider}: rate limited: {message}")]
    RateLimited {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No capacity for this shape / region / host.
    #[error("{provider}: out of capacity: {message}")]
    OutOfCapacity {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// The request or config is invalid.
    #[error("{provider}: invalid request: {message}")]
    Invalid {
        /// Provider short name.
        provider: &'static str,
        /// What the provider said.
        message: String,
    },
    /// A temporary failure (5xx, timeout, connection reset).
    #[error("{provider}: temporary failure: {message}")]
    Transient {
        /// Provider short name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
    /// The provider cannot do that.
    #[error("{provider}: not supported: {what}")]
    NotSupported {
        /// Provider short name.
        provider: &'static str,
        /// The operation.
        what: String,
    },
}

impl ProviderError {
    /// The error's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::NotFound { .. } => ErrorClass::NotFound,
            ProviderError::Unauthenticated { .. } => ErrorClass::Auth,
            ProviderError::PermissionDenied { .. } => ErrorClass::Permission,
            ProviderError::Conflict { .. } => ErrorClass::Conflict,
            ProviderError::RateLimited { .. } => ErrorClass::RateLimited,
            ProviderError::OutOfCapacity { .. } => ErrorClass::OutOfCapacity,
            ProviderError::Invalid { .. } => ErrorClass::Invalid,
            ProviderError::Transient { .. } => ErrorClass::Transient,
            ProviderError::NotSupported { .. } => ErrorClass::NotSupported,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.class(), ErrorClass::RateLimited | ErrorClass::Transient | ErrorClass::Conflict)
    }
}

impl ProviderError {
    /// The error an [`HttpError`] maps to for `provider`: statuses through [`ProviderError::from_status`];
    /// timeouts and transport failures are transient, client configuration errors invalid.
    pub fn from_http(e: HttpError, provider: &'static str) -> ProviderError {
        match e {
            HttpError::Status { status, body, retry_after } => {
                Self::from_status(provider, status, &crate::http::answer_message(&body), retry_after)
            }
            HttpError::Timeout { message } => {
                ProviderError::Transient { provider, message: format!("timed out: {message}") }
            }
            HttpError::Connect { message } => {
                ProviderError::Transient { provider, message: format!("cannot connect: {message}") }
            }
            HttpError::Transport { message } => ProviderError::Transient { provider, message },
            HttpError::Config { message } => ProviderError::Invalid { provider, message },
        }
    }

    /// The one mapping from an HTTP status to a [`ProviderError`]: 404 NotFound, 401 Unauthenticated,
    /// 403 PermissionDenied, 409 Conflict, 429 RateLimited (with `retry_after`), 5xx Transient, 408
    /// Transient, other 4xx (and anything else unexpected) Invalid.
    ///
    /// `said` is what the server said: a message field or [`crate::http::answer_message`], never a raw
    /// body; it is bounded again here ([`crate::http::message_field`]). For 404 it becomes the `id` of
    /// [`ProviderError::NotFound`]; a caller that knows the id it asked for should build that variant
    /// itself.
    pub fn from_status(
        provider: &'static str,
        status: StatusCode,
        said: &str,
        retry_after: Option<Duration>,
    ) -> ProviderError {
        let said = crate::http::sanitise(said.trim());
        let message = if said.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {said}") };
        match status.as_u16() {
            404 => ProviderError::NotFound { provider, id: if said.is_empty() { "(unknown)".into() } else { said } },
            401 => ProviderError::Unauthenticated { provider, message },
            403 => ProviderError::PermissionDenied { provider, message },
            409 => ProviderError::Conflict { provider, message },
            429 => ProviderError::RateLimited { provider, message, retry_after },
            408 | 500..=599 => ProviderError::Transient { provider, message },
            _ => ProviderError::Invalid { provider, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_in_one_place() {
        let c = |s: u16| ProviderError::from_status("t", StatusCode::from_u16(s).unwrap(), "msg", None).class();
        assert_eq!(c(404), ErrorClass::NotFound);
        assert_eq!(c(401), ErrorClass::Auth);
        assert_eq!(c(403), ErrorClass::Permission);
        assert_eq!(c(409), ErrorClass::Conflict);
        assert_eq!(c(429), ErrorClass::RateLimited);
        assert_eq!(c(500), ErrorClass::Transient);
        assert_eq!(c(503), ErrorClass::Transient);
        assert_eq!(c(400), ErrorClass::Invalid);
        assert_eq!(c(422), ErrorClass::Invalid);
        let e = ProviderError::from_status("t", StatusCode::TOO_MANY_REQUESTS, "", Some(Duration::from_secs(7)));
        assert!(matches!(e, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
        let e = ProviderError::from_status("t", StatusCode::NOT_FOUND, "vm-1", None);
        assert!(matches!(e, ProviderError::NotFound { id, .. } if id == "vm-1"));
    }

    #[test]
    fn http_errors_map_to_provider_errors() {
        let e = ProviderError::from_http(HttpError::Timeout { message: "x".into() }, "t");
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = ProviderError::from_http(HttpError::Connect { message: "x".into() }, "t");
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = ProviderError::from_http(HttpError::Config { message: "x".into() }, "t");
        assert_eq!(e.class(), ErrorClass::Invalid);
        let e = HttpError::Status { status: StatusCode::FORBIDDEN, body: "no".into(), retry_after: None };
        assert_eq!(ProviderError::from_http(e, "t").class(), ErrorClass::Permission);
    }
}
