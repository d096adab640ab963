//! The payloads the Lambda functions are invoked with, read into [`aws_lambda_events`]' types.
//!
//! One function takes several triggers, so the payload's shape says which type to read it as (the
//! runtime cannot: it knows one payload type per function); each function then keeps the triggers it
//! takes ([`Invocation`]) and refuses the others. A payload that does not read as the type its shape
//! names is refused with the field and the cause, before anything runs.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::streams::DynamoDbEventResponse;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The `detail-type` EventBridge gives the events of a schedule rule.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// What invoked a function, told apart by the payload's shape:
/// - `"detail-type"` → an EventBridge event, which must be a [`SCHEDULED_EVENT`];
/// - `requestContext` → a Lambda Function URL request;
/// - `Records` → a DynamoDB stream batch (as the event source mapping delivers it);
/// - any other object → a direct invocation in the function's own shape `D`.
#[derive(Debug)]
pub enum Invocation<D> {
    /// An EventBridge scheduled event.
    Schedule(Box<EventBridgeEvent>),
    /// A Lambda Function URL request (a webhook).
    Url(Box<LambdaFunctionUrlRequest>),
    /// A DynamoDB stream batch.
    Stream(DynamoDbEvent),
    /// A direct invocation (`aws lambda invoke`, the console, `cargo lambda invoke`).
    Direct(D),
}

/// An invocation payload that is not one a function takes. The message names the trigger the payload
/// looked like, the field (as a path) and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEvent(pub String);

/// The direct invocation of a function that takes no arguments: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}

impl<D: DeserializeOwned> Invocation<D> {
    /// Reads `event` as the trigger its shape names (see [`Invocation`]).
    pub fn from_json(event: Value) -> Result<Self, InvalidEvent> {
        let Value::Object(fields) = &event else {
            return Err(InvalidEvent(format!("unrecognised event: expected a JSON object, got {}", kind_of(&event))));
        };
        if fields.contains_key("detail-type") {
            let e: EventBridgeEvent = read(event, "EventBridge event")?;
            if e.detail_type != SCHEDULED_EVENT {
                return Err(InvalidEvent(format!(
                    "unrecognised event: EventBridge event: detail-type: expected {SCHEDULED_EVENT:?}, got another"
                )));
            }
            Ok(Invocation::Schedule(Box::new(e)))
        } else if fields.contains_key("requestContext") {
            Ok(Invocation::Url(Box::new(read(event, "Function URL request")?)))
        } else if fields.contains_key("Records") {
            Ok(Invocation::Stream(read(event, "DynamoDB stream event")?))
        } else {
            Ok(Invocation::Direct(read(event, "direct invocation")?))
        }
    }

    /// The trigger's name, for logs: `schedule`, `webhook`, `stream` or `direct`.
    pub fn trigger(&self) -> &'static str {
        match self {
            Invocation::Schedule(_) => "schedule",
            Invocation::Url(_) => "webhook",
            Invocation::Stream(_) => "stream",
            Invocation::Direct(_) => "direct",
        }
    }
}

/// What invokes a function that runs one pass over every claim (the reaper, the Windows-password
/// fetcher): a schedule, a DynamoDB stream batch or a direct invocation `{}`. The pass is idempotent
/// and covers every claim, so a batch needs no per-record work.
#[derive(Debug)]
pub enum Pass {
    /// EventBridge schedule.
    Schedule(Box<EventBridgeEvent>),
    /// A DynamoDB stream batch.
    Stream(DynamoDbEvent),
    /// Direct invocation (`{}`).
    Direct,
}

impl Pass {
    /// Reads a payload as the trigger its shape names; anything else is refused with the field and the
    /// cause, naming `function` and what it takes.
    pub fn from_json(event: Value, function: &str) -> Result<Self, InvalidEvent> {
        let takes = format!("the {function} takes an EventBridge scheduled event, a DynamoDB stream batch, or {{}}");
        match Invocation::<NoArguments>::from_json(event).map_err(|e| InvalidEvent(format!("{e}; {takes}")))? {
            Invocation::Schedule(e) => Ok(Pass::Schedule(e)),
            Invocation::Stream(b) => Ok(Pass::Stream(b)),
            Invocation::Direct(NoArguments {}) => Ok(Pass::Direct),
            other => Err(InvalidEvent(format!("unrecognised event: a {} trigger; {takes}", other.trigger()))),
        }
    }

    /// The trigger, for the pass's log line: the schedule rule and time, or the batch's size.
    pub fn origin(&self) -> String {
        match self {
            Pass::Schedule(e) => {
                let rule = e.resources.as_ref().and_then(|r| r.first()).map(String::as_str).unwrap_or("a schedule");
                match e.time {
                    Some(t) => format!("schedule ({rule} at {})", t.to_rfc3339()),
                    None => format!("schedule ({rule})"),
                }
            }
            Pass::Stream(b) => format!("stream ({} records)", b.records.len()),
            Pass::Direct => "direct".to_string(),
        }
    }

    /// To a stream batch, the partial batch response: always empty (a record whose work failed is
    /// picked up by the next pass); `None` to the other triggers.
    pub fn batch_response(&self) -> Option<DynamoDbEventResponse> {
        matches!(self, Pass::Stream(_)).then(DynamoDbEventResponse::default)
    }
}

/// `event` as a `T`, or which field did not read and why.
fn read<T: DeserializeOwned>(event: Value, what: &str) -> Result<T, InvalidEvent> {
    serde_path_to_error::deserialize(event).map_err(|e| {
        let mut path = e.path().to_string();
        let last = e.path().iter().next_back().map(|s| s.to_string());
        let cause = e.into_inner().to_string();
        // An unknown field's path ends in the field itself, which the cause already names.
        if let Some(last) = last
            && cause.starts_with(&format!("unknown field `{last}`"))
        {
            path = path.strip_suffix(&last).unwrap_or(&path).trim_end_matches('.').to_string();
        }
        if path.is_empty() || path == "." {
            InvalidEvent(format!("{what}: {cause}"))
        } else {
            InvalidEvent(format!("{what}: {path}: {cause}"))
        }
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct One {
        #[allow(dead_code)]
        name: Option<String>,
    }

    fn fixture(path: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(path);
        serde_json::from_str(&std::fs::read_to_string(&p).expect("event file")).expect("event JSON")
    }

    #[test]
    fn each_shape_reads_as_its_type() {
        let s = Invocation::<NoArguments>::from_json(fixture("reaper/schedule-every-minute.json")).unwrap();
        assert!(matches!(&s, Invocation::Schedule(e) if e.source == "aws.events"), "{s:?}");
        let u = Invocation::<NoArguments>::from_json(fixture("scale-evaluator/webhook-signed-session-created.json"))
            .unwrap();
        assert!(matches!(&u, Invocation::Url(r) if r.request_context.http.method.as_deref() == Some("POST")), "{u:?}");
        let b = Invocation::<NoArguments>::from_json(fixture("reaper/dynamodb-stream-draining.json")).unwrap();
        assert!(matches!(&b, Invocation::Stream(e) if e.records.len() == 1), "{b:?}");
        let d = Invocation::<NoArguments>::from_json(json!({})).unwrap();
        assert_eq!(d.trigger(), "direct");
    }

    #[test]
    fn a_pass_names_its_trigger_and_answers_a_batch_with_no_failures() {
        let s = Pass::from_json(fixture("reaper/schedule-every-minute.json"), "reaper").unwrap();
        assert!(s.origin().starts_with("schedule (arn:aws:events:"), "{}", s.origin());
        assert!(s.origin().contains(" at 20"), "the schedule's time: {}", s.origin());
        assert!(s.batch_response().is_none());
        let b = Pass::from_json(fixture("reaper/dynamodb-stream-draining.json"), "reaper").unwrap();
        assert_eq!(b.origin(), "stream (1 records)");
        assert!(b.batch_response().is_some_and(|r| r.batch_item_failures.is_empty()));
        assert_eq!(Pass::from_json(json!({}), "reaper").unwrap().origin(), "direct");
        let u = Pass::from_json(fixture("scale-evaluator/webhook-signed-session-created.json"), "reaper").unwrap_err();
        assert!(u.0.starts_with("unrecognised event: a webhook trigger; the reaper takes"), "{u}");
    }

    #[test]
    fn refusals_name_the_field_and_the_cause() {
        let e = Invocation::<One>::from_json(json!({"name": 5})).unwrap_err();
        assert_eq!(e.0, "direct invocation: name: invalid type: integer `5`, expected a string");
        let e = Invocation::<One>::from_json(json!({"nmae": "x"})).unwrap_err();
        assert!(e.0.starts_with("direct invocation: unknown field `nmae`, expected `name`"), "{e}");
        let e = Invocation::<NoArguments>::from_json(json!({"x": 1})).unwrap_err();
        assert!(e.0.starts_with("direct invocation: unknown field `x`"), "{e}");
        let e = Invocation::<NoArguments>::from_json(json!([1])).unwrap_err();
        assert_eq!(e.0, "unrecognised event: expected a JSON object, got an array");

        let mut stream = fixture("reaper/dynamodb-stream-draining.json");
        stream["Records"][0]["dynamodb"].as_object_mut().unwrap().remove("SizeBytes");
        let e = Invocation::<NoArguments>::from_json(stream).unwrap_err();
        assert!(e.0.starts_with("DynamoDB stream event: Records[0].dynamodb: missing field `SizeBytes`"), "{e}");
        let e = Invocation::<NoArguments>::from_json(json!({"Records": [{"eventName": "INSERT"}]})).unwrap_err();
        assert!(e.0.starts_with("DynamoDB stream event: Records[0]: missing field"), "{e}");

        let mut other = fixture("reaper/schedule-every-minute.json");
        other["detail-type"] = json!("EC2 Instance State-change Notification");
        let e = Invocation::<NoArguments>::from_json(other).unwrap_err();
        assert!(e.0.contains("detail-type: expected \"Scheduled Event\""), "{e}");

        let mut url = fixture("scale-evaluator/webhook-signed-session-created.json");
        url["requestContext"].as_object_mut().unwrap().remove("http");
        let e = Invocation::<NoArguments>::from_json(url).unwrap_err();
        assert!(e.0.starts_with("Function URL request: requestContext: missing field `http`"), "{e}");
    }
}
