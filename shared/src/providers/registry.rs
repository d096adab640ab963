//! One exhaustive match from a provider config variant to its provider.

use std::sync::Arc;

use super::{ProviderError, VmProvider};
use crate::config::{Settings, VmProviderConfig};
use crate::secrets::Secrets;

/// Builds the provider for `config`, resolving its secrets.
pub async fn build(
    config: &VmProviderConfig,
    secrets: &dyn Secrets,
    settings: &Settings,
) -> Result<Arc<dyn VmProvider>, ProviderError> {
    let provider: &'static str = config.kind().as_str();
    match config {
        VmProviderConfig::Aws(c) => {
            Ok(Arc::new(super::aws::AwsBuilder::new(c.clone()).build_with(secrets, settings).await?))
        }
        VmProviderConfig::Proxmox(c) => {
            let mut b = super::proxmox::ProxmoxBuilder::new(c.clone());
            if let Some(url) = &c.endpoint_url {
                b = b.endpoint(url);
            }
            Ok(Arc::new(b.resolve_token(secrets).await?.build()?))
        }
        VmProviderConfig::Azure(_)
        | VmProviderConfig::DigitalOcean(_)
        | VmProviderConfig::Gcp(_)
        | VmProviderConfig::Harvester(_)
        | VmProviderConfig::Oci(_)
        | VmProviderConfig::Nutanix(_)
        | VmProviderConfig::Vsphere(_)
        | VmProviderConfig::Openstack(_)
        | VmProviderConfig::Kubevirt(_) => Err(ProviderError::NotSupported {
            provider,
            what: format!("the {provider} provider is not built into this version yet"),
        }),
    }
}
