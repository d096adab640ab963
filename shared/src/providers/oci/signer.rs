//! OCI request signing (Signature version 1): draft-cavage-http-signatures-08 with `rsa-sha256`, as
//! Oracle's "Request Signatures" page defines it. Every request signs `date (request-target) host`;
//! requests with a body (POST, PUT, PATCH) add `content-length content-type x-content-sha256`, where
//! `x-content-sha256` is the base64 SHA-256 of the body. The signing string is the listed headers as
//! lowercase `name: value` lines joined by `\n` (no trailing newline), in the order `headers="..."`
//! names them; `(request-target)` is the lowercase method, a space, and the path with its query.
//! The key id is `<tenancy OCID>/<user OCID>/<key fingerprint>`.
//!
//! The unit tests reproduce Oracle's published test vector (the "Test Values" of that page, also in
//! `oracle/oci-go-sdk` `common/http_signer_test.go`) byte for byte: signing strings, signatures and
//! the whole `Authorization` header.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, DATE, HOST, HeaderName, HeaderValue};
use reqwest::{Method, Request};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use sha2::{Digest, Sha256};

/// The header OCI carries the body's SHA-256 in.
pub const X_CONTENT_SHA256: &str = "x-content-sha256";

/// The headers signed on a request without a body, in signing order.
const GENERIC: &[&str] = &["date", "(request-target)", "host"];
/// The headers signed on a request with a body (POST, PUT, PATCH), in signing order.
const WITH_BODY: &[&str] = &["date", "(request-target)", "host", "content-length", "content-type", X_CONTENT_SHA256];

/// Why a request could not be signed (never holds key material).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The private key is not an unencrypted RSA key in PKCS#1 or PKCS#8 PEM.
    #[error(
        "the private key is not an unencrypted RSA private key in PEM (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`){0}"
    )]
    Key(&'static str),
    /// The request's URL has no host, or a header value cannot be sent.
    #[error("the request cannot be signed: {0}")]
    Request(String),
}

/// Signs OCI requests with one API key.
#[derive(Clone)]
pub struct RequestSigner {
    key_id: String,
    key: SigningKey<Sha256>,
}

impl std::fmt::Debug for RequestSigner {
    // The key id only: never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl RequestSigner {
    /// A signer for `tenancy`/`user`/`fingerprint` with the PEM private key `pem` (PKCS#1 or PKCS#8,
    /// unencrypted: Kasm's OCI config has no passphrase field).
    pub fn from_pem(tenancy: &str, user: &str, fingerprint: &str, pem: &str) -> Result<RequestSigner, SignError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let pem = pem.trim();
        if pem.contains("ENCRYPTED") {
            return Err(SignError::Key(": it is encrypted, and no passphrase can be configured"));
        }
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| SignError::Key(""))?;
        Ok(RequestSigner {
            key_id: format!("{}/{}/{}", tenancy.trim(), user.trim(), fingerprint.trim()),
            key: SigningKey::<Sha256>::new(key),
        })
    }

    /// The key id: `<tenancy>/<user>/<fingerprint>`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `request` as of `now`: sets `date`, `host`, and on a body `content-type` (JSON unless set),
    /// `content-length` and `x-content-sha256`, then `authorization`.
    pub fn sign(&self, request: &mut Request, now: DateTime<Utc>) -> Result<(), SignError> {
        let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        self.sign_with_date(request, &date)
    }

    fn sign_with_date(&self, request: &mut Request, date: &str) -> Result<(), SignError> {
        let url = request.url();
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(SignError::Request(format!("`{url}` has no host"))),
        };
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let with_body = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH);
        let hv = |v: &str| HeaderValue::from_str(v).map_err(|_| SignError::Request(format!("bad header value `{v}`")));
        let headers = request.headers_mut();
        headers.insert(DATE, hv(date)?);
        headers.insert(HOST, hv(&host)?);
        let body = request.body().map(|b| b.as_bytes().map(<[u8]>::to_vec));
        let names = if with_body {
            let body = match body {
                None => Vec::new(),
                Some(Some(b)) => b,
                Some(None) => return Err(SignError::Request("a streamed body cannot be hashed".into())),
            };
            let sha = B64.encode(Sha256::digest(&body));
            let headers = request.headers_mut();
            headers.insert(HeaderName::from_static(X_CONTENT_SHA256), hv(&sha)?);
            headers.insert(CONTENT_LENGTH, hv(&body.len().to_string())?);
            headers.entry(CONTENT_TYPE).or_insert(HeaderValue::from_static("application/json"));
            WITH_BODY
        } else {
            GENERIC
        };
        let method = request.method().as_str().to_ascii_lowercase();
        let mut lines = Vec::with_capacity(names.len());
        for name in names {
            let value = if *name == "(request-target)" {
                format!("{method} {target}")
            } else {
                let v = request.headers().get(*name).and_then(|v| v.to_str().ok());
                v.ok_or_else(|| SignError::Request(format!("header `{name}` is missing or not text")))?.to_string()
            };
            lines.push(format!("{name}: {value}"));
        }
        let signing_string = lines.join("\n");
        let signature = B64.encode(self.key.sign(signing_string.as_bytes()).to_bytes());
        let auth = format!(
            "Signature version=\"1\",headers=\"{}\",keyId=\"{}\",algorithm=\"rsa-sha256\",signature=\"{signature}\"",
            names.join(" "),
            self.key_id
        );
        let mut auth = hv(&auth)?;
        auth.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, auth);
        Ok(())
    }

    /// The signing string `request` was (or would be) signed with: the lines of the headers its
    /// `Authorization` names. For tests and for explaining a refused signature.
    pub fn signing_string_of(request: &Request) -> Option<String> {
        let auth = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
        let names = auth.split("headers=\"").nth(1)?.split('"').next()?;
        let method = request.method().as_str().to_ascii_lowercase();
        let url = request.url();
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut lines = Vec::new();
        for name in names.split(' ') {
            let value = if name == "(request-target)" {
                format!("{method} {target}")
            } else {
                request.headers().get(name)?.to_str().ok()?.to_string()
            };
            lines.push(format!("{name}: {value}"));
        }
        Some(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Oracle's published test values (see the module doc).
    const KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----";
    const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq";
    const USER: &str = "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq";
    const FINGERPRINT: &str = "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34";
    const VECTOR_DATE: &str = "Thu, 05 Jan 2014 21:31:40 GMT";

    fn signer() -> RequestSigner {
        RequestSigner::from_pem(TENANCY, USER, FINGERPRINT, KEY).unwrap()
    }

    fn key_id() -> String {
        format!("{TENANCY}/{USER}/{FINGERPRINT}")
    }

    #[test]
    fn the_get_vector() {
        let url = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa&displayName=TeamXInstances&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q";
        let mut req = Request::new(Method::GET, url.parse().unwrap());
        signer().sign_with_date(&mut req, VECTOR_DATE).unwrap();
        assert_eq!(
            RequestSigner::signing_string_of(&req).unwrap(),
            "date: Thu, 05 Jan 2014 21:31:40 GMT\n\
             (request-target): get /20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa&displayName=TeamXInstances&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q\n\
             host: iaas.us-phoenix-1.oraclecloud.com"
        );
        let expected = format!(
            "Signature version=\"1\",headers=\"date (request-target) host\",keyId=\"{}\",algorithm=\"rsa-sha256\",signature=\"GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6YZAHc9r2DmE4pMwOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M=\"",
            key_id()
        );
        assert_eq!(req.headers()[AUTHORIZATION], expected.as_str());
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers()[HOST], "iaas.us-phoenix-1.oraclecloud.com");
        assert!(req.headers().get(X_CONTENT_SHA256).is_none());
    }

    #[test]
    fn the_post_vector() {
        let body = "{\n    \"compartmentId\": \"ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa\",\n    \"instanceId\": \"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a\",\n    \"volumeId\": \"ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q\"\n}";
        assert_eq!(body.len(), 316);
        let mut req = Request::new(
            Method::POST,
            "https://iaas.us-phoenix-1.oraclecloud.com/20160918/volumeAttachments".parse().unwrap(),
        );
        *req.body_mut() = Some(body.into());
        signer().sign_with_date(&mut req, VECTOR_DATE).unwrap();
        assert_eq!(
            RequestSigner::signing_string_of(&req).unwrap(),
            "date: Thu, 05 Jan 2014 21:31:40 GMT\n\
             (request-target): post /20160918/volumeAttachments\n\
             host: iaas.us-phoenix-1.oraclecloud.com\n\
             content-length: 316\n\
             content-type: application/json\n\
             x-content-sha256: V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0="
        );
        let expected = format!(
            "Signature version=\"1\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"{}\",algorithm=\"rsa-sha256\",signature=\"Mje8vIDPlwIHmD/cTDwRxE7HaAvBg16JnVcsuqaNRim23fFPgQfLoOOxae6WqKb1uPjYEl0qIdazWaBy/Ml8DRhqlocMwoSXv0fbukP8J5N80LCmzT/FFBvIvTB91XuXI3hYfP9Zt1l7S6ieVadHUfqBedWH0itrtPJBgKmrWso=\"",
            key_id()
        );
        assert_eq!(req.headers()[AUTHORIZATION], expected.as_str());
    }

    #[test]
    fn a_port_is_part_of_the_host_and_the_date_is_http_date() {
        use chrono::TimeZone;
        let mut req = Request::new(Method::DELETE, "http://127.0.0.1:8080/20160918/instances/x".parse().unwrap());
        signer().sign(&mut req, Utc.with_ymd_and_hms(2014, 1, 5, 21, 31, 40).unwrap()).unwrap();
        assert_eq!(req.headers()[HOST], "127.0.0.1:8080");
        // 5 January 2014 was a Sunday (the published vector's "Thu" is only text to it).
        assert_eq!(req.headers()[DATE], "Sun, 05 Jan 2014 21:31:40 GMT");
        assert!(
            RequestSigner::signing_string_of(&req).unwrap().contains("(request-target): delete /20160918/instances/x")
        );
    }

    #[test]
    fn bad_and_encrypted_keys_are_refused_without_echoing_them() {
        let e = RequestSigner::from_pem(TENANCY, USER, FINGERPRINT, "not a key").unwrap_err();
        assert!(!e.to_string().contains("not a key"), "{e}");
        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        assert!(
            RequestSigner::from_pem(TENANCY, USER, FINGERPRINT, enc).unwrap_err().to_string().contains("encrypted")
        );
        assert!(!format!("{:?}", signer()).contains("MIIC"));
    }
}
