//! Lambda `windows-password-fetcher`: wiring only. Logs as JSON lines; clients are built once per cold start.

mod handler;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().flatten_event(true).with_current_span(false).without_time().init();
    let (ctx, _keys) = shared::wiring::from_env().await?;
    lambda_runtime::run(service_fn(|ev: LambdaEvent<Value>| {
        let ctx = &ctx;
        async move { Ok::<Value, Error>(handler::handle(ctx, ev.payload).await) }
    }))
    .await
}
