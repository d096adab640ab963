//! Nutanix VM-provider config (fields from Kasm's documentation).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::provider::ProviderConfigCommon;

/// Nutanix VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NutanixConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most VMs this config may own at once.
    pub max_instances: u32,
    /// The startup-script template.
    #[serde(default)]
    pub startup_script: String,
}

impl ProviderConfigCommon for NutanixConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn max_instances(&self) -> u32 {
        self.max_instances
    }
    fn startup_script(&self) -> &str {
        &self.startup_script
    }
}
