//! OpenStack VM-provider config (fields from Kasm's documentation, "OpenStack Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::did_you_mean::did_you_mean;
use crate::config::json_text::JsonText;
use crate::config::kasm_names::{KasmColumn, KasmColumns, Unit, own_id, renamed, renamed_or_empty, same, size};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::Resources;
use crate::script::{Limit, ScriptRules, WindowsScript};
use serde_json::{Map, Value};

/// How kasm-autoscale authenticates to Keystone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpenstackAuthMethod {
    /// An application credential (id + secret).
    #[default]
    ApplicationCredential,
    /// A user's password (username, password, user domain).
    Password,
}

/// OpenStack VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenstackConfig {
    /// A name to identify the config.
    pub name: String,
    /// Most OpenStack VMs to run regardless of the need for more resources.
    pub max_instances: u32,
    /// The Keystone (identity) endpoint, e.g. `https://openstack.domain:5000`. Must present a trusted certificate.
    pub openstack_identity_endpoint: String,
    /// The Nova (compute) endpoint, e.g. `https://openstack.domain:8774/v2/`.
    pub openstack_nova_endpoint: String,
    /// The Nova API (micro)version, e.g. `2.90`.
    pub openstack_nova_version: String,
    /// The Glance (image) endpoint, e.g. `https://openstack.domain:9292`.
    pub openstack_glance_endpoint: String,
    /// The Glance API version, e.g. `2`.
    pub openstack_glance_version: String,
    /// The Cinder (volume) endpoint; it contains the project id, e.g. `https://openstack.domain:8776/v3/<project-id>`.
    pub openstack_cinder_endpoint: String,
    /// The Cinder API version, e.g. `3`.
    pub openstack_cinder_version: String,
    /// The project the VMs are created in.
    pub project_name: String,
    /// The kind of credential used against the OpenStack endpoints.
    #[serde(default)]
    pub authentication_method: OpenstackAuthMethod,
    /// The application credential's id (application-credential authentication).
    #[serde(default)]
    pub application_credential_id: Option<String>,
    /// The application credential's secret (a secret reference).
    #[serde(default)]
    pub application_credential_secret: Option<SecretRef>,
    /// The domain of the project, e.g. `domain-1353722761`.
    #[serde(default)]
    pub project_domain_name: Option<String>,
    /// The domain of the user, e.g. `domain-1353722761` (password authentication).
    #[serde(default)]
    pub user_domain_name: Option<String>,
    /// The OpenStack user (password authentication).
    #[serde(default)]
    pub username: Option<String>,
    /// The user's password (a secret reference; password authentication).
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Metadata applied to the VMs: a map, or JSON text of one, e.g. `{"my_tag": "my_value"}`.
    #[serde(default)]
    pub metadata: JsonText<IndexMap<String, String>>,
    /// The image the VMs are created from.
    pub image_id: String,
    /// The flavor (by name), e.g. `gen.medium`.
    pub flavor: String,
    /// Create a Cinder (block storage) volume for the VM; otherwise ephemeral Nova storage is used.
    #[serde(default)]
    pub create_volume: bool,
    /// Size (GB) of the volume; only with `create_volume`.
    #[serde(default)]
    pub volume_size_gb: Option<u32>,
    /// Type of the volume, e.g. `__DEFAULT__`.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Run when a VM is created; installs and configures the Kasm Agent (a template).
    #[serde(default)]
    pub startup_script: String,
    /// Security groups applied to the VMs: a list, or JSON text of one, e.g. `["sg1", "sg2"]`.
    #[serde(default)]
    pub security_groups: JsonText<Vec<String>>,
    /// The network the VMs connect to.
    pub network_id: String,
    /// The SSH key (by name) given to the VMs.
    #[serde(default)]
    pub key_name: Option<String>,
    /// The availability zone the VMs are placed in.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Config override: a map (or JSON text) of Nova create-server attributes merged into the request.
    #[serde(default)]
    pub config_override: Option<JsonText<serde_json::Map<String, serde_json::Value>>>,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `openstack_vm_configs` columns (Kasm 1.15's API writes `openstack_volume_size_gb`).
impl KasmColumns for OpenstackConfig {
    const KASM_TABLE: &'static str = "openstack_vm_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        renamed("openstack_keystone_endpoint", "openstack_identity_endpoint"),
        same("openstack_nova_endpoint"),
        same("openstack_nova_version"),
        same("openstack_glance_endpoint"),
        same("openstack_glance_version"),
        same("openstack_cinder_endpoint"),
        same("openstack_cinder_version"),
        renamed("openstack_project_name", "project_name"),
        renamed("openstack_auth_method", "authentication_method"),
        renamed("openstack_application_credential_id", "application_credential_id"),
        renamed("openstack_application_credential_secret", "application_credential_secret"),
        renamed("openstack_project_domain_name", "project_domain_name"),
        renamed("openstack_user_domain_name", "user_domain_name"),
        renamed("openstack_username", "username"),
        renamed("openstack_password", "password"),
        renamed_or_empty("openstack_metadata", "metadata"),
        renamed("openstack_image_id", "image_id"),
        renamed("openstack_flavor", "flavor"),
        renamed("openstack_create_volume", "create_volume"),
        size("openstack_volume_size_bytes", "volume_size_gb", Unit::Bytes, Unit::Gib, true),
        renamed("openstack_volume_size_gb", "volume_size_gb"),
        renamed("openstack_volume_type", "volume_type"),
        same("startup_script"),
        renamed_or_empty("openstack_security_groups", "security_groups"),
        renamed("openstack_network_id", "network_id"),
        renamed("openstack_key_name", "key_name"),
        renamed("openstack_availability_zone", "availability_zone"),
        renamed_or_empty("openstack_config_override", "config_override"),
    ];
}

impl ProviderConfigCommon for OpenstackConfig {
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
        // Flavors are site-defined; their size comes from the Nova API, not from a table.
        None
    }
    fn script_rules(&self) -> ScriptRules {
        // OpenStack Nova: user data "must be base64 encoded and is restricted to 65535 bytes".
        ScriptRules {
            provider: "openstack",
            limit: Some(Limit::Base64(65_535)),
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

fn check_fields(f: &mut Found, c: &OpenstackConfig) {
    use OpenstackAuthMethod as M;
    match c.authentication_method {
        M::ApplicationCredential => {
            need(
                f,
                c.application_credential_id.is_some(),
                "application_credential_id",
                "is required for application_credential authentication",
            );
            need(
                f,
                c.application_credential_secret.is_some(),
                "application_credential_secret",
                "is required for application_credential authentication",
            );
        }
        M::Password => {
            need(f, c.username.is_some(), "username", "is required for password authentication");
            need(f, c.password.is_some(), "password", "is required for password authentication");
            need(f, c.user_domain_name.is_some(), "user_domain_name", "is required for password authentication");
            need(f, c.project_domain_name.is_some(), "project_domain_name", "is required for password authentication");
        }
    }
    for (field, url) in [
        ("openstack_identity_endpoint", &c.openstack_identity_endpoint),
        ("openstack_nova_endpoint", &c.openstack_nova_endpoint),
        ("openstack_glance_endpoint", &c.openstack_glance_endpoint),
        ("openstack_cinder_endpoint", &c.openstack_cinder_endpoint),
    ] {
        // Kasm requires trusted TLS on every OpenStack endpoint.
        need(
            f,
            url::Url::parse(url).is_ok_and(|u| u.scheme() == "https"),
            field,
            "must be an https URL (OpenStack endpoints need trusted TLS)",
        );
    }
    match (c.create_volume, c.volume_size_gb) {
        (false, Some(_)) => f.push(("volume_size_gb".into(), "only applies with create_volume".into())),
        (true, None) => f.push(("volume_size_gb".into(), "is required with create_volume".into())),
        (true, Some(0)) => f.push(("volume_size_gb".into(), "must be at least 1 GB".into())),
        _ => {}
    }
    if let Some(o) = &c.config_override {
        f.extend(check_override(&o.0, "config_override"));
    }
}

/// Attributes of Nova's create-server request (`server` object), plus the `os:scheduler_hints` sibling.
pub const OPENSTACK_SERVER_ATTRIBUTES: &[&str] = &[
    "accessIPv4",
    "accessIPv6",
    "adminPass",
    "availability_zone",
    "block_device_mapping_v2",
    "config_drive",
    "description",
    "flavorRef",
    "host",
    "hostname",
    "hypervisor_hostname",
    "imageRef",
    "key_name",
    "metadata",
    "networks",
    "OS-DCF:diskConfig",
    "os:scheduler_hints",
    "personality",
    "security_groups",
    "tags",
    "trusted_image_certificates",
];

const OPENSTACK_MANAGED: &[(&str, &str)] = &[
    ("name", "it is the claim's deterministic name"),
    ("user_data", "it is rendered from startup_script"),
    ("min_count", "each claim creates exactly one server"),
    ("max_count", "each claim creates exactly one server"),
    ("return_reservation_id", "each claim creates exactly one server"),
];

/// OpenStack: Nova create-server attributes.
/// Checks the override `field` (see the module docs of `config::providers`).
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for key in o.keys() {
        let path = format!("{field}.{key}");
        if let Some((_, why)) = OPENSTACK_MANAGED.iter().find(|(m, _)| m == key) {
            f.push((path, format!("cannot be overridden: {why}")));
        } else if !OPENSTACK_SERVER_ATTRIBUTES.contains(&key.as_str()) {
            let hint = did_you_mean(key, OPENSTACK_SERVER_ATTRIBUTES.iter().copied());
            f.push((path, format!("not a Nova create-server attribute{hint}")));
        }
    }
    f
}

#[cfg(test)]
mod override_tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields(found: &Found) -> Vec<&str> {
        found.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn openstack_takes_nova_server_attributes() {
        assert!(
            check_override(&obj(json!({"config_drive": true, "os:scheduler_hints": {"group": "g"}})), "o").is_empty()
        );
        assert_eq!(fields(&check_override(&obj(json!({"name": "x", "flavour": "y"})), "o")), ["o.name", "o.flavour"]);
    }
}
