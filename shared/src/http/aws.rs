//! The HTTP client every AWS SDK client uses: the SDK's hyper client on rustls with the ring crypto
//! provider, the same TLS stack as [`build_client`](super::build_client). The SDK crates are built
//! without their default client (which brings a second crypto library, aws-lc), so every AWS
//! configuration must start from [`config_loader`] or set [`http_client`] itself; a client without one
//! fails its first request with "no HTTP client".

use std::sync::OnceLock;

use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The process's AWS HTTP client (connection pool shared by every AWS client built from it).
pub fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
        })
        .clone()
}

/// [`http_client`], or a client that also trusts the PEM certificates of `ca_bundle` (a private CA in
/// front of an AWS-compatible endpoint). The bundle is parsed here, so a bad one fails the build of the
/// client with a message, not the first request.
pub fn http_client_with(ca_bundle: Option<&str>) -> Result<SharedHttpClient, String> {
    let Some(pem) = ca_bundle else { return Ok(http_client()) };
    match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(certs) if !certs.is_empty() => {}
        Ok(_) => return Err("holds no PEM certificate".into()),
        Err(e) => return Err(format!("is not PEM certificates: {e}")),
    }
    let trust = TrustStore::default().with_pem_certificate(pem.as_bytes().to_vec());
    let tls = TlsContext::builder().with_trust_store(trust).build().map_err(|e| e.to_string())?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https())
}

/// `aws_config::defaults` at the latest behaviour version, with [`http_client`]: the default
/// credential chain (environment, profile, web identity, container or instance role), region and
/// `AWS_ENDPOINT_URL` settings as the SDK reads them.
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_loader_carries_the_shared_client() {
        let conf = config_loader().region(aws_config::Region::new("us-east-1")).load().await;
        assert!(conf.http_client().is_some(), "an SDK config without our client would fail every request");
    }

    #[test]
    fn a_ca_bundle_must_hold_certificates() {
        assert!(http_client_with(None).is_ok());
        assert!(http_client_with(Some("not a pem")).is_err());
        let pem = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
        let _ = http_client_with(Some(pem));
    }
}
