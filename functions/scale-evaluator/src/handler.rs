//! The scale-evaluator's handler: a plain function over the ports, tested with the payloads in
//! `events/scale-evaluator/` (the same files `cargo lambda invoke --data-file` uses).
//!
//! One entry point, three triggers, read into `aws_lambda_events`' types by their shape
//! ([`shared::wiring::event::Invocation`]):
//! - an EventBridge scheduled event → evaluate every config;
//! - a Lambda Function URL request → a webhook: authenticated before the body is parsed
//!   ([`shared::webhook`]); a session event evaluates the affected configs; the answer is a Function URL
//!   response;
//! - a direct invocation `{"autoscale_config": "name"}` (or `{}` for all) → evaluate.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use aws_lambda_events::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use shared::app::{self, Ctx};
use shared::daemon::Metrics;
use shared::webhook::{self, Keys, Trigger};
use shared::wiring::event::Invocation;

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

/// A direct invocation: `{"autoscale_config": "name"}` evaluates that config, `{}` every config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    /// The one config to evaluate (all when absent).
    pub autoscale_config: Option<String>,
}

/// An invocation of the scale-evaluator.
#[derive(Debug)]
pub enum Event {
    /// EventBridge schedule.
    Schedule(Box<EventBridgeEvent>),
    /// Function URL request (webhook).
    Webhook(Box<LambdaFunctionUrlRequest>),
    /// Direct invocation naming one config, or all.
    Direct(Direct),
}

impl Event {
    /// Reads a payload as the trigger its shape names; anything else is refused (not retryable) with the
    /// field and the cause.
    pub fn from_json(event: Value) -> Result<Self, HandlerError> {
        const TAKES: &str = "the scale-evaluator takes an EventBridge scheduled event, a Function URL request, \
                             or {\"autoscale_config\": \"name\"}";
        let refused = |message: String| HandlerError { message, retryable: false };
        match Invocation::<Direct>::from_json(event).map_err(|e| refused(format!("{e}; {TAKES}")))? {
            Invocation::Schedule(e) => Ok(Event::Schedule(e)),
            Invocation::Url(r) => Ok(Event::Webhook(r)),
            Invocation::Direct(d) => Ok(Event::Direct(d)),
            Invocation::Stream(_) => Err(refused(format!("unrecognised event: a DynamoDB stream batch; {TAKES}"))),
        }
    }
}

/// What an invocation answers: the evaluations' summary, or (to a webhook) a Function URL response.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// `{"evaluations": [...]}`: per config what was claimed and why, or the error.
    Evaluations(Value),
    /// The webhook's answer.
    Url(LambdaFunctionUrlResponse),
}

/// Handles one invocation; every evaluation is counted in `metrics` (as the daemon counts its own).
pub async fn handle(ctx: &Ctx, keys: &Keys, event: Event, metrics: &Metrics) -> Result<Response, HandlerError> {
    match event {
        Event::Schedule(e) => {
            let rule = e.resources.as_ref().and_then(|r| r.first()).map(String::as_str).unwrap_or_default();
            tracing::debug!(rule, time = ?e.time, "scheduled evaluation");
            Ok(summary(evaluate(ctx, Trigger::All, "schedule", metrics).await))
        }
        Event::Direct(Direct { autoscale_config: only }) => {
            if let Some(n) = &only
                && ctx.configs.autoscale(n).is_none()
            {
                return Err(HandlerError { message: format!("no autoscale config named {n}"), retryable: false });
            }
            let t = only.map(|n| Trigger::Configs([n].into())).unwrap_or(Trigger::All);
            Ok(summary(evaluate(ctx, t, "manual", metrics).await))
        }
        Event::Webhook(req) => Ok(Response::Url(webhook_response(ctx, keys, &req, metrics).await)),
    }
}

async fn webhook_response(
    ctx: &Ctx,
    keys: &Keys,
    req: &LambdaFunctionUrlRequest,
    metrics: &Metrics,
) -> LambdaFunctionUrlResponse {
    let http = &req.request_context.http;
    let method = http.method.as_deref().unwrap_or_default();
    let path = match req.raw_path.as_deref() {
        None | Some("") => http.path.as_deref().unwrap_or_default(),
        Some(p) => p,
    };
    let raw = req.body.as_deref().unwrap_or_default();
    let body: Vec<u8> = if req.is_base64_encoded {
        match base64::engine::general_purpose::STANDARD.decode(raw) {
            Ok(b) => b,
            Err(_) => return url_response(400, r#"{"text":"Body is not valid base64","code":400}"#),
        }
    } else {
        raw.as_bytes().to_vec()
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let wreq = webhook::Request { method, path, headers, body: &body };
    let resp = webhook::handle(&wreq, keys, &ctx.configs, ctx.clock.now());
    if resp.trigger != Trigger::None {
        // The trigger runs before we answer: Lambda may freeze the sandbox right after the response.
        let outcomes = evaluate(ctx, resp.trigger.clone(), "webhook", metrics).await;
        tracing::info!(evaluated = outcomes.len(), "webhook evaluation done");
    }
    url_response(resp.status, &resp.body)
}

fn url_response(status: u16, body: &str) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = i64::from(status);
    r.headers = headers;
    r.body = Some(body.to_string());
    r.is_base64_encoded = false;
    r
}

async fn evaluate(ctx: &Ctx, t: Trigger, why: &str, metrics: &Metrics) -> Vec<app::EvalOutcome> {
    let outcomes = app::evaluate_triggered(ctx, &t, why).await;
    for o in &outcomes {
        metrics.record_evaluation(o);
    }
    outcomes
}

fn summary(outcomes: Vec<app::EvalOutcome>) -> Response {
    let items: Vec<Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(p) => json!({"autoscale_config": o.autoscale_config, "claimed": o.claimed.len(), "actions": p.actions.len(), "reasons": p.reasons}),
            Err(e) => json!({"autoscale_config": o.autoscale_config, "error": e.to_string(), "skipped_lease": o.skipped_lease}),
        })
        .collect();
    Response::Evaluations(json!({ "evaluations": items }))
}

#[cfg(test)]
mod tests;
