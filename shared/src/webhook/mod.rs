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
use std::collections::BTreeSet;
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

/// Authenticates, then parses, a webhook request.
pub fn handle(req: &Request<'_>, keys: &Keys, configs: &ConfigSet, now: DateTime<Utc>) -> Response {
    if req.method != "POST" {
        return Response::reject(405, "Method not allowed");
    }
    let limit = if keys.max_body_bytes == 0 { DEFAULT_MAX_BODY_BYTES } else { keys.max_body_bytes };
    let hec = is_hec_path(req.path);
    // Authenticate first: nothing of the body is looked at before this.
    let authed = if hec { check_hec(req, keys) } else { check_signature(req, keys, now) };
    if let Err(why) = authed {
        tracing::warn!(path = req.path, reason = why, "webhook rejected: authentication failed");
        return Response::reject(401, why);
    }
    if req.body.len() > limit {
        return Response::reject(413, "Body too large");
    }
    let parsed = if hec { parse_hec(req.body, configs) } else { parse_signed(req.body, configs) };
    match parsed {
        Ok(trigger) => {
            Response { status: 200, body: serde_json::json!({"text": "Success", "code": 0}).to_string(), trigger }
        }
        Err(why) => {
            tracing::warn!(path = req.path, reason = %why, "webhook rejected: malformed body");
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

fn check_signature(req: &Request<'_>, keys: &Keys, now: DateTime<Utc>) -> Result<(), &'static str> {
    let Some(secret) = &keys.hmac_secret else { return Err("signed webhooks are not enabled") };
    let ts = req.header(TIMESTAMP_HEADER).ok_or("missing timestamp header")?;
    let sig = req.header(SIGNATURE_HEADER).ok_or("missing signature header")?;
    let ts: i64 = ts.trim().parse().map_err(|_| "timestamp is not a number")?;
    if (now.timestamp() - ts).abs() > REPLAY_WINDOW_SECONDS {
        return Err("timestamp outside the 300 s window");
    }
    let expected = sign(secret, ts, req.body);
    if bool::from(expected.as_bytes().ct_eq(sig.trim().as_bytes())) { Ok(()) } else { Err("bad signature") }
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
