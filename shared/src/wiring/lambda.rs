//! The context of a Lambda function: from the store named by the environment, built on the first
//! invocation and reloaded when `kasm-autoscale apply` changes the configs.

use std::sync::Arc;

use super::{WireError, kasm, local_ctx, providers, webhook_keys};
use crate::app::Ctx;
use crate::config::ConfigSet;
use crate::ports::{Secrets, Store};
use crate::store::MemoryStore;

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
        #[cfg(feature = "dynamodb")]
        Some(table) if !table.is_empty() && !table.contains('/') => {
            let conf = crate::http::aws::config_loader().load().await;
            let client = aws_sdk_dynamodb::Client::new(&conf);
            (Arc::new(crate::store::DynamoDbStore::new(client, table)), super::store::aws_secrets(&conf))
        }
        #[cfg(not(feature = "dynamodb"))]
        Some(_) => return Err(super::store::without_dynamodb(url)),
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

pub(super) async fn stored_configs(store: &dyn Store, url: &str) -> Result<ConfigSet, WireError> {
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
    let (kasm, keys) = tokio::try_join!(kasm(&configs, secrets.as_ref()), webhook_keys(&configs, secrets.as_ref()))?;
    let providers = providers(&configs, secrets.clone());
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
