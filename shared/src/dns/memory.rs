//! The in-memory DNS backend: one zone in a map. The test double every DNS backend is compared to (it
//! passes the same [`conformance`](super::conformance) suite), and the simulator's backend.

use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use super::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord, Ownership, normalize_name, ownership};

const NAME: &str = "memory";

/// What one name holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    /// The A record: address and TTL.
    a: Option<(Ipv4Addr, u32)>,
    /// The TXT record set's texts.
    txt: Option<Vec<String>>,
}

#[derive(Debug, Default)]
struct State {
    names: BTreeMap<String, Entry>,
    failures: VecDeque<DnsError>,
    changes: u64,
}

/// An in-memory [`DnsProvider`] over one zone. Names are stored normalised (lower case, no final dot).
#[derive(Debug, Default)]
pub struct MemoryDns {
    state: Mutex<State>,
}

impl MemoryDns {
    /// An empty zone.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("dns lock")
    }

    /// The next `count` calls (of any kind) fail with `err` (outages, throttling, refused credentials).
    pub fn fail_next(&self, err: DnsError, count: u32) {
        let mut st = self.lock();
        for _ in 0..count {
            st.failures.push_back(err.clone());
        }
    }

    /// The A record at `name`: address and TTL.
    pub fn a_record(&self, name: &str) -> Option<(Ipv4Addr, u32)> {
        self.lock().names.get(&normalize_name(name)).and_then(|e| e.a)
    }

    /// The TXT texts at `name`.
    pub fn txt_record(&self, name: &str) -> Option<Vec<String>> {
        self.lock().names.get(&normalize_name(name)).and_then(|e| e.txt.clone())
    }

    /// Every name that holds a record.
    pub fn names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }

    /// Writes an A record directly, outside the port (an operator's record, or a test's).
    pub fn put_a(&self, name: &str, address: Ipv4Addr, ttl: u32) {
        self.lock().names.entry(normalize_name(name)).or_default().a = Some((address, ttl));
    }

    /// Writes a TXT record set of one text directly, outside the port.
    pub fn put_txt(&self, name: &str, text: &str) {
        self.lock().names.entry(normalize_name(name)).or_default().txt = Some(vec![text.to_string()]);
    }

    /// How many changes (upserts and deletes that changed something) were applied.
    pub fn changes(&self) -> u64 {
        self.lock().changes
    }

    fn injected(st: &mut State) -> Result<(), DnsError> {
        match st.failures.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn owner_of(e: &Entry, owner: &DnsOwner) -> Ownership {
    ownership(e.a.is_some(), false, e.txt.as_deref(), owner)
}

#[async_trait]
impl DnsProvider for MemoryDns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError> {
        let mut st = self.lock();
        Self::injected(&mut st)?;
        let name = normalize_name(&record.name);
        super::check_name(&name).map_err(|message| DnsError::Invalid { provider: NAME, message })?;
        let current = st.names.get(&name).cloned().unwrap_or_default();
        if let Ownership::Foreign(why) = owner_of(&current, &record.owner) {
            return Err(DnsError::NotOurs { provider: NAME, name, why });
        }
        let wanted = Entry { a: Some((record.address, record.ttl)), txt: Some(vec![record.owner.marker()]) };
        if current != wanted {
            st.names.insert(name, wanted);
            st.changes += 1;
        }
        Ok(())
    }

    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError> {
        let mut st = self.lock();
        Self::injected(&mut st)?;
        let name = normalize_name(name);
        let Some(current) = st.names.get(&name).cloned() else {
            return Ok(());
        };
        match owner_of(&current, owner) {
            Ownership::Free => Ok(()),
            Ownership::Foreign(why) => Err(DnsError::NotOurs { provider: NAME, name, why }),
            Ownership::Ours { .. } => {
                st.names.remove(&name);
                st.changes += 1;
                Ok(())
            }
        }
    }

    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let mut st = self.lock();
        Self::injected(&mut st)?;
        Ok(st
            .names
            .iter()
            .filter_map(|(name, e)| {
                let owner = match e.txt.as_deref() {
                    Some([one]) => DnsOwner::parse_marker(one)?,
                    _ => return None,
                };
                (owner.deployment == deployment).then(|| OwnedRecord {
                    name: name.clone(),
                    address: e.a.map(|(a, _)| a),
                    owner,
                })
            })
            .collect())
    }
}

#[async_trait]
impl super::conformance::ZoneAccess for MemoryDns {
    async fn put_foreign_a(&self, name: &str, address: Ipv4Addr) {
        self.put_a(name, address, 300);
    }

    async fn put_txt(&self, name: &str, text: &str) {
        MemoryDns::put_txt(self, name, text);
    }

    async fn a_record(&self, name: &str) -> Option<Ipv4Addr> {
        MemoryDns::a_record(self, name).map(|(a, _)| a)
    }

    async fn txt(&self, name: &str) -> Option<Vec<String>> {
        self.txt_record(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClaimId;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dns = MemoryDns::new();
        super::super::conformance::run_all(&dns, &dns, "zone.example.com", "conformance-memory").await;
    }

    #[tokio::test]
    async fn injected_failures_come_first_and_once() {
        let dns = MemoryDns::new();
        dns.fail_next(DnsError::Transient { provider: NAME, message: "down".into() }, 1);
        let owner = DnsOwner { deployment: "d".into(), claim: ClaimId("c1".into()) };
        let r = ARecord { name: "kasm-c1.example.com".into(), address: Ipv4Addr::new(10, 0, 0, 1), ttl: 60, owner };
        assert!(matches!(dns.upsert_a(&r).await, Err(DnsError::Transient { .. })));
        assert_eq!(dns.changes(), 0);
        dns.upsert_a(&r).await.unwrap();
        assert_eq!(dns.a_record("KASM-c1.example.com."), Some((Ipv4Addr::new(10, 0, 0, 1), 60)));
        dns.upsert_a(&r).await.unwrap();
        assert_eq!(dns.changes(), 1, "the same record again changes nothing");
    }
}
