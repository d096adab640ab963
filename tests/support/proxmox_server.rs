//! An in-process Proxmox VE API for tests: an axum server on `127.0.0.1:0` answering the calls
//! `shared::providers::proxmox` makes, in the real API's shapes (`{"data": ...}` envelopes, UPIDs,
//! task status objects, errors as HTTP 500 with a `message`), and checking the API-token header.
//!
//! It keeps nodes, VMs, tasks and guest files in memory and emulates the guest side of the startup
//! script (the run-once guard directory). Knobs: a failing task, injected statuses (401, 500, ...)
//! on the next calls to a route, an offline node, a slow guest agent, a VMID taken by "another
//! client" at clone time. Every request is recorded with its route template and parameters so tests
//! can check order and check them against the API schema.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The API user, token name and secret the server accepts.
pub const USER: &str = "kasm@pve";
/// The token's name.
pub const TOKEN_NAME: &str = "autoscale";
/// The token's secret.
pub const TOKEN_SECRET: &str = "5f0c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5";

/// One recorded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// The route template below `/api2/json`, e.g. `/nodes/{node}/qemu/{vmid}/clone`.
    pub route: String,
    /// The actual path below `/api2/json`, decoded.
    pub path: String,
    /// Form and query parameters (repeated keys keep every value).
    pub params: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// The first value of parameter `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).and_then(|v| v.first()).map(String::as_str)
    }
}

/// A VM as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestVm {
    /// VMID.
    pub vmid: u32,
    /// Name.
    pub name: String,
    /// Node.
    pub node: String,
    /// `running` / `stopped`.
    pub status: String,
    /// Tags, `;`-separated.
    pub tags: String,
    /// Is a template.
    pub template: bool,
    /// Pool.
    pub pool: Option<String>,
    /// Cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Description.
    pub description: String,
    /// Agent pings left before the agent answers (counted from the start).
    pub agent_pings_left: u32,
    /// Full clone (for clones).
    pub full: Option<bool>,
    /// Storage asked for at clone time.
    pub storage: Option<String>,
    /// The Guest Agent option (`agent: 1`), copied from the template by a clone.
    pub agent: bool,
}

#[derive(Debug, Clone)]
struct Task {
    node: String,
    kind: String,
    /// Status polls answered `running` before `stopped`.
    polls_left: u32,
    exitstatus: String,
    /// What happens when the task ends successfully.
    effect: Effect,
}

#[derive(Debug, Clone)]
enum Effect {
    None,
    Unlock(u32),
    Start(u32),
    Stop(u32),
    Destroy(u32),
}

#[derive(Debug)]
struct Inner {
    nodes: BTreeMap<String, bool>,
    vms: BTreeMap<u32, TestVm>,
    locks: BTreeMap<u32, String>,
    tasks: HashMap<String, Task>,
    task_seq: u64,
    faults: HashMap<String, VecDeque<(u16, String)>>,
    task_failures: HashMap<String, VecDeque<String>>,
    take_on_clone: BTreeSet<u32>,
    agent_boot_pings: u32,
    files: BTreeMap<(u32, String), String>,
    guards: BTreeSet<(u32, String)>,
    script_runs: BTreeMap<u32, u32>,
    execs: Vec<(u32, Vec<String>)>,
    requests: Vec<Request>,
    permissions: Value,
}

/// The running server (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct ProxmoxTestServer {
    /// Base URL without `/api2/json`, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

/// The recorded `/access/permissions` answer of a token with every privilege the provider needs.
pub fn full_permissions() -> Value {
    serde_json::from_str(include_str!("../fixtures/proxmox/permissions.json")).expect("permissions fixture")
}

impl ProxmoxTestServer {
    /// A two-node cluster (`pve1`, `pve2`, both online) with template `ubuntu-kasm` (VMID 9000 on
    /// `pve1`) and a few unrelated VMs, one of them (VMID 5001) inside the ranges tests use.
    pub async fn start() -> ProxmoxTestServer {
        let mut vms = BTreeMap::new();
        let mut add = |vmid: u32, name: &str, node: &str, status: &str, template: bool, tags: &str| {
            vms.insert(
                vmid,
                TestVm {
                    vmid,
                    name: name.into(),
                    node: node.into(),
                    status: status.into(),
                    tags: tags.into(),
                    template,
                    pool: None,
                    cores: 2,
                    memory_mib: 2048,
                    description: String::new(),
                    agent_pings_left: 0,
                    full: None,
                    storage: None,
                    agent: true,
                },
            );
        };
        add(9000, "ubuntu-kasm", "pve1", "stopped", true, "kasm-template");
        add(100, "dns", "pve1", "running", false, "infra");
        add(101, "backup", "pve2", "running", false, "");
        add(5001, "someone-elses", "pve2", "stopped", false, "");
        let inner = Arc::new(Mutex::new(Inner {
            nodes: [("pve1".to_string(), true), ("pve2".to_string(), true)].into(),
            vms,
            locks: BTreeMap::new(),
            tasks: HashMap::new(),
            task_seq: 0,
            faults: HashMap::new(),
            task_failures: HashMap::new(),
            take_on_clone: BTreeSet::new(),
            agent_boot_pings: 0,
            files: BTreeMap::new(),
            guards: BTreeSet::new(),
            script_runs: BTreeMap::new(),
            execs: Vec::new(),
            requests: Vec::new(),
            permissions: full_permissions(),
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ProxmoxTestServer { url: format!("http://{addr}"), inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("proxmox test server lock")
    }

    /// The next `times` calls of `method route` (e.g. `GET /cluster/resources`) answer `status`
    /// with `message` (`{"data":null,"message":...}`).
    pub fn inject(&self, method: &str, route: &str, status: u16, message: &str, times: usize) {
        let mut st = self.lock();
        let q = st.faults.entry(format!("{method} {route}")).or_default();
        for _ in 0..times {
            q.push_back((status, message.to_string()));
        }
    }

    /// The next task of type `kind` (`qmclone`, `qmstart`, `qmstop`, `qmdestroy`) ends with
    /// `exitstatus` instead of `OK`, changing nothing.
    pub fn fail_next_task(&self, kind: &str, exitstatus: &str) {
        self.lock().task_failures.entry(kind.to_string()).or_default().push_back(exitstatus.to_string());
    }

    /// Marks a node online or offline: its VMs show status `unknown` and calls to it answer 595.
    pub fn set_node_online(&self, node: &str, online: bool) {
        self.lock().nodes.insert(node.to_string(), online);
    }

    /// New clones' guest agents answer only after this many pings (a slow-booting guest).
    pub fn set_agent_boot_pings(&self, pings: u32) {
        self.lock().agent_boot_pings = pings;
    }

    /// The agent of VM `vmid` answers after `pings` more pings.
    pub fn set_agent_pings_left(&self, vmid: u32, pings: u32) {
        if let Some(vm) = self.lock().vms.get_mut(&vmid) {
            vm.agent_pings_left = pings;
        }
    }

    /// A clone asking for `vmid` finds it taken by another client (who creates that VM first).
    pub fn take_on_clone(&self, vmid: u32) {
        self.lock().take_on_clone.insert(vmid);
    }

    /// Replaces the token's permissions (`/access/permissions` answer).
    pub fn set_permissions(&self, perms: Value) {
        self.lock().permissions = perms;
    }

    /// Adds a VM.
    pub fn add_vm(&self, vmid: u32, name: &str, node: &str, tags: &str) {
        let vm = TestVm {
            vmid,
            name: name.into(),
            node: node.into(),
            status: "running".into(),
            tags: tags.into(),
            template: false,
            pool: None,
            cores: 1,
            memory_mib: 1024,
            description: String::new(),
            agent_pings_left: 0,
            full: None,
            storage: None,
            agent: true,
        };
        self.lock().vms.insert(vmid, vm);
    }

    /// Turns the Guest Agent option of VM `vmid` (a template: its future clones) on or off.
    pub fn set_agent_option(&self, vmid: u32, on: bool) {
        if let Some(vm) = self.lock().vms.get_mut(&vmid) {
            vm.agent = on;
        }
    }

    /// Removes a VM (as if deleted by hand).
    pub fn remove_vm(&self, vmid: u32) {
        self.lock().vms.remove(&vmid);
    }

    /// The VM with this VMID.
    pub fn vm(&self, vmid: u32) -> Option<TestVm> {
        self.lock().vms.get(&vmid).cloned()
    }

    /// Every VM (templates included).
    pub fn vms(&self) -> Vec<TestVm> {
        self.lock().vms.values().cloned().collect()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// The file the guest holds at `path` of VM `vmid`.
    pub fn guest_file(&self, vmid: u32, path: &str) -> Option<String> {
        self.lock().files.get(&(vmid, path.to_string())).cloned()
    }

    /// How many times the startup script actually ran in VM `vmid` (execs stopped by the guard
    /// do not count).
    pub fn script_runs(&self, vmid: u32) -> u32 {
        self.lock().script_runs.get(&vmid).copied().unwrap_or(0)
    }

    /// Every `agent/exec` command, by VMID.
    pub fn execs(&self) -> Vec<(u32, Vec<String>)> {
        self.lock().execs.clone()
    }
}

fn ok(data: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({ "data": data }))).into_response()
}

fn err(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Proxmox 8+ puts the message in the body as well as in the status line.
    (code, axum::Json(json!({ "data": null, "message": format!("{message}\n") }))).into_response()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_params(text: &str, into: &mut BTreeMap<String, Vec<String>>) {
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        into.entry(k.into_owned()).or_default().push(v.into_owned());
    }
}

/// The route template of `segs` (below `/api2/json`), with the values of its placeholders.
fn route_of(segs: &[String]) -> Option<(String, HashMap<&'static str, String>)> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let mut p = HashMap::new();
    let route = match s.as_slice() {
        ["version"] => "/version".to_string(),
        ["cluster", "resources"] => "/cluster/resources".to_string(),
        ["access", "permissions"] => "/access/permissions".to_string(),
        ["nodes", node, "tasks", upid, "status"] => {
            p.insert("node", node.to_string());
            p.insert("upid", upid.to_string());
            "/nodes/{node}/tasks/{upid}/status".to_string()
        }
        ["nodes", node, "qemu", vmid, rest @ ..] => {
            p.insert("node", node.to_string());
            p.insert("vmid", vmid.to_string());
            let mut r = "/nodes/{node}/qemu/{vmid}".to_string();
            for seg in rest {
                r.push('/');
                r.push_str(seg);
            }
            r
        }
        _ => return None,
    };
    Some((route, p))
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(rest) = uri.path().strip_prefix("/api2/json/") else {
        return err(501, &format!("Method '{method} {}' not implemented", uri.path()));
    };
    let segs: Vec<String> = rest.split('/').map(decode).collect();
    let Some((route, p)) = route_of(&segs) else {
        return err(501, &format!("Method '{method} /{rest}' not implemented"));
    };
    let mut params = BTreeMap::new();
    if let Some(q) = uri.query() {
        parse_params(q, &mut params);
    }
    parse_params(&String::from_utf8_lossy(&body), &mut params);
    let mut st = inner.lock().expect("lock");
    st.requests.push(Request {
        method: method.to_string(),
        route: route.clone(),
        path: format!("/{}", segs.join("/")),
        params: params.clone(),
    });

    let want = format!("PVEAPIToken={USER}!{TOKEN_NAME}={TOKEN_SECRET}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
        return err(401, "authentication failure");
    }
    if let Some((status, msg)) = st.faults.get_mut(&format!("{method} {route}")).and_then(VecDeque::pop_front) {
        return err(status, &msg);
    }
    if let Some(node) = p.get("node")
        && st.nodes.get(node) == Some(&false)
    {
        // What pveproxy answers when it cannot reach the node it proxies to.
        return err(595, &format!("Connection refused - no route to host {node}"));
    }
    let first = |k: &str| params.get(k).and_then(|v| v.first()).cloned();
    let vmid: u32 = p.get("vmid").and_then(|v| v.parse().ok()).unwrap_or(0);
    let node = p.get("node").cloned().unwrap_or_default();
    match (method.as_str(), route.as_str()) {
        ("GET", "/version") => ok(json!({"version": "9.0.3", "release": "9.0", "repoid": "025864202ebb6109"})),
        ("GET", "/access/permissions") => ok(st.permissions.clone()),
        ("GET", "/cluster/resources") => match first("type").as_deref() {
            Some("node") => ok(Value::Array(
                st.nodes
                    .iter()
                    .map(|(n, on)| {
                        json!({"id": format!("node/{n}"), "type": "node", "node": n,
                            "status": if *on { "online" } else { "offline" }, "level": "", "maxcpu": 16})
                    })
                    .collect(),
            )),
            _ => ok(Value::Array(st.vms.values().map(|v| resource(&st, v)).collect())),
        },
        ("GET", "/nodes/{node}/tasks/{upid}/status") => {
            let upid = p["upid"].clone();
            let Some(task) = st.tasks.get_mut(&upid) else {
                return err(500, &format!("no such task '{upid}'"));
            };
            if task.polls_left > 0 {
                task.polls_left -= 1;
                let t = task.clone();
                return ok(json!({"upid": upid, "node": t.node, "type": t.kind, "status": "running", "pid": 4711,
                    "pstart": 251_000_000, "starttime": 1_700_000_000, "id": "", "user": format!("{USER}!{TOKEN_NAME}")}));
            }
            let t = task.clone();
            task.effect = Effect::None;
            if t.exitstatus == "OK" {
                apply(&mut st, &t.effect);
            }
            ok(json!({"upid": upid, "node": t.node, "type": t.kind, "status": "stopped", "exitstatus": t.exitstatus,
                "pid": 4711, "pstart": 251_000_000, "starttime": 1_700_000_000, "id": "", "user": format!("{USER}!{TOKEN_NAME}")}))
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/clone") => {
            let Some(tpl) = st.vms.get(&vmid).filter(|v| v.node == node).cloned() else {
                return err(500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"));
            };
            let Some(newid) = first("newid").and_then(|v| v.parse::<u32>().ok()) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({"data": null, "errors": {"newid": "property is missing and it is not optional"}}),
                    ),
                )
                    .into_response();
            };
            if st.take_on_clone.remove(&newid) {
                let mut other = tpl.clone();
                other.vmid = newid;
                other.name = "taken-by-another-client".into();
                other.template = false;
                other.tags = String::new();
                st.vms.insert(newid, other);
            }
            if st.vms.contains_key(&newid) {
                return err(500, &format!("VM {newid} already exists"));
            }
            if first("storage").is_some() && first("full").as_deref() != Some("1") {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"data": null, "errors": {"storage": "option is only allowed for full clones"}})),
                )
                    .into_response();
            }
            let target = first("target").unwrap_or(node.clone());
            let boot = st.agent_boot_pings;
            let vm = TestVm {
                vmid: newid,
                name: first("name").unwrap_or_else(|| format!("Copy-of-VM-{}", tpl.name)),
                node: target,
                status: "stopped".into(),
                // The clone copies the template's config, tags included.
                tags: tpl.tags.clone(),
                template: false,
                pool: first("pool"),
                cores: tpl.cores,
                memory_mib: tpl.memory_mib,
                description: first("description").unwrap_or_default(),
                agent_pings_left: boot,
                full: first("full").map(|f| f == "1"),
                storage: first("storage"),
                agent: tpl.agent,
            };
            st.vms.insert(newid, vm);
            st.locks.insert(newid, "clone".into());
            let upid = task(&mut st, &node, "qmclone", vmid, Effect::Unlock(newid));
            ok(json!(upid))
        }
        ("GET", "/nodes/{node}/qemu/{vmid}/config") => {
            let Some(vm) = st.vms.get(&vmid).filter(|v| v.node == node) else {
                return err(500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"));
            };
            let mut c = json!({
                "name": vm.name, "cores": vm.cores, "memory": vm.memory_mib.to_string(), "sockets": 1,
                "ostype": "l26", "scsihw": "virtio-scsi-single", "boot": "order=scsi0;net0",
                "scsi0": format!("local-lvm:base-9000-disk-0/vm-{vmid}-disk-0,iothread=1,size=32G"),
                "net0": "virtio=BC:24:11:5E:7A:01,bridge=vmbr0,firewall=1",
                "digest": "4f2c1b0e9d8a7f6e5d4c3b2a19080706f5e4d3c2",
            });
            if vm.agent {
                c["agent"] = json!("enabled=1,fstrim_cloned_disks=1");
            }
            if vm.template {
                c["template"] = json!(1);
            }
            if !vm.tags.is_empty() {
                c["tags"] = json!(vm.tags);
            }
            if !vm.description.is_empty() {
                c["description"] = json!(vm.description);
            }
            ok(c)
        }
        ("PUT", "/nodes/{node}/qemu/{vmid}/config") => {
            let Some(vm) = st.vms.get(&vmid).filter(|v| v.node == node).cloned() else {
                return err(500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"));
            };
            if let Some(lock) = st.locks.get(&vmid) {
                return err(500, &format!("VM is locked ({lock})"));
            }
            let mut vm = vm;
            if let Some(c) = first("cores") {
                vm.cores = c.parse().unwrap_or(vm.cores);
            }
            if let Some(m) = first("memory") {
                vm.memory_mib = m.parse().unwrap_or(vm.memory_mib);
            }
            if let Some(t) = first("tags") {
                // Proxmox sorts tags and de-duplicates them.
                let mut set: Vec<String> =
                    t.split([';', ',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect();
                set.sort();
                set.dedup();
                vm.tags = set.join(";");
            }
            if let Some(d) = first("description") {
                vm.description = d;
            }
            st.vms.insert(vmid, vm);
            ok(Value::Null)
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/status/start") | ("POST", "/nodes/{node}/qemu/{vmid}/status/stop") => {
            let Some(vm) = st.vms.get(&vmid).filter(|v| v.node == node).cloned() else {
                return err(500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"));
            };
            let start = route.ends_with("start");
            if start && vm.status == "running" {
                return err(500, &format!("VM {vmid} already running"));
            }
            let (kind, effect) = if start { ("qmstart", Effect::Start(vmid)) } else { ("qmstop", Effect::Stop(vmid)) };
            let upid = task(&mut st, &node, kind, vmid, effect);
            ok(json!(upid))
        }
        ("DELETE", "/nodes/{node}/qemu/{vmid}") => {
            let Some(vm) = st.vms.get(&vmid).filter(|v| v.node == node).cloned() else {
                return err(500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"));
            };
            if vm.status == "running" {
                return err(500, &format!("VM {vmid} is running - destroy failed"));
            }
            let upid = task(&mut st, &node, "qmdestroy", vmid, Effect::Destroy(vmid));
            ok(json!(upid))
        }
        ("POST", r) | ("GET", r) if r.starts_with("/nodes/{node}/qemu/{vmid}/agent/") => {
            let Some(vm) = st.vms.get_mut(&vmid).filter(|v| v.node == node) else {
                return err(500, &format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"));
            };
            if vm.status != "running" {
                return err(500, &format!("VM {vmid} is not running"));
            }
            let cmd = r.rsplit('/').next().unwrap_or_default().to_string();
            if !vm.agent {
                return err(500, "No QEMU guest agent configured");
            }
            if vm.agent_pings_left > 0 {
                if cmd == "ping" {
                    vm.agent_pings_left -= 1;
                }
                return err(500, "QEMU guest agent is not running");
            }
            match cmd.as_str() {
                "ping" => ok(json!({})),
                "file-write" => {
                    let (Some(file), Some(content)) = (first("file"), first("content")) else {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"data": null, "errors": {"file": "missing"}})),
                        )
                            .into_response();
                    };
                    if content.len() > 61_440 {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(
                                json!({"data": null, "errors": {"content": "value may only be 61440 characters long"}}),
                            ),
                        )
                            .into_response();
                    }
                    st.files.insert((vmid, file), content);
                    ok(Value::Null)
                }
                "exec" => {
                    let command = params.get("command").cloned().unwrap_or_default();
                    st.execs.push((vmid, command.clone()));
                    // Emulate the shell: `mkdir '<guard>' 2>/dev/null || exit 0; ...` (bash) or
                    // `if (New-Item ... -Path '<guard>' ...) { ... }` (PowerShell) runs the script only
                    // when the guard did not exist; any other command runs it every time.
                    let text = command.last().cloned().unwrap_or_default();
                    let guarded = (text.starts_with("mkdir '") && text.contains("2>/dev/null || exit 0;"))
                        || text.starts_with("if (New-Item -ItemType Directory -Path '");
                    let guard = text.split('\'').nth(1).unwrap_or_default().to_string();
                    if !guarded || st.guards.insert((vmid, guard)) {
                        *st.script_runs.entry(vmid).or_default() += 1;
                    }
                    ok(json!({"pid": 1234 + st.execs.len()}))
                }
                "network-get-interfaces" => ok(json!({"result": [
                    {"name": "lo", "hardware-address": "00:00:00:00:00:00",
                     "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
                    {"name": "ens18", "hardware-address": "bc:24:11:5e:7a:01",
                     "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": format!("10.20.{}.{}", vmid / 256 % 256, vmid % 256), "prefix": 24},
                                      {"ip-address-type": "ipv6", "ip-address": "fe80::be24:11ff:fe5e:7a01", "prefix": 64}]}
                ]})),
                _ => err(501, &format!("agent command {cmd} not implemented")),
            }
        }
        _ => err(501, &format!("Method '{method} {route}' not implemented")),
    }
}

fn resource(st: &Inner, v: &TestVm) -> Value {
    let online = st.nodes.get(&v.node).copied().unwrap_or(false);
    let mut r = json!({
        "id": format!("qemu/{}", v.vmid),
        "type": "qemu",
        "vmid": v.vmid,
        "name": v.name,
        "node": v.node,
        "status": if online { v.status.as_str() } else { "unknown" },
        "template": if v.template { 1 } else { 0 },
        "maxcpu": v.cores,
        "maxmem": v.memory_mib * 1024 * 1024,
        "maxdisk": 34_359_738_368u64,
        "uptime": if v.status == "running" { 3600 } else { 0 },
        "cpu": 0.0123,
        "mem": 0,
        "disk": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
    });
    if !v.tags.is_empty() {
        r["tags"] = json!(v.tags);
    }
    if let Some(p) = &v.pool {
        r["pool"] = json!(p);
    }
    if let Some(l) = st.locks.get(&v.vmid) {
        r["lock"] = json!(l);
    }
    r
}

fn task(st: &mut Inner, node: &str, kind: &str, id: u32, effect: Effect) -> String {
    st.task_seq += 1;
    let upid = format!(
        "UPID:{node}:000A{:04X}:0F3E2D1C:6560A{:03X}:{kind}:{id}:{USER}!{TOKEN_NAME}:",
        st.task_seq, st.task_seq
    );
    let failure = st.task_failures.get_mut(kind).and_then(VecDeque::pop_front);
    if failure.is_some()
        && let Effect::Unlock(newid) = effect
    {
        // A failed clone is cleaned up by Proxmox.
        st.vms.remove(&newid);
        st.locks.remove(&newid);
    }
    let t = Task {
        node: node.to_string(),
        kind: kind.to_string(),
        polls_left: 1,
        exitstatus: failure.unwrap_or_else(|| "OK".into()),
        effect,
    };
    st.tasks.insert(upid.clone(), t);
    upid
}

fn apply(st: &mut Inner, effect: &Effect) {
    match *effect {
        Effect::None => {}
        Effect::Unlock(id) => {
            st.locks.remove(&id);
        }
        Effect::Start(id) => {
            if let Some(v) = st.vms.get_mut(&id) {
                v.status = "running".into();
            }
        }
        Effect::Stop(id) => {
            if let Some(v) = st.vms.get_mut(&id) {
                v.status = "stopped".into();
            }
        }
        Effect::Destroy(id) => {
            st.vms.remove(&id);
            st.locks.remove(&id);
            st.files.retain(|(v, _), _| *v != id);
        }
    }
}
