//! Unit tests: one (or a few) per rule in the module docs, plus the failures from KASM.md.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::config::{AutoscaleConfig, AutoscaleType, Schedule, Weekday};
use crate::kasm::{KasmServer, KasmSession, ServerKind};
use crate::model::{ClaimId, Instance, InstanceState, OsFamily, Resources};

/// Sunday 2026-11-22 12:00 UTC.
pub(super) fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// A claim `id` in `state` since `age` seconds before `t0()` (also its creation time).
pub(super) fn claim(id: &str, state: InstanceState, age: i64) -> Instance {
    let since = t0() - Duration::seconds(age);
    let mut i = Instance::new_claim(ClaimId(id.into()), "cfg", "prov", "memory", OsFamily::Linux, since);
    i.kasm_server_id = format!("srv-{id}");
    i.state = state;
    i.state_since = since;
    i
}

/// An agent record with `cores`/`mem` reported, last check-in `checkin_age` seconds before `t0()`.
pub(super) fn agent(server_id: &str, cores: f64, mem: f64, enabled: bool, checkin_age: Option<i64>) -> KasmServer {
    KasmServer {
        server_id: server_id.into(),
        kind: ServerKind::Agent,
        hostname: None,
        public_ip: None,
        zone_id: "zone".into(),
        friendly_name: None,
        autoscale_config_id: None,
        server_pool_id: Some("pool".into()),
        enabled,
        operational_status: "running".into(),
        last_reported: checkin_age.map(|a| t0() - Duration::seconds(a)),
        reported: Resources::new(cores, mem, 0.0),
        overridden: Resources::default(),
        allocated: Resources::default(),
        max_sessions: None,
        agent_installed: false,
    }
}

/// A server-pool record.
pub(super) fn server(server_id: &str, enabled: bool, checkin_age: Option<i64>) -> KasmServer {
    KasmServer {
        kind: ServerKind::Server,
        reported: Resources::default(),
        ..agent(server_id, 0.0, 0.0, enabled, checkin_age)
    }
}

pub(super) fn session(n: usize, server_id: &str) -> KasmSession {
    KasmSession {
        kasm_id: format!("k{n}"),
        server_id: server_id.into(),
        resources: Resources::new(1.0, 1024.0, 0.0),
        status: "running".into(),
        ..Default::default()
    }
}

/// A docker-agent input: VMs of 4 cores / 8 GB, cap 10, no claims.
pub(super) fn input(standby_cores: f64) -> Input {
    let mut config = AutoscaleConfig::docker_agent("cfg", "prov");
    config.standby_cores = standby_cores;
    Input {
        config,
        schedules: Vec::new(),
        max_instances: 10,
        owned_total: 0,
        new_vm_size: Some(Resources::new(4.0, 8192.0, 0.0)),
        control: ControlState::default(),
        timers: Timers::default(),
        instances: Vec::new(),
        servers: Vec::new(),
        sessions: Vec::new(),
        staging: Vec::new(),
        queued: Vec::new(),
    }
}

/// Adds claims and keeps `owned_total` = the claims (no other config shares the provider config).
fn with(mut i: Input, claims: Vec<Instance>, servers: Vec<KasmServer>) -> Input {
    i.owned_total = claims.len() as u32;
    i.instances = claims;
    i.servers = servers;
    i
}

/// A running claim `id` with a healthy, enabled, idle 4-core agent record.
fn running(id: &str, age: i64) -> (Instance, KasmServer) {
    (claim(id, InstanceState::Running, age), agent(&format!("srv-{id}"), 4.0, 8192.0, true, Some(10)))
}

fn drains(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Drain { claim, .. } => Some(claim.as_str()),
            _ => None,
        })
        .collect()
}

fn destroys(p: &Plan) -> Vec<(&str, &str)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { claim, reason } => Some((claim.as_str(), reason.as_str())),
            _ => None,
        })
        .collect()
}

fn has_reason(p: &Plan, needle: &str) -> bool {
    p.reasons.iter().any(|r| r.contains(needle))
}

#[track_caller]
fn assert_reason(p: &Plan, needle: &str) {
    assert!(has_reason(p, needle), "no reason containing {needle:?} in {:#?}", p.reasons);
}

// ---------- scale up ----------

#[test]
fn the_whole_shortfall_is_created_at_once() {
    let mut i = input(8.0);
    i.servers = vec![{
        let mut a = agent("static", 4.0, 8192.0, true, Some(5));
        a.allocated = Resources::new(2.0, 0.0, 0.0);
        a
    }];
    let p = decide(&i, t0());
    // free 2 (the static agent's), standby 8: ceil(6 / 4) = 2.
    assert_eq!(p.create, 2);
    assert_reason(&p, "free cores 2 < standby 8: +2 agents of 4 cores");
    assert_eq!(p.summary.free.cores, 2.0);
    assert_eq!(p.summary.per_vm, Resources::new(4.0, 8192.0, 0.0));
    assert!(p.summary.active);
}

#[test]
fn max_new_vms_per_evaluation_limits_the_step_and_aggressive_scaling_does_not() {
    let mut i = input(16.0);
    i.config.max_new_vms_per_evaluation = std::num::NonZeroU32::new(1);
    let p = decide(&i, t0());
    assert_eq!(p.create, 1);
    assert_reason(&p, "max_new_vms_per_evaluation 1: 1 new VMs this evaluation (0 re-enabled; the shortfall needs 4)");
    i.config.max_new_vms_per_evaluation = std::num::NonZeroU32::new(3);
    assert_eq!(decide(&i, t0()).create, 3);
    // Kasm's aggressive_scaling is about queued requests, not the step: the standby shortfall is
    // created at once either way.
    i.config.max_new_vms_per_evaluation = None;
    i.config.aggressive_scaling = false;
    assert_eq!(decide(&i, t0()).create, 4);
}

#[test]
fn largest_dimension_need_wins() {
    let mut i = input(4.0);
    i.config.standby_memory_mb = 30000.0; // ceil(30000 / 8192) = 4 > 1
    assert_eq!(decide(&i, t0()).create, 4);
}

#[test]
fn booting_and_requested_vms_count_so_no_create_loop() {
    // KASM.md: list lag after create → create loop. Our own claims count until the agent shows up.
    let i =
        with(input(8.0), vec![claim("a", InstanceState::Booting, 30), claim("b", InstanceState::Requested, 1)], vec![]);
    let p = decide(&i, t0());
    assert_eq!(p.create, 0, "{:#?}", p.reasons);
    assert_eq!(p.summary.free.cores, 8.0);
    assert_reason(&p, "incl. 2 pending VMs");
}

#[test]
fn failed_and_deleting_vms_count_toward_the_cap() {
    // KASM.md (CloudStack): failed VMs not counted toward the cap → thousands of VMs.
    let mut i = with(
        input(40.0),
        vec![
            claim("f1", InstanceState::Failed, 10),
            claim("f2", InstanceState::Failed, 10),
            claim("d1", InstanceState::Deleting, 10),
        ],
        vec![],
    );
    i.max_instances = 3;
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_reason(&p, "at max_instances 3 (3 owned): cannot create 10 more");
    // Failed claims are cleaned up.
    assert_eq!(destroys(&p).iter().map(|d| d.0).collect::<Vec<_>>(), vec!["f1", "f2"]);
    // With room for 2, only 2 of the 10 wanted.
    i.max_instances = 5;
    let p = decide(&i, t0());
    assert_eq!(p.create, 2);
    assert_reason(&p, "creating 2 of the 10 wanted");
}

#[test]
fn provider_backoff_blocks_creates_but_says_so() {
    let mut i = input(8.0);
    i.control.backoff_until = Some(t0() + Duration::seconds(90));
    i.control.consecutive_failures = 3;
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_reason(&p, "provider backoff until 12:01:30 (90 s left, 3 failures in a row)");
    i.control.backoff_until = Some(t0());
    assert_eq!(decide(&i, t0()).create, 2, "backoff over at its instant");
}

#[test]
fn overrides_rule_capacity_and_vm_size() {
    let mut i = input(8.0);
    i.new_vm_size = None;
    i.config.agent_cores_override = 2.0;
    i.config.agent_memory_override_gb = 4.0;
    // Our agent reports 16 cores but the config's override says 2 (what Kasm would have set on it), and
    // Kasm's per-agent override is ignored.
    let mut a = agent("srv-mine", 16.0, 65536.0, true, Some(5));
    a.overridden = Resources::new(12.0, 0.0, 0.0);
    let i = with(i, vec![claim("mine", InstanceState::Running, 30)], vec![a.clone()]);
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 2.0);
    assert_eq!(p.summary.free.memory_mb, 4096.0);
    assert_eq!(p.summary.per_vm.cores, 2.0);
    assert_eq!(p.create, 3);
    // Without the config override, Kasm's per-agent override beats what the agent reports.
    let mut j = i.clone();
    j.config.agent_cores_override = 0.0;
    j.new_vm_size = Some(Resources::new(4.0, 8192.0, 0.0));
    let p = decide(&j, t0());
    assert_eq!(p.summary.free.cores, 12.0);
    assert_eq!(p.create, 0);
}

#[test]
fn a_static_agent_keeps_its_own_capacity_whatever_the_configs_override() {
    let mut i = input(8.0);
    i.config.agent_cores_override = 2.0;
    // Not ours: the config's override is for the VMs it launches, not for a 16-core static agent.
    let mut a = agent("static", 16.0, 65536.0, true, Some(5));
    i.servers = vec![a.clone()];
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 16.0);
    assert_eq!(p.create, 0, "{:?}", p.reasons);
    // Its Kasm per-agent override still applies.
    a.overridden = Resources::new(6.0, 0.0, 0.0);
    i.servers = vec![a];
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 6.0);
    assert_eq!(p.create, 1, "{:?}", p.reasons);
}

#[test]
fn unknown_vm_size_creates_one_to_learn_it() {
    let mut i = input(8.0);
    i.new_vm_size = None;
    let p = decide(&i, t0());
    assert_eq!(p.create, 1);
    assert_reason(&p, "VM size unknown: creating at most 1 VM to learn it");
    // While that one is pending, nothing more.
    let i = with(i, vec![claim("a", InstanceState::Creating, 5)], vec![]);
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_reason(&p, "waiting for the 1 pending VMs");
}

#[test]
fn size_learned_from_the_pools_largest_agent() {
    let mut i = input(10.0);
    i.new_vm_size = None;
    let mut busy = agent("static", 6.0, 8192.0, true, Some(5));
    busy.allocated = Resources::new(6.0, 8192.0, 0.0);
    i.servers = vec![busy, agent("small", 2.0, 1024.0, true, Some(5))];
    let p = decide(&i, t0());
    // free 2, per VM 6 (largest): ceil(8 / 6) = 2.
    assert_eq!(p.summary.per_vm.cores, 6.0);
    assert_eq!(p.create, 2);
}

#[test]
fn a_dimension_new_vms_do_not_add_is_skipped() {
    let mut i = input(0.0);
    i.config.standby_gpus = 1.0;
    let p = decide(&i, t0());
    assert_eq!(p.create, 0, "a VM without GPUs cannot meet a GPU standby");
    assert_reason(&p, "a new VM adds 0 gpus");
    i.config.max_new_vms_per_evaluation = std::num::NonZeroU32::new(1);
    assert_eq!(decide(&i, t0()).create, 0, "not even one per evaluation");
}

#[test]
fn missing_and_disabled_records_do_not_count() {
    let i = with(
        input(4.0),
        vec![],
        vec![
            agent("stale", 4.0, 8192.0, true, Some(601)),
            agent("never", 4.0, 8192.0, true, None),
            agent("off", 4.0, 8192.0, false, Some(5)),
            agent("ok", 4.0, 8192.0, true, Some(600)),
        ],
    );
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 4.0, "only 'ok' counts");
    assert_eq!(p.create, 0);
}

#[test]
fn over_allocated_agent_has_no_room_but_takes_none_away() {
    let mut a = agent("a", 4.0, 8192.0, true, Some(5));
    a.allocated = Resources::new(6.0, 0.0, 0.0);
    let i = with(input(4.0), vec![], vec![a, agent("b", 4.0, 8192.0, true, Some(5))]);
    assert_eq!(decide(&i, t0()).summary.free.cores, 4.0);
}

#[test]
fn operators_own_agents_count_and_are_never_drained() {
    let mut i = with(input(0.0), vec![], vec![agent("static", 8.0, 8192.0, true, Some(5))]);
    i.control.request_downscale_at = Some(t0() - Duration::hours(5));
    let p = decide(&i, t0());
    assert!(p.actions.is_empty());
    assert_eq!(p.request_downscale_at, None);
    assert_reason(&p, "1 of the pool's records are not ours");
    let mut i = i;
    i.config.standby_cores = 8.0;
    assert_eq!(decide(&i, t0()).create, 0);
}

#[test]
fn records_match_by_id_or_our_record_name_never_by_address() {
    // Issue 10: never match by guess. A record whose hostname or address equals a claim's VM is an
    // operator's until its id (or the name we give records we create) says otherwise.
    let mut a = claim("a", InstanceState::Running, 100);
    a.hostname = Some("VM-A.internal".into());
    let mut b = claim("b", InstanceState::Running, 100);
    b.private_ip = Some("10.0.0.7".into());
    let c = claim("c", InstanceState::Running, 100);
    let mut d = claim("d", InstanceState::Running, 100);
    d.kasm_server_id = "9c8b7a6f-5e4d-3c2b-1a0f-9e8d7c6b5a4f".into();
    let mut ra = agent("kasm-1", 4.0, 8192.0, true, Some(5));
    ra.hostname = Some("vm-a.internal".into());
    let mut rb = agent("kasm-2", 4.0, 8192.0, true, Some(5));
    rb.public_ip = Some("10.0.0.7".into());
    let mut rc = agent("kasm-3", 4.0, 8192.0, true, Some(5));
    rc.friendly_name = Some(c.vm_name.clone());
    // The id we rendered, as Kasm lists it: 32 hex digits, other case, no dashes.
    let rd = agent("9C8B7A6F5E4D3C2B1A0F9E8D7C6B5A4F", 4.0, 8192.0, true, Some(5));
    let mut i = with(input(0.0), vec![a, b, c, d], vec![ra, rb, rc, rd.clone()]);
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    let p = decide(&i, t0());
    let drained: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Drain { server_id, .. } => Some(server_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(drained.len(), 2, "{drained:?}");
    assert!(drained.contains(&"kasm-3") && drained.contains(&rd.server_id.as_str()), "{drained:?}");
    assert!(!drained.contains(&"kasm-1") && !drained.contains(&"kasm-2"), "matched by address: {drained:?}");
    assert_reason(&p, "2 of the pool's records are not ours");
}

#[test]
fn records_kasm_is_deleting_hold_no_capacity_and_their_vms_go() {
    // delete_pending / destroying: no capacity, not missing, and our VM behind it is removed (once
    // it has no sessions).
    let a = claim("a", InstanceState::Running, 100);
    let mut ra = agent(&a.kasm_server_id, 8.0, 16384.0, true, Some(5));
    ra.operational_status = "delete_pending".into();
    let mut other = agent("static-1", 8.0, 16384.0, true, Some(5));
    other.operational_status = "destroying".into();
    let i = with(input(4.0), vec![a.clone()], vec![ra, other]);
    let p = decide(&i, t0());
    assert!(p.create >= 1, "no capacity counted from going records: {p:?}");
    assert!(
        p.actions.iter().any(
            |x| matches!(x, Action::Destroy { claim, reason } if *claim == a.id && reason.contains("delete_pending"))
        ),
        "{:?}",
        p.actions
    );
}

// ---------- lifecycle ----------

#[test]
fn agents_left_disabled_are_activated() {
    // KASM.md: agents register disabled → "no resources available" unless we enable them.
    let i = with(
        input(4.0),
        vec![claim("a", InstanceState::Booting, 60)],
        vec![agent("srv-a", 4.0, 8192.0, false, Some(3))],
    );
    let p = decide(&i, t0());
    assert_eq!(
        p.actions,
        vec![Action::Activate { claim: ClaimId("a".into()), server_id: "srv-a".into(), enable: true }]
    );
    // Not capacity yet, but pending: no extra VM.
    assert_eq!(p.create, 0);
    assert_eq!(p.summary.free.cores, 4.0);
    // Already enabled (auto_agent on): activate without enabling; it counts as a record.
    let mut i = i;
    i.servers[0].enabled = true;
    let p = decide(&i, t0());
    assert_eq!(
        p.actions,
        vec![Action::Activate { claim: ClaimId("a".into()), server_id: "srv-a".into(), enable: false }]
    );
}

#[test]
fn booting_vm_that_never_checks_in_is_destroyed_after_the_timeout() {
    let i = with(input(0.0), vec![claim("a", InstanceState::Booting, 599)], vec![]);
    assert!(decide(&i, t0()).actions.is_empty(), "inside the boot grace");
    let i = with(input(0.0), vec![claim("a", InstanceState::Booting, 600)], vec![]);
    let p = decide(&i, t0());
    assert_eq!(destroys(&p), vec![("a", "never checked in within 600 s")]);
    // A record that exists but never checked in is the same.
    let i =
        with(input(0.0), vec![claim("a", InstanceState::Booting, 700)], vec![agent("srv-a", 4.0, 8192.0, false, None)]);
    assert_eq!(destroys(&decide(&i, t0())).len(), 1);
}

#[test]
fn timed_out_booting_vm_no_longer_counts_so_a_replacement_is_created() {
    let i = with(input(4.0), vec![claim("a", InstanceState::Booting, 900)], vec![]);
    let p = decide(&i, t0());
    assert_eq!(destroys(&p).len(), 1);
    assert_eq!(p.create, 1);
}

#[test]
fn dead_agents_are_destroyed_unless_they_have_sessions() {
    let (c, mut r) = running("a", 10_000);
    r.last_reported = Some(t0() - Duration::seconds(3600));
    let mut i = with(input(0.0), vec![c], vec![r]);
    let p = decide(&i, t0());
    assert_eq!(destroys(&p), vec![("a", "dead agent: no check-in for 3600 s (dead after 3600 s)")]);
    i.sessions = vec![session(1, "srv-a")];
    let p = decide(&i, t0());
    assert!(destroys(&p).is_empty());
    assert_reason(&p, "not destroying a although dead agent");
    // Missing but not dead yet: kept, not counted.
    i.sessions.clear();
    i.servers[0].last_reported = Some(t0() - Duration::seconds(1200));
    let p = decide(&i, t0());
    assert!(destroys(&p).is_empty());
    assert_eq!(p.summary.free.cores, 0.0);
}

#[test]
fn vanished_record_is_dead_after_the_dead_timer_since_running() {
    let i = with(input(0.0), vec![claim("a", InstanceState::Running, 3599)], vec![]);
    assert!(destroys(&decide(&i, t0())).is_empty());
    let i = with(input(0.0), vec![claim("a", InstanceState::Running, 3600)], vec![]);
    assert_eq!(destroys(&decide(&i, t0())), vec![("a", "dead agent: no Kasm record for 3600 s (dead after 3600 s)")]);
}

#[test]
fn draining_and_deleting_claims_are_left_to_the_reaper() {
    let i = with(
        input(0.0),
        vec![claim("a", InstanceState::Draining, 99_999), claim("b", InstanceState::Deleting, 99_999)],
        vec![agent("srv-a", 4.0, 8192.0, false, Some(99_999))],
    );
    let p = decide(&i, t0());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.summary.vms_by_state["draining"], 1);
    assert_eq!(p.summary.vms_by_state["deleting"], 1);
    assert_eq!(p.summary.vms_by_state["running"], 0);
}

// ---------- scale down and its clock ----------

fn three_idle() -> Input {
    let (a, ra) = running("a", 3000);
    let (b, rb) = running("b", 2000);
    let (c, rc) = running("c", 1000);
    with(input(4.0), vec![a, b, c], vec![ra, rb, rc])
}

#[test]
fn scale_down_clock_starts_waits_then_drains_newest_first() {
    let mut i = three_idle();
    let p = decide(&i, t0());
    assert_eq!(p.request_downscale_at, Some(t0()), "clock starts");
    assert!(drains(&p).is_empty());
    assert_reason(&p, "clock started; backoff 1800 s");

    i.control.request_downscale_at = Some(t0() - Duration::seconds(1380));
    let p = decide(&i, t0());
    assert_eq!(p.request_downscale_at, i.control.request_downscale_at, "clock kept");
    assert!(drains(&p).is_empty());
    assert_reason(&p, "scale-down condition holds since 11:37:00; backoff 1800 s not elapsed (420 s left)");

    i.control.request_downscale_at = Some(t0() - Duration::seconds(1800));
    let p = decide(&i, t0());
    // 12 free, standby 4: two can go, the newest (c, then b); a keeps the standby.
    assert_eq!(drains(&p), vec!["c", "b"]);
    assert_eq!(p.request_downscale_at, None);
    assert_eq!(p.create, 0);
    assert_reason(&p, "draining 2 idle VMs");
}

#[test]
fn scale_down_clock_resets_when_the_condition_stops_holding() {
    let mut i = three_idle();
    i.control.request_downscale_at = Some(t0() - Duration::seconds(600));
    i.sessions = vec![session(1, "srv-a"), session(2, "srv-b"), session(3, "srv-c")];
    let p = decide(&i, t0());
    assert_eq!(p.request_downscale_at, None);
    assert_reason(&p, "clock reset");
}

/// Kasm's `last_provision`: a scale-up restarts the downscale clock. The condition held for most of
/// the backoff, then a scale-up, then the condition again: the backoff starts over. Each scale-up
/// here leaves idle VMs removable (a GPU standby the CPU agents add nothing to, or a rotation
/// replacement), so only the scale-up rule stops the old clock.
#[test]
fn a_scale_up_restarts_the_downscale_clock() {
    let at = |i: &mut Input, now: DateTime<Utc>| {
        for r in &mut i.servers {
            r.last_reported = Some(now - Duration::seconds(10));
        }
        decide(i, now)
    };
    for how in ["create", "undrain", "replacement"] {
        let mut i = three_idle();
        i.new_vm_size = Some(Resources::new(4.0, 8192.0, 1.0));
        match how {
            "undrain" => {
                i.instances.push(claim("d", InstanceState::Draining, 100));
                let mut rd = agent("srv-d", 4.0, 8192.0, false, Some(5));
                rd.reported.gpus = 1.0;
                i.servers.push(rd);
                i.owned_total = 4;
            }
            "replacement" => {
                i.config.rotate_servers_in_days = Some(1);
                i.instances[0].transitions.insert("booting".into(), t0() - Duration::hours(24) - Duration::minutes(10));
            }
            _ => {}
        }
        // Held for 1500 of the 1800 s.
        i.control.request_downscale_at = Some(t0() - Duration::seconds(1500));
        if how != "replacement" {
            let p = at(&mut i, t0());
            assert_eq!(p.request_downscale_at, i.control.request_downscale_at, "{how}: {:#?}", p.reasons);
            // Demand for a GPU: the CPU agents stay removable, and the plan scales up.
            i.config.standby_gpus = 1.0;
        }
        let p = at(&mut i, t0() + Duration::seconds(60));
        match how {
            "undrain" => {
                assert_eq!(undrains(&p), vec!["d"], "{:#?}", p.reasons);
                assert_eq!(p.create, 0);
                i.instances[3].state = InstanceState::Running;
                i.servers[3].enabled = true;
            }
            "replacement" => {
                assert_eq!(p.replacements.len(), 1, "{:#?}", p.reasons);
                let mut n = claim("n", InstanceState::Requested, -60);
                n.replaces = Some(i.instances[0].id.clone());
                i.instances.push(n);
                i.owned_total += 1;
            }
            _ => {
                assert_eq!(p.create, 1, "{:#?}", p.reasons);
                i.instances.push(claim("n", InstanceState::Requested, -60));
                i.owned_total += 1;
            }
        }
        assert_eq!(p.request_downscale_at, None, "{how}: {:#?}", p.reasons);
        assert_reason(&p, "a scale-up restarts the clock");
        i.control.request_downscale_at = p.request_downscale_at;
        // Demand drops again: the clock starts anew at that evaluation.
        i.config.standby_gpus = 0.0;
        let t1 = t0() + Duration::seconds(120);
        let p = at(&mut i, t1);
        assert_eq!(p.request_downscale_at, Some(t1), "{how}: {:#?}", p.reasons);
        assert!(drains(&p).is_empty());
        i.control.request_downscale_at = p.request_downscale_at;
        // Past where the old clock would have fired (t0 + 300), not past the new one: no drain.
        let p = at(&mut i, t1 + Duration::seconds(1799));
        assert!(drains(&p).is_empty(), "{how}: {:?}", p.actions);
        assert_eq!(p.request_downscale_at, Some(t1));
        assert_reason(&p, "backoff 1800 s not elapsed (1 s left)");
        // The whole backoff since the new start: idle VMs go.
        let p = at(&mut i, t1 + Duration::seconds(1800));
        assert!(!drains(&p).is_empty(), "{how}: {:#?}", p.reasons);
        assert_eq!(p.request_downscale_at, None);
    }
}

#[test]
fn sessions_not_allocated_decide_idleness() {
    // allocated says idle, a session says otherwise: keep it.
    let mut i = three_idle();
    i.config.standby_cores = 0.0;
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    i.sessions = vec![session(1, "srv-b")];
    let p = decide(&i, t0());
    assert_eq!(drains(&p), vec!["c", "a"]);
}

#[test]
fn pending_vms_do_not_excuse_a_drain() {
    let (a, ra) = running("a", 3000);
    let mut i = with(input(4.0), vec![a, claim("b", InstanceState::Booting, 30)], vec![ra]);
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    let p = decide(&i, t0());
    assert!(drains(&p).is_empty());
    assert_eq!(p.request_downscale_at, None);
    assert_eq!(p.summary.free.cores, 8.0, "the summary still shows the booting VM");
}

#[test]
fn disabled_config_neither_scales_up_nor_down_but_keeps_lifecycle() {
    let mut i = three_idle();
    i.config.enabled = false;
    i.config.standby_cores = 100.0;
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    i.instances.push(claim("d", InstanceState::Booting, 30));
    i.instances.push(claim("f", InstanceState::Failed, 30));
    i.owned_total = 5;
    i.servers.push(agent("srv-d", 4.0, 8192.0, false, Some(1)));
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert!(drains(&p).is_empty());
    assert_eq!(p.request_downscale_at, None);
    assert_eq!(destroys(&p).len(), 1);
    assert!(p.actions.iter().any(|a| matches!(a, Action::Activate { enable: true, .. })));
    assert_reason(&p, "config disabled");
}

// ---------- undrain ----------

#[test]
fn undrain_before_create() {
    let (a, ra) = running("a", 3000);
    let mut ra = ra;
    ra.allocated = Resources::new(4.0, 8192.0, 0.0);
    let b = claim("b", InstanceState::Draining, 100);
    let mut rb = agent("srv-b", 4.0, 8192.0, false, Some(5));
    rb.allocated = Resources::new(1.0, 0.0, 0.0);
    let c = claim("c", InstanceState::Draining, 50);
    let rc = agent("srv-c", 4.0, 8192.0, false, Some(5));
    let gone = claim("gone", InstanceState::Draining, 10); // record already removed
    let mut i = with(input(8.0), vec![a, b, c, gone], vec![ra, rb, rc]);
    i.sessions = vec![session(1, "srv-a"), session(2, "srv-b")];
    let p = decide(&i, t0());
    // Most recently drained first: c (4 free), then b (3 free) → 7 < 8, one more VM.
    let undrained: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Undrain { claim, .. } => Some(claim.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(undrained, vec!["c", "b"]);
    assert_eq!(p.create, 1);
    assert_eq!(p.request_downscale_at, None);
    // During a provider backoff undrains still happen; creates do not.
    i.control.backoff_until = Some(t0() + Duration::minutes(5));
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_eq!(p.actions.len(), 2);
}

// ---------- schedules and floor ----------

fn sunday(start: &str, end: &str, min: u32) -> Schedule {
    Schedule {
        autoscale_config: "cfg".into(),
        days_of_the_week: vec![Weekday::Sunday],
        active_start_time: start.into(),
        active_end_time: end.into(),
        timezone: "UTC".into(),
        minimum_instances: min,
    }
}

#[test]
fn schedule_floor_creates_and_protects() {
    let mut i = input(0.0);
    i.config.max_new_vms_per_evaluation = std::num::NonZeroU32::new(1); // the floor is a fleet size, created at once anyway
    i.schedules = vec![sunday("08:00", "18:00", 3)];
    let p = decide(&i, t0());
    assert_eq!(p.create, 3);
    assert_eq!(p.summary.minimum_instances, 3);
    assert_reason(&p, "minimum_instances 3 from the schedule, 0 VMs up: +3");

    let mut i = three_idle();
    i.config.standby_cores = 0.0;
    i.schedules = vec![sunday("08:00", "18:00", 2)];
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    let p = decide(&i, t0());
    assert_eq!(drains(&p), vec!["c"], "only down to the floor of 2");
    i.schedules[0].minimum_instances = 3;
    let p = decide(&i, t0());
    assert!(drains(&p).is_empty());
    assert_eq!(p.request_downscale_at, None);
}

fn undrains(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Undrain { claim, .. } => Some(claim.as_str()),
            _ => None,
        })
        .collect()
}

fn drain_reason<'p>(p: &'p Plan, id: &str) -> &'p str {
    p.actions
        .iter()
        .find_map(|a| match a {
            Action::Drain { claim, reason, .. } if claim.as_str() == id => Some(reason.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{id} not drained: {:#?}", p.actions))
}

#[test]
fn inactive_schedule_drains_every_vm_busy_or_idle_and_destroys_none_with_sessions() {
    let mut i = three_idle();
    i.config.standby_cores = 100.0;
    i.schedules = vec![sunday("08:00", "11:00", 5)];
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    // d: a dead agent with a session: its destroy is held, and it is drained like the others.
    i.instances.push(claim("d", InstanceState::Running, 9000));
    i.servers.push(agent("srv-d", 4.0, 8192.0, true, Some(4000)));
    i.owned_total = 4;
    i.sessions = vec![session(1, "srv-a"), session(2, "srv-a"), session(3, "srv-d")];
    let p = decide(&i, t0());
    assert!(!p.summary.active);
    assert_eq!(p.create, 0);
    assert_eq!(p.summary.minimum_instances, 0, "no floor while inactive");
    assert_eq!(drains(&p), vec!["a", "b", "c", "d"], "every VM, at once, without backoff");
    assert!(destroys(&p).is_empty(), "{:?}", p.actions);
    assert_eq!(p.request_downscale_at, None);
    assert!(
        drain_reason(&p, "a").contains("schedule inactive (schedule 1: Sun 08:00–11:00 UTC)")
            && drain_reason(&p, "a").contains("it has 2 sessions, deleted once they end"),
        "{}",
        drain_reason(&p, "a")
    );
    assert!(drain_reason(&p, "b").contains("idle, deleted now"), "{}", drain_reason(&p, "b"));
    assert_reason(&p, "draining every VM of ours: 2 idle, 2 with sessions");
    assert_reason(&p, "not destroying d although dead agent");
}

#[test]
fn inactive_schedule_never_puts_a_booted_vm_into_service() {
    let mut i = with(
        input(8.0),
        vec![
            claim("ready", InstanceState::Booting, 120),
            claim("slow", InstanceState::Booting, 120),
            claim("timeout", InstanceState::Booting, 700),
        ],
        vec![agent("srv-ready", 4.0, 8192.0, false, Some(5))],
    );
    i.schedules = vec![sunday("08:00", "11:00", 0)];
    let p = decide(&i, t0());
    // Checked in: drained instead of activated (its record stays disabled), deleted by the reaper.
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Activate { .. })), "{:?}", p.actions);
    assert_eq!(drains(&p), vec!["ready"]);
    assert!(drain_reason(&p, "ready").contains("booted outside the schedule, not put into service"));
    // Not checked in yet: waits (drained once it checks in); past the provision timeout: destroyed.
    assert_eq!(destroys(&p).iter().map(|d| d.0).collect::<Vec<_>>(), vec!["timeout"]);
    assert_reason(&p, "1 VMs still booting are not put into service");
    // Active, the same VM is activated as usual.
    i.schedules = vec![sunday("08:00", "18:00", 0)];
    let p = decide(&i, t0());
    assert!(p.actions.iter().any(|a| matches!(a, Action::Activate { claim, .. } if claim.as_str() == "ready")));
    assert!(drains(&p).is_empty());
}

#[test]
fn vms_drained_while_inactive_are_undrained_first_when_the_schedule_is_active_again() {
    // After the inactive plan above: a (busy) still drains, the idle ones were reaped.
    let a = claim("a", InstanceState::Draining, 600);
    let mut ra = agent("srv-a", 4.0, 8192.0, false, Some(5));
    ra.allocated = Resources::new(1.0, 1024.0, 0.0);
    let mut i = with(input(4.0), vec![a], vec![ra]);
    i.sessions = vec![session(1, "srv-a")];
    i.schedules = vec![sunday("08:00", "11:00", 2)];
    let p = decide(&i, t0());
    assert!(p.actions.is_empty() && p.create == 0, "inactive: nothing comes back {:?}", p.actions);
    i.schedules = vec![sunday("08:00", "18:00", 2)];
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    let p = decide(&i, t0());
    assert_eq!(undrains(&p), vec!["a"]);
    assert_eq!(p.create, 1, "the floor of 2 needs one more once a is back: {:#?}", p.reasons);
    assert_reason(&p, "undraining 1 draining VMs before creating any");
    assert_eq!(p.request_downscale_at, None, "a scale-up restarts the clock");
    // Rotation: a draining VM past its due age is never re-enabled; a new VM is created instead.
    i.config.rotate_servers_in_days = Some(1);
    i.instances[0].transitions.insert("booting".into(), t0() - Duration::hours(25));
    let p = decide(&i, t0());
    assert!(undrains(&p).is_empty(), "{:?}", p.actions);
    assert_eq!(p.create, 2);
}

// ---------- server pools ----------

fn pool(minimum: u32, per: u32) -> Input {
    let mut i = input(0.0);
    i.config.autoscale_type = AutoscaleType::Server;
    i.config.minimum_pool_standby_sessions = minimum;
    i.config.max_simultaneous_sessions_per_server = per;
    // Reusable (these tests are about counting); single-use servers have their own tests.
    i.config.reusable = true;
    i.new_vm_size = None;
    i
}

#[test]
fn server_pool_scales_on_available_sessions() {
    let i = pool(5, 2);
    let p = decide(&i, t0());
    assert_eq!(p.create, 3);
    assert_reason(&p, "available sessions 0 < minimum 5: +3 servers of 2 sessions");
    // A booting server counts; a static server with its own max counts minus its sessions.
    let mut st = server("static", true, None);
    st.max_sessions = Some(4);
    let mut i = with(pool(5, 2), vec![claim("a", InstanceState::Booting, 10)], vec![st]);
    i.sessions = vec![session(1, "static")];
    let p = decide(&i, t0());
    assert_eq!(p.summary.available_sessions, 5);
    assert_eq!(p.create, 0);
    let mut i = pool(5, 2);
    i.config.max_new_vms_per_evaluation = std::num::NonZeroU32::new(1);
    assert_eq!(decide(&i, t0()).create, 1);
}

#[test]
fn server_activation_follows_require_checkin() {
    let i = with(pool(0, 1), vec![claim("a", InstanceState::Booting, 10)], vec![server("srv-a", true, None)]);
    let p = decide(&i, t0());
    assert_eq!(
        p.actions,
        vec![Action::Activate { claim: ClaimId("a".into()), server_id: "srv-a".into(), enable: false }]
    );
    let mut i = i;
    i.config.require_checkin = true;
    // Kasm starts a record made with agent_installed as `starting`.
    i.servers[0].operational_status = "starting".into();
    assert!(decide(&i, t0()).actions.is_empty(), "waits for the check-in");
    i.servers[0].last_reported = Some(t0());
    assert_eq!(decide(&i, t0()).actions.len(), 1);
    // The Desktop Service's set_server_status makes it `running`, with or without last_reported.
    i.servers[0].last_reported = None;
    i.servers[0].operational_status = "running".into();
    assert_eq!(decide(&i, t0()).actions.len(), 1, "running counts as checked in");
    // No check-in within the provision timeout → destroyed.
    i.servers[0].operational_status = "starting".into();
    i.instances[0].state_since = t0() - Duration::seconds(601);
    assert_eq!(destroys(&decide(&i, t0())).len(), 1);
}

#[test]
fn server_pool_scale_down_keeps_the_minimum() {
    let mk = |id: &str, age| (claim(id, InstanceState::Running, age), server(&format!("srv-{id}"), true, None));
    let (a, ra) = mk("a", 300);
    let (b, rb) = mk("b", 200);
    let (c, rc) = mk("c", 100);
    let mut i = with(pool(3, 2), vec![a, b, c], vec![ra, rb, rc]);
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    i.sessions = vec![session(1, "srv-a")];
    // available 1 + 2 + 2 = 5; minimum 3: c can go (→ 3), then b cannot.
    let p = decide(&i, t0());
    assert_eq!(drains(&p), vec!["c"]);
}

// ---------- output ----------

#[test]
fn plan_does_not_depend_on_input_order() {
    let mut i = three_idle();
    i.instances.push(claim("d", InstanceState::Booting, 10));
    i.instances.push(claim("e", InstanceState::Failed, 10));
    i.servers.push(agent("srv-d", 4.0, 8192.0, false, Some(1)));
    i.owned_total = 5;
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    let p = decide(&i, t0());
    let mut j = i.clone();
    j.instances.reverse();
    j.servers.reverse();
    assert_eq!(decide(&j, t0()), p);
    assert_eq!(decide_all(&[i, j], t0()), vec![p.clone(), p]);
}

#[test]
fn summary_is_complete() {
    let mut i = three_idle();
    i.instances.push(claim("x", InstanceState::Requested, 1));
    i.owned_total = 7;
    i.sessions = vec![session(1, "srv-a"), session(2, "srv-a")];
    let p = decide(&i, t0());
    let s = &p.summary;
    assert!(s.active);
    assert_eq!(s.standby, Resources::new(4.0, 0.0, 0.0));
    assert_eq!(s.per_vm, Resources::new(4.0, 8192.0, 0.0));
    assert_eq!(s.free.cores, 16.0);
    assert_eq!(s.sessions, 2);
    assert_eq!(s.owned_total, 7);
    assert_eq!(s.max_instances, 10);
    assert_eq!(s.vms_by_state.len(), 7, "every state but deleted: {:?}", s.vms_by_state);
    assert_eq!(s.vms_by_state["running"], 3);
    assert_eq!(s.vms_by_state["requested"], 1);
    assert_eq!(p.autoscale_config, "cfg");
    assert!(!p.reasons.is_empty());
}

#[test]
fn sessions_on_a_record_at_the_vms_address_hold_its_destroy() {
    // Not ours by address (never a guess), but its sessions are the VM's: no destroy while they last.
    let mut c = claim("a", InstanceState::Failed, 100);
    c.private_ip = Some("10.0.0.9".into());
    let mut other = agent("registered-elsewhere", 4.0, 8192.0, true, Some(5));
    other.hostname = Some("10.0.0.9".into());
    let mut i = with(input(0.0), vec![c.clone()], vec![other]);
    i.sessions.push(crate::kasm::KasmSession {
        kasm_id: "k1".into(),
        server_id: "registered-elsewhere".into(),
        resources: Resources::new(1.0, 1024.0, 0.0),
        status: "running".into(),
        ..Default::default()
    });
    let p = decide(&i, t0());
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Destroy { .. })), "{:?}", p.actions);
    assert_reason(&p, "not destroying a");
    i.sessions.clear();
    let p = decide(&i, t0());
    assert!(p.actions.iter().any(|a| matches!(a, Action::Destroy { claim, .. } if *claim == c.id)), "{:?}", p.actions);
}

// ---------- rotation ----------

const DAY: i64 = 86_400;

/// `input(standby)` with rotation after 1 day, replacements claimed 60 minutes ahead.
fn rotating(standby_cores: f64) -> Input {
    let mut i = input(standby_cores);
    i.config.rotate_servers_in_days = Some(1);
    i.config.rotate_servers_pre_warm_minutes = Some(60);
    i
}

/// A running claim whose VM booted `age` seconds before `t0()` (claimed 5 minutes earlier), with a
/// healthy, enabled, idle 4-core record.
fn booted(id: &str, age: i64) -> (Instance, KasmServer) {
    let (mut c, r) = running(id, age + 300);
    c.transitions.insert("booting".into(), t0() - Duration::seconds(age));
    (c, r)
}

/// A claim `id` replacing `old`, in `state` since `age` seconds.
fn replacement(id: &str, old: &str, state: InstanceState, age: i64) -> Instance {
    let mut c = claim(id, state, age);
    c.replaces = Some(ClaimId(old.into()));
    c
}

fn rotation_drains(p: &Plan) -> Vec<(&str, &str)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Drain { claim, replaced_by: Some(r), .. } => Some((claim.as_str(), r.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn rotation_is_off_without_days_or_with_zero() {
    for days in [None, Some(0)] {
        let (c, r) = booted("old", 400 * DAY);
        let mut i = with(input(4.0), vec![c], vec![r]);
        i.config.rotate_servers_in_days = days;
        i.config.rotate_servers_pre_warm_minutes = Some(60);
        let p = decide(&i, t0());
        assert_eq!((p.create, p.replacements.len()), (0, 0), "{days:?}: {:#?}", p.reasons);
        assert!(p.actions.is_empty());
        assert!(!has_reason(&p, "rotation"));
    }
}

#[test]
fn a_vm_past_its_pre_warm_age_gets_a_replacement_though_standby_is_met() {
    // 1 day − 60 min − 1 s: not yet.
    let (c, r) = booted("old", DAY - 3600 - 1);
    let i = with(rotating(4.0), vec![c], vec![r]);
    let p = decide(&i, t0());
    assert_eq!(p.create, 0, "{:#?}", p.reasons);
    // 1 day − 60 min: its replacement is claimed, although free 4 = standby 4.
    let (c, r) = booted("old", DAY - 3600);
    let i = with(rotating(4.0), vec![c], vec![r]);
    let p = decide(&i, t0());
    assert_eq!(p.create, 1, "{:#?}", p.reasons);
    assert_eq!(p.replacements, vec![ClaimId("old".into())]);
    assert_reason(&p, "rotation: old has existed 23h 0m (rotate after 1d 0h 0m, replacement claimed 1h 0m ahead)");
    assert!(p.actions.is_empty(), "nothing is drained before the replacement serves");
    assert!(p.changes_something());
}

#[test]
fn age_counts_from_the_vm_not_the_claim() {
    // Claimed two days ago, but the provider made the VM (booting) only 10 hours ago: not due.
    let (mut c, r) = running("old", 2 * DAY);
    c.transitions.insert("booting".into(), t0() - Duration::hours(10));
    let p = decide(&with(rotating(4.0), vec![c.clone()], vec![r.clone()]), t0());
    assert_eq!(p.create, 0, "{:#?}", p.reasons);
    // Without a booting transition (an old record) the claim's creation counts.
    c.transitions.remove("booting");
    let p = decide(&with(rotating(4.0), vec![c], vec![r]), t0());
    assert_eq!(p.replacements, vec![ClaimId("old".into())]);
}

#[test]
fn a_live_replacement_is_not_claimed_twice_and_stands_in_for_the_old_vm() {
    let (c, r) = booted("old", DAY - 1800);
    for state in [InstanceState::Requested, InstanceState::Creating, InstanceState::Booting] {
        let i = with(rotating(4.0), vec![c.clone(), replacement("new", "old", state, 10)], vec![r.clone()]);
        let p = decide(&i, t0());
        assert_eq!(p.create, 0, "{state}: {:#?}", p.reasons);
        assert!(p.replacements.is_empty());
        // The old VM's 4 free cores are not counted; the pending replacement's 4 are.
        assert_eq!(p.summary.free.cores, 4.0, "{state}");
        assert_reason(&p, "1 VMs past 23h 0m, 1 of them with a replacement");
    }
}

#[test]
fn a_failed_replacement_is_destroyed_and_claimed_again() {
    let (c, r) = booted("old", DAY - 1800);
    let i = with(rotating(4.0), vec![c, replacement("new", "old", InstanceState::Failed, 10)], vec![r]);
    let p = decide(&i, t0());
    assert_eq!(destroys(&p).len(), 1);
    assert_eq!(p.replacements, vec![ClaimId("old".into())]);
    assert_eq!(p.create, 1);
}

#[test]
fn the_cap_or_a_provider_backoff_leaves_the_old_vm_serving() {
    let (c, r) = booted("old", DAY + 3600);
    let mut i = with(rotating(4.0), vec![c.clone()], vec![r.clone()]);
    i.max_instances = 1;
    let p = decide(&i, t0());
    assert_eq!((p.create, p.replacements.len()), (0, 0));
    assert!(p.actions.is_empty(), "never drained without a replacement: {:?}", p.actions);
    assert_reason(&p, "rotation: at max_instances 1 (1 owned, 0 claimed for standby): no replacement for old");
    assert_eq!(p.summary.free.cores, 4.0, "it still counts as capacity");

    // Standby comes first when only one slot is left.
    let (c2, r2) = booted("busy", 600);
    let mut r2 = r2;
    r2.allocated = Resources::new(4.0, 0.0, 0.0);
    let mut i = with(rotating(8.0), vec![c.clone(), c2], vec![r.clone(), r2]);
    i.max_instances = 3;
    let p = decide(&i, t0());
    assert_eq!(p.create, 1);
    assert!(p.replacements.is_empty(), "{:#?}", p.reasons);
    assert_reason(&p, "1 claimed for standby): no replacement for old");

    let mut i = with(rotating(4.0), vec![c], vec![r]);
    i.control.backoff_until = Some(t0() + Duration::minutes(5));
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_reason(&p, "rotation: provider backoff until 12:05:00: the replacements of old wait");
}

#[test]
fn an_expired_vm_is_drained_once_its_replacement_serves_even_with_sessions() {
    let (c, mut r) = booted("old", DAY + 60);
    r.allocated = Resources::new(2.0, 2048.0, 0.0);
    let n = replacement("new", "old", InstanceState::Running, 600);
    let rn = agent("srv-new", 4.0, 8192.0, true, Some(10));
    let mut i = with(rotating(4.0), vec![c, n], vec![r, rn]);
    i.sessions = vec![session(1, "srv-old"), session(2, "srv-old")];
    let p = decide(&i, t0());
    assert_eq!(rotation_drains(&p), vec![("old", "new")], "{:#?}", p.reasons);
    assert!(destroys(&p).is_empty(), "a VM with sessions is never destroyed");
    assert_eq!(p.create, 0);
    assert_reason(&p, "rotation: draining old (1d 0h 1m old), its replacement new serves");
    let Some(Action::Drain { reason, .. }) = p.actions.first() else { panic!("{:?}", p.actions) };
    assert!(reason.contains("deleted once it has no sessions (2 now)"), "{reason}");
    // Not yet expired (pre-warm window): both serve, and neither is a scale-down candidate, even
    // with no standby at all and the backoff long elapsed.
    let (c, r) = booted("old", DAY - 600);
    let n = replacement("new", "old", InstanceState::Running, 600);
    let rn = agent("srv-new", 4.0, 8192.0, true, Some(10));
    let mut i = with(rotating(0.0), vec![c, n], vec![r, rn]);
    i.control.request_downscale_at = Some(t0() - Duration::hours(2));
    let p = decide(&i, t0());
    assert!(p.actions.is_empty(), "{:?} {:#?}", p.actions, p.reasons);
    assert_eq!(p.request_downscale_at, None, "rotation's pair is left to rotation: {:#?}", p.reasons);
    assert_reason(&p, "no idle VM of ours");
}

#[test]
fn the_drain_waits_for_a_booting_replacement_and_for_standby() {
    let (c, r) = booted("old", DAY + 60);
    let i =
        with(rotating(4.0), vec![c.clone(), replacement("new", "old", InstanceState::Booting, 60)], vec![r.clone()]);
    let p = decide(&i, t0());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_reason(&p, "rotation: old is due to go; waiting for its replacement new (booting) to serve");

    // The replacement serves but is half full: without the old VM, free 2 < standby 4. The old VM
    // stays, and the shortfall (counted without it) claims one more VM.
    let n = replacement("new", "old", InstanceState::Running, 600);
    let mut rn = agent("srv-new", 4.0, 8192.0, true, Some(10));
    rn.allocated = Resources::new(2.0, 0.0, 0.0);
    let mut i = with(rotating(4.0), vec![c, n], vec![r, rn]);
    i.sessions = vec![session(1, "srv-new")];
    let p = decide(&i, t0());
    assert!(rotation_drains(&p).is_empty(), "{:#?}", p.reasons);
    assert_reason(&p, "rotation: old is due to go, but without it the pool would drop below standby");
    assert_eq!((p.create, p.replacements.len()), (1, 0));
    assert_reason(&p, "free cores 2 < standby 4: +1 agents of 4 cores");
}

#[test]
fn rotation_drains_keep_the_schedule_floor() {
    let (c, r) = booted("old", DAY + 60);
    let n = replacement("new", "old", InstanceState::Running, 600);
    let rn = agent("srv-new", 4.0, 8192.0, true, Some(10));
    let mut i = with(rotating(0.0), vec![c.clone(), n.clone()], vec![r.clone(), rn.clone()]);
    i.schedules = vec![sunday("08:00", "18:00", 1)];
    let p = decide(&i, t0());
    assert_eq!(rotation_drains(&p), vec![("old", "new")], "the replacement holds the floor of 1");
    assert_eq!(p.create, 0);
    i.schedules = vec![sunday("08:00", "18:00", 2)];
    let p = decide(&i, t0());
    assert!(rotation_drains(&p).is_empty());
    assert_reason(&p, "rotation: old is due to go, but minimum_instances 2 from the schedule needs it");
    assert_eq!(p.create, 1, "the floor is counted without the retiring VM: {:#?}", p.reasons);
}

#[test]
fn inactive_or_disabled_configs_do_not_rotate() {
    let (c, r) = booted("old", DAY + 60);
    let mut i = with(rotating(4.0), vec![c.clone()], vec![r.clone()]);
    i.schedules = vec![sunday("20:00", "21:00", 0)];
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_reason(&p, "rotation: 1 VMs due for replacement (old), none claimed while the schedule is inactive");
    // Drained like any other idle VM, as a scale-down, not a rotation.
    assert_eq!(drains(&p), vec!["old"]);
    assert!(rotation_drains(&p).is_empty());

    let mut i = with(rotating(4.0), vec![c], vec![r]);
    i.config.enabled = false;
    let p = decide(&i, t0());
    assert!(p.create == 0 && p.actions.is_empty());
    assert_reason(&p, "none claimed while the config is disabled");
}

#[test]
fn a_draining_vm_past_its_due_age_is_not_undrained() {
    let (mut c, r) = booted("old", DAY - 1800);
    c.state = InstanceState::Draining;
    let mut i = with(rotating(8.0), vec![c.clone()], vec![r.clone()]);
    let p = decide(&i, t0());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.create, 2, "{:#?}", p.reasons);
    // Younger, it is undrained as before.
    i.instances[0].transitions.insert("booting".into(), t0() - Duration::hours(2));
    let p = decide(&i, t0());
    assert!(matches!(p.actions.as_slice(), [Action::Undrain { .. }]), "{:?}", p.actions);
}

#[test]
fn scale_down_takes_due_vms_without_replacement_first() {
    // Three idle VMs, standby 4: two may go. "a" is due (the cap left it without a replacement).
    let (a, ra) = booted("a", DAY - 60);
    let (b, rb) = booted("b", 3600);
    let (c, rc) = booted("c", 1800);
    let mut i = with(rotating(4.0), vec![a, b, c], vec![ra, rb, rc]);
    i.max_instances = 3;
    i.control.request_downscale_at = Some(t0() - Duration::hours(1));
    let p = decide(&i, t0());
    assert_eq!(drains(&p), vec!["a", "c"], "{:#?}", p.reasons);
}

#[test]
fn server_pools_rotate_too() {
    let mut i = rotating(0.0);
    i.config.autoscale_type = AutoscaleType::Server;
    i.config.minimum_pool_standby_sessions = 1;
    i.config.reusable = true;
    let mut c = claim("old", InstanceState::Running, DAY + 600);
    c.transitions.insert("booting".into(), t0() - Duration::seconds(DAY + 60));
    let r = server("srv-old", true, None);
    let n = replacement("new", "old", InstanceState::Running, 600);
    let rn = server("srv-new", true, None);
    // Due without a replacement: one is claimed.
    let p = decide(&with(i.clone(), vec![c.clone()], vec![r.clone()]), t0());
    assert_eq!(p.replacements, vec![ClaimId("old".into())]);
    // The old server has its one session; the replacement is free: drained, not destroyed.
    let mut i = with(i, vec![c, n], vec![r, rn]);
    i.sessions = vec![session(1, "srv-old")];
    let p = decide(&i, t0());
    assert_eq!(rotation_drains(&p), vec![("old", "new")], "{:#?}", p.reasons);
    assert_eq!(p.create, 0);
}

#[test]
fn an_agent_of_ours_found_by_our_record_name_counts_with_the_configs_override() {
    // A record we created (another id, our VM name as friendly_name): ours, so the override (3 cores)
    // counts, not the 5 it reports — as for a record matched by id.
    let c = claim("c", InstanceState::Running, 100);
    let mut r = agent("kasm-elsewhere", 5.0, 8192.0, true, Some(5));
    r.friendly_name = Some(c.vm_name.clone());
    let mut i = with(input(4.0), vec![c], vec![r]);
    i.config.agent_cores_override = 3.0;
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 3.0, "{:#?}", p.reasons);
    assert_eq!(p.create, 1);
}

// ---------- single-use servers (Kasm's `reusable`) ----------

#[test]
fn a_single_use_server_with_a_session_is_drained_replaced_and_never_reused() {
    // Kasm's default reusable: false. One running server of ours, one session on it; standby 1.
    let c = claim("used", InstanceState::Running, 600);
    let mut rec = server(&c.kasm_server_id, true, None);
    rec.max_sessions = Some(1);
    let mut i = with(pool(1, 1), vec![c.clone()], vec![rec.clone()]);
    i.config.reusable = false;
    i.sessions.push(crate::kasm::KasmSession {
        kasm_id: "k1".into(),
        server_id: c.kasm_server_id.clone(),
        resources: Resources::default(),
        status: "running".into(),
        ..Default::default()
    });
    let p = decide(&i, t0());
    let drained: Vec<_> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Drain { claim, reason, .. } if *claim == c.id && reason.contains("single-use")))
        .collect();
    assert_eq!(drained.len(), 1, "{:?}", p.actions);
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Destroy { .. })), "never destroyed with a session");
    assert_eq!(p.create, 1, "standby is kept with a new server: {:#?}", p.reasons);
    assert_reason(&p, "single-use servers (reusable: false) are in use");

    // Its session ended while draining: it is never undrained, even when standby wants a server.
    let mut d = c.clone();
    d.state = InstanceState::Draining;
    let mut i = with(pool(2, 1), vec![d], vec![rec.clone()]);
    i.config.reusable = false;
    let p = decide(&i, t0());
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Undrain { .. })), "{:?}", p.actions);
    assert!(p.create >= 1, "{:#?}", p.reasons);

    // reusable: true keeps today's behaviour: the used server serves on, no drain.
    let mut i = with(pool(1, 1), vec![c.clone()], vec![rec]);
    i.config.max_simultaneous_sessions_per_server = 2;
    i.servers[0].max_sessions = Some(2);
    i.sessions.push(crate::kasm::KasmSession {
        kasm_id: "k1".into(),
        server_id: c.kasm_server_id.clone(),
        resources: Resources::default(),
        status: "running".into(),
        ..Default::default()
    });
    let p = decide(&i, t0());
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Drain { .. })), "{:?}", p.actions);
}

// ---------- staging configs and queued requests ----------

/// A staging config of `num` sessions of an image of `cores` / `mem` MB, `current` of them staged.
fn staging(id: &str, cores: f64, mem: f64, num: u32, current: u32) -> StagingDemand {
    StagingDemand {
        staging_config_id: id.into(),
        image: format!("image-{id}"),
        image_size: Resources::new(cores, mem, 0.0),
        num_sessions: num,
        current_sessions: current,
    }
}

/// A session request Kasm queued for the config (`requested`, no server).
fn request(id: &str, cores: f64, mem: f64) -> KasmSession {
    KasmSession {
        kasm_id: id.into(),
        resources: Resources::new(cores, mem, 0.0),
        status: "requested".into(),
        autoscale_config_id: Some("kasm-cfg".into()),
        ..Default::default()
    }
}

/// Kasm's `desired_staged_resources` on a table: per dimension, image size × (desired − staged) for
/// every staging config that fits one VM (4 cores / 8192 MB here), added to the standby.
#[test]
fn staging_needs_add_to_the_standby_per_dimension() {
    // (standby cores, staging configs) → (staging cores, staging memory, VMs created)
    type Case = (f64, Vec<StagingDemand>, (f64, f64, u32));
    let cases: Vec<Case> = vec![
        // Standby 0: only what staging needs (3 missing × 2 cores / 2768 MB = 6 cores, 8304 MB).
        (0.0, vec![staging("s1", 2.0, 2768.0, 4, 1)], (6.0, 8304.0, 2)),
        // In addition to the standby: 8 + 6 = 14 cores → 4 VMs.
        (8.0, vec![staging("s1", 2.0, 2768.0, 4, 1)], (6.0, 8304.0, 4)),
        // Every staging config adds: 6 + 1 × 1 core = 7 cores, 8304 + 1000 MB.
        (0.0, vec![staging("s1", 2.0, 2768.0, 4, 1), staging("s2", 1.0, 1000.0, 2, 1)], (7.0, 9304.0, 2)),
        // Fully staged: nothing more (its sessions already hold their room on the agents).
        (0.0, vec![staging("s1", 2.0, 2768.0, 3, 3)], (0.0, 0.0, 0)),
        // More staged than desired: never below 0 (ours; Kasm's sum could go negative).
        (4.0, vec![staging("s1", 2.0, 2768.0, 1, 3)], (0.0, 0.0, 1)),
        // Desired 0: skipped, as Kasm skips `num_sessions` 0.
        (0.0, vec![staging("s1", 2.0, 2768.0, 0, 0)], (0.0, 0.0, 0)),
    ];
    for (k, (standby, st, (cores, mem, create))) in cases.into_iter().enumerate() {
        let mut i = input(standby);
        i.staging = st;
        let p = decide(&i, t0());
        assert_eq!((p.summary.staging.cores, p.summary.staging.memory_mb), (cores, mem), "case {k}: {:#?}", p.reasons);
        assert_eq!(p.create, create, "case {k}: {:#?}", p.reasons);
        assert_eq!(p.summary.standby.cores, standby, "the summary's standby is the config's");
    }
    let mut i = input(8.0);
    i.staging = vec![staging("s1", 2.0, 2768.0, 4, 1)];
    let p = decide(&i, t0());
    assert_reason(&p, "staging config s1 (image-s1): 4 desired, 1 staged: room kept for 3 more");
    assert_reason(&p, "free cores 0 < standby 8 + staging 6 = 14: +4 agents of 4 cores");
}

#[test]
fn staging_for_an_image_larger_than_one_vm_is_unmet_and_not_provisioned_for() {
    let mut i = input(0.0);
    i.staging = vec![staging("big", 8.0, 2000.0, 2, 0), staging("ok", 2.0, 2000.0, 1, 0)];
    let p = decide(&i, t0());
    assert_eq!(p.summary.staging, Resources::new(2.0, 2000.0, 0.0), "only the one that fits");
    assert_eq!(p.summary.staging_unmet, Resources::new(4.0, 0.0, 0.0), "8 cores on VMs of 4");
    assert_eq!(p.create, 1);
    assert_reason(&p, "staging config big (image-big): 2 desired, 0 staged: unmet: one session takes cores 8");
    // Alone it creates nothing.
    i.staging.pop();
    assert_eq!(decide(&i, t0()).create, 0);
    // The per-VM size is the override when set: 8 cores fit then.
    i.config.agent_cores_override = 8.0;
    let p = decide(&i, t0());
    assert_eq!(p.summary.staging_unmet, Resources::default());
    assert_eq!(p.create, 2, "16 cores on VMs of 8: {:#?}", p.reasons);
}

#[test]
fn staged_sessions_do_not_eat_the_standby() {
    // One agent of 4 cores, all free; standby 4; a staging config wants 2 × 2 cores, none staged yet:
    // the standby is kept in addition, so a VM is added before Kasm's staging takes the room.
    let (c, r) = running("a", 600);
    let mut i = with(input(4.0), vec![c], vec![r]);
    i.staging = vec![staging("s1", 2.0, 1024.0, 2, 0)];
    let p = decide(&i, t0());
    assert_eq!(p.create, 1, "{:#?}", p.reasons);
    // Once staged, the sessions hold their room (running, allocated) and none is missing: no more.
    let mut i = i;
    i.staging[0].current_sessions = 2;
    i.servers[0].allocated = Resources::new(4.0, 2048.0, 0.0);
    let mut staged = KasmSession {
        kasm_id: "st1".into(),
        server_id: "srv-a".into(),
        resources: Resources::new(2.0, 1024.0, 0.0),
        status: "running".into(),
        is_standby: true,
        staging_config_id: Some("s1".into()),
        ..Default::default()
    };
    i.sessions = vec![staged.clone()];
    staged.kasm_id = "st2".into();
    i.sessions.push(staged);
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 0.0);
    assert_eq!(p.create, 1, "the standby is still kept in addition to the staged sessions: {:#?}", p.reasons);
}

#[test]
fn staging_on_a_server_pool_keeps_session_slots() {
    let mut i = pool(1, 1);
    i.staging = vec![staging("w", 1.0, 768.0, 3, 1)];
    let p = decide(&i, t0());
    assert_eq!(p.summary.staging_sessions, 2);
    assert_eq!(p.create, 3, "minimum 1 + 2 missing staged sessions: {:#?}", p.reasons);
    assert_reason(&p, "available sessions 0 < minimum 1 + staging 2 + queued 0 = 3: +3 servers of 1 sessions");
    assert_reason(&p, "staging config w (image-w): 3 desired, 1 staged: 2 session slots kept free");
}

#[test]
fn queued_requests_drive_provisioning_only_with_aggressive_scaling() {
    let mut i = input(0.0);
    i.config.autoscale_config_id = Some("kasm-cfg".into());
    i.queued = vec![request("q1", 2.0, 2000.0), request("q2", 2.0, 2000.0), request("q3", 2.0, 2000.0)];
    let p = decide(&i, t0());
    assert_eq!(p.summary.queued_requests, 3);
    assert_eq!(p.summary.queued, Resources::new(6.0, 6000.0, 0.0));
    assert_eq!(p.create, 2, "6 cores on VMs of 4: {:#?}", p.reasons);
    assert_reason(&p, "3 session requests queued for this config and on no VM yet: demand (aggressive_scaling)");
    assert_reason(&p, "free cores 0 < standby 0 + queued 6 = 6: +2 agents of 4 cores");
    // Off: Kasm provisions for queued requests only with aggressive scaling; they wait for standby.
    i.config.aggressive_scaling = false;
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_eq!(p.summary.queued, Resources::default());
    assert_eq!(p.summary.queued_requests, 3, "still reported");
    assert_reason(&p, "aggressive_scaling off: they wait for the capacity standby and staging keep");
    // A request larger than one VM can never be placed by creating VMs.
    i.config.aggressive_scaling = true;
    i.queued = vec![request("huge", 16.0, 1000.0)];
    let p = decide(&i, t0());
    assert_eq!(p.create, 0);
    assert_reason(&p, "1 queued requests take more than one VM offers");
    // Server pools: each queued request takes a session slot.
    let mut i = pool(1, 2);
    i.queued = vec![request("q1", 0.0, 0.0), request("q2", 0.0, 0.0), request("q3", 0.0, 0.0)];
    let p = decide(&i, t0());
    assert_eq!(p.create, 2, "minimum 1 + 3 queued = 4 slots of 2: {:#?}", p.reasons);
}

#[test]
fn requests_queued_on_a_booting_vm_take_its_room() {
    // A VM still booting (its record registered disabled) with two requests assigned to it: it adds
    // 4 − 4 = 0 cores, so standby 4 needs another VM.
    let c = claim("a", InstanceState::Booting, 60);
    let rec = agent("srv-a", 4.0, 8192.0, false, None);
    let mut i = with(input(4.0), vec![c], vec![rec]);
    let assigned = |id: &str| KasmSession {
        kasm_id: id.into(),
        server_id: "srv-a".into(),
        resources: Resources::new(2.0, 1024.0, 0.0),
        status: "assigned".into(),
        ..Default::default()
    };
    assert_eq!(decide(&i, t0()).create, 0, "without them the booting VM covers the standby");
    i.sessions = vec![assigned("k1"), assigned("k2")];
    let p = decide(&i, t0());
    assert_eq!(p.summary.free.cores, 0.0);
    assert_eq!(p.create, 1, "{:#?}", p.reasons);
    assert_reason(&p, "less cores 4 memory_mb 2048 gpus 0 held by sessions queued on them");
    // On a running agent that counts, a queued request holds its room too (not in Kasm's `allocated` yet).
    let (c, r) = running("b", 600);
    let mut i = with(input(4.0), vec![c], vec![r]);
    assert_eq!(decide(&i, t0()).create, 0);
    i.sessions = vec![KasmSession { server_id: "srv-b".into(), ..assigned("k3") }];
    assert_eq!(decide(&i, t0()).summary.free.cores, 2.0);
    assert_eq!(decide(&i, t0()).create, 1);
    // Server pools: a booting server with a session queued on it has one slot fewer.
    let mut i = with(pool(2, 2), vec![claim("s", InstanceState::Booting, 60)], vec![server("srv-s", false, None)]);
    i.config.require_checkin = true;
    i.servers[0].operational_status = "starting".into();
    assert_eq!(decide(&i, t0()).summary.available_sessions, 2);
    i.sessions = vec![KasmSession { server_id: "srv-s".into(), ..assigned("k4") }];
    let p = decide(&i, t0());
    assert_eq!(p.summary.available_sessions, 1, "{:#?}", p.reasons);
    assert_eq!(p.create, 1);
    assert_reason(&p, "less 1 sessions queued on them");
}

#[test]
fn queued_and_staging_demand_stop_at_max_instances() {
    let mut i = input(0.0);
    i.max_instances = 3;
    i.staging = vec![staging("s1", 2.0, 1000.0, 10, 0)];
    i.queued = vec![request("q1", 4.0, 1000.0); 4];
    let p = decide(&i, t0());
    assert_eq!(p.create, 3, "20 + 16 cores want 9 VMs; the cap allows 3: {:#?}", p.reasons);
    assert_reason(&p, "max_instances 3 (0 owned): creating 3 of the 9 wanted");
}

// ---------- forecast ----------

/// A history of `weeks` weeks before `t0()`'s week with `cores` in use at each of `at` (minutes from
/// `t0()`), 1 GB per core.
fn history_of(input: &Input, weeks: i64, at: &[(i64, f64)]) -> forecast::DemandHistory {
    let mut h = forecast::DemandHistory::new(forecast::identity(&input.config));
    for w in (1..=weeks).rev() {
        for &(m, cores) in at {
            h.observe(t0() - Duration::days(7 * w) + Duration::minutes(m), [cores, cores * 1024.0, 0.0]);
        }
    }
    h
}

/// A docker-agent input with predictive scaling `mode`, standby 4 cores, cap 20, and 38 cores in use
/// forecast for t0's bucket (Sunday 12:00) from 3 weeks.
fn forecast_input(mode: crate::config::PredictiveScaling) -> Input {
    let mut i = input(4.0);
    i.max_instances = 20;
    i.config.predictive_scaling = mode;
    i.control.history = Some(history_of(&i, 3, &[(5, 38.0)]));
    i
}

#[test]
fn forecast_on_prewarms_ahead_of_a_rush() {
    let i = forecast_input(crate::config::PredictiveScaling::On);
    let p = decide(&i, t0());
    // Reactive: free 0 < standby 4, +1. Forecast: 38 cores and 38 GB in use soon, 0 now: 4 + 38 = 42
    // cores free wanted, 11 agents of 4 cores; memory 38 GB fits 5 agents of 8 GB.
    assert_eq!(p.create, 11);
    assert_reason(&p, "forecast Sun 12:00: 38 cores, 38912 memory_mb from 3 weeks of history (0 cores in use now)");
    assert_reason(&p, "provision_timeout / 2");
    assert_reason(&p, "-> +10 agents ahead of a 300 s boot");
    assert_reason(&p, "standby 4 + forecast 38 = 42");
    let f = p.summary.forecast.as_ref().expect("forecast summary");
    assert!(f.applied);
    assert_eq!((f.bucket.as_deref(), f.weeks, f.lead_seconds), (Some("Sun 12:00"), 3, 300));
    assert_eq!(f.extra.cores, 38.0);
}

#[test]
fn forecast_only_reports_without_acting() {
    let i = forecast_input(crate::config::PredictiveScaling::ForecastOnly);
    let p = decide(&i, t0());
    assert_eq!(p.create, 1);
    assert_reason(
        &p,
        "forecast_only: forecast Sun 12:00: 38 cores, 38912 memory_mb from 3 weeks of history -> would create +10 agents ahead of a 300 s boot; not acting",
    );
    let f = p.summary.forecast.as_ref().expect("forecast summary");
    assert!(!f.applied);
    assert_eq!(f.extra.cores, 38.0);
}

#[test]
fn forecast_from_a_thin_history_is_nothing() {
    // History three hours earlier only: the rush's bucket was never observed.
    let mut i = forecast_input(crate::config::PredictiveScaling::On);
    i.control.history = Some(history_of(&i, 3, &[(-180, 38.0)]));
    let p = decide(&i, t0());
    assert_eq!(p.create, 1);
    assert_reason(&p, "nothing forecast: the history at Sun 12:00 is thin (0 weeks; 1 needed)");
    // One week is enough.
    i.control.history = Some(history_of(&i, 1, &[(5, 38.0)]));
    assert_eq!(decide(&i, t0()).create, 11);
}

#[test]
fn forecast_never_exceeds_max_instances() {
    let mut i = forecast_input(crate::config::PredictiveScaling::On);
    i.max_instances = 5;
    let p = decide(&i, t0());
    assert_eq!(p.create, 5);
    assert_reason(&p, "creating 5 of the 11 wanted");
}

#[test]
fn forecast_does_not_prewarm_outside_active_windows() {
    // 11:58; the schedule ends at 11:59 (inclusive), the rush is forecast for 12:00.
    let mut i = forecast_input(crate::config::PredictiveScaling::On);
    i.schedules = vec![Schedule {
        autoscale_config: "cfg".into(),
        days_of_the_week: vec![Weekday::Sunday],
        active_start_time: "08:00".into(),
        active_end_time: "11:59".into(),
        timezone: "UTC".into(),
        minimum_instances: 0,
    }];
    let p = decide(&i, t0() - Duration::minutes(2));
    assert_eq!(p.create, 1, "{:#?}", p.reasons);
    assert!(!has_reason(&p, "ahead of"), "{:#?}", p.reasons);
}

#[test]
fn forecast_pauses_when_today_does_not_follow_the_history() {
    // The quarter hour before also had 38 cores forecast; nobody is in today (a holiday).
    let mut i = forecast_input(crate::config::PredictiveScaling::On);
    i.control.history = Some(history_of(&i, 3, &[(-10, 38.0), (5, 38.0)]));
    let p = decide(&i, t0());
    assert_eq!(p.create, 1);
    assert_reason(&p, "today does not follow the history: 0 in use");
    // The quarter hour is recorded as untracked (a holiday week is left out of the history).
    assert!(p.summary.forecast.as_ref().is_some_and(|f| f.paused));
    let h = forecast::record(&i, &p, t0()).expect("recorded");
    assert!(h.buckets[forecast::slot(t0()).1].peak_untracked);
    // A quarter hour before whose weekly peaks are too erratic to forecast from still tracks.
    let mut h = forecast::DemandHistory::new(forecast::identity(&i.config));
    for (w, v) in [(3, 38.0), (2, 2.0), (1, 38.0)] {
        h.observe(t0() - Duration::days(7 * w) - Duration::minutes(10), [v, v * 1024.0, 0.0]);
        h.observe(t0() - Duration::days(7 * w) + Duration::minutes(5), [38.0, 38.0 * 1024.0, 0.0]);
    }
    assert_eq!(h.forecast(t0() - Duration::minutes(10)), Err(forecast::NoForecast::Erratic));
    i.control.history = Some(h);
    assert_reason(&decide(&i, t0()), "today does not follow the history: 0 in use");
}

#[test]
fn forecast_follows_a_quieter_day_down_never_up() {
    // The history: 20 cores by 11:45 (the level now, at 12:00), 40 by 12:15. Three agents of 4 cores
    // hold `n` sessions of 1 core (1 GB).
    let at = |n: usize| {
        let mut i = forecast_input(crate::config::PredictiveScaling::On);
        let history = history_of(&i, 3, &[(-10, 20.0), (5, 40.0)]);
        let (claims, mut servers): (Vec<_>, Vec<_>) = (0..3).map(|k| running(&format!("c{k}"), 3600)).unzip();
        i = with(i, claims, servers.clone());
        for (k, s) in servers.iter_mut().enumerate() {
            let here = (0..n).filter(|j| j % 3 == k).count() as f64;
            s.allocated = Resources::new(here, here * 1024.0, 0.0);
        }
        i.servers = servers;
        i.sessions = (0..n).map(|j| session(j, &format!("srv-c{}", j % 3))).collect();
        i.control.history = Some(history);
        i
    };
    // 10 in use where the history had 20: today runs at 50 %, so 40 × 0.5 = 20 cores are forecast,
    // 10 above what is in use: standby 4 + 10 = 14 free wanted, 2 free: +3 agents (not +8).
    let p = decide(&at(10), t0());
    assert_eq!(p.create, 3, "{:#?}", p.reasons);
    assert_reason(
        &p,
        "forecast Sun 12:00: 20 cores, 20480 memory_mb (today at 50 % of the history's level: 10 cores in use, 20 expected now)",
    );
    let f = p.summary.forecast.as_ref().expect("forecast summary");
    assert_eq!((f.today_percent, f.extra.cores), (Some(50.0), 10.0));
    // A day at or above the history's level is forecast as the history says (never scaled up).
    let p = decide(&at(12), t0());
    let f = p.summary.forecast.as_ref().expect("forecast summary");
    assert_eq!((f.today_percent, f.demand.cores), (Some(60.0), 24.0), "{:#?}", p.reasons);
    let mut busy = at(12);
    busy.control.history = Some(history_of(&busy, 3, &[(-10, 10.0), (5, 40.0)]));
    let p = decide(&busy, t0());
    let f = p.summary.forecast.as_ref().expect("forecast summary");
    assert_eq!((f.today_percent, f.demand.cores), (None, 40.0), "{:#?}", p.reasons);
    // A history whose level now was attributed back from a shortage (an estimate) is not scaled.
    let mut est = at(10);
    let mut h = forecast::DemandHistory::new(forecast::identity(&est.config));
    for w in 1..=3 {
        let week = t0() - Duration::days(7 * w);
        h.observe_capped(week - Duration::minutes(20), [5.0, 5120.0, 0.0], true, false);
        h.observe_capped(week + Duration::minutes(5), [40.0, 40960.0, 0.0], false, false);
    }
    est.control.history = Some(h);
    let p = decide(&est, t0());
    let f = p.summary.forecast.as_ref().expect("forecast summary");
    assert_eq!((f.today_percent, f.demand.cores), (None, 40.0), "{:#?}", p.reasons);
}

#[test]
fn forecast_driven_vms_drain_only_after_the_window() {
    let mut i = forecast_input(crate::config::PredictiveScaling::On);
    let (claims, servers): (Vec<_>, Vec<_>) = (0..11).map(|k| running(&format!("c{k:02}"), 3600)).unzip();
    let history = i.control.history.take();
    i = with(i, claims, servers);
    i.control.history = history;
    i.control.request_downscale_at = Some(t0() - Duration::hours(2));
    // In the window: 44 free, 42 wanted; none can go.
    let p = decide(&i, t0());
    assert!(drains(&p).is_empty(), "{:#?}", p.reasons);
    assert_reason(&p, "without dropping below standby + forecast");
    // An hour later nothing is forecast: the clock starts, and only a backoff later do VMs drain.
    let later = t0() + Duration::hours(1);
    let mut j = i.clone();
    j.control.request_downscale_at = None;
    for r in &mut j.servers {
        r.last_reported = Some(later - Duration::seconds(10));
    }
    let p = decide(&j, later);
    assert!(drains(&p).is_empty());
    assert_eq!(p.request_downscale_at, Some(later));
}

#[test]
fn forecast_with_an_empty_history_changes_nothing() {
    let mut off = input(4.0);
    off.max_instances = 20;
    for mode in [crate::config::PredictiveScaling::On, crate::config::PredictiveScaling::ForecastOnly] {
        let mut on = off.clone();
        on.config.predictive_scaling = mode;
        let (a, b) = (decide(&off, t0()), decide(&on, t0()));
        assert_eq!((a.create, &a.actions, a.request_downscale_at), (b.create, &b.actions, b.request_downscale_at));
        assert_reason(&b, "no history yet");
    }
}

#[test]
fn forecast_record_observes_demand_and_boot_times() {
    let mut i = forecast_input(crate::config::PredictiveScaling::On);
    // A booting claim created 250 s ago whose agent checked in: activated, one boot measured.
    let mut c = claim("b1", InstanceState::Booting, 250);
    c.kasm_server_id = "srv-b1".into();
    let rec = agent("srv-b1", 4.0, 8192.0, false, Some(5));
    i = with(i, vec![c], vec![rec]);
    i.control.history = Some(history_of(&i, 3, &[(5, 38.0)]));
    i.sessions = vec![session(1, "srv-b1")];
    let p = decide(&i, t0());
    let h = forecast::record(&i, &p, t0()).expect("recorded");
    assert_eq!(h.boot_seconds, vec![250]);
    let (_, b) = forecast::slot(t0());
    assert_eq!(h.buckets[b].peak[0], 1.0);
    // Off keeps nothing; another identity starts empty.
    let mut off = i.clone();
    off.config.predictive_scaling = crate::config::PredictiveScaling::Off;
    assert_eq!(forecast::record(&off, &p, t0()), None);
    let mut moved = i.clone();
    moved.config.zone_id = "elsewhere".into();
    let h = forecast::record(&moved, &p, t0()).expect("recorded");
    assert_eq!(h.buckets.iter().filter(|b| b.weeks > 0).count(), 0);
}
