//! The shared DNS conformance suite: plain async functions over `&dyn DnsProvider`, run against every
//! backend (the in-memory one in every `cargo test`, Route 53 on moto in `tests/aws_route53.rs`). Each
//! check is one `# Behavior` bullet of [`DnsProvider`]. Records the port must never touch (an
//! operator's) are planted and read back through [`ZoneAccess`], straight through the zone's API.

use async_trait::async_trait;
use std::net::Ipv4Addr;

use super::{ARecord, DnsError, DnsOwner, DnsProvider};
use crate::model::ClaimId;

/// Direct access to the zone a backend works on, beside the port (a test's own API client).
#[async_trait]
pub trait ZoneAccess: Send + Sync {
    /// Writes an A record at `name` without any marker, as an operator would.
    async fn put_foreign_a(&self, name: &str, address: Ipv4Addr);
    /// Writes a TXT record set holding `text` at `name` (nothing else at the name changes).
    async fn put_txt(&self, name: &str, text: &str);
    /// The address of the A record at `name`, if there is one.
    async fn a_record(&self, name: &str) -> Option<Ipv4Addr>;
    /// The texts of the TXT record set at `name` (unquoted), if there is one.
    async fn txt(&self, name: &str) -> Option<Vec<String>>;
}

fn owner(deployment: &str) -> DnsOwner {
    DnsOwner { deployment: deployment.to_string(), claim: ClaimId::generate(chrono::Utc::now()) }
}

fn record(domain: &str, owner: &DnsOwner, last: u8) -> ARecord {
    ARecord {
        name: format!("kasm-{}.{domain}", owner.claim),
        address: Ipv4Addr::new(10, 20, 30, last),
        ttl: 60,
        owner: owner.clone(),
    }
}

async fn owned_names(p: &dyn DnsProvider, deployment: &str) -> Vec<String> {
    let mut v: Vec<String> = p.list_owned(deployment).await.expect("list_owned").into_iter().map(|r| r.name).collect();
    v.sort();
    v
}

/// An upserted record resolves to its address, carries its marker and is listed as the owner's.
pub async fn upsert_creates_a_marked_record(
    p: &dyn DnsProvider,
    zone: &dyn ZoneAccess,
    domain: &str,
    deployment: &str,
) {
    let o = owner(deployment);
    let r = record(domain, &o, 1);
    p.upsert_a(&r).await.unwrap_or_else(|e| panic!("{}: upsert failed: {e}", p.name()));
    assert_eq!(zone.a_record(&r.name).await, Some(r.address), "{}: A record not written", p.name());
    assert_eq!(zone.txt(&r.name).await, Some(vec![o.marker()]), "{}: marker not written", p.name());
    let listed = p.list_owned(deployment).await.expect("list_owned");
    let mine: Vec<_> = listed.iter().filter(|l| l.owner == o).collect();
    assert_eq!(mine.len(), 1, "{}: listed {listed:?}", p.name());
    assert_eq!((mine[0].name.as_str(), mine[0].address), (r.name.as_str(), Some(r.address)), "{}", p.name());
    p.delete_a(&r.name, &o).await.expect("cleanup");
}

/// Upserting the same record twice succeeds and leaves one record.
pub async fn upsert_is_idempotent(p: &dyn DnsProvider, zone: &dyn ZoneAccess, domain: &str, deployment: &str) {
    let o = owner(deployment);
    let r = record(domain, &o, 2);
    p.upsert_a(&r).await.expect("first upsert");
    p.upsert_a(&r).await.unwrap_or_else(|e| panic!("{}: second upsert of the same record failed: {e}", p.name()));
    assert_eq!(zone.a_record(&r.name).await, Some(r.address));
    assert_eq!(zone.txt(&r.name).await, Some(vec![o.marker()]), "{}: marker doubled or lost", p.name());
    let n = p.list_owned(deployment).await.expect("list").into_iter().filter(|l| l.owner == o).count();
    assert_eq!(n, 1, "{}: one record upserted twice is listed {n} times", p.name());
    p.delete_a(&r.name, &o).await.expect("cleanup");
}

/// A new address for the owner's name replaces the old one.
pub async fn upsert_moves_the_address(p: &dyn DnsProvider, zone: &dyn ZoneAccess, domain: &str, deployment: &str) {
    let o = owner(deployment);
    let mut r = record(domain, &o, 3);
    p.upsert_a(&r).await.expect("upsert");
    r.address = Ipv4Addr::new(10, 20, 31, 3);
    r.ttl = 120;
    p.upsert_a(&r).await.unwrap_or_else(|e| panic!("{}: upsert of a new address failed: {e}", p.name()));
    assert_eq!(zone.a_record(&r.name).await, Some(r.address), "{}: address not replaced", p.name());
    p.delete_a(&r.name, &o).await.expect("cleanup");
}

/// Deleting removes the A record and the marker; deleting again succeeds.
pub async fn delete_removes_record_and_marker(
    p: &dyn DnsProvider,
    zone: &dyn ZoneAccess,
    domain: &str,
    deployment: &str,
) {
    let o = owner(deployment);
    let r = record(domain, &o, 4);
    p.upsert_a(&r).await.expect("upsert");
    p.delete_a(&r.name, &o).await.unwrap_or_else(|e| panic!("{}: delete failed: {e}", p.name()));
    assert_eq!(zone.a_record(&r.name).await, None, "{}: A record left after delete", p.name());
    assert_eq!(zone.txt(&r.name).await, None, "{}: marker left after delete", p.name());
    assert!(!owned_names(p, deployment).await.contains(&r.name), "{}: deleted record still listed", p.name());
    p.delete_a(&r.name, &o).await.unwrap_or_else(|e| panic!("{}: second delete failed: {e}", p.name()));
}

/// Deleting a name that never held a record succeeds.
pub async fn delete_missing_succeeds(p: &dyn DnsProvider, domain: &str, deployment: &str) {
    let o = owner(deployment);
    let name = format!("kasm-{}.{domain}", o.claim);
    p.delete_a(&name, &o).await.unwrap_or_else(|e| panic!("{}: delete of a missing record failed: {e}", p.name()));
}

/// An operator's A record (no marker) is never changed, deleted or listed.
pub async fn foreign_record_is_never_touched(
    p: &dyn DnsProvider,
    zone: &dyn ZoneAccess,
    domain: &str,
    deployment: &str,
) {
    let o = owner(deployment);
    let r = record(domain, &o, 5);
    let theirs = Ipv4Addr::new(192, 0, 2, 55);
    zone.put_foreign_a(&r.name, theirs).await;
    match p.upsert_a(&r).await {
        Err(DnsError::NotOurs { .. }) => {}
        other => panic!("{}: upsert over a foreign A record gave {other:?}, not NotOurs", p.name()),
    }
    match p.delete_a(&r.name, &o).await {
        Err(DnsError::NotOurs { .. }) => {}
        other => panic!("{}: delete of a foreign A record gave {other:?}, not NotOurs", p.name()),
    }
    assert_eq!(zone.a_record(&r.name).await, Some(theirs), "{}: a foreign A record was changed", p.name());
    assert_eq!(zone.txt(&r.name).await, None, "{}: a marker was added to a foreign name", p.name());
    assert!(!owned_names(p, deployment).await.contains(&r.name), "{}: a foreign record is listed", p.name());
}

/// A name with a TXT record that is not our marker (an operator's) is never taken over.
pub async fn foreign_txt_is_never_touched(p: &dyn DnsProvider, zone: &dyn ZoneAccess, domain: &str, deployment: &str) {
    let o = owner(deployment);
    let r = record(domain, &o, 6);
    zone.put_txt(&r.name, "v=spf1 -all").await;
    assert!(matches!(p.upsert_a(&r).await, Err(DnsError::NotOurs { .. })), "{}: took over a foreign TXT", p.name());
    assert!(matches!(p.delete_a(&r.name, &o).await, Err(DnsError::NotOurs { .. })), "{}", p.name());
    assert_eq!(zone.txt(&r.name).await, Some(vec!["v=spf1 -all".to_string()]), "{}", p.name());
    assert_eq!(zone.a_record(&r.name).await, None, "{}: an A record was added to a foreign name", p.name());
}

/// Another claim's record (same deployment) is neither overwritten nor deleted by this owner.
pub async fn another_claims_record_is_not_ours(
    p: &dyn DnsProvider,
    zone: &dyn ZoneAccess,
    domain: &str,
    deployment: &str,
) {
    let first = owner(deployment);
    let r = record(domain, &first, 7);
    p.upsert_a(&r).await.expect("upsert");
    let second = owner(deployment);
    let stolen = ARecord { owner: second.clone(), address: Ipv4Addr::new(10, 20, 32, 7), ..r.clone() };
    assert!(
        matches!(p.upsert_a(&stolen).await, Err(DnsError::NotOurs { .. })),
        "{}: overwrote another claim's",
        p.name()
    );
    assert!(matches!(p.delete_a(&r.name, &second).await, Err(DnsError::NotOurs { .. })), "{}", p.name());
    assert_eq!(zone.a_record(&r.name).await, Some(r.address), "{}: another claim's record changed", p.name());
    p.delete_a(&r.name, &first).await.expect("cleanup");
}

/// Listing returns exactly this deployment's names (every page), never another deployment's.
pub async fn list_returns_only_this_deployment(p: &dyn DnsProvider, domain: &str, deployment: &str, count: usize) {
    let other = format!("{deployment}-other");
    let mut ours = Vec::new();
    for i in 0..count {
        let o = owner(deployment);
        let r = record(domain, &o, 100 + (i % 100) as u8);
        p.upsert_a(&r).await.expect("upsert");
        ours.push((r.name, o));
    }
    let theirs = owner(&other);
    let t = record(domain, &theirs, 99);
    p.upsert_a(&t).await.expect("upsert other deployment's");
    let mut want: Vec<String> = ours.iter().map(|(n, _)| n.clone()).collect();
    want.sort();
    assert_eq!(owned_names(p, deployment).await, want, "{}: list_owned of the deployment", p.name());
    assert_eq!(owned_names(p, &other).await, vec![t.name.clone()], "{}", p.name());
    for (name, o) in &ours {
        p.delete_a(name, o).await.expect("cleanup");
    }
    p.delete_a(&t.name, &theirs).await.expect("cleanup");
}

/// A marker left without its A record (a half-done change) is listed, and deleting cleans it.
pub async fn marker_without_record_is_cleaned(
    p: &dyn DnsProvider,
    zone: &dyn ZoneAccess,
    domain: &str,
    deployment: &str,
) {
    let o = owner(deployment);
    let name = format!("kasm-{}.{domain}", o.claim);
    zone.put_txt(&name, &o.marker()).await;
    let listed = p.list_owned(deployment).await.expect("list");
    let found = listed.iter().find(|l| l.owner == o).unwrap_or_else(|| panic!("{}: lone marker not listed", p.name()));
    assert_eq!((found.name.as_str(), found.address), (name.as_str(), None), "{}", p.name());
    p.delete_a(&name, &o).await.unwrap_or_else(|e| panic!("{}: deleting a lone marker failed: {e}", p.name()));
    assert_eq!(zone.txt(&name).await, None, "{}: lone marker left", p.name());
    // And upserting over a lone marker of the same owner completes the record.
    zone.put_txt(&name, &o.marker()).await;
    let r = ARecord { name: name.clone(), address: Ipv4Addr::new(10, 20, 33, 1), ttl: 60, owner: o.clone() };
    p.upsert_a(&r).await.unwrap_or_else(|e| panic!("{}: upsert over its own lone marker failed: {e}", p.name()));
    assert_eq!(zone.a_record(&name).await, Some(r.address), "{}", p.name());
    p.delete_a(&name, &o).await.expect("cleanup");
}

/// Runs every check in `domain` (the zone's domain, or a name inside it). `deployment` should be unique
/// to the run; `list_count` records are made for the listing check (more than a page to test paging).
pub async fn run_all(p: &dyn DnsProvider, zone: &dyn ZoneAccess, domain: &str, deployment: &str) {
    run_all_with(p, zone, domain, deployment, 5).await;
}

/// [`run_all`] with `list_count` records in the listing check.
pub async fn run_all_with(
    p: &dyn DnsProvider,
    zone: &dyn ZoneAccess,
    domain: &str,
    deployment: &str,
    list_count: usize,
) {
    upsert_creates_a_marked_record(p, zone, domain, deployment).await;
    upsert_is_idempotent(p, zone, domain, deployment).await;
    upsert_moves_the_address(p, zone, domain, deployment).await;
    delete_removes_record_and_marker(p, zone, domain, deployment).await;
    delete_missing_succeeds(p, domain, deployment).await;
    foreign_record_is_never_touched(p, zone, domain, deployment).await;
    foreign_txt_is_never_touched(p, zone, domain, deployment).await;
    another_claims_record_is_not_ours(p, zone, domain, deployment).await;
    list_returns_only_this_deployment(p, domain, deployment, list_count).await;
    marker_without_record_is_cleaned(p, zone, domain, deployment).await;
}
