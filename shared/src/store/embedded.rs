//! The embedded, file-backed store (redb): survives restarts; used by the local daemon.
//!
//! One redb file holds every table. Every mutation runs in one redb write transaction (redb serializes
//! them), so [`Store::try_claim`]'s count-then-insert and [`Store::update`]'s version check are atomic.
//! The per-provider-config count of claims toward the cap is a counter moved in the same transaction as
//! the claim, so the cap check does not scan. redb is synchronous: every call runs on tokio's blocking
//! pool. The change feed is fed after each committed claim write, in commit order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

use super::{Change, DecisionRecord, InstanceFilter, Store, StoreError, Versioned};
use crate::config::ConfigSet;
use crate::engine::ControlState;
use crate::model::{ClaimId, Instance};

/// Claim id → the claim, as JSON.
const INSTANCES: TableDefinition<&str, &str> = TableDefinition::new("instances");
/// Provider config → claims of it counting toward its cap (moved with every claim write).
const OWNED: TableDefinition<&str, u64> = TableDefinition::new("owned_by_provider_config");
/// Autoscale config → [`StoredControl`], as JSON.
const CONTROLS: TableDefinition<&str, &str> = TableDefinition::new("controls");
/// Autoscale config → [`StoredLease`], as JSON.
const LEASES: TableDefinition<&str, &str> = TableDefinition::new("leases");
/// Sequence number (ascending = older first) → the decision, as JSON.
const DECISIONS: TableDefinition<u64, &str> = TableDefinition::new("decisions");
/// (autoscale config, sequence number) → nothing: the per-config index of [`DECISIONS`].
const DECISIONS_BY_CONFIG: TableDefinition<(&str, u64), ()> = TableDefinition::new("decisions_by_config");
/// Suspect key → when first seen, as JSON.
const SUSPECTS: TableDefinition<&str, &str> = TableDefinition::new("suspects");
/// [`CONFIGS_KEY`] → the applied [`ConfigSet`], as JSON.
const CONFIGS: TableDefinition<&str, &str> = TableDefinition::new("configs");
const CONFIGS_KEY: &str = "current";

/// Decision records kept by default (the oldest are deleted first).
pub const DEFAULT_DECISION_CAP: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct StoredControl {
    version: u64,
    state: ControlState,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredLease {
    holder: String,
    expires_at: DateTime<Utc>,
}

/// Maps any error to [`StoreError::Backend`], saying what failed.
trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T, E: fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Backend(format!("{}: {e}", what())))
    }
}

fn to_json<T: Serialize>(v: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v).ctx(|| format!("failed to encode {what}"))
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).ctx(|| format!("corrupt record {what} in the state file"))
}

/// What the body of a write transaction did.
enum Written<T> {
    /// Wrote something: commit, then send these changes to the feed.
    Commit(T, Vec<Change>),
    /// Wrote nothing (refused, or already so): abort rather than pay for a commit.
    Nothing(T),
}

struct Inner {
    db: Database,
    path: PathBuf,
    feed: broadcast::Sender<Change>,
    /// Held from the start of a write transaction until its changes are sent, so the feed is in
    /// commit order. (redb serializes write transactions anyway; this adds no contention.)
    write_gate: Mutex<()>,
}

/// A file-backed [`Store`] on redb. Clones share the open file and the change feed.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    decision_cap: usize,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("decision_cap", &self.decision_cap)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the state file at `path`, creating it (and its parent directories) if missing.
    ///
    /// Only one `EmbeddedStore` may have a file open at a time; a second open of the same file fails
    /// until the first is dropped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .ctx(|| format!("failed to create the directory of state file {}", path.display()))?;
        }
        let db = Database::create(&path).ctx(|| format!("failed to open state file {}", path.display()))?;
        let txn = db.begin_write().ctx(|| format!("failed to initialise state file {}", path.display()))?;
        {
            let init = |name: &str, r: Result<(), redb::TableError>| {
                r.ctx(|| format!("failed to create table {name} in state file {}", path.display()))
            };
            init("instances", txn.open_table(INSTANCES).map(drop))?;
            init("owned", txn.open_table(OWNED).map(drop))?;
            init("controls", txn.open_table(CONTROLS).map(drop))?;
            init("leases", txn.open_table(LEASES).map(drop))?;
            init("decisions", txn.open_table(DECISIONS).map(drop))?;
            init("decisions_by_config", txn.open_table(DECISIONS_BY_CONFIG).map(drop))?;
            init("suspects", txn.open_table(SUSPECTS).map(drop))?;
            init("configs", txn.open_table(CONFIGS).map(drop))?;
        }
        txn.commit().ctx(|| format!("failed to initialise state file {}", path.display()))?;
        let (feed, _) = broadcast::channel(4096);
        Ok(Self {
            inner: Arc::new(Inner { db, path, feed, write_gate: Mutex::new(()) }),
            decision_cap: DEFAULT_DECISION_CAP,
        })
    }

    /// Keeps at most `cap` decision records (at least 1), deleting the oldest on each append.
    pub fn with_decision_cap(mut self, cap: usize) -> Self {
        self.decision_cap = cap.max(1);
        self
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a read transaction on the blocking pool.
    async fn read<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let txn = inner.db.begin_read().ctx(|| format!("failed to begin a read transaction to {what}"))?;
            f(&txn)
        })
        .await
        .ctx(|| format!("store task to {what} did not finish"))?
    }

    /// Runs `f` in a write transaction on the blocking pool, commits it if `f` succeeded (aborts it
    /// otherwise, or when it wrote nothing), then sends the changes `f` returned to the feed.
    async fn write<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<Written<T>, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _gate = inner.write_gate.lock().unwrap_or_else(|p| p.into_inner());
            let txn = inner.db.begin_write().ctx(|| format!("failed to begin a write transaction to {what}"))?;
            match f(&txn) {
                Ok(Written::Commit(out, changes)) => {
                    txn.commit().ctx(|| format!("failed to commit the write to {what}"))?;
                    for c in changes {
                        let _ = inner.feed.send(c);
                    }
                    Ok(out)
                }
                Ok(Written::Nothing(out)) => {
                    txn.abort().ctx(|| format!("failed to abort the empty write to {what}"))?;
                    Ok(out)
                }
                Err(e) => {
                    // Dropping would abort too; an abort failure must not hide the real error.
                    let _ = txn.abort();
                    Err(e)
                }
            }
        })
        .await
        .ctx(|| format!("store task to {what} did not finish"))?
    }
}

/// Moves the cap counter of `provider_config` by `delta`.
fn adjust_owned(owned: &mut redb::Table<&str, u64>, provider_config: &str, delta: i64) -> Result<(), StoreError> {
    let cur = owned.get(provider_config).ctx(|| format!("failed to read the count of {provider_config}"))?;
    let cur = cur.map(|g| g.value()).unwrap_or(0);
    let next = cur.checked_add_signed(delta).ok_or_else(|| {
        StoreError::Backend(format!(
            "claim count of {provider_config} would go below zero: the state file is inconsistent"
        ))
    })?;
    let r =
        if next == 0 { owned.remove(provider_config).map(drop) } else { owned.insert(provider_config, next).map(drop) };
    r.ctx(|| format!("failed to write the count of {provider_config}"))
}

fn read_instance(
    table: &impl ReadableTable<&'static str, &'static str>,
    id: &str,
) -> Result<Option<Instance>, StoreError> {
    let g = table.get(id).ctx(|| format!("failed to read claim {id}"))?;
    g.map(|g| from_json(g.value(), &format!("claim {id}"))).transpose()
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn try_claim(&self, claim: &Instance, cap: u32) -> Result<bool, StoreError> {
        let mut c = claim.clone();
        c.version = 1;
        let json = to_json(&c, "claim")?;
        self.write("write a claim", move |txn| {
            let mut instances = txn.open_table(INSTANCES).ctx(|| "failed to open table instances".into())?;
            let mut owned = txn.open_table(OWNED).ctx(|| "failed to open table owned".into())?;
            let id = c.id.as_str();
            if instances.get(id).ctx(|| format!("failed to read claim {id}"))?.is_some() {
                return Err(StoreError::Conflict { key: id.to_string() });
            }
            let count = owned.get(c.provider_config.as_str()).ctx(|| "failed to read the claim count".into())?;
            if count.map(|g| g.value()).unwrap_or(0) >= u64::from(cap) {
                return Ok(Written::Nothing(false));
            }
            instances.insert(id, json.as_str()).ctx(|| format!("failed to write claim {id}"))?;
            if c.state.counts_toward_max() {
                adjust_owned(&mut owned, &c.provider_config, 1)?;
            }
            Ok(Written::Commit(true, vec![Change { claim: c.id.clone(), old_state: None, new_state: c.state }]))
        })
        .await
    }

    async fn update(&self, new: &Instance) -> Result<Instance, StoreError> {
        let mut n = new.clone();
        self.write("update a claim", move |txn| {
            let mut instances = txn.open_table(INSTANCES).ctx(|| "failed to open table instances".into())?;
            let mut owned = txn.open_table(OWNED).ctx(|| "failed to open table owned".into())?;
            let Some(cur) = read_instance(&instances, n.id.as_str())? else {
                return Err(StoreError::NotFound { key: n.id.to_string() });
            };
            if cur.version != n.version {
                return Err(StoreError::Conflict { key: n.id.to_string() });
            }
            if cur.state != n.state && !cur.state.can_move_to(n.state) {
                return Err(StoreError::IllegalTransition { claim: n.id.clone(), from: cur.state, to: n.state });
            }
            n.version += 1;
            let json = to_json(&n, "claim")?;
            instances.insert(n.id.as_str(), json.as_str()).ctx(|| format!("failed to write claim {}", n.id))?;
            if cur.state.counts_toward_max() {
                adjust_owned(&mut owned, &cur.provider_config, -1)?;
            }
            if n.state.counts_toward_max() {
                adjust_owned(&mut owned, &n.provider_config, 1)?;
            }
            let changes = if cur.state != n.state {
                vec![Change { claim: n.id.clone(), old_state: Some(cur.state), new_state: n.state }]
            } else {
                vec![]
            };
            Ok(Written::Commit(n, changes))
        })
        .await
    }

    async fn get(&self, id: &ClaimId) -> Result<Option<Instance>, StoreError> {
        let id = id.clone();
        self.read("read a claim", move |txn| {
            let instances = txn.open_table(INSTANCES).ctx(|| "failed to open table instances".into())?;
            read_instance(&instances, id.as_str())
        })
        .await
    }

    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError> {
        let filter = filter.clone();
        self.read("list claims", move |txn| {
            let instances = txn.open_table(INSTANCES).ctx(|| "failed to open table instances".into())?;
            let mut v = Vec::new();
            for row in instances.iter().ctx(|| "failed to scan claims".into())? {
                let (k, val) = row.ctx(|| "failed to scan claims".into())?;
                let i: Instance = from_json(val.value(), &format!("claim {}", k.value()))?;
                if filter.matches(&i) {
                    v.push(i);
                }
            }
            v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
            Ok(v)
        })
        .await
    }

    async fn count_owned(&self, provider_config: &str) -> Result<u32, StoreError> {
        let pc = provider_config.to_string();
        self.read("count claims", move |txn| {
            let owned = txn.open_table(OWNED).ctx(|| "failed to open table owned".into())?;
            let n = owned.get(pc.as_str()).ctx(|| format!("failed to read the count of {pc}"))?;
            Ok(n.map(|g| g.value()).unwrap_or(0).try_into().unwrap_or(u32::MAX))
        })
        .await
    }

    async fn control(&self, c: &str) -> Result<Versioned<ControlState>, StoreError> {
        let c = c.to_string();
        self.read("read a control record", move |txn| {
            let controls = txn.open_table(CONTROLS).ctx(|| "failed to open table controls".into())?;
            let g = controls.get(c.as_str()).ctx(|| format!("failed to read control/{c}"))?;
            Ok(match g {
                Some(g) => {
                    let s: StoredControl = from_json(g.value(), &format!("control/{c}"))?;
                    Versioned { value: s.state, version: s.version }
                }
                None => Versioned { value: ControlState::default(), version: 0 },
            })
        })
        .await
    }

    async fn put_control(&self, c: &str, state: &ControlState, expected: u64) -> Result<(), StoreError> {
        let c = c.to_string();
        let json = to_json(&StoredControl { version: expected + 1, state: state.clone() }, "control record")?;
        self.write("write a control record", move |txn| {
            let mut controls = txn.open_table(CONTROLS).ctx(|| "failed to open table controls".into())?;
            let cur = match controls.get(c.as_str()).ctx(|| format!("failed to read control/{c}"))? {
                Some(g) => from_json::<StoredControl>(g.value(), &format!("control/{c}"))?.version,
                None => 0,
            };
            if cur != expected {
                return Err(StoreError::Conflict { key: format!("control/{c}") });
            }
            controls.insert(c.as_str(), json.as_str()).ctx(|| format!("failed to write control/{c}"))?;
            Ok(Written::Commit((), vec![]))
        })
        .await
    }

    async fn acquire_lease(&self, c: &str, holder: &str, now: DateTime<Utc>, ttl: u64) -> Result<bool, StoreError> {
        let c = c.to_string();
        let lease = StoredLease { holder: holder.to_string(), expires_at: super::lease_expiry(now, ttl) };
        let json = to_json(&lease, "lease")?;
        self.write("take a lease", move |txn| {
            let mut leases = txn.open_table(LEASES).ctx(|| "failed to open table leases".into())?;
            if let Some(g) = leases.get(c.as_str()).ctx(|| format!("failed to read lease/{c}"))? {
                let cur: StoredLease = from_json(g.value(), &format!("lease/{c}"))?;
                if cur.holder != lease.holder && cur.expires_at > now {
                    return Ok(Written::Nothing(false));
                }
            }
            leases.insert(c.as_str(), json.as_str()).ctx(|| format!("failed to write lease/{c}"))?;
            Ok(Written::Commit(true, vec![]))
        })
        .await
    }

    async fn release_lease(&self, c: &str, holder: &str) -> Result<(), StoreError> {
        let c = c.to_string();
        let holder = holder.to_string();
        self.write("release a lease", move |txn| {
            let mut leases = txn.open_table(LEASES).ctx(|| "failed to open table leases".into())?;
            let held = match leases.get(c.as_str()).ctx(|| format!("failed to read lease/{c}"))? {
                Some(g) => from_json::<StoredLease>(g.value(), &format!("lease/{c}"))?.holder == holder,
                None => false,
            };
            if !held {
                return Ok(Written::Nothing(()));
            }
            leases.remove(c.as_str()).ctx(|| format!("failed to delete lease/{c}"))?;
            Ok(Written::Commit((), vec![]))
        })
        .await
    }

    async fn record_decision(&self, rec: &DecisionRecord) -> Result<(), StoreError> {
        let json = to_json(rec, "decision")?;
        let config = rec.plan.autoscale_config.clone();
        let cap = self.decision_cap as u64;
        self.write("record a decision", move |txn| {
            let mut decisions = txn.open_table(DECISIONS).ctx(|| "failed to open table decisions".into())?;
            let mut by_config =
                txn.open_table(DECISIONS_BY_CONFIG).ctx(|| "failed to open table decisions_by_config".into())?;
            let last = decisions.last().ctx(|| "failed to read the newest decision".into())?;
            let seq = last.map(|(k, _)| k.value() + 1).unwrap_or(1);
            decisions.insert(seq, json.as_str()).ctx(|| "failed to write a decision".into())?;
            by_config.insert((config.as_str(), seq), ()).ctx(|| "failed to index a decision".into())?;
            while decisions.len().ctx(|| "failed to count decisions".into())? > cap {
                let Some((k, v)) = decisions.pop_first().ctx(|| "failed to delete the oldest decision".into())? else {
                    break;
                };
                let old_seq = k.value();
                let old: DecisionRecord = from_json(v.value(), &format!("decision {old_seq}"))?;
                drop((k, v));
                by_config
                    .remove((old.plan.autoscale_config.as_str(), old_seq))
                    .ctx(|| "failed to unindex the oldest decision".into())?;
            }
            Ok(Written::Commit((), vec![]))
        })
        .await
    }

    async fn decisions(&self, c: Option<&str>, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        let c = c.map(str::to_string);
        self.read("list decisions", move |txn| {
            let decisions = txn.open_table(DECISIONS).ctx(|| "failed to open table decisions".into())?;
            let mut out = Vec::new();
            match c {
                None => {
                    for row in decisions.iter().ctx(|| "failed to scan decisions".into())?.rev().take(limit) {
                        let (k, v) = row.ctx(|| "failed to scan decisions".into())?;
                        out.push(from_json(v.value(), &format!("decision {}", k.value()))?);
                    }
                }
                Some(c) => {
                    let by_config = txn
                        .open_table(DECISIONS_BY_CONFIG)
                        .ctx(|| "failed to open table decisions_by_config".into())?;
                    let range = by_config
                        .range((c.as_str(), 0u64)..=(c.as_str(), u64::MAX))
                        .ctx(|| format!("failed to scan decisions of {c}"))?;
                    for row in range.rev().take(limit) {
                        let (k, _) = row.ctx(|| format!("failed to scan decisions of {c}"))?;
                        let seq = k.value().1;
                        let Some(v) = decisions.get(seq).ctx(|| format!("failed to read decision {seq}"))? else {
                            return Err(StoreError::Backend(format!(
                                "decision {seq} of {c} is indexed but missing: the state file is inconsistent"
                            )));
                        };
                        out.push(from_json(v.value(), &format!("decision {seq}"))?);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn mark_suspect(&self, key: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let key = key.to_string();
        let json = to_json(&now, "suspect")?;
        self.write("mark a suspect", move |txn| {
            let mut suspects = txn.open_table(SUSPECTS).ctx(|| "failed to open table suspects".into())?;
            if let Some(g) = suspects.get(key.as_str()).ctx(|| format!("failed to read suspect {key}"))? {
                return Ok(Written::Nothing(from_json(g.value(), &format!("suspect {key}"))?));
            }
            suspects.insert(key.as_str(), json.as_str()).ctx(|| format!("failed to write suspect {key}"))?;
            Ok(Written::Commit(now, vec![]))
        })
        .await
    }

    async fn clear_suspect(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write("clear a suspect", move |txn| {
            let mut suspects = txn.open_table(SUSPECTS).ctx(|| "failed to open table suspects".into())?;
            let removed = suspects.remove(key.as_str()).ctx(|| format!("failed to delete suspect {key}"))?.is_some();
            Ok(if removed { Written::Commit((), vec![]) } else { Written::Nothing(()) })
        })
        .await
    }

    async fn load_configs(&self) -> Result<Option<ConfigSet>, StoreError> {
        self.read("load the configs", |txn| {
            let configs = txn.open_table(CONFIGS).ctx(|| "failed to open table configs".into())?;
            let g = configs.get(CONFIGS_KEY).ctx(|| "failed to read the configs".into())?;
            g.map(|g| from_json(g.value(), "configs")).transpose()
        })
        .await
    }

    async fn save_configs(&self, configs: &ConfigSet) -> Result<(), StoreError> {
        let json = to_json(configs, "configs")?;
        self.write("save the configs", move |txn| {
            let mut t = txn.open_table(CONFIGS).ctx(|| "failed to open table configs".into())?;
            t.insert(CONFIGS_KEY, json.as_str()).ctx(|| "failed to write the configs".into())?;
            Ok(Written::Commit((), vec![]))
        })
        .await
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.inner.feed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::EmbeddedStore;
    use crate::config::ConfigSet;
    use crate::engine::{ControlState, Plan, Summary};
    use crate::model::{ClaimId, Instance, InstanceState, OsFamily};
    use crate::store::{DecisionRecord, InstanceFilter, Store, StoreError, conformance, moved};
    use chrono::{Duration, TimeZone, Utc};
    use std::sync::Arc;

    fn claim(id: &str, pc: &str) -> Instance {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + Duration::nanoseconds(123_456_789);
        Instance::new_claim(ClaimId(id.into()), "asc", pc, "memory", OsFamily::Windows, t)
    }

    fn decision(config: &str, n: u32) -> DecisionRecord {
        DecisionRecord {
            at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + Duration::seconds(n.into()),
            trigger: "schedule".into(),
            plan: Plan {
                autoscale_config: config.into(),
                create: n,
                replacements: vec![],
                actions: vec![],
                request_downscale_at: None,
                reasons: vec![],
                summary: Summary::default(),
            },
        }
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedStore::open(dir.path().join("state.redb")).expect("open");
        assert!(s.subscribe().is_some(), "the embedded store has a change feed");
        conformance::run_all(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_respect_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedStore::open(dir.path().join("state.redb")).expect("open");
        conformance::concurrent_claims_respect_cap(Arc::new(s)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_one_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedStore::open(dir.path().join("state.redb")).expect("open");
        conformance::concurrent_updates_one_wins(Arc::new(s)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_feed_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedStore::open(dir.path().join("state.redb")).expect("open");
        conformance::concurrent_changes_feed_in_order(Arc::new(s)).await;
    }

    #[tokio::test]
    async fn everything_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/dir/state.redb");
        let now = Utc.with_ymd_and_hms(2026, 5, 6, 7, 8, 9).unwrap();
        let control = ControlState { request_downscale_at: Some(now), consecutive_failures: 3, ..Default::default() };
        let mut configs = ConfigSet::default();
        configs.settings.deployment_id = "restart".into();
        let (a, b, c) = (claim("r-a", "r-pc"), claim("r-b", "r-pc"), claim("r-c", "r-pc"));
        let (b2, c3) = {
            let s = EmbeddedStore::open(&path).expect("open creates the file and its directories");
            for x in [&a, &b, &c] {
                assert!(s.try_claim(x, 3).await.expect("claim"));
            }
            let b1 = s.get(&b.id).await.expect("get").expect("b");
            let b2 = s.update(&moved(&b1, InstanceState::Creating, now).expect("move")).await.expect("update");
            let c1 = s.get(&c.id).await.expect("get").expect("c");
            let c2 = s.update(&moved(&c1, InstanceState::Failed, now).expect("move")).await.expect("update");
            let c3 = s.update(&moved(&c2, InstanceState::Deleting, now).expect("move")).await.expect("update");
            s.put_control("asc", &control, 0).await.expect("put_control");
            for n in 0..5 {
                s.record_decision(&decision(if n == 4 { "other" } else { "asc" }, n)).await.expect("record");
            }
            s.mark_suspect("vm-x", now).await.expect("mark");
            assert!(s.acquire_lease("asc", "holder-1", now, 600).await.expect("lease"));
            s.save_configs(&configs).await.expect("save");
            (b2, c3)
        };

        let s = EmbeddedStore::open(&path).expect("reopen");
        assert_eq!(s.get(&a.id).await.expect("get").map(|i| i.version), Some(1));
        assert_eq!(s.get(&b.id).await.expect("get"), Some(b2.clone()), "claim b after restart");
        assert_eq!(s.get(&c.id).await.expect("get"), Some(c3.clone()), "claim c after restart");
        let all = s.list(&InstanceFilter::default()).await.expect("list");
        assert_eq!(all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["r-a", "r-b", "r-c"]);
        // The cap still holds across the restart (a failed-then-deleting claim counts).
        assert_eq!(s.count_owned("r-pc").await.expect("count"), 3);
        assert!(!s.try_claim(&claim("r-d", "r-pc"), 3).await.expect("claim"), "cap forgotten by a restart");
        assert!(matches!(s.try_claim(&a, 10).await, Err(StoreError::Conflict { .. })), "claim id forgotten");
        // Versions still guard updates.
        s.update(&c3).await.expect("an update at the current version after restart");
        let mut stale = c3.clone();
        stale.state = InstanceState::Deleted;
        assert!(matches!(s.update(&stale).await, Err(StoreError::Conflict { .. })), "stale version after restart");
        let c4 = s.get(&c.id).await.expect("get").expect("c");
        s.update(&moved(&c4, InstanceState::Deleted, now).expect("move")).await.expect("delete c");
        assert!(s.try_claim(&claim("r-d", "r-pc"), 3).await.expect("claim"), "slot freed after restart");
        assert!(!s.try_claim(&claim("r-e", "r-pc"), 3).await.expect("claim"));

        let ctl = s.control("asc").await.expect("control");
        assert_eq!((ctl.value, ctl.version), (control.clone(), 1));
        assert!(matches!(s.put_control("asc", &control, 0).await, Err(StoreError::Conflict { .. })));
        s.put_control("asc", &ControlState::default(), 1).await.expect("put_control from the reread version");

        let got = s.decisions(Some("asc"), 10).await.expect("decisions");
        assert_eq!(got, [decision("asc", 3), decision("asc", 2), decision("asc", 1), decision("asc", 0)]);
        s.record_decision(&decision("asc", 9)).await.expect("record after restart");
        assert_eq!(s.decisions(None, 2).await.expect("decisions"), [decision("asc", 9), decision("other", 4)]);

        assert_eq!(s.mark_suspect("vm-x", now + Duration::hours(1)).await.expect("mark"), now);
        assert!(!s.acquire_lease("asc", "holder-2", now + Duration::seconds(1), 600).await.expect("lease"));
        assert_eq!(s.load_configs().await.expect("load"), Some(configs));
    }

    #[tokio::test]
    async fn decision_log_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedStore::open(dir.path().join("state.redb")).expect("open").with_decision_cap(5);
        for n in 0..12 {
            s.record_decision(&decision(if n % 3 == 0 { "a" } else { "b" }, n)).await.expect("record");
        }
        let all = s.decisions(None, 100).await.expect("decisions");
        assert_eq!(all.iter().map(|d| d.plan.create).collect::<Vec<_>>(), [11, 10, 9, 8, 7]);
        // The per-config index forgot the deleted ones too.
        let a = s.decisions(Some("a"), 100).await.expect("decisions");
        assert_eq!(a.iter().map(|d| d.plan.create).collect::<Vec<_>>(), [9]);
        let b = s.decisions(Some("b"), 100).await.expect("decisions");
        assert_eq!(b.iter().map(|d| d.plan.create).collect::<Vec<_>>(), [11, 10, 8, 7]);
    }

    #[test]
    fn open_errors_say_what_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.redb");
        std::fs::write(&garbage, vec![0x5a; 8192]).expect("write");
        match EmbeddedStore::open(&garbage) {
            Err(StoreError::Backend(m)) => {
                assert!(m.contains("failed to open state file") && m.contains("garbage.redb"), "message: {m}")
            }
            other => panic!("garbage file opened: {other:?}"),
        }
        let path = dir.path().join("state.redb");
        let first = EmbeddedStore::open(&path).expect("open");
        match EmbeddedStore::open(&path) {
            Err(StoreError::Backend(m)) => assert!(m.contains("state.redb"), "message: {m}"),
            other => panic!("a second open of an open file: {other:?}"),
        }
        drop(first);
        EmbeddedStore::open(&path).expect("open after the first was dropped");
    }

    /// The cap counter moved with each claim write agrees with a scan of the claims, whatever happens.
    #[tokio::test]
    async fn cap_counter_matches_the_claims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddedStore::open(dir.path().join("state.redb")).expect("open");
        let now = Utc::now();
        let mut rng_state = 0x2545_f491_u64;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        for n in 0..200u64 {
            let pc = ["p0", "p1", "p2"][(next() % 3) as usize];
            if next() % 2 == 0 {
                let _ = s.try_claim(&claim(&format!("k-{n:03}"), pc), 6).await.expect("claim");
            } else {
                let live = s.list(&InstanceFilter::default()).await.expect("list");
                if live.is_empty() {
                    continue;
                }
                let pick = &live[(next() % live.len() as u64) as usize];
                let options: Vec<_> = InstanceState::ALL.into_iter().filter(|t| pick.state.can_move_to(*t)).collect();
                let to = options[(next() % options.len() as u64) as usize];
                s.update(&moved(pick, to, now).expect("move")).await.expect("update");
            }
        }
        let all = s.list(&InstanceFilter { include_deleted: true, ..Default::default() }).await.expect("list");
        assert!(all.iter().any(|i| i.state == InstanceState::Deleted), "the walk deleted nothing");
        for pc in ["p0", "p1", "p2"] {
            let scanned = all.iter().filter(|i| i.provider_config == pc && i.state.counts_toward_max()).count();
            assert_eq!(s.count_owned(pc).await.expect("count") as usize, scanned, "counter of {pc}");
            assert!(scanned <= 6, "{pc} over its cap: {scanned}");
        }
    }
}
