//! The small Kubernetes REST client the KubeVirt and Harvester providers are built on: a bearer
//! token from a secret reference, the cluster's CA trusted, JSON requests through [`crate::http`]
//! (retries, redaction), create by deterministic name, read, delete with a propagation policy, and
//! lists by label selector across every `continue` page.
//!
//! # Why not the `kube` crate
//! We need six verbs on a handful of object kinds, all untyped JSON shaped by the KubeVirt/CDI specs.
//! `reqwest`, `serde_json` and [`crate::http`] are already linked into every binary; the `kube` crate
//! would add its own client stack (hyper, tower, kubeconfig handling, `k8s-openapi` types) to the Lambda
//! binaries for no behaviour we need, and it would not go through our retry/redaction layer. Measured
//! (`scripts/kube-size/`, README "Why not the `kube` crate — measured"): `kube` 5.0 adds 2.6 MiB to a
//! binary that already links reqwest, which would take the largest function past the 10 MiB target;
//! this client and both providers on it add nothing measurable. So the client here is plain `reqwest`.
//!
//! # Errors
//! Kubernetes answers errors as a `Status` object (`{kind: Status, status: Failure, message, reason,
//! code}`). Statuses map in one place (`Error::into_provider`): 401 Unauthenticated, 403 PermissionDenied (the
//! message names the verb and resource the Role lacks, as the API server writes it) except a
//! ResourceQuota refusal (`exceeded quota`), which is OutOfCapacity, 404 NotFound, 409
//! Conflict (create: `AlreadyExists`), 422 Invalid (`reason: Invalid`), 429 RateLimited with
//! `Retry-After`, 5xx Transient.

pub(crate) mod build;
pub(crate) mod client;
pub(crate) mod credential;
pub mod labels;
pub(crate) mod preflight;
pub mod vm;

use crate::http::{HttpError, answer_message, message_field};
use crate::providers::ProviderError;

/// What went wrong in a Kubernetes call or a provider built on it; converted to [`ProviderError`] at
/// the trait boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("failed to {what}: {source}")]
    Http {
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("failed to {what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
    #[error("{message}")]
    Config { message: String },
    #[error("{message}")]
    Credential { message: String },
    #[error("{message}")]
    NoCapacity { message: String },
    #[error("{message}")]
    Timeout { message: String },
    #[error(
        "{kind} {name} exists but was not made by kasm-autoscale for this claim (its labels differ); not touching it"
    )]
    NotOurs { kind: &'static str, name: String },
}

/// The fields of a Kubernetes `Status` error body we quote.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Status {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
}

/// The `Status` in an error body (empty when the body is not one).
pub(crate) fn status_of(body: &str) -> Status {
    serde_json::from_str(body).unwrap_or_default()
}

impl Error {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    /// The `reason` of the API's `Status` answer, when it gave one.
    pub(crate) fn reason(&self) -> Option<String> {
        match self {
            Error::Http { source: HttpError::Status { body, .. }, .. } => {
                Some(status_of(body).reason).filter(|r| !r.is_empty())
            }
            _ => None,
        }
    }

    /// The one map from this error to a [`ProviderError`] of provider `name`.
    pub(crate) fn into_provider(self, name: &'static str) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let st = status_of(&body);
                let said = if st.message.is_empty() { answer_message(&body) } else { message_field(&st.message) };
                let text = match (status.as_u16(), st.reason.is_empty()) {
                    (403, _) => format!(
                        "failed to {what}: {said} (the token's Role must allow this verb on this resource; see the README's minimal Role)"
                    ),
                    (_, true) => format!("failed to {what}: {said}"),
                    (_, false) => format!("failed to {what}: {}: {said}", st.reason),
                };
                // The ResourceQuota admission plugin refuses a create over the namespace's quota with 403
                // "exceeded quota: <quota>, requested: ..., used: ..., limited: ..." (Kubernetes
                // documentation, "Resource Quotas"): capacity, not a permission.
                if status.as_u16() == 403 && said.contains("exceeded quota") {
                    return ProviderError::OutOfCapacity { provider: name, message: text };
                }
                if status.as_u16() == 404 {
                    return ProviderError::NotFound { provider: name, id: text };
                }
                ProviderError::from_status(name, status, &text, retry_after)
            }
            Error::Http { what, source } => match ProviderError::from_http(source, name) {
                ProviderError::Transient { message, .. } => {
                    ProviderError::Transient { provider: name, message: format!("failed to {what}: {message}") }
                }
                ProviderError::Invalid { message, .. } => {
                    ProviderError::Invalid { provider: name, message: format!("failed to {what}: {message}") }
                }
                other => other,
            },
            Error::Credential { .. } => ProviderError::Unauthenticated { provider: name, message },
            Error::NoCapacity { .. } => ProviderError::OutOfCapacity { provider: name, message },
            Error::Decode { .. } | Error::Timeout { .. } => ProviderError::Transient { provider: name, message },
            Error::Config { .. } | Error::NotOurs { .. } => ProviderError::Invalid { provider: name, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use reqwest::StatusCode;

    fn status_err(code: u16, body: &str) -> Error {
        Error::Http {
            what: "create the VirtualMachine kasm-x".into(),
            source: HttpError::Status {
                status: StatusCode::from_u16(code).unwrap(),
                body: body.into(),
                retry_after: None,
            },
        }
    }

    #[test]
    fn statuses_map_to_the_classes_the_engine_acts_on() {
        let c = |code, body| status_err(code, body).into_provider("kubevirt").class();
        let forbidden = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"virtualmachines.kubevirt.io is forbidden: User \"system:serviceaccount:kasm:as\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"kasm\"","reason":"Forbidden","code":403}"#;
        assert_eq!(
            c(
                401,
                r#"{"kind":"Status","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
            ),
            ErrorClass::Auth
        );
        assert_eq!(c(403, forbidden), ErrorClass::Permission);
        let m = status_err(403, forbidden).into_provider("kubevirt").to_string();
        assert!(m.contains("cannot create resource \"virtualmachines\"") && m.contains("Role"), "{m}");
        assert_eq!(
            c(
                403,
                r#"{"kind":"Status","message":"virtualmachines.kubevirt.io \"x\" is forbidden: exceeded quota: q, requested: count/virtualmachines.kubevirt.io=1, used: count/virtualmachines.kubevirt.io=2, limited: count/virtualmachines.kubevirt.io=2","reason":"Forbidden","code":403}"#
            ),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(c(404, r#"{"kind":"Status","reason":"NotFound","code":404}"#), ErrorClass::NotFound);
        assert_eq!(c(409, r#"{"kind":"Status","reason":"AlreadyExists","code":409}"#), ErrorClass::Conflict);
        let invalid = r#"{"kind":"Status","message":"VirtualMachine.kubevirt.io \"x\" is invalid: spec.template.spec.domain.devices: Required value","reason":"Invalid","code":422}"#;
        assert_eq!(c(422, invalid), ErrorClass::Invalid);
        assert!(status_err(422, invalid).into_provider("kubevirt").to_string().contains("Invalid: VirtualMachine"));
        assert_eq!(c(429, r#"{"kind":"Status","reason":"TooManyRequests","code":429}"#), ErrorClass::RateLimited);
        assert_eq!(c(500, r#"{"kind":"Status","reason":"InternalError","code":500}"#), ErrorClass::Transient);
        assert_eq!(status_err(409, r#"{"reason":"AlreadyExists"}"#).reason().as_deref(), Some("AlreadyExists"));
        assert_eq!(
            Error::NoCapacity { message: "x".into() }.into_provider("kubevirt").class(),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            Error::NotOurs { kind: "Secret", name: "s".into() }.into_provider("kubevirt").class(),
            ErrorClass::Invalid
        );
        assert_eq!(Error::Credential { message: "x".into() }.into_provider("kubevirt").class(), ErrorClass::Auth);
    }
}
