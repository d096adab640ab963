//! DigitalOcean DNS: the [`DnsProvider`] backend for a domain managed in DigitalOcean
//! (`/v2/domains/{domain}/records`).
//!
//! DigitalOcean records carry no tags and the API has no atomic multi-record change, so ownership
//! is the port's companion TXT record ([`crate::dns`]): an upsert writes the TXT marker **before**
//! the A record and a delete removes the A record **before** the marker, so an A record of ours is
//! never without its marker; a marker left alone by an interrupted change is cleaned by the next
//! upsert or delete of its owner. Records are read by name (`GET ...records?name=<fqdn>`, every
//! page) and changed by id (`PUT`/`DELETE .../records/{id}`). Record names in answers are relative
//! to the domain (`@` for the apex); TXT `data` is read with or without surrounding quotes
//! (UNSOURCED: the spec does not say whether DigitalOcean returns TXT data quoted).

use async_trait::async_trait;
use reqwest::Url;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::Error;
use super::builder::{base_url, http_client};
use super::client::{Client, DomainRecord};
use super::credential::{Credential, Source};
use crate::config::DigitalOceanDnsConfig;
use crate::dns::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord, Ownership, normalize_name, ownership};
use crate::http::{HttpError, RetryConfig};
use crate::secrets::Secrets;

/// The backend's short name.
pub const NAME: &str = "digital_ocean_dns";

/// DigitalOcean's smallest TTL (seconds; UNSOURCED in the spec, from DigitalOcean's control panel).
pub const MIN_TTL: u32 = 30;

/// A DigitalOcean DNS backend bound to one domain.
#[derive(Debug)]
pub struct DigitalOceanDns {
    client: Client,
    domain: String,
}

impl DigitalOceanDns {
    /// The backend for `cfg` (no I/O): its token is read from `secrets` on the first call and read
    /// again once after a 401 (a rotated token is picked up), as the VM provider's is.
    pub fn from_config(cfg: &DigitalOceanDnsConfig, secrets: Arc<dyn Secrets>) -> Result<Self, DnsError> {
        Self::build(cfg, secrets).map_err(|e| into_dns(e, &cfg.name))
    }

    fn build(cfg: &DigitalOceanDnsConfig, secrets: Arc<dyn Secrets>) -> Result<Self, Error> {
        let domain = normalize_name(&cfg.domain).trim_start_matches('.').to_string();
        if domain.is_empty() {
            return Err(Error::Config { message: "domain is empty".into() });
        }
        let base: Url = base_url(cfg.endpoint_url.as_deref())?;
        let http = http_client(cfg.ca_bundle.as_deref(), std::time::Duration::from_secs(30))?;
        let source = Source::Secret { secrets, reference: cfg.token.clone(), field: "digital_ocean_token" };
        let client = Client::new(http, base, Credential::new(source), RetryConfig::default());
        Ok(DigitalOceanDns { client, domain })
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

    /// `name` relative to the domain (`@` for the apex), or an error naming it.
    fn relative(&self, name: &str) -> Result<String, DnsError> {
        let n = normalize_name(name);
        if n == self.domain {
            return Ok("@".into());
        }
        n.strip_suffix(&format!(".{}", self.domain)).map(str::to_string).ok_or_else(|| DnsError::Invalid {
            provider: NAME,
            message: format!("{n} is not in the domain {}", self.domain),
        })
    }

    fn absolute(&self, relative: &str) -> String {
        if relative == "@" || relative.is_empty() {
            self.domain.clone()
        } else {
            normalize_name(&format!("{relative}.{}", self.domain))
        }
    }

    /// The records at `fqdn`: (A records, TXT records, whether records of other types exist).
    async fn at(&self, fqdn: &str) -> Result<(Vec<DomainRecord>, Vec<DomainRecord>, bool), DnsError> {
        let all = self.client.records_named(&self.domain, fqdn).await.map_err(|e| self.err(e))?;
        // Only the name asked for (a server ignoring the filter must not make us touch others).
        let rel = self.relative(fqdn)?;
        let all: Vec<DomainRecord> = all.into_iter().filter(|r| normalize_name(&r.name) == rel).collect();
        let a = all.iter().filter(|r| r.kind == "A").cloned().collect();
        let txt = all.iter().filter(|r| r.kind == "TXT").cloned().collect();
        let other = all.iter().any(|r| r.kind != "A" && r.kind != "TXT");
        Ok((a, txt, other))
    }

    fn err(&self, e: Error) -> DnsError {
        into_dns(e, &self.domain)
    }

    async fn delete_record(&self, id: u64) -> Result<(), DnsError> {
        match self.client.delete_record(&self.domain, id).await {
            Ok(()) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// TXT data without the quotes DNS presentation format may put around it.
fn unquote(data: &str) -> String {
    let d = data.trim();
    d.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap_or(d).to_string()
}

fn into_dns(e: Error, context: &str) -> DnsError {
    let message = match &e {
        Error::Http { what, source: HttpError::Status { body, .. } } => {
            let (id, said) = super::client::error_message(body);
            format!("{context}: failed to {what}: {id} {said}").replace("  ", " ")
        }
        other => format!("{context}: {other}"),
    };
    match e {
        Error::Http { source: HttpError::Status { status, retry_after, .. }, .. } => match status.as_u16() {
            401 => DnsError::Unauthenticated { provider: NAME, message },
            403 => DnsError::PermissionDenied { provider: NAME, message },
            404 => DnsError::ZoneNotFound { provider: NAME, message },
            409 => DnsError::Conflict { provider: NAME, message },
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
impl DnsProvider for DigitalOceanDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError> {
        let fqdn = normalize_name(&record.name);
        let rel = self.relative(&fqdn)?;
        let (a, txt, other) = self.at(&fqdn).await?;
        let texts: Vec<String> = txt.iter().map(|r| unquote(&r.data)).collect();
        match ownership(!a.is_empty(), other, (!txt.is_empty()).then_some(texts.as_slice()), &record.owner) {
            Ownership::Foreign(why) => return Err(DnsError::NotOurs { provider: NAME, name: fqdn, why }),
            Ownership::Free => {
                let marker = DomainRecord {
                    id: 0,
                    kind: "TXT".into(),
                    name: rel.clone(),
                    data: record.owner.marker(),
                    ttl: Some(record.ttl.max(MIN_TTL)),
                };
                self.client.create_record(&self.domain, &marker).await.map_err(|e| self.err(e))?;
            }
            Ownership::Ours { .. } => {}
        }
        let want = DomainRecord {
            id: 0,
            kind: "A".into(),
            name: rel,
            data: record.address.to_string(),
            ttl: Some(record.ttl.max(MIN_TTL)),
        };
        match a.split_first() {
            None => self.client.create_record(&self.domain, &want).await.map_err(|e| self.err(e))?,
            Some((first, rest)) => {
                if first.data != want.data || first.ttl != want.ttl {
                    self.client.update_record(&self.domain, first.id, &want).await.map_err(|e| self.err(e))?;
                }
                for r in rest {
                    self.delete_record(r.id).await?;
                }
            }
        }
        Ok(())
    }

    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError> {
        let fqdn = normalize_name(name);
        let (a, txt, other) = self.at(&fqdn).await?;
        let texts: Vec<String> = txt.iter().map(|r| unquote(&r.data)).collect();
        match ownership(!a.is_empty(), other, (!txt.is_empty()).then_some(texts.as_slice()), owner) {
            Ownership::Free => Ok(()),
            Ownership::Foreign(why) => Err(DnsError::NotOurs { provider: NAME, name: fqdn, why }),
            Ownership::Ours { .. } => {
                for r in a.iter().chain(txt.iter()) {
                    self.delete_record(r.id).await?;
                }
                Ok(())
            }
        }
    }

    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let txt = self.client.records_of_type(&self.domain, "TXT").await.map_err(|e| self.err(e))?;
        let mut owned: Vec<OwnedRecord> = Vec::new();
        for r in &txt {
            let Some(owner) = DnsOwner::parse_marker(&unquote(&r.data)) else { continue };
            if owner.deployment != deployment {
                continue;
            }
            let name = self.absolute(&normalize_name(&r.name));
            // A name holding more than one TXT record is not ours (the ownership rule).
            let sole = txt.iter().filter(|t| normalize_name(&t.name) == normalize_name(&r.name)).count() == 1;
            if sole {
                owned.push(OwnedRecord { name, address: None, owner });
            }
        }
        if owned.is_empty() {
            return Ok(owned);
        }
        let a = self.client.records_of_type(&self.domain, "A").await.map_err(|e| self.err(e))?;
        for o in &mut owned {
            o.address = a
                .iter()
                .filter(|r| self.absolute(&normalize_name(&r.name)) == o.name)
                .find_map(|r| r.data.parse::<Ipv4Addr>().ok());
        }
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;

    fn cfg() -> DigitalOceanDnsConfig {
        DigitalOceanDnsConfig {
            name: "do-dns".into(),
            token: SecretRef::Env("X".into()),
            domain: "Example.com.".into(),
            ttl: 10,
            endpoint_url: Some("http://127.0.0.1:1".into()),
            ca_bundle: None,
        }
    }

    #[test]
    fn names_are_made_relative_to_the_domain() {
        let d = DigitalOceanDns::from_config(&cfg(), Arc::new(crate::secrets::StaticSecrets::default())).unwrap();
        assert_eq!(d.relative("kasm-1.example.com").unwrap(), "kasm-1");
        assert_eq!(d.relative("example.com.").unwrap(), "@");
        assert!(matches!(d.relative("kasm-1.example.org"), Err(DnsError::Invalid { .. })));
        assert_eq!(d.absolute("@"), "example.com");
        assert_eq!(d.absolute("KASM-1"), "kasm-1.example.com");
        assert_eq!(unquote("\"kasm-autoscale deployment=a claim=b\""), "kasm-autoscale deployment=a claim=b");
    }

    #[test]
    fn api_errors_map_to_dns_errors() {
        let e = |code: u16| {
            into_dns(
                Error::Http {
                    what: "create a DNS record".into(),
                    source: HttpError::Status {
                        status: reqwest::StatusCode::from_u16(code).unwrap(),
                        body: r#"{"id":"x","message":"m"}"#.into(),
                        retry_after: None,
                    },
                },
                "example.com",
            )
            .class()
        };
        use crate::dns::ErrorClass as C;
        assert_eq!(
            (e(401), e(403), e(404), e(429), e(503), e(422)),
            (C::Auth, C::Permission, C::NotFound, C::RateLimited, C::Transient, C::Invalid)
        );
    }
}
