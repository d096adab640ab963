//! DNS registration (Kasm's `register_dns`): one small port, [`DnsProvider`], that keeps the A record
//! `<vm_name>.<base_domain_name>` of each VM we create; an in-memory backend ([`memory`]); one shared
//! conformance suite ([`conformance`]); and a registry from DNS-provider config to backend ([`registry`]).
//! The cloud backends live with their provider (`providers/<name>/dns.rs`): AWS Route 53 now, the
//! others with their provider issues.
//!
//! # Ownership
//! DNS records carry no tags, so every A record we make has a companion **TXT record at the same name**
//! holding the marker `kasm-autoscale deployment=<deployment_id> claim=<claim id>` ([`DnsOwner::marker`]),
//! written in the same change as the A record where the API has atomic changes. A name is ours only
//! when its TXT record set is exactly that one marker; a backend never changes or deletes a name whose
//! records are not ours ([`DnsError::NotOurs`]), and lists only names carrying its deployment's marker.

pub mod conformance;
pub mod memory;
pub mod registry;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

pub use crate::providers::ErrorClass;

use crate::model::{ClaimId, Instance};

/// Who an A record belongs to: one claim of one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsOwner {
    /// The deployment id (`settings.deployment_id`).
    pub deployment: String,
    /// The claim whose VM the record names.
    pub claim: ClaimId,
}

/// What every marker starts with.
const MARKER_PREFIX: &str = "kasm-autoscale";

impl DnsOwner {
    /// The owner of a claim's record.
    pub fn for_claim(deployment: &str, inst: &Instance) -> Self {
        Self { deployment: deployment.to_string(), claim: inst.id.clone() }
    }

    /// The ownership marker, the text of the companion TXT record:
    /// `kasm-autoscale deployment=<deployment> claim=<claim>` (deployment ids are letters, digits, `-` and
    /// `_`; claim ids are ULIDs, so the text needs no quoting inside the TXT string).
    pub fn marker(&self) -> String {
        format!("{MARKER_PREFIX} deployment={} claim={}", self.deployment, self.claim)
    }

    /// The owner a marker names; `None` for any other text (also a marker with extra words).
    pub fn parse_marker(text: &str) -> Option<DnsOwner> {
        let mut words = text.split(' ');
        if words.next() != Some(MARKER_PREFIX) {
            return None;
        }
        let deployment = words.next()?.strip_prefix("deployment=")?;
        let claim = words.next()?.strip_prefix("claim=")?;
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if words.next().is_some() || !plain(deployment) || !plain(claim) {
            return None;
        }
        Some(DnsOwner { deployment: deployment.to_string(), claim: ClaimId(claim.to_string()) })
    }
}

/// An A record to keep: `name` → `address` with `ttl`, owned by `owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ARecord {
    /// Fully qualified name, lower case, without the final dot (see [`fqdn`]).
    pub name: String,
    /// The IPv4 address.
    pub address: Ipv4Addr,
    /// Time to live, seconds.
    pub ttl: u32,
    /// Whose it is (written as the marker beside it).
    pub owner: DnsOwner,
}

/// A name carrying one of our markers, as a backend lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Fully qualified name, lower case, without the final dot.
    pub name: String,
    /// The A record's address; `None` when only the marker is left (a half-done change).
    pub address: Option<Ipv4Addr>,
    /// Whose it is.
    pub owner: DnsOwner,
}

/// Why a DNS call failed. Messages never carry a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name holds records that are not this owner's: nothing was changed.
    #[error("{provider}: {name} is not ours ({why}); left untouched")]
    NotOurs {
        /// Backend short name.
        provider: &'static str,
        /// The record name.
        name: String,
        /// What is there instead.
        why: String,
    },
    /// The zone (hosted zone, domain) does not exist.
    #[error("{provider}: zone not found: {message}")]
    ZoneNotFound {
        /// Backend short name.
        provider: &'static str,
        /// What the API said.
        message: String,
    },
    /// Credentials were refused.
    #[error("{provider}: authentication failed: {message}")]
    Unauthenticated {
        /// Backend short name.
        provider: &'static str,
        /// What the API said.
        message: String,
    },
    /// Not allowed.
    #[error("{provider}: permission denied: {message}")]
    PermissionDenied {
        /// Backend short name.
        provider: &'static str,
        /// What the API said.
        message: String,
    },
    /// The records changed between our read and our write (another writer); the next attempt reads again.
    #[error("{provider}: conflict: {message}")]
    Conflict {
        /// Backend short name.
        provider: &'static str,
        /// What the API said.
        message: String,
    },
    /// Throttled.
    #[error("{provider}: rate limited: {message}")]
    RateLimited {
        /// Backend short name.
        provider: &'static str,
        /// What the API said.
        message: String,
        /// How long the API asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The request or config is invalid (a name outside the zone, a malformed zone id).
    #[error("{provider}: invalid request: {message}")]
    Invalid {
        /// Backend short name.
        provider: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A temporary failure (5xx, timeout, connection reset).
    #[error("{provider}: temporary failure: {message}")]
    Transient {
        /// Backend short name.
        provider: &'static str,
        /// What happened.
        message: String,
    },
    /// No backend for this DNS provider in this version.
    #[error("{provider}: not supported: {what}")]
    NotSupported {
        /// Provider short name (`azure`, `gcp`, ...).
        provider: &'static str,
        /// What is missing.
        what: String,
    },
}

impl DnsError {
    /// The error's class (the same classes as the VM providers').
    pub fn class(&self) -> ErrorClass {
        match self {
            DnsError::NotOurs { .. } | DnsError::PermissionDenied { .. } => ErrorClass::Permission,
            DnsError::ZoneNotFound { .. } => ErrorClass::NotFound,
            DnsError::Unauthenticated { .. } => ErrorClass::Auth,
            DnsError::Conflict { .. } => ErrorClass::Conflict,
            DnsError::RateLimited { .. } => ErrorClass::RateLimited,
            DnsError::Invalid { .. } => ErrorClass::Invalid,
            DnsError::Transient { .. } => ErrorClass::Transient,
            DnsError::NotSupported { .. } => ErrorClass::NotSupported,
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self.class(), ErrorClass::RateLimited | ErrorClass::Transient | ErrorClass::Conflict)
    }

    /// How long the API asked us to wait, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DnsError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A DNS backend: keeps the A records of our VMs in one zone. Used as `Arc<dyn DnsProvider>`; its config
/// and credentials are bound when it is built (see [`registry`]).
#[async_trait]
pub trait DnsProvider: Send + Sync + std::fmt::Debug {
    /// The backend's short name (`route53`, `memory`, ...).
    fn name(&self) -> &'static str;

    /// Makes `record.name` an A record of `record.address` with `record.ttl`, marked as `record.owner`'s.
    ///
    /// # Behavior
    /// - Idempotent: the same record again succeeds and leaves one A record and one marker.
    /// - A new address (or TTL) for the owner's name replaces the old one.
    /// - A name holding an A or TXT record without this owner's marker (another claim's, another
    ///   deployment's, an operator's) is refused with [`DnsError::NotOurs`] and left exactly as it was.
    /// - The A record and its marker are written in one change where the API has atomic changes.
    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError>;

    /// Deletes the A record `name` and its marker when they are `owner`'s.
    ///
    /// # Behavior
    /// - Deleting a name with no records succeeds.
    /// - A name whose records are not `owner`'s is never deleted: [`DnsError::NotOurs`].
    /// - A marker left without its A record (a half-done change) is deleted too.
    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError>;

    /// Every name carrying a marker of `deployment`, with its A record's address.
    ///
    /// # Behavior
    /// - Only names marked for `deployment`, across every page of the zone; never a foreign name.
    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError>;
}

/// Whose a name is, from what it holds (the one ownership rule every backend applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// Nothing at the name.
    Free,
    /// The owner's marker is the name's whole TXT record set; `has_a`: its A record is there too.
    Ours {
        /// The A record exists.
        has_a: bool,
    },
    /// Something else: what, for the error.
    Foreign(String),
}

/// Decides [`Ownership`]: `has_a` an A record exists, `has_other` records of other types exist, `txt`
/// the TXT record set's texts (unquoted) if there is one.
pub(crate) fn ownership(has_a: bool, has_other: bool, txt: Option<&[String]>, owner: &DnsOwner) -> Ownership {
    match txt {
        None if has_a => Ownership::Foreign("an A record without a kasm-autoscale marker".into()),
        None if has_other => Ownership::Foreign("records without a kasm-autoscale marker".into()),
        None => Ownership::Free,
        Some([one]) if *one == owner.marker() => Ownership::Ours { has_a },
        Some([one]) => match DnsOwner::parse_marker(one) {
            Some(o) => Ownership::Foreign(format!("marked for deployment {} claim {}", o.deployment, o.claim)),
            None => Ownership::Foreign("a TXT record that is not a kasm-autoscale marker".into()),
        },
        Some(_) => Ownership::Foreign("a TXT record set that is not a single kasm-autoscale marker".into()),
    }
}

/// Lower case, without the final dot: how names are compared and stored.
pub fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The record name of host `host` in `base_domain`: `<host>.<base_domain>`, normalised
/// ([`normalize_name`]; a leading dot of the domain is dropped). Checked as a DNS host name: labels of
/// letters, digits and hyphens, 1–63 characters each, not starting or ending with a hyphen, 253
/// characters at most in all. The error names what is wrong.
pub fn fqdn(host: &str, base_domain: &str) -> Result<String, String> {
    let domain = normalize_name(base_domain);
    let domain = domain.trim_start_matches('.');
    if domain.is_empty() {
        return Err("base_domain_name is empty".into());
    }
    let name = format!("{}.{domain}", normalize_name(host));
    check_name(&name)?;
    Ok(name)
}

/// Checks a normalised name as a DNS host name (see [`fqdn`]).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("{name}: longer than 253 characters"));
    }
    for label in name.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{name}: label `{label}` is not a host name label (letters, digits, hyphens; 1-63 characters; no hyphen at either end)"
            ));
        }
    }
    Ok(())
}

/// The address Kasm registers for a VM: its public IP, else its private one (Kasm 1.15's providers
/// take the primary interface's public IP when it has one, else its primary private IP).
pub fn vm_address(vm: &crate::providers::Vm) -> Option<&str> {
    vm.public_ip.as_deref().filter(|a| !a.is_empty()).or(vm.private_ip.as_deref().filter(|a| !a.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> DnsOwner {
        DnsOwner { deployment: "prod-1".into(), claim: ClaimId("01jabc".into()) }
    }

    #[test]
    fn the_marker_reads_back_as_its_owner() {
        let o = owner();
        assert_eq!(o.marker(), "kasm-autoscale deployment=prod-1 claim=01jabc");
        assert_eq!(DnsOwner::parse_marker(&o.marker()), Some(o));
    }

    #[test]
    fn other_texts_are_no_marker() {
        for t in [
            "",
            "v=spf1 -all",
            "kasm-autoscale",
            "kasm-autoscale deployment=prod-1",
            "kasm-autoscale deployment=prod-1 claim=",
            "kasm-autoscale deployment=prod-1 claim=01jabc extra",
            "kasm-autoscale claim=01jabc deployment=prod-1",
            "kasm-autoscale deployment=a\"b claim=01jabc",
            "kasm-autoscale  deployment=prod-1 claim=01jabc",
        ] {
            assert_eq!(DnsOwner::parse_marker(t), None, "{t:?}");
        }
    }

    #[test]
    fn names_are_checked_and_normalised() {
        assert_eq!(fqdn("kasm-01jabc", "Agents.Example.COM.").unwrap(), "kasm-01jabc.agents.example.com");
        assert_eq!(fqdn("kasm-01jabc", ".example.com").unwrap(), "kasm-01jabc.example.com");
        assert!(fqdn("kasm-01jabc", "").unwrap_err().contains("base_domain_name"));
        assert!(fqdn("kasm-01jabc", "exa mple.com").unwrap_err().contains("`exa mple`"));
        assert!(fqdn("kasm-01jabc", "-bad.com").is_err());
        assert!(fqdn("kasm-01jabc", "a..com").is_err());
        assert!(fqdn(&"a".repeat(64), "example.com").is_err());
        let long = format!("{}.com", vec!["a".repeat(60); 4].join("."));
        assert!(fqdn("kasm-01jabc", &long).unwrap_err().contains("253"));
    }

    #[test]
    fn the_public_address_wins() {
        let mut vm = crate::providers::Vm {
            id: "i-1".into(),
            name: "kasm-1".into(),
            state: crate::providers::VmState::Running,
            labels: Default::default(),
            private_ip: Some("10.0.0.5".into()),
            public_ip: Some("203.0.113.7".into()),
            created_at: None,
        };
        assert_eq!(vm_address(&vm), Some("203.0.113.7"));
        vm.public_ip = Some(String::new());
        assert_eq!(vm_address(&vm), Some("10.0.0.5"));
        vm.private_ip = None;
        assert_eq!(vm_address(&vm), None);
    }

    #[test]
    fn only_changes_that_may_pass_later_are_retryable() {
        let p = "memory";
        assert!(DnsError::Conflict { provider: p, message: String::new() }.is_retryable());
        assert!(!DnsError::NotOurs { provider: p, name: "x".into(), why: String::new() }.is_retryable());
        assert!(!DnsError::NotSupported { provider: p, what: String::new() }.is_retryable());
        let r =
            DnsError::RateLimited { provider: p, message: String::new(), retry_after: Some(Duration::from_secs(7)) };
        assert_eq!((r.is_retryable(), r.retry_after()), (true, Some(Duration::from_secs(7))));
    }
}
