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
