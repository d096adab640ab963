//! Property tests over random inputs: the cap, sessions, the backoff clock, determinism, and that
//! steady demand reaches a fixed point when plans are applied (a tiny simulator: `apply`).

use chrono::{DateTime, Duration, Utc};
use proptest::collection::vec as pvec;
use proptest::prelude::*;

use super::tests::{agent, claim, server, session, t0};
use super::*;
use crate::config::{AutoscaleConfig, AutoscaleType, Schedule, Weekday};
use crate::kasm::{KasmServer, ServerKind};
use crate::model::{ClaimId, InstanceState, Resources};

#[derive(Debug, Clone)]
struct RecSpec {
    enabled: bool,
    checkin_age: Option<i64>,
    cores: u8,
    mem_gb: u8,
    gpus: u8,
    alloc_pct: u8,
    max_sessions: Option<u32>,
    sessions: u8,
}

#[derive(Debug, Clone)]
struct ClaimSpec {
    state: InstanceState,
    age: i64,
    rec: Option<RecSpec>,
    /// The record has another id and is found by our record name (`friendly_name` = the VM name).
    by_host: bool,
}

/// Which schedules the config has. The fixed-point property uses only windows that do not open or
/// close while the simulation runs (crossing a window is a change of demand, not steady demand).
#[derive(Debug, Clone)]
enum Sched {
    Arbitrary(Vec<Schedule>),
    None,
    Always(u32),
    Never,
}

/// A staging config: image (cores, memory GB, GPUs), desired and staged sessions.
type StageSpec = (u8, u8, u8, u8, u8);

#[derive(Debug, Clone)]
struct Spec {
    server_pool: bool,
    enabled: bool,
    aggressive: bool,
    /// `max_new_vms_per_evaluation` 1 (else no limit).
    one_step: bool,
    staging: Vec<StageSpec>,
    /// Queued requests on none of the config's records: (cores, memory GB).
    queued: Vec<(u8, u8)>,
    backoff: u64,
    standby: (u8, u8, u8),
    overrides: (u8, u8, u8),
    pool: (u32, u32, bool),
    new_vm_size: Option<(u8, u8, u8)>,
    max_instances: u32,
    extra_owned: u32,
    rda_age: Option<i64>,
    backoff_until: Option<i64>,
    claims: Vec<ClaimSpec>,
    statics: Vec<RecSpec>,
    sched: Sched,
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    (
        prop::bool::weighted(0.85),
        prop::option::weighted(0.9, prop_oneof![4 => 0i64..600, 1 => 600i64..5000]),
        1u8..=8,
        1u8..=16,
        prop_oneof![4 => Just(0u8), 1 => 1u8..=2],
        prop_oneof![2 => Just(0u8), 1 => 0u8..=120],
        prop::option::of(0u32..=4),
        prop_oneof![3 => Just(0u8), 1 => 1u8..=3],
    )
        .prop_map(|(enabled, checkin_age, cores, mem_gb, gpus, alloc_pct, max_sessions, sessions)| RecSpec {
            enabled,
            checkin_age,
            cores,
            mem_gb,
            gpus,
            alloc_pct,
            max_sessions,
            sessions,
        })
}

fn state() -> impl Strategy<Value = InstanceState> {
    use InstanceState::*;
    prop::sample::select(vec![
        Requested, Creating, Booting, Booting, Running, Running, Running, Draining, Deleting, Failed,
    ])
}

fn claim_spec() -> impl Strategy<Value = ClaimSpec> {
    (state(), 0i64..8000, prop::option::weighted(0.8, rec_spec()), prop::bool::weighted(0.2))
        .prop_map(|(state, age, rec, by_host)| ClaimSpec { state, age, rec, by_host })
}

fn arbitrary_schedule() -> impl Strategy<Value = Schedule> {
    (
        prop::sample::subsequence(Weekday::ALL.to_vec(), 0..=7),
        0u32..24,
        prop::sample::select(vec![0u32, 30]),
        0u32..=24,
        prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
        0u32..=4,
    )
        .prop_map(|(days, sh, sm, eh, tz, min)| Schedule {
            autoscale_config: "cfg".into(),
            days_of_the_week: days,
            active_start_time: format!("{sh:02}:{sm:02}"),
            active_end_time: format!("{eh:02}:00"),
            timezone: tz.into(),
            minimum_instances: min,
        })
}

fn sched(steady: bool) -> BoxedStrategy<Sched> {
    let stable = prop_oneof![Just(Sched::None), (0u32..=4).prop_map(Sched::Always), Just(Sched::Never)];
    if steady {
        stable.boxed()
    } else {
        prop_oneof![stable, pvec(arbitrary_schedule(), 1..=2).prop_map(Sched::Arbitrary)].boxed()
    }
}

fn spec(steady: bool) -> impl Strategy<Value = Spec> {
    (
        (prop::bool::weighted(0.25), prop::bool::weighted(0.9), any::<bool>(), 0u64..=1400),
        (0u8..=16, 0u8..=32, prop_oneof![4 => Just(0u8), 1 => 1u8..=2]),
        (
            prop_oneof![3 => Just(0u8), 1 => 1u8..=8],
            prop_oneof![3 => Just(0u8), 1 => 2u8..=16],
            prop_oneof![4 => Just(0u8), 1 => Just(1u8)],
        ),
        (0u32..=8, 0u32..=3, any::<bool>()),
        prop::option::weighted(0.8, (1u8..=8, 1u8..=16, prop_oneof![3 => Just(0u8), 1 => Just(1u8)])),
        (0u32..=12, 0u32..=3),
        (prop::option::of(0i64..4000), prop::option::weighted(0.2, -600i64..600)),
        pvec(claim_spec(), 0..=8),
        pvec(rec_spec(), 0..=3),
        sched(steady),
        (
            any::<bool>(),
            pvec((0u8..=6, 0u8..=12, prop_oneof![4 => Just(0u8), 1 => Just(1u8)], 0u8..=4, 0u8..=4), 0..=2),
            pvec((1u8..=4, 1u8..=8), 0..=3),
        ),
    )
        .prop_map(
            |(
                (server_pool, enabled, aggressive, backoff),
                standby,
                overrides,
                pool,
                new_vm_size,
                (max_instances, extra_owned),
                (rda_age, backoff_until),
                claims,
                statics,
                sched,
                (one_step, staging, queued),
            )| Spec {
                server_pool,
                enabled,
                aggressive,
                one_step,
                staging,
                queued,
                backoff,
                standby,
                overrides,
                pool,
                new_vm_size,
                max_instances,
                extra_owned,
                rda_age,
                backoff_until,
                claims,
                statics,
                sched,
            },
        )
}

fn record(server_pool: bool, id: &str, r: &RecSpec, now: DateTime<Utc>) -> KasmServer {
    let checkin_age = r.checkin_age.map(|a| a - (t0() - now).num_seconds());
    let mut k = if server_pool {
        server(id, r.enabled, checkin_age)
    } else {
        agent(id, r.cores as f64, r.mem_gb as f64 * 1024.0, r.enabled, checkin_age)
    };
    k.last_reported = r.checkin_age.map(|a| now - Duration::seconds(a));
    if !server_pool {
        k.reported.gpus = r.gpus as f64;
        let f = r.alloc_pct as f64 / 100.0;
        k.allocated = Resources::new(k.reported.cores * f, k.reported.memory_mb * f, 0.0);
    }
    k.max_sessions = r.max_sessions;
    k
}

fn build(s: &Spec) -> Input {
    let now = t0();
    let mut config = AutoscaleConfig::docker_agent("cfg", "prov");
    if s.server_pool {
        config.autoscale_type = AutoscaleType::Server;
    }
    config.enabled = s.enabled;
    config.aggressive_scaling = s.aggressive;
    config.max_new_vms_per_evaluation = if s.one_step { std::num::NonZeroU32::new(1) } else { None };
    config.autoscale_config_id = Some("kasm-cfg".into());
    config.downscale_backoff = s.backoff;
    config.standby_cores = s.standby.0 as f64;
    config.standby_memory_mb = s.standby.1 as f64 * 1024.0;
    config.standby_gpus = s.standby.2 as f64;
    config.agent_cores_override = s.overrides.0 as f64;
    config.agent_memory_override_gb = s.overrides.1 as f64;
    config.agent_gpus_override = s.overrides.2 as f64;
    config.minimum_pool_standby_sessions = s.pool.0;
    config.max_simultaneous_sessions_per_server = s.pool.1;
    // Reusable servers here: single-use servers (Kasm's default) drain on their first session by design,
    // which these properties' "never drain a VM with sessions while active" would forbid; their own
    // rules are tested in engine::tests.
    config.reusable = true;
    config.require_checkin = s.pool.2;
    let schedules = match &s.sched {
        Sched::Arbitrary(v) => v.clone(),
        Sched::None => vec![],
        Sched::Always(min) => vec![always_active(*min)],
        Sched::Never => vec![Schedule { days_of_the_week: vec![], ..always_active(9) }],
    };
    let mut instances = Vec::new();
    let mut servers = Vec::new();
    let mut sessions = Vec::new();
    let mut n_sess = 0;
    for (k, c) in s.claims.iter().enumerate() {
        let inst = claim(&format!("c{k:02}"), c.state, c.age);
        if let Some(r) = &c.rec {
            let id = if c.by_host { format!("kasm-{k}") } else { inst.kasm_server_id.clone() };
            let mut rec = record(s.server_pool, &id, r, now);
            if c.by_host {
                rec.friendly_name = Some(inst.vm_name.clone());
            }
            for _ in 0..r.sessions {
                n_sess += 1;
                sessions.push(session(n_sess, &id));
            }
            servers.push(rec);
        }
        instances.push(inst);
    }
    for (k, r) in s.statics.iter().enumerate() {
        let id = format!("static-{k}");
        for _ in 0..r.sessions {
            n_sess += 1;
            sessions.push(session(n_sess, &id));
        }
        servers.push(record(s.server_pool, &id, r, now));
    }
    Input {
        config,
        schedules,
        max_instances: s.max_instances,
        owned_total: instances.len() as u32 + s.extra_owned,
        new_vm_size: s.new_vm_size.map(|(c, m, g)| Resources::new(c as f64, m as f64 * 1024.0, g as f64)),
        control: ControlState {
            request_downscale_at: s.rda_age.map(|a| now - Duration::seconds(a)),
            backoff_until: s.backoff_until.map(|a| now + Duration::seconds(a)),
            ..ControlState::default()
        },
        timers: Timers::default(),
        instances,
        servers,
        sessions,
        staging: s.staging.iter().enumerate().map(|(k, st)| stage(k, *st)).collect(),
        queued: s.queued.iter().enumerate().map(|(k, &(c, m))| queued_request(k, c, m)).collect(),
    }
}

/// A staging config of the generated inputs.
fn stage(k: usize, (cores, mem_gb, gpus, num, current): StageSpec) -> StagingDemand {
    StagingDemand {
        staging_config_id: format!("stage-{k}"),
        image: format!("image-{k}"),
        image_size: Resources::new(cores as f64, mem_gb as f64 * 1024.0, gpus as f64),
        num_sessions: num as u32,
        current_sessions: current as u32,
    }
}

/// A session request Kasm queued for the config and placed nowhere.
fn queued_request(k: usize, cores: u8, mem_gb: u8) -> crate::kasm::KasmSession {
    crate::kasm::KasmSession {
        kasm_id: format!("q{k:02}"),
        resources: Resources::new(cores as f64, mem_gb as f64 * 1024.0, 0.0),
        status: "requested".into(),
        autoscale_config_id: Some("kasm-cfg".into()),
        ..Default::default()
    }
}

/// A schedule active every minute of every day, with floor `min`.
fn always_active(min: u32) -> Schedule {
    Schedule {
        autoscale_config: "cfg".into(),
        days_of_the_week: Weekday::ALL.to_vec(),
        active_start_time: "00:00".into(),
        active_end_time: "24:00".into(),
        timezone: "UTC".into(),
        minimum_instances: min,
    }
}

/// Records that belong to claim `c` in the generated inputs (by id or by our record name).
fn records_of<'a>(input: &'a Input, c: &'a Instance) -> impl Iterator<Item = &'a KasmServer> {
    input
        .servers
        .iter()
        .filter(move |r| r.server_id == c.kasm_server_id || r.friendly_name.as_deref() == Some(&c.vm_name))
}

fn sessions_of(input: &Input, c: &Instance) -> usize {
    let ids: Vec<&str> =
        records_of(input, c).map(|r| r.server_id.as_str()).chain([c.kasm_server_id.as_str()]).collect();
    input.sessions.iter().filter(|s| ids.contains(&s.server_id.as_str())).count()
}

fn find<'a>(input: &'a Input, id: &ClaimId) -> &'a Instance {
    input.instances.iter().find(|c| &c.id == id).expect("actions name claims of the input")
}

/// The invariants every single plan must keep (properties 1, 2 and 4).
fn check_plan(input: &Input, p: &Plan, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    // (1) The cap.
    if input.owned_total >= input.max_instances {
        prop_assert_eq!(p.create, 0, "over the cap already");
    } else {
        prop_assert!(input.owned_total + p.create <= input.max_instances);
    }
    let mut seen = std::collections::HashSet::new();
    for a in &p.actions {
        match a {
            // Rotation drains may disable a VM with sessions and need no backoff: `check_rotation`.
            Action::Drain { replaced_by: Some(_), .. } => prop_assert!(input.config.rotation().is_some()),
            Action::Drain { claim, .. } => {
                let c = find(input, claim);
                prop_assert!(input.config.enabled);
                if p.summary.active {
                    // (2) Scale-down never drains a VM with sessions.
                    prop_assert_eq!(sessions_of(input, c), 0, "drained {} with sessions", claim);
                    prop_assert_eq!(c.state, InstanceState::Running);
                    // (4) Backoff.
                    let since = input.control.request_downscale_at;
                    prop_assert!(since.is_some(), "drain without a running clock");
                    prop_assert!((now - since.unwrap()).num_seconds() >= input.config.downscale_backoff as i64);
                } else {
                    // An inactive schedule drains every VM of ours, busy or idle, and a booted one
                    // instead of activating it (`check_inactive`).
                    prop_assert!(matches!(c.state, InstanceState::Running | InstanceState::Booting), "{}", c.state);
                }
            }
            Action::Destroy { claim, .. } => {
                prop_assert_eq!(sessions_of(input, find(input, claim)), 0, "destroyed {} with sessions", claim);
            }
            Action::Undrain { claim, .. } => {
                prop_assert_eq!(find(input, claim).state, InstanceState::Draining);
                prop_assert!(input.config.enabled && p.summary.active);
            }
            Action::Activate { claim, .. } => prop_assert_eq!(find(input, claim).state, InstanceState::Booting),
        }
        let id = match a {
            Action::Activate { claim, .. }
            | Action::Drain { claim, .. }
            | Action::Undrain { claim, .. }
            | Action::Destroy { claim, .. } => claim,
        };
        prop_assert!(seen.insert(id.clone()), "two actions for {}", id);
    }
    if !input.config.enabled || !p.summary.active {
        prop_assert_eq!(p.create, 0);
    }
    // (8) A scale-up (a create or an undrain) restarts the downscale clock.
    if p.create > 0 || p.actions.iter().any(|a| matches!(a, Action::Undrain { .. })) {
        prop_assert_eq!(p.request_downscale_at, None, "scaled up with the clock running: {:#?}", p.reasons);
    }
    if p.create > 0 {
        prop_assert!(input.control.backoff_until.is_none_or(|u| u <= now));
    }
    prop_assert!(!p.reasons.is_empty());
    Ok(())
}

/// Applies a plan the way the app, provisioner and reaper would, instantly: created claims become
/// running agents (or servers) of the per-VM size, activated and undrained claims run, drained and
/// destroyed VMs (and idle draining or deleting ones, the reaper's work) are gone, and the clock is
/// stored. Sessions do not change: steady demand.
fn apply(input: &mut Input, p: &Plan, now: DateTime<Utc>, round: usize) {
    let server_pool = input.config.autoscale_type == AutoscaleType::Server;
    let mut gone: Vec<ClaimId> = Vec::new();
    for a in &p.actions {
        match a {
            Action::Activate { claim, server_id, enable } => {
                let c = input.instances.iter_mut().find(|c| &c.id == claim).unwrap();
                c.state = InstanceState::Running;
                c.state_since = now;
                if *enable {
                    input.servers.iter_mut().find(|r| &r.server_id == server_id).unwrap().enabled = true;
                }
            }
            Action::Undrain { claim, server_id } => {
                let c = input.instances.iter_mut().find(|c| &c.id == claim).unwrap();
                c.state = InstanceState::Running;
                c.state_since = now;
                input.servers.iter_mut().find(|r| &r.server_id == server_id).unwrap().enabled = true;
            }
            Action::Drain { claim, server_id, .. } => {
                let c = input.instances.iter_mut().find(|c| &c.id == claim).unwrap();
                c.state = InstanceState::Draining;
                c.state_since = now;
                input.servers.iter_mut().find(|r| &r.server_id == server_id).unwrap().enabled = false;
            }
            Action::Destroy { claim, .. } => gone.push(claim.clone()),
        }
    }
    // The reaper: idle draining VMs and deleting ones finish.
    let reaped: Vec<ClaimId> = input
        .instances
        .iter()
        .filter(|c| matches!(c.state, InstanceState::Draining | InstanceState::Deleting) && sessions_of(input, c) == 0)
        .map(|c| c.id.clone())
        .collect();
    gone.extend(reaped);
    for id in &gone {
        let c = find(input, id).clone();
        input.servers.retain(|r| r.server_id != c.kasm_server_id && r.friendly_name.as_deref() != Some(&c.vm_name));
        input.instances.retain(|i| &i.id != id);
        input.owned_total -= 1;
    }
    // Creates: VMs of the size the engine assumed (a default when it could not know). They boot and
    // register at once (agents disabled, as Kasm registers them); the next plan activates them.
    let size = input.new_vm_size.unwrap_or(Resources::new(2.0, 4096.0, 0.0));
    let standby_n = p.create - p.replacements.len() as u32;
    for k in 0..p.create {
        let mut c = claim(&format!("n{round:03}{k:02}"), InstanceState::Booting, 0);
        c.created_at = now;
        c.state_since = now;
        c.replaces = k.checked_sub(standby_n).map(|r| p.replacements[r as usize].clone());
        let mut r = if server_pool {
            server(&c.kasm_server_id, true, None)
        } else {
            agent(&c.kasm_server_id, size.cores, size.memory_mb, false, None)
        };
        r.reported.gpus = if server_pool { 0.0 } else { size.gpus };
        r.last_reported = Some(now);
        input.servers.push(r);
        input.instances.push(c);
        input.owned_total += 1;
    }
    input.control.request_downscale_at = p.request_downscale_at;
}

/// Time passes: live agents keep checking in; missing ones stay silent.
fn advance(input: &mut Input, from: DateTime<Utc>, to: DateTime<Utc>) {
    let missing = input.timers.agent_missing_after as i64;
    for r in &mut input.servers {
        if r.last_reported.is_some_and(|t| (from - t).num_seconds() <= missing) {
            r.last_reported = Some(to);
        }
    }
}

fn quiet(p: &Plan) -> bool {
    p.create == 0 && !p.actions.iter().any(|a| matches!(a, Action::Drain { .. } | Action::Undrain { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Properties 1, 2 and 4 on arbitrary inputs, and determinism under reordering.
    #[test]
    fn every_plan_keeps_the_invariants(s in spec(false), later in 0i64..100_000) {
        let input = build(&s);
        for now in [t0(), t0() + Duration::seconds(later)] {
            let p = decide(&input, now);
            check_plan(&input, &p, now)?;
            let mut shuffled = input.clone();
            shuffled.instances.reverse();
            shuffled.servers.reverse();
            shuffled.sessions.reverse();
            prop_assert_eq!(&decide(&shuffled, now), &p, "plan depends on input order");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 3: with steady demand, applying plans reaches a state where deciding again — at the
    /// same time or later — creates, drains and undrains nothing. Every intermediate plan keeps the
    /// invariants too.
    #[test]
    fn steady_demand_reaches_a_fixed_point(s in spec(true)) {
        let mut input = build(&s);
        let step = Duration::seconds(700);
        let mut now = t0();
        // Enough rounds for: one create per round up to the cap, the provision (600 s) and dead-agent
        // (3600 s) timers, and a backoff (≤ 1400 s) after the last change.
        let rounds = 40;
        for round in 0..rounds {
            let p = decide(&input, now);
            check_plan(&input, &p, now)?;
            apply(&mut input, &p, now, round);
            let next = now + step;
            advance(&mut input, now, next);
            now = next;
        }
        let p = decide(&input, now);
        prop_assert!(quiet(&p), "still changing after {} rounds: create {} actions {:?}\n{:#?}", rounds, p.create, p.actions, p.reasons);
        prop_assert_eq!(p.request_downscale_at, None, "a scale-down is still pending: {:#?}", p.reasons);
        // Same time again after applying (only lifecycle actions may remain), and later.
        apply(&mut input, &p, now, rounds);
        let again = decide(&input, now);
        prop_assert!(quiet(&again), "{:?} {:#?}", again.actions, again.reasons);
        let later = now + Duration::seconds(input.config.downscale_backoff as i64 + 1);
        advance(&mut input, now, later);
        let p = decide(&input, later);
        prop_assert!(quiet(&p), "{:?} {:#?}", p.actions, p.reasons);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// KASM.md's create loop (provider list lag): evaluating again before the provisioner has done
    /// anything must not create more than the shortfall asks for. Without a step limit the second
    /// evaluation creates nothing; either way the repeated evaluations stop creating.
    #[test]
    fn claims_not_yet_provisioned_stop_further_creates(s in spec(false)) {
        let mut input = build(&s);
        let now = t0();
        for round in 0..30 {
            let p = decide(&input, now);
            if p.create == 0 {
                return Ok(());
            }
            prop_assert!(
                round == 0 || input.config.max_new_vms_per_evaluation.is_some(),
                "created again without a step limit: {:#?}",
                p.reasons
            );
            for k in 0..p.create {
                input.instances.push(claim(&format!("n{round:03}{k:02}"), InstanceState::Requested, 0));
                input.owned_total += 1;
            }
        }
        prop_assert!(false, "still creating after 30 evaluations");
    }
}

/// An inactive schedule's promises on one plan (enabled config): nothing is created, activated or
/// undrained (no new sessions may land on our VMs), every running VM of ours with a record is
/// drained, busy or idle, and no VM with sessions is destroyed (`check_plan`).
fn check_inactive(input: &Input, p: &Plan) -> Result<(), TestCaseError> {
    prop_assert!(!p.summary.active);
    prop_assert_eq!(p.create, 0);
    prop_assert_eq!(p.request_downscale_at, None);
    for a in &p.actions {
        prop_assert!(!matches!(a, Action::Activate { .. } | Action::Undrain { .. }), "{:?}", a);
        prop_assert!(!matches!(a, Action::Drain { replaced_by: Some(_), .. }), "rotation drain while inactive");
    }
    let acted = |id: &ClaimId| {
        p.actions.iter().any(|a| match a {
            Action::Drain { claim, .. } | Action::Destroy { claim, .. } => claim == id,
            _ => false,
        })
    };
    for c in input.instances.iter().filter(|c| c.state == InstanceState::Running) {
        if records_of(input, c).next().is_some() {
            prop_assert!(acted(&c.id), "running {} neither drained nor destroyed: {:#?}", c.id, p.reasons);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With the schedule inactive: no plan creates, activates or undrains a VM, every running VM of
    /// ours gets drained, and no VM with sessions is destroyed — at once and over time, as plans are
    /// applied (what is left is draining VMs that still have sessions, or VMs without a record).
    #[test]
    fn inactive_schedules_drain_everything_and_assign_nothing(mut s in spec(false), never in any::<bool>()) {
        s.enabled = true;
        if never {
            s.sched = Sched::Never;
        }
        let mut input = build(&s);
        let mut now = t0();
        if !decide(&input, now).summary.active {
            for round in 0..8 {
                let p = decide(&input, now);
                check_plan(&input, &p, now)?;
                check_inactive(&input, &p)?;
                apply(&mut input, &p, now, round);
                let next = now + Duration::seconds(60);
                advance(&mut input, now, next);
                now = next;
                if !decide(&input, now).summary.active {
                    continue;
                }
                break;
            }
            if !decide(&input, now).summary.active {
                for c in &input.instances {
                    prop_assert!(
                        !(c.state == InstanceState::Running && records_of(&input, c).next().is_some()),
                        "{} still running", c.id
                    );
                    if c.state == InstanceState::Draining {
                        prop_assert!(sessions_of(&input, c) > 0, "{} drains without sessions", c.id);
                    }
                }
            }
        }
    }
}

/// The simulator's own sanity: it does change things (so the fixed point above is not vacuous).
#[test]
fn apply_creates_activates_then_drains() {
    let mut input = super::tests::input(8.0);
    input.config.downscale_backoff = 0;
    let p = decide(&input, t0());
    assert_eq!(p.create, 2);
    apply(&mut input, &p, t0(), 0);
    assert_eq!(input.instances.len(), 2);
    assert!(input.servers.iter().all(|r| r.kind == ServerKind::Agent && !r.enabled));
    let p = decide(&input, t0());
    assert!(quiet(&p));
    assert_eq!(p.actions.len(), 2, "both activated");
    apply(&mut input, &p, t0(), 1);
    assert!(input.servers.iter().all(|r| r.enabled));
    assert!(input.instances.iter().all(|c| c.state == InstanceState::Running));
    // Demand drops: standby 4 → the clock starts, then (backoff 0) one VM goes.
    input.config.standby_cores = 4.0;
    let p = decide(&input, t0());
    assert!(p.actions.is_empty() && p.request_downscale_at == Some(t0()), "{:#?}", p.reasons);
    apply(&mut input, &p, t0(), 2);
    let p = decide(&input, t0());
    assert_eq!(p.actions.len(), 1, "{:#?}", p.reasons);
    apply(&mut input, &p, t0(), 3);
    assert_eq!(input.instances.len(), 1, "the reaper removed the idle drained VM");
    assert!(quiet(&decide(&input, t0())));
}

// ---------- rotation ----------

/// Free capacity of the records that count, computed apart from the engine: enabled, healthy
/// records of the operator's and of claims that are up (requested … running). Server pools: free
/// session slots, in `cores`. It may count a record the engine does not (one still pending), never
/// the other way round, and such a record is never drained, so a drop of the engine's capacity below
/// standby shows here too.
fn free_capacity(input: &Input, now: DateTime<Utc>) -> Resources {
    let server_pool = input.config.autoscale_type == AutoscaleType::Server;
    let missing = input.timers.agent_missing_after as i64;
    let mut free = Resources::default();
    for r in &input.servers {
        let healthy = r.enabled
            && match r.last_reported {
                None => server_pool,
                Some(t) => (now - t).num_seconds() <= missing,
            };
        if !healthy {
            continue;
        }
        let owner = input
            .instances
            .iter()
            .find(|c| r.server_id == c.kasm_server_id || r.friendly_name.as_deref() == Some(&c.vm_name));
        if owner.is_some_and(|c| !(c.state.is_pending() || c.state == InstanceState::Running)) {
            continue;
        }
        if server_pool {
            let on = match owner {
                Some(c) => sessions_of(input, c),
                None => input.sessions.iter().filter(|s| s.server_id == r.server_id).count(),
            } as u32;
            let max = r.max_sessions.unwrap_or(input.config.max_simultaneous_sessions_per_server);
            free.cores += max.saturating_sub(on) as f64;
        } else {
            let ovr = if owner.is_some() { input.config.overrides() } else { Resources::default() };
            for (d, reported) in r.reported.dims() {
                let cap = if ovr.get(d) > 0.0 {
                    ovr.get(d)
                } else if r.overridden.get(d) > 0.0 {
                    r.overridden.get(d)
                } else {
                    reported
                };
                free.set(d, free.get(d) + (cap - r.allocated.get(d)).max(0.0));
            }
        }
    }
    free
}

/// What Kasm's records and the claims look like once a plan's drains and undrains are done (creates
/// add nothing yet: they boot later).
fn drained(input: &Input, p: &Plan) -> Input {
    let mut after = input.clone();
    for a in &p.actions {
        let (claim, server_id, state, enabled) = match a {
            Action::Drain { claim, server_id, .. } => (claim, server_id, InstanceState::Draining, false),
            Action::Undrain { claim, server_id } => (claim, server_id, InstanceState::Running, true),
            _ => continue,
        };
        after.instances.iter_mut().find(|c| &c.id == claim).unwrap().state = state;
        after.servers.iter_mut().find(|r| &r.server_id == server_id).unwrap().enabled = enabled;
    }
    after
}

/// Rotation's promises on one plan: (5) replacements only for running VMs of ours past the
/// pre-warm age that have no live replacement, within the cap; (6) a rotation drain only for a VM past
/// its rotation age whose replacement serves; (7) drains never take free capacity below standby
/// while the config is active (whether rotation or scale-down drains them).
fn check_rotation(input: &Input, p: &Plan, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let (rotate, due_at) = input.config.rotation().expect("rotation on");
    let age = |c: &Instance| (now - c.vm_since()).num_seconds();
    let destroyed: Vec<&ClaimId> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Destroy { claim, .. } => Some(claim),
            _ => None,
        })
        .collect();
    let live_replacement = |old: &ClaimId| {
        input.instances.iter().any(|c| {
            c.replaces.as_ref() == Some(old)
                && (c.state.is_pending() || c.state == InstanceState::Running)
                && !destroyed.contains(&&c.id)
        })
    };
    // (5)
    prop_assert!(p.replacements.len() as u32 <= p.create);
    let mut seen = std::collections::HashSet::new();
    for old in &p.replacements {
        prop_assert!(seen.insert(old), "two replacements for {}", old);
        let c = find(input, old);
        prop_assert_eq!(c.state, InstanceState::Running, "replacement for {} in state {}", old, c.state);
        prop_assert!(age(c) >= due_at, "replacement for {} before its pre-warm age", old);
        prop_assert!(!live_replacement(old), "second replacement for {}: {:#?}", old, p.reasons);
        prop_assert!(input.config.enabled && p.summary.active);
    }
    // (6)
    for a in &p.actions {
        let Action::Drain { claim, replaced_by: Some(new), .. } = a else { continue };
        let old = find(input, claim);
        prop_assert!(input.config.enabled && p.summary.active);
        prop_assert_eq!(old.state, InstanceState::Running);
        prop_assert!(age(old) >= rotate, "{} drained for rotation at age {} < {}", claim, age(old), rotate);
        let n = find(input, new);
        prop_assert_eq!(n.replaces.as_ref(), Some(claim), "{} does not replace {}", new, claim);
        // It serves through its record (a claim whose record registered counts, whatever its state).
        prop_assert!(n.state.is_pending() || n.state == InstanceState::Running, "replacement {} is {}", new, n.state);
        let serving = input.servers.iter().any(|r| {
            (r.server_id == n.kasm_server_id || r.friendly_name.as_deref() == Some(&n.vm_name))
                && r.enabled
                && r.last_reported.is_none_or(|t| (now - t).num_seconds() <= input.timers.agent_missing_after as i64)
        });
        prop_assert!(serving, "replacement {} has no serving record", new);
    }
    // (7)
    if input.config.enabled && p.summary.active {
        let (before, after) = (free_capacity(input, now), free_capacity(&drained(input, p), now));
        let standby = if input.config.autoscale_type == AutoscaleType::Server {
            Resources::new(input.config.minimum_pool_standby_sessions as f64, 0.0, 0.0)
        } else {
            input.config.standby()
        };
        for (d, s) in standby.dims() {
            if before.get(d) >= s - 1e-9 {
                prop_assert!(
                    after.get(d) >= s - 1e-9,
                    "drains took free {} from {} to {} < standby {}: {:?}\n{:#?}",
                    d,
                    before.get(d),
                    after.get(d),
                    s,
                    p.actions,
                    p.reasons
                );
            }
        }
    }
    Ok(())
}

/// Turns rotation on over generated claims: VMs booted up to three days ago, some claims naming
/// another as the VM they replace.
fn with_rotation(input: &mut Input, days: u32, pre_warm: u32, ages_min: &[u32], links: &[Option<usize>]) {
    input.config.rotate_servers_in_days = Some(days);
    input.config.rotate_servers_pre_warm_minutes = Some(pre_warm);
    let ids: Vec<ClaimId> = input.instances.iter().map(|c| c.id.clone()).collect();
    for (k, c) in input.instances.iter_mut().enumerate() {
        let booted = t0() - Duration::minutes(ages_min[k % ages_min.len()] as i64);
        c.transitions.insert("booting".into(), booted);
        c.created_at = c.created_at.min(booted);
        c.replaces = links[k % links.len()].map(|j| ids[j % ids.len()].clone()).filter(|id| id != &c.id);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Properties 1–7 on arbitrary inputs with rotation on, at the generated instant and later.
    #[test]
    fn rotation_plans_keep_the_invariants(
        s in spec(false),
        days in 1u32..=2,
        pre_warm in prop_oneof![Just(0u32), 0u32..=240],
        ages in pvec(0u32..=4320, 1..=8),
        links in pvec(prop::option::weighted(0.3, 0usize..8), 1..=8),
        later in prop_oneof![Just(0i64), 0i64..7200],
    ) {
        let mut input = build(&s);
        with_rotation(&mut input, days, pre_warm, &ages, &links);
        let now = t0() + Duration::seconds(later);
        let p = decide(&input, now);
        check_plan(&input, &p, now)?;
        check_rotation(&input, &p, now)?;
        let mut shuffled = input.clone();
        shuffled.instances.reverse();
        shuffled.servers.reverse();
        shuffled.sessions.reverse();
        prop_assert_eq!(&decide(&shuffled, now), &p, "plan depends on input order");
    }
}

/// A pool of running VMs of one size (4 cores / 8 GB agents, or servers) booted up to three days
/// ago, with steady sessions, for rotation over time.
#[derive(Debug, Clone)]
struct RotSpec {
    server_pool: bool,
    /// `max_new_vms_per_evaluation` 1 (else no limit).
    one_step: bool,
    per_server: u32,
    standby: (u8, u8),
    minimum: u32,
    floor: Option<u32>,
    days: u32,
    pre_warm: u32,
    /// (minutes since boot, sessions) per VM.
    vms: Vec<(u32, u8)>,
    step_min: i64,
    tight_cap: Option<u32>,
}

fn rot_spec() -> impl Strategy<Value = RotSpec> {
    (
        (any::<bool>(), any::<bool>(), 1u32..=3),
        ((0u8..=12, 0u8..=24), 0u32..=6, prop::option::of(0u32..=3)),
        (1u32..=2, 0u32..=180),
        pvec((0u32..=4320, 0u8..=3), 1..=6),
        15i64..=90,
        prop::option::weighted(0.3, 0u32..=2),
    )
        .prop_map(
            |(
                (server_pool, one_step, per_server),
                (standby, minimum, floor),
                (days, pre_warm),
                vms,
                step_min,
                tight_cap,
            )| {
                RotSpec {
                    server_pool,
                    one_step,
                    per_server,
                    standby,
                    minimum,
                    floor,
                    days,
                    pre_warm,
                    vms,
                    step_min,
                    tight_cap,
                }
            },
        )
}

fn build_rot(s: &RotSpec) -> Input {
    let mut input = super::tests::input(s.standby.0 as f64);
    let c = &mut input.config;
    c.max_new_vms_per_evaluation = if s.one_step { std::num::NonZeroU32::new(1) } else { None };
    c.downscale_backoff = 1800;
    c.agent_cores_override = 4.0;
    c.agent_memory_override_gb = 8.0;
    c.rotate_servers_in_days = Some(s.days);
    c.rotate_servers_pre_warm_minutes = Some(s.pre_warm);
    if s.server_pool {
        c.autoscale_type = AutoscaleType::Server;
        c.standby_cores = 0.0;
        c.max_simultaneous_sessions_per_server = s.per_server;
        c.minimum_pool_standby_sessions = s.minimum;
        // Reusable: single-use servers drain on their first session by design (tested in engine::tests).
        c.reusable = true;
    } else {
        c.standby_memory_mb = s.standby.1 as f64 * 1024.0;
    }
    if let Some(min) = s.floor {
        input.schedules = vec![always_active(min)];
    }
    let mut n_sess = 0;
    for (k, &(age_min, sessions)) in s.vms.iter().enumerate() {
        let mut c = claim(&format!("v{k}"), InstanceState::Running, age_min as i64 * 60 + 300);
        c.transitions.insert("booting".into(), t0() - Duration::minutes(age_min as i64));
        let sessions = if s.server_pool { sessions.min(s.per_server as u8) } else { sessions };
        let mut r = if s.server_pool {
            server(&c.kasm_server_id, true, Some(10))
        } else {
            agent(&c.kasm_server_id, 4.0, 8192.0, true, Some(10))
        };
        if !s.server_pool {
            r.allocated = Resources::new(sessions as f64, sessions as f64 * 1024.0, 0.0);
        }
        for _ in 0..sessions {
            n_sess += 1;
            input.sessions.push(session(n_sess, &c.kasm_server_id));
        }
        input.servers.push(r);
        input.instances.push(c);
    }
    input.owned_total = input.instances.len() as u32;
    input.max_instances = match s.tight_cap {
        Some(extra) => input.owned_total + extra,
        None => 64,
    };
    input
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Over four days of evaluations with steady sessions, rotation keeps every invariant, never
    /// exceeds `max_instances`, never destroys a VM with sessions, never drops free capacity below
    /// standby — and, when the cap leaves room, no VM serves much past its rotation age.
    #[test]
    fn rotation_over_days_keeps_capacity_and_replaces_old_vms(s in rot_spec()) {
        let mut input = build_rot(&s);
        let step = Duration::minutes(s.step_min);
        let mut now = t0();
        let rounds = (4 * 1440 / s.step_min) as usize;
        let (rotate, _) = input.config.rotation().unwrap();
        let mut last_create = t0();
        for round in 0..rounds {
            let p = decide(&input, now);
            check_plan(&input, &p, now)?;
            check_rotation(&input, &p, now)?;
            if p.create > 0 {
                last_create = now;
            }
            apply(&mut input, &p, now, round);
            prop_assert!(input.owned_total <= input.max_instances, "over the cap: {:#?}", p.reasons);
            let next = now + step;
            advance(&mut input, now, next);
            now = next;
            // Liveness, with room in the cap: a VM serves at most a few evaluations past its rotation age.
            if s.tight_cap.is_none() {
                let slack = 6 * s.step_min * 60;
                for c in input.instances.iter().filter(|c| c.state == InstanceState::Running) {
                    // Expired before the run started: counted from the start.
                    let expired = (c.vm_since() + Duration::seconds(rotate)).max(t0());
                    let late = (now - expired).num_seconds();
                    prop_assert!(late <= slack, "{} still serves {} s past its rotation age (last create {:?}):\n{:#?}", c.id, late, last_create, p.reasons);
                }
            }
        }
    }
}

/// The rotation property's own sanity: over time it does claim replacements and drain old VMs.
#[test]
fn rotation_over_time_replaces_and_drains() {
    let s = RotSpec {
        server_pool: false,
        one_step: false,
        per_server: 1,
        standby: (4, 0),
        minimum: 0,
        floor: None,
        days: 1,
        pre_warm: 60,
        vms: vec![(1400, 2), (0, 0)],
        step_min: 30,
        tight_cap: None,
    };
    let mut input = build_rot(&s);
    let mut now = t0();
    let (mut replaced, mut rotated) = (0, 0);
    for round in 0..96 {
        let p = decide(&input, now);
        replaced += p.replacements.len();
        rotated += p.actions.iter().filter(|a| matches!(a, Action::Drain { replaced_by: Some(_), .. })).count();
        apply(&mut input, &p, now, round);
        let next = now + Duration::minutes(30);
        advance(&mut input, now, next);
        now = next;
    }
    assert!(replaced >= 2 && rotated >= 2, "replaced {replaced}, rotated {rotated}");
    // v0 (busy) still drains its sessions; v1 is gone.
    assert!(input.instances.iter().any(|c| c.id.as_str() == "v0" && c.state == InstanceState::Draining));
    assert!(!input.instances.iter().any(|c| c.id.as_str() == "v1"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Single-use servers (Kasm's `reusable: false`): over rounds of plans applied, a server that has
    /// had a session is never undrained, never destroyed while it has sessions, and every running
    /// server of ours with a session is drained by the next plan (of an enabled config).
    #[test]
    fn single_use_servers_are_never_reused(mut s in spec(false)) {
        s.server_pool = true;
        s.enabled = true;
        let mut input = build(&s);
        input.config.reusable = false;
        let mut now = t0();
        for round in 0..6 {
            let p = decide(&input, now);
            for a in &p.actions {
                match a {
                    Action::Undrain { claim, .. } => prop_assert!(false, "undrained {} of a single-use pool", claim),
                    Action::Destroy { claim, .. } => {
                        prop_assert_eq!(sessions_of(&input, find(&input, claim)), 0, "destroyed {} with sessions", claim)
                    }
                    _ => {}
                }
            }
            for c in &input.instances {
                let busy = c.state == InstanceState::Running
                    && sessions_of(&input, c) > 0
                    && records_of(&input, c).any(|r| !r.is_going() && (r.server_id == c.kasm_server_id || r.friendly_name.as_deref() == Some(&c.vm_name)));
                if busy {
                    prop_assert!(
                        p.actions.iter().any(|a| matches!(a, Action::Drain { claim, .. } if *claim == c.id)),
                        "{} is in use and not drained", c.id
                    );
                }
            }
            apply(&mut input, &p, now, round);
            let next = now + Duration::seconds(60);
            advance(&mut input, now, next);
            now = next;
        }
    }
}

/// VMs a plan adds: creates and re-enabled draining VMs.
fn scale_up(p: &Plan) -> u32 {
    p.create + p.actions.iter().filter(|a| matches!(a, Action::Undrain { .. })).count() as u32
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Staging configs and queued requests add demand, and: they never provision past
    /// `max_instances` (every plan keeps the invariants); more of that demand never means fewer VMs
    /// (when the VM size is known, so no "learn the size first" step applies); a staging config whose
    /// image is larger than one VM (unmet) changes no action; and with `aggressive_scaling` off,
    /// queued requests change no action either.
    #[test]
    fn staging_and_queued_demand_stay_under_the_cap(
        s in spec(false),
        extra_stage in pvec((1u8..=4, 1u8..=8, 1u8..=12), 1..=3),
        extra_queued in pvec((1u8..=4, 1u8..=8), 1..=6),
        cap_room in 0u32..=3,
    ) {
        let now = t0();
        let mut base = build(&s);
        // A cap close to what is owned, so the demand can reach it.
        base.max_instances = base.owned_total + cap_room;
        let p0 = decide(&base, now);
        check_plan(&base, &p0, now)?;

        let mut more = base.clone();
        let n = more.staging.len();
        more.staging.extend(extra_stage.iter().enumerate().map(|(k, &(c, m, num))| stage(n + k, (c, m, 0, num, 0))));
        let n = more.queued.len();
        more.queued.extend(extra_queued.iter().enumerate().map(|(k, &(c, m))| queued_request(n + k, c, m)));
        let p1 = decide(&more, now);
        check_plan(&more, &p1, now)?;
        prop_assert!(more.owned_total + p1.create <= more.max_instances.max(more.owned_total), "past the cap: {:#?}", p1.reasons);
        let size_known = s.new_vm_size.is_some();
        if size_known {
            prop_assert!(scale_up(&p1) >= scale_up(&p0), "more demand, fewer VMs: {} < {}\n{:#?}\n{:#?}", scale_up(&p1), scale_up(&p0), p1.reasons, p0.reasons);
        }

        // Unmet: an image one core larger than a VM (Docker Agents, size known) is reported only.
        if size_known && !s.server_pool {
            let per_vm = p0.summary.per_vm;
            let mut unmet = base.clone();
            let n = unmet.staging.len();
            unmet.staging.push(StagingDemand {
                image_size: Resources::new(per_vm.cores + 1.0, 1.0, 0.0),
                ..stage(n, (1, 1, 0, 5, 0))
            });
            let p2 = decide(&unmet, now);
            prop_assert_eq!(&p2.actions, &p0.actions);
            prop_assert_eq!(p2.create, p0.create);
            prop_assert!(p2.summary.staging_unmet.cores >= 1.0 - 1e-9, "{:#?}", p2.reasons);
        }

        // aggressive_scaling off: queued requests are reported, never provisioned for.
        let mut calm = base.clone();
        calm.config.aggressive_scaling = false;
        let p3 = decide(&calm, now);
        calm.queued = more.queued.clone();
        let p4 = decide(&calm, now);
        prop_assert_eq!(&p4.actions, &p3.actions);
        prop_assert_eq!(p4.create, p3.create);
        prop_assert_eq!(p4.summary.queued_requests as usize, more.queued.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Staged sessions count as staged, not as missing: once the desired sessions are staged, the
    /// staging config asks for no room and the plan adds no more VMs than before.
    #[test]
    fn staging_what_is_missing_never_adds_vms(mut s in spec(false), num in 1u8..=4) {
        s.server_pool = false;
        let now = t0();
        let mut base = build(&s);
        base.staging = vec![stage(0, (1, 1, 0, num, 0))];
        let before = decide(&base, now);
        let mut after = base.clone();
        after.staging[0].current_sessions = num as u32;
        let p = decide(&after, now);
        check_plan(&after, &p, now)?;
        prop_assert!(scale_up(&p) <= scale_up(&before), "{:#?}", p.reasons);
        prop_assert_eq!(p.summary.staging, Resources::default());
    }
}

/// Durations far beyond any value `validate` accepts (issue 21: `18446744073709551615` once wrapped
/// into a negative timeout), and huge ones just inside `i64`.
fn extreme_secs() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(crate::clock::MAX_SPAN_SECS as u64 + 1),
        (1u64 << 40)..=u64::MAX,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Issue 21: whatever the timers and the backoff, however far beyond `validate`'s ranges, the
    /// engine reads them as "very long", never as negative: no VM is destroyed for a timeout (a
    /// booting VM is at most a few days old here), no idle VM is drained for scale-down (the backoff
    /// never elapses), and the plan keeps every invariant — no churn.
    #[test]
    fn extreme_durations_never_cause_churn(
        mut s in spec(false),
        timeout in extreme_secs(),
        missing in extreme_secs(),
        dead in extreme_secs(),
        backoff in extreme_secs(),
        clock_age in 0i64..=400_000,
        later in 0i64..=400_000,
    ) {
        s.backoff = backoff;
        let mut input = build(&s);
        input.timers =
            Timers { provision_timeout: timeout, agent_missing_after: missing, agent_dead_after: dead, ..Timers::default() };
        input.control.request_downscale_at = Some(t0() - Duration::seconds(clock_age));
        for now in [t0(), t0() + Duration::seconds(later)] {
            let p = decide(&input, now);
            check_plan(&input, &p, now)?;
            for a in &p.actions {
                match a {
                    Action::Destroy { reason, .. } => prop_assert!(
                        !reason.contains("check") && !reason.contains("dead agent"),
                        "destroyed for a timeout that cannot have elapsed: {}", reason
                    ),
                    Action::Drain { reason, .. } => prop_assert!(
                        !reason.contains("scale-down"),
                        "drained for a backoff that cannot have elapsed: {}", reason
                    ),
                    _ => {}
                }
            }
        }
    }
}

/// A history of `weeks` weeks before `t0()`'s week with `level` (cores, GB and sessions alike) in use
/// in the buckets `from..to` minutes around `t0()`.
fn forecast_history(input: &Input, weeks: i64, level: f64, from: i64, to: i64) -> forecast::DemandHistory {
    let mut h = forecast::DemandHistory::new(forecast::identity(&input.config));
    for w in (1..=weeks).rev() {
        let mut m = from;
        while m < to {
            h.observe(t0() - Duration::days(7 * w) + Duration::minutes(m), [level, level * 1024.0, 0.0]);
            m += 5;
        }
    }
    h
}

fn predictive(on: bool) -> crate::config::PredictiveScaling {
    if on { crate::config::PredictiveScaling::On } else { crate::config::PredictiveScaling::ForecastOnly }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With any history, a forecast keeps every invariant: never above `max_instances`, nothing
    /// created while the schedule is inactive or the config disabled; `forecast_only` plans what
    /// `off` plans; more forecast demand never creates fewer VMs; today's level never raises the
    /// forecast above the history's.
    #[test]
    fn forecast_never_exceeds_max_instances_or_acts_while_inactive(
        s in spec(false),
        on in any::<bool>(),
        weeks in 0i64..=4,
        level in 0u16..=200,
        later in 0i64..3_000,
    ) {
        let base = build(&s);
        let mut input = base.clone();
        input.config.predictive_scaling = predictive(on);
        input.control.history = Some(forecast_history(&input, weeks, level as f64, -60, 120));
        for now in [t0(), t0() + Duration::seconds(later)] {
            let p = decide(&input, now);
            check_plan(&input, &p, now)?;
            if !p.summary.active || !input.config.enabled {
                prop_assert_eq!(p.create, 0);
            }
            // Today's level only ever scales the history's forecast down.
            if let Some(f) = &p.summary.forecast {
                prop_assert!(f.demand.cores <= level as f64 + 1e-6 && f.today_percent.is_none_or(|r| r <= 100.0), "{:#?}", f);
            }
            let reactive = decide(&base, now);
            if on {
                prop_assert!(p.create >= reactive.create, "forecast created fewer: {:#?}", p.reasons);
            } else {
                prop_assert_eq!((p.create, &p.actions, p.request_downscale_at), (reactive.create, &reactive.actions, reactive.request_downscale_at));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No pre-warming outside a schedule's active windows: at 11:57 with a schedule that ends at
    /// 11:57 and demand forecast only from 12:00, the plan is the reactive one.
    #[test]
    fn forecast_never_provisions_outside_active_windows(s in spec(false), level in 1u16..=200, weeks in 2i64..=4) {
        let mut base = build(&s);
        base.schedules = vec![Schedule {
            days_of_the_week: vec![Weekday::Sunday],
            active_start_time: "06:00".into(),
            active_end_time: "11:57".into(),
            ..always_active(0)
        }];
        let now = t0() - Duration::minutes(3);
        let mut input = base.clone();
        input.config.predictive_scaling = crate::config::PredictiveScaling::On;
        input.control.history = Some(forecast_history(&input, weeks, level as f64, 0, 120));
        let (p, reactive) = (decide(&input, now), decide(&base, now));
        check_plan(&input, &p, now)?;
        prop_assert_eq!((p.create, &p.actions), (reactive.create, &reactive.actions), "{:#?}", p.reasons);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An empty history (none stored, an empty one, or one of another config) changes nothing.
    #[test]
    fn forecast_from_an_empty_history_changes_nothing(s in spec(false), on in any::<bool>(), which in 0u8..3, later in 0i64..100_000) {
        let base = build(&s);
        let mut input = base.clone();
        input.config.predictive_scaling = predictive(on);
        input.control.history = match which {
            0 => None,
            1 => Some(forecast::DemandHistory::new(forecast::identity(&input.config))),
            _ => {
                let mut h = forecast_history(&input, 3, 50.0, -60, 120);
                h.identity ^= 1;
                Some(h)
            }
        };
        for now in [t0(), t0() + Duration::seconds(later)] {
            let (p, reactive) = (decide(&input, now), decide(&base, now));
            prop_assert_eq!((p.create, &p.actions, p.request_downscale_at), (reactive.create, &reactive.actions, reactive.request_downscale_at));
        }
    }
}
