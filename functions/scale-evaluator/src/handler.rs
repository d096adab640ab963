//! The scale-evaluator's handler: a plain function over the ports, tested with the payloads in
//! `events/scale-evaluator/` (the same files `cargo lambda invoke --data-file` uses).
//!
//! One entry point, three triggers, told apart by shape:
//! - an EventBridge scheduled event (`"detail-type": "Scheduled Event"`) → evaluate every config;
//! - a Lambda Function URL request (`requestContext.http`) → a webhook: authenticated before the body
//!   is parsed ([`shared::webhook`]); a session event evaluates the affected configs;
//! - a direct invocation `{"autoscale_config": "name"}` (or `{}` for all) → evaluate.

use base64::Engine;
use serde_json::{Value, json};

use shared::app::{self, Ctx};
use shared::webhook::{self, Keys, Trigger};

/// What went wrong at the boundary. `retryable` says whether Lambda's retry can help.
#[derive(Debug)]
pub struct HandlerError {
    /// The message (no secrets).
    pub message: String,
    /// Whether a retry can help.
    pub retryable: bool,
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (retryable: {})", self.message, self.retryable)
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        // The error type tells the caller (and the on-failure queue) whether a retry can help.
        let kind = if e.retryable { "Retryable" } else { "NotRetryable" };
        lambda_runtime::Diagnostic { error_type: kind.into(), error_message: e.message }
    }
}

/// Which trigger an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// EventBridge schedule.
    Schedule,
    /// Function URL (webhook).
    Webhook,
    /// Direct invocation naming one config, or all.
    Direct(Option<String>),
}

/// Tells the trigger from the payload's shape.
pub fn classify(event: &Value) -> Result<Kind, HandlerError> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Kind::Schedule);
    }
    if event.pointer("/requestContext/http").is_some() {
        return Ok(Kind::Webhook);
    }
    match event {
        Value::Object(o) if o.is_empty() => Ok(Kind::Direct(None)),
        Value::Object(o) if o.len() == 1 && o.contains_key("autoscale_config") => {
            match o.get("autoscale_config").and_then(Value::as_str) {
                Some(n) => Ok(Kind::Direct(Some(n.to_string()))),
                None => Err(HandlerError { message: "field autoscale_config: must be a string".into(), retryable: false }),
            }
        }
        _ => Err(HandlerError {
            message: "unrecognised event: expected an EventBridge scheduled event, a Function URL request, or {\"autoscale_config\": \"name\"}".into(),
            retryable: false,
        }),
    }
}

/// Handles one invocation.
pub async fn handle(ctx: &Ctx, keys: &Keys, event: Value) -> Result<Value, HandlerError> {
    match classify(&event)? {
        Kind::Schedule => Ok(summary(evaluate(ctx, Trigger::All, "schedule").await)),
        Kind::Direct(only) => {
            if let Some(n) = &only
                && ctx.configs.autoscale(n).is_none()
            {
                return Err(HandlerError { message: format!("no autoscale config named {n}"), retryable: false });
            }
            let t = only.map(|n| Trigger::Configs([n].into())).unwrap_or(Trigger::All);
            Ok(summary(evaluate(ctx, t, "manual").await))
        }
        Kind::Webhook => Ok(webhook_response(ctx, keys, &event).await),
    }
}

async fn webhook_response(ctx: &Ctx, keys: &Keys, event: &Value) -> Value {
    let s = |p: &str| event.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let method = s("/requestContext/http/method");
    let path = match s("/rawPath") {
        "" => s("/requestContext/http/path"),
        p => p,
    };
    let raw = s("/body");
    let body: Vec<u8> = if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(raw) {
            Ok(b) => b,
            Err(_) => return url_response(400, r#"{"text":"Body is not valid base64","code":400}"#),
        }
    } else {
        raw.as_bytes().to_vec()
    };
    let headers: Vec<(String, String)> = event
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| h.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    let req = webhook::Request { method, path, headers, body: &body };
    let resp = webhook::handle(&req, keys, &ctx.configs, ctx.clock.now());
    if resp.trigger != Trigger::None {
        // The trigger runs before we answer: Lambda may freeze the sandbox right after the response.
        let outcomes = evaluate(ctx, resp.trigger.clone(), "webhook").await;
        tracing::info!(evaluated = outcomes.len(), "webhook evaluation done");
    }
    url_response(resp.status, &resp.body)
}

fn url_response(status: u16, body: &str) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"}, "body": body, "isBase64Encoded": false})
}

async fn evaluate(ctx: &Ctx, t: Trigger, why: &str) -> Vec<app::EvalOutcome> {
    app::evaluate_triggered(ctx, &t, why).await
}

fn summary(outcomes: Vec<app::EvalOutcome>) -> Value {
    let items: Vec<Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(p) => json!({"autoscale_config": o.autoscale_config, "claimed": o.claimed.len(), "actions": p.actions.len(), "reasons": p.reasons}),
            Err(e) => json!({"autoscale_config": o.autoscale_config, "error": e.to_string(), "skipped_lease": o.skipped_lease}),
        })
        .collect();
    json!({ "evaluations": items })
}

#[cfg(test)]
mod tests;
