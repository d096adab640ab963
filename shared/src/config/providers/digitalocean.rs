//! DigitalOcean VM-provider config (fields from Kasm's documentation, "Digital Ocean Settings").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::kasm_names::{KasmColumn, KasmColumns, own_id, renamed, same};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{Limit, ScriptRules, WindowsScript};

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
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `digital_ocean_vm_configs` columns.
impl KasmColumns for DigitalOceanConfig {
    const KASM_TABLE: &'static str = "digital_ocean_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        renamed("digital_ocean_token", "token"),
        same("max_instances"),
        same("region"),
        renamed("digital_ocean_droplet_image", "image"),
        renamed("digital_ocean_droplet_size", "droplet_size"),
        renamed("digital_ocean_tags", "tags"),
        renamed("digital_ocean_sshkey_name", "ssh_key_name"),
        renamed("digital_ocean_firewall_name", "firewall_name"),
        same("startup_script"),
    ];
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
    fn script_rules(&self) -> ScriptRules {
        // DigitalOcean `user_data`: 64 KiB (API reference), run by cloud-init.
        ScriptRules {
            provider: "digital_ocean",
            limit: Some(Limit::Raw(64 * 1024)),
            windows: WindowsScript::AsIs,
            linux_cloud_init: true,
        }
    }
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint { url: self.endpoint_url.as_deref(), ca_bundle: self.ca_bundle.as_deref() }
    }
    fn check(&self) -> Found {
        let mut f = Found::new();
        check_fields(&mut f, self);
        f
    }
}

fn check_fields(f: &mut Found, c: &DigitalOceanConfig) {
    for t in c.tag_list() {
        let ok = t.len() <= 255 && t.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, ':' | '-' | '_'));
        need(f, ok, "tags", format!("`{t}` is not a valid tag (letters, digits, `:`, `-`, `_`; at most 255)"));
    }
}
