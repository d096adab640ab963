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
            // The payload is read here rather than by the runtime: one function, three triggers, told
            // apart by shape; a payload it does not take is refused with the field and the cause.
            let event = handler::Event::from_json(ev.payload)?;
            let (ctx, _keys) = wired.current().await?;
            Ok::<handler::Response, Error>(handler::handle(&ctx, event).await)
        }
    }))
    .await
}
