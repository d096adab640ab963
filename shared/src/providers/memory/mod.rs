//! The in-memory provider: VMs in a map. The test double every provider is compared to, and the
//! simulator's backend (with failure injection). Its fault queue makes it its own conformance
//! `Harness` (`providers::conformance`, with the `conformance` feature): the injected faults are
//! the errors a provider makes of an API's answers; it has no HTTP client, so nothing is retried
//! inside it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::{Capabilities, ProviderError, Vm, VmProvider, VmSpec, VmState};
use crate::model::OwnerLabels;

/// The provider calls the fault queue can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    Create,
    Get,
    Delete,
    List,
}

/// What the next call of a kind does.
#[derive(Debug, Clone)]
enum Queued {
    /// Works as usual.
    Pass,
    /// Fails with this error, changing nothing.
    Fail(ProviderError),
    /// Does its work, then answers a transient error (the answer was lost).
    #[cfg_attr(not(any(test, feature = "conformance")), allow(dead_code))]
    LoseAnswer,
}

#[derive(Debug, Default)]
struct State {
    vms: BTreeMap<String, Vm>,
    by_claim: BTreeMap<String, String>,
    next_id: u64,
    create_calls: u64,
    delete_calls: u64,
    now: Option<DateTime<Utc>>,
    queued: BTreeMap<Call, VecDeque<Queued>>,
    calls: BTreeMap<Call, usize>,
    last_token: Option<String>,
    listed: usize,
    #[cfg_attr(not(any(test, feature = "conformance")), allow(dead_code))]
    foreign_seq: u64,
}

impl State {
    /// Counts a call of `kind` and takes what it is to do.
    fn take(&mut self, kind: Call) -> Queued {
        *self.calls.entry(kind).or_default() += 1;
        self.queued.get_mut(&kind).and_then(VecDeque::pop_front).unwrap_or(Queued::Pass)
    }
}

fn lost(what: &str) -> ProviderError {
    ProviderError::Transient { provider: "memory", message: format!("{what}: the answer was lost") }
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
        st.queued.entry(Call::Create).or_default().extend(std::iter::repeat_n(Queued::Fail(err), count as usize));
    }

    /// The next `count` deletes fail with `err` (outages, permission lost), deleting nothing.
    pub fn fail_next_deletes(&self, err: ProviderError, count: u32) {
        let mut st = self.lock();
        st.queued.entry(Call::Delete).or_default().extend(std::iter::repeat_n(Queued::Fail(err), count as usize));
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
        let lose = match st.take(Call::Create) {
            Queued::Fail(e) => return Err(e),
            Queued::LoseAnswer => true,
            Queued::Pass => false,
        };
        // The claim is the idempotency token.
        st.last_token = Some(spec.claim.0.clone());
        if let Some(id) = st.by_claim.get(spec.claim.as_str()).cloned()
            && let Some(vm) = st.vms.get(&id)
        {
            return if lose { Err(lost("create")) } else { Ok(vm.clone()) };
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
        if lose { Err(lost("create")) } else { Ok(vm) }
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let mut st = self.lock();
        match st.take(Call::Get) {
            Queued::Fail(e) => return Err(e),
            Queued::LoseAnswer => return Err(lost("get")),
            Queued::Pass => {}
        }
        st.vms.get(id).cloned().ok_or_else(|| ProviderError::NotFound { provider: "memory", id: id.into() })
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        let mut st = self.lock();
        st.delete_calls += 1;
        let lose = match st.take(Call::Delete) {
            // Not found: nothing to delete, which is success.
            Queued::Fail(ProviderError::NotFound { .. }) => return Ok(()),
            Queued::Fail(e) => return Err(e),
            Queued::LoseAnswer => true,
            Queued::Pass => false,
        };
        if let Some(vm) = st.vms.get(id)
            && !vm.labels.contains_key(OwnerLabels::DEPLOYMENT)
        {
            return Err(ProviderError::PermissionDenied {
                provider: "memory",
                message: format!("VM {id} carries no {} label: not ours to delete", OwnerLabels::DEPLOYMENT),
            });
        }
        st.vms.remove(id);
        if lose { Err(lost("delete")) } else { Ok(()) }
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        let mut st = self.lock();
        match st.take(Call::List) {
            Queued::Fail(e) => return Err(e),
            Queued::LoseAnswer => return Err(lost("list")),
            Queued::Pass => {}
        }
        let found: Vec<Vm> = st.vms.values().filter(|v| labels.matches(&v.labels)).cloned().collect();
        st.listed += found.len();
        Ok(found)
    }
}

#[cfg(any(test, feature = "conformance"))]
mod harness {
    use super::{Call, MemoryProvider, Queued};
    use crate::model::OwnerLabels;
    use crate::providers::conformance::{Fault, Harness, Op, RetryRules};
    use crate::providers::{ProviderError, Vm, VmSpec, VmState};

    fn call(op: Op) -> Call {
        match op {
            Op::Create => Call::Create,
            Op::Get => Call::Get,
            Op::Delete => Call::Delete,
            Op::List => Call::List,
        }
    }

    /// The error a real provider makes of `fault` (there is no client here to retry 5xx or timeouts).
    fn error(fault: Fault) -> ProviderError {
        let (provider, message) = ("memory", format!("injected {fault:?}"));
        match fault {
            Fault::Unauthorized => ProviderError::Unauthenticated { provider, message },
            Fault::Forbidden => ProviderError::PermissionDenied { provider, message },
            Fault::NotFound => ProviderError::NotFound { provider, id: message },
            Fault::Conflict => ProviderError::Conflict { provider, message },
            Fault::RateLimited { retry_after } => {
                ProviderError::RateLimited { provider, message, retry_after: Some(retry_after) }
            }
            Fault::ServerError | Fault::Timeout => ProviderError::Transient { provider, message },
            Fault::OutOfCapacity => ProviderError::OutOfCapacity { provider, message },
        }
    }

    /// The in-memory provider is its own harness: faults are the errors a provider makes of them.
    #[async_trait::async_trait]
    impl Harness for MemoryProvider {
        fn inject(&self, op: Op, fault: Fault, skip: usize, times: usize) {
            let mut st = self.lock();
            let q = st.queued.entry(call(op)).or_default();
            q.extend(std::iter::repeat_n(Queued::Pass, skip));
            q.extend(std::iter::repeat_n(Queued::Fail(error(fault)), times));
        }

        fn lose_next_answer(&self, op: Op) {
            self.lock().queued.entry(call(op)).or_default().push_back(Queued::LoseAnswer);
        }

        fn clear_faults(&self) {
            let mut st = self.lock();
            st.queued.clear();
        }

        fn requests(&self, op: Op) -> usize {
            self.lock().calls.get(&call(op)).copied().unwrap_or(0)
        }

        fn retries(&self) -> RetryRules {
            RetryRules { retried: &[], retry_after_hint: true }
        }

        fn page_size(&self) -> Option<usize> {
            None
        }

        fn vms_in_list_answers(&self) -> usize {
            self.lock().listed
        }

        fn last_create_token(&self) -> Option<String> {
            self.lock().last_token.clone()
        }

        fn missing_id(&self) -> String {
            "vm-missing".into()
        }

        async fn create_foreign_vm(&self) -> String {
            let mut st = self.lock();
            st.foreign_seq += 1;
            let id = format!("foreign-{}", st.foreign_seq);
            let vm = Vm {
                id: id.clone(),
                name: id.clone(),
                state: VmState::Running,
                labels: [("team".to_string(), "ops".to_string())].into(),
                private_ip: None,
                public_ip: None,
                created_at: None,
            };
            st.vms.insert(id.clone(), vm);
            id
        }

        async fn remove_foreign_vm(&self, id: &str) {
            self.lock().vms.remove(id);
        }

        async fn vm_exists(&self, id: &str) -> bool {
            self.lock().vms.contains_key(id)
        }

        async fn vms_made_for(&self, spec: &VmSpec) -> usize {
            let st = self.lock();
            st.vms
                .values()
                .filter(|v| v.labels.get(OwnerLabels::CLAIM) == Some(&spec.claim.0) || v.name == spec.name)
                .count()
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let p = super::MemoryProvider::new();
        crate::providers::conformance::run_all(&p, &p, "conformance-memory").await;
        // Only the VMs the suite left on purpose: none.
        assert!(p.vms().is_empty(), "{:?}", p.vms());
    }
}
