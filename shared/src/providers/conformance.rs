//! The shared conformance suite: plain async functions over `&dyn VmProvider`, run against every
//! provider (the in-memory one in every `cargo test`, the others against their test servers).
//! Each check is one `# Behavior` bullet of [`VmProvider`].

use super::{ProviderError, VmProvider, VmSpec, VmState};
use crate::model::{ClaimId, OsFamily, OwnerLabels};

fn spec(deployment: &str, config: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.to_string(),
            autoscale_config: Some(config.to_string()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some("#!/bin/sh\necho conformance\n".to_string().into()),
    }
}

/// Creating twice for one claim returns the same VM and makes only one.
pub async fn create_is_idempotent_on_claim(p: &dyn VmProvider, deployment: &str) {
    let s = spec(deployment, "idem");
    let a = p.create_vm(&s).await.expect("first create");
    let b = p.create_vm(&s).await.expect("second create of the same claim");
    assert_eq!(a.id, b.id, "{}: a second create for one claim made another VM", p.name());
    let listed = p.list_vms(&s.labels).await.expect("list");
    assert_eq!(listed.len(), 1, "{}: one claim, {} VMs listed", p.name(), listed.len());
    p.delete_vm(&a.id).await.expect("cleanup");
}

/// A created VM carries the ownership labels and can be read back by id.
pub async fn created_vm_carries_labels(p: &dyn VmProvider, deployment: &str) {
    let s = spec(deployment, "labels");
    let vm = p.create_vm(&s).await.expect("create");
    let got = p.get_vm(&vm.id).await.expect("get after create");
    assert_eq!(got.id, vm.id);
    assert!(s.labels.matches(&got.labels), "{}: labels {:?} miss {:?}", p.name(), got.labels, s.labels.to_map());
    assert_eq!(got.claim(), Some(s.claim.clone()), "{}: claim label not read back", p.name());
    p.delete_vm(&vm.id).await.expect("cleanup");
}

/// Getting a missing VM is NotFound.
pub async fn get_missing_is_not_found(p: &dyn VmProvider, missing_id: &str) {
    match p.get_vm(missing_id).await {
        Err(ProviderError::NotFound { .. }) => {}
        other => panic!("{}: get of a missing VM gave {other:?}, not NotFound", p.name()),
    }
}

/// Deleting a missing VM succeeds.
pub async fn delete_missing_succeeds(p: &dyn VmProvider, missing_id: &str) {
    p.delete_vm(missing_id).await.unwrap_or_else(|e| panic!("{}: delete of a missing VM failed: {e}", p.name()));
}

/// Listing returns only VMs with matching labels, and not deleted ones.
pub async fn list_returns_only_matching(p: &dyn VmProvider, deployment: &str) {
    let ours = spec(deployment, "list-a");
    let other_config = spec(deployment, "list-b");
    let foreign = spec(&format!("{deployment}-other"), "list-a");
    let a = p.create_vm(&ours).await.expect("create ours");
    let b = p.create_vm(&other_config).await.expect("create other config");
    let c = p.create_vm(&foreign).await.expect("create foreign");

    let by_config = OwnerLabels { deployment: deployment.into(), autoscale_config: Some("list-a".into()), claim: None };
    let ids: Vec<String> = p.list_vms(&by_config).await.expect("list").into_iter().map(|v| v.id).collect();
    assert_eq!(ids, vec![a.id.clone()], "{}: list by config returned {ids:?}", p.name());

    let all: Vec<String> =
        p.list_vms(&OwnerLabels::deployment(deployment)).await.expect("list").into_iter().map(|v| v.id).collect();
    assert!(all.contains(&a.id) && all.contains(&b.id), "{}: deployment list misses ours: {all:?}", p.name());
    assert!(!all.contains(&c.id), "{}: deployment list has another deployment's VM", p.name());

    p.delete_vm(&a.id).await.expect("delete");
    let after: Vec<String> = p
        .list_vms(&by_config)
        .await
        .expect("list")
        .into_iter()
        .filter(|v| v.state != VmState::Deleted)
        .map(|v| v.id)
        .collect();
    assert!(after.is_empty(), "{}: deleted VM still listed: {after:?}", p.name());
    p.delete_vm(&b.id).await.expect("cleanup");
    p.delete_vm(&c.id).await.expect("cleanup");
}

/// Deleting a VM makes `get` NotFound (or Deleted) and deleting it again succeeds.
pub async fn delete_is_final_and_repeatable(p: &dyn VmProvider, deployment: &str) {
    let s = spec(deployment, "delete");
    let vm = p.create_vm(&s).await.expect("create");
    p.delete_vm(&vm.id).await.expect("delete");
    match p.get_vm(&vm.id).await {
        Err(ProviderError::NotFound { .. }) => {}
        Ok(v) if matches!(v.state, VmState::Deleted | VmState::Deleting) => {}
        other => panic!("{}: get after delete gave {other:?}", p.name()),
    }
    p.delete_vm(&vm.id).await.expect("second delete");
}

/// Runs every check. `deployment` should be unique to the run.
pub async fn run_all(p: &dyn VmProvider, deployment: &str) {
    create_is_idempotent_on_claim(p, deployment).await;
    created_vm_carries_labels(p, deployment).await;
    get_missing_is_not_found(p, "does-not-exist-0").await;
    delete_missing_succeeds(p, "does-not-exist-0").await;
    list_returns_only_matching(p, deployment).await;
    delete_is_final_and_repeatable(p, deployment).await;
}
