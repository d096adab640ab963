//! Builds a [`Ctx`] from configs for the local tools (`plan`, `run`, `status`): the Kasm client from
//! the deployment settings, one provider per VM-provider config (through the registry), one DNS backend
//! per DNS-provider config, secrets from `env:` / `file:` references, and a store from a URL.

mod logging;

pub use logging::{LAMBDA_LOG_LEVEL_ENV, init_function_logging, log_filter};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::app::{Ctx, Tuning};
use crate::clock::SystemClock;
use crate::config::ConfigSet;
use crate::kasm::KasmApi;
use crate::kasm::client::KasmClient;
use crate::ports::{Secrets, Store, VmProvider};
use crate::providers::registry;
use crate::store::{DynamoDbStore, EmbeddedStore, MemoryStore, dynamodb};

/// Why the local tools could not be wired up. Names the setting; never a secret.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A setting is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A secret could not be resolved.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The Kasm client could not be built.
    #[error(transparent)]
    Kasm(#[from] crate::kasm::KasmError),
    /// A provider could not be built.
    #[error("VM-provider config {config}: {source}")]
    Provider {
        /// The provider config.
        config: String,
        /// Why.
        #[source]
        source: crate::providers::ProviderError,
    },
}

/// Where claims live: `embedded:PATH` (or a plain path: the redb state file), `memory:` (nothing
/// kept); `dynamodb://TABLE` (the Lambda deployment) needs [`open_store_async`].
pub fn open_store(url: &str) -> Result<Arc<dyn Store>, WireError> {
    if url == "memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if url.starts_with("dynamodb://") {
        return Err(WireError::Config(format!(
            "store {url}: the DynamoDB store is opened by `open_store_async` (this command does not support it yet)"
        )));
    }
    let path = PathBuf::from(url.strip_prefix("embedded:").unwrap_or(url));
    Ok(Arc::new(EmbeddedStore::open(&path)?))
}

/// Like [`open_store`], and also `dynamodb://TABLE` with the default AWS configuration (environment,
/// profile or role; `AWS_ENDPOINT_URL` is honoured). A missing table is an error unless
/// `create_missing_table`, so a mistyped name never quietly starts an empty deployment.
pub async fn open_store_async(url: &str, create_missing_table: bool) -> Result<Arc<dyn Store>, WireError> {
    let Some(table) = url.strip_prefix("dynamodb://") else {
        return open_store(url);
    };
    if table.is_empty() || table.contains('/') {
        return Err(WireError::Config(format!("store {url}: expected dynamodb://TABLE (a table name)")));
    }
    let conf = crate::http::aws::config_loader().load().await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    if create_missing_table {
        dynamodb::create_table(&client, table).await?;
    } else if !dynamodb::table_exists(&client, table).await? {
        let region = conf.region().map(|r| r.to_string()).unwrap_or_else(|| "(no region set)".into());
        return Err(WireError::Config(format!(
            "store {url}: no DynamoDB table {table} in region {region}; deploy the stack first (or let the command create the table)"
        )));
    }
    Ok(Arc::new(DynamoDbStore::new(client, table)))
}

/// The Kasm client for the deployment's `settings.kasm`.
pub async fn kasm(configs: &ConfigSet, secrets: &dyn Secrets) -> Result<Arc<dyn KasmApi>, WireError> {
    let k = configs.settings.kasm.as_ref().ok_or_else(|| {
        WireError::Config(
            "settings.kasm: missing: the Kasm manager's url, api_key and api_key_secret are needed".into(),
        )
    })?;
    let secret = secrets.resolve(&k.api_key_secret).await?;
    Ok(Arc::new(KasmClient::new(k, secret)?))
}

/// One provider per VM-provider config.
pub async fn providers(
    configs: &ConfigSet,
    secrets: &dyn Secrets,
) -> Result<HashMap<String, Arc<dyn VmProvider>>, WireError> {
    let mut out = HashMap::new();
    for p in &configs.vm_provider_configs {
        let built = registry::build(p, secrets, &configs.settings)
            .await
            .map_err(|source| WireError::Provider { config: p.name().to_string(), source })?;
        out.insert(p.name().to_string(), built);
    }
    Ok(out)
}

/// A full context for the local tools.
pub async fn local_ctx(
    configs: ConfigSet,
    store: Arc<dyn Store>,
    kasm: Arc<dyn KasmApi>,
    providers: HashMap<String, Arc<dyn VmProvider>>,
    secrets: Arc<dyn Secrets>,
) -> Ctx {
    // One DNS backend per DNS-provider config; one that cannot be built fails alone (logged).
    let dns = crate::dns::registry::build_all(&configs, secrets.as_ref()).await;
    Ctx {
        store,
        kasm,
        secrets,
        clock: Arc::new(SystemClock),
        providers,
        dns,
        configs: Arc::new(configs),
        holder: format!("local-{}-{}", std::process::id(), ulid::Ulid::new()),
        tuning: Tuning::default(),
    }
}

/// The environment variable naming the store (`dynamodb://TABLE` in Lambda; a state file path locally).
pub const STORE_ENV: &str = "KASM_AUTOSCALE_STORE";

/// Builds the context of a Lambda function: the store from `KASM_AUTOSCALE_STORE` (`dynamodb://TABLE`,
/// or `memory:` in tests), the configs stored in it (written by `kasm-autoscale apply`), and the
/// Kasm client, providers and webhook keys those configs name.
pub async fn from_env() -> Result<(Ctx, crate::webhook::Keys), WireError> {
    let url = store_url_from_env()?;
    build_for_store(&url).await
}

fn store_url_from_env() -> Result<String, WireError> {
    std::env::var(STORE_ENV)
        .map_err(|_| WireError::Config(format!("{STORE_ENV} is not set (e.g. dynamodb://kasm-autoscale)")))
}

/// The context for the store at `url`. For `dynamodb://TABLE` one AWS configuration serves the store
/// and Secrets Manager, and the table is not described first: the configs' read names the table if it
/// is missing (one round trip less on every cold start).
async fn build_for_store(url: &str) -> Result<(Ctx, crate::webhook::Keys), WireError> {
    let (store, secrets): (Arc<dyn Store>, Arc<dyn Secrets>) = match url.strip_prefix("dynamodb://") {
        Some(table) if !table.is_empty() && !table.contains('/') => {
            let conf = crate::http::aws::config_loader().load().await;
            (Arc::new(DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&conf), table)), aws_secrets(&conf))
        }
        // Functions run on DynamoDB; `memory:` is for tests. The embedded (redb) store is the local
        // tools' and is kept out of the function binaries (it is ~0.4 MiB of code).
        _ if url == "memory:" => (Arc::new(MemoryStore::new()), Arc::new(crate::secrets::LocalSecrets)),
        _ => {
            return Err(WireError::Config(format!(
                "{STORE_ENV}={url}: a function needs dynamodb://TABLE (the local daemon, `kasm-autoscale run`, uses a state file)"
            )));
        }
    };
    let configs = stored_configs(store.as_ref(), url).await?;
    ctx_for(configs, store, secrets).await
}

/// The secret resolver that goes with a store: with `dynamodb://` (the AWS deployment)
/// `secretsmanager:` references resolve through Secrets Manager (cached, default AWS configuration);
/// `env:` and `file:` work everywhere.
pub async fn secrets_for(store_url: &str) -> Arc<dyn Secrets> {
    if store_url.starts_with("dynamodb://") {
        aws_secrets(&crate::http::aws::config_loader().load().await)
    } else {
        Arc::new(crate::secrets::LocalSecrets)
    }
}

fn aws_secrets(conf: &aws_config::SdkConfig) -> Arc<dyn Secrets> {
    Arc::new(crate::secrets::aws::AwsSecrets::new(
        aws_sdk_secretsmanager::Client::new(conf),
        crate::secrets::aws::DEFAULT_CACHE_TTL,
    ))
}

async fn stored_configs(store: &dyn Store, url: &str) -> Result<ConfigSet, WireError> {
    store.load_configs().await?.ok_or_else(|| {
        WireError::Config(format!("store {url} holds no configs: run `kasm-autoscale apply FILE... --store {url}`"))
    })
}

/// The environment variable the deployed stack sets to its `DeploymentId`.
pub const DEPLOYMENT_ENV: &str = "KASM_AUTOSCALE_DEPLOYMENT";

/// The stack's IAM policies only allow acting on instances and secrets of its own deployment id, so
/// configs for another id would fail on every VM with "access denied": refuse them up front instead.
fn check_deployment(configs: &ConfigSet, stack: Option<&str>) -> Result<(), WireError> {
    match stack {
        Some(id) if !id.is_empty() && id != configs.settings.deployment_id => Err(WireError::Config(format!(
            "settings.deployment_id: the stored configs say {:?} but this stack was deployed with DeploymentId {id:?} \
             ({DEPLOYMENT_ENV}); its permissions cover only that id: set deployment_id to {id:?} and apply again",
            configs.settings.deployment_id
        ))),
        _ => Ok(()),
    }
}

async fn ctx_for(
    configs: ConfigSet,
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
) -> Result<(Ctx, crate::webhook::Keys), WireError> {
    check_deployment(&configs, std::env::var(DEPLOYMENT_ENV).ok().as_deref())?;
    // Independent reads (secrets, provider set-up): at once, so a cold start waits for the slowest only.
    let (kasm, providers, keys) = tokio::try_join!(
        kasm(&configs, secrets.as_ref()),
        providers(&configs, secrets.as_ref()),
        webhook_keys(&configs, secrets.as_ref()),
    )?;
    Ok((local_ctx(configs, store, kasm, providers, secrets).await, keys))
}

/// The environment variable setting how often (seconds) a warm function checks the store for new
/// configs (default [`DEFAULT_CONFIG_RECHECK`]; 0 = before every invocation).
pub const CONFIG_RECHECK_ENV: &str = "KASM_AUTOSCALE_CONFIG_RECHECK_SECONDS";
/// How often a warm function checks the store for configs changed by `apply`, by default.
pub const DEFAULT_CONFIG_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The context of a long-lived function process. Built on the first invocation rather than during
/// the process's init: the Runtime API is polled at once, and a deployment without configs (or with a
/// secret that does not resolve) answers each invocation with that error instead of failing init.
/// Rebuilt when `kasm-autoscale apply` has changed the configs in the store, so a warm Lambda never
/// keeps evaluating with configs the operator replaced; the store is read at most once per recheck
/// interval, and a reload that fails keeps the configs in force (logged).
pub struct LambdaContext {
    url: String,
    recheck: std::time::Duration,
    current: tokio::sync::Mutex<Option<Current>>,
}

struct Current {
    ctx: Arc<Ctx>,
    keys: Arc<crate::webhook::Keys>,
    checked: std::time::Instant,
}

impl std::fmt::Debug for LambdaContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaContext").field("store", &self.url).field("recheck", &self.recheck).finish()
    }
}

impl LambdaContext {
    /// Reads the settings from the environment (no I/O): the store from [`STORE_ENV`], the recheck
    /// interval from [`CONFIG_RECHECK_ENV`].
    pub fn from_env() -> Result<Self, WireError> {
        let url = store_url_from_env()?;
        let recheck =
            match std::env::var(CONFIG_RECHECK_ENV) {
                Err(_) => DEFAULT_CONFIG_RECHECK,
                Ok(v) => std::time::Duration::from_secs(v.trim().parse().map_err(|_| {
                    WireError::Config(format!("{CONFIG_RECHECK_ENV}: expected whole seconds, got {v:?}"))
                })?),
            };
        Ok(Self { url, recheck, current: tokio::sync::Mutex::new(None) })
    }

    /// Wraps a built context.
    pub fn new(url: String, ctx: Ctx, keys: crate::webhook::Keys, recheck: std::time::Duration) -> Self {
        let current = Current { ctx: Arc::new(ctx), keys: Arc::new(keys), checked: std::time::Instant::now() };
        Self { url, recheck, current: tokio::sync::Mutex::new(Some(current)) }
    }

    /// The context for the next invocation: built on first use; then the one in force, or — when the
    /// recheck interval has passed and the stored configs differ — one rebuilt from the new configs.
    pub async fn current(&self) -> Result<(Arc<Ctx>, Arc<crate::webhook::Keys>), WireError> {
        let mut slot = self.current.lock().await;
        let Some(cur) = slot.as_mut() else {
            let (ctx, keys) = build_for_store(&self.url).await?;
            let cur = Current { ctx: Arc::new(ctx), keys: Arc::new(keys), checked: std::time::Instant::now() };
            let out = (cur.ctx.clone(), cur.keys.clone());
            *slot = Some(cur);
            return Ok(out);
        };
        if cur.checked.elapsed() >= self.recheck {
            cur.checked = std::time::Instant::now();
            match self.reload(&cur.ctx).await {
                Ok(None) => {}
                Ok(Some((ctx, keys))) => {
                    tracing::info!(store = %self.url, "configs changed in the store: reloaded");
                    cur.ctx = Arc::new(ctx);
                    cur.keys = Arc::new(keys);
                }
                Err(e) => {
                    tracing::error!(store = %self.url, error = %e, "configs not reloaded; the ones in force stay")
                }
            }
        }
        Ok((cur.ctx.clone(), cur.keys.clone()))
    }

    async fn reload(&self, old: &Ctx) -> Result<Option<(Ctx, crate::webhook::Keys)>, WireError> {
        let configs = stored_configs(old.store.as_ref(), &self.url).await?;
        if configs == *old.configs {
            return Ok(None);
        }
        ctx_for(configs, old.store.clone(), old.secrets.clone()).await.map(Some)
    }
}

/// The webhook secrets the configs name (absent = that way in is closed).
pub async fn webhook_keys(configs: &ConfigSet, secrets: &dyn Secrets) -> Result<crate::webhook::Keys, WireError> {
    let mut keys = crate::webhook::Keys::default();
    if let Some(w) = &configs.settings.webhook {
        if let Some(r) = &w.hmac_secret {
            keys.hmac_secret = Some(secrets.resolve(r).await?);
        }
        if let Some(r) = &w.splunk_hec_token {
            keys.hec_token = Some(secrets.resolve(r).await?);
        }
        keys.max_body_bytes = w.max_body_bytes;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    fn configs(secret_file: &std::path::Path, standby: u32) -> ConfigSet {
        let doc = format!(
            r#"
settings:
  deployment_id: reload-test
  kasm:
    url: https://kasm.example.com
    api_key: key
    api_key_secret: file:{}
autoscale_configs:
  - autoscale_config_name: agents
    server_pool_id: 8b2d1f0e3c4a5b6c7d8e9f0a1b2c3d4e
    zone_id: 5a1c0e7f2b3d4c5e8f9a0b1c2d3e4f50
    vm_provider_config: none-yet
    standby_cores: {standby}
"#,
            secret_file.display()
        );
        let f: ConfigFile = serde_yaml_ng::from_str(&doc).unwrap();
        let mut s = ConfigSet::default();
        s.merge(f);
        s
    }

    async fn wired(store: Arc<dyn Store>, set: ConfigSet, recheck: u64) -> LambdaContext {
        store.save_configs(&set).await.unwrap();
        let (ctx, keys) = ctx_for(set, store, Arc::new(crate::secrets::LocalSecrets)).await.unwrap();
        LambdaContext::new("memory:".into(), ctx, keys, std::time::Duration::from_secs(recheck))
    }

    #[tokio::test]
    async fn a_warm_function_picks_up_applied_configs_and_keeps_its_own_when_they_do_not_build() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("kasm-secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let w = wired(store.clone(), configs(&secret, 8), 0).await;
        let (a, _) = w.current().await.unwrap();
        let (b, _) = w.current().await.unwrap();
        assert!(Arc::ptr_eq(&a, &b), "rebuilt although nothing changed");

        // `apply` changed the standby: the next invocation runs with it.
        store.save_configs(&configs(&secret, 16)).await.unwrap();
        let (c, _) = w.current().await.unwrap();
        assert_eq!(c.configs.autoscale("agents").unwrap().standby_cores, 16.0);

        // New configs whose secret cannot be read: the ones in force stay.
        store.save_configs(&configs(&dir.path().join("missing"), 4)).await.unwrap();
        let (d, _) = w.current().await.unwrap();
        assert!(Arc::ptr_eq(&c, &d));
    }

    #[tokio::test]
    async fn nothing_is_read_before_the_first_invocation_and_a_missing_config_is_its_error() {
        let w = LambdaContext {
            url: "memory:".into(),
            recheck: DEFAULT_CONFIG_RECHECK,
            current: tokio::sync::Mutex::new(None),
        };
        let e = w.current().await.unwrap_err().to_string();
        assert!(e.contains("holds no configs") && e.contains("kasm-autoscale apply"), "{e}");
    }

    #[tokio::test]
    async fn a_function_refuses_a_state_file_store() {
        let e = build_for_store("/var/lib/kasm-autoscale/state.redb").await.unwrap_err().to_string();
        assert!(e.contains("needs dynamodb://TABLE"), "{e}");
    }

    #[test]
    fn configs_of_another_deployment_than_the_stacks_are_refused() {
        let set = configs(std::path::Path::new("/dev/null"), 8);
        assert!(check_deployment(&set, None).is_ok());
        assert!(check_deployment(&set, Some("reload-test")).is_ok());
        let e = check_deployment(&set, Some("prod")).unwrap_err().to_string();
        assert!(e.starts_with("settings.deployment_id:") && e.contains("\"prod\""), "{e}");
    }

    #[tokio::test]
    async fn the_store_is_not_read_again_before_the_recheck_interval() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("kasm-secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let w = wired(store.clone(), configs(&secret, 8), 3600).await;
        store.save_configs(&configs(&secret, 16)).await.unwrap();
        let (c, _) = w.current().await.unwrap();
        assert_eq!(c.configs.autoscale("agents").unwrap().standby_cores, 8.0);
    }
}
