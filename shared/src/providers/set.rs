//! The providers of a deployment, one per VM-provider config, each built the first time it is asked
//! for: a bulkhead. A config whose provider cannot be built (a bad override, a provider left out of
//! this binary) fails alone — its error is logged once and returned for its claims — and every other
//! config keeps scaling. Secrets are resolved by the providers on first use, so a secret that does not
//! resolve also fails only its own config's calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use super::{BuildEnv, ProviderError, VmProvider, registry};
use crate::config::VmProviderConfig;

type Built = Result<Arc<dyn VmProvider>, ProviderError>;

/// One slot per config: the config and, once asked for, its provider or why it could not be built.
#[derive(Debug)]
struct Slot {
    config: Option<VmProviderConfig>,
    built: OnceLock<Built>,
}

/// The providers by VM-provider config name (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct ProviderSet {
    env: Option<BuildEnv>,
    slots: Arc<BTreeMap<String, Slot>>,
}

impl ProviderSet {
    /// A set for `configs`; nothing is built until asked for.
    pub fn new<'a>(configs: impl IntoIterator<Item = &'a VmProviderConfig>, env: BuildEnv) -> Self {
        let slots = configs
            .into_iter()
            .map(|c| (c.name().to_string(), Slot { config: Some(c.clone()), built: OnceLock::new() }))
            .collect();
        ProviderSet { env: Some(env), slots: Arc::new(slots) }
    }

    /// The provider of config `name`: `None` when there is no such config, else the built provider or
    /// the error that stops this config (and only this one).
    pub fn get(&self, name: &str) -> Option<Result<&Arc<dyn VmProvider>, &ProviderError>> {
        let slot = self.slots.get(name)?;
        let built = slot.built.get_or_init(|| {
            let (Some(config), Some(env)) = (&slot.config, &self.env) else {
                return Err(ProviderError::Invalid { provider: "none", message: format!("no provider for {name}") });
            };
            let r = registry::build(config, env);
            if let Err(e) = &r {
                tracing::error!(config = name, class = ?e.class(), error = %e, "VM-provider config unusable; its claims back off, other configs go on");
            }
            r
        });
        Some(built.as_ref())
    }

    /// The config names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// Lets every provider built so far release what it holds on the far side (see
    /// [`VmProvider::shutdown`]); providers never asked for are not built for it.
    pub async fn shutdown(&self) {
        for slot in self.slots.values() {
            if let Some(Ok(p)) = slot.built.get() {
                p.shutdown().await;
            }
        }
    }

    /// Every config whose provider could not be built, with why (building those not asked for yet).
    pub fn failures(&self) -> Vec<(String, ProviderError)> {
        self.names()
            .filter_map(|n| match self.get(n) {
                Some(Err(e)) => Some((n.to_string(), e.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Already-built providers (tests, the simulator).
impl From<HashMap<String, Arc<dyn VmProvider>>> for ProviderSet {
    fn from(map: HashMap<String, Arc<dyn VmProvider>>) -> Self {
        map.into_iter().map(|(name, p)| (name, Ok(p))).collect()
    }
}

/// Already-built providers and configs that failed to build (tests).
impl FromIterator<(String, Built)> for ProviderSet {
    fn from_iter<I: IntoIterator<Item = (String, Built)>>(iter: I) -> Self {
        let slots = iter
            .into_iter()
            .map(|(name, b)| {
                let built = OnceLock::new();
                let _ = built.set(b);
                (name, Slot { config: None, built })
            })
            .collect();
        ProviderSet { env: None, slots: Arc::new(slots) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSecrets;

    #[test]
    fn a_config_that_cannot_be_built_fails_alone() {
        let good: VmProviderConfig = serde_json::from_value(serde_json::json!({
            "provider": "proxmox", "name": "good", "max_instances": 1, "host": "pve:8006", "username": "k@pve",
            "token_name": "t", "token_value": "env:NOT_SET_ANYWHERE", "vmid_range_lower": 9000, "vmid_range_upper": 9001,
            "template_name": "t", "cluster_node_name": "pve1", "vm_cores": 1, "vm_memory": 1, "startup_script_path": "/tmp"
        }))
        .unwrap();
        let mut bad = good.clone();
        if let VmProviderConfig::Proxmox(p) = &mut bad {
            p.name = "bad".into();
            p.ca_bundle = Some("not a pem".into());
        }
        let set = ProviderSet::new([&good, &bad], BuildEnv::new(Arc::new(StaticSecrets::default()), "dep"));
        assert!(set.get("good").unwrap().is_ok());
        assert!(set.get("bad").unwrap().is_err());
        assert!(set.get("missing").is_none());
        let failures = set.failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "bad");
    }
}
