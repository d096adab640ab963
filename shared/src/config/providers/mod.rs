//! One file per provider's config struct.

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

pub use aws::AwsConfig;
pub use azure::{AzureAuthority, AzureConfig, AzureImageReference};
pub use digitalocean::DigitalOceanConfig;
pub use gcp::{GcpConfig, GcpGuestAccelerator, GcpMetadataItem, GcpServiceAccount, GcpStartupScriptType};
pub use harvester::HarvesterConfig;
pub use kubevirt::{KubeInterfaceType, KubeManifest, KubeNetworkType, KubevirtConfig};
pub use nutanix::{NutanixApiVersion, NutanixConfig};
pub use oci::OciConfig;
pub use openstack::{OpenstackAuthMethod, OpenstackConfig};
pub use proxmox::ProxmoxConfig;
pub use vsphere::VsphereConfig;
