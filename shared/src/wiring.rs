//! Builds a [`Ctx`] from configs for the local tools (`plan`, `run`, `status`): the Kasm client from
//! the deployment settings, one provider per VM-provider config (through the registry), secrets from
//! `env:` / `file:` references, and a store from a URL.

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
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
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
    Ctx {
        store,
        kasm,
        secrets,
        clock: Arc::new(SystemClock),
        providers,
        configs: Arc::new(configs),
        holder: format!("local-{}-{}", std::process::id(), ulid::Ulid::new()),
        tuning: Tuning::default(),
    }
}

/// The environment variable naming the store (`dynamodb://TABLE` in Lambda; a state file path locally).
pub const STORE_ENV: &str = "KASM_AUTOSCALE_STORE";

/// Builds the context of a Lambda function (or any process configured by environment): the store
/// from `KASM_AUTOSCALE_STORE`, the configs stored in it (written by `kasm-autoscale apply`), and the
/// Kasm client, providers and webhook keys those configs name. Called once per cold start.
pub async fn from_env() -> Result<(Ctx, crate::webhook::Keys), WireError> {
    let url = std::env::var(STORE_ENV)
        .map_err(|_| WireError::Config(format!("{STORE_ENV} is not set (e.g. dynamodb://kasm-autoscale)")))?;
    let store = open_store_async(&url, false).await?;
    let configs = store.load_configs().await?.ok_or_else(|| {
        WireError::Config(format!("store {url} holds no configs: run `kasm-autoscale apply FILE... --store {url}`"))
    })?;
    // In AWS, `secretsmanager:` references resolve through Secrets Manager (cached per cold start);
    // `env:` and `file:` work everywhere.
    let secrets: Arc<dyn Secrets> = if url.starts_with("dynamodb://") {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        Arc::new(crate::secrets::aws::AwsSecrets::new(
            aws_sdk_secretsmanager::Client::new(&conf),
            crate::secrets::aws::DEFAULT_CACHE_TTL,
        ))
    } else {
        Arc::new(crate::secrets::LocalSecrets)
    };
    let kasm = kasm(&configs, secrets.as_ref()).await?;
    let providers = providers(&configs, secrets.as_ref()).await?;
    let keys = webhook_keys(&configs, secrets.as_ref()).await?;
    Ok((local_ctx(configs, store, kasm, providers, secrets).await, keys))
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
