//! Test support shared by the integration tests: fake servers and fixtures.

pub mod azure_server;
pub mod browser;
pub mod daemon;
pub mod digitalocean_server;
pub mod ec2_proxy;
pub mod evaluation;
pub mod fake_api;
pub mod gcp_server;
pub mod harvester_server;
pub mod kasm_server;
pub mod kubevirt_server;
pub mod lambda_world;
pub mod moto;
pub mod nutanix_server;
pub mod oci_server;
pub mod openstack_server;
pub mod proxmox_server;
pub mod runtime_api;
pub mod streams;
pub mod vsphere_server;
