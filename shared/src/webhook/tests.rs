use super::*;
use crate::config::AutoscaleConfig;
use chrono::TimeZone;

fn configs() -> ConfigSet {
    let mut a = AutoscaleConfig::docker_agent("east", "p");
    a.zone_id = "z1".into();
    let mut b = AutoscaleConfig::docker_agent("west", "p");
    b.zone_id = "z2".into();
    ConfigSet { autoscale_configs: vec![a, b], ..Default::default() }
}

fn keys() -> Keys {
    Keys {
        hmac_secret: Some(SecretString::from("hook-secret".to_string())),
        hec_token: Some(SecretString::from("hec-token-123".to_string())),
        max_body_bytes: 1024,
        ..Default::default()
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn signed<'a>(body: &'a [u8], ts: i64, sig: &str) -> Request<'a> {
    Request {
        method: "POST",
        path: "/",
        headers: vec![
            ("X-Kasm-Autoscale-Timestamp".into(), ts.to_string()),
            ("X-Kasm-Autoscale-Signature".into(), sig.to_string()),
        ],
        body,
    }
}

#[test]
fn a_signed_session_event_triggers_its_config() {
    let body = br#"{"type":"session.created","zone_id":"z2"}"#;
    let ts = now().timestamp();
    let sig = sign(keys().hmac_secret.as_ref().unwrap(), ts, body);
    let r = handle(&signed(body, ts, &sig), &keys(), &configs(), now());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.trigger, Trigger::Configs(["west".to_string()].into()));
}

#[test]
fn other_signed_events_are_acknowledged_and_ignored() {
    let body = br#"{"type":"user.login"}"#;
    let ts = now().timestamp();
    let sig = sign(keys().hmac_secret.as_ref().unwrap(), ts, body);
    let r = handle(&signed(body, ts, &sig), &keys(), &configs(), now());
    assert_eq!((r.status, r.trigger), (200, Trigger::None));
}

#[test]
fn bad_signature_old_timestamp_or_missing_headers_are_401_and_trigger_nothing() {
    let body = br#"{"type":"session.created"}"#;
    let ts = now().timestamp();
    let good = sign(keys().hmac_secret.as_ref().unwrap(), ts, body);
    let wrong_key = sign(&SecretString::from("other".to_string()), ts, body);
    for (req, why) in [
        (signed(body, ts, &wrong_key), "bad signature"),
        (signed(br#"{"type":"session.destroyed"}"#, ts, &good), "bad signature"),
        (signed(body, ts - 301, &sign(keys().hmac_secret.as_ref().unwrap(), ts - 301, body)), "window"),
        (signed(body, ts + 301, &sign(keys().hmac_secret.as_ref().unwrap(), ts + 301, body)), "window"),
        (Request { method: "POST", path: "/", headers: vec![], body }, "missing"),
    ] {
        let r = handle(&req, &keys(), &configs(), now());
        assert_eq!(r.status, 401, "{why}: {}", r.body);
        assert_eq!(r.trigger, Trigger::None);
        assert!(!r.body.contains("hook-secret"));
    }
}

#[test]
fn authentication_comes_before_parsing() {
    // A malformed body with a bad signature is 401, not 400: the body is not looked at.
    let r = handle(&signed(b"{not json", now().timestamp(), "sha256=00"), &keys(), &configs(), now());
    assert_eq!(r.status, 401);
}

#[test]
fn malformed_signed_bodies_are_400() {
    for body in [&b"{not json"[..], br#"[1,2]"#, br#"{"no_type":1}"#] {
        let ts = now().timestamp();
        let sig = sign(keys().hmac_secret.as_ref().unwrap(), ts, body);
        let r = handle(&signed(body, ts, &sig), &keys(), &configs(), now());
        assert_eq!((r.status, &r.trigger), (400, &Trigger::None), "{}", r.body);
    }
}

#[test]
fn oversized_bodies_are_413() {
    let body = vec![b' '; 2048];
    let ts = now().timestamp();
    let sig = sign(keys().hmac_secret.as_ref().unwrap(), ts, &body);
    assert_eq!(handle(&signed(&body, ts, &sig), &keys(), &configs(), now()).status, 413);
}

fn hec<'a>(body: &'a [u8], auth: &str) -> Request<'a> {
    Request {
        method: "POST",
        path: "/services/collector/event",
        headers: vec![("Authorization".into(), auth.into())],
        body,
    }
}

#[test]
fn hec_batches_of_session_logs_trigger_an_evaluation() {
    let body = br#"{"event":{"message":"User logged in","user":"a"}}
{"event":{"message":"Kasm created","kasm_id":"k1","zone_id":"z1"}} {"event":"session destroyed for user b"}"#;
    let r = handle(&hec(body, "Splunk hec-token-123"), &keys(), &configs(), now());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, r#"{"text":"Success","code":0}"#);
    assert_eq!(r.trigger, Trigger::All, "a string session event has no scope: every config");
}

#[test]
fn hec_events_without_session_lines_are_ignored() {
    let body = br#"{"event":{"message":"Health check ok"}}{"event":"GET /api/__healthcheck"}"#;
    let r = handle(&hec(body, "Splunk hec-token-123"), &keys(), &configs(), now());
    assert_eq!((r.status, r.trigger), (200, Trigger::None));
}

#[test]
fn hec_auth_is_checked_first() {
    for auth in ["Splunk wrong", "Bearer hec-token-123", ""] {
        let r = handle(&hec(br#"{"event":{"kasm_id":"x"}}"#, auth), &keys(), &configs(), now());
        assert_eq!((r.status, &r.trigger), (401, &Trigger::None), "{auth}");
        assert!(!r.body.contains("hec-token-123"));
    }
}

#[test]
fn malformed_hec_bodies_are_400() {
    for body in [&b"{\"event\":1} {broken"[..], br#"{"no_event":1}"#, b"", b"[1]"] {
        let r = handle(&hec(body, "Splunk hec-token-123"), &keys(), &configs(), now());
        assert_eq!((r.status, &r.trigger), (400, &Trigger::None), "{:?}: {}", String::from_utf8_lossy(body), r.body);
    }
}

#[test]
fn closed_ways_in_reject_everything() {
    let closed = Keys::default();
    let r = handle(&hec(br#"{"event":{"kasm_id":"x"}}"#, "Splunk "), &closed, &configs(), now());
    assert_eq!(r.status, 401);
    let r = handle(&signed(b"{}", now().timestamp(), "sha256="), &closed, &configs(), now());
    assert_eq!(r.status, 401);
}

#[test]
fn only_post_is_accepted() {
    let mut r = hec(b"", "Splunk hec-token-123");
    r.method = "GET";
    assert_eq!(handle(&r, &keys(), &configs(), now()).status, 405);
}

/// Issue 21 point 5: a valid signed request replayed within the window is refused; the first use
/// still triggers.
#[test]
fn a_replayed_signed_request_is_refused() {
    let k = keys();
    let body = br#"{"type":"session.created","zone_id":"z2"}"#;
    let ts = now().timestamp();
    let sig = sign(k.hmac_secret.as_ref().unwrap(), ts, body);
    let first = handle(&signed(body, ts, &sig), &k, &configs(), now());
    assert_eq!(first.status, 200, "{}", first.body);
    let again = handle(&signed(body, ts, &sig), &k.clone(), &configs(), now());
    assert_eq!((again.status, again.trigger), (401, Trigger::None), "{}", again.body);
    assert!(again.body.contains("replay"), "{}", again.body);
    // A fresh signature (new timestamp) of the same event is fine.
    let sig2 = sign(k.hmac_secret.as_ref().unwrap(), ts + 1, body);
    assert_eq!(handle(&signed(body, ts + 1, &sig2), &k, &configs(), now()).status, 200);
}

/// Timestamps at the ends of `i64` neither wrap into the window nor panic (they used to: now − 2⁶³).
#[test]
fn extreme_timestamps_are_outside_the_window() {
    let body = br#"{"type":"session.created"}"#;
    for ts in [i64::MIN, i64::MIN + 1, i64::MAX, now().timestamp() - 301, now().timestamp() + 301] {
        let sig = sign(keys().hmac_secret.as_ref().unwrap(), ts, body);
        let r = handle(&signed(body, ts, &sig), &keys(), &configs(), now());
        assert_eq!(r.status, 401, "{ts}: {}", r.body);
        assert!(r.body.contains("window"), "{ts}: {}", r.body);
    }
}

/// The headers alone decide an unsigned or badly signed request (no body needed); a malformed
/// signature header is refused before any HMAC is computed.
#[test]
fn preauthentication_needs_no_body() {
    let k = keys();
    let ts = now().timestamp();
    let h = |sig: &str| {
        vec![
            ("X-Kasm-Autoscale-Timestamp".to_string(), ts.to_string()),
            ("X-Kasm-Autoscale-Signature".to_string(), sig.to_string()),
        ]
    };
    assert_eq!(preauthenticate("POST", "/", &[], &k, now()).unwrap_err().status, 401);
    assert_eq!(preauthenticate("GET", "/", &h("x"), &k, now()).unwrap_err().status, 405);
    assert!(preauthenticate("POST", "/", &h("sha256=zz"), &k, now()).unwrap_err().body.contains("64 lowercase hex"));
    assert!(preauthenticate("POST", "/", &h(&format!("sha256={}", "a".repeat(64))), &k, now()).is_ok());
    let hec = vec![("Authorization".to_string(), "Splunk hec-token-123".to_string())];
    assert!(preauthenticate("POST", "/services/collector", &hec, &k, now()).is_ok());
    assert_eq!(preauthenticate("POST", "/services/collector", &[], &k, now()).unwrap_err().status, 401);
}

/// A flood of rejections is one log line per interval plus a summary, not one line each.
#[test]
fn rejections_are_logged_once_per_interval() {
    let k = keys();
    let t0 = now().timestamp();
    for i in 0..1000 {
        k.guard.log_rejection("/", "bad signature", t0 + i % 30);
    }
    {
        let r = k.guard.rejections.lock().unwrap();
        assert_eq!(r.since, Some(t0));
        assert_eq!(r.suppressed.get("bad signature"), Some(&999));
    }
    // The next interval: the summary is written and counting starts again.
    k.guard.log_rejection("/", "bad signature", t0 + REJECTION_LOG_INTERVAL_SECONDS);
    let r = k.guard.rejections.lock().unwrap();
    assert_eq!(r.since, Some(t0 + REJECTION_LOG_INTERVAL_SECONDS));
    assert!(r.suppressed.is_empty());
}

/// The replay memory is bounded: beyond the limit, with every entry still inside the window, signed
/// events are refused (429) instead of growing it; entries out of the window make room again.
#[test]
fn the_replay_memory_is_bounded() {
    let g = Guard::default();
    let t0 = now().timestamp();
    for i in 0..MAX_REMEMBERED_SIGNATURES {
        g.first_use(&format!("sig-{i}"), t0, t0).unwrap();
    }
    assert_eq!(g.first_use("one-more", t0, t0).unwrap_err().0, 429);
    assert!(g.first_use("later", t0 + 400, t0 + 400).is_ok(), "old entries are pruned");
    assert_eq!(g.seen.lock().unwrap().len(), 1);
}
