//! Lambda `windows-password-fetcher`: wiring only. Logs as JSON lines, and its provider errors as
//! CloudWatch embedded metric format lines after each invocation; clients are built on the first
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
            // The payload is read here rather than by the runtime: one function, three triggers, told
            // apart by shape; a payload it does not take is refused with the field and the cause.
            let event = handler::read(ev.payload)?;
            let (ctx, _keys) = wired.current().await?;
            // This invocation's counts, written as CloudWatch embedded metrics once it is done.
            let metrics = shared::daemon::Metrics::default();
            let out = handler::handle(&ctx, event, &metrics).await;
            shared::wiring::emf::emit(&ctx, &metrics, shared::wiring::emf::Report::Counts).await;
            Ok::<handler::Response, Error>(out)
        }
    }))
    .await
}
