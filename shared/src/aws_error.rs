//! One-line descriptions of AWS SDK errors, safe for logs and error messages.
//!
//! The SDK's own `Display`/`Debug` (and `DisplayErrorContext`) of an `SdkError` can include the raw HTTP
//! response, body and all: for a response that failed to parse, that body may be a secret value
//! (GetSecretValue) or a stored item. These descriptions name the error code and AWS's message, or the
//! kind of failure, and never a body.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What went wrong, without the raw response: `Code: message` for a service error, else the kind of
/// failure (and the connection error's own chain, which carries no response).
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => match (s.err().code(), s.err().message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_string(),
            _ => "a service error without a code".to_string(),
        },
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => format!("the request could not be sent: {}", DisplayErrorContext(c)),
            None => "the request could not be sent".to_string(),
        },
        // Its source may quote the body it could not parse.
        SdkError::ResponseError(_) => "the response could not be read".to_string(),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_string(),
        _ => "an unknown AWS SDK error".to_string(),
    }
}

/// When the request was never sent because its credentials could not be loaded (a secret reference
/// of the config that does not resolve, or a default chain that found nothing): what the credentials
/// provider said (our providers name the reference, never a value). `None` for any other failure.
pub fn credentials_failure<E, R>(e: &SdkError<E, R>) -> Option<String>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<aws_credential_types::provider::error::CredentialsError>() {
            return Some(DisplayErrorContext(c).to_string());
        }
        cur = err.source();
    }
    None
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
            format!("{}", DisplayErrorContext(&e)).contains("sup3r-secret-VALUE"),
            "the SDK's own text does show it"
        );
    }

    #[test]
    fn service_errors_show_code_and_message_only() {
        let meta =
            ErrorMetadata::builder().code("ResourceNotFoundException").message("Requested resource not found").build();
        let e: SdkError<ErrorMetadata, HttpResponse> = SdkError::service_error(meta, raw(r#"{"Item":"stored-VALUE"}"#));
        assert_eq!(describe(&e), "ResourceNotFoundException: Requested resource not found");
    }
}
