//! One file per provider's config struct, each with everything the config knows about its provider: the
//! fields, Kasm's column names, and the `ProviderConfigCommon` impl (startup-script rules, endpoint,
//! the provider's own checks, and the rules of its config override).
//!
//! Config overrides: an override key the provider would ignore is rejected, never silently dropped (Kasm
//! users lost Azure overrides that way). Each provider's `check_override` returns `(field path, message)`
//! pairs; `field` is the override field's name.

mod aws;
mod azure;
mod digitalocean;
mod gcp;
mod harvester;
mod kubevirt;
mod nutanix;
mod oci;
mod openstack;
mod proxmox;
mod sizes;
mod vsphere;

pub use aws::{AWS_MANAGED, AWS_RUN_INSTANCES_PARAMETERS, AWS_UNSUPPORTED, AwsConfig};
pub use azure::{AzureAuthority, AzureConfig, AzureImageReference};
pub use digitalocean::DigitalOceanConfig;
pub use gcp::{GcpConfig, GcpGuestAccelerator, GcpMetadataItem, GcpServiceAccount, GcpStartupScriptType};
pub use harvester::HarvesterConfig;
pub use kubevirt::{KubeInterfaceType, KubeManifest, KubeNetworkType, KubevirtConfig};
pub use nutanix::{NutanixApiVersion, NutanixConfig, V4_NAME_MAX, V4_USER_DATA_MAX};
pub use oci::OciConfig;
#[cfg(test)]
pub(crate) use oci::test_config as oci_test_config;
pub use openstack::{
    METADATA_MAX as OPENSTACK_METADATA_MAX, OWNERSHIP_PREFIX as OPENSTACK_OWNERSHIP_PREFIX, OpenstackAuthMethod,
    OpenstackConfig, nova_microversion,
};
pub use proxmox::ProxmoxConfig;
pub use vsphere::{CLOUD_INIT_USERDATA_MAX, VsphereCloneType, VsphereConfig, VsphereStartupScriptMethod};
