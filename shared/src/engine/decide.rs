//! `decide`: the scaling rule. Every rule is stated in the engine's module docs; this file implements
//! them in the order they are listed there.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::forecast::{self, ForecastSummary, NoForecast};
use super::schedule;
use super::{Action, Input, Plan, StagingDemand, Summary};
use crate::config::{AutoscaleType, PredictiveScaling};
use crate::kasm::{IdKey, KasmServer, KasmSession, ServerKind, same_id};
use crate::model::{ClaimId, Dim, Instance, InstanceState, Resources};

/// Tolerance for comparing fractional resources (core overrides may be fractional).
const EPS: f64 = 1e-9;

const DIMS: [Dim; 3] = [Dim::Cores, Dim::MemoryMb, Dim::Gpus];

/// Decides what to do for one autoscale config at `now`. Pure: the same input and `now` give the
/// same plan, whatever order the claims, records and sessions come in.
pub fn decide(input: &Input, now: DateTime<Utc>) -> Plan {
    Eval::new(input, now).run()
}

/// Decides for many configs (one call per config; no shared state).
pub fn decide_all(inputs: &[Input], now: DateTime<Utc>) -> Vec<Plan> {
    inputs.iter().map(|i| decide(i, now)).collect()
}

/// How a claim's VM counts toward free capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// Through its healthy, enabled Kasm record.
    Record,
    /// As a VM on its way up, with the per-VM size.
    Pending,
    /// Not at all (draining, deleting, failed, dead, about to be destroyed, disabled...).
    No,
}

/// One claim as the engine sees it.
#[derive(Debug)]
struct Claim<'a> {
    inst: &'a Instance,
    /// Index into `Input::servers` of its Kasm record.
    rec: Option<usize>,
    /// Live sessions on its record (by the record's id and by the claim's own server id).
    sessions: u32,
    counts: Counts,
    /// What the record adds to free capacity when it counts (docker: capacity − allocated).
    contrib: Resources,
    /// Server pools: sessions it can still take.
    contrib_sessions: u32,
    destroy: Option<String>,
    /// A destroy withheld because the VM has sessions, and why it was due.
    held: Option<String>,
    activate: Option<bool>,
    /// Rotation: a running VM of ours past its pre-warm age (its replacement is due).
    due: bool,
    /// Rotation: past its rotation age (drained once its replacement serves).
    expired: bool,
    /// Rotation: index into `claims` of its live replacement.
    replacement: Option<usize>,
    /// Rotation: due with a live replacement; its capacity no longer counts (the replacement's does).
    retiring: bool,
    /// Rotation: the live replacement of a retiring VM (no scale-down candidate while that retires).
    protected: bool,
    /// Single-use server (`reusable: false`) with a session: it takes no other (drained now, deleted
    /// once its sessions end) and its capacity no longer counts.
    spent: bool,
    /// Docker agents: what sessions on its record (or its own server id) hold or will hold: those that
    /// allocate and those queued on it. A pending VM adds its size less this.
    pending_use: Resources,
}

struct Eval<'a> {
    input: &'a Input,
    now: DateTime<Utc>,
    server_pool: bool,
    /// Docker agents: per dimension, what must be free (standby + staging + queued requests when
    /// aggressive); set by `demand` before any scale decision.
    target: Resources,
    /// Server pools: available sessions that must be free (minimum + staging + queued when aggressive).
    target_sessions: u64,
    /// Predictive scaling: what the forecast adds to `target` / `target_sessions` (`on`), or would
    /// add (`forecast_only`, never added), and how the decision log names it.
    forecast: Option<ForecastAdd>,
    /// Resources of session requests queued on a record (`assigned` to a VM still booting, ...), by
    /// normalised record id: not in Kasm's `allocated` yet, but the record's room is theirs.
    queued_on: HashMap<IdKey, Resources>,
    /// Resources of sessions that allocate or are queued, by normalised record id.
    used_on: HashMap<IdKey, Resources>,
    /// Sessions on a record in any status, by normalised record id (taken by `run`).
    sessions_on: HashMap<IdKey, u32>,
    claims: Vec<Claim<'a>>,
    reasons: Vec<String>,
    actions_destroy: Vec<Action>,
    actions_activate: Vec<Action>,
    actions_undrain: Vec<Action>,
    actions_drain: Vec<Action>,
}

impl<'a> Eval<'a> {
    fn new(input: &'a Input, now: DateTime<Utc>) -> Self {
        let mut queued_on: HashMap<IdKey, Resources> = HashMap::new();
        let mut used_on: HashMap<IdKey, Resources> = HashMap::new();
        let mut sessions_on: HashMap<IdKey, u32> = HashMap::with_capacity(input.servers.len());
        // Each session's record id is made a key once.
        for k in input.sessions.iter().filter(|k| !k.server_id.is_empty()) {
            let key = IdKey::of(&k.server_id);
            if k.is_placed() {
                if k.is_queued() {
                    *queued_on.entry(key.clone()).or_default() += k.resources;
                }
                if k.is_queued() || k.allocates() {
                    *used_on.entry(key.clone()).or_default() += k.resources;
                }
            }
            *sessions_on.entry(key).or_default() += 1;
        }
        Eval {
            input,
            now,
            server_pool: input.config.autoscale_type == AutoscaleType::Server,
            target: input.config.standby(),
            target_sessions: input.config.minimum_pool_standby_sessions as u64,
            forecast: None,
            queued_on,
            used_on,
            sessions_on,
            claims: Vec::with_capacity(input.instances.len()),
            reasons: Vec::new(),
            actions_destroy: Vec::new(),
            actions_activate: Vec::new(),
            actions_undrain: Vec::new(),
            actions_drain: Vec::new(),
        }
    }

    fn secs_since(&self, t: DateTime<Utc>) -> i64 {
        (self.now - t).num_seconds()
    }

    /// Checked in within `agent_missing_after` (a check-in stamped in the future counts: clock skew).
    fn checked_in_recently(&self, rec: &KasmServer) -> bool {
        rec.last_reported
            .is_some_and(|t| self.secs_since(t) <= crate::clock::secs(self.input.timers.agent_missing_after))
    }

    /// Whether a record's capacity counts. Server-pool servers without the desktop service never check
    /// in, so a server that never checked in counts while enabled; one that stopped checking in is missing.
    fn healthy(&self, rec: &KasmServer) -> bool {
        if !rec.enabled || rec.is_going() {
            return false;
        }
        if self.server_pool && rec.last_reported.is_none() {
            return true;
        }
        self.checked_in_recently(rec)
    }

    /// Capacity per dimension: for our agents (`ours`: the record matched a claim, by id or by our
    /// record name) the config's override, else Kasm's per-agent override, else reported; for agents
    /// that are not ours (static ones) their own override, else reported.
    fn capacity(&self, rec: &KasmServer, ours: bool) -> Resources {
        let ovr = if ours { self.input.config.overrides() } else { Resources::default() };
        let mut c = Resources::default();
        for d in DIMS {
            let v = if ovr.get(d) > EPS {
                ovr.get(d)
            } else if rec.overridden.get(d) > EPS {
                rec.overridden.get(d)
            } else {
                rec.reported.get(d)
            };
            c.set(d, v);
        }
        c
    }

    /// Free capacity of a record, never negative per dimension (an over-committed agent has no room,
    /// it does not take room away from the others). Session requests queued on the record count as
    /// held: Kasm starts them there once it can.
    fn free_of(&self, rec: &KasmServer, ours: bool) -> Resources {
        let cap = self.capacity(rec, ours);
        let queued = self.queued_on.get(&IdKey::of(&rec.server_id)).copied().unwrap_or_default();
        let mut f = Resources::default();
        for d in DIMS {
            f.set(d, (cap.get(d) - rec.allocated.get(d) - queued.get(d)).max(0.0));
        }
        f
    }

    fn max_sessions(&self, rec: &KasmServer) -> u32 {
        rec.max_sessions.unwrap_or(self.input.config.max_simultaneous_sessions_per_server)
    }

    fn run(mut self) -> Plan {
        let input = self.input;
        let now = self.now;
        let kind = if self.server_pool { ServerKind::Server } else { ServerKind::Agent };

        // Records of the config's kind, and sessions per record id.
        let mut records: Vec<usize> = (0..input.servers.len()).filter(|&i| input.servers[i].kind == kind).collect();
        // Id order: float sums (fractional cores) must not depend on the order Kasm lists records in.
        records.sort_by(|&a, &b| input.servers[a].server_id.cmp(&input.servers[b].server_id));
        let other_kind = input.servers.len() - records.len();
        if other_kind > 0 {
            self.reasons.push(format!("ignored {other_kind} Kasm records of the other pool type"));
        }
        // Every session on a record counts here, in any status: Kasm refuses to delete a record that
        // has any, and a VM with sessions is never destroyed.
        let sessions_by_server = std::mem::take(&mut self.sessions_on);

        // Claims in id order so matching and every later choice do not depend on input order.
        let mut insts: Vec<&Instance> = input.instances.iter().collect();
        insts.sort_by(|a, b| a.id.cmp(&b.id));
        let owner = self.match_records(&insts, &records);

        // Lifecycle and how each claim counts.
        let mut rec_of: Vec<Option<usize>> = vec![None; insts.len()];
        for (r, o) in owner.iter().enumerate() {
            if let Some(ci) = *o {
                rec_of[ci] = Some(r);
            }
        }
        for (ci, inst) in insts.iter().enumerate() {
            let claim = self.classify(inst, rec_of[ci], &sessions_by_server);
            self.claims.push(claim);
        }
        self.mark_rotation();
        let spent: Vec<usize> = (0..self.claims.len()).filter(|&i| self.claims[i].spent).collect();
        if !spent.is_empty() {
            self.reasons.push(format!(
                "{} single-use servers (reusable: false) are in use: no other session, deleted once theirs end",
                spent.len()
            ));
        }
        for i in spent {
            let n = self.claims[i].sessions;
            self.drain(
                i,
                format!("single-use server (reusable: false): {n} sessions started on it; it takes no other and is deleted once they end"),
            );
        }

        // Schedules first: an enabled config outside its schedules puts no booted VM into service.
        let sched = schedule::evaluate(&input.schedules, now);
        self.reasons.extend(sched.notes.iter().cloned());
        let active = sched.active;
        let enabled = input.config.enabled;
        let inactive = enabled && !active;
        for c in &self.claims {
            if let Some(why) = &c.held {
                self.reasons
                    .push(format!("not destroying {} although {why}: it has {} sessions", c.inst.id, c.sessions));
            }
            if let Some(reason) = &c.destroy {
                self.actions_destroy.push(Action::Destroy { claim: c.inst.id.clone(), reason: reason.clone() });
            }
            // Inactive: a VM that would be activated is drained instead (`drain_inactive`).
            if let (Some(enable), Some(r), false) = (c.activate, c.rec, inactive) {
                self.actions_activate.push(Action::Activate {
                    claim: c.inst.id.clone(),
                    server_id: input.servers[r].server_id.clone(),
                    enable,
                });
            }
        }

        // Capacity of records that count: the operator's own healthy ones and ours that count as records.
        // A retiring VM's (rotation) is kept apart: its replacement stands in for it.
        let mut free_rec = Resources::default();
        let mut avail_rec: u64 = 0;
        let mut retiring_free = Resources::default();
        let mut retiring_avail: u64 = 0;
        let mut static_n = 0u32;
        for &r in &records {
            let rec = &input.servers[r];
            match owner[r] {
                None => {
                    static_n += 1;
                    if self.healthy(rec) {
                        free_rec += self.free_of(rec, false);
                        let on = sessions_by_server.get(&IdKey::of(&rec.server_id)).copied().unwrap_or(0);
                        avail_rec += self.max_sessions(rec).saturating_sub(on) as u64;
                    }
                }
                // Ours: exactly what a removal would take away again.
                Some(ci) if self.claims[ci].counts == Counts::Record && self.claims[ci].retiring => {
                    retiring_free += self.claims[ci].contrib;
                    retiring_avail += self.claims[ci].contrib_sessions as u64;
                }
                Some(ci) if self.claims[ci].counts == Counts::Record => {
                    free_rec += self.claims[ci].contrib;
                    avail_rec += self.claims[ci].contrib_sessions as u64;
                }
                Some(_) => {}
            }
        }
        let pending: Vec<usize> =
            (0..self.claims.len()).filter(|&i| self.claims[i].counts == Counts::Pending).collect();

        // The floor: only while a schedule is active.
        let floor = if active { sched.floor } else { 0 };
        // Retiring VMs (rotation) are not counted toward the floor: their replacements are.
        let mut nondraining = self
            .claims
            .iter()
            .filter(|c| {
                c.destroy.is_none()
                    && !c.retiring
                    && !c.spent
                    && (c.inst.state.is_pending() || c.inst.state == InstanceState::Running)
            })
            .count() as u32;

        let may_scale = enabled && active;
        if !enabled {
            self.reasons.push("config disabled: no new VMs and no scale-down; lifecycle actions only".into());
        } else if !active {
            self.reasons.push("schedule inactive: no new VMs, no undrains, no floor".into());
        }

        // Scale up (and compute the summary's free capacity).
        let mut summary = Summary {
            active,
            standby: input.config.standby(),
            minimum_sessions: input.config.minimum_pool_standby_sessions,
            owned_total: input.owned_total,
            max_instances: input.max_instances,
            minimum_instances: floor,
            ..Summary::default()
        };
        let per_vm = if self.server_pool { [None; 3] } else { self.per_vm() };
        self.demand(&per_vm, &mut summary);
        self.forecast(&per_vm, &mut summary, may_scale);
        let up = if self.server_pool {
            self.scale_up_servers(may_scale, avail_rec, &pending, &mut nondraining, floor, &mut summary)
        } else {
            self.scale_up_agents(may_scale, free_rec, &pending, per_vm, &mut nondraining, floor, &mut summary)
        };
        let mut free_rec = free_rec + up.undrained;
        let mut avail_rec = avail_rec + up.undrained_sessions;
        let create = self.limit_creates(up.wanted);
        let replacements = self.claim_replacements(may_scale, create);
        if may_scale {
            self.rotate_out(free_rec, avail_rec, &mut retiring_free, &mut retiring_avail, nondraining, floor);
        }

        // Scale down. A plan that scales up (creates, undrains, or wants VMs the cap or a provider
        // backoff withholds) restarts the clock: the condition must be seen anew, then held for the
        // whole backoff (Kasm's `last_provision`).
        let scaling_up = if up.undrained_n > 0 {
            Some(format!("undraining {} VMs", up.undrained_n))
        } else if create > 0 {
            Some(format!("creating {create} VMs"))
        } else if up.wanted > 0 {
            Some(format!("scaling up ({} VMs wanted, none created now)", up.wanted))
        } else if !replacements.is_empty() {
            Some(format!("claiming {} rotation replacements", replacements.len()))
        } else {
            None
        };
        let request_downscale_at = if !enabled {
            None
        } else if !active {
            let label = schedule::describe_all(&input.schedules);
            self.drain_inactive(&label);
            None
        } else {
            self.scale_down(scaling_up, &mut free_rec, &mut avail_rec, nondraining, floor)
        };

        // Summary.
        let mut by_state: BTreeMap<String, u32> = InstanceState::ALL
            .iter()
            .filter(|s| **s != InstanceState::Deleted)
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for c in &self.claims {
            *by_state.entry(c.inst.state.as_str().to_string()).or_default() += 1;
        }
        summary.vms_by_state = by_state;
        summary.sessions = records
            .iter()
            .map(|&r| sessions_by_server.get(&IdKey::of(&input.servers[r].server_id)).copied().unwrap_or(0))
            .sum::<u32>()
            + self
                .claims
                .iter()
                .filter(|c| c.rec.is_none_or(|r| !same_id(&input.servers[r].server_id, &c.inst.kasm_server_id)))
                .map(|c| sessions_by_server.get(&IdKey::of(&c.inst.kasm_server_id)).copied().unwrap_or(0))
                .sum::<u32>();
        if static_n > 0 {
            self.reasons.push(format!("{static_n} of the pool's records are not ours: counted, never drained"));
        }

        let mut actions = Vec::with_capacity(
            self.actions_destroy.len()
                + self.actions_activate.len()
                + self.actions_undrain.len()
                + self.actions_drain.len(),
        );
        actions.append(&mut self.actions_destroy);
        actions.append(&mut self.actions_activate);
        actions.append(&mut self.actions_undrain);
        // One drain per claim (a single-use server may also be picked by a later rule).
        let mut drained = std::collections::HashSet::new();
        self.actions_drain.retain(|a| match a {
            Action::Drain { claim, .. } => drained.insert(claim.clone()),
            _ => true,
        });
        actions.append(&mut self.actions_drain);
        Plan {
            autoscale_config: input.config.autoscale_config_name.clone(),
            create: create + replacements.len() as u32,
            replacements,
            actions,
            request_downscale_at,
            reasons: self.reasons,
            summary,
        }
    }

    /// Matches Kasm records to claims: by record id (the `{server_id}` the claim rendered, or the id
    /// Kasm gave the record we created for it), then, for claims still unmatched, by `friendly_name`
    /// equal to the claim's VM name (the name we give records we create). Never by hostname or
    /// address: a guess could hand an operator's agent to a claim and drain it. A record matches at
    /// most one claim; among several matching records the smallest id wins. Returns the owning claim
    /// (index into `insts`) per index of `Input::servers`.
    fn match_records(&self, insts: &[&Instance], records: &[usize]) -> Vec<Option<usize>> {
        let servers = &self.input.servers;
        let mut owner: Vec<Option<usize>> = vec![None; servers.len()];
        let mut by_id: HashMap<IdKey, usize> = HashMap::with_capacity(records.len());
        for &r in records {
            by_id.entry(IdKey::of(&servers[r].server_id)).and_modify(|e| *e = (*e).min(r)).or_insert(r);
        }
        let mut matched = vec![false; insts.len()];
        for (ci, inst) in insts.iter().enumerate() {
            if let Some(&r) = by_id.get(&IdKey::of(&inst.kasm_server_id))
                && owner[r].is_none()
            {
                owner[r] = Some(ci);
                matched[ci] = true;
            }
        }
        for (ci, inst) in insts.iter().enumerate() {
            if matched[ci] {
                continue;
            }
            let best = records
                .iter()
                .copied()
                .filter(|&r| owner[r].is_none() && servers[r].friendly_name.as_deref() == Some(inst.vm_name.as_str()))
                .min_by(|&a, &b| servers[a].server_id.cmp(&servers[b].server_id));
            if let Some(r) = best {
                owner[r] = Some(ci);
            }
        }
        owner
    }

    /// Lifecycle of one claim: destroy (failed, provision timeout, dead agent), activate (checked in),
    /// and how it counts toward capacity.
    fn classify(&self, inst: &'a Instance, rec_i: Option<usize>, sessions: &HashMap<IdKey, u32>) -> Claim<'a> {
        let input = self.input;
        let rec = rec_i.map(|r| &input.servers[r]);
        let on = |id: &str| sessions.get(&IdKey::of(id)).copied().unwrap_or(0);
        let n_sessions = match rec {
            Some(r) if !same_id(&r.server_id, &inst.kasm_server_id) => on(&r.server_id) + on(&inst.kasm_server_id),
            Some(r) => on(&r.server_id),
            None => on(&inst.kasm_server_id),
        };
        let mut c = Claim {
            inst,
            rec: rec_i,
            sessions: n_sessions,
            counts: Counts::No,
            contrib: Resources::default(),
            contrib_sessions: 0,
            destroy: None,
            held: None,
            activate: None,
            due: false,
            expired: false,
            replacement: None,
            retiring: false,
            protected: false,
            spent: false,
            pending_use: Resources::default(),
        };
        let used = |id: &str| self.used_on.get(&IdKey::of(id)).copied().unwrap_or_default();
        c.pending_use = match rec {
            Some(r) if !same_id(&r.server_id, &inst.kasm_server_id) => used(&r.server_id) + used(&inst.kasm_server_id),
            Some(r) => used(&r.server_id),
            None => used(&inst.kasm_server_id),
        };
        if let Some(r) = rec {
            c.contrib = self.free_of(r, true);
            c.contrib_sessions = self.max_sessions(r).saturating_sub(n_sessions);
        }
        let in_state = self.secs_since(inst.state_since);
        // Addresses never make a record ours (a guess could drain an operator's agent), but they do
        // hold a destroy: sessions on any record at the VM's name or address keep the VM alive.
        let guard_sessions = n_sessions + self.sessions_at_address(inst, rec_i, sessions);
        let mut held = None;
        let mut destroy = |why: String| -> Option<String> {
            // Invariant: a VM with sessions is never destroyed, whatever its claim says.
            if guard_sessions > 0 {
                held = Some(why);
                None
            } else {
                Some(why)
            }
        };
        match inst.state {
            InstanceState::Failed => {
                c.destroy = destroy(format!(
                    "creation failed ({}): cleaning up",
                    inst.last_error.as_deref().unwrap_or("no error recorded")
                ));
            }
            InstanceState::Deleting | InstanceState::Deleted | InstanceState::Draining => {}
            InstanceState::Requested | InstanceState::Creating => {
                c.counts = if rec.is_some_and(|r| self.healthy(r)) { Counts::Record } else { Counts::Pending };
            }
            // An operator (or Kasm) is deleting the record: the VM can never take sessions again.
            InstanceState::Booting | InstanceState::Running if rec.is_some_and(KasmServer::is_going) => {
                let status = rec.map(|r| r.operational_status.as_str()).unwrap_or_default();
                c.destroy = destroy(format!("Kasm is deleting its record ({status}): removing the VM"));
            }
            InstanceState::Booting => {
                // A server-pool record made with `agent_installed` starts `starting`; the Kasm Desktop
                // Service's check-in (`set_server_status`) turns it `running` without necessarily
                // stamping `last_reported`: either counts as checked in.
                let checked = rec.is_some_and(|r| {
                    self.checked_in_recently(r)
                        || (self.server_pool && r.operational_status.eq_ignore_ascii_case("running"))
                });
                let activatable = match rec {
                    None => false,
                    Some(_) if !self.server_pool => checked,
                    Some(_) => !input.config.require_checkin || checked,
                };
                if activatable {
                    let r = rec.expect("activatable implies a record");
                    c.activate = Some(!r.enabled);
                    c.counts = if self.healthy(r) { Counts::Record } else { Counts::Pending };
                } else if in_state >= crate::clock::secs(input.timers.provision_timeout) {
                    let why = match rec.and_then(|r| r.last_reported) {
                        None => format!("never checked in within {} s", input.timers.provision_timeout),
                        Some(t) => format!(
                            "no check-in for {} s while booting (provision timeout {} s)",
                            self.secs_since(t),
                            input.timers.provision_timeout
                        ),
                    };
                    c.destroy = destroy(why);
                    if c.destroy.is_none() {
                        c.counts = Counts::Pending;
                    }
                } else {
                    c.counts = Counts::Pending;
                }
            }
            InstanceState::Running => {
                let dead_after = crate::clock::secs(input.timers.agent_dead_after);
                let dead = match rec {
                    None => (in_state >= dead_after).then(|| format!("dead agent: no Kasm record for {in_state} s")),
                    Some(r) => match r.last_reported {
                        Some(t) => (self.secs_since(t) >= dead_after)
                            .then(|| format!("dead agent: no check-in for {} s", self.secs_since(t))),
                        // Servers without the desktop service never check in: not a sign of death.
                        None if self.server_pool => None,
                        None => (in_state >= dead_after)
                            .then(|| format!("dead agent: never checked in, running for {in_state} s")),
                    },
                };
                if let Some(why) = dead {
                    c.destroy = destroy(format!("{why} (dead after {dead_after} s)"));
                }
                if c.destroy.is_none() && rec.is_some_and(|r| self.healthy(r)) {
                    c.counts = Counts::Record;
                }
                // Kasm's `reusable: false` (its default): a server that has had a session is never
                // used again; disabled now so no other session lands, deleted once its sessions end.
                if self.server_pool
                    && input.config.enabled
                    && !input.config.reusable
                    && c.destroy.is_none()
                    && n_sessions > 0
                    && rec.is_some_and(|r| !r.is_going())
                {
                    c.spent = true;
                    c.counts = Counts::No;
                }
            }
        }
        c.held = held;
        c
    }

    /// Sessions on records other than the claim's own whose hostname is the VM's name or hostname, or
    /// whose hostname or public IP is the VM's address (the destroy guard only; see `classify`).
    fn sessions_at_address(&self, inst: &Instance, own: Option<usize>, sessions: &HashMap<IdKey, u32>) -> u32 {
        let names = [inst.hostname.as_deref(), Some(inst.vm_name.as_str())];
        let ip = inst.private_ip.as_deref();
        self.input
            .servers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != own)
            .filter(|(_, r)| {
                let host = r.hostname.as_deref();
                host.is_some_and(|h| names.iter().flatten().any(|n| n.eq_ignore_ascii_case(h)))
                    || ip.is_some_and(|ip| host == Some(ip) || r.public_ip.as_deref() == Some(ip))
            })
            .map(|(_, r)| sessions.get(&IdKey::of(&r.server_id)).copied().unwrap_or(0))
            .sum()
    }

    /// Per-VM size (docker agents): per dimension the config's override, else `new_vm_size`, else the
    /// largest capacity among the pool's records; `None` when nothing tells.
    fn per_vm(&self) -> [Option<f64>; 3] {
        let ovr = self.input.config.overrides();
        let largest = |d: Dim| {
            self.input
                .servers
                .iter()
                .filter(|s| s.kind == ServerKind::Agent)
                // Only asked for a dimension without override, where whose record it is does not matter.
                .map(|s| self.capacity(s, false).get(d))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        DIMS.map(|d| {
            if ovr.get(d) > EPS {
                Some(ovr.get(d))
            } else if let Some(sz) = self.input.new_vm_size {
                Some(sz.get(d))
            } else {
                largest(d)
            }
        })
    }

    /// Draining VMs that still exist and are alive, most recently drained first.
    fn undrain_candidates(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.claims.len())
            .filter(|&i| {
                let c = &self.claims[i];
                c.inst.state == InstanceState::Draining
                    && !self.past_due_age(c.inst)
                    // Single-use servers are never re-enabled: a drained one may have had a session.
                    && (!self.server_pool || self.input.config.reusable)
                    && c.rec.is_some_and(|r| {
                        let rec = &self.input.servers[r];
                        self.checked_in_recently(rec) || (self.server_pool && rec.last_reported.is_none())
                    })
            })
            .collect();
        v.sort_by(|&a, &b| {
            let (a, b) = (&self.claims[a].inst, &self.claims[b].inst);
            b.state_since.cmp(&a.state_since).then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// Whether a claim's VM is past the age at which rotation wants its replacement.
    fn past_due_age(&self, inst: &Instance) -> bool {
        self.input.config.rotation().is_some_and(|(_, due_at)| self.secs_since(inst.vm_since()) >= due_at)
    }

    /// Rotation state of every claim: which running VMs of ours are due (past the pre-warm age) or
    /// expired (past the rotation age), which claim is a due VM's live replacement, and so which VMs
    /// retire (their capacity no longer counts) and which replacements are protected from scale-down.
    fn mark_rotation(&mut self) {
        let Some((rotate, due_at)) = self.input.config.rotation() else { return };
        for i in 0..self.claims.len() {
            let c = &self.claims[i];
            if c.inst.state != InstanceState::Running || c.destroy.is_some() || c.rec.is_none() {
                continue;
            }
            let age = self.secs_since(c.inst.vm_since());
            let c = &mut self.claims[i];
            c.due = age >= due_at;
            c.expired = age >= rotate;
        }
        let index: HashMap<&ClaimId, usize> = self.claims.iter().enumerate().map(|(i, c)| (&c.inst.id, i)).collect();
        let mut replacement: Vec<Option<usize>> = vec![None; self.claims.len()];
        // Claims are in id order: among several live replacements of one VM, one that serves wins,
        // else the first.
        for (j, r) in self.claims.iter().enumerate() {
            let live = r.destroy.is_none() && (r.inst.state.is_pending() || r.inst.state == InstanceState::Running);
            let Some(&old) = r.inst.replaces.as_ref().and_then(|id| index.get(id)) else { continue };
            if !live || old == j || !self.claims[old].due {
                continue;
            }
            match replacement[old] {
                Some(k) if self.claims[k].counts == Counts::Record || r.counts != Counts::Record => {}
                _ => replacement[old] = Some(j),
            }
        }
        for (old, rep) in replacement.into_iter().enumerate() {
            if let Some(k) = rep {
                self.claims[old].replacement = Some(k);
                self.claims[old].retiring = true;
                self.claims[k].protected = true;
            }
        }
        let due = self.claims.iter().filter(|c| c.due).count();
        if due > 0 {
            let retiring = self.claims.iter().filter(|c| c.retiring).count();
            self.reasons.push(format!(
                "rotation (rotate_servers_in_days {}, pre-warm {} min): {due} VMs past {}, {retiring} of them with a replacement (their capacity is the replacement's)",
                rotate / 86_400,
                (rotate - due_at) / 60,
                fmt_age(due_at)
            ));
        }
    }

    /// Rotation: one replacement claim for every due VM without a live one, oldest first, after the
    /// `created` standby/floor claims, under the same provider backoff and `max_instances` cap.
    fn claim_replacements(&mut self, may_scale: bool, created: u32) -> Vec<ClaimId> {
        let Some((rotate, due_at)) = self.input.config.rotation() else { return Vec::new() };
        // A draining replacement undrained by this plan serves again: its VM needs no other.
        let undrained_for: Vec<&ClaimId> = self
            .actions_undrain
            .iter()
            .filter_map(|a| match a {
                Action::Undrain { claim, .. } => {
                    self.claims.iter().find(|c| &c.inst.id == claim).and_then(|c| c.inst.replaces.as_ref())
                }
                _ => None,
            })
            .collect();
        let mut due: Vec<usize> = (0..self.claims.len())
            .filter(|&i| {
                let c = &self.claims[i];
                c.due && c.replacement.is_none() && !undrained_for.contains(&&c.inst.id)
            })
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        due.sort_by(|&a, &b| {
            let (a, b) = (self.claims[a].inst, self.claims[b].inst);
            a.vm_since().cmp(&b.vm_since()).then_with(|| a.id.cmp(&b.id))
        });
        let names = |v: &[usize]| v.iter().map(|&i| self.claims[i].inst.id.as_str()).collect::<Vec<_>>().join(", ");
        let input = self.input;
        if !may_scale {
            let why = if input.config.enabled { "the schedule is inactive" } else { "the config is disabled" };
            self.reasons.push(format!(
                "rotation: {} VMs due for replacement ({}), none claimed while {why}",
                due.len(),
                names(&due)
            ));
            return Vec::new();
        }
        if let Some(until) = input.control.backoff_until
            && until > self.now
        {
            self.reasons.push(format!(
                "rotation: provider backoff until {}: the replacements of {} wait; those VMs keep serving",
                until.format("%H:%M:%S"),
                names(&due)
            ));
            return Vec::new();
        }
        let room = input.max_instances.saturating_sub(input.owned_total.saturating_add(created)) as usize;
        let n = room.min(due.len());
        for &i in &due[..n] {
            let c = &self.claims[i];
            self.reasons.push(format!(
                "rotation: {} has existed {} (rotate after {}, replacement claimed {} ahead): claiming its replacement",
                c.inst.id,
                fmt_age(self.secs_since(c.inst.vm_since())),
                fmt_age(rotate),
                fmt_age(rotate - due_at)
            ));
        }
        if n < due.len() {
            self.reasons.push(format!(
                "rotation: at max_instances {} ({} owned, {created} claimed for standby): no replacement for {}; they keep serving until a slot frees",
                input.max_instances,
                input.owned_total,
                names(&due[n..])
            ));
        }
        due[..n].iter().map(|&i| self.claims[i].inst.id.clone()).collect()
    }

    /// Rotation: drains expired VMs whose replacement serves, oldest first, while the capacity left
    /// (`free_rec`/`avail_rec`, plus the retiring VMs' not drained yet) keeps the standby and the
    /// floor. `nondraining` excludes retiring VMs.
    fn rotate_out(
        &mut self,
        free_rec: Resources,
        avail_rec: u64,
        retiring_free: &mut Resources,
        retiring_avail: &mut u64,
        nondraining: u32,
        floor: u32,
    ) {
        let mut order: Vec<usize> = (0..self.claims.len()).filter(|&i| self.claims[i].retiring).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (self.claims[a].inst, self.claims[b].inst);
            a.vm_since().cmp(&b.vm_since()).then_with(|| a.id.cmp(&b.id))
        });
        let mut up = nondraining + order.len() as u32;
        for i in order {
            let c = &self.claims[i];
            if !c.expired {
                continue;
            }
            let k = c.replacement.expect("retiring VMs have a replacement");
            let r = &self.claims[k];
            let (old, new) = (c.inst.id.clone(), r.inst.id.clone());
            if r.counts != Counts::Record {
                self.reasons.push(format!(
                    "rotation: {old} is due to go; waiting for its replacement {new} ({}) to serve",
                    r.inst.state
                ));
                continue;
            }
            if !self.removable(&(free_rec + *retiring_free), avail_rec + *retiring_avail, c) {
                self.reasons.push(format!(
                    "rotation: {old} is due to go, but without it the pool would drop below {}: it keeps serving until more capacity does",
                    self.kept_free()
                ));
                continue;
            }
            if up <= floor {
                self.reasons.push(format!(
                    "rotation: {old} is due to go, but minimum_instances {floor} from the schedule needs it"
                ));
                continue;
            }
            let (contrib, contrib_sessions, counts, sessions) = (c.contrib, c.contrib_sessions, c.counts, c.sessions);
            if counts == Counts::Record {
                *retiring_free = *retiring_free - contrib;
                *retiring_avail -= (contrib_sessions as u64).min(*retiring_avail);
            }
            up -= 1;
            let age = fmt_age(self.secs_since(self.claims[i].inst.vm_since()));
            let reason =
                format!("rotation: existed {age}, replaced by {new}; deleted once it has no sessions ({sessions} now)");
            self.reasons.push(format!("rotation: draining {old} ({age} old), its replacement {new} serves"));
            let server_id = self.input.servers[self.claims[i].rec.expect("due VMs have a record")].server_id.clone();
            self.actions_drain.push(Action::Drain { claim: old, server_id, reason, replaced_by: Some(new) });
        }
    }

    /// What must be free beyond what runs (sets `target` / `target_sessions` and the summary): the
    /// standby, plus what the staging configs still need (Kasm's `desired_staged_resources`: image size ×
    /// (desired − staged) per staging config; an image larger than one VM is "unmet", reported and not
    /// provisioned for), plus — with `aggressive_scaling`, Kasm's "expedient measures ... for on-demand
    /// session requests" — the session requests queued for the config that wait on no record.
    fn demand(&mut self, per_vm: &[Option<f64>; 3], summary: &mut Summary) {
        let input = self.input;
        let fits = |r: Resources| DIMS.iter().enumerate().all(|(k, &d)| per_vm[k].is_none_or(|p| r.get(d) <= p + EPS));
        let mut staging: Vec<&StagingDemand> = input.staging.iter().filter(|s| s.num_sessions > 0).collect();
        staging.sort_by(|a, b| a.staging_config_id.cmp(&b.staging_config_id));
        let mut staged = Resources::default();
        let mut unmet = Resources::default();
        let mut staged_sessions: u64 = 0;
        for s in staging {
            let missing = s.remaining();
            let head = format!(
                "staging config {} ({}): {} desired, {} staged",
                s.staging_config_id, s.image, s.num_sessions, s.current_sessions
            );
            if self.server_pool {
                staged_sessions += missing as u64;
                self.reasons.push(format!("{head}: {missing} session slots kept free for the missing ones"));
            } else if fits(s.image_size) {
                let need = s.image_size * missing as f64;
                staged += need;
                self.reasons.push(if missing == 0 {
                    format!("{head}: all staged")
                } else {
                    format!("{head}: room kept for {missing} more of {}: {}", fmt_res(s.image_size), fmt_res(need))
                });
            } else {
                for (k, d) in DIMS.into_iter().enumerate() {
                    let over = per_vm[k].map_or(0.0, |p| s.image_size.get(d) - p);
                    unmet.set(d, unmet.get(d).max(over.max(0.0)));
                }
                self.reasons.push(format!(
                    "{head}: unmet: one session takes {}, more than one VM offers ({}); not provisioned for",
                    fmt_res(s.image_size),
                    fmt_per_vm(per_vm)
                ));
            }
        }
        // Requests waiting for compute, in id order (sums must not depend on input order).
        let mut queued: Vec<&KasmSession> = input.queued.iter().collect();
        queued.sort_by(|a, b| a.kasm_id.cmp(&b.kasm_id));
        let mut q_res = Resources::default();
        let mut q_n: u64 = 0;
        let mut too_big = 0u32;
        for k in &queued {
            if self.server_pool {
                q_n += 1;
            } else if fits(k.resources) {
                q_res += k.resources;
                q_n += 1;
            } else {
                too_big += 1;
            }
        }
        let waiting = queued.len();
        if waiting > 0 {
            let what = if self.server_pool { format!("{q_n} session slots") } else { fmt_res(q_res) };
            if input.config.aggressive_scaling {
                self.reasons.push(format!(
                    "{waiting} session requests queued for this config and on no VM yet: demand (aggressive_scaling): {what}"
                ));
                if too_big > 0 {
                    self.reasons.push(format!(
                        "{too_big} queued requests take more than one VM offers ({}): not provisioned for",
                        fmt_per_vm(per_vm)
                    ));
                }
            } else {
                self.reasons.push(format!(
                    "{waiting} session requests queued for this config and on no VM yet; aggressive_scaling off: they wait for the capacity standby and staging keep"
                ));
                q_res = Resources::default();
                q_n = 0;
            }
        }
        summary.staging = staged;
        summary.staging_unmet = unmet;
        summary.staging_sessions = staged_sessions.min(u32::MAX as u64) as u32;
        summary.queued_requests = waiting.min(u32::MAX as usize) as u32;
        summary.queued = q_res;
        if self.server_pool {
            self.target_sessions = input.config.minimum_pool_standby_sessions as u64 + staged_sessions + q_n;
        } else {
            self.target = input.config.standby() + staged + q_res;
        }
    }

    /// What scale-down and rotation keep free, as the decision log names it: `standby` (server pools:
    /// `Minimum Available Sessions`), with `+ staging + queued requests` when those add to it, and
    /// `+ forecast` when the forecast does.
    fn kept_free(&self) -> String {
        let (fc_res, fc_sessions) = match &self.forecast {
            Some(f) if f.acting => (f.extra, f.extra_sessions),
            _ => (Resources::default(), 0),
        };
        let extra = if self.server_pool {
            self.target_sessions > self.input.config.minimum_pool_standby_sessions as u64 + fc_sessions
        } else {
            let s = self.input.config.standby() + fc_res;
            DIMS.iter().any(|&d| self.target.get(d) > s.get(d) + EPS)
        };
        let base = match (self.server_pool, extra) {
            (true, false) => "Minimum Available Sessions",
            (true, true) => "Minimum Available Sessions + staging + queued requests",
            (false, false) => "standby",
            (false, true) => "standby + staging + queued requests",
        };
        let forecast = fc_sessions > 0 || DIMS.iter().any(|&d| fc_res.get(d) > EPS);
        if forecast { format!("{base} + forecast") } else { base.to_string() }
    }

    /// Predictive scaling (module docs, "Forecast"): reads the history, looks one lead time ahead,
    /// and with `on` raises `target` / `target_sessions` by the forecast demand above what is in use
    /// now; with `forecast_only` only says what it would do. Sets the summary's `forecast`.
    fn forecast(&mut self, per_vm: &[Option<f64>; 3], summary: &mut Summary, may_scale: bool) {
        let input = self.input;
        let mode = input.config.predictive_scaling;
        if mode == PredictiveScaling::Off {
            return;
        }
        let id = forecast::identity(&input.config);
        let hist = input.control.history.as_ref().filter(|h| h.identity == id && !h.is_empty());
        let lead = forecast::lead_time(hist.map_or(&[][..], |h| &h.boot_seconds[..]), &input.timers);
        let lead_text = if lead.samples as usize >= forecast::MIN_LEAD_SAMPLES {
            format!(
                "{} s ahead (p90 of {} measured boots, + {} s evaluation interval)",
                lead.seconds, lead.samples, input.timers.evaluation_interval
            )
        } else {
            format!(
                "{} s ahead (provision_timeout / 2: {} of {} boots measured; + {} s evaluation interval)",
                lead.seconds,
                lead.samples,
                forecast::MIN_LEAD_SAMPLES,
                input.timers.evaluation_interval
            )
        };
        let used = forecast::in_use(input);
        let mut fs = ForecastSummary {
            mode: forecast::mode_name(mode),
            lead_seconds: lead.seconds,
            lead_samples: lead.samples,
            ..ForecastSummary::default()
        };
        if self.server_pool {
            fs.in_use_sessions = used[0].min(u32::MAX as f64) as u32;
        } else {
            fs.in_use = Resources::new(used[0], used[1], used[2]);
        }
        let nothing = |this: &mut Self, mut fs: ForecastSummary, why: String, summary: &mut Summary| {
            this.reasons.push(format!("forecast ({}): nothing forecast: {why}", mode.as_str()));
            fs.note = Some(why);
            summary.forecast = Some(fs);
        };
        let Some(h) = hist else {
            return nothing(self, fs, "no history yet (a new or changed config starts empty)".into(), summary);
        };
        if !may_scale {
            return nothing(
                self,
                fs,
                "the config does not scale up now (disabled or outside its schedules)".into(),
                summary,
            );
        }
        // One VM's worth per dimension: the least demand the tracking check looks at.
        let one_vm: [f64; 3] = if self.server_pool {
            [input.config.max_simultaneous_sessions_per_server.max(1) as f64, f64::INFINITY, f64::INFINITY]
        } else {
            per_vm.map(|p| p.filter(|p| *p > EPS).unwrap_or(f64::INFINITY))
        };
        // Tracking: a quarter hour that just ended with a confident forecast of at least one VM and
        // demand now far below it means today does not follow the history (a holiday).
        let prev = self.now.checked_sub_signed(chrono::Duration::seconds(forecast::BUCKET_SECONDS));
        if let Some(f) = prev.and_then(|t| h.tracked(t)) {
            let dims: Vec<usize> = (0..3).filter(|&k| f.mean[k] >= one_vm[k]).collect();
            if !dims.is_empty() && dims.iter().all(|&k| used[k] < forecast::TRACKING_MIN * f.mean[k]) {
                let k = dims[0];
                let why = format!(
                    "today does not follow the history: {} in use, the last quarter hour's forecast was {} (paused below {} %)",
                    num(used[k]),
                    num(f.mean[k]),
                    num(forecast::TRACKING_MIN * 100.0)
                );
                fs.paused = true;
                return nothing(self, fs, why, summary);
            }
        }
        // Every bucket from now to now + lead + one evaluation interval (a VM that checked in serves
        // from the next evaluation), inside the schedules' active windows only.
        let end = i64::try_from(lead.seconds.saturating_add(input.timers.evaluation_interval))
            .ok()
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| self.now.checked_add_signed(d))
            .unwrap_or(self.now);
        let mut t = self.now;
        let mut best: Option<(DateTime<Utc>, forecast::BucketForecast)> = None;
        let mut peak = [0.0f64; 3];
        let (mut thin, mut erratic, mut outside) = (None::<(DateTime<Utc>, u16)>, None, 0u32);
        loop {
            if schedule::evaluate(&input.schedules, t).active {
                match h.forecast(t) {
                    Ok(f) => {
                        for (p, m) in peak.iter_mut().zip(f.mean) {
                            *p = p.max(m);
                        }
                        if best.is_none_or(|(_, b)| f.mean[0] > b.mean[0]) {
                            best = Some((t, f));
                        }
                    }
                    Err(NoForecast::Thin(n)) => thin = thin.or(Some((t, n))),
                    Err(NoForecast::Erratic) => erratic = erratic.or(Some(t)),
                }
            } else {
                outside += 1;
            }
            let into = t.timestamp().rem_euclid(forecast::BUCKET_SECONDS);
            let Some(next) = t.checked_add_signed(chrono::Duration::seconds(forecast::BUCKET_SECONDS - into)) else {
                break;
            };
            if next > end {
                break;
            }
            t = next;
        }
        let Some((bt, bf)) = best else {
            let why = if let Some(t) = erratic {
                format!(
                    "the history at {} is erratic (weekly peaks spread more than {} % of their mean)",
                    forecast::bucket_label(t),
                    num(forecast::MAX_SPREAD * 100.0)
                )
            } else if let Some((t, n)) = thin {
                format!(
                    "the history at {} is thin ({n} weeks; {} needed)",
                    forecast::bucket_label(t),
                    forecast::MIN_WEEKS
                )
            } else if outside > 0 {
                "no pre-warming outside the schedules' active windows".to_string()
            } else {
                "no forecast".to_string()
            };
            return nothing(self, fs, why, summary);
        };
        let label_at = forecast::bucket_label(bt);
        fs.bucket = Some(label_at.clone());
        fs.weeks = bf.weeks;
        // Today's level: where the history at this instant is measured and at least one VM's worth,
        // a day running below it (a quieter day) scales the forecast down by the same share; never up.
        let mut today_text = String::new();
        if let Some(level) = h.level_at(self.now) {
            let share = (0..3)
                .filter(|&k| level[k] >= one_vm[k])
                .map(|k| (used[k] / level[k], k))
                .fold(None::<(f64, usize)>, |best, x| if best.is_none_or(|b| x.0 > b.0) { Some(x) } else { best });
            if let Some((r, k)) = share
                && r < 1.0
            {
                for p in &mut peak {
                    *p *= r;
                }
                fs.today_percent = Some((r * 100.0).round());
                let unit = if self.server_pool { "sessions".to_string() } else { DIMS[k].to_string() };
                today_text = format!(
                    " (today at {} % of the history's level: {} {unit} in use, {} expected now)",
                    num((r * 100.0).round()),
                    num(used[k]),
                    num((level[k] * 10.0).round() / 10.0)
                );
            }
        }
        let (extra, extra_sessions, what, now_text) = if self.server_pool {
            let f = peak[0].ceil();
            fs.demand_sessions = f.min(u32::MAX as f64) as u32;
            let e = (f - used[0]).max(0.0);
            fs.extra_sessions = e.min(u32::MAX as f64) as u32;
            (Resources::default(), e as u64, format!("{} sessions", num(f)), format!("{} in use now", num(used[0])))
        } else {
            let f = Resources::new(peak[0], peak[1], peak[2]);
            fs.demand = f;
            let mut e = Resources::default();
            for (k, d) in DIMS.into_iter().enumerate() {
                e.set(d, (peak[k] - used[k]).max(0.0));
            }
            fs.extra = e;
            let dims_text = |r: Resources| {
                let parts: Vec<String> =
                    DIMS.iter().filter(|&&d| r.get(d) > EPS).map(|&d| format!("{} {d}", num(r.get(d)))).collect();
                if parts.is_empty() { "0 cores".to_string() } else { parts.join(", ") }
            };
            (e, 0, dims_text(f), format!("{} in use now", dims_text(Resources::new(used[0], used[1], used[2]))))
        };
        let label = format!("forecast {label_at}: {what}{today_text} from {} weeks of history", bf.weeks);
        let acting = mode == PredictiveScaling::On;
        let adds = extra_sessions > 0 || DIMS.iter().any(|&d| extra.get(d) > EPS);
        let effect = match (adds, acting) {
            (false, _) => "covered by what is in use".to_string(),
            (true, true) => "kept free on top of the standby".to_string(),
            (true, false) => "forecast_only: would be kept free on top of the standby; not acting".to_string(),
        };
        let extra_text = if self.server_pool {
            format!("{extra_sessions} sessions")
        } else {
            let parts: Vec<String> =
                DIMS.iter().filter(|&&d| extra.get(d) > EPS).map(|&d| format!("{} {d}", num(extra.get(d)))).collect();
            if parts.is_empty() { "nothing more".to_string() } else { parts.join(", ") }
        };
        self.reasons.push(format!("{label} ({now_text}), looking {lead_text}: {extra_text} {effect}"));
        if acting && adds {
            fs.applied = true;
            if self.server_pool {
                self.target_sessions = self.target_sessions.saturating_add(extra_sessions);
            } else {
                self.target += extra;
            }
        }
        summary.forecast = Some(fs);
        if adds {
            self.forecast = Some(ForecastAdd { acting, extra, extra_sessions, label, lead: lead.seconds });
        }
    }

    /// Docker Agents: VMs of `per_vm` needed for `free` to reach `target` in every dimension a VM adds to.
    fn vms_needed(target: Resources, free: Resources, per_vm: &[Option<f64>; 3]) -> u32 {
        let mut need = 0u32;
        for (k, d) in DIMS.into_iter().enumerate() {
            let gap = target.get(d) - free.get(d);
            if let Some(p) = per_vm[k].filter(|p| *p > EPS)
                && gap > EPS
            {
                need = need.max(((gap / p) - EPS).ceil().max(1.0).min(u32::MAX as f64) as u32);
            }
        }
        need
    }

    /// The forecast's share of a scale-up, for the decision log: with `on`, how many of the `need`
    /// VMs are there for the forecast; with `forecast_only`, how many more it would create.
    fn forecast_share(&mut self, need: u32, without: impl Fn(Resources, u64) -> u32, unit: &str) {
        let Some(f) = self.forecast.clone() else { return };
        if f.acting {
            let reactive = without(self.target - f.extra, self.target_sessions.saturating_sub(f.extra_sessions));
            let k = need.saturating_sub(reactive);
            if k > 0 {
                self.reasons.push(format!("{} -> +{k} {unit} ahead of a {} s boot", f.label, f.lead));
            }
        } else {
            let would = without(self.target + f.extra, self.target_sessions.saturating_add(f.extra_sessions));
            let k = would.saturating_sub(need);
            if k > 0 {
                self.reasons.push(format!(
                    "forecast_only: {} -> would create +{k} {unit} ahead of a {} s boot; not acting",
                    f.label, f.lead
                ));
            }
        }
    }

    /// Server pools: how the session target reads when staging or queued requests add to the minimum
    /// (`minimum 2 + staging 1 + queued 3 = 6`); `None` when it is the minimum alone.
    fn target_parts(&self, summary: &Summary) -> Option<String> {
        let min = self.input.config.minimum_pool_standby_sessions as u64;
        let fc = self.forecast.as_ref().filter(|f| f.acting).map_or(0, |f| f.extra_sessions);
        let extra = self.target_sessions.saturating_sub(min);
        (extra > 0).then(|| {
            let queued = extra.saturating_sub(summary.staging_sessions as u64).saturating_sub(fc);
            let fc_text = if fc > 0 { format!(" + forecast {fc}") } else { String::new() };
            format!(
                "minimum {min} + staging {} + queued {queued}{fc_text} = {}",
                summary.staging_sessions, self.target_sessions
            )
        })
    }

    fn undrain(&mut self, i: usize) {
        let c = &self.claims[i];
        let server_id = self.input.servers[c.rec.expect("undrain candidates have a record")].server_id.clone();
        self.actions_undrain.push(Action::Undrain { claim: c.inst.id.clone(), server_id });
    }

    /// How the target of dimension `d` reads in a reason: `standby 8`, or with staging and queued
    /// requests `standby 8 + staging 4 + queued 2 = 14`.
    fn target_text(&self, d: Dim, summary: &Summary) -> String {
        let standby = self.input.config.standby().get(d);
        let (st, q) = (summary.staging.get(d), summary.queued.get(d));
        let fc = self.forecast.as_ref().filter(|f| f.acting).map_or(0.0, |f| f.extra.get(d));
        if st <= EPS && q <= EPS && fc <= EPS {
            return format!("standby {}", num(standby));
        }
        let mut t = format!("standby {}", num(standby));
        if st > EPS {
            t.push_str(&format!(" + staging {}", num(st)));
        }
        if q > EPS {
            t.push_str(&format!(" + queued {}", num(q)));
        }
        if fc > EPS {
            t.push_str(&format!(" + forecast {}", num(fc)));
        }
        format!("{t} = {}", num(self.target.get(d)))
    }

    /// The shortfall limit (ours, `max_new_vms_per_evaluation`): `need` VMs wanted after `undrained`
    /// re-enabled ones; returns what this evaluation creates for the shortfall.
    fn batch_limit(&mut self, need: u32, undrained: u32) -> u32 {
        let Some(b) = self.input.config.max_new_vms_per_evaluation.map(|b| b.get()) else { return need };
        let left = b.saturating_sub(undrained);
        if need > left {
            self.reasons.push(format!(
                "max_new_vms_per_evaluation {b}: {left} new VMs this evaluation ({undrained} re-enabled; the shortfall needs {need})"
            ));
            return left;
        }
        need
    }

    #[allow(clippy::too_many_arguments)]
    fn scale_up_agents(
        &mut self,
        may_scale: bool,
        free_rec: Resources,
        pending: &[usize],
        per_vm: [Option<f64>; 3],
        nondraining: &mut u32,
        floor: u32,
        summary: &mut Summary,
    ) -> ScaleUp {
        let target = self.target;
        let pending_n = pending.len() as u32;
        // A VM on its way up adds its size, less what sessions already queued on it (or running on a
        // record that does not count yet) will hold.
        let mut free = free_rec;
        let mut held = Resources::default();
        for &i in pending {
            let use_ = self.claims[i].pending_use;
            for (k, d) in DIMS.into_iter().enumerate() {
                let size = per_vm[k].unwrap_or(0.0);
                let taken = use_.get(d).min(size).max(0.0);
                free.set(d, free.get(d) + size - taken);
                held.set(d, held.get(d) + taken);
            }
        }
        summary.per_vm = Resources::new(per_vm[0].unwrap_or(0.0), per_vm[1].unwrap_or(0.0), per_vm[2].unwrap_or(0.0));
        summary.free = free;
        summary.free_ready = free_rec;
        let held_text = if held == Resources::default() {
            String::new()
        } else {
            format!(", less {} held by sessions queued on them", fmt_res(held))
        };
        self.reasons.push(format!(
            "free {} (incl. {pending_n} pending VMs{held_text}); standby {}; a new VM adds {}",
            fmt_res(free),
            fmt_res(self.input.config.standby()),
            fmt_per_vm(&per_vm)
        ));
        let mut up = ScaleUp::default();
        if !may_scale {
            return up;
        }
        let short = |free: &Resources, d: Dim| target.get(d) - free.get(d) > EPS;

        // Undrain first: a draining VM that still exists is capacity without a provider call.
        let batch = self.input.config.max_new_vms_per_evaluation.map(|b| b.get());
        for i in self.undrain_candidates() {
            let contrib = self.claims[i].contrib;
            let helps = DIMS.iter().any(|&d| short(&free, d) && contrib.get(d) > EPS);
            let below_floor = *nondraining < floor;
            let step_left = batch.is_none_or(|b| up.undrained_n < b);
            if !(below_floor || (helps && step_left)) {
                continue;
            }
            self.undrain(i);
            free += contrib;
            up.undrained += contrib;
            up.undrained_n += 1;
            *nondraining += 1;
        }
        if up.undrained_n > 0 {
            self.reasons.push(format!("undraining {} draining VMs before creating any", up.undrained_n));
        }
        summary.free = free;

        // Shortfall per dimension against standby + staging + queued requests.
        let mut need: u32 = 0;
        let mut unknown = false;
        for (k, d) in DIMS.into_iter().enumerate() {
            if !short(&free, d) {
                continue;
            }
            let gap = target.get(d) - free.get(d);
            let wanted = self.target_text(d, summary);
            match per_vm[k] {
                None => {
                    unknown = true;
                    self.reasons.push(format!(
                        "free {d} {} < {wanted}: VM size unknown (no override, no provider size, no agents yet)",
                        num(free.get(d)),
                    ));
                }
                Some(p) if p <= EPS => self.reasons.push(format!(
                    "free {d} {} < {wanted}: a new VM adds 0 {d}, so creating VMs cannot help; not scaling on {d}",
                    num(free.get(d)),
                )),
                Some(p) => {
                    let n = ((gap / p) - EPS).ceil().max(1.0) as u32;
                    need = need.max(n);
                    self.reasons.push(format!(
                        "free {d} {} < {wanted}: +{n} agents of {} {d}",
                        num(free.get(d)),
                        num(p)
                    ));
                }
            }
        }
        let (free_now, per) = (free, per_vm);
        self.forecast_share(need, |t, _| Self::vms_needed(t, free_now, &per), "agents");
        if unknown {
            // One VM teaches us the size; more would be guesses, and a loop if they never report.
            need = if pending_n == 0 { 1 } else { 0 };
            self.reasons.push(if need == 1 {
                "VM size unknown: creating at most 1 VM to learn it".to_string()
            } else {
                format!("VM size unknown: waiting for the {pending_n} pending VMs to report their size")
            });
        }
        let need = self.batch_limit(need, up.undrained_n);
        up.wanted = need.max(self.floor_need(floor, *nondraining));
        up
    }

    fn scale_up_servers(
        &mut self,
        may_scale: bool,
        avail_rec: u64,
        pending: &[usize],
        nondraining: &mut u32,
        floor: u32,
        summary: &mut Summary,
    ) -> ScaleUp {
        let per = self.input.config.max_simultaneous_sessions_per_server;
        let minimum = self.target_sessions;
        let pending_n = pending.len();
        // A server on its way up takes `per` sessions, less those already queued on it.
        let taken: u64 = pending.iter().map(|&i| self.claims[i].sessions.min(per) as u64).sum();
        let mut avail = avail_rec + pending_n as u64 * per as u64 - taken;
        summary.available_sessions = avail.min(u32::MAX as u64) as u32;
        let taken_text = if taken > 0 { format!(", less {taken} sessions queued on them") } else { String::new() };
        let wanted = match self.target_parts(summary) {
            Some(parts) => parts,
            None => format!("minimum {minimum}"),
        };
        self.reasons.push(format!(
            "available sessions {avail} (incl. {pending_n} pending servers × {per}{taken_text}); {wanted}"
        ));
        let mut up = ScaleUp::default();
        if !may_scale {
            return up;
        }
        let batch = self.input.config.max_new_vms_per_evaluation.map(|b| b.get());
        for i in self.undrain_candidates() {
            let contrib = self.claims[i].contrib_sessions as u64;
            let helps = avail < minimum && contrib > 0 && batch.is_none_or(|b| up.undrained_n < b);
            if !(helps || *nondraining < floor) {
                continue;
            }
            self.undrain(i);
            avail += contrib;
            up.undrained_sessions += contrib;
            up.undrained_n += 1;
            *nondraining += 1;
        }
        if up.undrained_n > 0 {
            self.reasons.push(format!("undraining {} draining servers before creating any", up.undrained_n));
        }
        summary.available_sessions = avail.min(u32::MAX as u64) as u32;
        let mut need = 0u32;
        if avail < minimum {
            let gap = minimum - avail;
            if per == 0 {
                self.reasons.push(format!(
                    "available sessions {avail} < {wanted}: max_simultaneous_sessions_per_server is 0, creating servers cannot help"
                ));
            } else {
                need = gap.div_ceil(per as u64).min(u32::MAX as u64) as u32;
                self.reasons.push(format!("available sessions {avail} < {wanted}: +{need} servers of {per} sessions"));
            }
        }
        let servers_for = move |_: Resources, m: u64| {
            if per == 0 { 0 } else { m.saturating_sub(avail).div_ceil(per as u64).min(u32::MAX as u64) as u32 }
        };
        self.forecast_share(need, servers_for, "servers");
        let need = self.batch_limit(need, up.undrained_n);
        up.wanted = need.max(self.floor_need(floor, *nondraining));
        up
    }

    fn floor_need(&mut self, floor: u32, nondraining: u32) -> u32 {
        let n = floor.saturating_sub(nondraining);
        if n > 0 {
            self.reasons.push(format!("minimum_instances {floor} from the schedule, {nondraining} VMs up: +{n}"));
        }
        n
    }

    /// Applies the provider backoff and the `max_instances` cap to the VMs the shortfall wants.
    fn limit_creates(&mut self, wanted: u32) -> u32 {
        if wanted == 0 {
            return 0;
        }
        let input = self.input;
        if let Some(until) = input.control.backoff_until
            && until > self.now
        {
            self.reasons.push(format!(
                "provider backoff until {} ({} s left, {} failures in a row): not creating {wanted} VMs",
                until.format("%H:%M:%S"),
                (until - self.now).num_seconds(),
                input.control.consecutive_failures
            ));
            return 0;
        }
        let room = input.max_instances.saturating_sub(input.owned_total);
        if room == 0 {
            self.reasons.push(format!(
                "at max_instances {} ({} owned): cannot create {wanted} more",
                input.max_instances, input.owned_total
            ));
            return 0;
        }
        if room < wanted {
            self.reasons.push(format!(
                "max_instances {} ({} owned): creating {room} of the {wanted} wanted",
                input.max_instances, input.owned_total
            ));
            return room;
        }
        self.reasons.push(format!("creating {wanted} VMs"));
        wanted
    }

    /// Our running, enabled VMs without sessions: VMs due for rotation first, then newest first (the
    /// newest VM is the one whose removal least surprises: it has served the least, and older VMs keep
    /// warm caches). With `protect`, retiring VMs and their replacements are left to rotation.
    fn idle_candidates(&self, protect: bool) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.claims.len())
            .filter(|&i| {
                let c = &self.claims[i];
                c.inst.state == InstanceState::Running
                    && c.destroy.is_none()
                    && c.sessions == 0
                    && !(protect && (c.retiring || c.protected))
                    && c.rec.is_some_and(|r| self.input.servers[r].enabled)
            })
            .collect();
        v.sort_by(|&a, &b| {
            let (a, b) = (&self.claims[a], &self.claims[b]);
            b.due
                .cmp(&a.due)
                .then_with(|| b.inst.created_at.cmp(&a.inst.created_at))
                .then_with(|| b.inst.id.cmp(&a.inst.id))
        });
        v
    }

    fn drain(&mut self, i: usize, reason: String) {
        let c = &self.claims[i];
        let server_id = self.input.servers[c.rec.expect("drained VMs have a record")].server_id.clone();
        self.actions_drain.push(Action::Drain { claim: c.inst.id.clone(), server_id, reason, replaced_by: None });
    }

    /// Enabled config outside its schedules: no new sessions may land on our VMs. Every running VM
    /// of ours with a Kasm record, busy or idle, and every booting one that would be activated now,
    /// is drained (disabled; the reaper deletes it once it has no sessions). No backoff: an
    /// inactive schedule is not a guess about demand. `label` names the schedules.
    fn drain_inactive(&mut self, label: &str) {
        let servers = &self.input.servers;
        let order: Vec<usize> = (0..self.claims.len())
            .filter(|&i| {
                let c = &self.claims[i];
                c.destroy.is_none()
                    // A record Kasm is deleting takes no sessions and cannot be disabled.
                    && c.rec.is_some_and(|r| !servers[r].is_going())
                    && (c.inst.state == InstanceState::Running
                        || (c.inst.state == InstanceState::Booting && c.activate.is_some()))
            })
            .collect();
        let (mut idle, mut busy, mut booted) = (0u32, 0u32, 0u32);
        for i in order {
            let c = &self.claims[i];
            let n = c.sessions;
            let reason = if c.inst.state == InstanceState::Booting {
                booted += 1;
                format!(
                    "schedule inactive ({label}): booted outside the schedule, not put into service; deleted once it has no sessions ({n} now)"
                )
            } else if n == 0 {
                idle += 1;
                format!("schedule inactive ({label}): no new sessions outside the schedule; idle, deleted now")
            } else {
                busy += 1;
                format!(
                    "schedule inactive ({label}): no new sessions outside the schedule; it has {n} sessions, deleted once they end"
                )
            };
            self.drain(i, reason);
        }
        if idle + busy + booted > 0 {
            self.reasons.push(format!(
                "schedule inactive ({label}): draining every VM of ours: {idle} idle, {busy} with sessions (deleted once they end), {booted} just booted"
            ));
        }
        let booting = self
            .claims
            .iter()
            .filter(|c| c.inst.state == InstanceState::Booting && c.activate.is_none() && c.destroy.is_none())
            .count();
        if booting > 0 {
            self.reasons.push(format!(
                "schedule inactive: {booting} VMs still booting are not put into service; drained once they check in"
            ));
        }
        let unreachable = self
            .claims
            .iter()
            .filter(|c| c.inst.state == InstanceState::Running && c.destroy.is_none() && c.rec.is_none())
            .count();
        if unreachable > 0 {
            self.reasons.push(format!(
                "schedule inactive: {unreachable} running VMs have no Kasm record to disable (they take no sessions); left to the dead-agent timer"
            ));
        }
    }

    /// Whether removing a VM that adds `contrib` keeps the standby. A dimension the VM adds nothing to
    /// is not affected by its removal (our reading: an unreachable GPU standby must not pin CPU VMs).
    fn removable(&self, free_rec: &Resources, avail_rec: u64, c: &Claim) -> bool {
        if self.server_pool {
            let contrib = if c.counts == Counts::Record { c.contrib_sessions as u64 } else { 0 };
            contrib == 0 || avail_rec >= contrib + self.target_sessions
        } else {
            let target = self.target;
            let contrib = if c.counts == Counts::Record { c.contrib } else { Resources::default() };
            DIMS.iter().all(|&d| contrib.get(d) <= EPS || free_rec.get(d) - contrib.get(d) >= target.get(d) - EPS)
        }
    }

    /// The scale-down rule with its backoff clock. Returns the new `request_downscale_at`.
    /// `scaling_up` says how this plan scales up, if it does: the clock then restarts.
    fn scale_down(
        &mut self,
        scaling_up: Option<String>,
        free_rec: &mut Resources,
        avail_rec: &mut u64,
        nondraining: u32,
        floor: u32,
    ) -> Option<DateTime<Utc>> {
        let was = self.input.control.request_downscale_at;
        let idle = self.idle_candidates(true);
        let removable: Vec<usize> =
            idle.iter().copied().filter(|&i| self.removable(free_rec, *avail_rec, &self.claims[i])).collect();
        let floor_allows = nondraining > floor;
        let holds = scaling_up.is_none() && !removable.is_empty() && floor_allows;
        if !holds {
            let why = if let Some(up) = scaling_up {
                format!("{up}; a scale-up restarts the clock")
            } else if idle.is_empty() {
                "no idle VM of ours".to_string()
            } else if removable.is_empty() {
                format!("none of the {} idle VMs can go without dropping below {}", idle.len(), self.kept_free())
            } else {
                format!("minimum_instances {floor} from the schedule ({nondraining} VMs up)")
            };
            self.reasons.push(match was {
                Some(t) => format!(
                    "scale-down condition stopped holding ({why}): clock reset (was since {})",
                    t.format("%H:%M:%S")
                ),
                None => format!("no scale-down: {why}"),
            });
            return None;
        }
        let backoff = crate::clock::secs(self.input.config.downscale_backoff);
        // The evaluation that sees the condition first only starts the clock, even with a backoff of
        // 0: a drain always needs the condition seen at two evaluations (and a stored clock).
        let Some(since) = was else {
            self.reasons.push(format!(
                "scale-down condition holds ({} idle VMs could go): clock started; backoff {backoff} s",
                removable.len()
            ));
            return Some(self.now);
        };
        let held = self.secs_since(since);
        if held < backoff {
            self.reasons.push(format!(
                "scale-down condition holds since {}; backoff {backoff} s not elapsed ({} s left)",
                since.format("%H:%M:%S"),
                backoff - held
            ));
            return Some(since);
        }
        // Greedy, newest first: each removal is checked against what is left after the previous ones.
        let mut up = nondraining;
        let mut drained = 0;
        for i in idle {
            if up <= floor {
                break;
            }
            if !self.removable(free_rec, *avail_rec, &self.claims[i]) {
                continue;
            }
            let c = &self.claims[i];
            if c.counts == Counts::Record {
                *free_rec = *free_rec - c.contrib;
                *avail_rec -= (c.contrib_sessions as u64).min(*avail_rec);
            }
            let reason = format!("idle, and the scale-down condition held for {held} s (backoff {backoff} s)");
            self.drain(i, reason);
            up -= 1;
            drained += 1;
        }
        self.reasons.push(format!(
            "scale-down condition held since {} ({held} s ≥ backoff {backoff} s): draining {drained} idle VMs; clock reset",
            since.format("%H:%M:%S")
        ));
        None
    }
}

/// What the forecast adds to what must be free (see "Forecast" in the module docs).
#[derive(Debug, Clone)]
struct ForecastAdd {
    /// `on`: added to `target`; `forecast_only`: what would be added (never added).
    acting: bool,
    /// Docker Agents: per dimension.
    extra: Resources,
    /// Server pools: available sessions.
    extra_sessions: u64,
    /// `forecast Mon 08:45: 38 cores from 3 weeks of history`.
    label: String,
    /// The lead time in seconds.
    lead: u64,
}

/// What the scale-up step decided before the cap and backoff.
#[derive(Debug, Default)]
struct ScaleUp {
    /// VMs wanted (standby and floor).
    wanted: u32,
    undrained_n: u32,
    undrained: Resources,
    undrained_sessions: u64,
}

/// A duration in seconds as days, hours and minutes: `1d 23h 0m`, `45m`.
fn fmt_age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}

/// A number without a useless fraction: 4 not 4.0, 0.5 stays.
fn num(v: f64) -> String {
    if (v - v.round()).abs() < EPS { format!("{}", v.round() as i64) } else { format!("{v:.2}") }
}

fn fmt_res(r: Resources) -> String {
    format!("cores {} memory_mb {} gpus {}", num(r.cores), num(r.memory_mb), num(r.gpus))
}

fn fmt_per_vm(p: &[Option<f64>; 3]) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), num);
    format!("cores {} memory_mb {} gpus {}", f(p[0]), f(p[1]), f(p[2]))
}
