//! One exhaustive match from a DNS-provider config variant to its backend. Backends come with their
//! provider: AWS Route 53, DigitalOcean DNS, Azure DNS, GCP Cloud DNS and OCI DNS, each with its
//! provider's feature; a build without that feature answers [`DnsError::NotSupported`] naming the provider.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;

use super::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord};
use crate::config::{ConfigSet, DnsProviderConfig};
use crate::secrets::Secrets;

/// Whether this version has a backend for `config` (no I/O): `Err(NotSupported)` naming the provider
/// when it has not. `validate` and `plan` report it; building such a config gives the same error.
pub fn check(config: &DnsProviderConfig) -> Result<(), DnsError> {
    match config {
        #[cfg(feature = "aws")]
        DnsProviderConfig::Aws(_) => Ok(()),
        #[cfg(not(feature = "aws"))]
        DnsProviderConfig::Aws(_) => Err(not_built(config)),
        #[cfg(feature = "digitalocean")]
        DnsProviderConfig::DigitalOcean(_) => Ok(()),
        #[cfg(not(feature = "digitalocean"))]
        DnsProviderConfig::DigitalOcean(_) => Err(not_built(config)),
        #[cfg(feature = "azure")]
        DnsProviderConfig::Azure(_) => Ok(()),
        #[cfg(not(feature = "azure"))]
        DnsProviderConfig::Azure(_) => Err(not_built(config)),
        #[cfg(feature = "gcp")]
        DnsProviderConfig::Gcp(_) => Ok(()),
        #[cfg(not(feature = "gcp"))]
        DnsProviderConfig::Gcp(_) => Err(not_built(config)),
        #[cfg(feature = "oci")]
        DnsProviderConfig::Oci(_) => Ok(()),
        #[cfg(not(feature = "oci"))]
        DnsProviderConfig::Oci(_) => Err(not_built(config)),
    }
}

/// Builds the backend for `config` with no I/O: no call to the DNS API, secrets read on first use.
pub fn build(config: &DnsProviderConfig, secrets: &Arc<dyn Secrets>) -> Result<Arc<dyn DnsProvider>, DnsError> {
    match config {
        #[cfg(feature = "aws")]
        DnsProviderConfig::Aws(c) => {
            Ok(Arc::new(crate::providers::aws::dns::Route53Dns::from_config(c, secrets.clone())?))
        }
        #[cfg(not(feature = "aws"))]
        DnsProviderConfig::Aws(_) => {
            let _ = secrets;
            Err(not_built(config))
        }
        #[cfg(feature = "digitalocean")]
        DnsProviderConfig::DigitalOcean(c) => {
            Ok(Arc::new(crate::providers::digitalocean::dns::DigitalOceanDns::from_config(c, secrets.clone())?))
        }
        #[cfg(not(feature = "digitalocean"))]
        DnsProviderConfig::DigitalOcean(_) => Err(not_built(config)),
        #[cfg(feature = "azure")]
        DnsProviderConfig::Azure(c) => {
            Ok(Arc::new(crate::providers::azure::dns::AzureDns::from_config(c, secrets.clone())?))
        }
        #[cfg(not(feature = "azure"))]
        DnsProviderConfig::Azure(_) => Err(not_built(config)),
        #[cfg(feature = "gcp")]
        DnsProviderConfig::Gcp(c) => Ok(Arc::new(crate::providers::gcp::dns::GcpDns::from_config(c, secrets.clone())?)),
        #[cfg(not(feature = "gcp"))]
        DnsProviderConfig::Gcp(_) => Err(not_built(config)),
        #[cfg(feature = "oci")]
        DnsProviderConfig::Oci(c) => Ok(Arc::new(crate::providers::oci::dns::OciDns::from_config(c, secrets.clone())?)),
        #[cfg(not(feature = "oci"))]
        DnsProviderConfig::Oci(_) => Err(not_built(config)),
    }
}

/// "Not built into this version yet", naming the config, the provider and its DNS service. With every
/// provider's feature on (the default) only the tests call it.
#[cfg_attr(
    all(feature = "aws", feature = "digitalocean", feature = "azure", feature = "gcp", feature = "oci"),
    allow(dead_code)
)]
fn not_built(config: &DnsProviderConfig) -> DnsError {
    let (provider, service) = match config {
        DnsProviderConfig::Aws(_) => ("aws", "AWS Route 53"),
        DnsProviderConfig::Azure(_) => ("azure", "Azure DNS"),
        DnsProviderConfig::DigitalOcean(_) => ("digital_ocean", "DigitalOcean DNS"),
        DnsProviderConfig::Gcp(_) => ("gcp", "GCP Cloud DNS"),
        DnsProviderConfig::Oci(_) => ("oci", "OCI DNS"),
    };
    DnsError::NotSupported {
        provider,
        what: format!(
            "DNS-provider config {}: registering records in {service} is not built into this version yet",
            config.name()
        ),
    }
}

/// What `validate` and `plan` say about DNS registration that cannot happen in this version: one line
/// per autoscale config with `register_dns` whose DNS-provider config has no backend here. Notes, not
/// errors: such a config is valid Kasm config, and its VMs are made (without their A record).
pub fn notes(configs: &ConfigSet) -> Vec<String> {
    notes_by(configs, check)
}

/// [`notes`] with `check` deciding which DNS-provider configs have a backend (tests stand in for a
/// build without some provider's feature).
fn notes_by(configs: &ConfigSet, check: impl Fn(&DnsProviderConfig) -> Result<(), DnsError>) -> Vec<String> {
    let mut out = Vec::new();
    for a in configs.autoscale_configs.iter().filter(|a| a.register_dns) {
        let Some(name) = a.dns_provider_config.as_deref() else { continue };
        let Some(d) = configs.dns_provider_configs.iter().find(|d| d.name() == name) else { continue };
        if let Err(e) = check(d) {
            out.push(format!(
                "{}.register_dns: {e}; its VMs are created without their A record",
                a.autoscale_config_name
            ));
        }
    }
    out
}

/// One backend per DNS-provider config of `configs`, by config name. A config that cannot be built (no
/// backend in this version, a bad endpoint or CA bundle) fails alone: its entry answers every call
/// with the build error, logged here once with the config's name, and every other config works.
pub fn build_all(configs: &ConfigSet, secrets: &Arc<dyn Secrets>) -> HashMap<String, Arc<dyn DnsProvider>> {
    let mut out: HashMap<String, Arc<dyn DnsProvider>> = HashMap::new();
    for c in &configs.dns_provider_configs {
        let built = match build(c, secrets) {
            Ok(b) => b,
            Err(error) => {
                let used = configs
                    .autoscale_configs
                    .iter()
                    .any(|a| a.register_dns && a.dns_provider_config.as_deref() == Some(c.name()));
                if used {
                    tracing::warn!(dns_provider_config = c.name(), error = %error, "DNS provider not available: VMs of the autoscale configs using it get no A record");
                }
                Arc::new(Unavailable { provider: "dns", error })
            }
        };
        out.insert(c.name().to_string(), built);
    }
    out
}

/// The stand-in for a DNS-provider config that could not be built: every call fails with why.
#[derive(Debug)]
pub struct Unavailable {
    provider: &'static str,
    error: DnsError,
}

impl Unavailable {
    /// A backend failing every call with `error`.
    pub fn new(error: DnsError) -> Self {
        Self { provider: "dns", error }
    }
}

#[async_trait]
impl DnsProvider for Unavailable {
    fn name(&self) -> &'static str {
        self.provider
    }

    async fn upsert_a(&self, _record: &ARecord) -> Result<(), DnsError> {
        Err(self.error.clone())
    }

    async fn delete_a(&self, _name: &str, _owner: &DnsOwner) -> Result<(), DnsError> {
        Err(self.error.clone())
    }

    async fn list_owned(&self, _deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        Err(self.error.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;
    use crate::secrets::StaticSecrets;

    fn set(doc: &str) -> ConfigSet {
        let f: ConfigFile = serde_yaml_ng::from_str(doc).expect("config");
        let mut s = ConfigSet::default();
        s.merge(f);
        s
    }

    const ALL: &str = r#"
dns_provider_configs:
  - provider: aws
    name: r53
    hosted_zone_id: Z0123456789ABCDEFGHIJ
  - provider: azure
    name: az
    azure_subscription_id: 00000000-0000-0000-0000-000000000000
    azure_resource_group: rg
    azure_tenant_id: 00000000-0000-0000-0000-000000000000
    azure_client_id: 00000000-0000-0000-0000-000000000000
    azure_client_secret: env:AZ_SECRET
    zone_name: kasm.example.com
  - provider: digital_ocean
    name: do
    token: env:DO_TOKEN
    domain: example.com
  - provider: gcp
    name: gcp
    gcp_credentials: env:GCP_CREDS
    gcp_project: p
    managed_zone: z
  - provider: oci
    name: oci
    oci_user_ocid: u
    oci_public_key_fingerprint: f
    oci_private_key: env:OCI_KEY
    oci_region: us-ashburn-1
    oci_tenancy_ocid: t
    oci_compartment_ocid: c
    zone_name_or_id: kasm.example.com
"#;

    /// Whether this build has the backend of the DNS-provider config `name` of [`ALL`].
    fn built(name: &str) -> bool {
        match name {
            "r53" => cfg!(feature = "aws"),
            "do" => cfg!(feature = "digitalocean"),
            "az" => cfg!(feature = "azure"),
            "gcp" => cfg!(feature = "gcp"),
            "oci" => cfg!(feature = "oci"),
            other => panic!("{other}"),
        }
    }

    fn assert_not_built(name: &str, e: &DnsError) {
        let DnsError::NotSupported { provider, .. } = e else { panic!("{name}: {e:?}") };
        let text = e.to_string();
        assert!(text.contains(&format!("DNS-provider config {name}")), "{text}");
        assert!(text.starts_with(provider), "{text}");
        assert!(text.contains("not built into this version"), "{text}");
    }

    #[test]
    fn built_backends_check_ok_the_others_say_which_provider() {
        let s = set(ALL);
        assert_eq!(s.dns_provider_configs.len(), 5);
        for c in &s.dns_provider_configs {
            match check(c) {
                Ok(()) => assert!(built(c.name()), "{} checks ok without its feature", c.name()),
                Err(e) => {
                    assert!(!built(c.name()), "{}: {e}", c.name());
                    assert_not_built(c.name(), &e);
                }
            }
            // What a build without the provider's feature answers, for every kind.
            assert_not_built(c.name(), &not_built(c));
        }
    }

    #[test]
    fn notes_name_the_autoscale_config_and_the_missing_backend() {
        let mut s = set(ALL);
        let doc = r#"
autoscale_configs:
  - {autoscale_config_name: on-oci, server_pool_id: p, zone_id: z, vm_provider_config: v, register_dns: true, base_domain_name: example.com, dns_provider_config: oci}
  - {autoscale_config_name: on-r53, server_pool_id: p, zone_id: z, vm_provider_config: v, register_dns: true, base_domain_name: example.com, dns_provider_config: r53}
  - {autoscale_config_name: on-gcp, server_pool_id: p, zone_id: z, vm_provider_config: v, register_dns: true, base_domain_name: example.com, dns_provider_config: gcp}
  - {autoscale_config_name: off, server_pool_id: p, zone_id: z, vm_provider_config: v, dns_provider_config: oci}
  - {autoscale_config_name: on-azure, server_pool_id: p, zone_id: z, vm_provider_config: v, register_dns: true, base_domain_name: example.com, dns_provider_config: az}
"#;
        s.merge(serde_yaml_ng::from_str(doc).unwrap());
        // This build: a note for each registering config whose backend is not built (none by default).
        let want: Vec<&str> = [("on-oci", "oci"), ("on-r53", "r53"), ("on-gcp", "gcp"), ("on-azure", "az")]
            .into_iter()
            .filter(|(_, d)| !built(d))
            .map(|(a, _)| a)
            .collect();
        let got: Vec<String> = notes(&s).iter().map(|n| n.split('.').next().unwrap_or_default().to_string()).collect();
        assert_eq!(got, want);
        // A build without OCI's feature (its check answers what `check` answers there).
        let n = notes_by(&s, |c| match c {
            DnsProviderConfig::Oci(_) => Err(not_built(c)),
            other => check(other),
        });
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(n[0].starts_with("on-oci.register_dns: oci: not supported: DNS-provider config oci"), "{}", n[0]);
        assert!(n[0].contains("OCI DNS is not built into this version yet"), "{}", n[0]);
    }

    #[tokio::test]
    async fn a_config_that_cannot_be_built_fails_alone() {
        let mut s = set(ALL);
        // The DigitalOcean config's CA bundle is no PEM: it cannot be built (validate refuses it too).
        for c in &mut s.dns_provider_configs {
            if let DnsProviderConfig::DigitalOcean(d) = c {
                d.ca_bundle = Some("not a pem".into());
            }
        }
        let built_all = build_all(&s, &(Arc::new(StaticSecrets::default()) as Arc<dyn Secrets>));
        assert_eq!(built_all.len(), 5);
        let owner = DnsOwner { deployment: "d".into(), claim: crate::model::ClaimId("c".into()) };
        let err = built_all["do"].delete_a("kasm-c.kasm.example.com", &owner).await.unwrap_err();
        assert_eq!(err.class(), crate::dns::ErrorClass::Invalid, "{err:?}");
        assert!(err.to_string().contains("CA certificate"), "{err}");
        // Azure DNS, GCP Cloud DNS and OCI DNS are built in; their secrets do not resolve here, so they
        // fail alone too, at their first call.
        for name in ["az", "gcp", "oci"] {
            if !built(name) {
                continue;
            }
            let err = built_all[name].delete_a("kasm-c.kasm.example.com", &owner).await.unwrap_err();
            assert!(matches!(err, DnsError::Unauthenticated { .. }), "{name}: {err:?}");
        }
        assert_eq!(built_all["r53"].name(), "route53");
    }
}
