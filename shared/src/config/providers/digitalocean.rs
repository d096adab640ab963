//! DigitalOcean VM-provider config (fields from Kasm's documentation, "Digital Ocean Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::Resources;

/// DigitalOcean VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DigitalOceanConfig {
    /// A name to identify the config.
    pub name: String,
    /// The API token used to talk to DigitalOcean (a secret reference).
    #[serde(alias = "digital_ocean_token")]
    pub token: SecretRef,
    /// "Max Droplets": most droplets to run, whether or not more are needed for user demand.
    #[serde(alias = "max_droplets")]
    pub max_instances: u32,
    /// The region droplets are created in, e.g. `nyc3`.
    pub region: String,
    /// The image droplets are created from, e.g. `docker-24-04`.
    pub image: String,
    /// The droplet size slug, e.g. `c-2` (see <https://slugs.do-api.dev>).
    pub droplet_size: String,
    /// Tag(s) given to each droplet, comma separated.
    #[serde(default)]
    pub tags: String,
    /// The SSH key (by name) given to droplets; it must already exist in the DigitalOcean account.
    #[serde(default)]
    pub ssh_key_name: Option<String>,
    /// The firewall (by name) applied to droplets; it must already exist in the DigitalOcean account.
    #[serde(default)]
    pub firewall_name: Option<String>,
    /// Run when a droplet is created; installs and configures the Kasm Agent (a template).
    #[serde(default)]
    pub startup_script: String,
}

impl DigitalOceanConfig {
    /// The tags, split on commas, trimmed, empty ones dropped.
    pub fn tag_list(&self) -> Vec<&str> {
        self.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).collect()
    }
}

impl ProviderConfigCommon for DigitalOceanConfig {
    fn name(&self) -> &str {
        &self.name
    }
    fn max_instances(&self) -> u32 {
        self.max_instances
    }
    fn startup_script(&self) -> &str {
        &self.startup_script
    }
    fn vm_size(&self) -> Option<Resources> {
        super::sizes::digital_ocean(&self.droplet_size)
    }
}
