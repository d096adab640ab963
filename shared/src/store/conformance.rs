//! The store conformance suite: plain async functions over `&dyn Store`, run against every backend
//! (the in-memory and embedded stores in every `cargo test`, others against their test services).
//! Each check is one promise of [`Store`]; a failure panics with the backend's `Debug` name.
//!
//! Every check uses its own config names, so the checks can share one store. [`run_all`] expects a
//! fresh, empty store (it checks that no configs are stored yet). The concurrency checks take an
//! `Arc<dyn Store>` because they spawn tokio tasks; run them on a multi-threaded runtime.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use tokio::sync::broadcast::error::TryRecvError;

use super::{Change, DecisionRecord, InstanceFilter, Store, StoreError, moved};
use crate::config::ConfigSet;
use crate::engine::{Action, ControlState, Plan, Summary};
use crate::model::{ClaimId, Instance, InstanceState, OsFamily};

/// A fixed instant with sub-second precision (so a backend that drops precision is caught).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 15, 9, 26).unwrap() + Duration::nanoseconds(535_897_932)
}

fn claim(id: &str, autoscale: &str, provider_config: &str, created_at: DateTime<Utc>) -> Instance {
    Instance::new_claim(ClaimId(id.to_string()), autoscale, provider_config, "memory", OsFamily::Linux, created_at)
}

/// Reads a claim that must exist.
async fn must_get(s: &dyn Store, id: &ClaimId) -> Instance {
    s.get(id).await.expect("get").unwrap_or_else(|| panic!("{s:?}: claim {id} missing"))
}

/// Moves a stored claim to `to` through `update`.
async fn step(s: &dyn Store, id: &ClaimId, to: InstanceState) -> Instance {
    let cur = must_get(s, id).await;
    let n = moved(&cur, to, t0()).expect("legal move");
    s.update(&n).await.unwrap_or_else(|e| panic!("{s:?}: {id} {} -> {to}: {e}", cur.state))
}

/// `try_claim` writes only while fewer than `cap` claims of the provider config count toward it:
/// `failed` and `deleting` claims count, `deleted` ones do not; other provider configs do not matter.
pub async fn try_claim_respects_cap(s: &dyn Store) {
    let (pc, other) = ("cap-pc", "cap-pc-other");
    let c = |n: u32| claim(&format!("cap-{n:02}"), "cap-asc", pc, t0() + Duration::seconds(n.into()));
    assert!(!s.try_claim(&c(0), 0).await.expect("claim"), "{s:?}: a claim was written with cap 0");
    assert!(s.get(&c(0).id).await.expect("get").is_none(), "{s:?}: a refused claim was stored");

    let mut with_version = c(1);
    with_version.version = 7;
    assert!(s.try_claim(&with_version, 2).await.expect("claim 1"));
    assert_eq!(must_get(s, &with_version.id).await.version, 1, "{s:?}: a new claim is stored at version 1");
    assert!(s.try_claim(&c(2), 2).await.expect("claim 2"));
    assert!(!s.try_claim(&c(3), 2).await.expect("claim 3"), "{s:?}: third claim written with cap 2");
    assert!(s.get(&c(3).id).await.expect("get").is_none(), "{s:?}: a refused claim was stored");
    assert_eq!(s.count_owned(pc).await.expect("count"), 2);

    // Another provider config has its own cap.
    assert!(s.try_claim(&claim("cap-other-1", "cap-asc", other, t0()), 1).await.expect("claim other"));
    assert_eq!(s.count_owned(other).await.expect("count"), 1);
    assert_eq!(s.count_owned(pc).await.expect("count"), 2);

    // failed and deleting still count.
    let first = c(1).id;
    step(s, &first, InstanceState::Failed).await;
    assert!(!s.try_claim(&c(3), 2).await.expect("claim"), "{s:?}: a failed claim did not count toward the cap");
    step(s, &first, InstanceState::Deleting).await;
    assert!(!s.try_claim(&c(3), 2).await.expect("claim"), "{s:?}: a deleting claim did not count toward the cap");
    assert_eq!(s.count_owned(pc).await.expect("count"), 2);

    // deleted does not.
    step(s, &first, InstanceState::Deleted).await;
    assert_eq!(s.count_owned(pc).await.expect("count"), 1, "{s:?}: a deleted claim still counts");
    assert!(s.try_claim(&c(3), 2).await.expect("claim"), "{s:?}: a deleted claim still blocked the cap");
    assert_eq!(s.count_owned(pc).await.expect("count"), 2);
    assert!(!s.try_claim(&c(4), 2).await.expect("claim"));

    // A claim stored directly as deleted does not count either.
    let mut gone = c(5);
    gone.state = InstanceState::Deleted;
    assert!(s.try_claim(&gone, 3).await.expect("claim"));
    assert_eq!(s.count_owned(pc).await.expect("count"), 2, "{s:?}: a claim written as deleted counts");
}

/// A second claim with an id that exists is a conflict and leaves the first untouched.
pub async fn duplicate_claim_is_conflict(s: &dyn Store) {
    let a = claim("dup-1", "dup-asc", "dup-pc", t0());
    assert!(s.try_claim(&a, 10).await.expect("claim"));
    let mut b = claim("dup-1", "dup-asc-2", "dup-pc-2", t0() + Duration::seconds(5));
    b.attempts = 9;
    match s.try_claim(&b, 10).await {
        Err(StoreError::Conflict { key }) => assert_eq!(key, "dup-1"),
        other => panic!("{s:?}: duplicate claim id gave {other:?}, want Conflict"),
    }
    let got = must_get(s, &a.id).await;
    assert_eq!(got.autoscale_config, "dup-asc");
    assert_eq!(got.attempts, 0);
    assert_eq!(s.count_owned("dup-pc-2").await.expect("count"), 0, "{s:?}: a refused duplicate was counted");
    assert_eq!(s.count_owned("dup-pc").await.expect("count"), 1);
}

/// `update` is a compare-and-set on `version`: it bumps the version, a stale version is a conflict that
/// changes nothing, and an unknown claim is not found.
pub async fn update_is_compare_and_set(s: &dyn Store) {
    let a = claim("cas-1", "cas-asc", "cas-pc", t0());
    assert!(s.try_claim(&a, 10).await.expect("claim"));
    let v1 = must_get(s, &a.id).await;
    assert_eq!(v1.version, 1);

    let mut n = moved(&v1, InstanceState::Creating, t0() + Duration::seconds(1)).expect("move");
    n.attempts = 1;
    let v2 = s.update(&n).await.expect("update from v1");
    assert_eq!(v2.version, 2, "{s:?}: update returns the bumped version");
    assert_eq!(v2.state, InstanceState::Creating);
    assert_eq!(must_get(s, &a.id).await, v2, "{s:?}: stored claim differs from the one update returned");

    // Same read version again: stale.
    let mut stale = moved(&v1, InstanceState::Failed, t0() + Duration::seconds(2)).expect("move");
    stale.last_error = Some("stale writer".into());
    match s.update(&stale).await {
        Err(StoreError::Conflict { key }) => assert_eq!(key, "cas-1"),
        other => panic!("{s:?}: update with a stale version gave {other:?}, want Conflict"),
    }
    // A version from the future is just as wrong.
    let mut future = v2.clone();
    future.version = 5;
    assert!(matches!(s.update(&future).await, Err(StoreError::Conflict { .. })), "{s:?}: future version accepted");
    assert_eq!(must_get(s, &a.id).await, v2, "{s:?}: a refused update changed the claim");

    // A write that keeps the state is fine and still bumps the version.
    let mut same = v2.clone();
    same.vm_id = Some("vm-1".into());
    let v3 = s.update(&same).await.expect("update without a state change");
    assert_eq!((v3.version, v3.vm_id.as_deref()), (3, Some("vm-1")));

    let ghost = claim("cas-ghost", "cas-asc", "cas-pc", t0());
    assert!(matches!(s.update(&ghost).await, Err(StoreError::NotFound { .. })), "{s:?}: update of an unknown claim");
    assert!(s.get(&ghost.id).await.expect("get").is_none(), "{s:?}: update created a claim");
}

/// Moves `InstanceState::can_move_to` forbids are refused and change nothing; `deleted` is final.
pub async fn illegal_transition_refused(s: &dyn Store) {
    let a = claim("ill-1", "ill-asc", "ill-pc", t0());
    assert!(s.try_claim(&a, 10).await.expect("claim"));
    let cur = must_get(s, &a.id).await;
    let mut jump = cur.clone();
    jump.state = InstanceState::Running;
    match s.update(&jump).await {
        Err(StoreError::IllegalTransition { claim, from, to }) => {
            assert_eq!((claim, from, to), (a.id.clone(), InstanceState::Requested, InstanceState::Running));
        }
        other => panic!("{s:?}: requested -> running gave {other:?}, want IllegalTransition"),
    }
    assert_eq!(must_get(s, &a.id).await, cur, "{s:?}: a refused transition changed the claim");

    let gone = step(s, &a.id, InstanceState::Deleted).await;
    for to in InstanceState::ALL.into_iter().filter(|t| *t != InstanceState::Deleted) {
        let mut back = gone.clone();
        back.state = to;
        assert!(
            matches!(s.update(&back).await, Err(StoreError::IllegalTransition { .. })),
            "{s:?}: deleted -> {to} accepted"
        );
    }
    assert_eq!(s.count_owned("ill-pc").await.expect("count"), 0);
}

/// `list` filters by autoscale config, provider config, states and `include_deleted`, oldest first
/// (ties by claim id); `count_owned` agrees with it.
pub async fn list_filters_and_order(s: &dyn Store) {
    let t = t0();
    // Ids deliberately not in creation order.
    let rows = [
        ("lst-d", "lst-a1", "lst-p1", 30),
        ("lst-a", "lst-a1", "lst-p1", 10),
        ("lst-c", "lst-a2", "lst-p1", 20),
        ("lst-b", "lst-a1", "lst-p2", 20),
        ("lst-e", "lst-a2", "lst-p2", 0),
    ];
    for (id, asc, pc, secs) in rows {
        assert!(s.try_claim(&claim(id, asc, pc, t + Duration::seconds(secs)), 100).await.expect("claim"));
    }
    step(s, &ClaimId("lst-a".into()), InstanceState::Deleted).await;
    step(s, &ClaimId("lst-c".into()), InstanceState::Creating).await;
    step(s, &ClaimId("lst-e".into()), InstanceState::Failed).await;

    let ids = |v: Vec<Instance>| v.into_iter().map(|i| i.id.0).collect::<Vec<_>>();
    let list = |f: InstanceFilter| async move { ids(s.list(&f).await.expect("list")) };
    let mine = |v: Vec<String>| v.into_iter().filter(|i| i.starts_with("lst-")).collect::<Vec<_>>();

    assert_eq!(
        mine(list(InstanceFilter::default()).await),
        ["lst-e", "lst-b", "lst-c", "lst-d"],
        "{s:?}: default list"
    );
    assert_eq!(
        mine(list(InstanceFilter { include_deleted: true, ..Default::default() }).await),
        ["lst-e", "lst-a", "lst-b", "lst-c", "lst-d"],
        "{s:?}: include_deleted"
    );
    let by_asc = InstanceFilter { autoscale_config: Some("lst-a1".into()), ..Default::default() };
    assert_eq!(list(by_asc.clone()).await, ["lst-b", "lst-d"], "{s:?}: by autoscale config");
    assert_eq!(
        list(InstanceFilter { include_deleted: true, ..by_asc }).await,
        ["lst-a", "lst-b", "lst-d"],
        "{s:?}: by autoscale config with deleted"
    );
    let by_pc = InstanceFilter { provider_config: Some("lst-p1".into()), ..Default::default() };
    assert_eq!(list(by_pc.clone()).await, ["lst-c", "lst-d"], "{s:?}: by provider config");
    assert_eq!(
        list(InstanceFilter { states: vec![InstanceState::Deleted, InstanceState::Creating], ..by_pc.clone() }).await,
        ["lst-a", "lst-c"],
        "{s:?}: by states (deleted given explicitly)"
    );
    assert_eq!(
        list(InstanceFilter { states: vec![InstanceState::Requested], include_deleted: true, ..by_pc }).await,
        ["lst-d"],
        "{s:?}: states win over include_deleted"
    );
    assert_eq!(
        list(InstanceFilter {
            autoscale_config: Some("lst-a2".into()),
            provider_config: Some("lst-p2".into()),
            states: vec![InstanceState::Failed],
            include_deleted: false,
        })
        .await,
        ["lst-e"],
        "{s:?}: all filters together"
    );
    assert!(list(InstanceFilter { autoscale_config: Some("lst-none".into()), ..Default::default() }).await.is_empty());

    // Same created_at: ordered by id.
    let tie = t + Duration::seconds(99);
    for id in ["lst-tie-z", "lst-tie-m", "lst-tie-a"] {
        assert!(s.try_claim(&claim(id, "lst-tie", "lst-p3", tie), 100).await.expect("claim"));
    }
    let tied = InstanceFilter { autoscale_config: Some("lst-tie".into()), ..Default::default() };
    assert_eq!(list(tied).await, ["lst-tie-a", "lst-tie-m", "lst-tie-z"], "{s:?}: ties ordered by id");

    assert_eq!(s.count_owned("lst-p1").await.expect("count"), 2);
    assert_eq!(s.count_owned("lst-p2").await.expect("count"), 2);
    assert_eq!(s.count_owned("lst-p3").await.expect("count"), 3);
    assert_eq!(s.count_owned("lst-nothing").await.expect("count"), 0);
}

/// The control record: default at version 0, then a compare-and-set on its version.
pub async fn control_is_compare_and_set(s: &dyn Store) {
    let c = "ctl-asc";
    let v0 = s.control(c).await.expect("control");
    assert_eq!((v0.value, v0.version), (ControlState::default(), 0), "{s:?}: unknown control record");
    let a = ControlState { last_provision: Some(t0()), consecutive_failures: 2, ..Default::default() };
    assert!(
        matches!(s.put_control(c, &a, 3).await, Err(StoreError::Conflict { .. })),
        "{s:?}: a new control record written with expected version 3"
    );
    s.put_control(c, &a, 0).await.expect("first put");
    let v1 = s.control(c).await.expect("control");
    assert_eq!((v1.value.clone(), v1.version), (a.clone(), 1));

    let b = ControlState { backoff_until: Some(t0() + Duration::minutes(5)), ..Default::default() };
    match s.put_control(c, &b, 0).await {
        Err(StoreError::Conflict { key }) => assert!(key.contains(c), "{s:?}: conflict key {key}"),
        other => panic!("{s:?}: put_control with a stale version gave {other:?}, want Conflict"),
    }
    assert_eq!(s.control(c).await.expect("control"), v1, "{s:?}: a refused put changed the record");
    s.put_control(c, &b, 1).await.expect("second put");
    let v2 = s.control(c).await.expect("control");
    assert_eq!((v2.value, v2.version), (b, 2));
    assert_eq!(s.control("ctl-other").await.expect("control").version, 0, "{s:?}: records are per config");
}

/// The demand history (predictive scaling) is kept with the control record: a full, bounded history
/// survives a round trip through the evaluation's begin and finish exactly, other configs have none.
pub async fn demand_history_round_trips(s: &dyn Store) {
    let c = "hist-asc";
    let mut h = crate::engine::DemandHistory::new(0xfeed_beef_dead_0001);
    let mut t = t0();
    for k in 0..(crate::engine::forecast::BUCKETS * 3) {
        // Values with long fractions: a backend that rounds numbers is caught.
        h.observe(t, [k as f64 / 7.0, k as f64 * 1024.0 / 3.0, (k % 2) as f64]);
        t += Duration::minutes(15);
    }
    // In a shortage when it is written: when it began is kept too.
    // A quarter hour of a later week observed while today did not follow the history.
    h.observe_capped(t + Duration::days(7) + Duration::minutes(15), [0.0, 0.0, 0.0], false, true);
    h.observe_capped(t, [3.0, 3072.0, 0.0], true, false);
    assert!(h.short_since.is_some());
    for b in 0..40 {
        h.add_boot(200 + b);
    }
    let snap = s.begin_evaluation(c, "hist-pc", "a", t0(), 60).await.expect("begin").expect("lease");
    let ctl = ControlState { history: Some(h.clone()), ..Default::default() };
    s.finish_evaluation(c, "a", Some((&ctl, snap.control.version)), &decision(c, 1)).await.expect("finish");
    let back = s.begin_evaluation(c, "hist-pc", "b", t0(), 60).await.expect("begin").expect("lease");
    assert_eq!(back.control.value.history.as_ref(), Some(&h), "{s:?}: the demand history changed on the way");
    // Predictive scaling turned off: the record is written without a history, and none comes back.
    let off = ControlState { consecutive_failures: 1, ..Default::default() };
    s.finish_evaluation(c, "b", Some((&off, back.control.version)), &decision(c, 2)).await.expect("finish");
    let after = s.control(c).await.expect("control").value;
    assert_eq!((after.history, after.consecutive_failures), (None, 1), "{s:?}: a history outlived the record");
    assert_eq!(s.control("hist-other").await.expect("control").value.history, None, "{s:?}: histories are per config");
}

/// One lease holder per config until the lease expires; the holder may renew; release by anyone else
/// is a no-op.
pub async fn lease_exclusive_and_expires(s: &dyn Store) {
    let (c, t) = ("lease-asc", t0());
    assert!(s.acquire_lease(c, "a", t, 60).await.expect("lease"), "{s:?}: free lease refused");
    assert!(!s.acquire_lease(c, "b", t + Duration::seconds(30), 60).await.expect("lease"), "{s:?}: lease shared");
    assert!(s.acquire_lease("lease-asc-2", "b", t, 60).await.expect("lease"), "{s:?}: leases are per config");
    // The holder renews: now held until t+90.
    assert!(s.acquire_lease(c, "a", t + Duration::seconds(30), 60).await.expect("lease"), "{s:?}: renewal refused");
    assert!(!s.acquire_lease(c, "b", t + Duration::seconds(89), 60).await.expect("lease"), "{s:?}: renewal lost");
    // Expired at t+90 exactly.
    assert!(s.acquire_lease(c, "b", t + Duration::seconds(90), 60).await.expect("lease"), "{s:?}: expired lease held");
    assert!(!s.acquire_lease(c, "a", t + Duration::seconds(100), 60).await.expect("lease"));

    // Release by a non-holder changes nothing.
    s.release_lease(c, "a").await.expect("release");
    assert!(!s.acquire_lease(c, "a", t + Duration::seconds(100), 60).await.expect("lease"), "{s:?}: stolen release");
    s.release_lease("lease-unknown", "a").await.expect("release of nothing");
    // Release by the holder frees it at once.
    s.release_lease(c, "b").await.expect("release");
    assert!(s.acquire_lease(c, "a", t + Duration::seconds(100), 60).await.expect("lease"), "{s:?}: released lease");

    // A TTL past the end of time holds forever instead of failing.
    assert!(s.acquire_lease("lease-forever", "a", t, u64::MAX).await.expect("huge ttl"));
    let later = t + Duration::days(365 * 1000);
    assert!(!s.acquire_lease("lease-forever", "b", later, 60).await.expect("lease"), "{s:?}: huge ttl expired");
}

fn decision(config: &str, n: u32) -> DecisionRecord {
    DecisionRecord {
        at: t0() + Duration::seconds(n.into()),
        trigger: format!("schedule-{n}"),
        plan: Plan {
            autoscale_config: config.to_string(),
            create: n,
            // One decision carries rotation's fields, so they are part of every round trip.
            replacements: if n == 5 { vec![ClaimId("rot-old-5".into())] } else { vec![] },
            actions: if n == 5 {
                vec![Action::Drain {
                    claim: ClaimId("rot-older-5".into()),
                    server_id: "srv-5".into(),
                    reason: "rotation".into(),
                    replaced_by: Some(ClaimId("rot-new-5".into())),
                }]
            } else {
                vec![]
            },
            request_downscale_at: None,
            reasons: vec![format!("reason {n}")],
            summary: Summary::default(),
        },
    }
}

/// A replacement claim keeps the claim it replaces (server rotation) through claim, update and list.
pub async fn rotation_link_round_trips(s: &dyn Store) {
    let mut c = claim("rot-new", "rot-asc", "rot-pc", t0());
    c.replaces = Some(ClaimId("rot-old".into()));
    assert!(s.try_claim(&c, 5).await.expect("claim"));
    assert_eq!(must_get(s, &c.id).await.replaces, c.replaces, "{s:?}: replaces lost by try_claim");
    let moved_on = step(s, &c.id, InstanceState::Creating).await;
    assert_eq!(moved_on.replaces, c.replaces, "{s:?}: replaces lost by update");
    let listed =
        s.list(&InstanceFilter { autoscale_config: Some("rot-asc".into()), ..Default::default() }).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].replaces, c.replaces, "{s:?}: replaces lost by list");
    let plain = claim("rot-plain", "rot-asc", "rot-pc", t0());
    assert!(s.try_claim(&plain, 5).await.expect("claim"));
    assert_eq!(must_get(s, &plain.id).await.replaces, None);
}

/// Decisions come back newest first (in append order, not by `at`), limited, optionally of one config.
pub async fn decisions_newest_first(s: &dyn Store) {
    let recs: Vec<DecisionRecord> = (0..7).map(|n| decision(if n % 2 == 0 { "dec-a" } else { "dec-b" }, n)).collect();
    for r in &recs {
        s.record_decision(r).await.expect("record");
    }
    // Appended last with the oldest `at`: still newest.
    let late = DecisionRecord { at: t0() - Duration::days(1), ..decision("dec-a", 100) };
    s.record_decision(&late).await.expect("record");

    let all = s.decisions(None, 3).await.expect("decisions");
    assert_eq!(all, [late.clone(), recs[6].clone(), recs[5].clone()], "{s:?}: newest 3");
    let a = s.decisions(Some("dec-a"), 100).await.expect("decisions");
    assert_eq!(a, [late.clone(), recs[6].clone(), recs[4].clone(), recs[2].clone(), recs[0].clone()], "{s:?}: dec-a");
    let b = s.decisions(Some("dec-b"), 2).await.expect("decisions");
    assert_eq!(b, [recs[5].clone(), recs[3].clone()], "{s:?}: dec-b limited to 2");
    assert!(s.decisions(Some("dec-none"), 10).await.expect("decisions").is_empty());
    assert!(s.decisions(Some("dec-a"), 0).await.expect("decisions").is_empty(), "{s:?}: limit 0");
}

/// A suspect keeps the time it was first seen until it is cleared.
pub async fn suspects_keep_first_seen(s: &dyn Store) {
    let t = t0();
    assert_eq!(s.mark_suspect("sus-vm-1", t).await.expect("mark"), t);
    assert_eq!(s.mark_suspect("sus-vm-1", t + Duration::minutes(5)).await.expect("mark"), t, "{s:?}: first seen moved");
    assert_eq!(s.mark_suspect("sus-vm-2", t + Duration::minutes(1)).await.expect("mark"), t + Duration::minutes(1));
    s.clear_suspect("sus-vm-1").await.expect("clear");
    s.clear_suspect("sus-never-seen").await.expect("clear of nothing");
    let t2 = t + Duration::minutes(10);
    assert_eq!(s.mark_suspect("sus-vm-1", t2).await.expect("mark"), t2, "{s:?}: cleared suspect remembered");
    assert_eq!(s.mark_suspect("sus-vm-2", t2).await.expect("mark"), t + Duration::minutes(1), "{s:?}: other cleared");
}

/// Configs: none until saved, then what was saved last.
pub async fn configs_round_trip(s: &dyn Store) {
    assert_eq!(s.load_configs().await.expect("load"), None, "{s:?}: configs in a fresh store");
    let mut a = ConfigSet::default();
    a.settings.deployment_id = "conformance-a".into();
    s.save_configs(&a).await.expect("save");
    assert_eq!(s.load_configs().await.expect("load").as_ref(), Some(&a));
    let mut b = a.clone();
    b.settings.deployment_id = "conformance-b".into();
    s.save_configs(&b).await.expect("save");
    assert_eq!(s.load_configs().await.expect("load"), Some(b), "{s:?}: configs not replaced");
}

/// The change feed (where the backend has one) reports new claims and state changes, in order, and
/// nothing for refused writes or writes that keep the state.
pub async fn change_feed_reports_claims(s: &dyn Store) {
    let Some(mut rx) = s.subscribe() else {
        return;
    };
    let a = claim("feed-1", "feed-asc", "feed-pc", t0());
    assert!(s.try_claim(&a, 1).await.expect("claim"));
    assert!(!s.try_claim(&claim("feed-2", "feed-asc", "feed-pc", t0()), 1).await.expect("claim"));
    let cur = must_get(s, &a.id).await;
    let mut same = cur.clone();
    same.attempts = 1;
    let cur = s.update(&same).await.expect("update");
    let _ = s.update(&same).await.expect_err("stale update");
    let creating = s.update(&moved(&cur, InstanceState::Creating, t0()).expect("move")).await.expect("update");
    s.update(&moved(&creating, InstanceState::Failed, t0()).expect("move")).await.expect("update");

    let want = [
        Change { claim: a.id.clone(), old_state: None, new_state: InstanceState::Requested },
        Change { claim: a.id.clone(), old_state: Some(InstanceState::Requested), new_state: InstanceState::Creating },
        Change { claim: a.id.clone(), old_state: Some(InstanceState::Creating), new_state: InstanceState::Failed },
    ];
    for w in want {
        match rx.try_recv() {
            Ok(got) => assert_eq!(got, w, "{s:?}: change feed"),
            Err(e) => panic!("{s:?}: change feed missing {w:?}: {e}"),
        }
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "{s:?}: change feed reported more");
}

/// `begin_evaluation` takes the lease like `acquire_lease`: a second holder gets `None` (and no lease)
/// until the first finishes, releases, or its lease expires; `finish_evaluation` gives it back.
pub async fn evaluation_lease_is_exclusive(s: &dyn Store) {
    let (c, pc, t) = ("evl-asc", "evl-pc", t0());
    let begin = |holder: &'static str, at: DateTime<Utc>| async move {
        s.begin_evaluation(c, pc, holder, at, 60).await.unwrap_or_else(|e| panic!("{s:?}: begin by {holder}: {e}"))
    };
    assert!(begin("a", t).await.is_some(), "{s:?}: free lease refused");
    assert!(begin("b", t + Duration::seconds(10)).await.is_none(), "{s:?}: a held lease was taken");
    assert!(!s.acquire_lease(c, "b", t + Duration::seconds(10), 60).await.expect("lease"), "{s:?}: lease shared");
    assert!(begin("a", t + Duration::seconds(10)).await.is_some(), "{s:?}: the holder may begin again (renewal)");
    // A lease taken by `acquire_lease` keeps `begin_evaluation` out as well.
    assert!(s.acquire_lease("evl-asc-2", "b", t, 60).await.expect("lease"));
    assert!(s.begin_evaluation("evl-asc-2", pc, "a", t, 60).await.expect("begin").is_none(), "{s:?}: leases differ");

    s.finish_evaluation(c, "a", None, &decision(c, 1)).await.expect("finish");
    assert!(begin("b", t + Duration::seconds(11)).await.is_some(), "{s:?}: finish did not give the lease back");
    // Expiry: b's lease from t+11 for 60 s ends at t+71 exactly.
    assert!(begin("a", t + Duration::seconds(70)).await.is_none(), "{s:?}: lease expired early");
    assert!(begin("a", t + Duration::seconds(71)).await.is_some(), "{s:?}: expired lease still held");
    assert!(!s.acquire_lease(c, "b", t + Duration::seconds(72), 60).await.expect("lease"), "{s:?}: lease lost");
    s.release_lease(c, "a").await.expect("release");
    assert!(s.acquire_lease(c, "b", t + Duration::seconds(72), 60).await.expect("lease"), "{s:?}: released lease");
    s.release_lease(c, "b").await.expect("release");
}

/// The snapshot of `begin_evaluation`: the config's claims as `list` gives them (no other config's, no
/// `deleted` ones, oldest first), the provider config's count over every autoscale config, and the
/// control record with its version. Lease writes and control writes do not disturb each other.
pub async fn evaluation_snapshot_content(s: &dyn Store) {
    let t = t0();
    let rows = [
        ("evs-3", "evs-a", "evs-p1", 30),
        ("evs-1", "evs-a", "evs-p1", 10),
        ("evs-2", "evs-b", "evs-p1", 20),
        ("evs-4", "evs-a", "evs-p2", 5),
        ("evs-5", "evs-a", "evs-p1", 0),
        ("evs-6", "evs-c", "evs-p2", 0),
    ];
    for (id, asc, pc, secs) in rows {
        assert!(s.try_claim(&claim(id, asc, pc, t + Duration::seconds(secs)), 100).await.expect("claim"));
    }
    step(s, &ClaimId("evs-5".into()), InstanceState::Deleted).await;
    step(s, &ClaimId("evs-3".into()), InstanceState::Creating).await;

    // Nothing stored for the config yet: the default record at version 0.
    let snap = s.begin_evaluation("evs-none", "evs-p1", "a", t, 60).await.expect("begin").expect("free lease");
    assert_eq!((snap.control.value, snap.control.version), (ControlState::default(), 0), "{s:?}: fresh control");
    assert!(snap.instances.is_empty(), "{s:?}: claims of an unknown config");
    assert_eq!(snap.owned_total, 3, "{s:?}: owned_total");
    // A lease alone is no control record, and writing the record keeps the lease.
    assert_eq!(s.control("evs-none").await.expect("control").version, 0, "{s:?}: a lease read as a record");
    let ctl = ControlState { consecutive_failures: 4, last_provision: Some(t), ..Default::default() };
    s.put_control("evs-none", &ctl, 0).await.expect("first put of a leased config");
    assert!(!s.acquire_lease("evs-none", "b", t, 60).await.expect("lease"), "{s:?}: put_control dropped the lease");
    s.release_lease("evs-none", "a").await.expect("release");
    assert_eq!(s.control("evs-none").await.expect("control").value, ctl, "{s:?}: release dropped the record");

    s.put_control("evs-a", &ctl, 0).await.expect("put");
    let snap = s.begin_evaluation("evs-a", "evs-p1", "a", t, 60).await.expect("begin").expect("free lease");
    let listed =
        s.list(&InstanceFilter { autoscale_config: Some("evs-a".into()), ..Default::default() }).await.expect("list");
    assert_eq!(snap.instances, listed, "{s:?}: snapshot claims differ from list");
    let ids: Vec<&str> = snap.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["evs-4", "evs-1", "evs-3"], "{s:?}: snapshot claims");
    assert_eq!(snap.owned_total, s.count_owned("evs-p1").await.expect("count"), "{s:?}: owned_total");
    assert_eq!(snap.owned_total, 3, "{s:?}: owned_total over every autoscale config");
    assert_eq!((snap.control.value, snap.control.version), (ctl, 1), "{s:?}: snapshot control");
    // The lease is not part of the record.
    assert_eq!(s.control("evs-a").await.expect("control").version, 1, "{s:?}: control under a lease");
    s.finish_evaluation("evs-a", "a", None, &decision("evs-a", 1)).await.expect("finish");

    let snap = s.begin_evaluation("evs-c", "evs-p2", "a", t, 60).await.expect("begin").expect("free lease");
    assert_eq!(snap.owned_total, 2, "{s:?}: owned_total of another provider config");
    assert_eq!(snap.instances.len(), 1);
    s.release_lease("evs-c", "a").await.expect("release");
}

/// `finish_evaluation` writes the control record (when given, at the version read), appends the decision
/// and frees the lease; without a record it leaves the record alone.
pub async fn finish_evaluation_writes_and_frees(s: &dyn Store) {
    let (c, t) = ("evf-asc", t0());
    let snap = s.begin_evaluation(c, "evf-pc", "a", t, 60).await.expect("begin").expect("free lease");
    let ctl = ControlState { request_downscale_at: Some(t + Duration::minutes(10)), ..Default::default() };
    let d1 = decision(c, 1);
    s.finish_evaluation(c, "a", Some((&ctl, snap.control.version)), &d1).await.expect("finish");
    let got = s.control(c).await.expect("control");
    assert_eq!((got.value.clone(), got.version), (ctl.clone(), 1), "{s:?}: finish did not write the record");
    assert_eq!(
        s.decisions(Some(c), 10).await.expect("decisions"),
        std::slice::from_ref(&d1),
        "{s:?}: decision of finish"
    );
    assert_eq!(
        s.decisions(None, 1).await.expect("decisions"),
        std::slice::from_ref(&d1),
        "{s:?}: decision in the global log"
    );

    let snap = s.begin_evaluation(c, "evf-pc", "b", t, 60).await.expect("begin").expect("finish freed the lease");
    assert_eq!((snap.control.value, snap.control.version), (ctl.clone(), 1));
    let d2 = decision(c, 2);
    s.finish_evaluation(c, "b", None, &d2).await.expect("finish without a record");
    assert_eq!(s.control(c).await.expect("control"), got, "{s:?}: finish without a record changed it");
    assert_eq!(s.decisions(Some(c), 10).await.expect("decisions"), [d2, d1], "{s:?}: decisions of finish");
    assert!(s.acquire_lease(c, "c", t, 60).await.expect("lease"), "{s:?}: finish did not free the lease");
    s.release_lease(c, "c").await.expect("release");
}

/// A control record that moved on since `begin_evaluation` makes `finish_evaluation` a conflict that
/// appends no decision; the lease is free once the caller releases it (as `app::evaluate` does).
pub async fn finish_evaluation_with_stale_version(s: &dyn Store) {
    let (c, t) = ("evc-asc", t0());
    let snap = s.begin_evaluation(c, "evc-pc", "a", t, 60).await.expect("begin").expect("free lease");
    let theirs = ControlState { consecutive_failures: 1, ..Default::default() };
    // Someone else (a provisioner's backoff) writes the record meanwhile.
    s.put_control(c, &theirs, snap.control.version).await.expect("their put");
    let mine = ControlState { last_provision: Some(t), ..Default::default() };
    match s.finish_evaluation(c, "a", Some((&mine, snap.control.version)), &decision(c, 1)).await {
        Err(StoreError::Conflict { key }) => assert!(key.contains(c), "{s:?}: conflict key {key}"),
        other => panic!("{s:?}: finish with a stale version gave {other:?}, want Conflict"),
    }
    let got = s.control(c).await.expect("control");
    assert_eq!((got.value, got.version), (theirs, 1), "{s:?}: a refused finish changed the record");
    assert!(s.decisions(Some(c), 10).await.expect("decisions").is_empty(), "{s:?}: a refused finish logged");
    s.release_lease(c, "a").await.expect("release");
    assert!(s.acquire_lease(c, "b", t, 60).await.expect("lease"), "{s:?}: the lease was not freed");
    s.release_lease(c, "b").await.expect("release");
}

/// A holder whose lease expired and was taken by another still finishes as the single writes would:
/// its record write succeeds only at the current version, its decision is logged, and the new
/// holder keeps the lease.
pub async fn finish_evaluation_after_losing_the_lease(s: &dyn Store) {
    let (c, t) = ("evx-asc", t0());
    let a = s.begin_evaluation(c, "evx-pc", "a", t, 60).await.expect("begin").expect("free lease");
    let b = s.begin_evaluation(c, "evx-pc", "b", t + Duration::seconds(61), 60).await.expect("begin");
    let b = b.unwrap_or_else(|| panic!("{s:?}: an expired lease was still held"));
    assert_eq!(a.control.version, b.control.version);
    let late = ControlState { consecutive_failures: 7, ..Default::default() };
    let da = decision(c, 1);
    s.finish_evaluation(c, "a", Some((&late, a.control.version)), &da).await.expect("late finish");
    let got = s.control(c).await.expect("control");
    assert_eq!((got.value, got.version), (late.clone(), a.control.version + 1), "{s:?}: late record write");
    assert_eq!(s.decisions(Some(c), 10).await.expect("decisions"), std::slice::from_ref(&da), "{s:?}: late decision");
    assert!(!s.acquire_lease(c, "c", t + Duration::seconds(62), 60).await.expect("lease"), "{s:?}: b lost the lease");
    // b read the record before a's write: its own write is a conflict.
    let mine = ControlState::default();
    let r = s.finish_evaluation(c, "b", Some((&mine, b.control.version)), &decision(c, 2)).await;
    assert!(matches!(r, Err(StoreError::Conflict { .. })), "{s:?}: b's stale finish gave {r:?}");
    s.release_lease(c, "b").await.expect("release");
    s.finish_evaluation(c, "c", None, &decision(c, 3)).await.expect("finish without a lease");
    assert_eq!(s.decisions(Some(c), 10).await.expect("decisions").len(), 2);
    assert!(s.acquire_lease(c, "c", t + Duration::seconds(62), 60).await.expect("lease"), "{s:?}: lease not free");
    s.release_lease(c, "c").await.expect("release");
}

/// Every single-store check, in turn, on one fresh store.
pub async fn run_all(s: &dyn Store) {
    configs_round_trip(s).await;
    try_claim_respects_cap(s).await;
    duplicate_claim_is_conflict(s).await;
    update_is_compare_and_set(s).await;
    illegal_transition_refused(s).await;
    list_filters_and_order(s).await;
    control_is_compare_and_set(s).await;
    demand_history_round_trips(s).await;
    lease_exclusive_and_expires(s).await;
    evaluation_lease_is_exclusive(s).await;
    evaluation_snapshot_content(s).await;
    finish_evaluation_writes_and_frees(s).await;
    finish_evaluation_with_stale_version(s).await;
    finish_evaluation_after_losing_the_lease(s).await;
    decisions_newest_first(s).await;
    rotation_link_round_trips(s).await;
    suspects_keep_first_seen(s).await;
    change_feed_reports_claims(s).await;
}

/// 50 tasks claim at once on one provider config with cap 10: exactly 10 win, and exactly 10 are stored.
pub async fn concurrent_claims_respect_cap(s: Arc<dyn Store>) {
    let pc = "race-pc";
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                s.try_claim(&claim(&format!("race-{n:02}"), "race-asc", pc, t0()), 10).await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.expect("task").expect("try_claim") {
            won += 1;
        }
    }
    assert_eq!(won, 10, "{s:?}: {won} of 50 concurrent claims won with cap 10");
    assert_eq!(s.count_owned(pc).await.expect("count"), 10);
    let listed =
        s.list(&InstanceFilter { provider_config: Some(pc.into()), ..Default::default() }).await.expect("list");
    assert_eq!(listed.len(), 10, "{s:?}: {} claims stored with cap 10", listed.len());
}

/// 20 tasks update one claim from the same read version: exactly one wins, the rest conflict.
pub async fn concurrent_updates_one_wins(s: Arc<dyn Store>) {
    let a = claim("upd-race", "upd-asc", "upd-pc", t0());
    assert!(s.try_claim(&a, 1).await.expect("claim"));
    let read = must_get(s.as_ref(), &a.id).await;
    let tasks: Vec<_> = (0..20u32)
        .map(|n| {
            let s = s.clone();
            let mut w = read.clone();
            w.attempts = n + 1;
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                (n + 1, s.update(&w).await)
            })
        })
        .collect();
    let mut winners = vec![];
    for t in tasks {
        match t.await.expect("task") {
            (n, Ok(_)) => winners.push(n),
            (_, Err(StoreError::Conflict { .. })) => {}
            (_, Err(e)) => panic!("{s:?}: concurrent update failed otherwise: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{s:?}: {} of 20 updates from one version won", winners.len());
    let got = must_get(s.as_ref(), &a.id).await;
    assert_eq!((got.version, got.attempts), (2, winners[0]), "{s:?}: stored claim is not the winner's");
}

/// Tasks flip one claim between `requested` and `creating` concurrently (retrying on conflict): the
/// change feed (where the backend has one) reports the moves in commit order, so each change starts
/// where the previous one ended.
pub async fn concurrent_changes_feed_in_order(s: Arc<dyn Store>) {
    let Some(mut rx) = s.subscribe() else {
        return;
    };
    let a = claim("feed-race", "feed-race-asc", "feed-race-pc", t0());
    assert!(s.try_claim(&a, 1).await.expect("claim"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let id = a.id.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while done < 25 {
                    let cur = must_get(s.as_ref(), &id).await;
                    let to = match cur.state {
                        InstanceState::Requested => InstanceState::Creating,
                        _ => InstanceState::Requested,
                    };
                    match s.update(&moved(&cur, to, t0()).expect("move")).await {
                        Ok(_) => done += 1,
                        Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
                        Err(e) => panic!("{s:?}: flip failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let mut last: Option<InstanceState> = None;
    let mut seen = 0;
    while let Ok(c) = rx.try_recv() {
        if c.claim != a.id {
            continue;
        }
        assert_eq!(c.old_state, last, "{s:?}: change {seen} does not start where the previous one ended");
        last = Some(c.new_state);
        seen += 1;
    }
    assert_eq!(seen, 1 + 8 * 25, "{s:?}: change feed reported {seen} changes");
    assert_eq!(last, Some(must_get(s.as_ref(), &a.id).await.state), "{s:?}: feed ends elsewhere than the claim");
}
