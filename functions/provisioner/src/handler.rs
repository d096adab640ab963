//! The provisioner's handler: a plain function over the ports, tested with `events/provisioner/`.
//!
//! - A DynamoDB stream batch: every record that reports a claim entering `requested` is provisioned
//!   ([`shared::app::provision`], idempotent on the claim). The answer is a partial batch response: only
//!   records whose step failed in a way a retry can fix, or that do not parse, are reported, so one bad
//!   record is retried (then bisected, then parked in the on-failure queue) without blocking or losing the
//!   others.
//! - A direct invocation `{"claims": ["<id>", ...]}` provisions those claims; `{}` provisions every
//!   claim waiting in `requested`.

use serde_json::{Value, json};

use shared::app::{self, Ctx, ProvisionOutcome};
use shared::model::{ClaimId, InstanceState};
use shared::store::dynamodb::change_from_stream_record;

/// Handles one invocation.
pub async fn handle(ctx: &Ctx, event: Value) -> Value {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        return stream_batch(ctx, records).await;
    }
    let ids: Option<Vec<ClaimId>> = event
        .get("claims")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(|s| ClaimId(s.to_string())).collect());
    let results: Vec<(ClaimId, Result<ProvisionOutcome, app::AppError>)> = match ids {
        Some(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let r = app::provision(ctx, &id).await;
                out.push((id, r));
            }
            out
        }
        None => app::provision_pending(ctx).await,
    };
    json!({ "provisioned": results.iter().map(|(id, r)| outcome_json(id, r)).collect::<Vec<_>>() })
}

async fn stream_batch(ctx: &Ctx, records: &[Value]) -> Value {
    let mut failures = Vec::new();
    for rec in records {
        let seq = rec.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).unwrap_or_default().to_string();
        match change_from_stream_record(rec) {
            Ok(Some(c)) if c.new_state == InstanceState::Requested => {
                let r = app::provision(ctx, &c.claim).await;
                tracing::info!(record = %seq, result = %outcome_json(&c.claim, &r), "provision");
                if r.is_err() {
                    // The store or the config failed: retrying the record may help, and it is idempotent.
                    failures.push(json!({ "itemIdentifier": seq }));
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(record = %seq, error = %e, "stream record does not parse");
                failures.push(json!({ "itemIdentifier": seq }));
            }
        }
    }
    json!({ "batchItemFailures": failures })
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
