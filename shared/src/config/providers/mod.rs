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
mod vsphere;

pub use aws::AwsConfig;
pub use azure::AzureConfig;
pub use digitalocean::DigitalOceanConfig;
pub use gcp::GcpConfig;
pub use harvester::HarvesterConfig;
pub use kubevirt::KubevirtConfig;
pub use nutanix::NutanixConfig;
pub use oci::OciConfig;
pub use openstack::OpenstackConfig;
pub use proxmox::ProxmoxConfig;
pub use vsphere::VsphereConfig;
