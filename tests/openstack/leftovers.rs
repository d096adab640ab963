//! A boot volume left by a provisioner killed between the volume and the server (fault injection:
//! the server create stalls and the provisioning task is aborted there), driven through the real
//! handlers (`shared::app::provision` and `reap`) over the in-memory store and Kasm: while its claim
//! is alive the volume is never touched, a claim stuck in `creating` is handed back and its next
//! attempt boots from that volume, a claim given up deletes it, and an orphaned one (no live claim)
//! is deleted by the two-phase orphan sweep.

use chrono::{TimeZone, Utc};
use integration_tests::daemon::wait_for;
use integration_tests::fake_api::Fault;
use integration_tests::openstack_server::err;
use shared::app::{self, Ctx, Tuning};
use shared::clock::{Clock, VirtualClock};
use shared::config::providers::OpenstackAuthMethod;
use shared::config::{AutoscaleConfig, ConfigSet, VmProviderConfig};
use shared::kasm::memory::MemoryKasm;
use shared::model::{ClaimId, Instance, InstanceState, OsFamily, OwnerLabels};
use shared::ports::{Store, VmProvider};
use shared::providers::VmState;
use shared::store::{MemoryStore, moved};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::World;

const CREATE: &str = "POST /compute/v2.1/servers";
const DEPLOYMENT: &str = "leftovers";

struct Reaper {
    ctx: Ctx,
    store: Arc<MemoryStore>,
    clock: Arc<VirtualClock>,
    provider: Arc<dyn VmProvider>,
}

/// The handlers over the in-memory store and Kasm, with `w`'s OpenStack provider (Create Volume) as
/// the VM-provider config `os-pool`.
fn reaper(w: &World) -> Reaper {
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.create_volume = true;
    cfg.volume_size_gb = Some(20);
    let provider: Arc<dyn VmProvider> = Arc::new(w.provider_cfg(&cfg));
    let autoscale: AutoscaleConfig = serde_json::from_value(serde_json::json!({
        "autoscale_config_name": "agents", "server_pool_id": "pool", "zone_id": "zone",
        "vm_provider_config": "os-pool", "standby_cores": 0,
    }))
    .expect("autoscale config");
    let mut set = ConfigSet::default();
    set.settings.deployment_id = DEPLOYMENT.into();
    set.autoscale_configs.push(autoscale);
    set.vm_provider_configs.push(VmProviderConfig::Openstack(cfg));
    let clock = Arc::new(VirtualClock::new(Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap()));
    let store = Arc::new(MemoryStore::new());
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    providers.insert("os-pool".into(), provider.clone());
    let ctx = Ctx {
        store: store.clone(),
        kasm: Arc::new(MemoryKasm::new()),
        secrets: Arc::new(w.secrets()),
        clock: clock.clone(),
        providers: providers.into(),
        dns: Default::default(),
        configs: Arc::new(set),
        holder: "test".into(),
        tuning: Tuning { orphan_grace_seconds: 60, stuck_creating_seconds: 600, ..Tuning::default() },
    };
    Reaper { ctx, store, clock, provider }
}

impl Reaper {
    async fn claim(&self) -> Instance {
        let c = Instance::new_claim(
            ClaimId::generate(self.clock.now()),
            "agents",
            "os-pool",
            "openstack",
            OsFamily::Linux,
            self.clock.now(),
        );
        assert!(self.store.try_claim(&c, 10).await.unwrap());
        self.get(&c.id).await
    }

    async fn get(&self, id: &ClaimId) -> Instance {
        self.store.get(id).await.unwrap().expect("the claim")
    }

    /// Provisions `claim` until its volume is `available` and the server create is on the wire
    /// (stalled by the API), then kills the provisioner there: no server is ever made. Returns the
    /// volume's id; the claim is left `creating`.
    async fn kill_between_volume_and_server(&self, w: &World, claim: &Instance) -> String {
        let creates = w.server.api().count(CREATE);
        w.server.api().inject(
            CREATE,
            Fault::Stall { hold: Duration::from_secs(30), then: err(500, "computeFault", "too late") },
            0,
            1,
        );
        let (ctx, id) = (self.ctx.clone(), claim.id.clone());
        let task = tokio::spawn(async move { app::provision(&ctx, &id).await });
        wait_for("the server create to be on the wire", Duration::from_secs(20), || {
            w.server.api().count(CREATE) > creates
        })
        .await;
        task.abort();
        let _ = task.await;
        w.server.api().clear_faults();
        assert_eq!(self.get(&claim.id).await.state, InstanceState::Creating);
        assert!(!w.server.servers().iter().any(|s| s.name == claim.vm_name), "no server was made");
        let vols: Vec<_> = w
            .server
            .volumes()
            .into_iter()
            .filter(|v| v.metadata.get(OwnerLabels::CLAIM).map(String::as_str) == Some(claim.id.as_str()))
            .collect();
        assert_eq!(vols.len(), 1, "{vols:?}");
        assert_eq!(vols[0].status, "available");
        vols[0].id.clone()
    }

    async fn reap(&self) -> app::ReapReport {
        let rep = app::reap(&self.ctx).await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        rep
    }
}

fn volume_exists(w: &World, id: &str) -> bool {
    w.server.volumes().iter().any(|v| v.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_of_a_live_claim_is_kept_and_booted_from_by_its_next_attempt() {
    let w = World::new("leftover-live").await;
    let r = reaper(&w);
    let claim = r.claim().await;
    let vol = r.kill_between_volume_and_server(&w, &claim).await;

    // Listed as a leftover entry of the claim, never as a VM.
    let listed = r.provider.list_vms(&OwnerLabels::deployment(DEPLOYMENT)).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].id.as_str(), listed[0].state), (vol.as_str(), VmState::Deleted));
    assert_eq!(listed[0].claim(), Some(claim.id.clone()));
    assert_eq!(listed[0].name, claim.vm_name);

    // The claim is alive (`creating`): pass after pass past the orphan grace, the volume stays.
    for _ in 0..3 {
        let rep = r.reap().await;
        assert!(rep.orphans_suspected.is_empty() && rep.orphans_deleted.is_empty(), "{rep:?}");
        assert!(rep.recovered.is_empty(), "not stuck yet: {rep:?}");
        assert!(volume_exists(&w, &vol), "the volume of a live claim was deleted");
        r.clock.advance(chrono::Duration::seconds(61));
    }

    // Stuck in `creating`: handed back to `requested` (the volume entry is not its VM) ...
    r.clock.advance(chrono::Duration::seconds(600));
    let rep = r.reap().await;
    assert_eq!(rep.recovered, vec![claim.id.clone()], "{rep:?}");
    let back = r.get(&claim.id).await;
    assert_eq!(back.state, InstanceState::Requested, "{back:?}");
    assert_eq!(back.vm_id, None);
    assert!(volume_exists(&w, &vol));

    // ... and its next attempt boots from that volume: no second volume.
    let volume_creates = w.server.api().count("POST /volume/v3/{project}/volumes");
    match app::provision(&r.ctx, &claim.id).await.expect("provision") {
        app::ProvisionOutcome::Created { vm_id } => {
            let srv = w.servers_request(&vm_id);
            assert_eq!(srv["block_device_mapping_v2"][0]["uuid"], serde_json::json!(vol));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.server.api().count("POST /volume/v3/{project}/volumes"), volume_creates);
    assert_eq!(w.server.volumes().len(), 1);
    let listed = r.provider.list_vms(&OwnerLabels::deployment(DEPLOYMENT)).await.unwrap();
    assert!(listed.iter().all(|v| v.state != VmState::Deleted), "attached: no leftover entry: {listed:?}");

    // Scale-down as usual: the server and its volume go.
    let booting = r.get(&claim.id).await;
    r.store.update(&moved(&booting, InstanceState::Deleting, r.clock.now()).unwrap()).await.unwrap();
    let rep = r.reap().await;
    assert_eq!(rep.deleted, vec![claim.id.clone()]);
    assert!(w.server.servers().is_empty() && w.server.volumes().is_empty(), "{:?}", w.server.volumes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_whose_claim_is_given_up_or_lost_is_deleted_by_the_reaper() {
    let w = World::new("leftover-dead").await;
    let r = reaper(&w);

    // Given up: the claim goes to `deleting` with no server id; its destroy lists by claim and
    // deletes the leftover.
    let given_up = r.claim().await;
    let vol1 = r.kill_between_volume_and_server(&w, &given_up).await;
    let creating = r.get(&given_up.id).await;
    r.store.update(&moved(&creating, InstanceState::Deleting, r.clock.now()).unwrap()).await.unwrap();
    let rep = r.reap().await;
    assert_eq!(rep.deleted, vec![given_up.id.clone()], "{rep:?}");
    assert!(!volume_exists(&w, &vol1), "the given-up claim's volume is gone");
    assert_eq!(r.get(&given_up.id).await.state, InstanceState::Deleted);

    // Lost: the claim ends (`deleted`) without anyone deleting its volume, and a live claim's
    // volume sits beside it. The orphan sweep suspects the first, deletes it a grace period later,
    // and never touches the second.
    let lost = r.claim().await;
    let vol2 = r.kill_between_volume_and_server(&w, &lost).await;
    let live = r.claim().await;
    let vol3 = r.kill_between_volume_and_server(&w, &live).await;
    let c = r.get(&lost.id).await;
    let c = r.store.update(&moved(&c, InstanceState::Deleting, r.clock.now()).unwrap()).await.unwrap();
    r.store.update(&moved(&c, InstanceState::Deleted, r.clock.now()).unwrap()).await.unwrap();

    let rep = r.reap().await;
    assert_eq!(rep.orphans_suspected, vec![format!("os-pool/{vol2}")], "{rep:?}");
    assert!(rep.orphans_deleted.is_empty());
    assert!(volume_exists(&w, &vol2), "phase one deletes nothing");
    r.clock.advance(chrono::Duration::seconds(61));
    let rep = r.reap().await;
    assert_eq!(rep.orphans_deleted, vec![format!("os-pool/{vol2}")], "{rep:?}");
    assert!(!volume_exists(&w, &vol2));
    assert!(volume_exists(&w, &vol3), "the live claim's volume was touched");
    assert_eq!(w.server.api().count("DELETE /volume/v3/{project}/volumes/{id}"), 2);
    assert!(w.server.servers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_vm_of_a_leftover_refuses_one_that_got_attached_and_leaves_foreign_volumes() {
    let w = World::new("leftover-delete").await;
    let mut cfg = w.config(OpenstackAuthMethod::ApplicationCredential);
    cfg.create_volume = true;
    cfg.volume_size_gb = Some(20);
    let p = w.provider_cfg(&cfg);
    // A server and its volume of ours: the volume is attached, so it is no leftover and
    // `delete_vm` of its id refuses (the server's claim owns it).
    let s = super::spec("prod", "p");
    let vm = p.create_vm(&s).await.expect("create");
    let vol = w.server.volumes()[0].id.clone();
    assert!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().iter().all(|v| v.id == vm.id));
    let e = p.delete_vm(&vol).await.unwrap_err();
    assert_eq!(e.class(), shared::providers::ErrorClass::Conflict, "{e}");
    assert!(e.to_string().contains(&vm.id), "{e}");
    assert!(volume_exists(&w, &vol));
    p.delete_vm(&vm.id).await.expect("delete");
    assert!(w.server.volumes().is_empty());
    // An id that is neither a server nor a volume: success.
    p.delete_vm("0badf00d-0000-4000-8000-000000000000").await.expect("missing is success");
    assert_eq!(w.server.api().count("DELETE /volume/v3/{project}/volumes/{id}"), 0, "delete_on_termination did it");

    // Volumes that are no leftover of ours: someone else's, one of ours still being made, one
    // without a claim. None is listed, and `delete_vm` of their ids deletes none.
    let claim = [("kasm-autoscale-deployment", "prod"), ("kasm-autoscale-claim", "01jdq6x0m5y0")];
    let foreign = w.server.add_volume("ops-data", "available", &[("team", "ops")]);
    let making = w.server.add_volume("kasm-01jdq6x0m5y0", "creating", &claim);
    let claimless = w.server.add_volume("kasm-x", "available", &[("kasm-autoscale-deployment", "prod")]);
    assert!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().is_empty());
    p.delete_vm(&foreign).await.expect("not ours: left alone");
    let e = p.delete_vm(&making).await.unwrap_err();
    assert_eq!(e.class(), shared::providers::ErrorClass::Conflict, "{e}");
    assert!(e.to_string().contains("creating"), "{e}");
    assert_eq!(w.server.volumes().len(), 3);
    // Our claim-less volume is no leftover entry, but `delete_vm` of its id (ours, settled) deletes it.
    p.delete_vm(&claimless).await.expect("delete");
    assert_eq!(w.server.volumes().len(), 2);
    // And with Create Volume off, nothing of Cinder is read or touched.
    let p = w.provider();
    let cinder = || w.server.api().requests().iter().filter(|r| r.route.starts_with("/volume")).count();
    let before = cinder();
    assert!(p.list_vms(&OwnerLabels::deployment("prod")).await.unwrap().is_empty());
    p.delete_vm(&foreign).await.expect("missing server");
    assert_eq!(cinder(), before);
    assert_eq!(w.server.volumes().len(), 2);
}
