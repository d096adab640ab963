//! The provisioner's handler: a plain function over the ports, tested with `events/provisioner/`.
//!
//! - A DynamoDB stream batch (`DynamoDbEvent`): every record that reports a claim entering `requested` is
//!   provisioned ([`shared::app::provision`], idempotent on the claim). The answer is a partial batch
//!   response (`DynamoDbEventResponse`): only records whose step failed in a way a retry can fix, or that
//!   do not read as a claim change, are reported, so one bad record is retried (then bisected, then
//!   parked in the on-failure queue) without blocking or losing the others.
//! - A direct invocation `{"claims": ["<id>", ...]}` provisions those claims; `{}` provisions every
//!   claim waiting in `requested`.
//!
//! Any other payload is refused with the field and the cause, and nothing is provisioned.

use aws_lambda_events::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use shared::app::{self, Ctx, ProvisionOutcome};
use shared::daemon::Metrics;
use shared::model::{ClaimId, InstanceState};
use shared::store::dynamodb::change_from_stream_record;
use shared::wiring::event::{InvalidEvent, Invocation};

/// A direct invocation: the claims to provision (every pending claim when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    /// Claim ids.
    pub claims: Option<Vec<ClaimId>>,
}

/// An invocation of the provisioner.
#[derive(Debug)]
pub enum Event {
    /// The claims table's stream.
    Stream(DynamoDbEvent),
    /// Direct invocation.
    Direct(Direct),
}

impl Event {
    /// Reads a payload as the trigger its shape names; anything else is refused with the field and the
    /// cause.
    pub fn from_json(event: Value) -> Result<Self, InvalidEvent> {
        const TAKES: &str = "the provisioner takes a DynamoDB stream batch or {\"claims\": [\"<claim id>\", ...]}";
        match Invocation::<Direct>::from_json(event).map_err(|e| InvalidEvent(format!("{e}; {TAKES}")))? {
            Invocation::Stream(e) => Ok(Event::Stream(e)),
            Invocation::Direct(d) => Ok(Event::Direct(d)),
            other => Err(InvalidEvent(format!("unrecognised event: a {} trigger; {TAKES}", other.trigger()))),
        }
    }
}

/// What an invocation answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// To a stream batch: the records to retry.
    Batch(DynamoDbEventResponse),
    /// To a direct invocation: `{"provisioned": [...]}`, each claim's outcome.
    Provisioned(Value),
}

/// Handles one invocation; every provisioning is counted in `metrics` (as the daemon counts its own).
pub async fn handle(ctx: &Ctx, event: Event, metrics: &Metrics) -> Response {
    let ids = match event {
        Event::Stream(batch) => return Response::Batch(stream_batch(ctx, &batch, metrics).await),
        Event::Direct(Direct { claims }) => claims,
    };
    let results: Vec<(ClaimId, Result<ProvisionOutcome, app::AppError>)> = match ids {
        Some(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let r = app::provision(ctx, &id).await;
                metrics.record_provision(&r);
                out.push((id, r));
            }
            out
        }
        None => {
            let results = app::provision_pending(ctx).await;
            for (_, r) in &results {
                metrics.record_provision(r);
            }
            results
        }
    };
    Response::Provisioned(
        json!({ "provisioned": results.iter().map(|(id, r)| outcome_json(id, r)).collect::<Vec<_>>() }),
    )
}

async fn stream_batch(ctx: &Ctx, batch: &DynamoDbEvent, metrics: &Metrics) -> DynamoDbEventResponse {
    let mut resp = DynamoDbEventResponse::default();
    for rec in &batch.records {
        let seq = rec.change.sequence_number.clone().unwrap_or_default();
        let retry = match change_from_stream_record(rec) {
            Ok(Some(c)) if c.new_state == InstanceState::Requested => {
                let r = app::provision(ctx, &c.claim).await;
                metrics.record_provision(&r);
                tracing::info!(record = %seq, result = %outcome_json(&c.claim, &r), "provision");
                // The store or the config failed: retrying the record may help, and it is idempotent.
                r.is_err()
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(record = %seq, error = %e, "stream record does not parse");
                true
            }
        };
        if retry {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(seq);
            resp.batch_item_failures.push(failure);
        }
    }
    resp
}

fn outcome_json(id: &ClaimId, r: &Result<ProvisionOutcome, app::AppError>) -> Value {
    match r {
        Ok(ProvisionOutcome::Created { vm_id }) => json!({"claim": id, "created": vm_id}),
        Ok(ProvisionOutcome::AlreadyHandled) => json!({"claim": id, "already_handled": true}),
        Ok(ProvisionOutcome::NotYet) => json!({"claim": id, "not_yet": true}),
        Ok(ProvisionOutcome::Retrying { error, .. }) => json!({"claim": id, "retrying": error}),
        Ok(ProvisionOutcome::Failed { error, .. }) => json!({"claim": id, "failed": error}),
        Err(e) => json!({"claim": id, "error": e.to_string()}),
    }
}

#[cfg(test)]
mod tests;
