//! DNS-provider configs (AWS Route 53, Azure DNS, DigitalOcean, GCP Cloud DNS, OCI DNS).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DNS-provider config: `provider: <kind>` plus that provider's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum DnsProviderConfig {
    /// AWS Route 53.
    Aws(DnsCommon),
    /// Azure DNS.
    Azure(DnsCommon),
    /// DigitalOcean DNS.
    DigitalOcean(DnsCommon),
    /// GCP Cloud DNS.
    Gcp(DnsCommon),
    /// OCI DNS.
    Oci(DnsCommon),
}

/// Placeholder fields shared by all DNS configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DnsCommon {
    /// A name to identify the config.
    pub name: String,
}

impl DnsProviderConfig {
    /// The config's name.
    pub fn name(&self) -> &str {
        match self {
            DnsProviderConfig::Aws(c)
            | DnsProviderConfig::Azure(c)
            | DnsProviderConfig::DigitalOcean(c)
            | DnsProviderConfig::Gcp(c)
            | DnsProviderConfig::Oci(c) => &c.name,
        }
    }
}
