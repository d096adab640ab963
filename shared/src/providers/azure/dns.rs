//! Azure DNS: the [`DnsProvider`] backend for a public DNS zone in Azure (`Microsoft.Network/dnsZones`,
//! api-version 2018-05-01), with the DNS-provider config's own subscription, resource group and app
//! credentials (client credentials, as the VM provider).
//!
//! Record sets are addressed by zone, type and name relative to the zone (`@` for the apex):
//! `GET`/`PUT`/`DELETE .../dnsZones/{zone}/{A|TXT}/{name}`. A `PUT` replaces the whole record set, so an
//! upsert is idempotent. Ownership is the port's companion TXT record set ([`crate::dns`]): an upsert
//! writes the TXT marker **before** the A record set and a delete removes the A record set **before** the
//! marker, so an A record of ours is never without its marker. Listing reads the zone's TXT record sets
//! (`GET .../dnsZones/{zone}/TXT`, every page by `nextLink`), then its A record sets.
//!
//! A missing record set answers 404 with code `NotFound`; a 404 with another code (the zone or its
//! resource group is missing) is [`DnsError::ZoneNotFound`]. UNSOURCED: dns.json gives only the
//! generic `CloudError` for these; the codes are what Azure DNS is reported to answer. Being wrong
//! fails loudly (a zone error naming the call), never as a silently missing record.

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::Error;
use super::builder::arm_client;
use super::client::{Call, Client, DNS_API, error_message};
use super::credential::Source;
use crate::config::AzureDnsConfig;
use crate::dns::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord, Ownership, normalize_name, ownership};
use crate::http::{HttpError, RetryConfig};
use crate::providers::Timings;
use crate::secrets::Secrets;

/// The backend's short name.
pub const NAME: &str = "azure_dns";

/// An Azure DNS backend bound to one zone.
#[derive(Debug)]
pub struct AzureDns {
    client: Client,
    subscription: String,
    resource_group: String,
    zone: String,
    config: String,
}

/// A record set as listed (dns.json `RecordSet`, the fields we read).
#[derive(Debug, Deserialize)]
struct RecordSet {
    name: String,
    #[serde(default)]
    properties: RecordSetProperties,
}

#[derive(Debug, Default, Deserialize)]
struct RecordSetProperties {
    #[serde(default, rename = "ARecords")]
    a_records: Vec<ARecordJson>,
    #[serde(default, rename = "TXTRecords")]
    txt_records: Vec<TxtRecordJson>,
}

#[derive(Debug, Deserialize)]
struct ARecordJson {
    #[serde(default, rename = "ipv4Address")]
    ipv4_address: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TxtRecordJson {
    #[serde(default)]
    value: Vec<String>,
}

impl RecordSet {
    fn texts(&self) -> Vec<String> {
        self.properties.txt_records.iter().map(|t| t.value.concat()).collect()
    }

    fn address(&self) -> Option<Ipv4Addr> {
        self.properties.a_records.iter().find_map(|a| a.ipv4_address.as_deref().and_then(|s| s.parse().ok()))
    }
}

impl AzureDns {
    /// The backend for `cfg` with no I/O: its client secret is read from `secrets` when the first
    /// token is needed (as the VM provider's is); `endpoint_url`/`authority_url`/`ca_bundle` of the
    /// config are honoured.
    pub fn from_config(cfg: &AzureDnsConfig, secrets: Arc<dyn Secrets>) -> Result<Self, DnsError> {
        let zone = normalize_name(&cfg.zone_name).trim_start_matches('.').to_string();
        if zone.is_empty() {
            return Err(DnsError::Invalid {
                provider: NAME,
                message: format!("DNS-provider config {}: zone_name is empty", cfg.name),
            });
        }
        let source =
            Source::Secret { secrets, reference: cfg.azure_client_secret.clone(), field: "azure_client_secret" };
        let client = arm_client(
            cfg.azure_authority,
            cfg.authority_url.as_deref(),
            cfg.endpoint_url.as_deref(),
            cfg.ca_bundle.as_deref(),
            &cfg.azure_tenant_id,
            &cfg.azure_client_id,
            source,
            RetryConfig::default(),
            std::time::Duration::from_secs(30),
            Timings::default(),
        )
        .map_err(|e| into_dns(e, &cfg.name))?;
        Ok(AzureDns {
            client,
            subscription: cfg.azure_subscription_id.trim().to_string(),
            resource_group: cfg.azure_resource_group.trim().to_string(),
            zone,
            config: cfg.name.clone(),
        })
    }

    /// Uses `retry` for HTTP calls.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.client = self.client.with_retry(retry);
        self
    }

    fn url(&self, tail: &[&str]) -> Url {
        let mut path = vec![
            "subscriptions",
            self.subscription.as_str(),
            "resourceGroups",
            self.resource_group.as_str(),
            "providers",
            "Microsoft.Network",
            "dnsZones",
            self.zone.as_str(),
        ];
        path.extend_from_slice(tail);
        self.client.url(&path, DNS_API)
    }

    /// `name` relative to the zone (`@` for the apex), or an error naming it.
    fn relative(&self, name: &str) -> Result<String, DnsError> {
        let n = normalize_name(name);
        if n == self.zone {
            return Ok("@".into());
        }
        n.strip_suffix(&format!(".{}", self.zone)).map(str::to_string).ok_or_else(|| DnsError::Invalid {
            provider: NAME,
            message: format!("{n} is not in the zone {}", self.zone),
        })
    }

    fn absolute(&self, relative: &str) -> String {
        if relative == "@" || relative.is_empty() {
            self.zone.clone()
        } else {
            normalize_name(&format!("{relative}.{}", self.zone))
        }
    }

    fn err(&self, e: Error) -> DnsError {
        into_dns(e, &format!("DNS-provider config {} (zone {})", self.config, self.zone))
    }

    /// The record set of `kind` at `rel`, `None` when there is none.
    async fn get(&self, kind: &str, rel: &str) -> Result<Option<RecordSet>, DnsError> {
        let c = Call {
            method: Method::GET,
            url: self.url(&[kind, rel]),
            body: None,
            what: "read a DNS record set",
            secrets: Vec::new(),
        };
        match self.client.call(&c).await {
            Ok(a) => serde_json::from_str(&a.body)
                .map(Some)
                .map_err(|e| self.err(Error::Decode { what: "read a DNS record set".into(), message: e.to_string() })),
            Err(e) if is_missing_record(&e) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn put(&self, kind: &str, rel: &str, properties: Value) -> Result<(), DnsError> {
        let c = Call {
            method: Method::PUT,
            url: self.url(&[kind, rel]),
            body: Some(json!({"properties": properties})),
            what: "write a DNS record set",
            secrets: Vec::new(),
        };
        self.client.call(&c).await.map(drop).map_err(|e| self.err(e))
    }

    async fn delete(&self, kind: &str, rel: &str) -> Result<(), DnsError> {
        let c = Call {
            method: Method::DELETE,
            url: self.url(&[kind, rel]),
            body: None,
            what: "delete a DNS record set",
            secrets: Vec::new(),
        };
        match self.client.call(&c).await {
            Ok(_) => Ok(()),
            Err(e) if is_missing_record(&e) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Every record set of `kind` in the zone, across pages.
    async fn list(&self, kind: &str) -> Result<Vec<RecordSet>, DnsError> {
        self.client.list(self.url(&[kind]), "list the zone's DNS record sets").await.map_err(|e| self.err(e))
    }

    /// What is at `rel`: (A record set, TXT texts, a CNAME).
    async fn at(&self, rel: &str) -> Result<(Option<RecordSet>, Option<Vec<String>>, bool), DnsError> {
        let a = self.get("A", rel).await?;
        let txt = self.get("TXT", rel).await?.map(|t| t.texts());
        let cname = self.get("CNAME", rel).await?.is_some();
        Ok((a, txt, cname))
    }
}

/// A 404 for a record set that does not exist (code `NotFound`), not for a missing zone.
fn is_missing_record(e: &Error) -> bool {
    match e {
        Error::Http { source: HttpError::Status { status, body, .. }, .. } if status.as_u16() == 404 => {
            matches!(error_message(body).0.as_str(), "NotFound" | "")
        }
        _ => false,
    }
}

fn into_dns(e: Error, context: &str) -> DnsError {
    let message = match &e {
        Error::Http { what, source: HttpError::Status { body, .. } } => {
            let (code, said) = error_message(body);
            format!("{context}: failed to {what}: {code} {said}").replace("  ", " ")
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

#[async_trait]
impl DnsProvider for AzureDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError> {
        let fqdn = normalize_name(&record.name);
        let rel = self.relative(&fqdn)?;
        let (a, txt, cname) = self.at(&rel).await?;
        match ownership(a.is_some(), cname, txt.as_deref(), &record.owner) {
            Ownership::Foreign(why) => return Err(DnsError::NotOurs { provider: NAME, name: fqdn, why }),
            Ownership::Free => {
                self.put("TXT", &rel, json!({"TTL": record.ttl, "TXTRecords": [{"value": [record.owner.marker()]}]}))
                    .await?;
            }
            Ownership::Ours { .. } => {}
        }
        self.put("A", &rel, json!({"TTL": record.ttl, "ARecords": [{"ipv4Address": record.address.to_string()}]})).await
    }

    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError> {
        let fqdn = normalize_name(name);
        let rel = self.relative(&fqdn)?;
        let (a, txt, cname) = self.at(&rel).await?;
        match ownership(a.is_some(), cname, txt.as_deref(), owner) {
            Ownership::Free => Ok(()),
            Ownership::Foreign(why) => Err(DnsError::NotOurs { provider: NAME, name: fqdn, why }),
            Ownership::Ours { .. } => {
                self.delete("A", &rel).await?;
                self.delete("TXT", &rel).await
            }
        }
    }

    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let mut owned = Vec::new();
        for set in self.list("TXT").await? {
            let texts = set.texts();
            let [one] = texts.as_slice() else { continue };
            let Some(owner) = DnsOwner::parse_marker(one) else { continue };
            if owner.deployment == deployment {
                owned.push(OwnedRecord { name: self.absolute(&normalize_name(&set.name)), address: None, owner });
            }
        }
        if owned.is_empty() {
            return Ok(owned);
        }
        let a = self.list("A").await?;
        for o in &mut owned {
            o.address =
                a.iter().filter(|s| self.absolute(&normalize_name(&s.name)) == o.name).find_map(RecordSet::address);
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sets_parse_in_the_spec_shape() {
        let s: RecordSet = serde_json::from_value(json!({"id": "/x", "name": "kasm-1", "type": "Microsoft.Network/dnszones/TXT",
            "etag": "e", "properties": {"TTL": 60, "fqdn": "kasm-1.example.com.", "TXTRecords": [{"value": ["kasm-autoscale ", "deployment=a claim=b"]}]}}))
        .unwrap();
        assert_eq!(s.texts(), vec!["kasm-autoscale deployment=a claim=b".to_string()]);
        let a: RecordSet = serde_json::from_value(
            json!({"name": "kasm-1", "properties": {"TTL": 60, "ARecords": [{"ipv4Address": "10.0.0.4"}]}}),
        )
        .unwrap();
        assert_eq!(a.address(), Some(Ipv4Addr::new(10, 0, 0, 4)));
    }

    #[test]
    fn a_missing_record_set_is_told_from_a_missing_zone() {
        let e = |code: &str| Error::Http {
            what: "read".into(),
            source: HttpError::Status {
                status: reqwest::StatusCode::NOT_FOUND,
                body: json!({"error": {"code": code, "message": "m"}}).to_string(),
                retry_after: None,
            },
        };
        assert!(is_missing_record(&e("NotFound")));
        assert!(!is_missing_record(&e("ParentResourceNotFound")));
        assert!(matches!(into_dns(e("ParentResourceNotFound"), "z"), DnsError::ZoneNotFound { .. }));
    }
}
