//! AWS credentials for one config, resolved on the first request (never while building): the
//! config's access key pair (two secret references), or the default chain (environment, profile, web
//! identity, container or instance role) when both are left out. A key pair that does not resolve
//! fails this config's calls with the secret reference named, never the value.

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_ec2::config::Region;
use secrecy::ExposeSecret;
use std::sync::Arc;
use tokio::sync::OnceCell;

use crate::config::SecretRef;
use crate::secrets::Secrets;

/// The config's access key pair, read through the secrets port once.
#[derive(Debug)]
pub(super) struct KeyPairCredentials {
    pub(super) secrets: Arc<dyn Secrets>,
    pub(super) access_key_id: SecretRef,
    pub(super) secret_access_key: SecretRef,
    pub(super) config: String,
    pub(super) cached: OnceCell<Credentials>,
}

impl KeyPairCredentials {
    async fn resolve(&self) -> Result<Credentials, CredentialsError> {
        let fail =
            |e: crate::secrets::SecretError| CredentialsError::provider_error(format!("config {}: {e}", self.config));
        let id = self.secrets.resolve(&self.access_key_id).await.map_err(fail)?;
        let secret = self.secrets.resolve(&self.secret_access_key).await.map_err(fail)?;
        Ok(Credentials::new(id.expose_secret(), secret.expose_secret(), None, None, "kasm-autoscale-config"))
    }
}

impl ProvideCredentials for KeyPairCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.cached.get_or_try_init(|| self.resolve()).await.cloned() })
    }
}

/// The SDK's default chain, set up on first use with our HTTP client and the config's region.
#[derive(Debug)]
pub(super) struct DefaultChain {
    pub(super) region: Region,
    pub(super) chain: OnceCell<Option<SharedCredentialsProvider>>,
}

impl ProvideCredentials for DefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    crate::http::aws::config_loader().region(self.region.clone()).load().await.credentials_provider()
                })
                .await;
            match chain {
                Some(c) => c.provide_credentials().await,
                None => Err(CredentialsError::not_loaded("no AWS credentials found by the default chain")),
            }
        })
    }
}
