//! DNS registration through the handlers (`register_dns`), over the in-memory ports and the in-memory
//! DNS zone: the record made on provision with the VM's name and address, removed on reap, idempotent
//! on redelivery, registered late when the address appears later, orphans swept two-phase, a foreign
//! record never touched, and a DNS failure never losing the VM.

use async_trait::async_trait;
use chrono::{Duration, TimeZone, Utc};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::*;
use crate::clock::VirtualClock;
use crate::config::{ConfigFile, ConfigSet};
use crate::dns::memory::MemoryDns;
use crate::dns::{ARecord, DnsError, DnsOwner, DnsProvider};
use crate::kasm::memory::MemoryKasm;
use crate::model::{ClaimId, Instance, InstanceState, OsFamily};
use crate::providers::memory::MemoryProvider;
use crate::providers::{ProviderError, Vm, VmSpec};
use crate::secrets::StaticSecrets;
use crate::store::{MemoryStore, Store, moved};

const DOMAIN: &str = "agents.example.com";

fn configs(dns_provider: &str) -> ConfigSet {
    let doc = format!(
        r##"
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: pool
    zone_id: zone
    vm_provider_config: prov
    standby_cores: 0
    agent_cores_override: 4
    agent_memory_override_gb: 8
    register_dns: true
    base_domain_name: Agents.Example.com.
    dns_provider_config: zone
vm_provider_configs:
  - provider: proxmox
    name: prov
    max_instances: 5
    host: pve.example.com:8006
    username: kasm@pve
    token_name: autoscale
    token_value: env:PVE_TOKEN
    verify_ssl: true
    vmid_range_lower: 9000
    vmid_range_upper: 9099
    full_clone: true
    template_name: ubuntu-kasm
    cluster_node_name: pve1
    vm_cores: 4
    vm_memory: 8
    installed_os_type: linux
    startup_script_path: /tmp/kasm-startup.sh
    startup_script: "#!/bin/sh\necho {{server_hostname}} {{server_external_fqdn}}"
dns_provider_configs:
{dns_provider}
"##
    );
    let f: ConfigFile = serde_yaml_ng::from_str(&doc).expect("test config parses");
    let mut s = ConfigSet::default();
    s.merge(f);
    s
}

const ROUTE53: &str = "  - provider: aws\n    name: zone\n    hosted_zone_id: Z0123456789\n    ttl: 30\n";
/// An OCI DNS config whose CA bundle is no PEM: it cannot be built (validation refuses it too).
const UNBUILDABLE: &str = "  - provider: oci\n    name: zone\n    ca_bundle: not a pem\n    oci_user_ocid: u\n    oci_public_key_fingerprint: f\n    oci_private_key: env:OCI_KEY\n    oci_region: us-ashburn-1\n    oci_tenancy_ocid: t\n    oci_compartment_ocid: c\n    zone_name_or_id: kasm.example.com\n";

/// A provider whose VMs have no address when created (Proxmox learns it from the guest agent, EC2
/// assigns the public IP once the instance runs); reads go to the memory provider, where a test gives
/// the VM its address.
#[derive(Debug)]
struct AddressLater(Arc<MemoryProvider>);

#[async_trait]
impl VmProvider for AddressLater {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn capabilities(&self) -> crate::providers::Capabilities {
        self.0.capabilities()
    }
    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        let mut vm = self.0.create_vm(spec).await?;
        vm.private_ip = None;
        vm.public_ip = None;
        self.0.insert_vm(vm.clone());
        Ok(vm)
    }
    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        self.0.get_vm(id).await
    }
    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.0.delete_vm(id).await
    }
    async fn list_vms(&self, labels: &crate::model::OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.0.list_vms(labels).await
    }
}

struct World {
    ctx: Ctx,
    store: Arc<MemoryStore>,
    provider: Arc<MemoryProvider>,
    dns: Arc<MemoryDns>,
    clock: Arc<VirtualClock>,
}

fn world_with(set: ConfigSet, address_later: bool) -> World {
    let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()));
    let store = Arc::new(MemoryStore::new());
    let provider = Arc::new(MemoryProvider::new());
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    let p: Arc<dyn VmProvider> =
        if address_later { Arc::new(AddressLater(provider.clone())) } else { provider.clone() };
    providers.insert("prov".into(), p);
    let dns = Arc::new(MemoryDns::new());
    let mut zones: HashMap<String, Arc<dyn DnsProvider>> = HashMap::new();
    zones.insert("zone".into(), dns.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(StaticSecrets::default()),
        clock: clock.clone(),
        providers: providers.into(),
        dns: zones,
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning::default(),
    };
    World { ctx, store, provider, dns, clock }
}

fn world() -> World {
    world_with(configs(ROUTE53), false)
}

async fn put_claim(w: &World) -> Instance {
    let c = Instance::new_claim(
        ClaimId::generate(w.clock.now()),
        "agents",
        "prov",
        "proxmox",
        OsFamily::Linux,
        w.clock.now(),
    );
    assert!(w.store.try_claim(&c, 100).await.unwrap());
    w.store.get(&c.id).await.unwrap().unwrap()
}

async fn get(w: &World, id: &ClaimId) -> Instance {
    w.store.get(id).await.unwrap().unwrap()
}

fn name_of(c: &Instance) -> String {
    format!("{}.{DOMAIN}", c.vm_name)
}

fn owner_of(w: &World, c: &Instance) -> DnsOwner {
    DnsOwner { deployment: w.ctx.configs.settings.deployment_id.clone(), claim: c.id.clone() }
}

/// Moves a claim to `deleting` (as the evaluator does for a drained VM without sessions).
async fn to_deleting(w: &World, id: &ClaimId) {
    let c = get(w, id).await;
    w.store.update(&moved(&c, InstanceState::Deleting, w.clock.now()).unwrap()).await.unwrap();
}

#[tokio::test]
async fn provision_registers_the_vm_name_in_the_base_domain_with_its_address() {
    let w = world();
    let c = put_claim(&w).await;
    assert!(matches!(provision(&w.ctx, &c.id).await.unwrap(), ProvisionOutcome::Created { .. }));
    let got = get(&w, &c.id).await;
    let vm = w.provider.get_vm(got.vm_id.as_deref().unwrap()).await.unwrap();
    let address: Ipv4Addr = vm.private_ip.as_deref().unwrap().parse().unwrap();
    let name = name_of(&c);
    assert_eq!(w.dns.a_record(&name), Some((address, 30)), "the A record, with the DNS config's TTL");
    assert_eq!(w.dns.txt_record(&name), Some(vec![owner_of(&w, &c).marker()]));
    let reg = got.dns.expect("the claim records its registration");
    assert_eq!((reg.dns_config.as_str(), reg.name.as_str()), ("zone", name.as_str()));
    assert_eq!(reg.address.as_deref(), vm.private_ip.as_deref());
    assert_eq!((got.state, got.last_error), (InstanceState::Booting, None));

    // The startup script names the same host and FQDN as the record.
    let cfg = w.ctx.configs.autoscale("agents").unwrap().clone();
    let pcfg = w.ctx.configs.provider("prov").unwrap().clone();
    let vars = provision::script_vars(&w.ctx, &c, &cfg, &pcfg, None).await.unwrap();
    assert_eq!(vars["server_hostname"].as_deref(), Some(c.vm_name.as_str()));
    let rendered = vars["server_external_fqdn"].clone().unwrap();
    assert_eq!(crate::dns::normalize_name(&rendered), name);
}

#[tokio::test]
async fn redelivered_events_and_reaper_passes_change_nothing() {
    let w = world();
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    assert_eq!(provision(&w.ctx, &c.id).await.unwrap(), ProvisionOutcome::AlreadyHandled);
    for _ in 0..3 {
        let rep = reap(&w.ctx).await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        w.clock.advance(Duration::minutes(1));
    }
    assert_eq!(w.dns.changes(), 1, "one record, written once");
    assert_eq!(w.dns.names(), vec![name_of(&c)]);
}

#[tokio::test]
async fn a_provisioner_that_died_after_the_record_registers_it_again_idempotently() {
    let w = world();
    let c = put_claim(&w).await;
    // The provisioner made the VM and its record, then died before the claim recorded either.
    let creating = w.store.update(&moved(&c, InstanceState::Creating, w.clock.now()).unwrap()).await.unwrap();
    let cfg = w.ctx.configs.autoscale("agents").unwrap().clone();
    let pcfg = w.ctx.configs.provider("prov").unwrap().clone();
    let spec = provision::build_spec(&w.ctx, &creating, &cfg, &pcfg, None).await.unwrap();
    let vm = w.provider.create_vm(&spec).await.unwrap();
    let address = vm.private_ip.as_deref().unwrap().parse().unwrap();
    let r = ARecord { name: name_of(&c), address, ttl: 30, owner: owner_of(&w, &c) };
    w.dns.upsert_a(&r).await.unwrap();
    w.clock.advance(Duration::seconds(w.ctx.tuning.stuck_creating_seconds as i64 + 1));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.recovered, vec![c.id.clone()]);
    let got = get(&w, &c.id).await;
    assert_eq!(got.dns.unwrap().address.as_deref(), vm.private_ip.as_deref());
    assert_eq!((w.dns.changes(), w.dns.names().len()), (1, 1), "the record was found as it was");
}

#[tokio::test]
async fn an_address_that_appears_later_is_registered_by_the_reaper_public_first() {
    let w = world_with(configs(ROUTE53), true);
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    let got = get(&w, &c.id).await;
    assert_eq!(got.state, InstanceState::Booting, "the VM is recorded without an address");
    assert_eq!(got.dns.as_ref().map(|d| d.address.clone()), Some(None));
    assert!(w.dns.names().is_empty());

    // Nothing to register while the VM has no address.
    reap(&w.ctx).await;
    assert!(w.dns.names().is_empty());

    // The cloud gives the VM its addresses: the public one is registered (what Kasm registers).
    let mut vm = w.provider.get_vm(got.vm_id.as_deref().unwrap()).await.unwrap();
    vm.private_ip = Some("10.0.0.9".into());
    vm.public_ip = Some("203.0.113.9".into());
    w.provider.insert_vm(vm.clone());
    let rep = reap(&w.ctx).await;
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    assert_eq!(w.dns.a_record(&name_of(&c)), Some((Ipv4Addr::new(203, 0, 113, 9), 30)));
    assert_eq!(get(&w, &c.id).await.dns.unwrap().address.as_deref(), Some("203.0.113.9"));

    // It moves: the record follows on the next pass.
    vm.public_ip = Some("203.0.113.10".into());
    w.provider.insert_vm(vm);
    reap(&w.ctx).await;
    assert_eq!(w.dns.a_record(&name_of(&c)).map(|(a, _)| a), Some(Ipv4Addr::new(203, 0, 113, 10)));
}

#[tokio::test]
async fn the_record_goes_with_the_vm_and_a_dns_failure_keeps_the_vm_for_the_next_pass() {
    let w = world();
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    to_deleting(&w, &c.id).await;
    w.dns.fail_next(DnsError::Transient { provider: "memory", message: "503".into() }, 1);
    let rep = reap(&w.ctx).await;
    assert!(rep.deleted.is_empty());
    assert!(rep.errors.iter().any(|e| e.contains("DNS-provider config zone") && e.contains("503")), "{:?}", rep.errors);
    assert_eq!(w.provider.vms().len(), 1, "the VM outlives a record that could not be removed");
    assert_eq!(get(&w, &c.id).await.state, InstanceState::Deleting);

    let rep = reap(&w.ctx).await;
    assert_eq!(rep.deleted, vec![c.id.clone()], "{:?}", rep.errors);
    assert!(w.dns.names().is_empty(), "record and marker removed");
    assert!(w.provider.vms().is_empty());
    assert_eq!(get(&w, &c.id).await.state, InstanceState::Deleted);
}

#[tokio::test]
async fn a_dns_failure_on_provision_keeps_the_vm_and_is_retried_after_the_delay() {
    let w = world();
    let c = put_claim(&w).await;
    w.dns.fail_next(DnsError::RateLimited { provider: "memory", message: "Throttling".into(), retry_after: None }, 1);
    let r = provision(&w.ctx, &c.id).await.unwrap();
    assert!(matches!(r, ProvisionOutcome::Created { .. }), "{r:?}");
    let got = get(&w, &c.id).await;
    assert_eq!(got.state, InstanceState::Booting);
    assert!(got.vm_id.is_some());
    let err = got.last_error.clone().unwrap();
    assert!(
        err.contains("DNS registration of") && err.contains("DNS-provider config zone") && err.contains("Throttling"),
        "{err}"
    );
    let reg = got.dns.clone().unwrap();
    assert_eq!((reg.address, reg.failures), (None, 1));
    assert_eq!(reg.retry_at, Some(w.clock.now() + Duration::seconds(w.ctx.tuning.retry_base_seconds as i64)));

    // Before the delay: not retried.
    reap(&w.ctx).await;
    assert!(w.dns.names().is_empty());
    // After it: registered, and the error is gone.
    w.clock.advance(Duration::seconds(w.ctx.tuning.retry_base_seconds as i64));
    let rep = reap(&w.ctx).await;
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let got = get(&w, &c.id).await;
    assert_eq!(got.last_error, None);
    assert_eq!(got.dns.unwrap().failures, 0);
    assert_eq!(w.dns.names(), vec![name_of(&c)]);
}

#[tokio::test]
async fn repeated_failures_back_off_doubling_up_to_the_cap() {
    let w = world();
    let c = put_claim(&w).await;
    w.dns.fail_next(DnsError::PermissionDenied { provider: "memory", message: "AccessDenied".into() }, 100);
    provision(&w.ctx, &c.id).await.unwrap();
    let mut delays = Vec::new();
    for _ in 0..9 {
        let reg = get(&w, &c.id).await.dns.unwrap();
        let at = reg.retry_at.unwrap();
        delays.push((at - w.clock.now()).num_seconds());
        w.clock.set(at);
        let rep = reap(&w.ctx).await;
        assert!(rep.errors.iter().any(|e| e.contains("AccessDenied")), "{:?}", rep.errors);
    }
    assert_eq!(delays, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    assert_eq!(w.provider.vms().len(), 1, "the VM stays through every failure");
}

#[tokio::test]
async fn orphan_records_carrying_our_marker_are_swept_two_phase() {
    let w = world();
    let live = put_claim(&w).await;
    provision(&w.ctx, &live.id).await.unwrap();
    let gone = DnsOwner { deployment: w.ctx.configs.settings.deployment_id.clone(), claim: ClaimId("01gone".into()) };
    let orphan = format!("kasm-01gone.{DOMAIN}");
    w.dns
        .upsert_a(&ARecord { name: orphan.clone(), address: Ipv4Addr::new(10, 9, 9, 9), ttl: 30, owner: gone })
        .await
        .unwrap();
    // Another deployment's record in the same zone is not ours to sweep.
    let other = DnsOwner { deployment: "someone-else".into(), claim: ClaimId("01theirs".into()) };
    let theirs = format!("kasm-01theirs.{DOMAIN}");
    w.dns
        .upsert_a(&ARecord { name: theirs.clone(), address: Ipv4Addr::new(10, 8, 8, 8), ttl: 30, owner: other })
        .await
        .unwrap();

    let rep = reap(&w.ctx).await;
    assert_eq!(rep.dns_orphans_suspected, vec![format!("dns:zone/{orphan}")]);
    assert!(rep.dns_orphans_deleted.is_empty(), "phase one deletes nothing");
    assert!(w.dns.a_record(&orphan).is_some());

    w.clock.advance(Duration::seconds(w.ctx.tuning.orphan_grace_seconds as i64));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.dns_orphans_deleted, vec![format!("dns:zone/{orphan}")]);
    assert_eq!(w.dns.a_record(&orphan), None);
    assert!(w.dns.a_record(&name_of(&live)).is_some(), "a live claim's record stays");
    assert!(w.dns.a_record(&theirs).is_some(), "another deployment's record stays");

    // A claim that ended without its record being removed (a record left behind) is swept the same way.
    let mut done = get(&w, &live.id).await;
    for s in [InstanceState::Deleting, InstanceState::Deleted] {
        done = w.store.update(&moved(&done, s, w.clock.now()).unwrap()).await.unwrap();
    }
    reap(&w.ctx).await;
    w.clock.advance(Duration::seconds(w.ctx.tuning.orphan_grace_seconds as i64));
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.dns_orphans_deleted, vec![format!("dns:zone/{}", name_of(&live))]);
}

#[tokio::test]
async fn a_foreign_record_at_the_name_is_never_touched_and_never_holds_the_vm() {
    let w = world();
    let c = put_claim(&w).await;
    let name = name_of(&c);
    let theirs = Ipv4Addr::new(192, 0, 2, 1);
    w.dns.put_a(&name, theirs, 300);
    let r = provision(&w.ctx, &c.id).await.unwrap();
    assert!(matches!(r, ProvisionOutcome::Created { .. }), "{r:?}");
    let got = get(&w, &c.id).await;
    assert!(got.last_error.as_deref().unwrap().contains("is not ours"), "{:?}", got.last_error);
    assert_eq!(w.dns.a_record(&name), Some((theirs, 300)));
    assert_eq!(w.dns.txt_record(&name), None);

    // The sweep does not list it; reaping the VM leaves it as it is and still deletes the VM.
    w.clock.advance(Duration::hours(2));
    let rep = reap(&w.ctx).await;
    assert!(rep.dns_orphans_suspected.is_empty());
    to_deleting(&w, &c.id).await;
    let rep = reap(&w.ctx).await;
    assert_eq!(rep.deleted, vec![c.id.clone()], "{:?}", rep.errors);
    assert!(w.provider.vms().is_empty());
    assert_eq!(w.dns.a_record(&name), Some((theirs, 300)), "the foreign record is untouched");
    assert_eq!(w.dns.changes(), 0, "nothing was ever written");
}

#[tokio::test]
/// The VM is made (a DNS failure never fails it); its destruction waits for the record to be
/// removable: a backend that cannot be built now may have registered records before (a changed
/// config), and a dangling A record would point at an address someone else gets next.
async fn a_dns_provider_that_cannot_be_built_fails_alone_and_holds_the_vm_until_fixed() {
    let set = configs(UNBUILDABLE);
    let mut w = world_with(set.clone(), false);
    w.ctx.dns = crate::dns::registry::build_all(
        &set,
        &(Arc::new(StaticSecrets::default()) as Arc<dyn crate::secrets::Secrets>),
    );
    let c = put_claim(&w).await;
    assert!(matches!(provision(&w.ctx, &c.id).await.unwrap(), ProvisionOutcome::Created { .. }));
    let err = get(&w, &c.id).await.last_error.unwrap();
    assert!(err.contains("DNS-provider config zone") && err.contains("CA certificate"), "{err}");
    to_deleting(&w, &c.id).await;
    let rep = reap(&w.ctx).await;
    assert!(rep.deleted.is_empty(), "{:?}", rep.deleted);
    assert!(
        rep.errors.iter().any(|e| e.contains("DNS-provider config zone") && e.contains("CA certificate")),
        "{:?}",
        rep.errors
    );
    assert_eq!(w.provider.vms().len(), 1, "held until the record can be removed");
}

#[tokio::test]
async fn without_register_dns_nothing_is_registered() {
    let mut set = configs(ROUTE53);
    set.autoscale_configs[0].register_dns = false;
    let w = world_with(set, false);
    let c = put_claim(&w).await;
    provision(&w.ctx, &c.id).await.unwrap();
    to_deleting(&w, &c.id).await;
    reap(&w.ctx).await;
    assert_eq!(get(&w, &c.id).await.dns, None);
    assert_eq!(w.dns.changes(), 0);
}
