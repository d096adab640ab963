//! An in-process Google Cloud for tests, on the shared fake-API harness ([`crate::fake_api`]): the
//! OAuth token endpoint (`POST /token`, the JWT bearer grant), Compute Engine v1 (`/compute/v1/...`:
//! instances insert/get/list/delete, zone operations, projects, zones, regions, machine types, images,
//! subnetworks) and Cloud DNS v1 (`/dns/v1/...`: managed zone get, rrsets list, changes create), in
//! the shapes of the official discovery documents (`schemas.Instance`, `Operation`, `InstanceList`
//! with `nextPageToken`, `ResourceRecordSet`, `Change`) and Google's JSON error envelope
//! `{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}`.
//!
//! - **Tokens**: the token endpoint checks the grant type and the assertion's header (`RS256`) and
//!   claims (`iss` = the service account, `aud` = this endpoint, `scope`, `exp` = `iat` + 3600) and
//!   that it carries a 2048-bit signature; it issues random tokens valid [`TOKEN_TTL`]. Every other
//!   request must carry one of them (`Authorization: Bearer`), else 401. (The signature itself is
//!   verified against the public key by the provider's unit test.)
//! - **Instances**: an insert answers a `RUNNING` operation; the instance is `PROVISIONING` until the
//!   operation has been polled [`OP_POLLS`] times, then `RUNNING`, and its boot disk exists from the
//!   insert on. A delete answers a `RUNNING` operation; when it is `DONE` the instance is gone, and
//!   its disks unless they were made without `autoDelete`. A `requestId` seen before answers the same
//!   operation and does nothing (the API's idempotency). Work whose answer is lost finishes at once.
//! - **Capacity**: past [`GcpTestServer::set_capacity`] instances, an insert's operation ends `DONE`
//!   with `ZONE_RESOURCE_POOL_EXHAUSTED`.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use shared::dns::conformance::ZoneAccess;
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use shared::providers::gcp::labels;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The project the server holds.
pub const PROJECT: &str = "pensive-voice-547511";
/// The zone the server holds.
pub const ZONE: &str = "us-east4-b";
/// The region of [`ZONE`].
pub const REGION: &str = "us-east4";
/// The service account of the key file.
pub const CLIENT_EMAIL: &str = "kasm-autoscale@pensive-voice-547511.iam.gserviceaccount.com";
/// The managed zone (its name) and its DNS name.
pub const MANAGED_ZONE: &str = "kasm-zone";
/// The DNS name of [`MANAGED_ZONE`], without the trailing dot.
pub const DOMAIN: &str = "kasm.example.com";
/// How long an issued token lives unless [`GcpTestServer::set_token_ttl`] says otherwise.
pub const TOKEN_TTL: u64 = 3600;
/// Polls of an operation before it is `DONE`.
pub const OP_POLLS: u32 = 2;
/// A 2048-bit RSA key made for tests only (the same the provider's unit tests use).
pub const TEST_KEY: &str = include_str!("../../shared/src/providers/gcp/fixtures/test-key.pem");

/// One recorded request.
pub use crate::fake_api::Recorded as Request;

/// An instance as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestInstance {
    /// Numeric id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// `PROVISIONING`, `RUNNING`, `STOPPING`...
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The insert body as sent.
    pub body: Value,
    /// `creationTimestamp`.
    pub created: String,
}

impl TestInstance {
    /// The metadata value under `key`, as sent.
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.body["metadata"]["items"]
            .as_array()?
            .iter()
            .find(|i| i["key"] == key)
            .and_then(|i| i["value"].as_str())
            .map(str::to_string)
    }
}

/// A disk as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDisk {
    /// Name (the instance's, for a boot disk).
    pub name: String,
    /// Labels from `initializeParams.labels`.
    pub labels: BTreeMap<String, String>,
    /// Deleted with its instance.
    pub auto_delete: bool,
    /// The instance using it, while one does.
    pub user: Option<String>,
}

#[derive(Debug, Clone)]
struct TestOp {
    name: String,
    kind: &'static str,
    target: String,
    target_id: u64,
    polls_left: u32,
    /// `(code, message, http status)` when it fails.
    error: Option<(String, String, u16)>,
}

/// A record set as the server holds it (`name` with the trailing dot).
#[derive(Debug, Clone, PartialEq)]
pub struct TestRrset {
    /// Fully qualified, with the trailing dot.
    pub name: String,
    /// `A`, `TXT`, ...
    pub kind: String,
    /// TTL.
    pub ttl: u32,
    /// Data.
    pub rrdatas: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    instances: BTreeMap<String, TestInstance>,
    disks: BTreeMap<String, TestDisk>,
    ops: BTreeMap<String, TestOp>,
    request_ids: HashMap<String, String>,
    next_id: u64,
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    token_ttl: u64,
    capacity: usize,
    listed: usize,
    rrsets: Vec<TestRrset>,
    changes: u64,
    /// Regional quota `(metric, limit, usage)`.
    quotas: Vec<(String, f64, f64)>,
    /// Permissions the service account does not have (every other one it has).
    denied: BTreeSet<String>,
}

/// The running server (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct GcpTestServer {
    /// `http://127.0.0.1:PORT`: the `endpoint_url` of the provider and the root of `token_uri`.
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

const C: &str = "/compute/v1/projects/{project}";
const D: &str = "/dns/v1/projects/{project}/managedZones/{managedZone}";

/// Every route the server answers (templates with the method).
pub fn routes() -> Vec<String> {
    let mut r = vec!["POST /token".to_string()];
    for (m, p) in [
        ("GET", "/zones/{zone}/instances/{instance}"),
        ("GET", "/zones/{zone}/instances"),
        ("POST", "/zones/{zone}/instances"),
        ("DELETE", "/zones/{zone}/instances/{instance}"),
        ("GET", "/zones/{zone}/operations/{operation}"),
        ("GET", ""),
        ("GET", "/zones/{zone}"),
        ("GET", "/regions/{region}"),
        ("GET", "/zones/{zone}/machineTypes/{machineType}"),
        ("GET", "/global/images/{image}"),
        ("GET", "/global/images/family/{family}"),
        ("GET", "/regions/{region}/subnetworks/{subnetwork}"),
        ("POST", "/regions/{region}/subnetworks/{subnetwork}/testIamPermissions"),
    ] {
        r.push(format!("{m} {C}{p}"));
    }
    // Cloud Resource Manager v1 `projects.testIamPermissions` (`{resource}` is `<project>:testIamPermissions`).
    r.push("POST /v1/projects/{resource}".to_string());
    for (m, p) in [("GET", ""), ("GET", "/rrsets"), ("POST", "/changes")] {
        r.push(format!("{m} {D}{p}"));
    }
    r
}

/// The route of an instance operation.
pub fn route_of(op: Op) -> String {
    match op {
        Op::Create => format!("POST {C}/zones/{{zone}}/instances"),
        Op::Get => format!("GET {C}/zones/{{zone}}/instances/{{instance}}"),
        Op::Delete => format!("DELETE {C}/zones/{{zone}}/instances/{{instance}}"),
        Op::List => format!("GET {C}/zones/{{zone}}/instances"),
    }
}

/// An error answer in Google's envelope.
pub fn err(code: u16, reason: &str, message: &str) -> Reply {
    let status = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    Reply::json(
        code,
        &json!({"error": {"code": code, "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}], "status": status}}),
    )
}

fn not_found(what: &str) -> Reply {
    err(404, "notFound", &format!("The resource '{what}' was not found"))
}

/// The JSON key file of the test service account, its `token_uri` at `server_url`.
pub fn key_file(server_url: &str) -> String {
    json!({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": TEST_KEY, "client_email": CLIENT_EMAIL, "client_id": "113456789012345678901",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": format!("{server_url}/token"),
    })
    .to_string()
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f-00:00").to_string()
}

impl GcpTestServer {
    /// Starts a server with room for 100 instances and regional quota for 96 CPUs, 4 T4 GPUs.
    pub async fn start() -> GcpTestServer {
        let inner = Arc::new(Mutex::new(Inner {
            instances: BTreeMap::new(),
            disks: BTreeMap::new(),
            ops: BTreeMap::new(),
            request_ids: HashMap::new(),
            next_id: 4_567_890_123_456_789_000,
            tokens: HashMap::new(),
            tokens_issued: 0,
            token_ttl: TOKEN_TTL,
            capacity: 100,
            listed: 0,
            rrsets: vec![TestRrset {
                name: format!("{DOMAIN}."),
                kind: "NS".into(),
                ttl: 21600,
                rrdatas: vec!["ns-cloud-a1.googledomains.com.".into()],
            }],
            changes: 0,
            quotas: vec![
                ("CPUS".into(), 96.0, 8.0),
                ("INSTANCES".into(), 100.0, 1.0),
                ("N2_CPUS".into(), 24.0, 0.0),
                ("NVIDIA_T4_GPUS".into(), 4.0, 0.0),
                ("SSD_TOTAL_GB".into(), 2048.0, 100.0),
            ],
            denied: BTreeSet::new(),
        }));
        let url_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        let guard_state = inner.clone();
        let mut b = FakeApi::builder()
            .guard(move |req| {
                if req.route == "/token" {
                    return None;
                }
                let got = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let ok = got.strip_prefix("Bearer ").is_some_and(|t| {
                    guard_state.lock().expect("lock").tokens.get(t).is_some_and(|exp| *exp > Instant::now())
                });
                (!ok).then(|| {
                    err(
                        401,
                        "authError",
                        "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                    )
                })
            })
            .unrouted(|m, p| err(404, "notFound", &format!("no route for {m} {p}")));
        for route in routes() {
            let st = inner.clone();
            let url = url_cell.clone();
            b = b.route(
                &route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    let url = url.clone();
                    async move {
                        let base = url.lock().expect("url").clone();
                        answer(&st, &base, req)
                    }
                }),
            );
        }
        let api = b.start().await;
        *url_cell.lock().expect("url") = api.url.clone();
        GcpTestServer { url: api.url.clone(), api, inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("server lock")
    }

    /// The fake API underneath (faults, recorded requests).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.api.requests()
    }

    /// Every instance.
    pub fn instances(&self) -> Vec<TestInstance> {
        self.lock().instances.values().cloned().collect()
    }

    /// The instance `name`.
    pub fn instance(&self, name: &str) -> Option<TestInstance> {
        self.lock().instances.get(name).cloned()
    }

    /// Every disk.
    pub fn disks(&self) -> Vec<TestDisk> {
        self.lock().disks.values().cloned().collect()
    }

    /// The service account loses `permission` (both `testIamPermissions` calls leave it out).
    pub fn deny_permission(&self, permission: &str) {
        self.lock().denied.insert(permission.to_string());
    }

    /// How many tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// Issues tokens valid `secs` (`expires_in`) from now on.
    pub fn set_token_ttl(&self, secs: u64) {
        self.lock().token_ttl = secs;
    }

    /// Forgets every issued token (as if they were revoked).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Inserts beyond `n` live instances end with `ZONE_RESOURCE_POOL_EXHAUSTED`.
    pub fn set_capacity(&self, n: usize) {
        self.lock().capacity = n;
    }

    /// Sets the regional usage of quota `metric`.
    pub fn set_quota_usage(&self, metric: &str, usage: f64) {
        if let Some(q) = self.lock().quotas.iter_mut().find(|q| q.0 == metric) {
            q.2 = usage;
        }
    }

    /// Adds a running instance with `labels` (an operator's); returns its name.
    pub fn add_instance(&self, name: &str, labels: &[(&str, &str)]) -> String {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        st.instances.insert(
            name.into(),
            TestInstance {
                id,
                name: name.into(),
                status: "RUNNING".into(),
                labels,
                body: json!({"name": name, "networkInterfaces": [{"network": "global/networks/default"}]}),
                created: now_rfc3339(),
            },
        );
        st.disks.insert(
            name.into(),
            TestDisk { name: name.into(), labels: BTreeMap::new(), auto_delete: true, user: Some(name.into()) },
        );
        name.into()
    }

    /// Removes instance `name` and its disk (as an operator would).
    pub fn remove_instance(&self, name: &str) {
        let mut st = self.lock();
        st.instances.remove(name);
        st.disks.remove(name);
    }

    /// Every record set of the managed zone.
    pub fn rrsets(&self) -> Vec<TestRrset> {
        self.lock().rrsets.clone()
    }

    /// Adds a record set (as an operator would).
    pub fn add_rrset(&self, name: &str, kind: &str, rrdatas: &[&str]) {
        let name = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        let mut st = self.lock();
        match st.rrsets.iter_mut().find(|r| r.name == name && r.kind == kind) {
            Some(r) => r.rrdatas.extend(rrdatas.iter().map(|d| d.to_string())),
            None => st.rrsets.push(TestRrset {
                name,
                kind: kind.into(),
                ttl: 300,
                rrdatas: rrdatas.iter().map(|d| d.to_string()).collect(),
            }),
        }
    }
}

fn zone_url(base: &str) -> String {
    format!("{base}/compute/v1/projects/{PROJECT}/zones/{ZONE}")
}

fn op_json(base: &str, op: &TestOp) -> Value {
    let done = op.polls_left == 0;
    let mut v = json!({
        "kind": "compute#operation", "id": (op.target_id ^ 0x5a5a).to_string(), "name": op.name,
        "zone": zone_url(base), "operationType": op.kind,
        "targetLink": format!("{}/instances/{}", zone_url(base), op.target), "targetId": op.target_id.to_string(),
        "status": if done { "DONE" } else { "RUNNING" }, "user": CLIENT_EMAIL, "progress": if done { 100 } else { 0 },
        "insertTime": "2026-12-02T03:04:05.000-08:00", "startTime": "2026-12-02T03:04:05.500-08:00",
        "selfLink": format!("{}/operations/{}", zone_url(base), op.name),
    });
    if done {
        v["endTime"] = json!("2026-12-02T03:04:09.000-08:00");
        if let Some((code, message, http)) = &op.error {
            v["error"] = json!({"errors": [{"code": code, "message": message}]});
            v["httpErrorStatusCode"] = json!(http);
            v["httpErrorMessage"] = json!(if *http == 503 { "SERVICE UNAVAILABLE" } else { "BAD REQUEST" });
        }
    }
    v
}

fn instance_json(base: &str, i: &TestInstance) -> Value {
    let n = i.id % 250 + 1;
    let nics: Vec<Value> = i.body["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(k, nic)| {
            let mut out = json!({"kind": "compute#networkInterface", "name": format!("nic{k}"),
                "network": nic["network"], "subnetwork": nic["subnetwork"], "networkIP": format!("10.150.0.{n}"),
                "stackType": "IPV4_ONLY"});
            if let Some(acs) = nic["accessConfigs"].as_array() {
                let acs: Vec<Value> = acs
                    .iter()
                    .map(|a| {
                        let mut a = a.clone();
                        a["kind"] = json!("compute#accessConfig");
                        a["networkTier"] = json!("PREMIUM");
                        if i.status != "PROVISIONING" {
                            a["natIP"] = json!(format!("34.86.0.{n}"));
                        }
                        a
                    })
                    .collect();
                out["accessConfigs"] = Value::from(acs);
            }
            out
        })
        .collect();
    let disks: Vec<Value> = i.body["disks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(k, d)| {
            json!({"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE", "index": k,
                "boot": d["boot"], "autoDelete": d["autoDelete"], "deviceName": if k == 0 { i.name.clone() } else { format!("{}-{k}", i.name) },
                "source": format!("{}/disks/{}", zone_url(base), if k == 0 { i.name.clone() } else { format!("{}-{k}", i.name) })})
        })
        .collect();
    json!({
        "kind": "compute#instance", "id": i.id.to_string(), "creationTimestamp": i.created, "name": i.name,
        "machineType": format!("{}/machineTypes/{}", zone_url(base), i.body["machineType"].as_str().unwrap_or("e2-medium").rsplit('/').next().unwrap_or_default()),
        "status": i.status, "zone": zone_url(base), "canIpForward": false, "networkInterfaces": nics, "disks": disks,
        "metadata": {"kind": "compute#metadata", "fingerprint": "LWDRf0YKqU4=", "items": i.body["metadata"]["items"]},
        "labels": i.labels, "labelFingerprint": "vezUS-42LLM=", "tags": i.body["tags"],
        "serviceAccounts": i.body["serviceAccounts"], "guestAccelerators": i.body["guestAccelerators"],
        "scheduling": i.body["scheduling"], "selfLink": format!("{}/instances/{}", zone_url(base), i.name),
        "cpuPlatform": "Intel Broadwell", "deletionProtection": false, "fingerprint": "4N8bA6b7bBo=",
    })
}

fn legal_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn legal_label(k: &str, v: &str) -> bool {
    let ok = |s: &str| {
        s.len() <= 63 && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
    };
    !k.is_empty() && k.as_bytes()[0].is_ascii_lowercase() && ok(k) && ok(v)
}

fn uuid_ok(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    s.len() == 36 && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) && hex.chars().any(|c| c != '0')
}

/// Parses a filter of parenthesised `labels.<key> = "<value>"` expressions (AND).
fn parse_filter(f: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = f.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('(')?;
        let end = inner.find(')')?;
        let expr = &inner[..end];
        rest = inner[end + 1..].trim_start();
        let (lhs, rhs) = expr.split_once('=')?;
        let key = lhs.trim().strip_prefix("labels.")?;
        let value = rhs.trim().strip_prefix('"')?.strip_suffix('"')?;
        out.push((key.to_string(), value.to_string()));
    }
    Some(out)
}

fn verify_assertion(jwt: &str, token_uri: &str) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else { return Err("not a JWT".into()) };
    let dec = |p: &str| -> Result<Value, String> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    };
    let header = dec(h)?;
    let claims = dec(c)?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" {
        return Err(format!("header {header}"));
    }
    if claims["iss"] != CLIENT_EMAIL || claims["aud"] != token_uri {
        return Err(format!("iss/aud {claims}"));
    }
    if !claims["scope"].as_str().is_some_and(|s| s.split(' ').any(|s| s == shared::providers::gcp::SCOPE)) {
        return Err("scope".into());
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else { return Err("iat/exp".into()) };
    let now = chrono::Utc::now().timestamp();
    if exp - iat > 3600 || exp < now || iat > now + 60 {
        return Err("iat/exp out of range".into());
    }
    if URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?.len() != 256 {
        return Err("not a 2048-bit RSA signature".into());
    }
    Ok(())
}

fn answer(inner: &Arc<Mutex<Inner>>, base: &str, req: Incoming) -> Reply {
    let mut st = inner.lock().expect("server lock");
    let route = req.route.clone();
    let r = route.as_str();
    if r == "/token" {
        return token(&mut st, base, &req);
    }
    if r == "/v1/projects/{resource}" {
        let resource = req.var("resource");
        let Some(project) = resource.strip_suffix(":testIamPermissions") else {
            return not_found(&req.path);
        };
        if project != PROJECT {
            // Resource Manager answers 403 for a project the caller cannot see (or that does not exist).
            return err(403, "forbidden", &format!("The caller does not have permission on project {project}"));
        }
        return test_permissions(&st, &req);
    }
    // Images live in public image projects (`ubuntu-os-cloud`) as well as ours.
    if req.var("project") != PROJECT && !r.contains("/global/images/") {
        return not_found(&format!("projects/{}", req.var("project")));
    }
    if r.starts_with("/dns/") {
        return dns(&mut st, &req);
    }
    let zone_ok = req.vars.get("zone").is_none_or(|z| z == ZONE);
    if !zone_ok {
        return not_found(&format!("projects/{PROJECT}/zones/{}", req.var("zone")));
    }
    let tail = r.strip_prefix("/compute/v1/projects/{project}").unwrap_or(r);
    match (req.method.as_str(), tail) {
        ("GET", "/zones/{zone}/instances/{instance}") => match st.instances.get(req.var("instance")) {
            Some(i) => Reply::json(200, &instance_json(base, i)),
            None => not_found(&format!("projects/{PROJECT}/zones/{ZONE}/instances/{}", req.var("instance"))),
        },
        ("GET", "/zones/{zone}/instances") => list(&mut st, base, &req),
        ("POST", "/zones/{zone}/instances") => insert(&mut st, base, &req),
        ("DELETE", "/zones/{zone}/instances/{instance}") => delete(&mut st, base, &req),
        ("GET", "/zones/{zone}/operations/{operation}") => {
            let Some(op) = st.ops.get_mut(req.var("operation")) else {
                return not_found(&format!("projects/{PROJECT}/zones/{ZONE}/operations/{}", req.var("operation")));
            };
            if op.polls_left > 0 {
                op.polls_left -= 1;
            }
            let op = op.clone();
            if op.polls_left == 0 {
                finish(&mut st, &op);
            }
            Reply::json(200, &op_json(base, &op))
        }
        ("GET", "") => Reply::json(
            200,
            &json!({"kind": "compute#project", "id": "1234567890", "name": PROJECT, "creationTimestamp": "2020-01-01T00:00:00.000-08:00",
                "defaultNetworkTier": "PREMIUM", "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS",
                "selfLink": format!("{base}/compute/v1/projects/{PROJECT}")}),
        ),
        ("GET", "/zones/{zone}") => Reply::json(
            200,
            &json!({"kind": "compute#zone", "id": "2231", "name": ZONE, "status": "UP",
                "region": format!("{base}/compute/v1/projects/{PROJECT}/regions/{REGION}"), "selfLink": zone_url(base)}),
        ),
        ("GET", "/regions/{region}") if req.var("region") == REGION => {
            let quotas: Vec<Value> =
                st.quotas.iter().map(|(m, l, u)| json!({"metric": m, "limit": l, "usage": u})).collect();
            Reply::json(
                200,
                &json!({"kind": "compute#region", "id": "1230", "name": REGION, "status": "UP", "quotas": quotas,
                    "zones": [zone_url(base)]}),
            )
        }
        ("GET", "/zones/{zone}/machineTypes/{machineType}") => {
            let (cpus, mem) = match req.var("machineType") {
                "e2-standard-2" => (2, 8192),
                "n1-standard-8" => (8, 30720),
                "n2-standard-4" => (4, 16384),
                other => return not_found(&format!("projects/{PROJECT}/zones/{ZONE}/machineTypes/{other}")),
            };
            Reply::json(
                200,
                &json!({"kind": "compute#machineType", "id": "3008", "name": req.var("machineType"), "guestCpus": cpus,
                    "memoryMb": mem, "zone": ZONE, "isSharedCpu": false}),
            )
        }
        ("GET", "/global/images/{image}") | ("GET", "/global/images/family/{family}") => {
            let name = if tail.contains("family") { req.var("family") } else { req.var("image") };
            if name.starts_with("ubuntu-2204") {
                Reply::json(
                    200,
                    &json!({"kind": "compute#image", "id": "7", "name": "ubuntu-2204-jammy-v20240319", "family": "ubuntu-2204-lts",
                        "status": "READY", "diskSizeGb": "10", "archiveSizeBytes": "1"}),
                )
            } else {
                not_found(&format!("projects/{}/global/images/{name}", req.var("project")))
            }
        }
        ("GET", "/regions/{region}/subnetworks/{subnetwork}")
            if req.var("region") == REGION && req.var("subnetwork") == "default" =>
        {
            Reply::json(
                200,
                &json!({"kind": "compute#subnetwork", "id": "99", "name": "default", "ipCidrRange": "10.150.0.0/20",
                    "network": format!("{base}/compute/v1/projects/{PROJECT}/global/networks/default"),
                    "region": format!("{base}/compute/v1/projects/{PROJECT}/regions/{REGION}")}),
            )
        }
        ("POST", "/regions/{region}/subnetworks/{subnetwork}/testIamPermissions")
            if req.var("region") == REGION && req.var("subnetwork") == "default" =>
        {
            test_permissions(&st, &req)
        }
        _ => not_found(&req.path),
    }
}

/// A `testIamPermissions` answer: the asked permissions not denied (`{"permissions": [...]}`, the field
/// left out when none is granted). A permission without a `service.resource.verb` shape is refused as
/// GCP refuses names it does not know.
fn test_permissions(st: &Inner, req: &Incoming) -> Reply {
    let Some(body) = req.json() else { return err(400, "badRequest", "Invalid JSON payload received.") };
    if body.as_object().is_none_or(|o| o.keys().any(|k| k != "permissions")) {
        return err(400, "badRequest", "Invalid JSON payload received. Unknown name in the request.");
    }
    let asked: Vec<String> = body["permissions"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if let Some(bad) = asked.iter().find(|p| p.split('.').count() != 3 || p.contains('*')) {
        return err(400, "badRequest", &format!("Permission {bad} is not valid."));
    }
    let granted: Vec<&String> = asked.iter().filter(|p| !st.denied.contains(*p)).collect();
    if granted.is_empty() { Reply::json(200, &json!({})) } else { Reply::json(200, &json!({"permissions": granted})) }
}

fn token(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let oauth = |e: &str, d: &str| Reply::json(400, &json!({"error": e, "error_description": d}));
    if req.param("grant_type") != Some(shared::providers::gcp::GRANT_TYPE) {
        return oauth("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(a) = req.param("assertion") else {
        return oauth("invalid_request", "Missing required parameter: assertion");
    };
    if let Err(why) = verify_assertion(a, &format!("{base}/token")) {
        return oauth("invalid_grant", &format!("Invalid JWT: {why}"));
    }
    st.tokens_issued += 1;
    let t = format!("ya29.test-{}-{:x}", st.tokens_issued, rand_u64());
    st.tokens.insert(t.clone(), Instant::now() + Duration::from_secs(st.token_ttl));
    Reply::json(200, &json!({"access_token": t, "expires_in": st.token_ttl, "token_type": "Bearer"}))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

fn new_op(st: &mut Inner, kind: &'static str, target: &str, target_id: u64, polls: u32) -> TestOp {
    st.next_id += 1;
    let op = TestOp {
        name: format!("operation-{}-{:x}", st.next_id, target_id % 0xffff),
        kind,
        target: target.to_string(),
        target_id,
        polls_left: polls,
        error: None,
    };
    st.ops.insert(op.name.clone(), op.clone());
    op
}

/// What an operation does when it is `DONE`.
fn finish(st: &mut Inner, op: &TestOp) {
    if op.error.is_some() {
        return;
    }
    let alive = st.instances.get(&op.target).is_some_and(|i| i.id == op.target_id);
    match op.kind {
        "insert" if alive => {
            if let Some(i) = st.instances.get_mut(&op.target)
                && i.status == "PROVISIONING"
            {
                i.status = "RUNNING".into();
            }
        }
        "delete" if alive => {
            st.instances.remove(&op.target);
            let gone: Vec<String> =
                st.disks.values().filter(|d| d.user.as_deref() == Some(&op.target)).map(|d| d.name.clone()).collect();
            for d in gone {
                if st.disks.get(&d).is_some_and(|d| d.auto_delete) {
                    st.disks.remove(&d);
                } else if let Some(d) = st.disks.get_mut(&d) {
                    d.user = None;
                }
            }
        }
        _ => {}
    }
}

fn insert(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let bad = |m: &str| err(400, "invalid", m);
    let rid = req.param("requestId").map(str::to_string);
    if let Some(r) = &rid {
        if !uuid_ok(r) {
            return bad("Invalid value for field 'requestId': must be a valid UUID");
        }
        if let Some(op) = st.request_ids.get(r).and_then(|o| st.ops.get(o)) {
            return Reply::json(200, &op_json(base, op));
        }
    }
    let Some(b) = req.json() else { return bad("Invalid JSON payload received.") };
    let name = b["name"].as_str().unwrap_or_default().to_string();
    if !legal_name(&name) {
        return bad(&format!("Invalid value for field 'resource.name': '{name}'."));
    }
    if !b["machineType"].as_str().is_some_and(|m| m.contains("machineTypes/")) {
        return bad("Invalid value for field 'resource.machineType'.");
    }
    let disks = b["disks"].as_array().cloned().unwrap_or_default();
    let Some(boot) = disks.iter().find(|d| d["boot"] == true) else {
        return bad("Invalid value for field 'resource.disks': a boot disk is required.");
    };
    if boot["initializeParams"]["sourceImage"].as_str().is_none_or(str::is_empty) {
        return bad("Invalid value for field 'resource.disks[0].initializeParams.sourceImage'.");
    }
    if !boot["initializeParams"]["diskSizeGb"].is_string() && !boot["initializeParams"]["diskSizeGb"].is_null() {
        return bad("Invalid value for field 'resource.disks[0].initializeParams.diskSizeGb': int64 is a string.");
    }
    if b["networkInterfaces"].as_array().is_none_or(Vec::is_empty) {
        return bad("Invalid value for field 'resource.networkInterfaces'.");
    }
    let labels: BTreeMap<String, String> = match b.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(o)) => {
            o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("\u{0}").to_string())).collect()
        }
        _ => return bad("Invalid value for field 'resource.labels'."),
    };
    if let Some((k, v)) = labels.iter().find(|(k, v)| !legal_label(k, v)) {
        return bad(&format!("Invalid value for field 'resource.labels': '{k}={v}'."));
    }
    if b["guestAccelerators"].as_array().is_some_and(|a| !a.is_empty())
        && b["scheduling"]["onHostMaintenance"] != "TERMINATE"
    {
        return bad("Instances with guest accelerators do not support live migration.");
    }
    for item in b["metadata"]["items"].as_array().cloned().unwrap_or_default() {
        if item["value"].as_str().is_some_and(|v| v.len() > 256 * 1024) {
            return bad("Metadata value too large.");
        }
    }
    if st.instances.contains_key(&name) {
        return err(
            409,
            "alreadyExists",
            &format!("The resource 'projects/{PROJECT}/zones/{ZONE}/instances/{name}' already exists"),
        );
    }
    st.next_id += 1;
    let id = st.next_id;
    let mut op = if st.instances.len() >= st.capacity {
        let mut op = new_op(st, "insert", &name, id, 0);
        op.error = Some((
            "ZONE_RESOURCE_POOL_EXHAUSTED".into(),
            format!(
                "The zone 'projects/{PROJECT}/zones/{ZONE}' does not have enough resources available to fulfill the request."
            ),
            503,
        ));
        st.ops.insert(op.name.clone(), op.clone());
        op
    } else {
        st.instances.insert(
            name.clone(),
            TestInstance {
                id,
                name: name.clone(),
                status: "PROVISIONING".into(),
                labels,
                body: b.clone(),
                created: now_rfc3339(),
            },
        );
        for (k, d) in disks.iter().enumerate() {
            let dname = if k == 0 { name.clone() } else { format!("{name}-{k}") };
            let dl = d["initializeParams"]["labels"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            st.disks.insert(
                dname.clone(),
                TestDisk { name: dname, labels: dl, auto_delete: d["autoDelete"] == true, user: Some(name.clone()) },
            );
        }
        new_op(st, "insert", &name, id, OP_POLLS)
    };
    if req.answer_lost {
        op.polls_left = 0;
        st.ops.insert(op.name.clone(), op.clone());
        finish(st, &op);
    }
    if let Some(r) = rid {
        st.request_ids.insert(r, op.name.clone());
    }
    Reply::json(200, &op_json(base, &op))
}

fn delete(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let name = req.var("instance").to_string();
    if let Some(r) = req.param("requestId") {
        if !uuid_ok(r) {
            return err(400, "invalid", "Invalid value for field 'requestId': must be a valid UUID");
        }
        if let Some(op) = st.request_ids.get(r).and_then(|o| st.ops.get(o)) {
            return Reply::json(200, &op_json(base, op));
        }
    }
    let Some(i) = st.instances.get_mut(&name) else {
        return not_found(&format!("projects/{PROJECT}/zones/{ZONE}/instances/{name}"));
    };
    i.status = "STOPPING".into();
    let id = i.id;
    let mut op = new_op(st, "delete", &name, id, OP_POLLS);
    if req.answer_lost {
        op.polls_left = 0;
        st.ops.insert(op.name.clone(), op.clone());
        finish(st, &op);
    }
    if let Some(r) = req.param("requestId") {
        st.request_ids.insert(r.to_string(), op.name.clone());
    }
    Reply::json(200, &op_json(base, &op))
}

fn list(st: &mut Inner, base: &str, req: &Incoming) -> Reply {
    let filter = match req.param("filter") {
        None => Vec::new(),
        Some(f) => match parse_filter(f) {
            Some(f) => f,
            None => {
                return err(
                    400,
                    "invalid",
                    &format!("Invalid value for field 'filter': '{f}'. Invalid list filter expression."),
                );
            }
        },
    };
    let max = match req.param("maxResults").map(str::parse::<usize>) {
        None => 500,
        Some(Ok(n)) if n <= 500 => n.max(1),
        _ => return err(400, "invalid", "Invalid value for field 'maxResults'."),
    };
    let items: Vec<Value> = st
        .instances
        .values()
        .filter(|i| filter.iter().all(|(k, v)| i.labels.get(k) == Some(v)))
        .map(|i| instance_json(base, i))
        .collect();
    let (page, next) = fake_api::page(&items, req.param("pageToken"), max);
    st.listed += page.len();
    let mut body = json!({"kind": "compute#instanceList", "id": format!("projects/{PROJECT}/zones/{ZONE}/instances"),
        "items": page, "selfLink": format!("{}/instances", zone_url(base))});
    if let Some(n) = next {
        body["nextPageToken"] = json!(n);
    }
    Reply::json(200, &body)
}

fn rrset_json(r: &TestRrset) -> Value {
    json!({"kind": "dns#resourceRecordSet", "name": r.name, "type": r.kind, "ttl": r.ttl, "rrdatas": r.rrdatas})
}

fn parse_rrset(v: &Value) -> Option<TestRrset> {
    Some(TestRrset {
        name: v["name"].as_str()?.to_string(),
        kind: v["type"].as_str()?.to_string(),
        ttl: v["ttl"].as_u64()? as u32,
        rrdatas: v["rrdatas"].as_array()?.iter().map(|d| d.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()?,
    })
}

fn dns(st: &mut Inner, req: &Incoming) -> Reply {
    if req.var("managedZone") != MANAGED_ZONE {
        return not_found(&format!("managedZones/{}", req.var("managedZone")));
    }
    match (req.method.as_str(), req.route.rsplit('/').next().unwrap_or_default()) {
        ("GET", "{managedZone}") => Reply::json(
            200,
            &json!({"kind": "dns#managedZone", "name": MANAGED_ZONE, "dnsName": format!("{DOMAIN}."), "id": "5321",
                "visibility": "public", "nameServers": ["ns-cloud-a1.googledomains.com."]}),
        ),
        ("GET", "rrsets") => {
            if req.param("type").is_some() && req.param("name").is_none() {
                return err(400, "invalid", "type requires name");
            }
            let items: Vec<Value> = st
                .rrsets
                .iter()
                .filter(|r| req.param("name").is_none_or(|n| n == r.name))
                .filter(|r| req.param("type").is_none_or(|t| t == r.kind))
                .map(rrset_json)
                .collect();
            let max = req.param("maxResults").and_then(|m| m.parse().ok()).unwrap_or(100usize).max(1);
            let (page, next) = fake_api::page(&items, req.param("pageToken"), max);
            let mut body = json!({"kind": "dns#resourceRecordSetsListResponse", "rrsets": page});
            if let Some(n) = next {
                body["nextPageToken"] = json!(n);
            }
            Reply::json(200, &body)
        }
        ("POST", "changes") => {
            let Some(b) = req.json() else { return err(400, "invalid", "Invalid JSON payload received.") };
            let parse = |k: &str| -> Option<Vec<TestRrset>> {
                b.get(k).map_or(Some(Vec::new()), |v| v.as_array()?.iter().map(parse_rrset).collect())
            };
            let (Some(adds), Some(dels)) = (parse("additions"), parse("deletions")) else {
                return err(400, "invalid", "Invalid value for 'entity.change'");
            };
            if adds.is_empty() && dels.is_empty() {
                return err(400, "required", "The 'entity.change' parameter is required but was missing.");
            }
            for r in adds.iter().chain(&dels) {
                if !r.name.ends_with('.')
                    || !(r.name == format!("{DOMAIN}.") || r.name.ends_with(&format!(".{DOMAIN}.")))
                {
                    return err(
                        400,
                        "invalid",
                        &format!("Invalid value for 'entity.change.additions[0].name': '{}'", r.name),
                    );
                }
                if r.kind == "A" && r.rrdatas.iter().any(|d| d.parse::<Ipv4Addr>().is_err()) {
                    return err(400, "invalid", "Invalid value for 'entity.change.additions[0].rrdata'");
                }
            }
            let mut next = st.rrsets.clone();
            for (i, d) in dels.iter().enumerate() {
                match next.iter().position(|r| r == d) {
                    Some(p) => {
                        next.remove(p);
                    }
                    None => {
                        return err(
                            412,
                            "conditionNotMet",
                            &format!("Precondition not met for 'entity.change.deletions[{i}]'"),
                        );
                    }
                }
            }
            for (i, a) in adds.iter().enumerate() {
                if next.iter().any(|r| r.name == a.name && r.kind == a.kind) {
                    return err(
                        409,
                        "alreadyExists",
                        &format!(
                            "The resource 'entity.change.additions[{i}]' named '{} ({})' already exists",
                            a.name, a.kind
                        ),
                    );
                }
                next.push(a.clone());
            }
            st.rrsets = next;
            st.changes += 1;
            Reply::json(
                200,
                &json!({"kind": "dns#change", "id": st.changes.to_string(), "status": "done", "startTime": now_rfc3339(),
                    "additions": adds.iter().map(rrset_json).collect::<Vec<_>>(),
                    "deletions": dels.iter().map(rrset_json).collect::<Vec<_>>()}),
            )
        }
        _ => not_found(&req.path),
    }
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct GcpHarness {
    server: GcpTestServer,
    stall: Duration,
    page_size: usize,
}

impl GcpHarness {
    /// A harness over `server`; the provider must list with `page_size` per page.
    pub fn new(server: GcpTestServer, page_size: usize, stall: Duration) -> Self {
        GcpHarness { server, stall, page_size }
    }
}

#[async_trait]
impl Harness for GcpHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => err(401, "authError", "Request had invalid authentication credentials."),
            F::Forbidden => err(403, "forbidden", "Required 'compute.instances.get' permission for 'projects/p'"),
            F::NotFound => not_found("projects/p/zones/z/instances/x"),
            F::Conflict => err(409, "resourceNotReady", "The resource is not ready"),
            // No `Retry-After`: Google does not document one on Compute Engine's 429s.
            F::RateLimited { .. } => err(429, "rateLimitExceeded", "Rate Limit Exceeded"),
            F::ServerError => err(503, "backendError", "Backend Error"),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(503, "backendError", "too late") };
                return self.server.api.inject(&route_of(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a create's answer");
                // The insert is accepted; its operation ends with the zone's exhaustion.
                Reply::json(
                    200,
                    &json!({"kind": "compute#operation", "name": "operation-exhausted", "status": "DONE", "operationType": "insert",
                        "httpErrorStatusCode": 503, "httpErrorMessage": "SERVICE UNAVAILABLE",
                        "error": {"errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                            "message": "The zone does not have enough resources available to fulfill the request."}]}}),
                )
            }
        };
        self.server.api.inject(&route_of(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(&route_of(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(&route_of(op))
    }

    fn retries(&self) -> RetryRules {
        // Every call is retried by the client, the insert too: it carries its requestId.
        RetryRules { retried: &[Op::Create, Op::Get, Op::Delete, Op::List], retry_after_hint: false }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        // The token is the requestId; it stands for the claim when it is the claim's (the claim read
        // back from the request's own labels), else it is reported as sent.
        let r = self.server.api.last(&route_of(Op::Create))?;
        let rid = r.param("requestId")?.to_string();
        let body: Value = serde_json::from_str(&r.body).ok()?;
        let claim = body["labels"][labels::CLAIM].as_str().and_then(labels::decode);
        match claim {
            Some(c) if shared::providers::gcp::request_id(&c) == rid => Some(c),
            _ => Some(rid),
        }
    }

    fn missing_id(&self) -> String {
        "kasm-missing-instance".into()
    }

    async fn create_foreign_vm(&self) -> String {
        let n = self.server.lock().next_id;
        self.server.add_instance(&format!("ops-bastion-{}", n % 100_000), &[("env", "prod")])
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_instance(id);
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.server.instance(id).is_some()
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim = labels::encode(spec.claim.as_str());
        self.server
            .instances()
            .iter()
            .filter(|i| i.labels.get(labels::CLAIM) == Some(&claim) || i.name == spec.name)
            .count()
    }
}

/// The managed zone as the DNS conformance suite reads and plants records.
#[derive(Debug, Clone)]
pub struct Zone(pub GcpTestServer);

fn fq(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

#[async_trait]
impl ZoneAccess for Zone {
    async fn put_foreign_a(&self, name: &str, address: Ipv4Addr) {
        self.0.add_rrset(name, "A", &[&address.to_string()]);
    }

    async fn put_txt(&self, name: &str, text: &str) {
        self.0.add_rrset(name, "TXT", &[&format!("\"{text}\"")]);
    }

    async fn a_record(&self, name: &str) -> Option<Ipv4Addr> {
        let n = fq(name);
        self.0.rrsets().into_iter().find(|r| r.kind == "A" && r.name == n).and_then(|r| r.rrdatas.first()?.parse().ok())
    }

    async fn txt(&self, name: &str) -> Option<Vec<String>> {
        let n = fq(name);
        let t: Vec<String> = self
            .0
            .rrsets()
            .into_iter()
            .filter(|r| r.kind == "TXT" && r.name == n)
            .flat_map(|r| r.rrdatas)
            .map(|d| d.trim_matches('"').to_string())
            .collect();
        (!t.is_empty()).then_some(t)
    }
}

/// The set of routes as a set (for the spec table's completeness check).
pub fn route_set() -> BTreeSet<String> {
    routes().into_iter().collect()
}
