//! One exhaustive match from a provider config variant to its provider: [`build`] and [`preflight`].
//! A provider left out of this build (its cargo feature off) answers [`ProviderError::NotSupported`]
//! naming the feature; nothing else in the crate names a provider.

use std::sync::Arc;

use super::{BuildEnv, Check, ProviderError, VmProvider};
use crate::config::{ProviderKind, VmProviderConfig};
use crate::http::RetryConfig;

/// The provider for `config`. No network I/O: credentials are resolved on first use, so a config
/// whose secret does not resolve fails its own calls, not the build of the others.
pub fn build(config: &VmProviderConfig, env: &BuildEnv) -> Result<Arc<dyn VmProvider>, ProviderError> {
    let _ = env; // unused when no provider feature is on
    match config {
        #[cfg(feature = "aws")]
        VmProviderConfig::Aws(c) => Ok(Arc::new(super::aws::AwsProvider::from_config(c, env)?)),
        #[cfg(not(feature = "aws"))]
        VmProviderConfig::Aws(_) => Err(left_out(ProviderKind::Aws, "aws")),
        #[cfg(feature = "proxmox")]
        VmProviderConfig::Proxmox(c) => Ok(Arc::new(super::proxmox::ProxmoxProvider::from_config(c, env)?)),
        #[cfg(not(feature = "proxmox"))]
        VmProviderConfig::Proxmox(_) => Err(left_out(ProviderKind::Proxmox, "proxmox")),
        #[cfg(feature = "azure")]
        VmProviderConfig::Azure(c) => Ok(Arc::new(super::azure::AzureProvider::from_config(c, env)?)),
        #[cfg(not(feature = "azure"))]
        VmProviderConfig::Azure(_) => Err(left_out(ProviderKind::Azure, "azure")),
        #[cfg(feature = "digitalocean")]
        VmProviderConfig::DigitalOcean(c) => {
            Ok(Arc::new(super::digitalocean::DigitalOceanProvider::from_config(c, env)?))
        }
        #[cfg(not(feature = "digitalocean"))]
        VmProviderConfig::DigitalOcean(_) => Err(left_out(ProviderKind::DigitalOcean, "digitalocean")),
        #[cfg(feature = "gcp")]
        VmProviderConfig::Gcp(c) => Ok(Arc::new(super::gcp::GcpProvider::from_config(c, env)?)),
        #[cfg(not(feature = "gcp"))]
        VmProviderConfig::Gcp(_) => Err(left_out(ProviderKind::Gcp, "gcp")),
        #[cfg(feature = "harvester")]
        VmProviderConfig::Harvester(c) => Ok(Arc::new(super::harvester::HarvesterProvider::from_config(c, env)?)),
        #[cfg(not(feature = "harvester"))]
        VmProviderConfig::Harvester(_) => Err(left_out(ProviderKind::Harvester, "harvester")),
        #[cfg(feature = "oci")]
        VmProviderConfig::Oci(c) => Ok(Arc::new(super::oci::OciProvider::from_config(c, env)?)),
        #[cfg(not(feature = "oci"))]
        VmProviderConfig::Oci(_) => Err(left_out(ProviderKind::Oci, "oci")),
        #[cfg(feature = "nutanix")]
        VmProviderConfig::Nutanix(c) => Ok(Arc::new(super::nutanix::NutanixProvider::from_config(c, env)?)),
        #[cfg(not(feature = "nutanix"))]
        VmProviderConfig::Nutanix(_) => Err(left_out(ProviderKind::Nutanix, "nutanix")),
        #[cfg(feature = "openstack")]
        VmProviderConfig::Openstack(c) => Ok(Arc::new(super::openstack::OpenstackProvider::from_config(c, env)?)),
        #[cfg(not(feature = "openstack"))]
        VmProviderConfig::Openstack(_) => Err(left_out(ProviderKind::Openstack, "openstack")),
        #[cfg(feature = "vsphere")]
        VmProviderConfig::Vsphere(c) => Ok(Arc::new(super::vsphere::VsphereProvider::from_config(c, env)?)),
        #[cfg(not(feature = "vsphere"))]
        VmProviderConfig::Vsphere(_) => Err(left_out(ProviderKind::Vsphere, "vsphere")),
        #[cfg(feature = "kubevirt")]
        VmProviderConfig::Kubevirt(c) => Ok(Arc::new(super::kubevirt::KubevirtProvider::from_config(c, env)?)),
        #[cfg(not(feature = "kubevirt"))]
        VmProviderConfig::Kubevirt(_) => Err(left_out(ProviderKind::Kubevirt, "kubevirt")),
    }
}

/// The read-only preflight checks of `config` against its real endpoint (credentials, privileges,
/// images/templates, ...), one [`Check`] each. A provider that cannot be built fails one `build` check.
pub async fn preflight(config: &VmProviderConfig, env: &BuildEnv) -> Vec<Check> {
    // An operator waiting at a terminal: one retry, not a minute of them.
    let env = BuildEnv { retry: RetryConfig { max_retries: 1, ..env.retry.clone() }, ..env.clone() };
    match build(config, &env) {
        Ok(p) => {
            let checks = p.preflight().await;
            p.shutdown().await;
            checks
        }
        Err(e) => vec![Check::fail("build", e.to_string())],
    }
}

/// The error of a provider whose cargo feature is off in this build.
#[allow(dead_code)]
fn left_out(kind: ProviderKind, feature: &str) -> ProviderError {
    ProviderError::NotSupported {
        provider: kind.as_str(),
        what: format!(
            "this binary was built without the `{feature}` feature; rebuild with `--features shared/{feature}` (or the default features)"
        ),
    }
}
