//! The simulator behind `kasm-autoscale simulate`: the real engine, lifecycle and store (in
//! memory) against a simulated provider and Kasm cluster, on a virtual clock. No real time passes.
//!
//! One step = one evaluation: sessions arrive and end, booted VMs check in, waiting sessions are
//! placed, Kasm's staging service stages sessions, then evaluate → provision → reap run exactly as in
//! production. The simulator plays Kasm's part: a request for a staged image takes a staged session at
//! once; a request nothing can take waits, queued in Kasm (`requested`) when its burst says `queued`.

pub mod chart;
pub mod trace;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::app::{self, Ctx, Tuning};
use crate::clock::VirtualClock;
use crate::config::{AutoscaleType, ConfigSet};
use crate::kasm::memory::MemoryKasm;
use crate::kasm::{KasmServer, ServerKind};
use crate::model::{ClaimId, Resources};
use crate::ports::{Store, VmProvider};
use crate::providers::ProviderError;
use crate::providers::memory::MemoryProvider;
use crate::secrets::StaticSecrets;
use crate::store::MemoryStore;

pub use trace::{LoadStrategy, LoadedTrace, Trace, TraceError, load, parse};

/// The summary `--json` prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Trace name.
    pub name: String,
    /// Most VMs alive at the provider at once.
    pub peak_vms: u32,
    /// VM-hours used.
    pub vm_hours: f64,
    /// `vm_hours × hourly_price`, in `currency`.
    pub estimated_cost: f64,
    /// The trace's `currency` (absent: the estimate is in the trace's cost units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Sessions that arrived.
    pub sessions_total: u32,
    /// Sessions that had to wait for capacity (not placed in the step they arrived).
    pub sessions_waited: u32,
    /// Sessions still waiting when the trace ended.
    pub sessions_unserved: u32,
    /// Longest wait of a session for capacity, seconds (unserved ones count until the end).
    pub max_wait_seconds: u64,
    /// Whether owned VMs of any provider config ever exceeded its `max_instances` (must be false).
    pub max_instances_exceeded: bool,
    /// Evaluations that produced a plan.
    pub decisions: u32,
    /// VMs created at the provider.
    pub vms_created: u32,
    /// VMs destroyed at the provider.
    pub vms_destroyed: u32,
    /// Provider create errors met.
    pub provider_errors: u32,
    /// Server rotation: VMs drained because they reached `rotate_servers_in_days` (each after its
    /// replacement served).
    pub vms_rotated: u32,
    /// Staged sessions made (Kasm's staging service, simulated).
    #[serde(skip_serializing_if = "is_zero")]
    pub sessions_staged: u32,
    /// Requests that took a staged session (no wait).
    #[serde(skip_serializing_if = "is_zero")]
    pub sessions_from_staging: u32,
    /// Requests that waited queued in Kasm (seen by the autoscaler).
    #[serde(skip_serializing_if = "is_zero")]
    pub sessions_queued: u32,
    /// The trace's `score_from_day`: sessions, waits and VM-hours count from that day on.
    #[serde(skip_serializing_if = "is_zero")]
    pub score_from_day: u32,
    /// The trace's `load_strategy`: how the simulated Kasm chose the record a session went to.
    pub load_strategy: LoadStrategy,
    /// The perfect-foresight lower bound: Σ over steps of ⌈cores in use ÷ cores per VM⌉ × step length
    /// per config (server pools: ⌈sessions ÷ sessions per server⌉); in use = running and waiting.
    pub oracle_vm_hours: f64,
    /// `vm_hours ÷ oracle_vm_hours` (0 when the oracle is 0).
    pub vm_hours_over_oracle: f64,
    /// The part of `vm_hours` spent booting: VMs at the provider that had not finished booting
    /// (`boot_seconds` and their jitter) — what slow boots cost, whatever the autoscaler does.
    pub booting_vm_hours: f64,
    /// `sessions_waited ÷ sessions_total`, in percent.
    pub sessions_waited_percent: f64,
    /// 95th percentile (nearest rank) of every session's wait, 0 for those that did not wait, seconds.
    pub p95_wait_seconds: u64,
}

impl Summary {
    /// The estimated cost with its unit: `38.51 USD`, or `38.51 cost units (hourly_price has no
    /// currency)` when the trace names none.
    pub fn cost_text(&self) -> String {
        match &self.currency {
            Some(c) => format!("{:.2} {c}", self.estimated_cost),
            None => format!("{:.2} cost units (hourly_price has no currency)", self.estimated_cost),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One sample of the timeline, per step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Minutes since the start.
    pub minute: f64,
    /// Demand: cores (agents) / session slots (servers) of running and waiting sessions.
    pub demand: f64,
    /// The waiting sessions' part of `demand`.
    pub waiting_demand: f64,
    /// What the configs ask to keep free: standby cores (agents) and minimum available sessions
    /// (servers), summed over the configs evaluated in this step.
    pub standby: f64,
    /// Capacity: cores / session slots of enabled, checked-in VMs.
    pub capacity: f64,
    /// VMs alive at the provider.
    pub vms: u32,
    /// What the oracle holds in this step (`oracle_vm_hours`): ⌈demand ÷ one VM's capacity⌉ per config.
    pub oracle_vms: u32,
    /// Whether the step counts in the summary's VM-hours and oracle (from `score_from_day` on; the
    /// sample after the last step only closes the chart).
    pub scored: bool,
    /// Sessions waiting for capacity.
    pub waiting: u32,
    /// Predictive scaling: the demand forecast one lead time ahead (cores / session slots, summed over
    /// the configs that forecast); absent when no config forecasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
}

/// A notable event, for the printed timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Minutes since the start.
    pub minute: f64,
    /// One short line: what happened and, for a decision, the reason that drove it
    /// (`office-agents: +2 agents — free cores 0 < standby 16`).
    pub line: String,
    /// Everything on one line: for a decision each action with its claim id, then every reason.
    pub text: String,
    /// For a decision, what `--verbose` prints under its line: `does: <each action>`, then one
    /// `why: <reason>` per reason of the plan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// For generated arrivals (a trace's `arrivals`: about one a minute in a busy hour), the config
    /// and the count: the timeline sums them per hour unless `--verbose`.
    #[serde(skip)]
    pub generated: Option<(String, u32)>,
}

impl Event {
    /// An event whose short line says it all.
    fn plain(minute: f64, text: String) -> Self {
        Event { minute, line: text.clone(), text, details: Vec::new(), generated: None }
    }
}

/// What a chart marker shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    /// A VM create failed at the provider.
    ProviderError,
    /// A decision drained VMs (scale-down or schedule).
    Drain,
    /// A decision drained VMs for rotation (their replacements serve).
    Rotation,
}

/// A marker on the chart's time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    /// Minutes since the start.
    pub minute: f64,
    /// What happened.
    pub kind: MarkKind,
    /// How many VMs (drains, rotation) or 1 (one failed create).
    pub count: u32,
}

/// The result of a simulation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The simulated start instant (events and samples count minutes from it).
    pub start: DateTime<Utc>,
    /// Seconds between evaluations (the timeline shows seconds when steps are sub-minute).
    pub step_seconds: u32,
    /// The summary.
    pub summary: Summary,
    /// Per-step samples.
    pub samples: Vec<Sample>,
    /// Notable events.
    pub events: Vec<Event>,
    /// Provider errors, drains and rotation, for the chart.
    pub marks: Vec<Mark>,
}

#[derive(Debug, Clone)]
struct Waiting {
    id: u64,
    arrived: DateTime<Utc>,
    res: Resources,
    duration: Duration,
    config: String,
    /// Queued in Kasm while it waits (the burst's `queued`).
    queued: bool,
}

#[derive(Debug, Clone)]
struct Active {
    kasm_id: String,
    ends: DateTime<Utc>,
}

/// Runs a loaded trace to the end.
pub async fn run(lt: &LoadedTrace) -> Report {
    let t = &lt.trace;
    let mut configs = lt.configs.clone();
    // One step is one evaluation.
    configs.settings.evaluation_interval = u64::from(t.step_seconds);
    // Kasm names the autoscale config a request is queued for by its id: give the configs that have
    // none a simulated one.
    for a in configs.autoscale_configs.iter_mut().filter(|a| a.autoscale_config_id.is_none()) {
        a.autoscale_config_id = Some(format!("sim-{}", a.autoscale_config_name));
    }
    let configs: Arc<ConfigSet> = Arc::new(configs);
    let start = t.start.unwrap_or_else(|| Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).single().expect("valid date"));
    let clock = Arc::new(VirtualClock::new(start));
    let store = Arc::new(MemoryStore::new());
    let kasm = Arc::new(MemoryKasm::new());
    let mut mem_providers: BTreeMap<String, Arc<MemoryProvider>> = BTreeMap::new();
    let mut providers: HashMap<String, Arc<dyn VmProvider>> = HashMap::new();
    for p in &configs.vm_provider_configs {
        let mp = Arc::new(MemoryProvider::new());
        mem_providers.insert(p.name().to_string(), mp.clone());
        providers.insert(p.name().to_string(), mp);
    }
    // DNS registration (register_dns) goes to an in-memory zone per DNS-provider config.
    let mut dns: HashMap<String, Arc<dyn crate::dns::DnsProvider>> = HashMap::new();
    for d in &configs.dns_provider_configs {
        dns.insert(d.name().to_string(), Arc::new(crate::dns::memory::MemoryDns::new()));
    }
    let secrets: HashMap<String, String> = HashMap::new();
    let ctx = Ctx {
        store: store.clone(),
        kasm: kasm.clone(),
        secrets: Arc::new(StaticSecrets(secrets)),
        clock: clock.clone(),
        providers: providers.into(),
        dns,
        configs: configs.clone(),
        holder: "simulator".into(),
        tuning: Tuning::default(),
    };
    // Secrets referenced by configs render as placeholders in the simulator: resolve them to a fixed
    // text so rendering works without any real secret.
    let ctx = Ctx { secrets: Arc::new(SimSecrets), ..ctx };

    let mut rng = rand::rngs::StdRng::seed_from_u64(t.seed.unwrap_or(1));
    // Claim and Kasm server ids from the trace's seed too: every run of a trace is the same run.
    let _ids = crate::model::SeededIds::new(t.seed.unwrap_or(1));
    let step = Duration::seconds(t.step_seconds as i64);
    let steps = (t.duration_minutes as u64 * 60).div_ceil(t.step_seconds as u64) as i64;
    let step_hours = t.step_seconds as f64 / 3600.0;

    let mut summary = Summary {
        name: t.name.clone(),
        score_from_day: t.score_from_day,
        load_strategy: t.load_strategy,
        ..Default::default()
    };
    // Warm-up days are not scored: from midnight (UTC) of day `score_from_day`, or the start for day 0.
    let score_from = if t.score_from_day == 0 {
        start
    } else {
        let midnight = start.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        midnight + Duration::days(i64::from(t.score_from_day))
    };
    let bursts = trace::expand(t, start);
    let mut next_burst = 0usize;
    let mut waits: Vec<u64> = Vec::new();
    let mut oracle_hours = 0.0f64;
    let mut booting_hours = 0.0f64;
    // Grows with what is recorded (a trace is bounded by `trace::MAX_STEPS`), nothing reserved up front.
    let mut samples = Vec::new();
    let mut events = Vec::new();
    let mut marks = Vec::new();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut active: Vec<Active> = Vec::new();
    let mut ready_at: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut next_session = 0u64;
    let mut known_vms: HashMap<String, String> = HashMap::new();
    // Claims drained for rotation, until the reaper has removed them.
    let mut rotated_out: std::collections::HashSet<ClaimId> = std::collections::HashSet::new();

    for i in 0..=steps {
        let now = start + step * i as i32;
        clock.set(now);
        let minute = (now - start).num_seconds() as f64 / 60.0;
        let prev = now - step;
        let crossed = |m: u32| {
            let at = start + Duration::minutes(m as i64);
            if i == 0 { at <= now } else { at > prev && at <= now }
        };
        for mp in mem_providers.values() {
            mp.set_now(now);
        }

        // Injected failures.
        for f in t.provider.failures.iter().filter(|f| crossed(f.at_minute)) {
            for (name, mp) in &mem_providers {
                if f.provider_config.as_ref().is_none_or(|p| p == name) {
                    mp.fail_next_creates(failure(f.kind), f.count);
                }
            }
            events.push(Event::plain(minute, format!("provider: next {} creates fail with {:?}", f.count, f.kind)));
        }
        // Arrivals: a request for a staged image takes a staged session at once; the others wait.
        let mut arriving = Vec::new();
        // Bursts are sorted by minute: every one not taken yet whose minute has come arrives now.
        while let Some(b) = bursts.get(next_burst).filter(|b| start + Duration::minutes(b.at_minute.into()) <= now) {
            arriving.push(b);
            next_burst += 1;
        }
        // Generated arrivals (one session each) are reported together per config.
        let mut generated: BTreeMap<&str, u32> = BTreeMap::new();
        for b in arriving {
            let mut from_staging = 0;
            for _ in 0..b.count {
                next_session += 1;
                if let Some(kasm_id) =
                    b.image_id.as_ref().and_then(|img| take_staged(&kasm, &configs, &b.autoscale_config, img))
                {
                    from_staging += 1;
                    active.push(Active { kasm_id, ends: now + Duration::minutes(b.duration_minutes as i64) });
                    continue;
                }
                waiting.push_back(Waiting {
                    id: next_session,
                    arrived: now,
                    res: Resources::new(b.cores, b.memory_mb, b.gpus),
                    duration: Duration::minutes(b.duration_minutes as i64),
                    config: b.autoscale_config.clone(),
                    queued: b.queued,
                });
            }
            if now >= score_from {
                summary.sessions_total += b.count;
                waits.extend(std::iter::repeat_n(0, from_staging as usize));
            }
            summary.sessions_from_staging += from_staging;
            if b.count == 1
                && b.image_id.is_none()
                && t.arrivals.iter().any(|a| a.autoscale_config == b.autoscale_config)
            {
                *generated.entry(b.autoscale_config.as_str()).or_default() += 1;
                continue;
            }
            let staged =
                if from_staging > 0 { format!(" ({from_staging} take staged sessions)") } else { String::new() };
            events.push(Event::plain(minute, format!("{} for {}{staged}", arrive(b.count), b.autoscale_config)));
        }
        for (config, n) in generated {
            let mut e = Event::plain(minute, format!("{} for {config}", arrive(n)));
            e.generated = Some((config.to_string(), n));
            events.push(e);
        }
        // Endings.
        active.retain(|a| {
            if a.ends <= now {
                kasm.end_session(&a.kasm_id);
                false
            } else {
                true
            }
        });

        // The provider's VMs: boot, check in, heartbeat; records of gone VMs disappear.
        let mut alive_servers = std::collections::HashSet::new();
        let mut alive_vms = std::collections::HashSet::new();
        for (pname, mp) in &mem_providers {
            for vm in mp.vms() {
                alive_vms.insert(vm.id.clone());
                if known_vms.insert(vm.id.clone(), pname.clone()).is_none() {
                    summary.vms_created += 1;
                    let jitter = if t.provider.boot_jitter_seconds > 0 {
                        rng.random_range(0..=t.provider.boot_jitter_seconds)
                    } else {
                        0
                    };
                    let created = vm.created_at.unwrap_or(now);
                    ready_at
                        .insert(vm.id.clone(), created + Duration::seconds((t.provider.boot_seconds + jitter) as i64));
                }
                let Some(claim) = vm.claim() else { continue };
                let Ok(Some(inst)) = store.get(&ClaimId(claim.0.clone())).await else { continue };
                alive_servers.insert(inst.kasm_server_id.clone());
                if ready_at.get(&vm.id).is_some_and(|r| *r <= now) {
                    check_in(&kasm, &configs, &inst, &vm, now);
                }
            }
        }
        known_vms.retain(|id, _| {
            let gone = !alive_vms.contains(id);
            if gone {
                summary.vms_destroyed += 1;
            }
            !gone
        });
        for s in kasm.servers() {
            if !alive_servers.contains(&s.server_id) {
                // The VM is gone: its agent stops checking in, and the reaper removes the record.
                let _ = crate::kasm::KasmApi::delete_server(kasm.as_ref(), &s.server_id).await;
            }
        }

        // Place waiting sessions (the trace's `load_strategy`); Kasm queues those it cannot place when
        // their burst says so.
        let mut still = VecDeque::new();
        while let Some(w) = waiting.pop_front() {
            let kasm_id = format!("s{}", w.id);
            match place(&kasm, &configs, &w.config, w.res, t.load_strategy) {
                Some(server_id) => {
                    kasm.start_session(&kasm_id, &server_id, w.res);
                    let wait = (now - w.arrived).num_seconds().max(0) as u64;
                    if w.arrived >= score_from {
                        if wait > 0 {
                            summary.sessions_waited += 1;
                        }
                        summary.max_wait_seconds = summary.max_wait_seconds.max(wait);
                        waits.push(wait);
                    }
                    active.push(Active { kasm_id, ends: now + w.duration });
                }
                None => {
                    if w.queued && w.arrived == now {
                        let id = configs
                            .autoscale(&w.config)
                            .and_then(|a| a.autoscale_config_id.clone())
                            .unwrap_or_default();
                        kasm.queue_session(&kasm_id, &id, w.res);
                        summary.sessions_queued += 1;
                    }
                    still.push_back(w);
                }
            }
        }
        waiting = still;

        // Kasm's staging service: staged sessions up to each staging config's desired number, where
        // there is room.
        let made = stage_sessions(&kasm, &configs, &mut next_session, t.load_strategy);
        if made > 0 {
            summary.sessions_staged += made;
            events.push(Event::plain(minute, format!("staging: {made} staged sessions made")));
        }

        // The autoscaler, exactly as deployed.
        let mut forecast: Option<f64> = None;
        let mut standby = 0.0;
        for o in app::evaluate(&ctx, None, "simulate").await {
            if let Ok(plan) = &o.result {
                summary.decisions += 1;
                standby += plan.summary.standby.cores + f64::from(plan.summary.minimum_sessions);
                if let Some(f) = plan.summary.forecast.as_ref().filter(|f| f.bucket.is_some()) {
                    *forecast.get_or_insert(0.0) += f.demand.cores + f64::from(f.demand_sessions);
                }
                if plan.changes_something() {
                    let mut what = Vec::new();
                    if !o.claimed.is_empty() {
                        // Replacement claims are written after the standby ones (see `app::evaluate`).
                        let standby = (plan.create as usize - plan.replacements.len()).min(o.claimed.len());
                        let replacing = &plan.replacements[..o.claimed.len() - standby];
                        what.push(if replacing.is_empty() {
                            format!("+{}", vms(o.claimed.len()))
                        } else {
                            let names: Vec<&str> = replacing.iter().map(ClaimId::as_str).collect();
                            format!(
                                "+{} ({} replacing {} for rotation)",
                                vms(o.claimed.len()),
                                replacing.len(),
                                names.join(", ")
                            )
                        });
                    }
                    let (mut drained, mut rotated) = (0, 0);
                    for a in &plan.actions {
                        match a {
                            crate::engine::Action::Drain { claim, replaced_by: Some(_), .. } => {
                                summary.vms_rotated += 1;
                                rotated_out.insert(claim.clone());
                                rotated += 1;
                            }
                            crate::engine::Action::Drain { .. } => drained += 1,
                            _ => {}
                        }
                        what.push(action_text(a));
                    }
                    for (kind, count) in [(MarkKind::Drain, drained), (MarkKind::Rotation, rotated)] {
                        if count > 0 {
                            marks.push(Mark { minute, kind, count });
                        }
                    }
                    let kind = configs.autoscale(&o.autoscale_config).map(|a| a.autoscale_type);
                    events.push(Event {
                        minute,
                        line: format!("{}: {}", o.autoscale_config, plan.headline(o.claimed.len(), kind)),
                        text: format!("{}: {} — {}", o.autoscale_config, what.join(", "), plan.reasons.join("; ")),
                        details: std::iter::once(format!("does: {}", what.join(", ")))
                            .chain(plan.reasons.iter().map(|r| format!("why:  {r}")))
                            .collect(),
                        generated: None,
                    });
                }
            }
        }
        for (claim, r) in app::provision_pending(&ctx).await {
            match r {
                Ok(app::ProvisionOutcome::Retrying { error, .. } | app::ProvisionOutcome::Failed { error, .. }) => {
                    summary.provider_errors += 1;
                    marks.push(Mark { minute, kind: MarkKind::ProviderError, count: 1 });
                    events.push(Event::plain(minute, format!("claim {claim}: {error}")));
                }
                Ok(_) => {}
                Err(e) => events.push(Event::plain(minute, format!("claim {claim}: {e}"))),
            }
        }
        let rep = app::reap(&ctx).await;
        for e in &rep.errors {
            events.push(Event::plain(minute, format!("reaper: {e}")));
        }
        for id in &rep.deleted {
            if rotated_out.remove(id) {
                events.push(Event::plain(minute, format!("rotation: rotated-out VM {id} removed")));
            }
        }

        // Invariant and samples.
        for p in &configs.vm_provider_configs {
            let owned = store.count_owned(p.name()).await.unwrap_or(0);
            let at_provider = mem_providers[p.name()].vms().len() as u32;
            if owned > p.max_instances() || at_provider > p.max_instances() {
                summary.max_instances_exceeded = true;
            }
        }
        let vms_now: u32 = mem_providers.values().map(|m| m.vms().len() as u32).sum();
        summary.peak_vms = summary.peak_vms.max(vms_now);
        let oracle_now = oracle_vms(&kasm, &configs, &waiting);
        let scored = i < steps && now >= score_from;
        if scored {
            summary.vm_hours += vms_now as f64 * step_hours;
            oracle_hours += f64::from(oracle_now) * step_hours;
            let booting = mem_providers
                .values()
                .flat_map(|m| m.vms())
                .filter(|vm| ready_at.get(&vm.id).is_none_or(|r| *r > now))
                .count();
            booting_hours += booting as f64 * step_hours;
        }
        let (demand, waiting_demand, capacity) = demand_capacity(&kasm, &configs, &waiting);
        samples.push(Sample {
            minute,
            demand,
            waiting_demand,
            standby,
            capacity,
            vms: vms_now,
            oracle_vms: oracle_now,
            scored,
            waiting: waiting.len() as u32,
            forecast,
        });
    }
    let end = start + step * steps as i32;
    for w in waiting.iter().filter(|w| w.arrived >= score_from) {
        summary.sessions_unserved += 1;
        summary.sessions_waited += 1;
        let wait = (end - w.arrived).num_seconds().max(0) as u64;
        summary.max_wait_seconds = summary.max_wait_seconds.max(wait);
        waits.push(wait);
    }
    summary.estimated_cost = (summary.vm_hours * t.provider.hourly_price * 100.0).round() / 100.0;
    summary.currency = t.provider.currency.clone();
    summary.vm_hours = (summary.vm_hours * 1000.0).round() / 1000.0;
    summary.oracle_vm_hours = (oracle_hours * 1000.0).round() / 1000.0;
    summary.booting_vm_hours = (booting_hours * 1000.0).round() / 1000.0;
    if summary.oracle_vm_hours > 0.0 {
        summary.vm_hours_over_oracle = (summary.vm_hours / summary.oracle_vm_hours * 100.0).round() / 100.0;
    }
    if summary.sessions_total > 0 {
        summary.sessions_waited_percent =
            (f64::from(summary.sessions_waited) / f64::from(summary.sessions_total) * 1000.0).round() / 10.0;
    }
    waits.sort_unstable();
    if !waits.is_empty() {
        // Nearest rank.
        summary.p95_wait_seconds = waits[(waits.len() * 95).div_ceil(100).max(1) - 1];
    }
    Report { start, step_seconds: t.step_seconds, summary, samples, events, marks }
}

/// `1 session arrives`, `6 sessions arrive`.
fn arrive(n: u32) -> String {
    if n == 1 { "1 session arrives".into() } else { format!("{n} sessions arrive") }
}

/// `1 VM`, `2 VMs`.
fn vms(n: usize) -> String {
    if n == 1 { "1 VM".into() } else { format!("{n} VMs") }
}

fn failure(kind: trace::FailureKind) -> ProviderError {
    let provider = "simulated";
    match kind {
        trace::FailureKind::OutOfCapacity => {
            ProviderError::OutOfCapacity { provider, message: "InsufficientInstanceCapacity (simulated)".into() }
        }
        trace::FailureKind::RateLimited => ProviderError::RateLimited {
            provider,
            message: "RequestLimitExceeded (simulated)".into(),
            retry_after: None,
        },
        trace::FailureKind::Transient => ProviderError::Transient { provider, message: "HTTP 503 (simulated)".into() },
        trace::FailureKind::Invalid => ProviderError::Invalid { provider, message: "HTTP 400 (simulated)".into() },
    }
}

fn action_text(a: &crate::engine::Action) -> String {
    use crate::engine::Action;
    match a {
        Action::Activate { claim, enable, .. } => {
            format!("activate {claim}{}", if *enable { " (enable)" } else { "" })
        }
        Action::Drain { claim, replaced_by: Some(new), .. } => {
            format!("drain {claim} (rotated out, replaced by {new})")
        }
        Action::Drain { claim, .. } => format!("drain {claim}"),
        Action::Undrain { claim, .. } => format!("undrain {claim}"),
        Action::Destroy { claim, reason } => format!("destroy {claim} ({reason})"),
    }
}

/// The size a new VM of a config reports to Kasm.
fn vm_size(configs: &ConfigSet, config: &str) -> Resources {
    let Some(a) = configs.autoscale(config) else { return Resources::default() };
    let base = configs.provider(&a.vm_provider_config).and_then(|p| p.common().vm_size()).unwrap_or_default();
    let o = a.overrides();
    let pick = |ov: f64, b: f64| if ov > 0.0 { ov } else { b };
    Resources::new(pick(o.cores, base.cores), pick(o.memory_mb, base.memory_mb), pick(o.gpus, base.gpus))
}

/// A booted VM checks in: docker agents register disabled (Kasm without `auto_agent`); a server
/// pool's record (made by the provisioner) is marked checked in.
fn check_in(
    kasm: &MemoryKasm,
    configs: &ConfigSet,
    inst: &crate::model::Instance,
    vm: &crate::providers::Vm,
    now: DateTime<Utc>,
) {
    let Some(a) = configs.autoscale(&inst.autoscale_config) else { return };
    match kasm.server(&inst.kasm_server_id) {
        Some(mut s) => {
            s.last_reported = Some(now);
            if s.kind == ServerKind::Server && s.operational_status != "running" {
                s.operational_status = "running".into();
            }
            kasm.upsert_server(s);
        }
        None if a.autoscale_type == AutoscaleType::DockerAgent => kasm.upsert_server(KasmServer {
            server_id: inst.kasm_server_id.clone(),
            kind: ServerKind::Agent,
            hostname: vm.private_ip.clone().or_else(|| Some(vm.name.clone())),
            friendly_name: None,
            public_ip: vm.public_ip.clone(),
            zone_id: a.zone_id.clone(),
            server_pool_id: Some(a.server_pool_id.clone()),
            autoscale_config_id: None,
            enabled: false,
            operational_status: "running".into(),
            last_reported: Some(now),
            reported: vm_size(configs, &inst.autoscale_config),
            overridden: Resources::default(),
            allocated: Resources::default(),
            max_sessions: None,
            agent_installed: false,
        }),
        None => {}
    }
}

fn usable(s: &KasmServer) -> bool {
    s.enabled && s.last_reported.is_some()
}

fn capacity_of(s: &KasmServer) -> Resources {
    let pick = |o: f64, r: f64| if o > 0.0 { o } else { r };
    Resources::new(
        pick(s.overridden.cores, s.reported.cores),
        pick(s.overridden.memory_mb, s.reported.memory_mb),
        pick(s.overridden.gpus, s.reported.gpus),
    )
}

/// The record of `config`'s pool a session of `res` goes to, among the usable ones with room for it
/// (server pools: a free session slot), in the order `strategy` gives ([`LoadStrategy`]); records
/// ranked equal keep their order (oldest record first).
fn place(
    kasm: &MemoryKasm,
    configs: &ConfigSet,
    config: &str,
    res: Resources,
    strategy: LoadStrategy,
) -> Option<String> {
    let a = configs.autoscale(config)?;
    let sessions = kasm.sessions();
    let mut servers: Vec<KasmServer> = kasm
        .servers()
        .into_iter()
        .filter(|s| usable(s) && s.zone_id == a.zone_id && s.server_pool_id.as_deref() == Some(&a.server_pool_id))
        .collect();
    servers.sort_by(|x, y| x.server_id.cmp(&y.server_id));
    let mut placed: HashMap<&str, u64> = HashMap::new();
    for k in sessions.iter().filter(|k| k.is_placed()) {
        *placed.entry(k.server_id.as_str()).or_default() += 1;
    }
    // Every record with room: (id, slots left for a session of `res`, sessions on it).
    let mut with_room = servers.into_iter().filter_map(|s| {
        let on_it = placed.get(s.server_id.as_str()).copied().unwrap_or(0);
        let slots = match a.autoscale_type {
            AutoscaleType::DockerAgent => {
                let free = capacity_of(&s) - s.allocated;
                // Sessions of `want` that fit in `free` (a dimension the session does not use limits
                // nothing unless it is overcommitted).
                let fit = |free: f64, want: f64| {
                    if want > 1e-9 {
                        ((free + 1e-9) / want).floor().max(0.0) as u64
                    } else if free + 1e-9 >= 0.0 {
                        u64::MAX
                    } else {
                        0
                    }
                };
                fit(free.cores, res.cores).min(fit(free.memory_mb, res.memory_mb)).min(fit(free.gpus, res.gpus))
            }
            AutoscaleType::Server => {
                u64::from(s.max_sessions.unwrap_or(a.max_simultaneous_sessions_per_server)).saturating_sub(on_it)
            }
        };
        (slots > 0).then_some((s.server_id, slots, on_it))
    });
    // `min_by_key` keeps the first of equals, as Kasm's stable sort does.
    let chosen = match strategy {
        LoadStrategy::RecordOrder => with_room.next(),
        LoadStrategy::LeastLoad => with_room.min_by_key(|x| std::cmp::Reverse(x.1)),
        LoadStrategy::MostLoad => with_room.min_by_key(|x| x.1),
        LoadStrategy::MostKasms => with_room.min_by_key(|x| std::cmp::Reverse(x.2)),
        LoadStrategy::LeastKasms => with_room.min_by_key(|x| x.2),
    };
    chosen.map(|x| x.0)
}

/// A request for image `image` of `config` takes a ready staged session, if there is one: its id.
fn take_staged(kasm: &MemoryKasm, configs: &ConfigSet, config: &str, image: &str) -> Option<String> {
    let ids: Vec<String> = configs.staging_of(config).iter().filter(|s| s.image_id == image).map(|s| s.id()).collect();
    let mut staged: Vec<_> = kasm
        .sessions()
        .into_iter()
        .filter(|k| {
            k.is_standby
                && k.allocates()
                && k.staging_config_id.as_deref().is_some_and(|id| ids.iter().any(|x| x == id))
        })
        .collect();
    staged.sort_by(|a, b| a.kasm_id.cmp(&b.kasm_id));
    let k = staged.into_iter().next()?;
    kasm.assign_staged_session(&k.kasm_id);
    Some(k.kasm_id)
}

/// Kasm's staging service, simulated: for every staging config of the trace's configs, staged sessions
/// of its image up to `num_sessions`, each placed as a request is ([`place`]). Returns how many
/// it made.
fn stage_sessions(kasm: &MemoryKasm, configs: &ConfigSet, next_session: &mut u64, strategy: LoadStrategy) -> u32 {
    let mut made = 0;
    for st in &configs.staging_configs {
        let id = st.id();
        let current = kasm
            .sessions()
            .iter()
            .filter(|k| k.is_standby && k.staging_config_id.as_deref() == Some(id.as_str()))
            .count() as u32;
        for _ in current..st.num_sessions {
            let Some(server_id) = place(kasm, configs, &st.autoscale_config, st.image_size(), strategy) else { break };
            *next_session += 1;
            kasm.start_staged_session(&format!("staged{next_session}"), &server_id, &id, st.image_size());
            made += 1;
        }
    }
    made
}

/// Demand (running and waiting), the waiting part of it, and capacity: cores for docker agents,
/// session slots for server pools.
fn demand_capacity(kasm: &MemoryKasm, configs: &ConfigSet, waiting: &VecDeque<Waiting>) -> (f64, f64, f64) {
    let servers = kasm.servers();
    let kind_of = |pool: Option<&str>, zone: &str| {
        configs
            .autoscale_configs
            .iter()
            .find(|a| a.zone_id == zone && Some(a.server_pool_id.as_str()) == pool)
            .map(|a| a.autoscale_type)
    };
    let mut demand = 0.0;
    let mut capacity = 0.0;
    for s in &servers {
        match kind_of(s.server_pool_id.as_deref(), &s.zone_id) {
            Some(AutoscaleType::Server) => {
                demand += kasm.sessions().iter().filter(|k| k.server_id == s.server_id).count() as f64;
                if usable(s) {
                    capacity += s.max_sessions.unwrap_or(1) as f64;
                }
            }
            _ => {
                demand += s.allocated.cores;
                if usable(s) {
                    capacity += capacity_of(s).cores;
                }
            }
        }
    }
    let mut waiting_demand = 0.0;
    for w in waiting {
        waiting_demand += match configs.autoscale(&w.config).map(|a| a.autoscale_type) {
            Some(AutoscaleType::Server) => 1.0,
            _ => w.res.cores,
        };
    }
    (demand + waiting_demand, waiting_demand, capacity)
}

/// VMs a perfect-foresight autoscaler would run now: per config ⌈cores in use (running and waiting
/// sessions) ÷ cores per VM⌉, server pools ⌈sessions ÷ sessions per server⌉.
fn oracle_vms(kasm: &MemoryKasm, configs: &ConfigSet, waiting: &VecDeque<Waiting>) -> u32 {
    let servers = kasm.servers();
    let sessions = kasm.sessions();
    let mut n = 0u32;
    for a in &configs.autoscale_configs {
        let mine = |s: &&KasmServer| s.zone_id == a.zone_id && s.server_pool_id.as_deref() == Some(&a.server_pool_id);
        let waiting_here = waiting.iter().filter(|w| w.config == a.autoscale_config_name);
        let vms = match a.autoscale_type {
            AutoscaleType::Server => {
                let ids: std::collections::HashSet<&str> =
                    servers.iter().filter(mine).map(|s| s.server_id.as_str()).collect();
                let used = sessions.iter().filter(|k| k.is_placed() && ids.contains(k.server_id.as_str())).count()
                    + waiting_here.count();
                let per = a.max_simultaneous_sessions_per_server.max(1) as usize;
                used.div_ceil(per)
            }
            AutoscaleType::DockerAgent => {
                let used: f64 = servers.iter().filter(mine).map(|s| s.allocated.cores).sum::<f64>()
                    + waiting_here.map(|w| w.res.cores).sum::<f64>();
                let per = vm_size(configs, &a.autoscale_config_name).cores;
                if per > 0.0 { (used / per - 1e-9).ceil().max(0.0) as usize } else { 0 }
            }
        };
        n = n.saturating_add(vms.min(u32::MAX as usize) as u32);
    }
    n
}

/// Resolves every secret reference to a fixed, obviously fake value (the simulator has no secrets).
#[derive(Debug)]
struct SimSecrets;

#[async_trait::async_trait]
impl crate::secrets::Secrets for SimSecrets {
    async fn resolve(
        &self,
        _: &crate::config::SecretRef,
    ) -> Result<secrecy::SecretString, crate::secrets::SecretError> {
        Ok(secrecy::SecretString::from("simulated-secret".to_string()))
    }
}

/// Claim ids (26-character ULIDs) in printed text, replaced by `#1`, `#2`, ... in the order they first
/// appear: a simulation's ids are random, numbers are readable and repeat from run to run.
#[derive(Debug, Default)]
struct ShortIds(HashMap<String, usize>);

impl ShortIds {
    fn apply(&mut self, text: &str) -> String {
        let is_id = |w: &str| w.len() == 26 && w.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String, map: &mut HashMap<String, usize>| {
            if is_id(word) {
                let n = map.len() + 1;
                let n = *map.entry(std::mem::take(word)).or_insert(n);
                out.push_str(&format!("#{n}"));
            } else {
                out.push_str(word);
                word.clear();
            }
        };
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                word.push(c);
            } else {
                flush(&mut word, &mut out, &mut self.0);
                out.push(c);
            }
        }
        flush(&mut word, &mut out, &mut self.0);
        out
    }
}

/// The printed report: timeline (one short line per event; with `verbose` each decision's actions and
/// reasons beneath it) and summary. Times are the simulated wall clock in UTC, with seconds when the
/// trace steps in less than a minute; a new day gets a line of its own; claims are numbered (`#1`).
pub fn render_text(r: &Report, verbose: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut ids = ShortIds::default();
    let _ = writeln!(s, "simulation: {}", r.summary.name);
    let _ = writeln!(s, "timeline (UTC, from {}):", r.start.format("%a %Y-%m-%d %H:%M"));
    let (time_format, time_width) = if r.step_seconds.is_multiple_of(60) { ("%H:%M", 5) } else { ("%H:%M:%S", 8) };
    let mut day = r.start.date_naive();
    // Generated arrivals of the current hour, per config (summed unless verbose).
    let mut hour: Option<DateTime<Utc>> = None;
    let mut arrived: BTreeMap<&str, u32> = BTreeMap::new();
    let flush = |s: &mut String, hour: Option<DateTime<Utc>>, arrived: &mut BTreeMap<&str, u32>| {
        let Some(h) = hour else { return };
        for (config, n) in std::mem::take(arrived) {
            let span = format!("{}–{}", h.format("%H:%M"), (h + Duration::hours(1)).format("%H:%M"));
            let _ = writeln!(s, "  {span:w$}  {} for {config} (generated, this hour)", arrive(n), w = time_width);
        }
    };
    for e in &r.events {
        let at = r.start + Duration::milliseconds((e.minute * 60_000.0).round() as i64);
        let this_hour = at.date_naive().and_hms_opt(at.hour(), 0, 0).map(|h| h.and_utc());
        if hour != this_hour {
            flush(&mut s, hour, &mut arrived);
            hour = this_hour;
        }
        if at.date_naive() != day {
            day = at.date_naive();
            let _ = writeln!(s, "  {}", at.format("%a %Y-%m-%d"));
        }
        if let (Some((config, n)), false) = (&e.generated, verbose) {
            *arrived.entry(config.as_str()).or_default() += n;
            continue;
        }
        let _ = writeln!(s, "  {}  {}", at.format(time_format), ids.apply(&e.line));
        if verbose {
            for d in &e.details {
                let _ = writeln!(s, "  {:width$}    {}", "", ids.apply(d), width = time_width);
            }
        }
    }
    flush(&mut s, hour, &mut arrived);
    let x = &r.summary;
    let _ = writeln!(s, "summary:");
    if x.score_from_day > 0 {
        let _ = writeln!(s, "  scored from day         {} (earlier days are warm-up)", x.score_from_day);
    }
    if x.load_strategy != LoadStrategy::RecordOrder {
        let _ = writeln!(s, "  sessions placed by      {} (the zone's load_strategy)", x.load_strategy.as_str());
    }
    let _ = writeln!(s, "  peak VMs                {}", x.peak_vms);
    let _ = writeln!(s, "  VM-hours                {:.2} (booting {:.2})", x.vm_hours, x.booting_vm_hours);
    let _ = writeln!(
        s,
        "  oracle VM-hours         {:.2} (perfect foresight; used / oracle {:.2})",
        x.oracle_vm_hours, x.vm_hours_over_oracle
    );
    let _ = writeln!(s, "  estimated cost          {}", x.cost_text());
    let _ = writeln!(s, "  sessions                {}", x.sessions_total);
    let _ = writeln!(s, "  sessions that waited    {} (unserved at end: {})", x.sessions_waited, x.sessions_unserved);
    let _ = writeln!(s, "  waited / p95 wait       {:.1} % / {} s", x.sessions_waited_percent, x.p95_wait_seconds);
    let _ = writeln!(s, "  longest wait            {} s", x.max_wait_seconds);
    let _ = writeln!(s, "  VMs created / destroyed {} / {}", x.vms_created, x.vms_destroyed);
    let _ = writeln!(s, "  provider errors         {}", x.provider_errors);
    if x.vms_rotated > 0 {
        let _ = writeln!(s, "  VMs rotated out         {}", x.vms_rotated);
    }
    if x.sessions_staged > 0 || x.sessions_from_staging > 0 {
        let _ = writeln!(
            s,
            "  staged sessions         {} made, {} taken by requests",
            x.sessions_staged, x.sessions_from_staging
        );
    }
    if x.sessions_queued > 0 {
        let _ = writeln!(s, "  requests queued in Kasm {}", x.sessions_queued);
    }
    let _ = writeln!(s, "  evaluations             {}", x.decisions);
    let _ = writeln!(s, "  max_instances exceeded  {}", x.max_instances_exceeded);
    s
}

/// The per-step samples as CSV (`simulate` writes it beside the chart, `DIR/samples.csv`), one row per
/// step, to look at a run in a spreadsheet or a script: `time` (UTC, RFC 3339), `minute` (since the
/// start), `scored` (1 for the steps the summary's VM-hours and oracle count), `vms` (at the provider),
/// `oracle_vms`, `demand`, `waiting_demand`, `standby`, `capacity` (cores for Docker Agents, session
/// slots for server pools, summed over the configs), `waiting` (sessions) and `forecast` (empty when no
/// config forecasts). Σ `vms` over the scored rows × `step_seconds` ÷ 3600 is the summary's `vm_hours`.
pub fn samples_csv(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(64 * (r.samples.len() + 1));
    s.push_str("time,minute,scored,vms,oracle_vms,demand,waiting_demand,standby,capacity,waiting,forecast\n");
    for x in &r.samples {
        let at = r.start + Duration::milliseconds((x.minute * 60_000.0).round() as i64);
        let forecast = x.forecast.map(|f| f.to_string()).unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{forecast}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            x.minute,
            u8::from(x.scored),
            x.vms,
            x.oracle_vms,
            x.demand,
            x.waiting_demand,
            x.standby,
            x.capacity,
            x.waiting,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn minute_of(r: &Report, needle: &str) -> Vec<(f64, String)> {
        r.events.iter().filter(|e| e.text.contains(needle)).map(|e| (e.minute, e.text.clone())).collect()
    }

    /// The printed timeline: one short line per event, claims numbered, seconds for sub-minute steps,
    /// a line for each new day; the details only with `verbose`.
    #[tokio::test]
    async fn the_timeline_is_one_short_line_per_event() {
        let sim = |name: &str| {
            let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations").join(name);
            load(&trace).expect("the shipped trace loads")
        };
        let is_id = |w: &str| w.len() == 26 && w.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
        for name in ["morning-rush.json", "scheduled-prewarm.json", "server-rotation.json"] {
            let r = run(&sim(name)).await;
            let text = render_text(&r, false);
            let timeline: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.starts_with("timeline"))
                .skip(1)
                .take_while(|l| *l != "summary:")
                .collect();
            // One line per event (and one per new day, which has no time).
            assert_eq!(timeline.iter().filter(|l| l.contains(':')).count(), r.events.len(), "{text}");
            for l in &timeline {
                assert!(l.chars().count() <= 120, "{name}: a long line: {l}");
                assert!(!l.split(|c: char| !c.is_ascii_alphanumeric()).any(is_id), "{name}: a full claim id: {l}");
                assert!(!l.contains("why:"), "{name}: details without --verbose: {l}");
            }
            let verbose = render_text(&r, true);
            assert!(verbose.contains("why:  ") && verbose.contains("does: "), "{name}: {verbose}");
            assert!(verbose.lines().count() > text.lines().count(), "{name}");
        }
        // morning-rush steps every 15 s: seconds shown; the 07:00 decision says why in a few words.
        let text = render_text(&run(&sim("morning-rush.json")).await, false);
        assert!(text.contains("  07:00:00  office-agents: +2 agents — free cores 0 < standby 16\n"), "{text}");
        assert!(text.contains("drain 15 — scale-down condition held since"), "{text}");
        // scheduled-prewarm: the floor of 4 drove the first plan, not standby's +1; claims are numbered;
        // the schedule reads as written.
        let text = render_text(&run(&sim("scheduled-prewarm.json")).await, false);
        assert!(text.contains("classroom: +4 agents — minimum_instances 4 from the schedule"), "{text}");
        assert!(text.contains("claim #1: ") && text.contains("claim #3: "), "{text}");
        assert!(text.contains("Mon–Fri 08:00–17:00 Europe/Berlin"), "{text}");
        // server-rotation steps every minute: HH:MM; the second day starts with its date.
        let text = render_text(&run(&sim("server-rotation.json")).await, false);
        assert!(text.contains("\n  Tue 2026-01-06\n"), "{text}");
        assert!(text.contains("  06:00  rotating-agents: +1 agent — free cores 0 < standby 4\n"), "{text}");
        assert!(text.contains("(1 for rotation) — rotation") && text.contains("drain 1 (rotated out)"), "{text}");
    }

    /// The shipped staging trace: the agents are there for the staged sessions (no standby), requests
    /// for the staged image take one at once, and the requests Kasm queues get VMs (aggressive
    /// scaling) within a boot; without aggressive scaling nothing is provisioned for them.
    #[tokio::test]
    async fn the_shipped_staging_trace_stages_and_serves_queued_requests() {
        let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations/staging-and-queue.json");
        let lt = load(&trace).expect("the shipped trace loads");
        let r = run(&lt).await;
        let text = render_text(&r, true);
        let s = &r.summary;
        assert!(!s.max_instances_exceeded, "{text}");
        assert_eq!(s.sessions_total, 17);
        assert_eq!(s.sessions_from_staging, 7, "every request for the staged image found one ready: {text}");
        assert!(s.sessions_staged >= 11, "{text}");
        assert!(s.sessions_queued >= 8, "{text}");
        assert_eq!(s.sessions_unserved, 0, "{text}");
        assert!(s.max_wait_seconds <= 360, "a queued request waits about one boot: {text}");
        // The first VM is created at once for what staging needs, with no standby.
        let first = minute_of(&r, "staging config 6a7b8c9d0e1f4a2b8c3d4e5f6a7b8c9d");
        assert!(first.first().is_some_and(|(m, t)| *m == 0.0 && t.contains(": +1 VM — ")), "{first:?}");
        assert!(text.contains("demand (aggressive_scaling)"), "{text}");

        // aggressive_scaling off: nothing is provisioned for the queued requests; they wait for room
        // that frees up or that staging keeps (and take it, so staging asks for more): much longer.
        let mut lt = lt;
        lt.configs.autoscale_configs[0].aggressive_scaling = false;
        let calm = run(&lt).await;
        let calm_text = render_text(&calm, true);
        assert!(calm_text.contains("aggressive_scaling off: they wait"), "{calm_text}");
        assert!(!calm_text.contains("demand (aggressive_scaling)"), "{calm_text}");
        assert!(calm.summary.max_wait_seconds > 3 * s.max_wait_seconds, "{calm_text}\n{text}");
    }

    /// The shipped rotation trace: every agent is replaced after a day, a replacement is claimed an
    /// hour ahead, the old agent is drained once the replacement serves and removed once its sessions
    /// ended — and nobody ever waits for capacity.
    #[tokio::test]
    async fn the_shipped_rotation_trace_replaces_drains_and_removes() {
        let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations/server-rotation.json");
        let lt = load(&trace).expect("the shipped trace loads");
        let r = run(&lt).await;
        let text = render_text(&r, true);
        let s = &r.summary;
        assert!(!s.max_instances_exceeded, "{text}");
        assert_eq!((s.sessions_total, s.sessions_waited, s.sessions_unserved), (8, 0, 0), "{text}");
        // The two agents of day one (standby, then the long session) are rotated on day two; one
        // replacement then goes as excess (the long session stayed on its drained agent), the other
        // is rotated on day three.
        assert_eq!(s.vms_rotated, 3, "{text}");
        assert!(s.peak_vms <= 4, "never more than two agents and their replacements: {text}");

        let claimed = minute_of(&r, "for rotation");
        let drained = minute_of(&r, "(rotated out, replaced by");
        let removed = minute_of(&r, "rotation: rotated-out VM");
        assert_eq!((claimed.len(), drained.len(), removed.len()), (3, 3, 3), "{text}");
        // The first replacement is claimed an hour before the first agent (made at minute 0, up a
        // few minutes later) turns one day old, and that agent is drained at one day.
        assert!((1380.0..1400.0).contains(&claimed[0].0), "{claimed:?}");
        assert!((1440.0..1460.0).contains(&drained[0].0), "{drained:?}");
        // Each removal follows its drain; the agent holding the 26-hour session (until minute ~1630)
        // waits for it to end.
        let claim_of = |t: &str| t.split_whitespace().find(|w| w.len() == 26).map(str::to_string);
        let mut waited_for_session = false;
        for (at, text) in &removed {
            let id = claim_of(text).expect("a claim id");
            let (drained_at, _) = drained
                .iter()
                .find(|(_, d)| d.contains(&format!("drain {id} (rotated out")))
                .unwrap_or_else(|| panic!("{id} removed without a rotation drain"));
            assert!(at >= drained_at, "{id}");
            if *at >= 1625.0 && *drained_at < 1500.0 {
                waited_for_session = true;
            }
        }
        assert!(waited_for_session, "no rotated agent waited for its session: {removed:?} {drained:?}");
        assert!(text.contains("VMs rotated out         3"), "{text}");
    }

    /// Where a session lands follows the zone's `load_strategy` as Kasm orders records: by the slots
    /// of the session's size left on each (`least_load` most first, `most_load` fewest first), by
    /// sessions (`most_kasms` / `least_kasms`), equals in record order; a record without room for
    /// the session is never chosen; the Helm chart's names read as the same orders; an unknown
    /// strategy is refused naming the field.
    #[test]
    fn sessions_go_where_the_zone_s_load_strategy_puts_them() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations");
        let trace = |extra: &str| {
            format!(
                r#"{{"name":"t","duration_minutes":60,"step_seconds":60,"config":"configs/morning-rush.yaml",
                   "provider":{{"boot_seconds":240}},"sessions":[]{extra}}}"#
            )
        };
        let lt = parse(&trace(""), "t.json", &base).expect("trace");
        assert_eq!(lt.trace.load_strategy, LoadStrategy::RecordOrder);
        let configs = lt.configs;
        let kasm = MemoryKasm::new();
        let now = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        // Four agents of 8 cores: a with one session of 2 cores, b with three, c and d empty.
        for id in ["a", "b", "c", "d"] {
            kasm.upsert_server(KasmServer {
                server_id: id.into(),
                kind: ServerKind::Agent,
                hostname: Some(id.into()),
                friendly_name: None,
                public_ip: None,
                zone_id: "us-east-1".into(),
                server_pool_id: Some("office-pool".into()),
                autoscale_config_id: None,
                enabled: true,
                operational_status: "running".into(),
                last_reported: Some(now),
                reported: Resources::new(8.0, 32768.0, 0.0),
                overridden: Resources::default(),
                allocated: Resources::default(),
                max_sessions: None,
                agent_installed: false,
            });
        }
        let two = Resources::new(2.0, 2768.0, 0.0);
        for (k, server) in ["a", "b", "b", "b"].iter().enumerate() {
            assert!(kasm.start_session(&format!("k{k}"), server, two));
        }
        let at = |res: Resources, st: LoadStrategy| place(&kasm, &configs, "office-agents", res, st);
        let four = Resources::new(4.0, 2768.0, 0.0);
        for (st, for_two, for_four) in [
            (LoadStrategy::RecordOrder, "a", "a"),
            (LoadStrategy::LeastLoad, "c", "c"),
            (LoadStrategy::MostLoad, "b", "a"),
            (LoadStrategy::MostKasms, "b", "a"),
            (LoadStrategy::LeastKasms, "c", "c"),
        ] {
            assert_eq!(at(two, st).as_deref(), Some(for_two), "{st:?}, 2 cores");
            // b has 2 cores left: no room for 4 whatever the order.
            assert_eq!(at(four, st).as_deref(), Some(for_four), "{st:?}, 4 cores");
        }
        assert_eq!(at(Resources::new(9.0, 1.0, 0.0), LoadStrategy::LeastLoad), None, "nothing has 9 cores");
        for (name, st) in [
            ("least_load", LoadStrategy::LeastLoad),
            ("most_load", LoadStrategy::MostLoad),
            ("most_kasms", LoadStrategy::MostKasms),
            ("least_kasms", LoadStrategy::LeastKasms),
            ("most_sessions", LoadStrategy::MostKasms),
            ("fewest_sessions", LoadStrategy::LeastKasms),
            ("record_order", LoadStrategy::RecordOrder),
        ] {
            let lt = parse(&trace(&format!(r#","load_strategy":"{name}""#)), "t.json", &base).expect(name);
            assert_eq!(lt.trace.load_strategy, st, "{name}");
        }
        match parse(&trace(r#","load_strategy":"round_robin""#), "t.json", &base) {
            Err(TraceError::Invalid { field, message, .. }) => {
                assert_eq!(field, "load_strategy");
                assert!(message.contains("round_robin") && message.contains("least_load"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The trace's `load_strategy` is what the run places by: two days of the office trace, reactive,
    /// use more VM-hours when Kasm spreads sessions (`least_load`: agents rarely empty) than when it
    /// packs them (`most_load`) or takes the first record with room.
    #[tokio::test]
    async fn spreading_sessions_keeps_more_agents_than_packing_them() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations/office-weeks.json");
        let two_days = |st: LoadStrategy| {
            let mut lt = load(&path).expect("the shipped trace loads");
            lt.trace.duration_minutes = 2 * 1440;
            lt.trace.score_from_day = 0;
            lt.trace.load_strategy = st;
            for a in &mut lt.configs.autoscale_configs {
                a.predictive_scaling = crate::config::PredictiveScaling::Off;
            }
            async move { run(&lt).await }
        };
        let (first, spread, pack) = (
            two_days(LoadStrategy::RecordOrder).await,
            two_days(LoadStrategy::LeastLoad).await,
            two_days(LoadStrategy::MostLoad).await,
        );
        let (f, s, p) = (&first.summary, &spread.summary, &pack.summary);
        assert_eq!((f.sessions_total, s.sessions_total), (p.sessions_total, p.sessions_total));
        assert!(s.vm_hours > f.vm_hours + 5.0, "{s:?} vs {f:?}");
        assert!(s.vm_hours > p.vm_hours + 5.0, "{s:?} vs {p:?}");
        // The report says how sessions were placed (the text only when it is not the default).
        assert_eq!(serde_json::to_value(s).unwrap()["load_strategy"], "least_load");
        assert_eq!(serde_json::to_value(f).unwrap()["load_strategy"], "record_order");
        let text = render_text(&spread, false);
        assert!(text.contains("  sessions placed by      least_load (the zone's load_strategy)\n"), "{text}");
        assert!(!render_text(&first, false).contains("sessions placed by"));
    }
}

#[cfg(test)]
mod forecast_tests {
    use super::*;
    use std::path::Path;

    fn base() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations")
    }

    /// A daily rush at 08:30 (30 sessions of 2 cores at once) on `days` days, 2-minute steps.
    fn rush(days: u32, score_from_day: u32, mode: &str) -> LoadedTrace {
        let text = format!(
            r#"{{"name":"rush","duration_minutes":{},"step_seconds":120,"config":"configs/morning-rush.yaml",
               "score_from_day":{score_from_day},"provider":{{"boot_seconds":240}},
               "repeat":{{"every_minutes":1440,"times":{days}}},
               "sessions":[{{"at_minute":510,"count":30,"cores":2,"memory_mb":2768,"duration_minutes":240,"autoscale_config":"office-agents"}}]}}"#,
            days * 1440
        );
        let mut lt = parse(&text, "t.json", &base()).expect("trace");
        for a in &mut lt.configs.autoscale_configs {
            a.predictive_scaling = serde_json::from_value(serde_json::json!(mode)).unwrap();
        }
        lt
    }

    #[test]
    fn sim_repeat_and_generated_arrivals_are_seeded_and_bounded() {
        let text = r#"{"name":"t","duration_minutes":4320,"step_seconds":60,"config":"configs/morning-rush.yaml","seed":3,
            "repeat":{"every_minutes":1440,"times":3,"skip":[1]},
            "sessions":[{"at_minute":60,"count":5,"cores":1,"memory_mb":512,"duration_minutes":5,"autoscale_config":"office-agents"}],
            "arrivals":[{"autoscale_config":"office-agents","cores":1,"memory_mb":512,
               "duration":{"distribution":"exponential","mean_minutes":30,"min_minutes":5,"max_minutes":60},
               "skip_days":[2],
               "rates":[{"days":[1,2,3],"from_minute":600,"to_minute":660,"per_hour":120}]}]}"#;
        let lt = parse(text, "t.json", &base()).expect("trace");
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        let a = trace::expand(&lt.trace, start);
        assert_eq!(a, trace::expand(&lt.trace, start), "seeded: the same sessions every run");
        let repeated: Vec<u32> = a.iter().filter(|b| b.count == 5).map(|b| b.at_minute).collect();
        assert_eq!(repeated, [60, 2940], "the second day is skipped");
        let generated: Vec<&trace::SessionBurst> = a.iter().filter(|b| b.count == 1).collect();
        // About 120 an hour on Monday and Tuesday, none on the skipped Wednesday.
        assert!((180..=300).contains(&generated.len()), "{}", generated.len());
        assert!(generated.iter().all(|b| b.at_minute < 2880 && (5..=60).contains(&b.duration_minutes)));
        assert!(a.windows(2).all(|w| w[0].at_minute <= w[1].at_minute));
        // Expected arrivals over the limit are refused before anything is drawn, naming the field.
        let huge = text.replace("\"per_hour\":120", "\"per_hour\":1e9");
        match parse(&huge, "t.json", &base()) {
            Err(TraceError::Invalid { field, message, .. }) => {
                assert_eq!(field, "arrivals");
                assert!(message.contains("limit is 100000"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let times = text.replace("\"times\":3", "\"times\":100000");
        assert!(
            matches!(parse(&times, "t.json", &base()), Err(TraceError::Invalid { field, .. }) if field == "sessions")
        );
    }

    #[tokio::test]
    async fn sim_scores_from_a_day_and_reports_the_oracle() {
        let all = run(&rush(2, 0, "off")).await.summary;
        let second = run(&rush(2, 1, "off")).await.summary;
        assert_eq!((all.sessions_total, second.sessions_total), (60, 30));
        assert!(second.vm_hours < all.vm_hours && second.oracle_vm_hours < all.oracle_vm_hours);
        // 60 cores for 4 h on agents of 8 cores: ⌈60 / 8⌉ = 8 VMs for 4 h a day.
        // (Waiting sessions count as in use: they are demand.)
        assert!((32.0..=35.0).contains(&second.oracle_vm_hours), "{second:?}");
        assert!(second.vm_hours >= second.oracle_vm_hours);
        assert_eq!(second.vm_hours_over_oracle, ((second.vm_hours / second.oracle_vm_hours) * 100.0).round() / 100.0);
        assert_eq!(second.sessions_waited_percent, (f64::from(second.sessions_waited) / 30.0 * 1000.0).round() / 10.0);
        assert!(second.p95_wait_seconds <= second.max_wait_seconds && second.p95_wait_seconds > 0);
    }

    /// `samples.csv`: one row per step whose scored rows add up to the summary's VM-hours and oracle,
    /// with the forecast where a config forecasts and empty where none does.
    #[tokio::test]
    async fn the_samples_csv_adds_up_to_the_summary() {
        // Predictive: a week of warm-up, then the forecast at the rush.
        for (mode, days) in [("off", 2), ("on", 8)] {
            let r = run(&rush(days, days - 1, mode)).await;
            let csv = samples_csv(&r);
            let mut lines = csv.lines();
            assert_eq!(
                lines.next(),
                Some("time,minute,scored,vms,oracle_vms,demand,waiting_demand,standby,capacity,waiting,forecast")
            );
            let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
            assert_eq!(rows.len(), r.samples.len(), "{mode}");
            assert!(rows.iter().all(|c| c.len() == 11), "{mode}");
            assert_eq!(rows[0][0], "2026-01-05T00:00:00Z", "{mode}");
            assert_eq!((rows[1][0], rows[1][1]), ("2026-01-05T00:02:00Z", "2"), "{mode}");
            let hours = |col: usize| {
                rows.iter().filter(|c| c[2] == "1").map(|c| c[col].parse::<f64>().unwrap()).sum::<f64>() * 120.0
                    / 3600.0
            };
            // The summary rounds to 3 decimals.
            assert!((hours(3) - r.summary.vm_hours).abs() <= 5e-4, "{mode}: {} vs {}", hours(3), r.summary.vm_hours);
            assert!((hours(4) - r.summary.oracle_vm_hours).abs() <= 5e-4, "{mode}");
            // Day 0 is warm-up; the closing sample is not a step.
            let warm_up = (days as usize - 1) * 720;
            assert!(rows[..warm_up].iter().all(|c| c[2] == "0") && rows[warm_up][2] == "1", "{mode}");
            assert!(rows.last().unwrap()[2] == "0", "{mode}");
            let peak_demand = rows.iter().map(|c| c[5].parse::<f64>().unwrap()).fold(0.0, f64::max);
            assert_eq!(peak_demand, 60.0, "{mode}: 30 sessions of 2 cores");
            for (c, x) in rows.iter().zip(&r.samples) {
                assert_eq!(c[10].parse::<f64>().ok(), x.forecast, "{mode}");
            }
            // 08:26 on the last day: the rush at 08:30 forecast (60 cores); reactive forecasts nothing.
            let before_rush = &rows[warm_up + 253];
            assert_eq!(before_rush[0], format!("2026-01-{:02}T08:26:00Z", 4 + days), "{mode}");
            match mode {
                "off" => assert!(rows.iter().all(|c| c[10].is_empty()), "reactive: no forecast"),
                _ => assert_eq!(before_rush[10], "60", "{mode}"),
            }
        }
    }

    /// Generated arrivals (about two a minute here) are summed per hour and config in the timeline;
    /// `--verbose` lists each.
    #[tokio::test]
    async fn generated_arrivals_are_summed_per_hour_unless_verbose() {
        let text = r#"{"name":"t","duration_minutes":240,"step_seconds":60,"config":"configs/morning-rush.yaml","seed":3,
            "arrivals":[{"autoscale_config":"office-agents","cores":1,"memory_mb":512,
               "duration":{"distribution":"fixed","minutes":20},
               "rates":[{"days":[1],"from_minute":60,"to_minute":180,"per_hour":120}]}]}"#;
        let r = run(&parse(text, "t.json", &base()).expect("trace")).await;
        let each = r.events.iter().filter(|e| e.generated.is_some()).count();
        assert!(each > 60, "{each} generated arrival events");
        let (short, verbose) = (render_text(&r, false), render_text(&r, true));
        let summed: Vec<&str> = short.lines().filter(|l| l.contains("(generated, this hour)")).collect();
        assert_eq!(summed.len(), 2, "one line for 01:00–02:00 and one for 02:00–03:00:\n{short}");
        assert!(summed[0].trim_start().starts_with("01:00–02:00"), "{}", summed[0]);
        let total: u32 = summed.iter().map(|l| l.split_whitespace().nth(1).unwrap().parse::<u32>().unwrap()).sum();
        assert_eq!(total, r.events.iter().filter_map(|e| e.generated.as_ref()).map(|g| g.1).sum::<u32>());
        assert!(verbose.lines().filter(|l| l.contains("arrive") && l.contains("for office-agents")).count() >= each);
        assert!(!verbose.contains("(generated, this hour)"));
    }

    /// Every run of a trace is the same run: summary and the verbose timeline, claim ids included.
    #[tokio::test]
    async fn a_trace_runs_the_same_every_time_ids_included() {
        // Kasm lists servers by id and sessions land on the first that fits: ids from the OS's
        // randomness made two runs of one trace place, drain and score differently.
        let (a, b) = (run(&rush(9, 7, "on")).await, run(&rush(9, 7, "on")).await);
        assert_eq!(serde_json::to_string(&a.summary).unwrap(), serde_json::to_string(&b.summary).unwrap());
        let texts = |r: &Report| r.events.iter().map(|e| e.text.clone()).collect::<Vec<_>>().join("\n");
        let (ta, tb) = (texts(&a), texts(&b));
        assert!(ta.lines().count() > 20, "{ta}");
        assert_eq!(ta, tb, "the events (with their full claim ids) differ between two runs");
    }

    /// Two weeks of the same rush: from the second week the forecast pre-warms it, and fewer wait
    /// than reactively; the chart draws the forecast.
    #[tokio::test]
    async fn sim_predictive_prewarms_a_daily_rush_after_a_week() {
        let reactive = run(&rush(14, 7, "off")).await;
        let predictive = run(&rush(14, 7, "on")).await;
        let (r, p) = (&reactive.summary, &predictive.summary);
        assert!(!p.max_instances_exceeded);
        assert!(r.sessions_waited_percent > 50.0, "{r:?}");
        assert!(p.sessions_waited_percent <= 2.0, "{p:?}");
        assert!(predictive.events.iter().any(|e| e.text.contains("ahead of a")), "no pre-warming logged");
        // A pre-warming decision gets a short line too, naming the forecast that drove it.
        let text = render_text(&predictive, false);
        assert!(
            text.lines().any(|l| l.contains("office-agents: +") && l.contains(" + forecast ") && l.len() <= 100),
            "{text}"
        );
        assert!(predictive.samples.iter().any(|s| s.forecast.is_some()));
        assert!(reactive.samples.iter().all(|s| s.forecast.is_none()));
        assert!(chart::svg(&predictive).contains("forecast (one boot ahead)"));
    }
}
