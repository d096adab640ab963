//! The Windows password fetcher's handler: every trigger (schedule, a stream batch of Windows claims
//! booting, a direct invocation `{}`) runs one pass of [`shared::app::fetch_password`], which is
//! idempotent: a claim whose password was handed over is marked, one whose password is not ready is
//! tried on the next pass (for at least 15 minutes). Passwords are never logged, returned or stored.
//!
//! Triggers are read into `aws_lambda_events`' types; any other payload is refused with the field and
//! the cause, and no pass runs.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use serde::Serialize;
use serde_json::{Value, json};

use shared::app::{self, Ctx};
use shared::daemon::Metrics;
use shared::wiring::event::{InvalidEvent, Invocation, NoArguments};

/// An invocation of the Windows password fetcher.
#[derive(Debug)]
pub enum Event {
    /// EventBridge schedule.
    Schedule(Box<EventBridgeEvent>),
    /// A DynamoDB stream batch (Windows claims booting).
    Stream(DynamoDbEvent),
    /// Direct invocation (`{}`).
    Direct,
}

impl Event {
    /// Reads a payload as the trigger its shape names; anything else is refused with the field and the
    /// cause.
    pub fn from_json(event: Value) -> Result<Self, InvalidEvent> {
        const TAKES: &str =
            "the windows-password-fetcher takes an EventBridge scheduled event, a DynamoDB stream batch, or {}";
        match Invocation::<NoArguments>::from_json(event).map_err(|e| InvalidEvent(format!("{e}; {TAKES}")))? {
            Invocation::Schedule(e) => Ok(Event::Schedule(e)),
            Invocation::Stream(b) => Ok(Event::Stream(b)),
            Invocation::Direct(NoArguments {}) => Ok(Event::Direct),
            other => Err(InvalidEvent(format!("unrecognised event: a {} trigger; {TAKES}", other.trigger()))),
        }
    }
}

/// What a pass did (`set`, `not_yet`, `gave_up` as claim ids, `errors`); to a stream batch also the
/// partial batch response, always empty (one pass covers every claim).
#[derive(Debug, Serialize)]
pub struct Response {
    /// The pass's report.
    #[serde(flatten)]
    pub report: Value,
    /// To a stream batch: no record to retry.
    #[serde(flatten)]
    pub batch: Option<DynamoDbEventResponse>,
}

/// Handles one invocation.
pub async fn handle(ctx: &Ctx, event: Event, metrics: &Metrics) -> Response {
    let rep = app::fetch_password(ctx).await;
    metrics.record_provider_errors(&rep.provider_errors);
    tracing::info!(
        trigger = %origin(&event),
        set = rep.set.len(),
        not_yet = rep.not_yet.len(),
        gave_up = rep.gave_up.len(),
        errors = ?rep.errors,
        "windows password pass"
    );
    let report = json!({ "set": rep.set, "not_yet": rep.not_yet, "gave_up": rep.gave_up, "errors": rep.errors });
    // One pass covers every claim; no record needs a retry of its own.
    let batch = matches!(event, Event::Stream(_)).then(DynamoDbEventResponse::default);
    Response { report, batch }
}

/// The trigger, for the pass's log line: the schedule rule and time, or the batch's size.
fn origin(event: &Event) -> String {
    match event {
        Event::Schedule(e) => {
            let rule = e.resources.as_ref().and_then(|r| r.first()).map(String::as_str).unwrap_or("a schedule");
            match e.time {
                Some(t) => format!("schedule ({rule} at {})", t.to_rfc3339()),
                None => format!("schedule ({rule})"),
            }
        }
        Event::Stream(b) => format!("stream ({} records)", b.records.len()),
        Event::Direct => "direct".to_string(),
    }
}

#[cfg(test)]
mod tests;
