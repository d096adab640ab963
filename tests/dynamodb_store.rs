//! The DynamoDB store against moto: the whole store conformance suite on a fresh table per test, a
//! restart (new client, same table), pagination, and the `max_instances` cap under concurrent claims.

use chrono::{Duration, TimeZone, Utc};
use integration_tests::moto::Moto;
use shared::model::{ClaimId, Instance, InstanceState, OsFamily};
use shared::store::dynamodb::{DynamoDbStore, create_table};
use shared::store::{DecisionRecord, InstanceFilter, Store, conformance, moved};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh, uniquely named table (tests share one moto server).
async fn fresh(moto: &Moto) -> (aws_sdk_dynamodb::Client, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let name = format!(
        "store-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    create_table(&client, &name).await.expect("create table");
    (client, name)
}

async fn store(moto: &Moto) -> DynamoDbStore {
    let (client, table) = fresh(moto).await;
    DynamoDbStore::new(client, table)
}

fn claim(id: &str, asc: &str, pc: &str, secs: i64) -> Instance {
    let t = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() + Duration::seconds(secs);
    Instance::new_claim(ClaimId(id.into()), asc, pc, "aws", OsFamily::Linux, t)
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let moto = Moto::start();
    let s = store(&moto).await;
    assert!(s.subscribe().is_none(), "the change feed of DynamoDB is its stream, not in-process");
    conformance::run_all(&s).await;
}

// Serial moto: its threaded server does not isolate concurrent transactions (see `start_serial`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_respect_cap() {
    let moto = Moto::start_serial();
    conformance::concurrent_claims_respect_cap(Arc::new(store(&moto).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_one_wins() {
    let moto = Moto::start_serial();
    conformance::concurrent_updates_one_wins(Arc::new(store(&moto).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_feed_in_order() {
    let moto = Moto::start();
    // No in-process feed: the check returns at once, but it must not fail either.
    conformance::concurrent_changes_feed_in_order(Arc::new(store(&moto).await)).await;
}

/// 30 claims at once with cap 7, from separate clients (as separate Lambdas would): exactly 7 win,
/// the counter says 7, and freeing one slot lets exactly one more in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_holds_under_thirty_concurrent_claims() {
    // Serial: moto's threaded server does not isolate concurrent transactions (see `start_serial`).
    let moto = Moto::start_serial();
    let (_, table) = fresh(&moto).await;
    let conf = moto.sdk_config().await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let s = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&conf), table.clone());
            tokio::spawn(async move { s.try_claim(&claim(&format!("c{i:02}"), "asc", "pc", i), 7).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.expect("task").expect("try_claim") {
            won += 1;
        }
    }
    let s = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&conf), table);
    assert_eq!(won, 7, "{won} of 30 concurrent claims won with cap 7");
    assert_eq!(s.count_owned("pc").await.unwrap(), 7);
    let live = s.list(&InstanceFilter::default()).await.unwrap();
    assert_eq!(live.len(), 7);

    let first = live[0].clone();
    let gone = s.update(&moved(&first, InstanceState::Deleted, Utc::now()).unwrap()).await.unwrap();
    assert_eq!(s.count_owned("pc").await.unwrap(), 6, "a finished claim frees its slot");
    // A late duplicate of the same write frees nothing more.
    assert!(s.update(&moved(&first, InstanceState::Deleted, Utc::now()).unwrap()).await.is_err());
    assert_eq!(s.count_owned("pc").await.unwrap(), 6);
    let mut again = gone.clone();
    again.end_reason = Some("noted later".into());
    s.update(&again).await.expect("a write that keeps `deleted`");
    assert_eq!(s.count_owned("pc").await.unwrap(), 6, "a write that keeps `deleted` freed another slot");

    let tasks: Vec<_> = (30..40)
        .map(|i| {
            let s = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&conf), s.table().to_string());
            tokio::spawn(async move { s.try_claim(&claim(&format!("c{i:02}"), "asc", "pc", i), 7).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.expect("task").expect("try_claim") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "one freed slot let {won} claims in");
    assert_eq!(s.count_owned("pc").await.unwrap(), 7);
}

/// A new client on the same table (a Lambda cold start) sees everything the first one wrote.
#[tokio::test]
async fn a_new_client_sees_everything() {
    let moto = Moto::start();
    let (client, table) = fresh(&moto).await;
    let a = DynamoDbStore::new(client, table.clone());
    assert!(a.try_claim(&claim("r1", "asc", "pc", 0), 5).await.unwrap());
    assert!(a.try_claim(&claim("r2", "asc", "pc", 1), 5).await.unwrap());
    let r1 = a.get(&ClaimId("r1".into())).await.unwrap().unwrap();
    let r1 = a.update(&moved(&r1, InstanceState::Creating, Utc::now()).unwrap()).await.unwrap();
    let ctl = shared::engine::ControlState { consecutive_failures: 3, ..Default::default() };
    a.put_control("asc", &ctl, 0).await.unwrap();
    assert!(a.acquire_lease("asc", "evaluator-1", Utc::now(), 300).await.unwrap());
    let first_seen = a.mark_suspect("i-0abc", Utc::now()).await.unwrap();
    let mut configs = shared::config::ConfigSet::default();
    configs.settings.deployment_id = "restart".into();
    a.save_configs(&configs).await.unwrap();
    let rec = DecisionRecord {
        at: Utc::now(),
        trigger: "schedule".into(),
        plan: shared::engine::Plan {
            autoscale_config: "asc".into(),
            create: 1,
            replacements: vec![],
            actions: vec![],
            request_downscale_at: None,
            reasons: vec!["below standby".into()],
            summary: Default::default(),
        },
    };
    a.record_decision(&rec).await.unwrap();
    drop(a);

    let b = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config().await), table);
    assert_eq!(b.get(&r1.id).await.unwrap(), Some(r1.clone()));
    let ids: Vec<_> = b.list(&InstanceFilter::default()).await.unwrap().into_iter().map(|i| i.id.0).collect();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(b.count_owned("pc").await.unwrap(), 2);
    let c = b.control("asc").await.unwrap();
    assert_eq!((c.value, c.version), (ctl, 1));
    assert!(!b.acquire_lease("asc", "evaluator-2", Utc::now(), 300).await.unwrap(), "the lease was lost");
    assert_eq!(b.mark_suspect("i-0abc", Utc::now() + Duration::minutes(5)).await.unwrap(), first_seen);
    assert_eq!(b.load_configs().await.unwrap(), Some(configs));
    assert_eq!(b.decisions(Some("asc"), 10).await.unwrap(), std::slice::from_ref(&rec));
    assert_eq!(b.decisions(None, 10).await.unwrap(), [rec]);
    // The cap counts what the first client claimed.
    assert!(b.try_claim(&claim("r3", "asc", "pc", 2), 3).await.unwrap());
    assert!(!b.try_claim(&claim("r4", "asc", "pc", 3), 3).await.unwrap());
}

/// With two items per page, listing claims and reading decisions follow `LastEvaluatedKey` to the end.
#[tokio::test]
async fn reads_follow_every_page() {
    let moto = Moto::start();
    let (client, table) = fresh(&moto).await;
    let s = DynamoDbStore::new(client, table).with_page_size(2);
    for i in 0..9 {
        // Counters of three provider configs sit between the claims in the partition.
        assert!(s.try_claim(&claim(&format!("p{i}"), "asc", &format!("pc{}", i % 3), 100 - i), 10).await.unwrap());
    }
    let got = s.list(&InstanceFilter { include_deleted: true, ..Default::default() }).await.unwrap();
    let ids: Vec<_> = got.iter().map(|i| i.id.0.as_str()).collect();
    assert_eq!(ids, ["p8", "p7", "p6", "p5", "p4", "p3", "p2", "p1", "p0"], "every page, oldest first");
    for pc in ["pc0", "pc1", "pc2"] {
        assert_eq!(s.count_owned(pc).await.unwrap(), 3);
    }
    let snap = s.begin_evaluation("asc", "pc1", "h", Utc::now(), 60).await.unwrap().expect("free lease");
    assert_eq!(snap.instances, got, "an evaluation reads every page of claims");
    assert_eq!(snap.owned_total, 3, "and the counter wherever its page is");
    s.release_lease("asc", "h").await.unwrap();

    for n in 0..7 {
        let rec = DecisionRecord {
            at: Utc::now(),
            trigger: format!("t{n}"),
            plan: shared::engine::Plan {
                autoscale_config: "asc".into(),
                create: n,
                replacements: vec![],
                actions: vec![],
                request_downscale_at: None,
                reasons: vec![],
                summary: Default::default(),
            },
        };
        s.record_decision(&rec).await.unwrap();
    }
    let triggers = |v: Vec<DecisionRecord>| v.into_iter().map(|d| d.trigger).collect::<Vec<_>>();
    assert_eq!(triggers(s.decisions(None, 100).await.unwrap()), ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]);
    assert_eq!(triggers(s.decisions(Some("asc"), 5).await.unwrap()), ["t6", "t5", "t4", "t3", "t2"]);
}

/// Finished claims and decisions carry a TTL (moto never reaps them: checked on the raw items).
#[tokio::test]
async fn finished_claims_and_decisions_expire() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let moto = Moto::start();
    let (client, table) = fresh(&moto).await;
    let s = DynamoDbStore::new(client.clone(), table.clone());
    assert!(s.try_claim(&claim("t1", "asc", "pc", 0), 5).await.unwrap());
    let raw = |sk: &str| {
        let (client, table) = (client.clone(), table.clone());
        let sk = sk.to_string();
        async move {
            let key = [("pk", "claims".to_string()), ("sk", sk)].map(|(k, v)| (k.to_string(), AttributeValue::S(v)));
            client.get_item().table_name(table).set_key(Some(key.into())).send().await.unwrap().item.unwrap()
        }
    };
    let days_kept = |item: &std::collections::HashMap<String, AttributeValue>| {
        let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
        (ttl - Utc::now().timestamp()) / 86_400
    };
    assert!(!raw("claim#t1").await.contains_key("ttl"), "a live claim must not expire");
    let t1 = s.get(&ClaimId("t1".into())).await.unwrap().unwrap();
    s.update(&moved(&t1, InstanceState::Deleted, Utc::now()).unwrap()).await.unwrap();
    let days = days_kept(&raw("claim#t1").await);
    assert!((2..=3).contains(&days), "finished claim kept {days} days");

    let rec = DecisionRecord {
        at: Utc::now(),
        trigger: "schedule".into(),
        plan: shared::engine::Plan {
            autoscale_config: "asc".into(),
            create: 0,
            replacements: vec![],
            actions: vec![],
            request_downscale_at: None,
            reasons: vec![],
            summary: Default::default(),
        },
    };
    s.record_decision(&rec).await.unwrap();
    for pk in ["decisions", "decisions#asc"] {
        let items = client
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        assert_eq!(items.len(), 1, "{pk}");
        let days = days_kept(&items[0]);
        assert!((13..=14).contains(&days), "decision under {pk} kept {days} days");
    }

    let table_ttl = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    let d = table_ttl.time_to_live_description().unwrap();
    assert_eq!(d.attribute_name(), Some("ttl"));
}

/// DynamoDB cancels a transaction that races another on the same item with `TransactionConflict`
/// (moto never does: it has no such isolation). Such a cancellation says nothing about the cap, so the
/// store retries it; a failed condition in the same answer is final.
#[tokio::test]
async fn transaction_conflicts_are_retried_and_condition_failures_are_not() {
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::atomic::AtomicUsize;

    /// Answers TransactWriteItems: `conflicts` times TransactionConflict, then `then` (None = success).
    async fn fake(conflicts: usize, then: Option<&'static str>) -> (String, Arc<AtomicUsize>) {
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let count = count.clone();
            async move {
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                assert_eq!(target, "DynamoDB_20120810.TransactWriteItems");
                let n = count.fetch_add(1, Ordering::SeqCst);
                let code = if n < conflicts { Some("TransactionConflict") } else { then };
                let Some(code) = code else {
                    return (StatusCode::OK, "{}".to_string());
                };
                let body = serde_json::json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
                    "CancellationReasons": [{"Code": "None"}, {"Code": code, "Message": "cancelled"}],
                });
                (StatusCode::BAD_REQUEST, body.to_string())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }
    async fn store_at(endpoint: &str) -> DynamoDbStore {
        let conf = shared::http::aws::config_loader()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("testing", "testing", None, None, "fake"))
            .load()
            .await;
        DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&conf), "fake")
    }

    let (url, seen) = fake(3, None).await;
    assert!(store_at(&url).await.try_claim(&claim("x1", "asc", "pc", 0), 5).await.expect("claim"));
    assert_eq!(seen.load(Ordering::SeqCst), 4, "three conflicts, then the write");

    // The counter's condition failed on the second try: the cap is reached, no more retries.
    let (url, seen) = fake(1, Some("ConditionalCheckFailed")).await;
    assert!(!store_at(&url).await.try_claim(&claim("x2", "asc", "pc", 0), 5).await.expect("claim"));
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // Any other cancellation is a backend error naming the operation and the table.
    let (url, _) = fake(0, Some("ThrottlingError")).await;
    match store_at(&url).await.try_claim(&claim("x3", "asc", "pc", 0), 5).await {
        Err(shared::store::StoreError::Backend(m)) => {
            assert!(m.contains("TransactWriteItems") && m.contains("table fake"), "{m}")
        }
        other => panic!("a throttled transaction gave {other:?}"),
    }
}

/// A scheduled evaluation in steady state (nothing to create, destroy or record in a control record)
/// costs at most 3 DynamoDB requests per config: take the lease and read the control record, read
/// the claims and counters, write the decision and give the lease back.
#[tokio::test]
async fn steady_state_evaluation_makes_at_most_three_requests_per_config() {
    use integration_tests::evaluation::EvalWorld;
    use shared::clock::Clock;
    const CONFIGS: usize = 10;
    // Serial: configs are evaluated concurrently, and moto's threaded server fails concurrent
    // transactions now and then with a 500 (which the SDK sends again: not a request we make).
    let moto = Moto::start_serial();
    let w = EvalWorld::new(&moto, CONFIGS, 2).await;
    w.reach_steady_state().await;

    w.calls.reset();
    let out = w.evaluate().await;
    assert_eq!(out.len(), CONFIGS);
    for o in &out {
        let plan = o.result.as_ref().unwrap_or_else(|e| panic!("{}: {e}", o.autoscale_config));
        assert!(plan.create == 0 && plan.actions.is_empty(), "{}: not steady: {plan:?}", o.autoscale_config);
    }
    let by_op: std::collections::BTreeMap<_, _> =
        w.calls.by_operation().into_iter().map(|(op, s)| (op, s.count)).collect();
    let total = w.calls.total();
    assert!(total <= 3 * CONFIGS as u64, "{total} DynamoDB requests for {CONFIGS} configs: {by_op:?}");
    let errors: u64 = w.calls.by_operation().values().map(|s| s.server_errors).sum();
    assert_eq!(errors, 0, "{by_op:?}");
    // Every lease went back (another holder may take each config at once).
    for c in &w.ctx.configs.autoscale_configs {
        let name = &c.autoscale_config_name;
        assert!(w.ctx.store.acquire_lease(name, "evaluator-2", w.clock.now(), 60).await.unwrap(), "{name}: lease kept");
    }
    assert_eq!(w.ctx.store.decisions(None, 1000).await.unwrap().len(), 4 * CONFIGS, "one decision per evaluation");
}

/// With the lease held, an evaluation is one UpdateItem and one Query to begin and one
/// TransactWriteItems to finish, whether or not the control record is written (first write and later
/// ones); a lost lease costs the single writes instead, with their outcome.
#[tokio::test]
async fn begin_and_finish_take_three_requests() {
    use integration_tests::evaluation::DynamoCalls;
    use shared::engine::ControlState;
    let moto = Moto::start();
    let (_, table) = fresh(&moto).await;
    let sdk = moto.sdk_config().await;
    let calls = DynamoCalls::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build(),
    );
    let s = DynamoDbStore::new(client, table);
    assert!(s.try_claim(&claim("k1", "asc", "pc", 0), 5).await.unwrap());
    let counts = |calls: &DynamoCalls| {
        let v: Vec<(String, u64)> = calls.by_operation().into_iter().map(|(op, st)| (op, st.count)).collect();
        calls.reset();
        v
    };
    let ops = |v: &[(&str, u64)]| v.iter().map(|(op, n)| (op.to_string(), *n)).collect::<Vec<_>>();
    let t = Utc::now();
    calls.reset();

    let mut version = 0;
    for n in 1..=3u32 {
        let snap = s.begin_evaluation("asc", "pc", "h", t, 60).await.unwrap().expect("free lease");
        assert_eq!((snap.control.version, snap.instances.len(), snap.owned_total), (version, 1, 1));
        let ctl = ControlState { consecutive_failures: n, ..Default::default() };
        let write = (n != 2).then_some((&ctl, version));
        s.finish_evaluation("asc", "h", write, &decision_of("asc", n)).await.unwrap();
        assert_eq!(counts(&calls), ops(&[("Query", 1), ("TransactWriteItems", 1), ("UpdateItem", 1)]), "round {n}");
        if write.is_some() {
            version += 1;
        }
    }
    assert_eq!(s.control("asc").await.unwrap().version, 2);
    assert_eq!(s.decisions(Some("asc"), 10).await.unwrap().len(), 3);

    // Lost lease: the transaction is refused, the single writes follow (and b keeps its lease).
    s.begin_evaluation("asc", "pc", "a", t, 60).await.unwrap().expect("free lease");
    s.begin_evaluation("asc", "pc", "b", t + Duration::seconds(61), 60).await.unwrap().expect("expired lease");
    calls.reset();
    let ctl = ControlState { consecutive_failures: 9, ..Default::default() };
    s.finish_evaluation("asc", "a", Some((&ctl, 2)), &decision_of("asc", 4)).await.unwrap();
    assert_eq!(
        counts(&calls),
        ops(&[("TransactWriteItems", 2), ("UpdateItem", 2)]),
        "refused transaction, put_control, record_decision, release_lease"
    );
    assert_eq!(s.control("asc").await.unwrap().value, ctl);
    assert!(!s.acquire_lease("asc", "c", t + Duration::seconds(62), 60).await.unwrap(), "b lost its lease");
}

fn decision_of(asc: &str, n: u32) -> DecisionRecord {
    DecisionRecord {
        at: Utc::now(),
        trigger: format!("t{n}"),
        plan: shared::engine::Plan {
            autoscale_config: asc.into(),
            create: 0,
            replacements: vec![],
            actions: vec![],
            request_downscale_at: None,
            reasons: vec![],
            summary: Default::default(),
        },
    }
}
