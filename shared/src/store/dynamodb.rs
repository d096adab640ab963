//! The DynamoDB store (the Lambda deployment): one table, every write conditional.
//!
//! # Item layout
//! One table with string keys `pk` (partition) and `sk` (sort), on-demand billing, a stream with new
//! and old images (the provisioner's and reaper's change feed) and TTL on the number attribute `ttl`.
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | claim | `claims` | `claim#<claim id>` | `id`, `state`, `version` (N), `autoscale_config`, `provider_config`, `doc` (the [`Instance`] as JSON), `ttl` once `deleted` |
//! | slot counter | `claims` | `count#<provider config>` | `provider_config`, `owned` (N): claims of that provider config in every state but `deleted` |
//! | control record and lease | `control#<autoscale config>` | `control` | `version` (N), `doc` (the [`ControlState`] as JSON, without its demand history), `history` (B: the history as deflated JSON, when there is one); while leased `holder`, `expires` (N, nanoseconds since the epoch) |
//! | decision | `decisions` and `decisions#<autoscale config>` (written twice) | ULID of the write (time-ordered) | `doc` (the [`DecisionRecord`] as JSON), `ttl` |
//! | orphan suspect | `suspect#<provider VM id>` | `suspect` | `first_seen` (RFC 3339), `ttl` |
//! | configs | `configs` | `configs` | `doc` (the [`ConfigSet`] as JSON) |
//!
//! Claims and their counters share one partition, so one strongly consistent Query (`pk = claims`)
//! reads every claim and every counter: the live set is small (bounded by the sum of `max_instances`),
//! and finished claims leave through TTL.
//!
//! The lease lives on the control item, so taking it returns the control record in the same request.
//! DynamoDB bills a write by the item's size, in 1 KB units (an `UpdateItem` by the larger of the item
//! before and after, a transaction twice: Amazon DynamoDB Developer Guide, "DynamoDB read and write
//! operations", capacity unit consumption for write operations), and the lease is taken and released on this item at every
//! evaluation: so the demand history (predictive scaling; ~26 KB as JSON on the office trace after three
//! weeks, up to ~70 KB) is stored deflated, in its own binary attribute (2.4 KB for the same history),
//! and `doc` stays small. A `doc` that still holds a history (written before) is read as it is.
//! An item without `version` holds a lease only (the record is the default, version 0); record writes
//! are updates that leave `holder` and `expires` alone. (Tables written before this layout may hold
//! separate `lease` items, sk `lease`: nothing reads them.)
//!
//! # Evaluations: three requests per config
//! [`Store::begin_evaluation`] is one `UpdateItem` on the control item (take the lease: `SET holder,
//! expires` if it has no holder, is ours, or expired; `ReturnValues ALL_NEW` gives the control record)
//! and then one Query of the `claims` partition (the config's claims and the provider config's counter).
//! [`Store::finish_evaluation`] is one `TransactWriteItems`: update the control item (the record if it
//! changed, at the version read; remove the lease, only if still ours) and put the decision twice.
//! When that condition fails (the lease expired and was taken, or the record moved on), the writes are
//! made one by one instead, with the outcome they always had.
//!
//! # The `max_instances` cap
//! [`Store::try_claim`] is one `TransactWriteItems`: put the claim (`attribute_not_exists(pk)`) and
//! `ADD owned 1` on the provider config's counter with the condition `owned < cap` (or no counter yet).
//! Either both happen or neither. The only move out of the counted states is into `deleted`; that update
//! decrements the counter in the same transaction, and the claim's own condition (`version` and a
//! `state` that may move to `deleted`) makes it happen once. Nothing moves out of `deleted`.
//!
//! # Conditions
//! Every claim write is conditional on the `version` read and on a stored `state` from which the new
//! state is legal, so no read is needed before a write; when the condition fails, one consistent read
//! says why (not found, conflict, illegal move).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType, Put, ReturnValue,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    TransactWriteItem, Update,
};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Change, DecisionRecord, EvalSnapshot, InstanceFilter, Store, StoreError, Versioned};
use crate::aws_error::describe;
use crate::config::ConfigSet;
use crate::engine::ControlState;
use crate::model::{ClaimId, Instance, InstanceState};

type Item = HashMap<String, AttributeValue>;

/// The partition of claims and slot counters.
const CLAIMS: &str = "claims";
/// The partition of every config's decisions (each is also written under its config's partition).
const DECISIONS: &str = "decisions";
/// The key of the single configs item.
const CONFIGS: &str = "configs";
/// The TTL attribute (epoch seconds), enabled by [`create_table`].
pub const TTL_ATTRIBUTE: &str = "ttl";

/// How long finished (`deleted`) claims are kept for inspection before TTL removes them.
pub const DEFAULT_FINISHED_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long decision records are kept.
pub const DEFAULT_DECISION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// How long an orphan suspect that is no longer marked is remembered.
const SUSPECT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Transactions cancelled only by a concurrent transaction on the same item (DynamoDB's
/// `TransactionConflict`, e.g. many claims on one counter) are retried this often before failing.
const TRANSACTION_CONFLICT_RETRIES: u32 = 12;

fn claim_sk(id: &str) -> String {
    format!("claim#{id}")
}

fn counter_sk(provider_config: &str) -> String {
    format!("count#{provider_config}")
}

fn control_pk(autoscale_config: &str) -> String {
    format!("control#{autoscale_config}")
}

fn decisions_pk(autoscale_config: Option<&str>) -> String {
    match autoscale_config {
        Some(c) => format!("{DECISIONS}#{c}"),
        None => DECISIONS.to_string(),
    }
}

fn suspect_pk(key: &str) -> String {
    format!("suspect#{key}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// Epoch seconds `keep` from now (the TTL attribute's format).
fn ttl_from_now(keep: Duration) -> i64 {
    Utc::now().timestamp().saturating_add(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX))
}

/// Nanoseconds since the epoch, exact for every `DateTime<Utc>` (an `i64` of nanoseconds is not).
fn epoch_nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn corrupt(what: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt {what} in the DynamoDB table: {why}"))
}

fn to_json<T: serde::Serialize>(v: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("failed to encode {what}: {e}")))
}

fn doc<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let d = get_s(item, "doc").ok_or_else(|| corrupt(what, "no `doc` attribute"))?;
    serde_json::from_str(d).map_err(|e| corrupt(what, e))
}

/// The control record in the control item (`None` = no item). An item without `version` holds a
/// lease only: the record is the default, at version 0.
fn control_of(c: &str, item: Option<&Item>) -> Result<Versioned<ControlState>, StoreError> {
    let Some(item) = item.filter(|i| i.contains_key("version")) else {
        return Ok(Versioned { value: ControlState::default(), version: 0 });
    };
    let what = format!("control record {c}");
    let mut value: ControlState = doc(item, &what)?;
    if let Some(z) = item.get(HISTORY) {
        let z = z.as_b().map_err(|_| corrupt(&what, "`history` is not binary"))?;
        let json = miniz_oxide::inflate::decompress_to_vec_with_limit(z.as_ref(), HISTORY_MAX_BYTES)
            .map_err(|e| corrupt(&what, format!("`history` does not inflate ({:?})", e.status)))?;
        value.history = Some(serde_json::from_slice(&json).map_err(|e| corrupt(&what, format!("`history`: {e}")))?);
    }
    Ok(Versioned { value, version: get_n(item, "version").ok_or_else(|| corrupt(&what, "unreadable version"))? })
}

/// The control item's attribute holding the demand history, deflated (see the module docs).
const HISTORY: &str = "history";

/// The most a history may inflate to: far above what a bounded history takes (under 70 KB as JSON).
const HISTORY_MAX_BYTES: usize = 4 << 20;

/// The control record's `doc` (without its history) and, when it has a history, that history as
/// deflated JSON.
fn control_attrs(state: &ControlState) -> Result<(String, Option<Vec<u8>>), StoreError> {
    let history = match &state.history {
        Some(h) => Some(miniz_oxide::deflate::compress_to_vec(to_json(h, "a demand history")?.as_bytes(), 6)),
        None => None,
    };
    let bare = ControlState { history: None, ..state.clone() };
    Ok((to_json(&bare, "a control record")?, history))
}

fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Backend(format!("failed to build a DynamoDB request: {e}")))
}

/// What a transaction did.
enum Tx {
    Done,
    /// Cancelled by a failed condition; one flag per item, in request order.
    Failed(Vec<bool>),
}

/// A [`Store`] on one DynamoDB table (see the module docs for the item layout).
pub struct DynamoDbStore {
    client: Client,
    table: String,
    page_size: Option<i32>,
    finished_ttl: Duration,
    decision_ttl: Duration,
    // Monotonic within the process, so decisions written in the same millisecond keep their order.
    decision_ids: Mutex<ulid::Generator>,
}

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbStore").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DynamoDbStore {
    /// A store on `table` (which must exist: see [`create_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_size: None,
            finished_ttl: DEFAULT_FINISHED_TTL,
            decision_ttl: DEFAULT_DECISION_TTL,
            decision_ids: Mutex::new(ulid::Generator::new()),
        }
    }

    /// Reads at most `items` items per Query page (DynamoDB's own limit is 1 MB). Every read follows
    /// `LastEvaluatedKey` whatever the page size; a small one is for tests of exactly that.
    pub fn with_page_size(mut self, items: u32) -> Self {
        self.page_size = Some(i32::try_from(items.max(1)).unwrap_or(i32::MAX));
        self
    }

    /// How long finished claims and decision records stay before DynamoDB's TTL removes them
    /// (defaults: [`DEFAULT_FINISHED_TTL`], [`DEFAULT_DECISION_TTL`]).
    pub fn with_retention(mut self, finished_claims: Duration, decisions: Duration) -> Self {
        self.finished_ttl = finished_claims;
        self.decision_ttl = decisions;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn backend<E>(&self, op: &str, e: SdkError<E>) -> StoreError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        StoreError::Backend(format!("DynamoDB {op} on table {} failed: {}", self.table, describe(&e)))
    }

    fn claim_item(&self, c: &Instance) -> Result<Item, StoreError> {
        let mut item = key(CLAIMS, claim_sk(c.id.as_str()));
        item.insert("id".into(), s(c.id.as_str()));
        item.insert("state".into(), s(c.state.as_str()));
        item.insert("version".into(), n(c.version));
        item.insert("autoscale_config".into(), s(&c.autoscale_config));
        item.insert("provider_config".into(), s(&c.provider_config));
        item.insert("doc".into(), s(to_json(c, "a claim")?));
        if c.state == InstanceState::Deleted {
            item.insert(TTL_ATTRIBUTE.into(), n(ttl_from_now(self.finished_ttl)));
        }
        Ok(item)
    }

    /// A conditional put of a claim: the stored one must be at `version` with one of `from` as state and
    /// the same provider config (its slot counter is per provider config).
    fn claim_put(&self, c: &Instance, version: u64, from: &[InstanceState]) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.claim_item(c)?))
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#pc", "provider_config")
            .expression_attribute_values(":v", n(version))
            .expression_attribute_values(":pc", s(&c.provider_config));
        let mut names = vec![];
        for (i, st) in from.iter().enumerate() {
            put = put.expression_attribute_values(format!(":s{i}"), s(st.as_str()));
            names.push(format!(":s{i}"));
        }
        let cond = format!("#v = :v AND #pc = :pc AND #st IN ({})", names.join(", "));
        build(put.condition_expression(cond).build())
    }

    async fn get_item(&self, op: &str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.backend(op, e))?;
        Ok(out.item)
    }

    /// Every item of partition `pk` (with `sk` starting with `prefix`), following `LastEvaluatedKey`,
    /// stopping once `limit` items are read. Strongly consistent.
    async fn query(
        &self,
        op: &str,
        pk: &str,
        prefix: Option<&str>,
        newest_first: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = vec![];
        let mut start: Option<Item> = None;
        loop {
            let want = limit.map(|l| l.saturating_sub(out.len()));
            let page = match (self.page_size, want) {
                (Some(p), Some(w)) => Some(p.min(i32::try_from(w).unwrap_or(i32::MAX))),
                (Some(p), None) => Some(p),
                (None, Some(w)) => Some(i32::try_from(w).unwrap_or(i32::MAX)),
                (None, None) => None,
            };
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .scan_index_forward(!newest_first)
                .set_limit(page)
                .set_exclusive_start_key(start.take())
                .expression_attribute_values(":pk", s(pk));
            q = match prefix {
                Some(p) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(p)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let res = q.send().await.map_err(|e| self.backend(op, e))?;
            out.extend(res.items.unwrap_or_default());
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            match res.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok(out)
    }

    /// Runs a transaction; `Failed` says which items' conditions failed. Cancellations caused only by a
    /// concurrent transaction on the same items are retried with jittered backoff.
    async fn transact(&self, op: &str, items: Vec<TransactWriteItem>) -> Result<Tx, StoreError> {
        let mut attempt = 0;
        loop {
            let res = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let e = match res {
                Ok(_) => return Ok(Tx::Done),
                Err(e) => e,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() {
                let codes: Vec<&str> = c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                if codes.contains(&"ConditionalCheckFailed") {
                    return Ok(Tx::Failed(codes.iter().map(|c| *c == "ConditionalCheckFailed").collect()));
                }
                if codes.contains(&"TransactionConflict") && attempt < TRANSACTION_CONFLICT_RETRIES {
                    attempt += 1;
                    let ms = rand::random_range(5..=20u64) << attempt.min(5);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    continue;
                }
            }
            return Err(self.backend(op, e));
        }
    }

    /// Why a conditional claim write failed, from a fresh read.
    async fn why_refused(&self, new: &Instance) -> Result<StoreError, StoreError> {
        let Some(cur) = self.get(&new.id).await? else {
            return Ok(StoreError::NotFound { key: new.id.to_string() });
        };
        if cur.version != new.version {
            return Ok(StoreError::Conflict { key: new.id.to_string() });
        }
        if cur.provider_config != new.provider_config {
            return Ok(StoreError::Backend(format!(
                "claim {}: its provider config may not change ({} to {})",
                new.id, cur.provider_config, new.provider_config
            )));
        }
        if cur.state != new.state && !cur.state.can_move_to(new.state) {
            return Ok(StoreError::IllegalTransition { claim: new.id.clone(), from: cur.state, to: new.state });
        }
        // It matched when read again: it changed and changed back meanwhile, which is someone else's write.
        Ok(StoreError::Conflict { key: new.id.to_string() })
    }

    /// A single conditional put of a claim (no counter change); a failed condition is explained.
    async fn put_claim(&self, stored: &Instance, read: &Instance, from: &[InstanceState]) -> Result<(), StoreError> {
        let put = self.claim_put(stored, read.version, from)?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(put.item().clone().into())
            .condition_expression(put.condition_expression().unwrap_or_default())
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(self.why_refused(read).await?)
            }
            Err(e) => Err(self.backend("PutItem (claim)", e)),
        }
    }

    /// Takes the lease on the control item (see the module docs) unless another holder has it
    /// unexpired; returns the whole item as it is now (`None` = refused).
    async fn take_lease(
        &self,
        c: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: u64,
    ) -> Result<Option<Item>, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(control_pk(c), "control")))
            .update_expression("SET #h = :h, #e = :exp")
            .condition_expression("attribute_not_exists(#h) OR #h = :h OR #e <= :now")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":exp", n(epoch_nanos(super::lease_expiry(now, ttl))))
            .expression_attribute_values(":now", n(epoch_nanos(now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(None),
            Err(e) => Err(self.backend("UpdateItem (lease)", e)),
        }
    }

    /// An update of the control item: with `release`, removes that holder's lease (only if it holds
    /// it); with `control`, writes the record (only if it is at the given version). Both may be given.
    fn control_update(
        &self,
        c: &str,
        release: Option<&str>,
        control: Option<(&ControlState, u64)>,
    ) -> Result<Update, StoreError> {
        let mut u = Update::builder().table_name(&self.table).set_key(Some(key(control_pk(c), "control")));
        let mut set = vec![];
        let mut remove = vec![];
        let mut conds = vec![];
        if let Some((state, expected)) = control {
            let (doc, history) = control_attrs(state)?;
            u = u
                .expression_attribute_names("#d", "doc")
                .expression_attribute_names("#v", "version")
                .expression_attribute_names("#z", HISTORY)
                .expression_attribute_values(":doc", s(doc))
                .expression_attribute_values(":next", n(expected + 1));
            set.push("#d = :doc, #v = :next");
            match history {
                Some(z) => {
                    u = u.expression_attribute_values(":z", AttributeValue::B(z.into()));
                    set.push("#z = :z");
                }
                None => remove.push("#z"),
            }
            if expected == 0 {
                // Never written (the item may exist, holding only a lease).
                conds.push("attribute_not_exists(#v)");
            } else {
                u = u.expression_attribute_values(":v", n(expected));
                conds.push("#v = :v");
            }
        }
        if let Some(holder) = release {
            u = u
                .expression_attribute_names("#h", "holder")
                .expression_attribute_names("#e", "expires")
                .expression_attribute_values(":h", s(holder));
            remove.push("#h, #e");
            conds.push("#h = :h");
        }
        let mut expr = vec![];
        if !set.is_empty() {
            expr.push(format!("SET {}", set.join(", ")));
        }
        if !remove.is_empty() {
            expr.push(format!("REMOVE {}", remove.join(", ")));
        }
        build(u.update_expression(expr.join(" ")).condition_expression(conds.join(" AND ")).build())
    }

    /// Sends `u` as a single UpdateItem; `false` when its condition failed.
    async fn send_update(&self, op: &str, u: Update) -> Result<bool, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression().map(str::to_string))
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(self.backend(op, e)),
        }
    }

    /// The two puts of a decision (under every config's and under its own config's partition).
    fn decision_puts(&self, rec: &DecisionRecord) -> Result<Vec<TransactWriteItem>, StoreError> {
        // Keyed by when it was written, not by `rec.at`: the log is in append order.
        let id = {
            let mut g =
                self.decision_ids.lock().map_err(|_| StoreError::Backend("decision id lock poisoned".into()))?;
            g.generate().unwrap_or_else(|_| ulid::Ulid::new())
        };
        let json = to_json(rec, "a decision record")?;
        let ttl = ttl_from_now(self.decision_ttl);
        let mut items = vec![];
        for pk in [decisions_pk(None), decisions_pk(Some(&rec.plan.autoscale_config))] {
            let mut item = key(pk, id.to_string());
            item.insert("doc".into(), s(json.clone()));
            item.insert(TTL_ATTRIBUTE.into(), n(ttl));
            let put = Put::builder().table_name(&self.table).set_item(Some(item));
            items.push(TransactWriteItem::builder().put(build(put.build())?).build());
        }
        Ok(items)
    }
}

/// What [`create_table`] creates: enough for an infrastructure template to declare the same table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefinition {
    /// Key attributes (both strings).
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// `pk` HASH, `sk` RANGE.
    pub key_schema: Vec<KeySchemaElement>,
    /// On-demand.
    pub billing_mode: BillingMode,
    /// A stream with new and old images: the provisioner's and reaper's change feed.
    pub stream: StreamSpecification,
    /// The TTL attribute ([`TTL_ATTRIBUTE`]).
    pub ttl_attribute: &'static str,
}

/// The table the store needs.
pub fn table_definition() -> TableDefinition {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder().attribute_name(name).key_type(t).build().expect("name and type are set")
    };
    TableDefinition {
        attribute_definitions: vec![attr("pk"), attr("sk")],
        key_schema: vec![key("pk", KeyType::Hash), key("sk", KeyType::Range)],
        billing_mode: BillingMode::PayPerRequest,
        stream: StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
            .build()
            .expect("enabled is set"),
        ttl_attribute: TTL_ATTRIBUTE,
    }
}

/// Creates the store's table `name` as [`table_definition`] says, waits until it is active and enables
/// TTL. A table that exists already is kept (its TTL is enabled if it is not).
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let def = table_definition();
    let fail = |op: &str, e: String| StoreError::Backend(format!("DynamoDB {op} on table {name} failed: {e}"));
    let created = client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(def.attribute_definitions))
        .set_key_schema(Some(def.key_schema))
        .billing_mode(def.billing_mode)
        .stream_specification(def.stream)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(fail("CreateTable", describe(&e))),
    }
    let mut waited = Duration::ZERO;
    loop {
        let d =
            client.describe_table().table_name(name).send().await.map_err(|e| fail("DescribeTable", describe(&e)))?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        if waited >= Duration::from_secs(300) {
            return Err(fail("CreateTable", "the table did not become active within 5 minutes".into()));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        waited += Duration::from_secs(2);
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| fail("DescribeTimeToLive", describe(&e)))?;
    let status = ttl.time_to_live_description().and_then(|t| t.time_to_live_status());
    if !matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .expect("enabled and name are set"),
            )
            .send()
            .await
            .map_err(|e| fail("UpdateTimeToLive", describe(&e)))?;
    }
    Ok(())
}

/// A string attribute of a stream image (`{"name": {"S": "value"}}`).
fn image_s<'a>(img: &'a serde_dynamo::Item, name: &str) -> Option<&'a str> {
    match img.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

/// Whether table `name` exists (DescribeTable).
pub async fn table_exists(client: &Client, name: &str) -> Result<bool, StoreError> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(StoreError::Backend(format!("DynamoDB DescribeTable on table {name} failed: {}", describe(&e)))),
    }
}

/// The claim change a DynamoDB Streams record reports (a record of the `DynamoDbEvent` Lambda delivers:
/// `dynamodb.NewImage` / `dynamodb.OldImage`, attribute values as `{"S": ".."}`).
///
/// `Ok(None)` for records that are not claim changes: other items (counters, decisions, ...), writes that
/// kept the state, and removals (TTL expiring a finished claim). A claim record without a readable
/// `id` or `state` is an error, so a malformed feed is noticed rather than skipped.
pub fn change_from_stream_record(
    record: &aws_lambda_events::dynamodb::EventRecord,
) -> Result<Option<Change>, StoreError> {
    let bad = |why: &str| StoreError::Backend(format!("malformed DynamoDB stream record: {why}"));
    let is_claim = |img: &serde_dynamo::Item| {
        image_s(img, "pk") == Some(CLAIMS) && image_s(img, "sk").is_some_and(|sk| sk.starts_with("claim#"))
    };
    let state = |img: &serde_dynamo::Item| -> Result<InstanceState, StoreError> {
        let st = image_s(img, "state").ok_or_else(|| bad("claim image without `state`"))?;
        serde_json::from_value(serde_json::Value::String(st.to_string()))
            .map_err(|_| bad(&format!("claim image with unknown state {st:?}")))
    };
    // A missing image reads as an empty one (no `pk`): not a claim.
    let (new, old) = (&record.change.new_image, &record.change.old_image);
    if !is_claim(new) {
        // A removal (TTL) or another item: not a claim change.
        return Ok(None);
    }
    let id = image_s(new, "id").ok_or_else(|| bad("claim image without `id`"))?;
    let new_state = state(new)?;
    let old_state = if is_claim(old) { Some(state(old)?) } else { None };
    if old_state == Some(new_state) {
        return Ok(None);
    }
    Ok(Some(Change { claim: ClaimId(id.to_string()), old_state, new_state }))
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn try_claim(&self, claim: &Instance, cap: u32) -> Result<bool, StoreError> {
        let mut c = claim.clone();
        c.version = 1;
        let claim_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.claim_item(&c)?))
            .condition_expression("attribute_not_exists(pk)");
        // `owned` missing (no counter yet) means none owned, which is below every cap but 0.
        let cap_cond = if cap == 0 { "#o < :cap" } else { "attribute_not_exists(#o) OR #o < :cap" };
        let counter_key = key(CLAIMS, counter_sk(&c.provider_config));
        let counter = if c.state.counts_toward_max() {
            let u = Update::builder()
                .table_name(&self.table)
                .set_key(Some(counter_key))
                .update_expression("ADD #o :one SET #pc = :pc")
                .condition_expression(cap_cond)
                .expression_attribute_names("#o", "owned")
                .expression_attribute_names("#pc", "provider_config")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":pc", s(&c.provider_config))
                .expression_attribute_values(":cap", n(cap));
            TransactWriteItem::builder().update(build(u.build())?).build()
        } else {
            // Stored as finished: takes no slot, but the cap is checked as for any claim.
            let cc = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(counter_key))
                .condition_expression(cap_cond)
                .expression_attribute_names("#o", "owned")
                .expression_attribute_values(":cap", n(cap));
            TransactWriteItem::builder().condition_check(build(cc.build())?).build()
        };
        let items = vec![TransactWriteItem::builder().put(build(claim_put.build())?).build(), counter];
        match self.transact("TransactWriteItems (claim)", items).await? {
            Tx::Done => Ok(true),
            Tx::Failed(failed) if failed.first() == Some(&true) => Err(StoreError::Conflict { key: c.id.to_string() }),
            Tx::Failed(_) => Ok(false),
        }
    }

    async fn update(&self, new: &Instance) -> Result<Instance, StoreError> {
        let mut stored = new.clone();
        stored.version = new.version + 1;
        // The stored states from which this write is legal: the same state, or one that may move here.
        let from: Vec<InstanceState> =
            InstanceState::ALL.into_iter().filter(|s| *s == new.state || s.can_move_to(new.state)).collect();
        if new.state != InstanceState::Deleted {
            // `deleted` is never among `from` here, so no write resurrects a finished claim.
            self.put_claim(&stored, new, &from).await?;
            return Ok(stored);
        }
        // Into `deleted` from a counted state: the slot is freed in the same transaction.
        let counted: Vec<InstanceState> = from.iter().copied().filter(|s| s.counts_toward_max()).collect();
        let claim = self.claim_put(&stored, new.version, &counted)?;
        let dec = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(CLAIMS, counter_sk(&new.provider_config))))
            .update_expression("ADD #o :minus")
            .condition_expression("#o >= :one")
            .expression_attribute_names("#o", "owned")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":one", n(1));
        let items = vec![
            TransactWriteItem::builder().put(claim).build(),
            TransactWriteItem::builder().update(build(dec.build())?).build(),
        ];
        match self.transact("TransactWriteItems (finish claim)", items).await? {
            Tx::Done => Ok(stored),
            Tx::Failed(failed) if failed.first() == Some(&true) => {
                let cur = self.get(&new.id).await?;
                if cur.as_ref().is_some_and(|c| c.state == InstanceState::Deleted && c.version == new.version) {
                    // Already finished: a write that keeps the state frees nothing.
                    self.put_claim(&stored, new, &[InstanceState::Deleted]).await?;
                    return Ok(stored);
                }
                Err(self.why_refused(new).await?)
            }
            Tx::Failed(_) => Err(corrupt(
                &format!("slot counter of provider config {}", new.provider_config),
                format!("claim {} counts but the counter is already 0", new.id),
            )),
        }
    }

    async fn get(&self, id: &ClaimId) -> Result<Option<Instance>, StoreError> {
        let Some(item) = self.get_item("GetItem (claim)", key(CLAIMS, claim_sk(id.as_str()))).await? else {
            return Ok(None);
        };
        doc(&item, &format!("claim {id}")).map(Some)
    }

    async fn list(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, StoreError> {
        let items = self.query("Query (claims)", CLAIMS, Some("claim#"), false, None).await?;
        let mut v = vec![];
        for item in &items {
            let i: Instance = doc(item, &format!("claim {}", get_s(item, "sk").unwrap_or("?")))?;
            if filter.matches(&i) {
                v.push(i);
            }
        }
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn count_owned(&self, provider_config: &str) -> Result<u32, StoreError> {
        let item = self.get_item("GetItem (slot counter)", key(CLAIMS, counter_sk(provider_config))).await?;
        Ok(item.and_then(|i| get_n::<u32>(&i, "owned")).unwrap_or(0))
    }

    async fn control(&self, c: &str) -> Result<Versioned<ControlState>, StoreError> {
        let item = self.get_item("GetItem (control)", key(control_pk(c), "control")).await?;
        control_of(c, item.as_ref())
    }

    async fn put_control(&self, c: &str, state: &ControlState, expected: u64) -> Result<(), StoreError> {
        // An update, not a put: the lease on the same item stays as it is.
        let u = self.control_update(c, None, Some((state, expected)))?;
        if self.send_update("UpdateItem (control)", u).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict { key: format!("control/{c}") })
        }
    }

    async fn acquire_lease(&self, c: &str, holder: &str, now: DateTime<Utc>, ttl: u64) -> Result<bool, StoreError> {
        Ok(self.take_lease(c, holder, now, ttl).await?.is_some())
    }

    async fn release_lease(&self, c: &str, holder: &str) -> Result<(), StoreError> {
        // A failed condition: not ours (or no lease), nothing to give back.
        self.send_update("UpdateItem (release lease)", self.control_update(c, Some(holder), None)?).await?;
        Ok(())
    }

    async fn begin_evaluation(
        &self,
        c: &str,
        provider_config: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: u64,
    ) -> Result<Option<EvalSnapshot>, StoreError> {
        let Some(item) = self.take_lease(c, holder, now, ttl).await? else {
            return Ok(None);
        };
        let control = control_of(c, Some(&item))?;
        // Claims and slot counters share the partition: one read gives both (after the lease, so it
        // sees every claim the previous holder made).
        let items = self.query("Query (claims)", CLAIMS, None, false, None).await?;
        let counter = counter_sk(provider_config);
        let filter = InstanceFilter { autoscale_config: Some(c.to_string()), ..Default::default() };
        let mut instances = vec![];
        let mut owned_total = 0;
        for item in &items {
            let sk = get_s(item, "sk").unwrap_or_default();
            if sk == counter {
                owned_total = get_n::<u32>(item, "owned").unwrap_or(0);
            } else if sk.starts_with("claim#") {
                // Other configs' claims are skipped unread; the doc decides for the rest.
                if get_s(item, "autoscale_config").is_some_and(|a| a != c) {
                    continue;
                }
                let i: Instance = doc(item, &format!("claim {sk}"))?;
                if filter.matches(&i) {
                    instances.push(i);
                }
            }
        }
        instances.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(Some(EvalSnapshot { control, instances, owned_total }))
    }

    async fn finish_evaluation(
        &self,
        c: &str,
        holder: &str,
        control: Option<(&ControlState, u64)>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError> {
        let mut items =
            vec![TransactWriteItem::builder().update(self.control_update(c, Some(holder), control)?).build()];
        items.extend(self.decision_puts(decision)?);
        match self.transact("TransactWriteItems (finish evaluation)", items).await? {
            Tx::Done => Ok(()),
            // The lease is no longer ours or the control record moved on: the writes one by one give
            // the outcome they always gave (a stale version is a conflict; another holder keeps its lease).
            Tx::Failed(_) => super::finish_evaluation_stepwise(self, c, holder, control, decision).await,
        }
    }

    async fn record_decision(&self, rec: &DecisionRecord) -> Result<(), StoreError> {
        match self.transact("TransactWriteItems (decision)", self.decision_puts(rec)?).await? {
            Tx::Done => Ok(()),
            Tx::Failed(_) => Err(StoreError::Backend("DynamoDB refused an unconditional decision write".into())),
        }
    }

    async fn decisions(&self, c: Option<&str>, limit: usize) -> Result<Vec<DecisionRecord>, StoreError> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let items = self.query("Query (decisions)", &decisions_pk(c), None, true, Some(limit)).await?;
        items.iter().map(|i| doc(i, "decision record")).collect()
    }

    async fn mark_suspect(&self, k: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(suspect_pk(k), "suspect")))
            .update_expression("SET #f = if_not_exists(#f, :now), #ttl = :ttl")
            .expression_attribute_names("#f", "first_seen")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", s(now.to_rfc3339_opts(SecondsFormat::Nanos, true)))
            .expression_attribute_values(":ttl", n(ttl_from_now(SUSPECT_TTL)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.backend("UpdateItem (suspect)", e))?;
        let what = format!("orphan suspect {k}");
        let first = out
            .attributes
            .as_ref()
            .and_then(|a| get_s(a, "first_seen"))
            .ok_or_else(|| corrupt(&what, "no first_seen"))?;
        DateTime::parse_from_rfc3339(first).map(|t| t.with_timezone(&Utc)).map_err(|e| corrupt(&what, e))
    }

    async fn clear_suspect(&self, k: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(suspect_pk(k), "suspect")))
            .send()
            .await
            .map_err(|e| self.backend("DeleteItem (suspect)", e))?;
        Ok(())
    }

    async fn load_configs(&self) -> Result<Option<ConfigSet>, StoreError> {
        match self.get_item("GetItem (configs)", key(CONFIGS, CONFIGS)).await? {
            None => Ok(None),
            Some(item) => doc(&item, "configs").map(Some),
        }
    }

    async fn save_configs(&self, configs: &ConfigSet) -> Result<(), StoreError> {
        let mut item = key(CONFIGS, CONFIGS);
        item.insert("doc".into(), s(to_json(configs, "the configs")?));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.backend("PutItem (configs)", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lambda_events::dynamodb::{Event, EventRecord};

    fn event(path: &str) -> Event {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(path);
        serde_json::from_str(&std::fs::read_to_string(&p).expect("event file")).expect("a DynamoDB stream event")
    }

    /// Three weeks of an office's weekdays (07:00-19:00 UTC busy, a level that moves by the quarter
    /// hour and the week) and 20 measured boots: a history like the office trace's.
    fn office_history() -> crate::engine::forecast::DemandHistory {
        use crate::engine::forecast::{BUCKETS, DemandHistory};
        let start = DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z").unwrap().with_timezone(&Utc);
        let mut h = DemandHistory::new(7);
        for w in 0..3i64 {
            for b in 0..BUCKETS as i64 {
                let t = start + chrono::Duration::minutes(15 * (b + w * BUCKETS as i64));
                let (day, hour) = (b / 96, b % 96 / 4);
                let busy = day < 5 && (7..19).contains(&hour);
                let cores = if busy { (20 + (b * 7 + w * 13) % 37) as f64 } else { 0.0 };
                h.observe(t, [cores, cores * 1384.0, 0.0]);
            }
        }
        for k in 0..20 {
            h.add_boot(240 + k * 3);
        }
        h
    }

    fn control_item(doc: String, history: Option<Vec<u8>>) -> Item {
        let mut item = key(control_pk("office"), "control");
        item.insert("version".into(), n(4));
        item.insert("doc".into(), s(doc));
        if let Some(z) = history {
            item.insert(HISTORY.into(), AttributeValue::B(z.into()));
        }
        item
    }

    /// The history is stored deflated beside a `doc` without it (DynamoDB bills a write by the item's
    /// size: see the module docs), and read back whole; a `doc` written with the history inside, as
    /// before, still reads.
    #[test]
    fn the_demand_history_is_stored_deflated_beside_the_control_record() {
        let state = ControlState {
            request_downscale_at: Some(
                DateTime::parse_from_rfc3339("2026-01-26T09:00:00Z").unwrap().with_timezone(&Utc),
            ),
            consecutive_failures: 2,
            history: Some(office_history()),
            ..ControlState::default()
        };
        let (doc, z) = control_attrs(&state).unwrap();
        let z = z.expect("a history is stored");
        assert!(!doc.contains("buckets") && doc.len() < 300, "{doc}");
        let json = serde_json::to_string(&state.history).unwrap();
        assert!(z.len() * 5 < json.len() && z.len() < 6 * 1024, "{} B deflated of {} B", z.len(), json.len());
        let back = control_of("office", Some(&control_item(doc, Some(z)))).unwrap();
        assert_eq!((back.value, back.version), (state.clone(), 4));
        // Written before: the history inside `doc`, no `history` attribute.
        let old = control_item(serde_json::to_string(&state).unwrap(), None);
        assert_eq!(control_of("office", Some(&old)).unwrap().value, state);
        // No history (predictive scaling off): nothing stored for it.
        let (doc, z) = control_attrs(&ControlState { history: None, ..state.clone() }).unwrap();
        assert_eq!(z, None);
        assert_eq!(control_of("office", Some(&control_item(doc, None))).unwrap().value.history, None);
    }

    /// A `history` attribute that does not inflate, or inflates to no history, is a corrupt record
    /// named as such, never an empty history.
    #[test]
    fn a_history_that_does_not_read_names_the_control_record() {
        let doc = r#"{"consecutive_failures":0}"#.to_string();
        for (z, why) in [
            (b"not deflate".to_vec(), "does not inflate"),
            (miniz_oxide::deflate::compress_to_vec(b"[1,2]", 6), "`history`:"),
        ] {
            let err = control_of("office", Some(&control_item(doc.clone(), Some(z)))).unwrap_err().to_string();
            assert!(err.contains("control record office") && err.contains(why), "{err}");
        }
        let mut item = control_item(doc, None);
        item.insert(HISTORY.into(), s("text"));
        let err = control_of("office", Some(&item)).unwrap_err().to_string();
        assert!(err.contains("`history` is not binary"), "{err}");
    }

    #[test]
    fn a_new_claim_in_the_stream_is_a_change_from_nothing() {
        let ev = event("provisioner/dynamodb-stream-new-claim.json");
        let got: Vec<_> = ev.records.iter().map(|r| change_from_stream_record(r).expect("readable")).collect();
        assert_eq!(
            got,
            [
                Some(Change {
                    claim: ClaimId("01jdx3qg8m2v7k4r9t6w5y1z0a".into()),
                    old_state: None,
                    new_state: InstanceState::Requested,
                }),
                // The slot counter moved in the same transaction: not a claim.
                None,
            ]
        );
    }

    #[test]
    fn state_changes_are_changes_and_other_writes_are_not() {
        let img = |state: &str| {
            serde_json::json!({
                "pk": {"S": "claims"}, "sk": {"S": "claim#c1"}, "id": {"S": "c1"},
                "state": {"S": state}, "version": {"N": "2"}
            })
        };
        // A record as Lambda delivers it, with the fields the type requires.
        let rec = |old: Option<serde_json::Value>, new: Option<serde_json::Value>, name: &str| -> EventRecord {
            let mut d = serde_json::Map::new();
            d.insert("SizeBytes".into(), 100.into());
            if let Some(o) = old {
                d.insert("OldImage".into(), o);
            }
            if let Some(n) = new {
                d.insert("NewImage".into(), n);
            }
            let r = serde_json::json!({"eventID": "1", "eventName": name, "awsRegion": "us-east-1", "dynamodb": d});
            serde_json::from_value(r).expect("a stream record")
        };
        let moved = rec(Some(img("creating")), Some(img("booting")), "MODIFY");
        assert_eq!(
            change_from_stream_record(&moved).unwrap(),
            Some(Change {
                claim: ClaimId("c1".into()),
                old_state: Some(InstanceState::Creating),
                new_state: InstanceState::Booting,
            })
        );
        let kept = rec(Some(img("running")), Some(img("running")), "MODIFY");
        assert_eq!(change_from_stream_record(&kept).unwrap(), None, "a write that keeps the state");
        let reaped = rec(Some(img("deleted")), None, "REMOVE");
        assert_eq!(change_from_stream_record(&reaped).unwrap(), None, "a TTL removal");
        let unknown = rec(None, Some(img("exploded")), "INSERT");
        let e = change_from_stream_record(&unknown).expect_err("unknown state");
        assert!(e.to_string().contains("exploded"), "{e}");
        let mut no_state = img("running");
        no_state.as_object_mut().unwrap().remove("state");
        assert!(change_from_stream_record(&rec(None, Some(no_state), "INSERT")).is_err());
        let mut no_id = img("running");
        no_id.as_object_mut().unwrap().remove("id");
        assert!(change_from_stream_record(&rec(None, Some(no_id), "INSERT")).is_err());
    }

    #[test]
    fn the_table_has_a_stream_with_both_images_and_ttl() {
        let d = table_definition();
        assert_eq!(d.stream.stream_view_type(), Some(&StreamViewType::NewAndOldImages));
        assert!(d.stream.stream_enabled());
        assert_eq!(d.ttl_attribute, "ttl");
        assert_eq!(d.billing_mode, BillingMode::PayPerRequest);
        let keys: Vec<_> = d.key_schema.iter().map(|k| (k.attribute_name(), k.key_type().clone())).collect();
        assert_eq!(keys, [("pk", KeyType::Hash), ("sk", KeyType::Range)]);
    }

    #[test]
    fn lease_times_keep_nanoseconds_and_the_end_of_time() {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(epoch_nanos(t), 1_700_000_000_123_456_789);
        assert!(epoch_nanos(DateTime::<Utc>::MAX_UTC) > epoch_nanos(t));
    }
}
