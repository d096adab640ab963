//! AWS EC2 VM-provider config (fields from Kasm's documentation, "AWS Settings").

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::json_text::JsonText;
use crate::config::kasm_names::{
    Accept, KasmColumn, KasmColumns, Unit, no_field, own_id, renamed, renamed_or_empty, same, size,
};
use crate::config::provider::ProviderConfigCommon;
use crate::config::secret::SecretRef;
use crate::model::Resources;

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
}
