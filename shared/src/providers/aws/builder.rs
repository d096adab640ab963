//! Building an [`AwsProvider`] from its config, without network I/O: the EC2 client (region,
//! endpoint, our HTTP client, credentials resolved on first use) and the checked `instance_config`
//! override. The key pair's private key for Windows passwords is read when first needed.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Region};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::credential::{DefaultChain, KeyPairCredentials};
use super::{AwsProvider, DEFAULT_PAGE_SIZE, NAME, client};
use crate::config::providers::AwsConfig;
use crate::providers::{BuildEnv, ProviderError};

impl AwsProvider {
    /// The provider for `cfg`, with `env`'s retries (attempts = retries + 1, its backoff) and request
    /// timeout (per attempt) in the SDK's standard retry mode. The endpoint is `endpoint_url`, else `AWS_ENDPOINT_URL_EC2`, else
    /// `AWS_ENDPOINT_URL` (as the SDK reads them), else EC2's regional endpoint. Fails only when the
    /// config cannot be applied: half a key pair, an `instance_config` the request mapper refuses.
    pub fn from_config(cfg: &AwsConfig, env: &BuildEnv) -> Result<AwsProvider, ProviderError> {
        let invalid = |message: String| ProviderError::Invalid { provider: NAME, message };
        let region = Region::new(cfg.aws_region.clone());
        // The build environment's HTTP knobs, as the SDK takes them: attempts, backoff, attempt timeout.
        let retry = RetryConfig::standard()
            .with_max_attempts(env.retry.max_retries.saturating_add(1))
            .with_initial_backoff(env.retry.base)
            .with_max_backoff(env.retry.cap);
        let mut conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone())
            .retry_config(retry)
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(env.request_timeout).build())
            .http_client(
                crate::http::aws::http_client_with(cfg.ca_bundle.as_deref())
                    .map_err(|e| invalid(format!("config {}: ca_bundle: {e}", cfg.name)))?,
            );
        conf = match (&cfg.aws_access_key_id, &cfg.aws_secret_access_key) {
            (Some(id), Some(secret)) => conf.credentials_provider(KeyPairCredentials {
                secrets: env.secrets.clone(),
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                config: cfg.name.clone(),
                cached: Default::default(),
            }),
            (None, None) => conf.credentials_provider(DefaultChain { region, chain: Default::default() }),
            _ => {
                return Err(invalid(format!(
                    "config {}: set both aws_access_key_id and aws_secret_access_key, or neither (default credentials)",
                    cfg.name
                )));
            }
        };
        let endpoint = cfg
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|u| !u.trim().is_empty());
        if let Some(url) = endpoint {
            conf = conf.endpoint_url(url);
        }
        Ok(AwsProvider {
            ec2: Client::from_conf(conf.build()),
            instance_config: instance_config(cfg)?,
            config: cfg.clone(),
            secrets: env.secrets.clone(),
            deployment_id: env.deployment_id.clone(),
            private_key: Arc::new(Default::default()),
            page_size: DEFAULT_PAGE_SIZE,
            root_device: tokio::sync::OnceCell::new(),
        })
    }

    /// Uses this EC2 client instead (tests: interceptors that record or fail requests).
    pub fn with_client(mut self, ec2: Client) -> Self {
        self.ec2 = ec2;
        self
    }

    /// DescribeInstances page size (clamped to the API's 5..=1000; tests use small pages).
    pub fn with_page_size(mut self, n: i32) -> Self {
        self.page_size = n.clamp(5, 1000);
        self
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
