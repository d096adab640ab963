//! AWS EC2 VM-provider config (fields from Kasm's documentation, "AWS Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::check::{Found, need};
use crate::config::did_you_mean::did_you_mean;
use crate::config::json_text::JsonText;
use crate::config::kasm_names::{
    Accept, KasmColumn, KasmColumns, Unit, no_field, own_id, renamed, renamed_or_empty, same, size,
};
use crate::config::provider::{Endpoint, ProviderConfigCommon};
use crate::config::secret::SecretRef;
use crate::model::{OsFamily, Resources};
use crate::script::{Limit, ScriptRules, WindowsScript};
use serde_json::{Map, Value};

/// AWS EC2 VM-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// A name to identify the config.
    pub name: String,
    /// AWS Access Key ID for the EC2 API (a secret reference). With the secret key left out too, the
    /// default AWS credential chain (e.g. the Lambda role) is used.
    #[serde(default)]
    pub aws_access_key_id: Option<SecretRef>,
    /// AWS Secret Access Key for the EC2 API (a secret reference); set together with the access key id.
    #[serde(default)]
    pub aws_secret_access_key: Option<SecretRef>,
    /// The AWS region the EC2 nodes are created in, e.g. `us-east-1`.
    pub aws_region: String,
    /// The AMI ID of the nodes; an OS the Kasm installer supports.
    pub aws_ec2_ami_id: String,
    /// The EC2 instance type, e.g. `t3.micro`. The autoscale config's cores/memory overrides need not
    /// match it (to allow over-provisioning).
    pub aws_ec2_instance_type: String,
    /// "Max EC2 Nodes": most EC2 nodes to run regardless of the need for free capacity.
    #[serde(alias = "aws_max_ec2_nodes", alias = "max_ec2_nodes")]
    pub max_instances: u32,
    /// Security group IDs for the nodes: a list, or JSON text of one, e.g. `["sg-065ae66f2d"]`.
    #[serde(default)]
    pub aws_ec2_security_group_ids: JsonText<Vec<String>>,
    /// The subnet ID to place the nodes in.
    #[serde(default)]
    pub aws_ec2_subnet_id: Option<String>,
    /// Size (GB) of the root EBS volume.
    pub aws_ec2_ebs_volume_size_gb: u32,
    /// The EBS volume type, e.g. `gp2`, `gp3`.
    pub aws_ec2_ebs_volume_type: String,
    /// The IAM instance profile (name or ARN) given to the nodes, e.g. for CloudWatch access.
    #[serde(default)]
    pub aws_ec2_iam: Option<String>,
    /// Custom tags for the nodes: a map, or JSON text of one, e.g. `{"foo":"bar"}`.
    #[serde(default)]
    pub aws_ec2_custom_tags: JsonText<IndexMap<String, String>>,
    /// The startup script run when a node is created; it installs and configures the Kasm Agent
    /// (a template: `{server_id}`, `{manager_token}`, ...; `{{`/`}}` for literal braces).
    #[serde(default, alias = "aws_ec2_startup_script")]
    pub startup_script: String,
    /// Retrieve the password AWS generates for a Windows VM and store it on the Kasm server record, when the
    /// autoscale config's connection password is blank (Windows/RDP instances only).
    #[serde(default, alias = "retrieve_password")]
    pub retrieve_windows_vm_password: bool,
    /// "SSH Keys": the name of the EC2 key pair given to the nodes (needed to decrypt Windows passwords).
    #[serde(default, alias = "ssh_keys", alias = "aws_ec2_ssh_key")]
    pub ssh_key_name: Option<String>,
    /// Config override for advanced cases: `{"instance_config": {...}}` whose keys are EC2 RunInstances
    /// request parameters (e.g. `{"instance_config": {"EbsOptimized": true}}`); a map or JSON text.
    #[serde(default, alias = "config_override")]
    pub aws_config_override: Option<JsonText<serde_json::Map<String, serde_json::Value>>>,
    /// Our extension (not a Kasm field): the API's base URL instead of the provider's default, for private
    /// clouds, sovereign regions and test servers (like `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Our extension (not a Kasm field): PEM certificates trusted for the API's TLS in addition to the
    /// built-in roots (a private CA).
    #[serde(default)]
    pub ca_bundle: Option<String>,
}

/// Kasm's `aws_configs` columns.
impl KasmColumns for AwsConfig {
    const KASM_TABLE: &'static str = "aws_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("aws_config_id"),
        renamed("config_name", "name"),
        same("aws_access_key_id"),
        same("aws_secret_access_key"),
        same("aws_region"),
        same("aws_ec2_ami_id"),
        same("aws_ec2_instance_type"),
        same("max_instances"),
        same("aws_ec2_security_group_ids"),
        same("aws_ec2_subnet_id"),
        size("aws_ec2_ebs_volume_size_bytes", "aws_ec2_ebs_volume_size_gb", Unit::Bytes, Unit::Gib, true),
        same("aws_ec2_ebs_volume_type"),
        same("aws_ec2_iam"),
        same("aws_ec2_custom_tags"),
        same("startup_script"),
        renamed("retrieve_password", "retrieve_windows_vm_password"),
        renamed_or_empty("aws_ec2_config_override", "aws_config_override"),
        no_field(
            "aws_ec2_private_key",
            "the key pair Kasm generates for its own instances; kasm-autoscale names an EC2 key pair in `ssh_key_name` instead",
            Accept::UnsetOrSecretRef,
        ),
        no_field(
            "aws_ec2_public_key",
            "the key pair Kasm generates for its own instances; kasm-autoscale names an EC2 key pair in `ssh_key_name` instead",
            Accept::Any,
        ),
    ];
}

impl ProviderConfigCommon for AwsConfig {
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
        super::sizes::aws(&self.aws_ec2_instance_type)
    }
    /// AWS configs have no OS field: Kasm treats an RDP server pool on AWS as Windows (the seed: "only
    /// affects Windows (RDP connection type) AWS instances").
    fn os_for_rdp_servers(&self) -> OsFamily {
        OsFamily::Windows
    }
    fn retrieves_windows_password(&self) -> bool {
        self.retrieve_windows_vm_password
    }
    fn script_rules(&self) -> ScriptRules {
        // AWS EC2 user data: 16 KB "in raw form, before it is base64-encoded" (EC2 User Guide); EC2Launch runs
        // PowerShell in `<powershell>` tags.
        ScriptRules {
            provider: "aws",
            limit: Some(Limit::Raw(16 * 1024)),
            windows: WindowsScript::Ec2Launch,
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

fn check_fields(f: &mut Found, c: &AwsConfig) {
    need(
        f,
        c.aws_access_key_id.is_some() == c.aws_secret_access_key.is_some(),
        "aws_secret_access_key",
        "aws_access_key_id and aws_secret_access_key must be set together (or both left out for the default credentials)",
    );
    need(f, c.aws_ec2_ebs_volume_size_gb >= 1, "aws_ec2_ebs_volume_size_gb", "must be at least 1 GB");
    for (i, sg) in c.aws_ec2_security_group_ids.iter().enumerate() {
        need(
            f,
            sg.starts_with("sg-"),
            &format!("aws_ec2_security_group_ids[{i}]"),
            format!("`{sg}` is not a security group id (sg-...)"),
        );
    }
    need(f, c.aws_ec2_ami_id.starts_with("ami-"), "aws_ec2_ami_id", "must be an AMI id (ami-...)");
    for k in c.aws_ec2_custom_tags.keys() {
        need(
            f,
            !k.to_ascii_lowercase().starts_with("aws:"),
            "aws_ec2_custom_tags",
            format!("tag key `{k}` uses the reserved prefix aws:"),
        );
    }
    if c.retrieve_windows_vm_password {
        need(
            f,
            c.ssh_key_name.is_some(),
            "ssh_key_name",
            "is required with retrieve_windows_vm_password (the key pair decrypts the password)",
        );
    }
    if let Some(o) = &c.aws_config_override {
        f.extend(check_override(&o.0, "aws_config_override"));
    }
}

/// EC2 RunInstances request parameters (API reference) accepted as `instance_config` keys: the ones the
/// AWS provider's mapper applies, plus the managed ones (named so the error says why they are refused).
/// Left out on purpose, so they are rejected: `ElasticGpuSpecification` and `ElasticInferenceAccelerators`
/// (retired services) and `Operator` (reserved for AWS-managed services).
pub const AWS_RUN_INSTANCES_PARAMETERS: &[&str] = &[
    "AdditionalInfo",
    "BlockDeviceMappings",
    "CapacityReservationSpecification",
    "ClientToken",
    "CpuOptions",
    "CreditSpecification",
    "DisableApiStop",
    "DisableApiTermination",
    "DryRun",
    "EbsOptimized",
    "EnablePrimaryIpv6",
    "EnclaveOptions",
    "HibernationOptions",
    "IamInstanceProfile",
    "ImageId",
    "InstanceInitiatedShutdownBehavior",
    "InstanceMarketOptions",
    "InstanceType",
    "Ipv6AddressCount",
    "Ipv6Addresses",
    "KernelId",
    "KeyName",
    "LaunchTemplate",
    "LicenseSpecifications",
    "MaintenanceOptions",
    "MaxCount",
    "MetadataOptions",
    "MinCount",
    "Monitoring",
    "NetworkInterfaces",
    "NetworkPerformanceOptions",
    "Placement",
    "PrivateDnsNameOptions",
    "PrivateIpAddress",
    "RamdiskId",
    "SecurityGroupIds",
    "SecurityGroups",
    "SubnetId",
    "TagSpecifications",
    "UserData",
];

/// RunInstances parameters EC2 has but kasm-autoscale does not apply (so they are refused, not dropped).
pub const AWS_UNSUPPORTED: &[&str] = &["ElasticGpuSpecification", "ElasticInferenceAccelerators", "Operator"];

/// RunInstances parameters kasm-autoscale sets itself and an override must not replace, with why.
pub const AWS_MANAGED: &[(&str, &str)] = &[
    ("ClientToken", "it is the claim's idempotency token"),
    ("MinCount", "each claim creates exactly one instance"),
    ("MaxCount", "each claim creates exactly one instance"),
    ("DryRun", "a dry run creates nothing"),
    ("UserData", "it is rendered from startup_script"),
    ("TagSpecifications", "the ownership tags must stay; use aws_ec2_custom_tags"),
];

/// AWS: `{"instance_config": {<RunInstances parameter>: ...}}`.
/// Checks the override `field` (see the module docs of `config::providers`).
pub fn check_override(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (k, v) in o {
        if k != "instance_config" {
            f.push((
                format!("{field}.{k}"),
                format!(
                    "unknown block{} (only `instance_config` is applied)",
                    did_you_mean(k, ["instance_config"].into_iter())
                ),
            ));
            continue;
        }
        let Some(ic) = v.as_object() else {
            f.push((format!("{field}.instance_config"), "must be an object of RunInstances parameters".into()));
            continue;
        };
        for (key, value) in ic {
            let path = format!("{field}.instance_config.{key}");
            if let Some((_, why)) = AWS_MANAGED.iter().find(|(m, _)| m == key) {
                f.push((path, format!("cannot be overridden: {why}")));
            } else if AWS_UNSUPPORTED.contains(&key.as_str()) {
                f.push((path, "is an EC2 RunInstances parameter but not supported by kasm-autoscale".into()));
            } else if !AWS_RUN_INSTANCES_PARAMETERS.contains(&key.as_str()) {
                let hint = did_you_mean(key, AWS_RUN_INSTANCES_PARAMETERS.iter().copied());
                f.push((path, format!("not an EC2 RunInstances parameter{hint}")));
            } else if let Err(why) = run_instances_parameter_shape(key, value) {
                // The provider's own mapper decides, so what validates is exactly what is applied.
                f.push((path, why));
            }
        }
    }
    f
}

/// The shape of RunInstances parameter `key` as the AWS provider's mapper applies it; without the
/// `aws` feature (no EC2 provider in this binary) only the key list is checked.
#[cfg(feature = "aws")]
fn run_instances_parameter_shape(key: &str, value: &Value) -> Result<(), String> {
    crate::providers::aws::check_run_instances_parameter(key, value)
}

#[cfg(not(feature = "aws"))]
fn run_instances_parameter_shape(_key: &str, _value: &Value) -> Result<(), String> {
    Ok(())
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
    fn aws_accepts_run_instances_parameters_and_rejects_the_rest() {
        let ok = obj(json!({"instance_config": {"EbsOptimized": true, "MetadataOptions": {"HttpTokens": "required"}}}));
        assert!(check_override(&ok, "o").is_empty());
        let bad =
            obj(json!({"instance_config": {"EbsOptimised": true, "ClientToken": "x", "UserData": "y"}, "launch": {}}));
        let found = check_override(&bad, "o");
        assert_eq!(
            fields(&found),
            [
                "o.instance_config.EbsOptimised",
                "o.instance_config.ClientToken",
                "o.instance_config.UserData",
                "o.launch"
            ]
        );
        assert!(found[0].1.contains("did you mean `EbsOptimized`"), "{found:?}");
        assert!(found[1].1.contains("idempotency"));
        let nested =
            check_override(&obj(json!({"instance_config": {"MetadataOptions": {"HttpToken": "required"}}})), "o");
        assert_eq!(fields(&nested), ["o.instance_config.MetadataOptions"]);
        assert!(nested[0].1.contains("HttpToken"), "{nested:?}");
        let unsupported = check_override(&obj(json!({"instance_config": {"Operator": {"Principal": "x"}}})), "o");
        assert_eq!(fields(&unsupported), ["o.instance_config.Operator"]);
        assert!(unsupported[0].1.contains("not supported by kasm-autoscale"), "{unsupported:?}");
        let not_obj = obj(json!({"instance_config": [1]}));
        assert_eq!(fields(&check_override(&not_obj, "o")), ["o.instance_config"]);
    }
}
