//! VM-provider configs: a tagged enum, one variant per provider, each with exactly the seed's fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check::Found;
use super::kasm_names::{KasmColumn, KasmColumns};
use super::providers::*;
use crate::model::{OsFamily, Resources};
use crate::script::ScriptRules;

/// Declares [`ProviderKind`] and its [`ProviderKind::ALL`] from one list, so a provider cannot be in
/// one and missing from the other.
macro_rules! provider_kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// The eleven providers, by the short name Kasm uses (`{provider_name}` in startup scripts).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ProviderKind {
            $($(#[$doc])* $variant,)+
        }

        impl ProviderKind {
            /// Every provider.
            pub const ALL: &'static [ProviderKind] = &[$(ProviderKind::$variant,)+];

            /// The short name (`aws`, `digital_ocean`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderKind::$variant => $name,)+
                }
            }
        }
    };
}

provider_kinds! {
    /// AWS EC2.
    Aws => "aws",
    /// Microsoft Azure.
    Azure => "azure",
    /// DigitalOcean.
    DigitalOcean => "digital_ocean",
    /// Google Cloud.
    Gcp => "gcp",
    /// Harvester HCI.
    Harvester => "harvester",
    /// Oracle Cloud.
    Oci => "oci",
    /// Nutanix AHV.
    Nutanix => "nutanix",
    /// Proxmox VE.
    Proxmox => "proxmox",
    /// VMware vSphere.
    Vsphere => "vsphere",
    /// OpenStack.
    Openstack => "openstack",
    /// KubeVirt.
    Kubevirt => "kubevirt",
}

impl ProviderKind {
    /// Kasm's names for this provider's config fields (see [`super::kasm_names`]).
    pub fn kasm_columns(self) -> &'static [KasmColumn] {
        match self {
            ProviderKind::Aws => AwsConfig::KASM_COLUMNS,
            ProviderKind::Azure => AzureConfig::KASM_COLUMNS,
            ProviderKind::DigitalOcean => DigitalOceanConfig::KASM_COLUMNS,
            ProviderKind::Gcp => GcpConfig::KASM_COLUMNS,
            ProviderKind::Harvester => HarvesterConfig::KASM_COLUMNS,
            ProviderKind::Oci => OciConfig::KASM_COLUMNS,
            ProviderKind::Nutanix => NutanixConfig::KASM_COLUMNS,
            ProviderKind::Proxmox => ProxmoxConfig::KASM_COLUMNS,
            ProviderKind::Vsphere => VsphereConfig::KASM_COLUMNS,
            ProviderKind::Openstack => OpenstackConfig::KASM_COLUMNS,
            ProviderKind::Kubevirt => KubevirtConfig::KASM_COLUMNS,
        }
    }

    /// The provider with short name `name` (`aws`, `digital_ocean`, ...).
    pub fn from_name(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Our extension on every provider config (not Kasm fields): where its API is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// The API's base URL instead of the provider's default (private clouds, sovereign regions, test
    /// servers), like `AWS_ENDPOINT_URL`.
    pub url: Option<&'a str>,
    /// PEM certificates trusted for the API's TLS, in addition to the built-in roots.
    pub ca_bundle: Option<&'a str>,
}

/// What every provider config can answer, whatever its fields. Each config struct implements it
/// beside its fields (`config/providers/<name>.rs`), so a provider's rules live in one place.
pub trait ProviderConfigCommon {
    /// The config's name (autoscale configs refer to it by this).
    fn name(&self) -> &str;
    /// Most VMs this config may own at once, in every state (the cap is enforced by the store).
    fn max_instances(&self) -> u32;
    /// The startup-script template (Python `str.format` placeholders).
    fn startup_script(&self) -> &str;
    /// How the provider handles startup scripts (size limit, Windows wrapping, cloud-init).
    fn script_rules(&self) -> ScriptRules;
    /// The endpoint override (`endpoint_url`, `ca_bundle`).
    fn endpoint(&self) -> Endpoint<'_>;
    /// The provider's own checks of its fields (ranges, formats, overrides), as `(field, message)`;
    /// the fields every config shares are checked by `validate`.
    fn check(&self) -> Found;
    /// The OS family of the VMs it makes.
    fn os(&self) -> OsFamily {
        OsFamily::Linux
    }
    /// The OS family of a server pool's VMs that Kasm reaches over RDP, where the config has no OS field
    /// of its own; others keep [`ProviderConfigCommon::os`].
    fn os_for_rdp_servers(&self) -> OsFamily {
        self.os()
    }
    /// Whether the provider retrieves a generated Windows password for Kasm's connection (the provider's
    /// `Capabilities::windows_password` says the same once it is built).
    fn retrieves_windows_password(&self) -> bool {
        false
    }
    /// The SSH public key the config installs (`{ssh_key}` in startup scripts), where it has one.
    fn ssh_public_key(&self) -> Option<&str> {
        None
    }
    /// The size of one VM when the config states it (cores / memory fields); `None` for
    /// instance-type providers whose size is looked up elsewhere.
    fn vm_size(&self) -> Option<Resources> {
        None
    }
    /// A problem this config makes together with `other` (another config of the set), as
    /// `(field, message)`: e.g. two Proxmox configs owning overlapping VMID ranges on one host.
    fn conflicts_with(&self, other: &VmProviderConfig) -> Option<(String, String)> {
        let _ = other;
        None
    }
}

/// A VM-provider config: `provider: <kind>` plus that provider's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum VmProviderConfig {
    /// AWS EC2.
    Aws(AwsConfig),
    /// Microsoft Azure.
    Azure(AzureConfig),
    /// DigitalOcean.
    DigitalOcean(DigitalOceanConfig),
    /// Google Cloud.
    Gcp(GcpConfig),
    /// Harvester.
    Harvester(HarvesterConfig),
    /// Oracle Cloud.
    Oci(OciConfig),
    /// Nutanix.
    Nutanix(NutanixConfig),
    /// Proxmox VE.
    Proxmox(ProxmoxConfig),
    /// VMware vSphere.
    Vsphere(VsphereConfig),
    /// OpenStack.
    Openstack(OpenstackConfig),
    /// KubeVirt.
    Kubevirt(KubevirtConfig),
}

impl VmProviderConfig {
    /// The provider this config is for.
    pub fn kind(&self) -> ProviderKind {
        match self {
            VmProviderConfig::Aws(_) => ProviderKind::Aws,
            VmProviderConfig::Azure(_) => ProviderKind::Azure,
            VmProviderConfig::DigitalOcean(_) => ProviderKind::DigitalOcean,
            VmProviderConfig::Gcp(_) => ProviderKind::Gcp,
            VmProviderConfig::Harvester(_) => ProviderKind::Harvester,
            VmProviderConfig::Oci(_) => ProviderKind::Oci,
            VmProviderConfig::Nutanix(_) => ProviderKind::Nutanix,
            VmProviderConfig::Proxmox(_) => ProviderKind::Proxmox,
            VmProviderConfig::Vsphere(_) => ProviderKind::Vsphere,
            VmProviderConfig::Openstack(_) => ProviderKind::Openstack,
            VmProviderConfig::Kubevirt(_) => ProviderKind::Kubevirt,
        }
    }

    /// The variant's fields, through the common trait.
    pub fn common(&self) -> &dyn ProviderConfigCommon {
        match self {
            VmProviderConfig::Aws(c) => c,
            VmProviderConfig::Azure(c) => c,
            VmProviderConfig::DigitalOcean(c) => c,
            VmProviderConfig::Gcp(c) => c,
            VmProviderConfig::Harvester(c) => c,
            VmProviderConfig::Oci(c) => c,
            VmProviderConfig::Nutanix(c) => c,
            VmProviderConfig::Proxmox(c) => c,
            VmProviderConfig::Vsphere(c) => c,
            VmProviderConfig::Openstack(c) => c,
            VmProviderConfig::Kubevirt(c) => c,
        }
    }

    /// The config's name.
    pub fn name(&self) -> &str {
        self.common().name()
    }

    /// The cap on owned VMs.
    pub fn max_instances(&self) -> u32 {
        self.common().max_instances()
    }
}
