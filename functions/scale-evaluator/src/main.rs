//! Lambda `scale-evaluator`: wiring only. Logs as JSON lines, and its counts as CloudWatch embedded metric
//! format lines after each invocation; clients are built on the first invocation and rebuilt only
//! when `apply` changed the configs in the store.

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
            // The payload is read here rather than by the runtime, so a payload this function does not take
            // is refused as not retryable, with the field and the cause (and before any work).
            let event = handler::Event::from_json(ev.payload)?;
            let (ctx, keys) =
                wired.current().await.map_err(|e| handler::HandlerError { message: e.to_string(), retryable: true })?;
            // This invocation's counts, written as CloudWatch embedded metrics once it is done.
            let metrics = shared::daemon::Metrics::default();
            let out = handler::handle(&ctx, &keys, event, &metrics).await;
            shared::wiring::emf::emit(&ctx, &metrics, shared::wiring::emf::Report::CountsAndVms).await;
            out
        }
    }))
    .await
}
