//! One-line descriptions of AWS SDK errors, safe for logs and error messages.
//!
//! The SDK's own `Display`/`Debug` (and `DisplayErrorContext`) of an `SdkError` can include the raw HTTP
//! response, body and all: for a response that failed to parse, that body may be a secret value
//! (GetSecretValue) or a stored item. `DisplayErrorContext` also appends the `Debug` dump of the whole
//! error chain (kilobytes of the SDK's internals for a request that found no credentials). These
//! descriptions name the error code and AWS's message, or the kind of failure with its causes' own
//! messages, and never a body or a `Debug` dump.

use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What an AWS request says when the default credential chain (environment, profile, web identity,
/// container or instance role) found no credentials at all.
pub const NO_CREDENTIALS: &str =
    "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on AWS";

/// What went wrong, without the raw response: `Code: message` for a service error, [`NO_CREDENTIALS`]
/// or the credentials provider's messages when the request was never sent for want of credentials,
/// else the kind of failure (and its causes' messages, which carry no response).
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(why) = credentials_failure(e) {
        return why;
    }
    match e {
        SdkError::ServiceError(s) => match (s.err().code(), s.err().message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_string(),
            _ => "a service error without a code".to_string(),
        },
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => format!("the request could not be sent: {}", chain(c)),
            None => "the request could not be sent".to_string(),
        },
        // Its source may quote the body it could not parse.
        SdkError::ResponseError(_) => "the response could not be read".to_string(),
        // Nothing was sent or received: its causes are the SDK's (e.g. no region, so no endpoint).
        SdkError::ConstructionFailure(_) => match e.source() {
            Some(cause) => format!("the request could not be built: {}", chain(cause)),
            None => "the request could not be built".to_string(),
        },
        _ => "an unknown AWS SDK error".to_string(),
    }
}

/// When the request was never sent because its credentials could not be loaded: [`NO_CREDENTIALS`]
/// when nothing provided any, else what the credentials provider said (a secret reference of the config
/// that does not resolve: our providers name the reference, never a value). `None` for any other
/// failure.
pub fn credentials_failure<E, R>(e: &SdkError<E, R>) -> Option<String>
where
    E: Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::CredentialsNotLoaded(_) => NO_CREDENTIALS.to_string(),
                other => chain(other),
            });
        }
        cur = err.source();
    }
    None
}

/// `e` and its sources' messages, `: `-separated: the SDK's `DisplayErrorContext` without the `Debug`
/// dump it appends.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        // Wrappers often repeat their source's message; say it once.
        if !msg.is_empty() && !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ResponseError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn raw(body: &'static str) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::from(body))
    }

    #[test]
    fn unreadable_responses_never_show_their_body() {
        let body = r#"{"SecretString":"sup3r-secret-VALUE","Name":"x"#;
        let e: SdkError<ErrorMetadata, HttpResponse> = SdkError::ResponseError(
            ResponseError::builder().source("truncated JSON near sup3r-secret-VALUE").raw(raw(body)).build(),
        );
        let d = describe(&e);
        assert!(!d.contains("sup3r-secret-VALUE"), "{d}");
        assert!(
            format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&e)).contains("sup3r-secret-VALUE"),
            "the SDK's own text does show it"
        );
    }

    #[test]
    fn no_credentials_is_one_sentence() {
        let e: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(aws_smithy_runtime_api::client::result::ConnectorError::other(
                Box::new(CredentialsError::not_loaded("no providers in chain provided credentials")),
                None,
            ));
        assert_eq!(describe(&e), NO_CREDENTIALS);
        let bad = CredentialsError::provider_error("config prod: secret env:AWS_KEY is not set");
        let e: SdkError<ErrorMetadata, HttpResponse> = SdkError::dispatch_failure(
            aws_smithy_runtime_api::client::result::ConnectorError::other(Box::new(bad), None),
        );
        assert_eq!(
            describe(&e),
            "an error occurred while loading credentials: config prod: secret env:AWS_KEY is not set"
        );
    }

    #[test]
    fn chains_carry_no_debug_dump() {
        let inner = std::io::Error::other("connection refused");
        let e: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(aws_smithy_runtime_api::client::result::ConnectorError::io(Box::new(inner)));
        let d = describe(&e);
        assert!(d.starts_with("the request could not be sent: ") && d.ends_with("connection refused"), "{d}");
        assert!(!d.contains("ConnectorError") && !d.contains('{'), "a Debug dump: {d}");
    }

    #[test]
    fn service_errors_show_code_and_message_only() {
        let meta =
            ErrorMetadata::builder().code("ResourceNotFoundException").message("Requested resource not found").build();
        let e: SdkError<ErrorMetadata, HttpResponse> = SdkError::service_error(meta, raw(r#"{"Item":"stored-VALUE"}"#));
        assert_eq!(describe(&e), "ResourceNotFoundException: Requested resource not found");
    }
}
