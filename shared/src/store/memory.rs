//! The in-memory store: one mutex over maps. Tests and the simulator.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use tokio::sync::broadcast;

use super::{Change, DecisionRecord, InstanceFilter, Store, StoreError, Versioned};
use crate::config::ConfigSet;
use crate::engine::ControlState;
use crate::model::{ClaimId, Instance};

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<ClaimId, Instance>,
    controls: HashMap<String, (ControlState, u64)>,
    leases: HashMap<String, (String, DateTime<Utc>)>,
    decisions: Vec<DecisionRecord>,
    suspects: HashMap<String, DateTime<Utc>>,
    configs: Option<ConfigSet>,
}

/// An in-memory [`Store`].
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    feed: broadcast::Sender<Change>,
    /// Decision records kept (oldest dropped first), so long simulations stay small.
    decision_cap: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let (feed, _) = broadcast::channel(4096);
        Self { state: Mutex::new(State::default()), feed, decision_cap: 10_000 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("store lock")
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn try_claim(&self, claim: &Instance, cap: u32) -> Result<bool, StoreError> {
        let mut st = self.lock();
        if st.instances.contains_key(&claim.id) {
            return Err(StoreError::Conflict { key: claim.id.to_string() });
        }
        let owned = st
            .instances
            .values()
            .filter(|i| i.provider_config == claim.provider_config && i.state.counts_toward_max())
            .count() as u32;
        if owned >= cap {
            return Ok(false);
        }
        let mut c = claim.clone();
        c.version = 1;
        st.instances.insert(c.id.clone(), c);
        // Sent under the lock, so the feed is in write order.
        let _ = self.feed.send(Change { claim: claim.id.clone(), old_state: None, new_state: claim.state });
        Ok(true)
    }

    async fn update(&self, new: &Instance) -> Result<Instance, StoreError> {
        let mut st = self.lock();
        let Some(cur) = st.instances.get(&new.id) else {
            return Err(StoreError::NotFound { key: new.id.to_string() });
        };
        if cur.version != new.version {
            return Err(StoreError::Conflict { key: new.id.to_string() });
        }
        if cur.state != new.state && !cur.state.can_move_to(new.state) {
            return Err(StoreError::IllegalTransition { claim: new.id.clone(), from: cur.state, to: new.state });
        }
        let old_state = cur.state;
        let mut n = new.clone();
        n.version += 1;
        st.instances.insert(n.id.clone(), n.clone());
        // Sent under the lock, so the feed is in write order.
        if old_state != n.state {
            let _ = self.feed.send(Change { claim: n.id.clone(), old_state: Some(old_state), new_state: n.state });
        }
        Ok(n)
    }

    async fn get(&self, id: &ClaimId) -> Result<Option<Instance>, StoreError> {
        Ok(self.lock().instances.get(id).cloned())
    }

    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError> {
        let st = self.lock();
        let mut v: Vec<Instance> = st.instances.values().filter(|i| filter.matches(i)).cloned().collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn count_owned(&self, provider_config: &str) -> Result<u32, StoreError> {
        Ok(self
            .lock()
            .instances
            .values()
            .filter(|i| i.provider_config == provider_config && i.state.counts_toward_max())
            .count() as u32)
    }

    async fn control(&self, c: &str) -> Result<Versioned<ControlState>, StoreError> {
        Ok(match self.lock().controls.get(c) {
            Some((s, v)) => Versioned { value: s.clone(), version: *v },
            None => Versioned { value: ControlState::default(), version: 0 },
        })
    }

    async fn put_control(&self, c: &str, state: &ControlState, expected: u64) -> Result<(), StoreError> {
        let mut st = self.lock();
        let cur = st.controls.get(c).map(|(_, v)| *v).unwrap_or(0);
        if cur != expected {
            return Err(StoreError::Conflict { key: format!("control/{c}") });
        }
        st.controls.insert(c.to_string(), (state.clone(), expected + 1));
        Ok(())
    }

    async fn acquire_lease(&self, c: &str, holder: &str, now: DateTime<Utc>, ttl: u64) -> Result<bool, StoreError> {
        let mut st = self.lock();
        if let Some((h, exp)) = st.leases.get(c)
            && h != holder
            && *exp > now
        {
            return Ok(false);
        }
        st.leases.insert(c.to_string(), (holder.to_string(), super::lease_expiry(now, ttl)));
        Ok(true)
    }

    async fn release_lease(&self, c: &str, holder: &str) -> Result<(), StoreError> {
        let mut st = self.lock();
        if st.leases.get(c).is_some_and(|(h, _)| h == holder) {
            st.leases.remove(c);
        }
        Ok(())
    }

    async fn record_decision(&self, rec: &DecisionRecord) -> Result<(), StoreError> {
        let mut st = self.lock();
        st.decisions.push(rec.clone());
        if st.decisions.len() > self.decision_cap {
            let excess = st.decisions.len() - self.decision_cap;
            st.decisions.drain(..excess);
        }
        Ok(())
    }

    async fn decisions(&self, c: Option<&str>, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        let st = self.lock();
        Ok(st
            .decisions
            .iter()
            .rev()
            .filter(|d| c.is_none_or(|c| d.plan.autoscale_config == c))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn mark_suspect(&self, key: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        Ok(*self.lock().suspects.entry(key.to_string()).or_insert(now))
    }

    async fn clear_suspect(&self, key: &str) -> Result<(), StoreError> {
        self.lock().suspects.remove(key);
        Ok(())
    }

    async fn load_configs(&self) -> Result<Option<ConfigSet>, StoreError> {
        Ok(self.lock().configs.clone())
    }

    async fn save_configs(&self, configs: &ConfigSet) -> Result<(), StoreError> {
        self.lock().configs = Some(configs.clone());
        Ok(())
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.feed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;
    use crate::store::{Store, conformance};
    use std::sync::Arc;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let s = MemoryStore::new();
        assert!(s.subscribe().is_some(), "the memory store has a change feed");
        conformance::run_all(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_respect_cap() {
        conformance::concurrent_claims_respect_cap(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_one_wins() {
        conformance::concurrent_updates_one_wins(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_feed_in_order() {
        for _ in 0..5 {
            conformance::concurrent_changes_feed_in_order(Arc::new(MemoryStore::new())).await;
        }
    }
}
