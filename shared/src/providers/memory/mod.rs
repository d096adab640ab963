//! The in-memory provider: VMs in a map. The test double every provider is compared to, and the
//! simulator's backend (with failure injection).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::{Capabilities, ProviderError, Vm, VmProvider, VmSpec, VmState};
use crate::model::OwnerLabels;

#[derive(Debug, Default)]
struct State {
    vms: BTreeMap<String, Vm>,
    by_claim: BTreeMap<String, String>,
    next_id: u64,
    failures: VecDeque<ProviderError>,
    create_calls: u64,
    delete_calls: u64,
    now: Option<DateTime<Utc>>,
}

/// An in-memory [`VmProvider`].
#[derive(Debug, Default)]
pub struct MemoryProvider {
    state: Mutex<State>,
}

impl MemoryProvider {
    /// An empty provider.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("provider lock")
    }

    /// The next `count` creates fail with `err` (capacity errors, throttling, outages).
    pub fn fail_next_creates(&self, err: ProviderError, count: u32) {
        let mut st = self.lock();
        for _ in 0..count {
            st.failures.push_back(err.clone());
        }
    }

    /// Sets the time stamped on new VMs (the simulator's virtual clock).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.lock().now = Some(now);
    }

    /// Every VM that exists.
    pub fn vms(&self) -> Vec<Vm> {
        self.lock().vms.values().cloned().collect()
    }

    /// Adds a VM directly, as if made outside our control flow (orphan tests).
    pub fn insert_vm(&self, vm: Vm) {
        self.lock().vms.insert(vm.id.clone(), vm);
    }

    /// How many times `create_vm` was called, and how many of those calls were answered.
    pub fn create_calls(&self) -> u64 {
        self.lock().create_calls
    }

    /// How many times `delete_vm` was called.
    pub fn delete_calls(&self) -> u64 {
        self.lock().delete_calls
    }
}

#[async_trait]
impl VmProvider for MemoryProvider {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { idempotency_token: true, windows_password: false, server_side_label_filter: true }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        let mut st = self.lock();
        st.create_calls += 1;
        if let Some(err) = st.failures.pop_front() {
            return Err(err);
        }
        if let Some(id) = st.by_claim.get(spec.claim.as_str()).cloned()
            && let Some(vm) = st.vms.get(&id)
        {
            return Ok(vm.clone());
        }
        st.next_id += 1;
        let n = st.next_id;
        let vm = Vm {
            id: format!("vm-{n:06}"),
            name: spec.name.clone(),
            state: VmState::Running,
            labels: spec.labels.to_map(),
            private_ip: Some(format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)),
            public_ip: None,
            created_at: st.now,
        };
        st.by_claim.insert(spec.claim.0.clone(), vm.id.clone());
        st.vms.insert(vm.id.clone(), vm.clone());
        Ok(vm)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        self.lock().vms.get(id).cloned().ok_or_else(|| ProviderError::NotFound { provider: "memory", id: id.into() })
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        let mut st = self.lock();
        st.delete_calls += 1;
        st.vms.remove(id);
        Ok(())
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        Ok(self.lock().vms.values().filter(|v| labels.matches(&v.labels)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let p = super::MemoryProvider::new();
        crate::providers::conformance::run_all(&p, "conformance-memory").await;
    }
}
