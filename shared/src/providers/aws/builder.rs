//! Building an [`AwsProvider`]: credentials (the config's key pair of secret references, else the
//! default chain), region, the checked `instance_config` override, and the Windows key pair's
//! private key.

use aws_config::Region;
use aws_sdk_ec2::Client;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::{AwsProvider, DEFAULT_PAGE_SIZE, KeyState, NAME, client, keypair_secret_ref};
use crate::config::Settings;
use crate::config::providers::AwsConfig;
use crate::providers::ProviderError;
use crate::secrets::Secrets;

/// Builds an [`AwsProvider`] from an [`AwsConfig`].
#[derive(Debug)]
pub struct AwsBuilder {
    config: AwsConfig,
    client: Option<Client>,
    private_key: Option<SecretString>,
    page_size: i32,
}

impl AwsBuilder {
    /// A builder for `config`.
    pub fn new(config: AwsConfig) -> Self {
        AwsBuilder { config, client: None, private_key: None, page_size: DEFAULT_PAGE_SIZE }
    }

    /// Uses this EC2 client (tests: an emulator endpoint, interceptors) instead of one from the config.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The key pair's private key (PEM) for Windows passwords, instead of reading it from Secrets Manager.
    pub fn private_key(mut self, pem: SecretString) -> Self {
        self.private_key = Some(pem);
        self
    }

    /// DescribeInstances page size (clamped to the API's 5..=1000; tests use small pages).
    pub fn page_size(mut self, n: i32) -> Self {
        self.page_size = n.clamp(5, 1000);
        self
    }

    /// The provider the way the registry builds it: credentials from the config's secret references
    /// (or the default chain), the region from the config, `AWS_ENDPOINT_URL` honoured, and the key
    /// pair's private key from [`keypair_secret_ref`] when Windows passwords are retrieved.
    pub async fn build_with(self, secrets: &dyn Secrets, settings: &Settings) -> Result<AwsProvider, ProviderError> {
        let mut b = self;
        if b.client.is_none() {
            b.client = Some(Client::new(&sdk_config(&b.config, secrets).await?));
        }
        if b.private_key.is_none()
            && b.config.retrieve_windows_vm_password
            && let Some(key_name) = b.config.ssh_key_name.as_deref().filter(|k| !k.trim().is_empty())
        {
            let r = keypair_secret_ref(&settings.deployment_id, key_name);
            match secrets.resolve(&r).await {
                Ok(pem) => b.private_key = Some(pem),
                Err(e) => {
                    // Not fatal: Linux claims of the config still work; the password fetcher reports this.
                    let why = format!("the private key of key pair {key_name} is not available: {e}");
                    tracing::warn!(config = %b.config.name, reason = %why, "Windows passwords cannot be decrypted");
                    return b.finish(Some(KeyState::Unavailable(why)));
                }
            }
        }
        b.finish(None)
    }

    /// The provider with the client given to [`AwsBuilder::client`] (no secrets are resolved).
    pub fn build(self) -> Result<AwsProvider, ProviderError> {
        self.finish(None)
    }

    fn finish(self, key_state: Option<KeyState>) -> Result<AwsProvider, ProviderError> {
        let ec2 = self.client.ok_or_else(|| ProviderError::Invalid {
            provider: NAME,
            message: "no EC2 client: use AwsBuilder::client or build_with".into(),
        })?;
        let instance_config = instance_config(&self.config)?;
        let private_key = match (key_state, self.private_key) {
            (Some(s), _) => s,
            (None, Some(k)) => KeyState::Loaded(k),
            (None, None) => KeyState::NotConfigured,
        };
        Ok(AwsProvider {
            ec2,
            config: self.config,
            instance_config,
            private_key,
            page_size: self.page_size,
            root_device: tokio::sync::OnceCell::new(),
        })
    }
}

/// The override's `instance_config`, every parameter checked against the mapper now, so a config the
/// provider cannot apply fails when it is loaded and not on every create.
fn instance_config(cfg: &AwsConfig) -> Result<Map<String, Value>, ProviderError> {
    let ic = match cfg.aws_config_override.as_ref().and_then(|o| o.0.get("instance_config")) {
        None => return Ok(Map::new()),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ProviderError::Invalid {
                provider: NAME,
                message: format!("config {}: aws_config_override.instance_config must be an object", cfg.name),
            });
        }
    };
    let probe = aws_sdk_ec2::operation::run_instances::RunInstancesInput::builder();
    client::apply_parameters(probe, &ic).map_err(|e| ProviderError::Invalid {
        provider: NAME,
        message: format!("config {}: aws_config_override.instance_config: {e}", cfg.name),
    })?;
    Ok(ic)
}

async fn sdk_config(cfg: &AwsConfig, secrets: &dyn Secrets) -> Result<aws_config::SdkConfig, ProviderError> {
    // `defaults` reads AWS_ENDPOINT_URL (tests, emulators) and the default credential chain.
    let mut loader = crate::http::aws::config_loader().region(Region::new(cfg.aws_region.clone()));
    match (&cfg.aws_access_key_id, &cfg.aws_secret_access_key) {
        (Some(id), Some(secret)) => {
            let id = secrets.resolve(id).await.map_err(|e| invalid_secret(cfg, e))?;
            let secret = secrets.resolve(secret).await.map_err(|e| invalid_secret(cfg, e))?;
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                id.expose_secret(),
                secret.expose_secret(),
                None,
                None,
                "kasm-autoscale-config",
            ));
        }
        (None, None) => {}
        _ => {
            return Err(ProviderError::Invalid {
                provider: NAME,
                message: format!(
                    "config {}: set both aws_access_key_id and aws_secret_access_key, or neither (default credentials)",
                    cfg.name
                ),
            });
        }
    }
    Ok(loader.load().await)
}

fn invalid_secret(cfg: &AwsConfig, e: crate::secrets::SecretError) -> ProviderError {
    ProviderError::Unauthenticated { provider: NAME, message: format!("config {}: {e}", cfg.name) }
}
