//! Webhooks: the two ways in (ARCHITECTURE.md "Webhooks"), authenticated **before** the body is
//! parsed, body size limited. A webhook only ever *triggers* an evaluation; the evaluation reads the
//! truth from Kasm, so a forged or lost event can never create or destroy anything by itself.
//!
//! 1. Signed events: `X-Kasm-Autoscale-Timestamp: <unix seconds>` and
//!    `X-Kasm-Autoscale-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, 300 s window,
//!    constant-time comparison. Body: `{"type": "session.created" | "session.destroyed" | ...,
//!    "autoscale_config"?, "zone_id"?, "server_pool_id"?}`.
//! 2. Kasm's external log shipping with the Splunk protocol: `POST /services/collector[/event[/1.0]]`,
//!    `Authorization: Splunk <token>`, a body of concatenated `{"event": ...}` objects. Session
//!    create/destroy log events trigger an evaluation; everything else is acknowledged and ignored.
//!
//! [`handle`] is a plain function over the request, used by the Lambda Function URL and the daemon.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

use crate::config::ConfigSet;

/// Header carrying the signing timestamp.
pub const TIMESTAMP_HEADER: &str = "x-kasm-autoscale-timestamp";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-kasm-autoscale-signature";
/// Seconds a signature stays valid either side of now.
pub const REPLAY_WINDOW_SECONDS: i64 = 300;
/// Default body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// A webhook request, whatever carried it (Function URL event or the daemon's listener).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path (no query).
    pub path: &'a str,
    /// Headers, names in any case.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The shared secrets the two ways in are checked against (`None` = that way is closed).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// HMAC key of signed events.
    pub hmac_secret: Option<SecretString>,
    /// Splunk HEC token.
    pub hec_token: Option<SecretString>,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// Bearer token the daemon's `/metrics` (and status) require (`None` = open to whoever reaches
    /// the listener, which binds to loopback by default).
    pub metrics_token: Option<SecretString>,
    /// Signatures already accepted (replay protection) and the rejection log limiter; shared by clones.
    pub guard: Arc<Guard>,
}

impl Keys {
    /// The body limit in force (the default when unset).
    pub fn body_limit(&self) -> usize {
        if self.max_body_bytes == 0 { DEFAULT_MAX_BODY_BYTES } else { self.max_body_bytes }
    }
}

/// Most signatures remembered within the replay window; beyond it signed events are refused (429)
/// until old ones age out, so the memory is bounded whatever the sender does.
pub const MAX_REMEMBERED_SIGNATURES: usize = 10_000;
/// One summary line per this many seconds for rejected webhooks (the first one is logged at once).
pub const REJECTION_LOG_INTERVAL_SECONDS: i64 = 60;

/// Per-process webhook state: the signatures accepted within the replay window, and the rejection
/// log limiter. In Lambda each execution environment has its own (a replay reaching another one
/// triggers one more evaluation, which reads Kasm's truth and changes nothing by itself).
#[derive(Debug, Default)]
pub struct Guard {
    seen: Mutex<HashMap<String, i64>>,
    rejections: Mutex<Rejections>,
}

#[derive(Debug, Default)]
struct Rejections {
    since: Option<i64>,
    suppressed: BTreeMap<&'static str, u64>,
}

impl Guard {
    /// Remembers `signature` (sent at `ts`); refused when it was seen within the window (a replay) or
    /// too many are remembered.
    fn first_use(&self, signature: &str, ts: i64, now: i64) -> Result<(), (u16, &'static str)> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(signature) {
            return Err((401, "signature already used (replay)"));
        }
        if seen.len() >= MAX_REMEMBERED_SIGNATURES {
            seen.retain(|_, t| now.abs_diff(*t) <= REPLAY_WINDOW_SECONDS as u64);
            if seen.len() >= MAX_REMEMBERED_SIGNATURES {
                return Err((429, "too many signed events within the replay window"));
            }
        }
        seen.insert(signature.to_string(), ts);
        Ok(())
    }

    /// Logs a rejection: the first of an interval at once, the rest as one summary line when the
    /// interval is over (counted in `/metrics` either way).
    fn log_rejection(&self, path: &str, reason: &'static str, now: i64) {
        let mut r = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
        match r.since {
            Some(since) if now.saturating_sub(since) < REJECTION_LOG_INTERVAL_SECONDS => {
                *r.suppressed.entry(reason).or_default() += 1;
            }
            _ => {
                if !r.suppressed.is_empty() {
                    let total: u64 = r.suppressed.values().sum();
                    tracing::warn!(count = total, by_reason = ?r.suppressed, "more webhooks rejected in the last interval");
                    r.suppressed.clear();
                }
                r.since = Some(now);
                tracing::warn!(path = %crate::input::echo(path), reason, "webhook rejected (further rejections in the next 60 s are summarised)");
            }
        }
    }
}

/// Which configs to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Trigger {
    /// Nothing (acknowledged and ignored).
    None,
    /// Every autoscale config.
    All,
    /// These autoscale configs.
    Configs(BTreeSet<String>),
}

impl Trigger {
    /// Both triggers' configs (for coalescing a burst of events into one evaluation).
    pub fn merge(self, other: Trigger) -> Trigger {
        match (self, other) {
            (Trigger::All, _) | (_, Trigger::All) => Trigger::All,
            (Trigger::None, x) | (x, Trigger::None) => x,
            (Trigger::Configs(mut x), Trigger::Configs(y)) => {
                x.extend(y);
                Trigger::Configs(x)
            }
        }
    }
}

/// The answer, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// The evaluation to trigger (only ever [`Trigger::None`] unless authenticated and well-formed).
    pub trigger: Trigger,
}

impl Response {
    fn reject(status: u16, text: &str) -> Self {
        Response {
            status,
            body: serde_json::json!({ "text": text, "code": status }).to_string(),
            trigger: Trigger::None,
        }
    }
}

/// Is `path` the Splunk HEC endpoint?
pub fn is_hec_path(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/services/collector" | "/services/collector/event" | "/services/collector/event/1.0"
    )
}

/// What can be checked from the method, path and headers alone, before any of the body is read: the
/// method, the HEC token (complete authentication), or the signed-event headers and timestamp window
/// (the signature itself covers the body). A listener calls this first and reads the body only if
/// it passes, and then at most [`Keys::body_limit`] bytes.
pub fn preauthenticate(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    keys: &Keys,
    now: DateTime<Utc>,
) -> Result<(), Response> {
    let req = Request { method, path, headers: headers.to_vec(), body: &[] };
    let checked = if method != "POST" {
        Err((405, "Method not allowed"))
    } else if is_hec_path(path) {
        check_hec(&req, keys).map_err(|why| (401, why))
    } else {
        signed_headers(&req, keys, now).map(|_| ()).map_err(|why| (401, why))
    };
    checked.map_err(|(status, why)| {
        keys.guard.log_rejection(path, why, now.timestamp());
        Response::reject(status, why)
    })
}

/// Authenticates, then parses, a webhook request.
pub fn handle(req: &Request<'_>, keys: &Keys, configs: &ConfigSet, now: DateTime<Utc>) -> Response {
    if let Err(r) = preauthenticate(req.method, req.path, &req.headers, keys, now) {
        return r;
    }
    let reject = |status: u16, why: &'static str| {
        keys.guard.log_rejection(req.path, why, now.timestamp());
        Response::reject(status, why)
    };
    let hec = is_hec_path(req.path);
    // Authenticate first: nothing of the body is looked at before this.
    if !hec && let Err(why) = check_signature(req, keys, now) {
        return reject(401, why);
    }
    if req.body.len() > keys.body_limit() {
        return reject(413, "Body too large");
    }
    let parsed = if hec { parse_hec(req.body, configs) } else { parse_signed(req.body, configs) };
    match parsed {
        Ok(trigger) => {
            // A signed event is used once: the same signature again within the window is a replay.
            if !hec && let Some(sig) = req.header(SIGNATURE_HEADER) {
                let ts = req.header(TIMESTAMP_HEADER).and_then(|t| t.trim().parse().ok()).unwrap_or_default();
                if let Err((status, why)) = keys.guard.first_use(sig.trim(), ts, now.timestamp()) {
                    return reject(status, why);
                }
            }
            Response { status: 200, body: serde_json::json!({"text": "Success", "code": 0}).to_string(), trigger }
        }
        Err(why) => {
            keys.guard.log_rejection(req.path, "malformed body", now.timestamp());
            Response::reject(400, &why)
        }
    }
}

fn check_hec(req: &Request<'_>, keys: &Keys) -> Result<(), &'static str> {
    let Some(token) = &keys.hec_token else { return Err("Splunk HEC endpoint is not enabled") };
    let Some(auth) = req.header("authorization") else { return Err("Token is required") };
    let Some(given) = auth.strip_prefix("Splunk ") else { return Err("Invalid authorization") };
    if bool::from(given.trim().as_bytes().ct_eq(token.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err("Invalid token")
    }
}

/// The signature header value for `timestamp` and `body` (for senders and tests).
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in tag {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The signed-event headers, checked without the body: enabled, present, a timestamp within the
/// window (overflow-safe: any `i64` is compared without wrapping), a signature of the right form.
fn signed_headers<'r>(
    req: &'r Request<'_>,
    keys: &'r Keys,
    now: DateTime<Utc>,
) -> Result<(&'r SecretString, i64, &'r str), &'static str> {
    let Some(secret) = &keys.hmac_secret else { return Err("signed webhooks are not enabled") };
    let ts = req.header(TIMESTAMP_HEADER).ok_or("missing timestamp header")?;
    let sig = req.header(SIGNATURE_HEADER).ok_or("missing signature header")?.trim();
    let ts: i64 = ts.trim().parse().map_err(|_| "timestamp is not a number")?;
    if now.timestamp().abs_diff(ts) > REPLAY_WINDOW_SECONDS as u64 {
        return Err("timestamp outside the 300 s window");
    }
    let well_formed = sig.len() == 71
        && sig.starts_with("sha256=")
        && sig[7..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err("signature is not sha256=<64 lowercase hex digits>");
    }
    Ok((secret, ts, sig))
}

fn check_signature(req: &Request<'_>, keys: &Keys, now: DateTime<Utc>) -> Result<(), &'static str> {
    let (secret, ts, sig) = signed_headers(req, keys, now)?;
    let expected = sign(secret, ts, req.body);
    if bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) { Ok(()) } else { Err("bad signature") }
}

/// Event types of signed webhooks that trigger an evaluation.
const SESSION_TYPES: &[&str] = &["session.created", "session.destroyed", "session.started", "session.stopped"];

fn parse_signed(body: &[u8], configs: &ConfigSet) -> Result<Trigger, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("body must be a JSON object")?;
    let ty = obj.get("type").and_then(|t| t.as_str()).ok_or("field type: missing or not a string")?;
    if !SESSION_TYPES.contains(&ty) {
        return Ok(Trigger::None);
    }
    Ok(scope_of(obj, configs))
}

fn parse_hec(body: &[u8], configs: &ConfigSet) -> Result<Trigger, String> {
    let mut out = Trigger::None;
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    let mut n = 0;
    for item in stream {
        let v = item.map_err(|e| format!("event {n}: not JSON: {e}"))?;
        let obj = v.as_object().ok_or_else(|| format!("event {n}: not a JSON object"))?;
        let event = obj.get("event").ok_or_else(|| format!("event {n}: field event is missing"))?;
        n += 1;
        if is_session_log(event) {
            let t = match event {
                serde_json::Value::Object(e) => scope_of(e, configs),
                _ => Trigger::All,
            };
            out = out.merge(t);
        }
    }
    if n == 0 {
        return Err("no events in body".into());
    }
    Ok(out)
}

/// Our reading of Kasm's log lines (their text is not a public contract): a session lifecycle line
/// names a kasm (`kasm_id`) or says a session/kasm was created, started, stopped, destroyed or deleted.
fn is_session_log(event: &serde_json::Value) -> bool {
    let text = match event {
        serde_json::Value::String(s) => s.to_ascii_lowercase(),
        serde_json::Value::Object(o) => {
            if o.contains_key("kasm_id") {
                return true;
            }
            o.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_ascii_lowercase()
        }
        _ => return false,
    };
    let subject = text.contains("kasm") || text.contains("session");
    let verb = ["created", "destroyed", "deleted", "started", "stopped", "terminated"].iter().any(|w| text.contains(w));
    subject && verb
}

fn scope_of(obj: &serde_json::Map<String, serde_json::Value>, configs: &ConfigSet) -> Trigger {
    let s = |k: &str| obj.get(k).and_then(|v| v.as_str());
    if let Some(name) = s("autoscale_config") {
        return if configs.autoscale(name).is_some() {
            Trigger::Configs([name.to_string()].into())
        } else {
            Trigger::None
        };
    }
    let zone = s("zone_id");
    let pool = s("server_pool_id").or_else(|| s("pool_id"));
    if zone.is_none() && pool.is_none() {
        return Trigger::All;
    }
    let hit: BTreeSet<String> = configs
        .autoscale_configs
        .iter()
        .filter(|c| zone.is_none_or(|z| z == c.zone_id) && pool.is_none_or(|p| p == c.server_pool_id))
        .map(|c| c.autoscale_config_name.clone())
        .collect();
    if hit.is_empty() { Trigger::None } else { Trigger::Configs(hit) }
}

#[cfg(test)]
mod tests;
