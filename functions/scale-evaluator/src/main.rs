//! Lambda `scale-evaluator`: wiring only. Logs as JSON lines; clients are built once per cold start.

mod handler;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().flatten_event(true).with_current_span(false).without_time().init();
    let (ctx, keys) = shared::wiring::from_env().await?;
    lambda_runtime::run(service_fn(|ev: LambdaEvent<Value>| {
        let (ctx, keys) = (&ctx, &keys);
        async move { handler::handle(ctx, keys, ev.payload).await }
    }))
    .await
}
