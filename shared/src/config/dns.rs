//! DNS-provider configs (AWS Route 53, Azure DNS, DigitalOcean, GCP Cloud DNS, OCI DNS): where the A records
//! of autoscaled VMs (`<server_hostname>.<base_domain_name>`) are registered. Kasm's documentation lists no
//! fields for them beyond what the VM providers share, so the fields are what each DNS API needs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kasm_names::{Accept, KasmColumn, KasmColumns, no_field, own_id, renamed, same};
use super::providers::AzureAuthority;
use super::secret::SecretRef;

fn ttl() -> u32 {
    60
}

/// A DNS-provider config: `provider: <kind>` plus that provider's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum DnsProviderConfig {
    /// AWS Route 53.
    Aws(Route53DnsConfig),
    /// Azure DNS.
    Azure(AzureDnsConfig),
    /// DigitalOcean DNS.
    DigitalOcean(DigitalOceanDnsConfig),
    /// GCP Cloud DNS.
    Gcp(GcpDnsConfig),
    /// OCI DNS.
    Oci(OciDnsConfig),
}

/// AWS Route 53.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route53DnsConfig {
    /// A name to identify the config.
    pub name: String,
    /// Access key id (a secret reference); with the secret key left out too, the default credential chain is used.
    #[serde(default)]
    pub aws_access_key_id: Option<SecretRef>,
    /// Secret access key (a secret reference); set together with the access key id.
    #[serde(default)]
    pub aws_secret_access_key: Option<SecretRef>,
    /// Id of the hosted zone the records go in, e.g. `Z0123456789ABCDEFGHIJ`.
    pub hosted_zone_id: String,
    /// TTL (seconds) of the records.
    #[serde(default = "ttl")]
    pub ttl: u32,
    /// Our extension: the DNS API's base URL instead of the service's default (private endpoints,
    /// sovereign clouds, test servers); an `http(s)://host[:port]` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Our extension: PEM certificates trusted for the DNS API's TLS, in addition to the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Kasm's `aws_dns_configs` columns. Kasm has no hosted zone column (it finds the zone by the autoscale
/// config's base domain); `hosted_zone_id` is ours.
impl KasmColumns for Route53DnsConfig {
    const KASM_TABLE: &'static str = "aws_dns_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("aws_access_key_id"),
        same("aws_secret_access_key"),
    ];
}

/// Azure DNS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureDnsConfig {
    /// A name to identify the config.
    pub name: String,
    /// Subscription ID of the Azure account, a UUID.
    pub azure_subscription_id: String,
    /// Resource group of the DNS zone.
    pub azure_resource_group: String,
    /// Tenant ID of the Azure account, a UUID.
    pub azure_tenant_id: String,
    /// Client ID of the registered app (it needs the DNS Zone Contributor role).
    pub azure_client_id: String,
    /// Client secret of the registered app (a secret reference).
    pub azure_client_secret: SecretRef,
    /// Which Azure authority (cloud) to use.
    #[serde(default)]
    pub azure_authority: AzureAuthority,
    /// Name of the DNS zone, e.g. `kasm.example.com`.
    pub zone_name: String,
    /// TTL (seconds) of the records.
    #[serde(default = "ttl")]
    pub ttl: u32,
    /// Our extension (as on the Azure VM-provider config): the Microsoft Entra ID (login) base URL
    /// instead of the authority's own, for test servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_url: Option<String>,
    /// Our extension: the DNS API's base URL instead of the service's default (private endpoints,
    /// sovereign clouds, test servers); an `http(s)://host[:port]` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Our extension: PEM certificates trusted for the DNS API's TLS, in addition to the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Kasm's `azure_dns_configs` columns (`zone_name` is ours).
impl KasmColumns for AzureDnsConfig {
    const KASM_TABLE: &'static str = "azure_dns_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("azure_dns_config_id"),
        renamed("config_name", "name"),
        same("azure_subscription_id"),
        same("azure_resource_group"),
        same("azure_tenant_id"),
        same("azure_client_id"),
        same("azure_client_secret"),
        same("azure_authority"),
        no_field(
            "azure_region",
            "Azure DNS zones are global; kasm-autoscale finds the zone by `zone_name` in the resource group",
            Accept::Any,
        ),
    ];
}

/// DigitalOcean DNS (domains).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DigitalOceanDnsConfig {
    /// A name to identify the config.
    pub name: String,
    /// API token (a secret reference).
    pub token: SecretRef,
    /// The domain managed in DigitalOcean the records go in, e.g. `example.com`.
    pub domain: String,
    /// TTL (seconds) of the records (DigitalOcean's minimum is 30).
    #[serde(default = "ttl")]
    pub ttl: u32,
    /// Our extension: the DNS API's base URL instead of the service's default (private endpoints,
    /// sovereign clouds, test servers); an `http(s)://host[:port]` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Our extension: PEM certificates trusted for the DNS API's TLS, in addition to the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Kasm's `digital_ocean_dns_configs` columns (`domain` is ours).
impl KasmColumns for DigitalOceanDnsConfig {
    const KASM_TABLE: &'static str = "digital_ocean_dns_configs";
    const KASM_COLUMNS: &'static [KasmColumn] =
        &[own_id("config_id"), renamed("config_name", "name"), renamed("digital_ocean_token", "token")];
}

/// GCP Cloud DNS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpDnsConfig {
    /// A name to identify the config.
    pub name: String,
    /// Service-account JSON credentials (a secret reference).
    pub gcp_credentials: SecretRef,
    /// Project of the managed zone.
    pub gcp_project: String,
    /// Name of the managed zone (not its DNS name), e.g. `kasm-zone`.
    pub managed_zone: String,
    /// TTL (seconds) of the records.
    #[serde(default = "ttl")]
    pub ttl: u32,
    /// Our extension: the DNS API's base URL instead of the service's default (private endpoints,
    /// sovereign clouds, test servers); an `http(s)://host[:port]` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Our extension: PEM certificates trusted for the DNS API's TLS, in addition to the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Kasm's `gcp_dns_configs` columns (`managed_zone` is ours).
impl KasmColumns for GcpDnsConfig {
    const KASM_TABLE: &'static str = "gcp_dns_configs";
    const KASM_COLUMNS: &'static [KasmColumn] =
        &[own_id("config_id"), renamed("config_name", "name"), same("gcp_credentials"), same("gcp_project")];
}

/// OCI DNS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OciDnsConfig {
    /// A name to identify the config.
    pub name: String,
    /// OCID of the API user.
    pub oci_user_ocid: String,
    /// Fingerprint of the API user's public key.
    pub oci_public_key_fingerprint: String,
    /// The API user's private key, PEM (a secret reference).
    pub oci_private_key: SecretRef,
    /// The OCI region, e.g. `us-ashburn-1`.
    pub oci_region: String,
    /// OCID of the tenancy.
    pub oci_tenancy_ocid: String,
    /// OCID of the compartment holding the zone.
    pub oci_compartment_ocid: String,
    /// Name or OCID of the zone, e.g. `kasm.example.com`.
    pub zone_name_or_id: String,
    /// TTL (seconds) of the records.
    #[serde(default = "ttl")]
    pub ttl: u32,
    /// Our extension: the DNS API's base URL instead of the service's default (private endpoints,
    /// sovereign clouds, test servers); an `http(s)://host[:port]` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Our extension: PEM certificates trusted for the DNS API's TLS, in addition to the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// Kasm's `oci_dns_configs` columns (`zone_name_or_id` is ours).
impl KasmColumns for OciDnsConfig {
    const KASM_TABLE: &'static str = "oci_dns_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("oci_user_ocid"),
        renamed("oci_fingerprint", "oci_public_key_fingerprint"),
        same("oci_private_key"),
        same("oci_region"),
        same("oci_tenancy_ocid"),
        same("oci_compartment_ocid"),
    ];
}

/// Kasm's columns of the DNS-provider config of kind `kind` (a [`DNS_PROVIDER_KINDS`] tag), if it is one.
pub fn dns_kasm_columns(kind: &str) -> Option<&'static [KasmColumn]> {
    Some(match kind {
        "aws" => Route53DnsConfig::KASM_COLUMNS,
        "azure" => AzureDnsConfig::KASM_COLUMNS,
        "digital_ocean" => DigitalOceanDnsConfig::KASM_COLUMNS,
        "gcp" => GcpDnsConfig::KASM_COLUMNS,
        "oci" => OciDnsConfig::KASM_COLUMNS,
        _ => return None,
    })
}

/// The DNS providers, by their `provider:` tag.
pub const DNS_PROVIDER_KINDS: [&str; 5] = ["aws", "azure", "digital_ocean", "gcp", "oci"];

impl DnsProviderConfig {
    /// The config's name.
    pub fn name(&self) -> &str {
        match self {
            DnsProviderConfig::Aws(c) => &c.name,
            DnsProviderConfig::Azure(c) => &c.name,
            DnsProviderConfig::DigitalOcean(c) => &c.name,
            DnsProviderConfig::Gcp(c) => &c.name,
            DnsProviderConfig::Oci(c) => &c.name,
        }
    }

    /// The API endpoint and CA bundle overrides (our extensions).
    pub fn endpoint(&self) -> crate::config::provider::Endpoint<'_> {
        let (url, ca) = match self {
            DnsProviderConfig::Aws(c) => (&c.endpoint_url, &c.ca_bundle),
            DnsProviderConfig::Azure(c) => (&c.endpoint_url, &c.ca_bundle),
            DnsProviderConfig::DigitalOcean(c) => (&c.endpoint_url, &c.ca_bundle),
            DnsProviderConfig::Gcp(c) => (&c.endpoint_url, &c.ca_bundle),
            DnsProviderConfig::Oci(c) => (&c.endpoint_url, &c.ca_bundle),
        };
        crate::config::provider::Endpoint { url: url.as_deref(), ca_bundle: ca.as_deref() }
    }

    /// The TTL of the records.
    pub fn ttl(&self) -> u32 {
        match self {
            DnsProviderConfig::Aws(c) => c.ttl,
            DnsProviderConfig::Azure(c) => c.ttl,
            DnsProviderConfig::DigitalOcean(c) => c.ttl,
            DnsProviderConfig::Gcp(c) => c.ttl,
            DnsProviderConfig::Oci(c) => c.ttl,
        }
    }
}
