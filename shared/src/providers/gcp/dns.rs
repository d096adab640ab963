//! GCP Cloud DNS: the [`DnsProvider`] backend for a Cloud DNS managed zone (Cloud DNS API v1,
//! `dns.v1.json`: `managedZones.get`, `resourceRecordSets.list`, `changes.create`), authenticated with
//! the same service-account key flow as the provider (`credential`).
//!
//! Cloud DNS changes are atomic (`changes.create` with `additions` and `deletions`), so an upsert
//! writes the A record set and its TXT ownership marker ([`crate::dns`]) in one change, and a delete
//! removes both in one change. A change is computed from the record sets read at the name
//! (`rrsets?name=<fqdn>.`); Cloud DNS refuses a deletion that does not match the record set exactly
//! (412 `conditionNotMet`) and an addition of a set that exists (409 `alreadyExists`), so a change
//! made from a stale read (another writer, or our own earlier change whose answer was lost) is
//! refused whole: it is read again and recomputed, at most [`ATTEMPTS`] times. That makes upsert and
//! delete idempotent under retries. Names are sent fully qualified with the trailing dot; TXT data is
//! sent quoted (`"kasm-autoscale deployment=... claim=..."`) and read with or without quotes. A change
//! answered `pending` is applied to the zone's records and only not yet served everywhere; we do not
//! wait for `done`.

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::Error;
use super::builder::{base_url, http_client};
use super::credential::{Credential, Source};
use crate::config::GcpDnsConfig;
use crate::dns::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord, Ownership, normalize_name, ownership};
use crate::http::retry::Idempotency;
use crate::http::{HttpError, RetryConfig};
use crate::secrets::Secrets;

/// The backend's short name.
pub const NAME: &str = "gcp_cloud_dns";
/// The API's own root URL (the discovery document's `rootUrl`).
pub const DEFAULT_ROOT: &str = "https://dns.googleapis.com";
/// How many times a change refused as stale is recomputed.
pub const ATTEMPTS: usize = 3;

/// `schemas.ResourceRecordSet` (the fields we send and read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordSet {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ttl: u32,
    #[serde(default)]
    pub rrdatas: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordSetPage {
    #[serde(default)]
    rrsets: Vec<RecordSet>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManagedZone {
    dns_name: String,
}

/// A Cloud DNS backend bound to one managed zone.
#[derive(Debug)]
pub struct GcpDns {
    http: reqwest::Client,
    base: Url,
    project: String,
    zone: String,
    ttl: u32,
    credential: Arc<Credential>,
    retry: RetryConfig,
    page_size: usize,
    /// The zone's DNS name (normalised, no trailing dot), read once.
    dns_name: tokio::sync::OnceCell<String>,
}

fn into_dns(e: Error, context: &str) -> DnsError {
    let message = match &e {
        Error::Http { what, source: HttpError::Status { body, .. } } => {
            let (reasons, said) = super::client::api_error(body);
            format!("{context}: failed to {what}: {} {said}", reasons.join("/"))
        }
        other => format!("{context}: {other}"),
    };
    match e {
        Error::Http { source: HttpError::Status { status, retry_after, .. }, .. } => match status.as_u16() {
            401 => DnsError::Unauthenticated { provider: NAME, message },
            403 => DnsError::PermissionDenied { provider: NAME, message },
            404 => DnsError::ZoneNotFound { provider: NAME, message },
            409 | 412 => DnsError::Conflict { provider: NAME, message },
            429 => DnsError::RateLimited { provider: NAME, message, retry_after },
            408 | 500..=599 => DnsError::Transient { provider: NAME, message },
            _ => DnsError::Invalid { provider: NAME, message },
        },
        Error::Http { source: HttpError::Config { .. }, .. } | Error::Config { .. } => {
            DnsError::Invalid { provider: NAME, message }
        }
        Error::Credential { .. } => DnsError::Unauthenticated { provider: NAME, message },
        _ => DnsError::Transient { provider: NAME, message },
    }
}

fn unquote(d: &str) -> String {
    let d = d.trim();
    d.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap_or(d).to_string()
}

impl GcpDns {
    /// The backend for `cfg` with no I/O: its key file is read from `secrets` when the first token
    /// is needed (and re-read after a refused token, as the VM provider's); `endpoint_url` and
    /// `ca_bundle` of the config are honoured.
    pub fn from_config(cfg: &GcpDnsConfig, secrets: Arc<dyn Secrets>) -> Result<Self, DnsError> {
        let context = format!("DNS-provider config {}", cfg.name);
        let endpoint_url = cfg.endpoint_url.as_deref();
        let base = base_url(endpoint_url, DEFAULT_ROOT, &["dns", "v1"]).map_err(|e| into_dns(e, &context))?;
        let http = http_client(cfg.ca_bundle.as_deref(), std::time::Duration::from_secs(30))
            .map_err(|e| into_dns(e, &context))?;
        let retry = RetryConfig::default();
        let source = Source::Secret { secrets, reference: cfg.gcp_credentials.clone(), field: "gcp_credentials" };
        let credential = Arc::new(Credential::new(source, http.clone(), retry.clone()));
        Ok(GcpDns {
            http,
            base,
            project: cfg.gcp_project.clone(),
            zone: cfg.managed_zone.clone(),
            ttl: cfg.ttl,
            credential,
            retry,
            page_size: 100,
            dns_name: tokio::sync::OnceCell::new(),
        })
    }

    /// Uses `retry` for HTTP calls.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Lists with `n` record sets per page (tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    fn err(&self, e: Error) -> DnsError {
        into_dns(e, &format!("managed zone {}", self.zone))
    }

    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            p.extend(["projects", self.project.as_str(), "managedZones", self.zone.as_str()]);
            p.extend(tail);
        }
        url
    }

    async fn call(
        &self,
        method: Method,
        tail: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        what: &str,
    ) -> Result<String, Error> {
        let auth = self.credential.get().await?;
        let mut url = self.url(tail);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(method, url).header(AUTHORIZATION, auth.header.clone());
        if let Some(b) = &body {
            req = req.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(b).unwrap_or_default());
        }
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, &auth.redactor)))?;
        // A change sent twice is refused whole (409/412) and recomputed: safe to retry.
        let resp = match crate::http::send(&self.http, req, Idempotency::Idempotent, &self.retry, &auth.redactor).await
        {
            Ok(r) => r,
            Err(e) => {
                if e.status().is_some_and(|s| s.as_u16() == 401) {
                    // Drop the token: the next call fetches a new one.
                    self.credential.invalidate().await;
                }
                return Err(http_err(e));
            }
        };
        resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, &auth.redactor)))
    }

    /// The zone's DNS name (`managedZones.get`), once.
    async fn dns_name(&self) -> Result<&str, DnsError> {
        self.dns_name
            .get_or_try_init(|| async {
                let text =
                    self.call(Method::GET, &[], &[], None, "read the managed zone").await.map_err(|e| self.err(e))?;
                let z: ManagedZone = serde_json::from_str(&text).map_err(|e| {
                    self.err(Error::Decode { what: "read the managed zone".into(), message: e.to_string() })
                })?;
                Ok(normalize_name(&z.dns_name))
            })
            .await
            .map(String::as_str)
    }

    /// `name` fully qualified with the trailing dot, checked to be in the zone.
    async fn fqdn(&self, name: &str) -> Result<String, DnsError> {
        let n = normalize_name(name);
        let zone = self.dns_name().await?;
        if n != zone && !n.ends_with(&format!(".{zone}")) {
            return Err(DnsError::Invalid {
                provider: NAME,
                message: format!("{n} is not in the managed zone {zone}"),
            });
        }
        Ok(format!("{n}."))
    }

    /// Every record set (at `name` when given), across every page.
    async fn rrsets(&self, name: Option<&str>) -> Result<Vec<RecordSet>, DnsError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("maxResults", self.page_size.to_string())];
            if let Some(n) = name {
                q.push(("name", n.to_string()));
            }
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let text =
                self.call(Method::GET, &["rrsets"], &q, None, "list record sets").await.map_err(|e| self.err(e))?;
            let page: RecordSetPage = serde_json::from_str(&text)
                .map_err(|e| self.err(Error::Decode { what: "list record sets".into(), message: e.to_string() }))?;
            out.extend(page.rrsets);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                Some(_) => {
                    return Err(self.err(Error::Decode {
                        what: "list record sets".into(),
                        message: "nextPageToken repeats".into(),
                    }));
                }
                None => break,
            }
        }
        // Only the name asked for (a server ignoring the filter must not make us touch others).
        Ok(match name {
            Some(n) => out.into_iter().filter(|r| r.name.eq_ignore_ascii_case(n)).collect(),
            None => out,
        })
    }

    /// `changes.create`; `Ok(false)` when Cloud DNS refused it as stale (409/412).
    async fn change(&self, additions: Vec<RecordSet>, deletions: Vec<RecordSet>) -> Result<bool, DnsError> {
        let body = serde_json::json!({"kind": "dns#change", "additions": additions, "deletions": deletions});
        match self.call(Method::POST, &["changes"], &[], Some(body), "change record sets").await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.status(), Some(409 | 412)) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    fn split(sets: &[RecordSet]) -> (Option<RecordSet>, Option<RecordSet>, bool) {
        let a = sets.iter().find(|r| r.kind == "A").cloned();
        let txt = sets.iter().find(|r| r.kind == "TXT").cloned();
        let other = sets.iter().any(|r| r.kind != "A" && r.kind != "TXT");
        (a, txt, other)
    }
}

#[async_trait]
impl DnsProvider for GcpDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError> {
        let fqdn = self.fqdn(&record.name).await?;
        let ttl = if record.ttl == 0 { self.ttl } else { record.ttl };
        let want_a = RecordSet { name: fqdn.clone(), kind: "A".into(), ttl, rrdatas: vec![record.address.to_string()] };
        let want_txt = RecordSet {
            name: fqdn.clone(),
            kind: "TXT".into(),
            ttl,
            rrdatas: vec![format!("\"{}\"", record.owner.marker())],
        };
        for _ in 0..ATTEMPTS {
            let (a, txt, other) = Self::split(&self.rrsets(Some(&fqdn)).await?);
            let texts: Option<Vec<String>> = txt.as_ref().map(|t| t.rrdatas.iter().map(|d| unquote(d)).collect());
            match ownership(a.is_some(), other, texts.as_deref(), &record.owner) {
                Ownership::Foreign(why) => {
                    return Err(DnsError::NotOurs { provider: NAME, name: normalize_name(&fqdn), why });
                }
                Ownership::Free | Ownership::Ours { .. } => {}
            }
            let mut additions = Vec::new();
            let mut deletions = Vec::new();
            if a.as_ref() != Some(&want_a) {
                deletions.extend(a);
                additions.push(want_a.clone());
            }
            if txt.is_none() {
                additions.push(want_txt.clone());
            }
            if additions.is_empty() {
                return Ok(());
            }
            if self.change(additions, deletions).await? {
                return Ok(());
            }
        }
        Err(DnsError::Conflict {
            provider: NAME,
            message: format!("{fqdn}: the record sets kept changing under {ATTEMPTS} attempts"),
        })
    }

    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError> {
        let fqdn = self.fqdn(name).await?;
        for _ in 0..ATTEMPTS {
            let (a, txt, other) = Self::split(&self.rrsets(Some(&fqdn)).await?);
            let texts: Option<Vec<String>> = txt.as_ref().map(|t| t.rrdatas.iter().map(|d| unquote(d)).collect());
            match ownership(a.is_some(), other, texts.as_deref(), owner) {
                Ownership::Free => return Ok(()),
                Ownership::Foreign(why) => {
                    return Err(DnsError::NotOurs { provider: NAME, name: normalize_name(&fqdn), why });
                }
                Ownership::Ours { .. } => {}
            }
            let deletions: Vec<RecordSet> = a.into_iter().chain(txt).collect();
            if self.change(Vec::new(), deletions).await? {
                return Ok(());
            }
        }
        Err(DnsError::Conflict {
            provider: NAME,
            message: format!("{fqdn}: the record sets kept changing under {ATTEMPTS} attempts"),
        })
    }

    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let all = self.rrsets(None).await?;
        let mut out = Vec::new();
        for t in all.iter().filter(|r| r.kind == "TXT") {
            // A TXT set holding more than one text is not ours (the ownership rule).
            let [one] = t.rrdatas.as_slice() else { continue };
            let Some(owner) = DnsOwner::parse_marker(&unquote(one)) else { continue };
            if owner.deployment != deployment {
                continue;
            }
            let address = all
                .iter()
                .find(|r| r.kind == "A" && r.name.eq_ignore_ascii_case(&t.name))
                .and_then(|r| r.rrdatas.first())
                .and_then(|d| d.parse::<Ipv4Addr>().ok());
            out.push(OwnedRecord { name: normalize_name(&t.name), address, owner });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_dns_errors() {
        let e = |code: u16| {
            into_dns(
                Error::Http {
                    what: "change record sets".into(),
                    source: HttpError::Status {
                        status: reqwest::StatusCode::from_u16(code).unwrap(),
                        body: r#"{"error":{"code":1,"message":"m","errors":[{"reason":"r"}]}}"#.into(),
                        retry_after: None,
                    },
                },
                "managed zone z",
            )
            .class()
        };
        use crate::dns::ErrorClass as C;
        assert_eq!(
            (e(401), e(403), e(404), e(412), e(429), e(503), e(400)),
            (C::Auth, C::Permission, C::NotFound, C::Conflict, C::RateLimited, C::Transient, C::Invalid)
        );
        assert_eq!(unquote("\"a b\""), "a b");
        let r = RecordSet { name: "a.example.com.".into(), kind: "TXT".into(), ttl: 60, rrdatas: vec!["\"x\"".into()] };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"name": "a.example.com.", "type": "TXT", "ttl": 60, "rrdatas": ["\"x\""]})
        );
    }
}
