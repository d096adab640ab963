//! The data every layer shares: resources, claim ids, and the [`Instance`] claim lifecycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Cores, memory and GPUs. `f64` because Kasm allows fractional core overrides; memory in MB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores.
    pub cores: f64,
    /// Memory in megabytes.
    pub memory_mb: f64,
    /// GPUs.
    pub gpus: f64,
}

impl Resources {
    /// A resource triple.
    pub const fn new(cores: f64, memory_mb: f64, gpus: f64) -> Self {
        Self { cores, memory_mb, gpus }
    }

    /// The three dimensions with their names, in a fixed order (cores, memory, gpus).
    pub fn dims(&self) -> [(Dim, f64); 3] {
        [(Dim::Cores, self.cores), (Dim::MemoryMb, self.memory_mb), (Dim::Gpus, self.gpus)]
    }

    /// The value of one dimension.
    pub fn get(&self, d: Dim) -> f64 {
        match d {
            Dim::Cores => self.cores,
            Dim::MemoryMb => self.memory_mb,
            Dim::Gpus => self.gpus,
        }
    }

    /// Sets one dimension.
    pub fn set(&mut self, d: Dim, v: f64) {
        match d {
            Dim::Cores => self.cores = v,
            Dim::MemoryMb => self.memory_mb = v,
            Dim::Gpus => self.gpus = v,
        }
    }
}

impl std::ops::Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources::new(self.cores + o.cores, self.memory_mb + o.memory_mb, self.gpus + o.gpus)
    }
}

impl std::ops::AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        *self = *self + o;
    }
}

impl std::ops::Mul<f64> for Resources {
    type Output = Resources;
    /// Every dimension times `k` (e.g. one session's size × sessions).
    fn mul(self, k: f64) -> Resources {
        Resources::new(self.cores * k, self.memory_mb * k, self.gpus * k)
    }
}

impl std::ops::Sub for Resources {
    type Output = Resources;
    fn sub(self, o: Resources) -> Resources {
        Resources::new(self.cores - o.cores, self.memory_mb - o.memory_mb, self.gpus - o.gpus)
    }
}

/// One resource dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// CPU cores.
    Cores,
    /// Memory in MB.
    MemoryMb,
    /// GPUs.
    Gpus,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dim::Cores => "cores",
            Dim::MemoryMb => "memory_mb",
            Dim::Gpus => "gpus",
        })
    }
}

// The randomness of new claim ids and Kasm server ids: the OS-seeded generator, or — on the thread
// a simulation runs on — a seeded one (`SeededIds`) so that its runs are the same every time (ids
// order the servers Kasm lists, and so which VM a session lands on and which one is drained). Per
// thread, so ids drawn elsewhere in the process (other simulations or tests running beside it) neither
// take from the simulation's sequence nor come from it.
thread_local! {
    static SEEDED_IDS: std::cell::RefCell<Option<rand::rngs::StdRng>> = const { std::cell::RefCell::new(None) };
}

fn random_u128() -> u128 {
    use rand::Rng as _;
    SEEDED_IDS.with_borrow_mut(|seeded| match seeded.as_mut() {
        Some(r) => r.random(),
        None => rand::random(),
    })
}

/// While alive, new ids drawn on this thread come from a generator seeded with `seed`; dropped, they
/// come from the OS-seeded one again. Only the simulator uses it; it runs on one thread (a
/// current-thread runtime, nothing spawned), and the guard is `!Send` so it cannot end on another.
#[derive(Debug)]
pub struct SeededIds(std::marker::PhantomData<*const ()>);

impl SeededIds {
    /// Seeds this thread's id generation for the lifetime of the guard.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng as _;
        SEEDED_IDS.with_borrow_mut(|s| *s = Some(rand::rngs::StdRng::seed_from_u64(seed)));
        SeededIds(std::marker::PhantomData)
    }
}

impl Drop for SeededIds {
    fn drop(&mut self) {
        SEEDED_IDS.with_borrow_mut(|s| *s = None);
    }
}

/// A claim id: a ULID, which doubles as the provider idempotency token and the VM name suffix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClaimId(pub String);

impl ClaimId {
    /// A new, time-ordered claim id for `now`. Lower-cased so it is valid in every provider's names.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let ms = now.timestamp_millis().max(0) as u64;
        let ulid = ulid::Ulid::from_parts(ms, random_u128());
        Self(ulid.to_string().to_ascii_lowercase())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a claim is in its life. Every transition is a conditional write on the previous state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Claimed by the evaluator; no provider call made yet.
    Requested,
    /// The provisioner is calling the provider.
    Creating,
    /// The provider made the VM; it has not checked in to Kasm yet.
    Booting,
    /// Checked in to Kasm and serving.
    Running,
    /// Disabled in Kasm; waiting for its sessions to end before deletion.
    Draining,
    /// Being destroyed at the provider.
    Deleting,
    /// Gone at the provider and in Kasm. Does not count towards `max_instances`.
    Deleted,
    /// Creation failed; still counts towards `max_instances` until the reaper has cleaned it up.
    Failed,
}

impl InstanceState {
    /// Every state, in lifecycle order.
    pub const ALL: [InstanceState; 8] = [
        InstanceState::Requested,
        InstanceState::Creating,
        InstanceState::Booting,
        InstanceState::Running,
        InstanceState::Draining,
        InstanceState::Deleting,
        InstanceState::Deleted,
        InstanceState::Failed,
    ];

    /// Whether the claim still occupies one of the provider config's `max_instances` slots.
    pub fn counts_toward_max(self) -> bool {
        self != InstanceState::Deleted
    }

    /// Whether the VM is on its way up (adds capacity soon).
    pub fn is_pending(self) -> bool {
        matches!(self, InstanceState::Requested | InstanceState::Creating | InstanceState::Booting)
    }

    /// The states a claim may move to from this one.
    pub fn can_move_to(self, to: InstanceState) -> bool {
        use InstanceState::*;
        match (self, to) {
            (Requested, Creating | Deleting | Failed | Deleted) => true,
            // Creating -> Requested: a retryable provider error hands the claim back.
            (Creating, Booting | Requested | Failed | Deleting) => true,
            (Booting, Running | Draining | Deleting | Failed) => true,
            (Running, Draining | Deleting) => true,
            // Draining -> Running: demand came back before the VM was idle.
            (Draining, Deleting | Running) => true,
            (Deleting, Deleted | Failed) => true,
            (Failed, Deleting | Deleted) => true,
            _ => false,
        }
    }

    /// The state's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Requested => "requested",
            InstanceState::Creating => "creating",
            InstanceState::Booting => "booting",
            InstanceState::Running => "running",
            InstanceState::Draining => "draining",
            InstanceState::Deleting => "deleting",
            InstanceState::Deleted => "deleted",
            InstanceState::Failed => "failed",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OS family of the VMs a config makes (decides script wrapping and password retrieval).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    /// Linux (the default).
    #[default]
    Linux,
    /// Windows.
    Windows,
}

/// When an [`Instance`] entered each state it went through: state name → instant, in name order,
/// stored as a map (as a `BTreeMap` of them is). A short sorted list: a `BTreeMap` allocates a node
/// with room for eleven entries for the first one, and a claim goes through one to six states —
/// 1,000 configs' claims held at once (the `decide_rss` benchmark) took 4.4 MiB more that way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transitions(Vec<(String, DateTime<Utc>)>);

impl Transitions {
    /// When the state named `state` was entered, if it was.
    pub fn get(&self, state: &str) -> Option<&DateTime<Utc>> {
        self.position(state).ok().map(|i| &self.0[i].1)
    }

    /// Records that `state` was entered `at`; returns the instant it replaces, if any.
    pub fn insert(&mut self, state: String, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.position(&state) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, at)),
            Err(i) => {
                self.0.insert(i, (state, at));
                None
            }
        }
    }

    /// Forgets when `state` was entered; returns that instant, if it was recorded.
    pub fn remove(&mut self, state: &str) -> Option<DateTime<Utc>> {
        self.position(state).ok().map(|i| self.0.remove(i).1)
    }

    /// The states entered and when, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DateTime<Utc>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many states are recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, state: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(state))
    }
}

impl Serialize for Transitions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Transitions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, DateTime<Utc>>::deserialize(deserializer)?;
        Ok(Transitions(map.into_iter().collect()))
    }
}

/// One VM we intend to own: written as a claim **before** any provider call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Claim id (ULID), also the provider idempotency token and VM name suffix.
    pub id: ClaimId,
    /// The autoscale config that asked for it.
    pub autoscale_config: String,
    /// The VM provider config it is created with (the `max_instances` scope).
    pub provider_config: String,
    /// The provider's short name (aws, proxmox, ...).
    pub provider: String,
    /// Current state.
    pub state: InstanceState,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: u64,
    /// The provider's id of the VM, once known.
    pub vm_id: Option<String>,
    /// The Kasm record id: for agents that register themselves, the id we render as `{server_id}`;
    /// for records we create first (server pools, `precreate` agents), the id Kasm gave the record.
    pub kasm_server_id: String,
    /// The VM's name at the provider (deterministic from the claim id).
    pub vm_name: String,
    /// Hostname / IP reported by the provider, used to match Kasm records when the id is not known.
    pub hostname: Option<String>,
    /// Private IP as reported by the provider.
    pub private_ip: Option<String>,
    /// OS family.
    pub os: OsFamily,
    /// When the claim was made.
    pub created_at: DateTime<Utc>,
    /// When the claim entered its current state.
    pub state_since: DateTime<Utc>,
    /// When each state was entered.
    pub transitions: Transitions,
    /// Provider create attempts so far.
    pub attempts: u32,
    /// Do not retry before this instant (failure backoff).
    pub not_before: Option<DateTime<Utc>>,
    /// Last error, redacted.
    pub last_error: Option<String>,
    /// Why the claim is being drained or deleted.
    pub end_reason: Option<String>,
    /// The Windows password the provider generated was handed to the Kasm server record (the password
    /// itself is never stored here). Absent in records written before the field existed.
    #[serde(default)]
    pub password_set: bool,
    /// Server rotation: the claim of the VM this one was created to replace (it is drained once this
    /// one serves). Absent for ordinary claims and in records written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<ClaimId>,
    /// DNS registration (`register_dns`): the VM's A record, and whether the DNS provider has it yet.
    /// Absent without DNS and in records written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsRegistration>,
}

/// The A record of a claim's VM (`<vm_name>.<base_domain_name>`), as far as it was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRegistration {
    /// The DNS-provider config the record is kept in.
    pub dns_config: String,
    /// The record's name (a fully qualified domain name, lower case, without the final dot).
    pub name: String,
    /// The address the DNS provider holds for the name; `None` until a registration succeeded.
    pub address: Option<String>,
    /// Failed registrations in a row (the retry delay doubles with each).
    #[serde(default)]
    pub failures: u32,
    /// Not retried before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

impl Instance {
    /// Records `message` as the claim's `last_error`, sanitised ([`crate::http::sanitise`]): known
    /// secrets in any encoding and sensitive-looking fields redacted, control characters escaped,
    /// bounded. The store and `status` only ever see this form.
    pub fn set_error(&mut self, message: &str) {
        self.last_error = Some(crate::http::sanitise(message));
    }

    /// A fresh claim in state `requested`.
    pub fn new_claim(
        id: ClaimId,
        autoscale_config: &str,
        provider_config: &str,
        provider: &str,
        os: OsFamily,
        now: DateTime<Utc>,
    ) -> Self {
        let vm_name = format!("kasm-{}", id.as_str());
        let mut transitions = Transitions::default();
        transitions.insert(InstanceState::Requested.as_str().to_string(), now);
        Instance {
            // 32 hex digits: how Kasm lists server ids (and what the agent installs with as `-i`).
            kasm_server_id: uuid::Builder::from_random_bytes(random_u128().to_le_bytes())
                .into_uuid()
                .simple()
                .to_string(),
            vm_name,
            id,
            autoscale_config: autoscale_config.to_string(),
            provider_config: provider_config.to_string(),
            provider: provider.to_string(),
            state: InstanceState::Requested,
            version: 0,
            vm_id: None,
            hostname: None,
            private_ip: None,
            os,
            created_at: now,
            state_since: now,
            transitions,
            attempts: 0,
            not_before: None,
            last_error: None,
            end_reason: None,
            password_set: false,
            replaces: None,
            dns: None,
        }
    }

    /// Since when the VM exists: the provisioner's move to `booting` (the provider's create
    /// returned), else — a record without that transition — the claim's creation, which is earlier, so
    /// an age read from it is never too young. Server rotation measures a VM's age from here.
    pub fn vm_since(&self) -> DateTime<Utc> {
        self.transitions.get(InstanceState::Booting.as_str()).copied().unwrap_or(self.created_at)
    }

    /// How long the claim has been in its current state.
    pub fn age_in_state(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.state_since
    }
}

/// The ownership labels put on every resource we create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerLabels {
    /// The deployment id (one kasm-autoscale installation).
    pub deployment: String,
    /// The autoscale config id, when known.
    pub autoscale_config: Option<String>,
    /// The claim id, when known.
    pub claim: Option<ClaimId>,
}

impl OwnerLabels {
    /// Label keys, the same on every provider (providers that restrict characters map them).
    pub const DEPLOYMENT: &'static str = "kasm-autoscale-deployment";
    /// Label key of the autoscale config.
    pub const CONFIG: &'static str = "kasm-autoscale-config";
    /// Label key of the claim id.
    pub const CLAIM: &'static str = "kasm-autoscale-claim";

    /// Labels of a whole deployment (what the orphan sweep lists).
    pub fn deployment(deployment: &str) -> Self {
        Self { deployment: deployment.to_string(), autoscale_config: None, claim: None }
    }

    /// Labels for one claim.
    pub fn for_claim(deployment: &str, inst: &Instance) -> Self {
        Self {
            deployment: deployment.to_string(),
            autoscale_config: Some(inst.autoscale_config.clone()),
            claim: Some(inst.id.clone()),
        }
    }

    /// The labels as key/value pairs.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(Self::DEPLOYMENT.to_string(), self.deployment.clone());
        if let Some(c) = &self.autoscale_config {
            m.insert(Self::CONFIG.to_string(), c.clone());
        }
        if let Some(c) = &self.claim {
            m.insert(Self::CLAIM.to_string(), c.0.clone());
        }
        m
    }

    /// Whether a resource with `labels` matches every label set here.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.to_map().iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_claim_stored_before_rotation_existed_still_loads() {
        let t = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        let mut c = Instance::new_claim(ClaimId("01old".into()), "a", "p", "aws", OsFamily::Linux, t);
        // An ordinary claim is stored without the field, exactly as before it existed.
        let mut doc = serde_json::to_value(&c).unwrap();
        assert!(doc.get("replaces").is_none(), "{doc}");
        doc.as_object_mut().unwrap().remove("password_set");
        let back: Instance = serde_json::from_value(doc).unwrap();
        assert_eq!(back, c);
        c.replaces = Some(ClaimId("01older".into()));
        let back: Instance = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.replaces, Some(ClaimId("01older".into())));
    }

    #[test]
    fn a_vm_exists_since_it_was_booting() {
        let t = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        let mut c = Instance::new_claim(ClaimId("01a".into()), "a", "p", "aws", OsFamily::Linux, t);
        assert_eq!(c.vm_since(), t, "no booting transition: the claim's creation");
        let booted = t + chrono::Duration::minutes(7);
        c.transitions.insert("booting".into(), booted);
        c.transitions.insert("running".into(), booted + chrono::Duration::minutes(4));
        assert_eq!(c.vm_since(), booted);
    }

    /// `Transitions` is stored exactly as the `BTreeMap` it replaced: a map in state-name order, read
    /// back the same from a claim written before it (and from keys in any order).
    #[test]
    fn transitions_are_stored_as_the_map_they_were() {
        let t = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        let mut tr = Transitions::default();
        let mut old = BTreeMap::new();
        for (i, state) in ["running", "booting", "requested", "creating", "draining"].into_iter().enumerate() {
            let at = t + chrono::Duration::minutes(i as i64);
            assert_eq!(tr.insert(state.to_string(), at), None);
            old.insert(state.to_string(), at);
        }
        assert_eq!(serde_json::to_string(&tr).unwrap(), serde_json::to_string(&old).unwrap());
        let order: Vec<&str> = tr.iter().map(|(k, _)| k).collect();
        assert_eq!(order, ["booting", "creating", "draining", "requested", "running"]);
        let unordered = r#"{"running":"2026-01-05T08:00:00Z","booting":"2026-01-05T08:01:00Z"}"#;
        let back: Transitions = serde_json::from_str(unordered).unwrap();
        assert_eq!(back.get("booting"), Some(&(t + chrono::Duration::minutes(1))));
        assert_eq!(back.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["booting", "running"]);
        // A second entry into a state keeps the newest instant; removing forgets it.
        let later = t + chrono::Duration::hours(1);
        assert_eq!(tr.insert("booting".into(), later), Some(t + chrono::Duration::minutes(1)));
        assert_eq!((tr.get("booting"), tr.len()), (Some(&later), 5));
        assert_eq!(tr.remove("booting"), Some(later));
        assert_eq!(tr.remove("booting"), None);
        assert_eq!((tr.get("booting"), tr.len()), (None, 4));
        assert!(!tr.is_empty() && Transitions::default().is_empty());
    }
}
