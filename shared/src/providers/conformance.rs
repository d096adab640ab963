//! The shared conformance suite (v2): plain async functions over `&dyn VmProvider` and a
//! [`Harness`] — the provider's test server, fake API or fault-injecting proxy — run against every
//! provider: the in-memory one in every `cargo test`, the others against their test servers
//! (`tests/proxmox.rs`, `tests/aws_ec2.rs`). Compiled for shared's own tests and behind the
//! `conformance` cargo feature.
//!
//! Each check is one rule of [`VmProvider`]'s `# Behavior` bullets or of [`ErrorClass`]'s retry
//! rules, and panics with a message naming the provider and the broken rule:
//! - create is idempotent on the claim, also when the provider accepted a create whose answer was
//!   lost (the crash between the provider's accept and our record): the next create for the claim
//!   finds the first VM ([`create_is_idempotent_on_claim`], [`create_survives_a_lost_answer`]);
//! - get of a missing VM is `NotFound`, delete of a missing VM succeeds, delete is final;
//! - list returns only VMs carrying every asked label, across every page, and never a partial list
//!   when a page fails ([`list_returns_only_ours_across_pages`]);
//! - a VM without our deployment label is never deleted ([`foreign_vm_is_never_deleted`]);
//! - the API's answers map to the right [`ErrorClass`] with the right retry behaviour: 401 → `Auth`
//!   and 403 → `Permission`, never retried; 404 → `NotFound` (a delete of a missing VM succeeds);
//!   409 → `Conflict`; 429 → `RateLimited` carrying the server's wait, a short wait retried after it
//!   elapsed; 5xx and timeouts retried inside the client, then `Transient`; out of capacity →
//!   `OutOfCapacity`;
//! - [`Capabilities`](super::Capabilities) agree with what the provider does.
//!
//! # Writing a harness
//! A [`Harness`] maps the suite's logical operations ([`Op`]) to its API's routes and answers the
//! suite's [`Fault`]s the way that API really does (e.g. EC2's `RequestLimitExceeded` is an XML
//! error with HTTP 503 and no wait hint; Proxmox says "does not exist" in a 500). The provider must
//! be built against it with a client timeout shorter than the harness's stall, and an HTTP retry
//! policy whose longest honoured wait lies between [`SHORT_WAIT`] and [`LONG_WAIT`].

use async_trait::async_trait;
use std::time::{Duration, Instant};

use super::{ErrorClass, ProviderError, VmProvider, VmSpec, VmState};
use crate::model::{ClaimId, OsFamily, OwnerLabels};

/// A logical provider operation; each harness maps it to its API's route (the call that does the
/// work: e.g. Proxmox's clone for `Create`, EC2's `TerminateInstances` for `Delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// [`VmProvider::create_vm`]'s creating call.
    Create,
    /// [`VmProvider::get_vm`]'s read.
    Get,
    /// [`VmProvider::delete_vm`]'s deleting call.
    Delete,
    /// [`VmProvider::list_vms`]'s listing call (each page is one request).
    List,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 4] = [Op::Create, Op::Get, Op::Delete, Op::List];
}

/// An answer the harness gives instead of the real one, in its API's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Credentials refused (HTTP 401, EC2 `AuthFailure`).
    Unauthorized,
    /// Not allowed (HTTP 403, EC2 `UnauthorizedOperation`).
    Forbidden,
    /// The VM does not exist (HTTP 404, EC2 `InvalidInstanceID.NotFound`, Proxmox's "does not exist").
    NotFound,
    /// The VM is being changed by someone else (HTTP 409, EC2 `IncorrectInstanceState`).
    Conflict,
    /// Throttled (HTTP 429, EC2 `RequestLimitExceeded`), asking to wait `retry_after` where the API
    /// has a way to say so.
    RateLimited {
        /// The wait asked for (`Retry-After`).
        retry_after: Duration,
    },
    /// A server error (HTTP 500, EC2 `InternalError`).
    ServerError,
    /// No answer within the client's timeout; the API never acted on the request.
    Timeout,
    /// No capacity for the VM (EC2 `InsufficientInstanceCapacity`, a Proxmox clone failing on full
    /// storage).
    OutOfCapacity,
}

/// How the provider's client retries, as the retry checks hold it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRules {
    /// The operations whose 5xx answers, timeouts and throttling the client retries itself (empty
    /// for a provider without an HTTP client). Any other operation must hand such a failure back at
    /// once, as a retryable error.
    pub retried: &'static [Op],
    /// Whether the API says how long to wait when it throttles (`Retry-After`): then the error must
    /// carry that wait and a retry must not come sooner. EC2 sends no such hint.
    pub retry_after_hint: bool,
}

/// The provider's test server, fake API or proxy, as the suite drives it.
#[async_trait]
pub trait Harness: Send + Sync {
    /// After `skip` requests of `op` pass untouched, the next `times` are answered with `fault`.
    fn inject(&self, op: Op, fault: Fault, skip: usize, times: usize);
    /// The next request of `op` is carried out by the API, and its answer never reaches the client
    /// (the connection drops): a crash between the provider's accept and our record.
    fn lose_next_answer(&self, op: Op);
    /// Forgets every fault not yet used.
    fn clear_faults(&self);
    /// How many requests of `op` reached the API so far, faulted ones included.
    fn requests(&self, op: Op) -> usize;
    /// The client's retry behaviour.
    fn retries(&self) -> RetryRules;
    /// The page size the provider lists with, when its API pages (the harness built it small).
    fn page_size(&self) -> Option<usize>;
    /// How many VMs the API has put in its answers to list requests so far (all pages).
    fn vms_in_list_answers(&self) -> usize;
    /// The idempotency token the last create request carried, if any.
    fn last_create_token(&self) -> Option<String>;
    /// A VM id, shaped like the provider's ids, that no VM has.
    fn missing_id(&self) -> String;
    /// Makes a VM without any kasm-autoscale label, as an operator would; returns its id.
    async fn create_foreign_vm(&self) -> String;
    /// Removes a VM made by [`create_foreign_vm`](Self::create_foreign_vm).
    async fn remove_foreign_vm(&self, id: &str);
    /// Whether the VM exists, as the API sees it (not through the provider).
    async fn vm_exists(&self, id: &str) -> bool;
    /// How many live VMs the API holds for `spec`'s claim (by claim label or by `spec.name`), as
    /// the API sees it.
    async fn vms_made_for(&self, spec: &VmSpec) -> usize;
}

/// How many times a lasting fault is queued: more than any client retries.
pub const PERSISTENT: usize = 50;
/// The wait a throttled answer asks for when a retry is expected to wait it out.
pub const SHORT_WAIT: Duration = Duration::from_secs(1);
/// A wait no handler may block for: the client must hand the error back carrying it.
pub const LONG_WAIT: Duration = Duration::from_secs(3600);
/// The longest one call may take in the fault checks (retries and stalls included).
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// A spec for a fresh claim of `deployment` and autoscale config `config`.
pub fn spec(deployment: &str, config: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.to_string(),
            autoscale_config: Some(config.to_string()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some("#!/bin/sh\necho conformance\n".to_string().into()),
    }
}

/// Panics naming the provider and the rule.
#[track_caller]
fn broken(p: &dyn VmProvider, rule: &str, detail: String) -> ! {
    panic!("{}: broken rule \"{rule}\": {detail}", p.name())
}

async fn create(p: &dyn VmProvider, s: &VmSpec, what: &str) -> super::Vm {
    p.create_vm(s).await.unwrap_or_else(|e| panic!("{}: {what}: create failed: {e}", p.name()))
}

async fn delete(p: &dyn VmProvider, id: &str, what: &str) {
    p.delete_vm(id).await.unwrap_or_else(|e| panic!("{}: {what}: delete of VM {id} failed: {e}", p.name()))
}

async fn list(p: &dyn VmProvider, labels: &OwnerLabels, what: &str) -> Vec<super::Vm> {
    p.list_vms(labels).await.unwrap_or_else(|e| panic!("{}: {what}: list failed: {e}", p.name()))
}

/// Deletes every VM of `s`'s claim (faults cleared first).
async fn cleanup_claim(p: &dyn VmProvider, h: &dyn Harness, s: &VmSpec) {
    h.clear_faults();
    for vm in list(p, &s.labels, "cleanup").await {
        delete(p, &vm.id, "cleanup").await;
    }
}

/// Creating twice for one claim returns the same VM and makes only one.
pub async fn create_is_idempotent_on_claim(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let rule = "create is idempotent on the claim";
    let s = spec(deployment, "idem");
    let a = create(p, &s, rule).await;
    let b = create(p, &s, rule).await;
    if a.id != b.id {
        broken(p, rule, format!("a second create for one claim made VM {} besides {}", b.id, a.id));
    }
    let made = h.vms_made_for(&s).await;
    if made != 1 {
        broken(p, rule, format!("the API holds {made} VMs for one claim"));
    }
    let listed = list(p, &s.labels, rule).await;
    if listed.len() != 1 {
        broken(p, rule, format!("one claim, {} VMs listed", listed.len()));
    }
    cleanup_claim(p, h, &s).await;
}

/// The crash between the provider's accept and our record: the API makes the VM but its answer is
/// lost. The failed create must be retryable (never a permanent failure that leaves the VM
/// behind), and the next create for the claim finds that VM instead of making a second.
pub async fn create_survives_a_lost_answer(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let rule = "a create whose answer was lost is found by the next create of the claim";
    let s = spec(deployment, "lost");
    h.lose_next_answer(Op::Create);
    let first = p.create_vm(&s).await;
    h.clear_faults();
    if let Err(e) = &first
        && !e.is_retryable()
    {
        broken(
            p,
            rule,
            format!("the create whose answer was lost failed for good ({e}); the claim would be abandoned"),
        );
    }
    let second = create(p, &s, rule).await;
    if let Ok(a) = &first
        && a.id != second.id
    {
        broken(p, rule, format!("the retried create made VM {} besides {}", second.id, a.id));
    }
    let made = h.vms_made_for(&s).await;
    if made != 1 {
        broken(p, rule, format!("the API holds {made} VMs for one claim after a lost answer"));
    }
    let listed: Vec<String> = list(p, &s.labels, rule).await.into_iter().map(|v| v.id).collect();
    if listed != vec![second.id.clone()] {
        broken(p, rule, format!("the claim lists {listed:?}, want [{}]", second.id));
    }
    cleanup_claim(p, h, &s).await;
}

/// A created VM carries the ownership labels and can be read back by id.
pub async fn created_vm_carries_labels(p: &dyn VmProvider, deployment: &str) {
    let rule = "a VM carries our labels";
    let s = spec(deployment, "labels");
    let vm = create(p, &s, rule).await;
    let got = p.get_vm(&vm.id).await.unwrap_or_else(|e| broken(p, rule, format!("get after create: {e}")));
    if got.id != vm.id {
        broken(p, rule, format!("get of {} answered VM {}", vm.id, got.id));
    }
    if !s.labels.matches(&got.labels) {
        broken(p, rule, format!("labels {:?} miss {:?}", got.labels, s.labels.to_map()));
    }
    if got.claim() != Some(s.claim.clone()) {
        broken(p, rule, "the claim label is not read back".into());
    }
    delete(p, &vm.id, rule).await;
}

/// Getting a missing VM is NotFound.
pub async fn get_missing_is_not_found(p: &dyn VmProvider, missing_id: &str) {
    match p.get_vm(missing_id).await {
        Err(ProviderError::NotFound { .. }) => {}
        other => broken(p, "get of a missing VM is NotFound", format!("got {other:?}")),
    }
}

/// Deleting a missing VM succeeds.
pub async fn delete_missing_succeeds(p: &dyn VmProvider, missing_id: &str) {
    if let Err(e) = p.delete_vm(missing_id).await {
        broken(p, "deleting a missing VM succeeds", format!("{e}"));
    }
}

/// Deleting a VM makes `get` NotFound (or Deleted) and deleting it again succeeds.
pub async fn delete_is_final_and_repeatable(p: &dyn VmProvider, deployment: &str) {
    let rule = "delete is final and repeatable";
    let s = spec(deployment, "delete");
    let vm = create(p, &s, rule).await;
    delete(p, &vm.id, rule).await;
    match p.get_vm(&vm.id).await {
        Err(ProviderError::NotFound { .. }) => {}
        Ok(v) if matches!(v.state, VmState::Deleted | VmState::Deleting) => {}
        other => broken(p, rule, format!("get after delete gave {other:?}")),
    }
    delete(p, &vm.id, rule).await;
}

/// A delete whose answer was lost (the API deleted the VM) leaves a retryable error at worst, and
/// the next delete succeeds.
pub async fn delete_survives_a_lost_answer(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let rule = "a delete whose answer was lost succeeds when repeated";
    let s = spec(deployment, "lost-delete");
    let vm = create(p, &s, rule).await;
    h.lose_next_answer(Op::Delete);
    let first = p.delete_vm(&vm.id).await;
    h.clear_faults();
    if let Err(e) = &first
        && !e.is_retryable()
    {
        broken(p, rule, format!("the delete whose answer was lost failed for good: {e}"));
    }
    delete(p, &vm.id, rule).await;
    if h.vm_exists(&vm.id).await {
        broken(p, rule, format!("VM {} still exists after the repeated delete", vm.id));
    }
}

/// Listing returns exactly the VMs carrying every asked label — across every page when the API
/// pages — never another config's, another deployment's or an unlabelled one, never a deleted one;
/// and a page that fails is retried or fails the whole listing, never a partial list.
pub async fn list_returns_only_ours_across_pages(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let rule = "list returns only our labels, across every page";
    // Enough VMs of one config for three pages.
    let wanted = h.page_size().map_or(3, |n| 2 * n + 1);
    let mut ours = Vec::new();
    for _ in 0..wanted {
        ours.push(create(p, &spec(deployment, "list-a"), rule).await.id);
    }
    let other_config = create(p, &spec(deployment, "list-b"), rule).await.id;
    let other_deployment = create(p, &spec(&format!("{deployment}-other"), "list-a"), rule).await.id;
    let foreign = h.create_foreign_vm().await;

    let by_config = OwnerLabels { deployment: deployment.into(), autoscale_config: Some("list-a".into()), claim: None };
    let before = h.requests(Op::List);
    let mut got: Vec<String> = list(p, &by_config, rule).await.into_iter().map(|v| v.id).collect();
    let pages = h.requests(Op::List) - before;
    got.sort();
    let mut want = ours.clone();
    want.sort();
    if got != want {
        broken(p, rule, format!("listing config list-a gave {got:?}, want {want:?}"));
    }
    if h.page_size().is_some() && pages < 3 {
        broken(p, rule, format!("{wanted} VMs in pages of {:?} were listed in {pages} requests", h.page_size()));
    }

    let all: Vec<String> =
        list(p, &OwnerLabels::deployment(deployment), rule).await.into_iter().map(|v| v.id).collect();
    for id in ours.iter().chain([&other_config]) {
        if !all.contains(id) {
            broken(p, rule, format!("the deployment's listing misses VM {id}: {all:?}"));
        }
    }
    if all.contains(&other_deployment) {
        broken(p, rule, format!("the deployment's listing has another deployment's VM {other_deployment}"));
    }
    if all.contains(&foreign) {
        broken(p, rule, format!("the deployment's listing has the unlabelled VM {foreign}"));
    }

    if h.page_size().is_some() {
        // A failing page in the middle: retried inside the client, or the whole listing fails.
        h.inject(Op::List, Fault::ServerError, 1, 1);
        let r = p.list_vms(&by_config).await;
        h.clear_faults();
        match r {
            Ok(v) if v.len() == wanted => {}
            Ok(v) => broken(p, rule, format!("a 5xx on page 2 gave a partial list of {} of {wanted}", v.len())),
            Err(e) if h.retries().retried.contains(&Op::List) => {
                broken(p, rule, format!("a single 5xx on page 2 was not retried: {e}"))
            }
            Err(e) if e.class() == ErrorClass::Transient => {}
            Err(e) => broken(p, rule, format!("a 5xx on page 2 gave {e}, not Transient")),
        }
        h.inject(Op::List, Fault::ServerError, 1, PERSISTENT);
        let r = p.list_vms(&by_config).await;
        h.clear_faults();
        match r {
            Err(e) if e.class() == ErrorClass::Transient => {}
            Ok(v) => {
                broken(p, rule, format!("a failing page 2 gave a list of {} of {wanted} VMs, not an error", v.len()))
            }
            Err(e) => broken(p, rule, format!("a failing page 2 gave {e}, not Transient")),
        }
    }

    // Deleted VMs are not listed.
    let gone = ours.pop().expect("at least one VM");
    delete(p, &gone, rule).await;
    let after: Vec<String> =
        list(p, &by_config, rule).await.into_iter().filter(|v| v.state != VmState::Deleted).map(|v| v.id).collect();
    if after.contains(&gone) {
        broken(p, rule, format!("deleted VM {gone} is still listed"));
    }
    for id in ours.iter().chain([&other_config, &other_deployment]) {
        delete(p, id, "cleanup").await;
    }
    h.remove_foreign_vm(&foreign).await;
}

/// A VM without our deployment label is never deleted: the provider refuses (with an error no
/// retry can change) or ignores the delete, and the VM still exists afterwards.
pub async fn foreign_vm_is_never_deleted(p: &dyn VmProvider, h: &dyn Harness) {
    let rule = "a VM without our deployment label is never deleted";
    let id = h.create_foreign_vm().await;
    if let Err(e) = p.delete_vm(&id).await
        && e.is_retryable()
    {
        broken(p, rule, format!("the refusal is retryable ({e}): the reaper would try again forever"));
    }
    if !h.vm_exists(&id).await {
        broken(p, rule, format!("VM {id} without our labels was deleted"));
    }
    h.remove_foreign_vm(&id).await;
}

/// What one fault check works on: a fresh claim, and a VM of it for `Get` and `Delete`.
struct Target {
    spec: VmSpec,
    vm: Option<String>,
}

async fn target(p: &dyn VmProvider, deployment: &str, op: Op) -> Target {
    let s = spec(deployment, "faults");
    let vm = match op {
        Op::Get | Op::Delete => Some(create(p, &s, "fault check setup").await.id),
        Op::Create | Op::List => None,
    };
    Target { spec: s, vm }
}

async fn call(p: &dyn VmProvider, deployment: &str, op: Op, t: &Target) -> Result<(), ProviderError> {
    let vm = || t.vm.as_deref().expect("a VM for get and delete");
    match op {
        Op::Create => p.create_vm(&t.spec).await.map(|_| ()),
        Op::Get => p.get_vm(vm()).await.map(|_| ()),
        Op::Delete => p.delete_vm(vm()).await,
        Op::List => p.list_vms(&OwnerLabels::deployment(deployment)).await.map(|_| ()),
    }
}

/// What one call under a fault did.
struct Outcome {
    result: Result<(), ProviderError>,
    /// Requests of the faulted operation the call sent.
    sent: usize,
    took: Duration,
}

/// Injects `fault` (`times` times) on `op`, makes the call, clears the faults and cleans up.
async fn under_fault(
    p: &dyn VmProvider,
    h: &dyn Harness,
    deployment: &str,
    op: Op,
    fault: Fault,
    times: usize,
) -> Outcome {
    let t = target(p, deployment, op).await;
    let before = h.requests(op);
    h.inject(op, fault, 0, times);
    let started = Instant::now();
    let result = call(p, deployment, op, &t).await;
    let took = started.elapsed();
    let sent = h.requests(op) - before;
    cleanup_claim(p, h, &t.spec).await;
    if took > CALL_LIMIT {
        broken(p, "a failing call returns in bounded time", format!("{op:?} under {fault:?} took {took:?}"));
    }
    Outcome { result, sent, took }
}

#[track_caller]
fn want_class(p: &dyn VmProvider, rule: &str, op: Op, fault: Fault, o: &Outcome, class: ErrorClass) {
    match &o.result {
        Err(e) if e.class() == class => {}
        other => broken(p, rule, format!("{op:?} answered {fault:?} gave {other:?}, want {class:?}")),
    }
}

/// 401 is `Auth` and 403 `Permission`, on every operation, and neither is retried.
pub async fn refused_credentials_are_auth_and_permission(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let rule = "401 is Auth, 403 is Permission, neither retried";
    for op in Op::ALL {
        for (fault, class) in [(Fault::Unauthorized, ErrorClass::Auth), (Fault::Forbidden, ErrorClass::Permission)] {
            let o = under_fault(p, h, deployment, op, fault, PERSISTENT).await;
            want_class(p, rule, op, fault, &o, class);
            if o.sent != 1 {
                broken(p, rule, format!("{op:?} answered {fault:?} was sent {} times", o.sent));
            }
        }
    }
}

/// The API's not-found answer is `NotFound` for a get, and success for a delete.
pub async fn not_found_answers(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let o = under_fault(p, h, deployment, Op::Get, Fault::NotFound, PERSISTENT).await;
    want_class(p, "a get answered not found is NotFound", Op::Get, Fault::NotFound, &o, ErrorClass::NotFound);
    let o = under_fault(p, h, deployment, Op::Delete, Fault::NotFound, PERSISTENT).await;
    if let Err(e) = o.result {
        broken(p, "a delete answered not found succeeds", format!("{e}"));
    }
}

/// The API's conflict answer to a delete is `Conflict` (retryable).
pub async fn conflict_answers(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let o = under_fault(p, h, deployment, Op::Delete, Fault::Conflict, PERSISTENT).await;
    want_class(p, "409 is Conflict", Op::Delete, Fault::Conflict, &o, ErrorClass::Conflict);
}

/// Throttling is `RateLimited`, carrying the server's wait where the API gives one; a wait longer
/// than any handler may block is handed back at once; a short one is waited out by clients that
/// retry, and handed back by the others.
pub async fn throttling_is_rate_limited_and_waits(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let rule = "429 is RateLimited with the server's wait honoured";
    let rules = h.retries();
    for op in Op::ALL {
        let fault = Fault::RateLimited { retry_after: LONG_WAIT };
        let o = under_fault(p, h, deployment, op, fault, PERSISTENT).await;
        want_class(p, rule, op, fault, &o, ErrorClass::RateLimited);
        if rules.retry_after_hint
            && let Err(ProviderError::RateLimited { retry_after, .. }) = &o.result
            && *retry_after != Some(LONG_WAIT)
        {
            broken(p, rule, format!("{op:?}: the error carries {retry_after:?}, the server asked for {LONG_WAIT:?}"));
        }

        let fault = Fault::RateLimited { retry_after: SHORT_WAIT };
        let o = under_fault(p, h, deployment, op, fault, 1).await;
        if rules.retried.contains(&op) {
            if let Err(e) = &o.result {
                broken(p, rule, format!("{op:?}: one throttled answer was not retried: {e}"));
            }
            if o.sent != 2 {
                broken(p, rule, format!("{op:?}: one throttled answer, {} requests", o.sent));
            }
            if rules.retry_after_hint && o.took < SHORT_WAIT {
                broken(p, rule, format!("{op:?}: retried after {:?}, the server asked for {SHORT_WAIT:?}", o.took));
            }
        } else {
            want_class(p, rule, op, fault, &o, ErrorClass::RateLimited);
            if let Err(ProviderError::RateLimited { retry_after, .. }) = &o.result
                && rules.retry_after_hint
                && *retry_after != Some(SHORT_WAIT)
            {
                broken(
                    p,
                    rule,
                    format!("{op:?}: the error carries {retry_after:?}, the server asked for {SHORT_WAIT:?}"),
                );
            }
        }
    }
}

/// 5xx answers (`fault` = [`Fault::ServerError`]) and timeouts ([`Fault::Timeout`]) are retried
/// inside the client for the operations it retries (one such answer: the call succeeds with a
/// second request), then `Transient`; the other operations hand them back at once as `Transient`.
pub async fn temporary_failures_are_retried_then_transient(
    p: &dyn VmProvider,
    h: &dyn Harness,
    deployment: &str,
    fault: Fault,
) {
    let rule = "5xx and timeouts are retried inside the client, then Transient";
    let rules = h.retries();
    for op in Op::ALL {
        let once = under_fault(p, h, deployment, op, fault, 1).await;
        if rules.retried.contains(&op) {
            if let Err(e) = &once.result {
                broken(p, rule, format!("{op:?}: one {fault:?} was not retried: {e}"));
            }
            if once.sent != 2 {
                broken(p, rule, format!("{op:?}: one {fault:?}, {} requests", once.sent));
            }
        } else {
            want_class(p, rule, op, fault, &once, ErrorClass::Transient);
            if once.sent != 1 {
                broken(p, rule, format!("{op:?} (not retried by the client) was sent {} times", once.sent));
            }
        }
        let lasting = under_fault(p, h, deployment, op, fault, PERSISTENT).await;
        want_class(p, rule, op, fault, &lasting, ErrorClass::Transient);
        if rules.retried.contains(&op) && lasting.sent < 2 {
            broken(p, rule, format!("{op:?}: a lasting {fault:?} was never retried"));
        }
    }
}

/// The API's out-of-capacity answer to a create is `OutOfCapacity` (the config backs off).
pub async fn out_of_capacity_is_out_of_capacity(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let o = under_fault(p, h, deployment, Op::Create, Fault::OutOfCapacity, PERSISTENT).await;
    want_class(p, "out of capacity is OutOfCapacity", Op::Create, Fault::OutOfCapacity, &o, ErrorClass::OutOfCapacity);
}

/// [`Capabilities`](super::Capabilities) agree with what the provider does: an idempotency token
/// is sent (the claim) exactly when claimed; `windows_password` is NotSupported exactly when
/// claimed unsupported; with a server-side label filter the API answers a listing with matching
/// VMs only, without it the API answered more and the provider filtered.
pub async fn capabilities_agree(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let caps = p.capabilities();
    let s = spec(deployment, "caps");
    let vm = create(p, &s, "capabilities").await;
    let token = h.last_create_token();
    // Another deployment's VM, so that an API listing everything answers more than the match.
    let other = create(p, &spec(&format!("{deployment}-other"), "caps"), "capabilities").await;

    let rule = "idempotency_token agrees with the create request";
    match (caps.idempotency_token, token) {
        (true, Some(t)) if t == s.claim.0 => {}
        (true, t) => broken(p, rule, format!("claimed, but the create carried {t:?}, not the claim {}", s.claim)),
        (false, Some(t)) => broken(p, rule, format!("not claimed, but the create carried token {t}")),
        (false, None) => {}
    }

    let rule = "windows_password agrees with the capability";
    match (caps.windows_password, p.windows_password(&vm.id).await) {
        (false, Err(ProviderError::NotSupported { .. })) => {}
        (false, other) => broken(p, rule, format!("not claimed, but it answered {other:?}")),
        (true, Err(ProviderError::NotSupported { .. })) => broken(p, rule, "claimed, but NotSupported".into()),
        (true, _) => {}
    }

    let rule = "server_side_label_filter agrees with the API's answers";
    let before = h.vms_in_list_answers();
    let listed = list(p, &s.labels, rule).await;
    let answered = h.vms_in_list_answers() - before;
    if listed.len() != 1 {
        broken(p, rule, format!("listing one claim gave {} VMs", listed.len()));
    }
    if caps.server_side_label_filter && answered != listed.len() {
        broken(p, rule, format!("claimed, but the API answered {answered} VMs for {} matching", listed.len()));
    }
    if !caps.server_side_label_filter && answered <= listed.len() {
        broken(p, rule, format!("not claimed, but the API answered only the {answered} matching VMs"));
    }
    delete(p, &vm.id, "cleanup").await;
    delete(p, &other.id, "cleanup").await;
}

/// Runs every check. `deployment` should be unique to the run.
pub async fn run_all(p: &dyn VmProvider, h: &dyn Harness, deployment: &str) {
    let missing = h.missing_id();
    create_is_idempotent_on_claim(p, h, deployment).await;
    create_survives_a_lost_answer(p, h, deployment).await;
    created_vm_carries_labels(p, deployment).await;
    get_missing_is_not_found(p, &missing).await;
    delete_missing_succeeds(p, &missing).await;
    delete_is_final_and_repeatable(p, deployment).await;
    delete_survives_a_lost_answer(p, h, deployment).await;
    list_returns_only_ours_across_pages(p, h, deployment).await;
    foreign_vm_is_never_deleted(p, h).await;
    refused_credentials_are_auth_and_permission(p, h, deployment).await;
    not_found_answers(p, h, deployment).await;
    conflict_answers(p, h, deployment).await;
    throttling_is_rate_limited_and_waits(p, h, deployment).await;
    temporary_failures_are_retried_then_transient(p, h, deployment, Fault::ServerError).await;
    temporary_failures_are_retried_then_transient(p, h, deployment, Fault::Timeout).await;
    out_of_capacity_is_out_of_capacity(p, h, deployment).await;
    capabilities_agree(p, h, deployment).await;
}
