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
    // Tag names: `^[a-zA-Z0-9_\-\:]+$`, at most 255 (API spec, `tags/models/tags.yml`).
    for t in c.tag_list() {
        let ok = t.len() <= 255 && t.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, ':' | '-' | '_'));
        need(f, ok, "tags", format!("`{t}` is not a valid tag (letters, digits, `:`, `-`, `_`; at most 255)"));
        // `ka:` is where kasm-autoscale keeps its ownership labels (a droplet tagged `ka:d:...` is
        // treated as ours).
        need(
            f,
            !t.to_ascii_lowercase().starts_with("ka:"),
            "tags",
            format!("`{t}`: tags starting with `ka:` are reserved for kasm-autoscale's ownership labels"),
        );
    }
    // Slugs: region (`nyc3`), size (`s-2vcpu-4gb`); the image is a slug or a numeric id.
    let slug =
        |s: &str| !s.is_empty() && s.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
    need(f, slug(c.region.trim()), "region", "must be a region slug, e.g. nyc3");
    need(f, slug(c.droplet_size.trim()), "droplet_size", "must be a size slug, e.g. s-2vcpu-4gb");
    need(
        f,
        slug(c.image.trim()) || c.image.trim().parse::<u64>().is_ok(),
        "image",
        "must be an image slug (e.g. ubuntu-24-04-x64) or a numeric image id",
    );
    for (field, v) in [("ssh_key_name", &c.ssh_key_name), ("firewall_name", &c.firewall_name)] {
        if let Some(v) = v {
            need(f, v.trim() == v.as_str(), field, "must not start or end with spaces (names are matched exactly)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DigitalOceanConfig {
        DigitalOceanConfig {
            name: "do".into(),
            token: SecretRef::Env("T".into()),
            max_instances: 1,
            region: "nyc3".into(),
            image: "docker-20-04".into(),
            droplet_size: "s-2vcpu-4gb".into(),
            tags: "kasm, env:prod".into(),
            ssh_key_name: Some("ops".into()),
            firewall_name: None,
            startup_script: String::new(),
            endpoint_url: None,
            ca_bundle: None,
        }
    }

    #[test]
    fn the_spec_rules_name_their_field() {
        assert!(config().check().is_empty(), "{:?}", config().check());
        let mut c = config();
        c.tags = "ok, bad tag, ka:d:x".into();
        c.region = "NYC 3".into();
        c.image = "".into();
        c.droplet_size = "s_2".into();
        c.ssh_key_name = Some(" ops".into());
        let fields: Vec<String> = c.check().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["tags", "tags", "region", "droplet_size", "image", "ssh_key_name"]);
        let mut c = config();
        c.image = "123456".into();
        assert!(c.check().is_empty());
    }
}
