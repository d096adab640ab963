//! The small vocabulary every config check is written in: a list of `(field path, message)` problems
//! and helpers to add to it. Used by `validate` and by each provider config's own
//! [`check`](super::ProviderConfigCommon::check).

/// Problems found in one config: `(field path, what is wrong)`.
pub type Found = Vec<(String, String)>;

/// Adds `message` for `field` unless `ok`.
pub fn need(found: &mut Found, ok: bool, field: &str, message: impl Into<String>) {
    if !ok {
        found.push((field.to_string(), message.into()));
    }
}

/// Whether `s` is empty or only whitespace.
pub fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// The name a value is written with in config files (`bash`, `windows`, `monday`).
pub fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Whether `u` is an absolute `http://` or `https://` URL with a host.
pub fn is_http_url(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// Whether `pem` holds at least one PEM certificate.
pub fn is_pem_certificates(pem: &str) -> bool {
    pem.contains("-----BEGIN CERTIFICATE-----") && pem.contains("-----END CERTIFICATE-----")
}
