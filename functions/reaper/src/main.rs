//! Lambda `reaper`: wiring only. Logs as JSON lines; clients are built on the first
//! invocation and rebuilt only when `apply` changed the configs in the store.

mod handler;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::wiring::init_function_logging();
    let wired = shared::wiring::LambdaContext::from_env()?;
    lambda_runtime::run(service_fn(|ev: LambdaEvent<Value>| {
        let wired = &wired;
        async move {
            let (ctx, _keys) = wired.current().await?;
            Ok::<Value, Error>(handler::handle(&ctx, ev.payload).await)
        }
    }))
    .await
}
