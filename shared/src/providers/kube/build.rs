//! Making a [`Client`] from a Kubernetes provider's config: the API address (`host`, or
//! `endpoint_url`), the cluster CA (`ssl_certificate`, base64 PEM, as `certificate-authority-data` in a
//! kubeconfig) plus `ca_bundle` trusted, and the token source. No network I/O: the token is resolved on
//! the first call.

use reqwest::Url;

use super::Error;
use super::client::Client;
use super::credential::{Credential, Source};
use crate::config::SecretRef;
use crate::http::{ClientOptions, TlsOptions, build_client};
use crate::providers::BuildEnv;

/// The connection fields of a Kubernetes provider config.
pub(crate) struct Connection<'a> {
    pub(crate) host: &'a str,
    pub(crate) ssl_certificate: &'a str,
    pub(crate) api_token: &'a SecretRef,
    pub(crate) endpoint_url: Option<&'a str>,
    pub(crate) ca_bundle: Option<&'a str>,
}

/// The API base URL: `endpoint_url` when set, else `host`, checked.
pub(crate) fn base_url(host: &str, endpoint_url: Option<&str>) -> Result<Url, Error> {
    let (field, root) = match endpoint_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => ("endpoint_url", u),
        None => ("host", host.trim()),
    };
    let url = Url::parse(root).map_err(|e| Error::Config { message: format!("{field} `{root}` is not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config { message: format!("{field} `{root}` is not an http(s) base URL") });
    }
    Ok(url)
}

/// The PEM trusted for the API: the config's base64 `ssl_certificate` and `ca_bundle`.
pub(crate) fn ca_pem(ssl_certificate: &str, ca_bundle: Option<&str>) -> Result<Option<String>, Error> {
    use base64::Engine as _;
    let mut pem = String::new();
    let cert = ssl_certificate.trim();
    if !cert.is_empty() {
        let bytes = base64::engine::general_purpose::STANDARD.decode(cert).map_err(|_| Error::Config {
            message: "ssl_certificate is not base64 (give the kubeconfig's certificate-authority-data)".into(),
        })?;
        pem.push_str(
            &String::from_utf8(bytes)
                .map_err(|_| Error::Config { message: "ssl_certificate does not decode to PEM text".into() })?,
        );
        pem.push('\n');
    }
    if let Some(b) = ca_bundle.filter(|b| !b.trim().is_empty()) {
        pem.push_str(b);
    }
    Ok((!pem.trim().is_empty()).then_some(pem))
}

/// The client for `c`. Fails only when the config cannot make one (a bad address, a CA that does not
/// decode or parse).
pub(crate) fn client(c: &Connection<'_>, env: &BuildEnv) -> Result<Client, Error> {
    let base = base_url(c.host, c.endpoint_url)?;
    let http = build_client(&ClientOptions {
        tls: TlsOptions { verify: true, ca_pem: ca_pem(c.ssl_certificate, c.ca_bundle)? },
        request_timeout: env.request_timeout,
        ..ClientOptions::default()
    })
    .map_err(|e| Error::Config { message: format!("ssl_certificate / ca_bundle: {e}") })?;
    let source = Source { secrets: env.secrets.clone(), reference: c.api_token.clone(), field: "api_token" };
    Ok(Client::new(http, base, Credential::new(source), env.retry.clone()))
}
