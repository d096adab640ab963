//! OCI DNS: the [`DnsProvider`] backend for a zone in Oracle Cloud's DNS service (API version
//! `20180115`, `DnsClient` of `oci-sdk-api.json`), signed with the DNS-provider config's own API key
//! exactly as the provider's requests ([`super::signer`]; the key is read on first use).
//!
//! # Calls
//! - `GetZone` (`GET /20180115/zones/{zoneNameOrId}`), once: the zone exists and its `name` (so an
//!   OCID works as `zone_name_or_id`, and names outside the zone are refused before any write).
//! - `GetDomainRecords` (`GET /20180115/zones/{zone}/records/{domain}`, every page by `limit`/`page`
//!   and `opc-next-page`): the records at one name, as `RecordCollection {items: [Record]}`.
//! - `PatchDomainRecords` (`PATCH /20180115/zones/{zone}/records/{domain}`, body
//!   `PatchDomainRecordsDetails {items: [RecordOperation]}`): one atomic change of the A record and its
//!   TXT ownership marker ([`crate::dns`]).
//! - `GetZoneRecords` (`GET /20180115/zones/{zone}/records`, every page): the zone's records, for
//!   [`DnsProvider::list_owned`].
//!
//! # Idempotent changes
//! Oracle documents `RecordOperation.operation` as: `REQUIRE` a precondition that the record data
//! exists, `PROHIBIT` a precondition that it does not, `ADD` that it exists after the change, `REMOVE`
//! that it does not; `ADD` and `REMOVE` succeed when nothing needs to change; fields left out match
//! any value (the model's doc in Oracle's SDK references, e.g.
//! <https://docs.oracle.com/en-us/iaas/tools/python/latest/api/dns/models/oci.dns.models.RecordOperation.html>).
//! Every change is computed from the records read at the name and carries that read as
//! preconditions (`PROHIBIT` any TXT/A record where none was read, `REQUIRE` the marker that was), so
//! a change made from a stale read (another writer, or our own earlier change whose answer was lost
//! and is retried) is refused whole; it is read again and recomputed, at most [`ATTEMPTS`] times.
//!
//! UNSOURCED: the status of a failed precondition. The spec gives none; we take 412 (and 409) as
//! "changed under us, read again"; any other refusal fails loudly as an error naming
//! `PatchDomainRecords`, never as a silently missing record.
//!
//! TXT data is sent quoted (`"kasm-autoscale deployment=... claim=..."`, OCI's presentation format for
//! TXT) and read with or without quotes. `compartmentId` (deprecated on these calls) and `scope` are
//! not sent: a private zone must be named by its OCID.

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::Error;
use super::builder::dns_url;
use super::client::{Client, error_message, segment};
use super::credential::{Credential, Source};
use crate::config::OciDnsConfig;
use crate::dns::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord, Ownership, normalize_name, ownership};
use crate::http::{ClientOptions, HttpError, RetryConfig, TlsOptions, build_client};
use crate::secrets::Secrets;

/// The backend's short name.
pub const NAME: &str = "oci_dns";
/// The DNS API's version path.
pub const DNS_VERSION: &str = "20180115";
/// How many times a change refused as stale is recomputed.
pub const ATTEMPTS: usize = 3;

/// `Record` (the fields we read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    rtype: String,
    #[serde(default)]
    rdata: String,
    #[serde(default)]
    ttl: Option<u32>,
}

/// `RecordCollection`.
#[derive(Debug, Deserialize)]
struct RecordCollection {
    items: Vec<Record>,
}

/// `RecordOperation` (the fields we send).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct RecordOperation {
    domain: String,
    rtype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    operation: &'static str,
}

impl RecordOperation {
    fn new(operation: &'static str, domain: &str, rtype: &'static str) -> Self {
        RecordOperation { domain: domain.to_string(), rtype, rdata: None, ttl: None, operation }
    }

    fn rdata(mut self, rdata: &str) -> Self {
        self.rdata = Some(rdata.to_string());
        self
    }

    fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// An OCI DNS backend bound to one zone.
#[derive(Debug)]
pub struct OciDns {
    client: Client,
    zone: String,
    ttl: u32,
    config: String,
    /// The zone's name (normalised), read once by `GetZone`.
    zone_name: tokio::sync::OnceCell<String>,
}

fn into_dns(e: Error, context: &str) -> DnsError {
    let message = match &e {
        Error::Http { what, source: HttpError::Status { body, .. } } => {
            let (code, said) = error_message(body);
            let hint = if code == "NotAuthorizedOrNotFound" {
                " (a missing IAM policy, e.g. `Allow group <g> to manage dns in compartment <c>`, or a wrong zone)"
            } else {
                ""
            };
            format!("{context}: failed to {what}: {code} {said}{hint}")
        }
        other => format!("{context}: {other}"),
    };
    match e {
        Error::Http { source: HttpError::Status { status, retry_after, .. }, .. } => match status.as_u16() {
            401 => DnsError::Unauthenticated {
                provider: NAME,
                message: format!(
                    "{message} (the request signature was refused: check oci_private_key, oci_public_key_fingerprint, \
                     oci_user_ocid, oci_tenancy_ocid and this machine's clock)"
                ),
            },
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

/// The records at a name split by type: A records, TXT records, whether others exist.
fn split(records: &[Record]) -> (Vec<&Record>, Vec<&Record>, bool) {
    let a = records.iter().filter(|r| r.rtype.eq_ignore_ascii_case("A")).collect();
    let txt = records.iter().filter(|r| r.rtype.eq_ignore_ascii_case("TXT")).collect();
    let other = records.iter().any(|r| !r.rtype.eq_ignore_ascii_case("A") && !r.rtype.eq_ignore_ascii_case("TXT"));
    (a, txt, other)
}

impl OciDns {
    /// The backend for `cfg` with no I/O: the API key is read from `secrets` on the first call (and
    /// read again after a refused signature, as the provider's); `endpoint_url` and `ca_bundle` of the
    /// config are honoured. Fails only when the config cannot make a client.
    pub fn from_config(cfg: &OciDnsConfig, secrets: Arc<dyn Secrets>) -> Result<Self, DnsError> {
        let context = format!("DNS-provider config {}", cfg.name);
        let base = dns_url(cfg.endpoint_url.as_deref(), &cfg.oci_region).map_err(|e| into_dns(e, &context))?;
        let http = build_client(&ClientOptions {
            tls: TlsOptions { verify: true, ca_pem: cfg.ca_bundle.clone() },
            ..ClientOptions::default()
        })
        .map_err(|source| into_dns(Error::Http { what: "build the HTTP client".into(), source }, &context))?;
        let source = Source {
            secrets,
            reference: cfg.oci_private_key.clone(),
            tenancy: cfg.oci_tenancy_ocid.clone(),
            user: cfg.oci_user_ocid.clone(),
            fingerprint: cfg.oci_public_key_fingerprint.clone(),
        };
        let client =
            Client::new(http, base.clone(), base.clone(), base, Credential::new(source), RetryConfig::default());
        Ok(OciDns {
            client,
            zone: cfg.zone_name_or_id.trim().to_string(),
            ttl: cfg.ttl,
            config: cfg.name.clone(),
            zone_name: tokio::sync::OnceCell::new(),
        })
    }

    /// Uses `retry` for HTTP calls.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    /// Lists with `n` records per page (tests use small pages).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.client = self.client.with_page_size(n);
        self
    }

    fn err(&self, e: Error) -> DnsError {
        into_dns(e, &format!("DNS-provider config {} (zone {})", self.config, self.zone))
    }

    fn path(&self, tail: &str) -> String {
        format!("{DNS_VERSION}/zones/{}{tail}", segment(&self.zone))
    }

    /// The zone's name (`GetZone`), once.
    async fn zone_name(&self) -> Result<&str, DnsError> {
        self.zone_name
            .get_or_try_init(|| async {
                let what = "read the zone (GetZone)";
                let (text, _) =
                    self.client.call(what, Method::GET, &self.path(""), &[], None).await.map_err(|e| self.err(e))?;
                let zone: Value = serde_json::from_str(&text)
                    .map_err(|e| self.err(Error::Decode { what: what.into(), message: e.to_string() }))?;
                match zone.get("name").and_then(Value::as_str) {
                    Some(n) if !n.trim().is_empty() => Ok(normalize_name(n)),
                    _ => Err(self.err(Error::Decode { what: what.into(), message: "the zone has no `name`".into() })),
                }
            })
            .await
            .map(String::as_str)
    }

    /// `name` normalised, checked to be in the zone.
    async fn in_zone(&self, name: &str) -> Result<String, DnsError> {
        let n = normalize_name(name);
        let zone = self.zone_name().await?;
        if n != zone && !n.ends_with(&format!(".{zone}")) {
            return Err(DnsError::Invalid { provider: NAME, message: format!("{n} is not in the zone {zone}") });
        }
        Ok(n)
    }

    /// Every record of a records collection at `tail` (`/records` or `/records/{domain}`), every page.
    async fn records(&self, what: &str, tail: &str) -> Result<Vec<Record>, DnsError> {
        let limit = self.client.page_size().to_string();
        let mut page: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let mut q = vec![("limit", limit.as_str())];
            if let Some(p) = &page {
                q.push(("page", p.as_str()));
            }
            let (text, next) =
                self.client.call(what, Method::GET, &self.path(tail), &q, None).await.map_err(|e| self.err(e))?;
            let c: RecordCollection = serde_json::from_str(&text)
                .map_err(|e| self.err(Error::Decode { what: what.into(), message: e.to_string() }))?;
            out.extend(c.items);
            match next {
                Some(n) if page.as_deref() != Some(n.as_str()) => page = Some(n),
                Some(_) => {
                    return Err(self.err(Error::Decode { what: what.into(), message: "opc-next-page repeats".into() }));
                }
                None => return Ok(out),
            }
        }
    }

    /// The records at `name` (only that name, whatever the server answers).
    async fn records_at(&self, name: &str) -> Result<Vec<Record>, DnsError> {
        let all = self
            .records("read the records at the name (GetDomainRecords)", &format!("/records/{}", segment(name)))
            .await?;
        Ok(all.into_iter().filter(|r| normalize_name(&r.domain) == name).collect())
    }

    /// `PatchDomainRecords`; `Ok(false)` when a precondition failed (the records changed since read).
    async fn patch(&self, name: &str, items: Vec<RecordOperation>) -> Result<bool, DnsError> {
        let what = "change the records at the name (PatchDomainRecords)";
        let body = serde_json::json!({ "items": items });
        let path = self.path(&format!("/records/{}", segment(name)));
        match self.client.call(what, Method::PATCH, &path, &[], Some(&body)).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.status(), Some(409 | 412)) => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    fn kept_changing(name: &str) -> DnsError {
        DnsError::Conflict {
            provider: NAME,
            message: format!("{name}: the records kept changing under {ATTEMPTS} attempts"),
        }
    }
}

#[async_trait]
impl DnsProvider for OciDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError> {
        let name = self.in_zone(&record.name).await?;
        let ttl = if record.ttl == 0 { self.ttl } else { record.ttl };
        let want = record.address.to_string();
        let marker = format!("\"{}\"", record.owner.marker());
        for _ in 0..ATTEMPTS {
            let records = self.records_at(&name).await?;
            let (a, txt, other) = split(&records);
            let texts: Option<Vec<String>> = (!txt.is_empty()).then(|| txt.iter().map(|r| unquote(&r.rdata)).collect());
            if let Ownership::Foreign(why) = ownership(!a.is_empty(), other, texts.as_deref(), &record.owner) {
                return Err(DnsError::NotOurs { provider: NAME, name, why });
            }
            let a_done = a.len() == 1 && a[0].rdata.trim() == want && a[0].ttl == Some(ttl);
            if a_done && !txt.is_empty() {
                return Ok(());
            }
            // Preconditions: the name as read.
            let mut ops = Vec::new();
            match txt.first() {
                None => ops.push(RecordOperation::new("PROHIBIT", &name, "TXT")),
                Some(t) => ops.push(RecordOperation::new("REQUIRE", &name, "TXT").rdata(&t.rdata)),
            }
            if a.is_empty() {
                ops.push(RecordOperation::new("PROHIBIT", &name, "A"));
            }
            if !a_done {
                for old in a.iter().filter(|r| r.rdata.trim() != want) {
                    ops.push(RecordOperation::new("REMOVE", &name, "A").rdata(&old.rdata));
                }
                ops.push(RecordOperation::new("ADD", &name, "A").rdata(&want).ttl(ttl));
            }
            if txt.is_empty() {
                ops.push(RecordOperation::new("ADD", &name, "TXT").rdata(&marker).ttl(ttl));
            }
            if self.patch(&name, ops).await? {
                return Ok(());
            }
        }
        Err(Self::kept_changing(&name))
    }

    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError> {
        let name = self.in_zone(name).await?;
        for _ in 0..ATTEMPTS {
            let records = self.records_at(&name).await?;
            let (a, txt, other) = split(&records);
            let texts: Option<Vec<String>> = (!txt.is_empty()).then(|| txt.iter().map(|r| unquote(&r.rdata)).collect());
            match ownership(!a.is_empty(), other, texts.as_deref(), owner) {
                Ownership::Free => return Ok(()),
                Ownership::Foreign(why) => return Err(DnsError::NotOurs { provider: NAME, name, why }),
                Ownership::Ours { .. } => {}
            }
            let mut ops = Vec::new();
            for t in &txt {
                ops.push(RecordOperation::new("REQUIRE", &name, "TXT").rdata(&t.rdata));
            }
            for r in &a {
                ops.push(RecordOperation::new("REMOVE", &name, "A").rdata(&r.rdata));
            }
            for t in &txt {
                ops.push(RecordOperation::new("REMOVE", &name, "TXT").rdata(&t.rdata));
            }
            if self.patch(&name, ops).await? {
                return Ok(());
            }
        }
        Err(Self::kept_changing(&name))
    }

    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        self.zone_name().await?;
        let all = self.records("list the zone's records (GetZoneRecords)", "/records").await?;
        let mut names: Vec<String> = all.iter().map(|r| normalize_name(&r.domain)).collect();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let at: Vec<Record> = all.iter().filter(|r| normalize_name(&r.domain) == name).cloned().collect();
            let (a, txt, _) = split(&at);
            // A TXT record set holding more than one text is not ours (the ownership rule).
            let [one] = txt.as_slice() else { continue };
            let Some(owner) = DnsOwner::parse_marker(&unquote(&one.rdata)) else { continue };
            if owner.deployment != deployment {
                continue;
            }
            let address = a.first().and_then(|r| r.rdata.trim().parse::<Ipv4Addr>().ok());
            out.push(OwnedRecord { name, address, owner });
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
                    what: "change the records at the name (PatchDomainRecords)".into(),
                    source: HttpError::Status {
                        status: reqwest::StatusCode::from_u16(code).unwrap(),
                        body: r#"{"code":"NotAuthorizedOrNotFound","message":"m"}"#.into(),
                        retry_after: None,
                    },
                },
                "DNS-provider config z",
            )
        };
        use crate::dns::ErrorClass as C;
        let classes: Vec<C> = [401, 403, 404, 412, 409, 429, 503, 400].iter().map(|c| e(*c).class()).collect();
        assert_eq!(
            classes,
            [C::Auth, C::Permission, C::NotFound, C::Conflict, C::Conflict, C::RateLimited, C::Transient, C::Invalid]
        );
        let text = e(404).to_string();
        assert!(text.contains("PatchDomainRecords") && text.contains("missing IAM policy"), "{text}");
        assert!(e(401).to_string().contains("clock"));
    }

    #[test]
    fn operations_have_the_sdk_wire_names() {
        let op = RecordOperation::new("ADD", "a.example.com", "TXT").rdata("\"x y\"").ttl(60);
        assert_eq!(
            serde_json::to_value(&op).unwrap(),
            serde_json::json!({"domain": "a.example.com", "rtype": "TXT", "rdata": "\"x y\"", "ttl": 60, "operation": "ADD"})
        );
        assert_eq!(
            serde_json::to_value(RecordOperation::new("PROHIBIT", "a.example.com", "A")).unwrap(),
            serde_json::json!({"domain": "a.example.com", "rtype": "A", "operation": "PROHIBIT"})
        );
        assert_eq!(unquote("\"a b\""), "a b");
        assert_eq!(unquote("plain"), "plain");
    }
}
