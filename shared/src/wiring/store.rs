//! Stores by URL, and the secret resolver that goes with each.

use std::path::PathBuf;
use std::sync::Arc;

use super::WireError;
use crate::ports::{Secrets, Store};
use crate::store::{EmbeddedStore, MemoryStore};

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
    open_dynamodb(url, table, create_missing_table).await
}

#[cfg(not(feature = "dynamodb"))]
async fn open_dynamodb(url: &str, _table: &str, _create: bool) -> Result<Arc<dyn Store>, WireError> {
    Err(without_dynamodb(url))
}

/// The error of a `dynamodb://` URL in a binary built without the `dynamodb` feature.
#[cfg(not(feature = "dynamodb"))]
pub(super) fn without_dynamodb(url: &str) -> WireError {
    WireError::Config(format!(
        "store {url}: this binary was built without the `dynamodb` feature (the AWS deployment); use a state file, or rebuild with `--features dynamodb`"
    ))
}

#[cfg(feature = "dynamodb")]
async fn open_dynamodb(url: &str, table: &str, create_missing_table: bool) -> Result<Arc<dyn Store>, WireError> {
    use crate::store::{DynamoDbStore, dynamodb};
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

/// The secret resolver that goes with a store: with `dynamodb://` (the AWS deployment)
/// `secretsmanager:` references resolve through Secrets Manager (cached, default AWS configuration);
/// `env:` and `file:` work everywhere.
pub async fn secrets_for(store_url: &str) -> Arc<dyn Secrets> {
    #[cfg(feature = "dynamodb")]
    if store_url.starts_with("dynamodb://") {
        return aws_secrets(&crate::http::aws::config_loader().load().await);
    }
    let _ = store_url;
    Arc::new(crate::secrets::LocalSecrets)
}

#[cfg(feature = "dynamodb")]
pub(super) fn aws_secrets(conf: &aws_config::SdkConfig) -> Arc<dyn Secrets> {
    Arc::new(crate::secrets::aws::AwsSecrets::new(
        aws_sdk_secretsmanager::Client::new(conf),
        crate::secrets::aws::DEFAULT_CACHE_TTL,
    ))
}
