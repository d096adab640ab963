//! One file per provider's config struct.

mod aws;
mod azure;
mod digitalocean;
mod gcp;
mod harvester;
mod oci;
mod nutanix;
mod proxmox;
mod vsphere;
mod openstack;
mod kubevirt;

pub use aws::AwsConfig;
pub use azure::AzureConfig;
pub use digitalocean::DigitalOceanConfig;
pub use gcp::GcpConfig;
pub use harvester::HarvesterConfig;
pub use oci::OciConfig;
pub use nutanix::NutanixConfig;
pub use proxmox::ProxmoxConfig;
pub use vsphere::VsphereConfig;
pub use openstack::OpenstackConfig;
pub use kubevirt::KubevirtConfig;
