//! OpenStack VM-provider config (fields from Kasm's documentation, "OpenStack Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, is_blank, need};
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
        // Kasm requires trusted TLS on every OpenStack endpoint. Plain http is taken only on a
        // loopback address (a test server or a local TLS-terminating proxy never crosses a network).
        need(
            f,
            url::Url::parse(url).is_ok_and(|u| u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u))),
            field,
            "must be an https URL (OpenStack endpoints need trusted TLS; http only on a loopback address)",
        );
    }
    need(
        f,
        c.endpoint_url.is_none(),
        "endpoint_url",
        "does not apply to OpenStack: point openstack_identity_endpoint, openstack_nova_endpoint, \
         openstack_glance_endpoint and openstack_cinder_endpoint at the API instead",
    );
    match nova_microversion(&c.openstack_nova_version) {
        Some(_) => {}
        None => f.push((
            "openstack_nova_version".into(),
            format!(
                "`{}` is not a Nova microversion of the form 2.N (at least {}), e.g. 2.90",
                c.openstack_nova_version, MIN_NOVA_MICROVERSION.1
            ),
        )),
    }
    need(
        f,
        c.openstack_glance_version.trim() == "2" || c.openstack_glance_version.trim().starts_with("2."),
        "openstack_glance_version",
        "must be 2 (the Image API v2 is the only one kasm-autoscale speaks)",
    );
    need(
        f,
        c.openstack_cinder_version.trim() == "3" || c.openstack_cinder_version.trim().starts_with("3."),
        "openstack_cinder_version",
        "must be 3 (the Block Storage API v3 is the only one kasm-autoscale speaks)",
    );
    need(
        f,
        url::Url::parse(&c.openstack_cinder_endpoint)
            .ok()
            .and_then(|u| u.path_segments().and_then(|mut s| s.rfind(|x| !x.is_empty()).map(str::to_string)))
            .is_some_and(|last| last.len() >= 16 && last.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')),
        "openstack_cinder_endpoint",
        "must end with the project id, e.g. https://openstack.example.com:8776/v3/383a0dad105e460ab5a863ea0a45932b",
    );
    need(f, !is_blank(&c.project_name), "project_name", "is required");
    need(f, is_uuid(&c.image_id), "image_id", "must be a Glance image id (a UUID)");
    need(f, is_uuid(&c.network_id), "network_id", "must be a Neutron network id (a UUID)");
    need(f, !is_blank(&c.flavor), "flavor", "is required (a flavor name, e.g. gen.medium)");
    for (i, g) in c.security_groups.0.iter().enumerate() {
        need(
            f,
            nova_name(g),
            &format!("security_groups[{i}]"),
            "must be a security group name (1-255 characters, no leading/trailing space)",
        );
    }
    for (field, v) in [("key_name", &c.key_name), ("availability_zone", &c.availability_zone)] {
        if let Some(v) = v {
            need(f, nova_name(v), field, "must be 1-255 characters without leading/trailing space");
        }
    }
    for (k, v) in &c.metadata.0 {
        let field = format!("metadata.{k}");
        if !metadata_key_ok(k) {
            f.push((field, "Nova metadata keys are 1-255 of letters, digits, `-`, `_`, `:`, `.` and space".into()));
        } else if k.starts_with(OWNERSHIP_PREFIX) {
            f.push((field, format!("keys starting with `{OWNERSHIP_PREFIX}` are kasm-autoscale's ownership labels")));
        } else if v.chars().count() > METADATA_MAX {
            f.push((field, format!("Nova metadata values are at most {METADATA_MAX} characters")));
        }
    }
    match (c.create_volume, c.volume_size_gb) {
        (false, Some(_)) => f.push(("volume_size_gb".into(), "only applies with create_volume".into())),
        (true, None) => f.push(("volume_size_gb".into(), "is required with create_volume".into())),
        (true, Some(0)) => f.push(("volume_size_gb".into(), "must be at least 1 GB".into())),
        _ => {}
    }
    if let Some(o) = &c.config_override {
        f.extend(check_override(&o.0, "config_override"));
        if c.create_volume && o.0.contains_key("block_device_mapping_v2") {
            f.push((
                "config_override.block_device_mapping_v2".into(),
                "cannot be overridden with create_volume: the boot volume is kasm-autoscale's".into(),
            ));
        }
        if let Some(mv) = nova_microversion(&c.openstack_nova_version) {
            f.extend(check_override_for(&o.0, "config_override", mv));
        }
    }
}

/// The oldest Nova microversion kasm-autoscale speaks (`2.1`: the v2.1 API's base, which has every
/// create-server attribute the provider sends).
pub const MIN_NOVA_MICROVERSION: (u32, &str) = (1, "2.1");

/// Nova's limit on a metadata key and on a value (`servers.create_*` schema: `metadata`
/// `patternProperties` `^[a-zA-Z0-9-_:. ]{1,255}$`, values `maxLength` 255).
pub const METADATA_MAX: usize = 255;

/// The prefix of kasm-autoscale's ownership label keys (server and volume metadata).
pub const OWNERSHIP_PREFIX: &str = "kasm-autoscale-";

/// The minor number of a Nova microversion `2.N` (N at least 1), else `None`.
pub fn nova_microversion(v: &str) -> Option<u32> {
    let minor = v.trim().strip_prefix("2.")?;
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) || minor.len() > 4 {
        return None;
    }
    minor.parse::<u32>().ok().filter(|n| *n >= MIN_NOVA_MICROVERSION.0)
}

/// Whether `k` is a legal Nova metadata key (`^[a-zA-Z0-9-_:. ]{1,255}$`).
pub fn metadata_key_ok(k: &str) -> bool {
    (1..=METADATA_MAX).contains(&k.len())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b' '))
}

/// Nova's `name` format: 1-255 characters, none of them a control character, no leading or
/// trailing whitespace (`nova/api/validation/validators.py`, `_validate_name`).
fn nova_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=255).contains(&n) && s.trim() == s && !s.chars().any(char::is_control)
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s.trim()).is_ok()
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The create-server attributes that exist only from (`Some(min)`) or up to (`max`) a microversion
/// (`routes-and-controllers.json`: `servers.create*` schemas per microversion range).
const VERSIONED_ATTRIBUTES: &[(&str, u32, Option<u32>)] = &[
    ("description", 19, None),
    ("tags", 52, None),
    ("personality", 0, Some(56)),
    ("trusted_image_certificates", 63, None),
    ("host", 74, None),
    ("hypervisor_hostname", 74, None),
    ("hostname", 90, None),
];

/// The override's attributes that Nova's create-server schema for microversion `2.<minor>` does not
/// have (each names the range where it exists).
pub fn check_override_for(o: &Map<String, Value>, field: &str, minor: u32) -> Found {
    let mut f = Found::new();
    for key in o.keys() {
        if let Some((_, min, max)) = VERSIONED_ATTRIBUTES.iter().find(|(k, ..)| k == key) {
            let ok = minor >= *min && max.is_none_or(|m| minor <= m);
            if !ok {
                let range = match max {
                    Some(m) => format!("up to microversion 2.{m}"),
                    None => format!("from microversion 2.{min}"),
                };
                f.push((
                    format!("{field}.{key}"),
                    format!("Nova's create-server takes `{key}` only {range}; openstack_nova_version is 2.{minor}"),
                ));
            }
        }
    }
    f
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
    "OS-SCH-HNT:scheduler_hints",
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

    fn base() -> OpenstackConfig {
        let v: Value = json!({
            "name": "os", "max_instances": 2,
            "openstack_identity_endpoint": "https://keystone.example.com:5000",
            "openstack_nova_endpoint": "https://nova.example.com:8774/v2.1",
            "openstack_nova_version": "2.90",
            "openstack_glance_endpoint": "https://glance.example.com:9292",
            "openstack_glance_version": "2",
            "openstack_cinder_endpoint": "https://cinder.example.com:8776/v3/383a0dad105e460ab5a863ea0a45932b",
            "openstack_cinder_version": "3",
            "project_name": "kasm",
            "application_credential_id": "4f5e6d7c8b9a",
            "application_credential_secret": "env:OS_APP_SECRET",
            "image_id": "6e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
            "flavor": "gen.medium",
            "network_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
        });
        serde_json::from_value(v).unwrap()
    }

    fn problems(c: &OpenstackConfig) -> Vec<String> {
        c.check().into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn a_complete_config_passes_and_each_rule_names_its_field() {
        assert_eq!(problems(&base()), Vec::<String>::new());
        let mut c = base();
        c.openstack_nova_endpoint = "http://nova.example.com:8774/v2.1".into();
        c.openstack_nova_version = "2".into();
        c.openstack_glance_version = "1".into();
        c.openstack_cinder_version = "2".into();
        c.openstack_cinder_endpoint = "https://cinder.example.com:8776/v3".into();
        c.image_id = "ubuntu".into();
        c.network_id = "net".into();
        c.flavor = " ".into();
        c.endpoint_url = Some("http://127.0.0.1:1".into());
        c.security_groups = JsonText(vec!["ok".into(), " bad".into()]);
        c.metadata =
            JsonText([("kasm-autoscale-claim".to_string(), "x".to_string()), ("a/b".into(), "y".into())].into());
        assert_eq!(
            problems(&c),
            [
                "openstack_nova_endpoint",
                "endpoint_url",
                "openstack_nova_version",
                "openstack_glance_version",
                "openstack_cinder_version",
                "openstack_cinder_endpoint",
                "image_id",
                "network_id",
                "flavor",
                "security_groups[1]",
                "metadata.kasm-autoscale-claim",
                "metadata.a/b",
            ]
        );
        // http on loopback is a local test server or proxy.
        let mut c = base();
        c.openstack_nova_endpoint = "http://127.0.0.1:8774/v2.1".into();
        c.openstack_identity_endpoint = "http://localhost:5000".into();
        assert_eq!(problems(&c), Vec::<String>::new());
        let mut c = base();
        c.metadata = JsonText([("team".to_string(), "x".repeat(256))].into());
        assert_eq!(problems(&c), ["metadata.team"]);
    }

    #[test]
    fn the_override_is_checked_against_the_configured_microversion() {
        let mut c = base();
        c.openstack_nova_version = "2.60".into();
        c.config_override = Some(JsonText(obj(json!({"hostname": "x", "personality": [], "description": "d"}))));
        assert_eq!(problems(&c), ["config_override.hostname", "config_override.personality"]);
        c.openstack_nova_version = "2.90".into();
        assert_eq!(problems(&c), ["config_override.personality"]);
        let mut c = base();
        c.create_volume = true;
        c.volume_size_gb = Some(20);
        c.config_override = Some(JsonText(obj(json!({"block_device_mapping_v2": []}))));
        assert_eq!(problems(&c), ["config_override.block_device_mapping_v2"]);
        assert_eq!(nova_microversion("2.90"), Some(90));
        assert_eq!(nova_microversion("2.0"), None);
        assert_eq!(nova_microversion("latest"), None);
    }
}
