//! An in-process Proxmox VE API for tests, on the shared fake-API harness ([`crate::fake_api`]):
//! answers the calls `shared::providers::proxmox` makes, in the real API's shapes (`{"data": ...}`
//! envelopes, UPIDs, task status objects, errors as HTTP 500 with a `message`), and checks the
//! API-token header.
//!
//! It keeps nodes, VMs, tasks and guest files in memory and emulates the guest side of the startup
//! script (the run-once guard directory). Knobs: a failing task, injected statuses (401, 500, ...)
//! on the next calls to a route, an offline node, a slow guest agent, a VMID taken by "another
//! client" at clone time. Every request is recorded with its route template and parameters so tests
//! can check order and check them against the API schema. [`ProxmoxHarness`] drives it for the
//! provider conformance suite.

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use shared::providers::proxmox::tags;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The API user, token name and secret the server accepts.
pub const USER: &str = "kasm@pve";
/// The token's name.
pub const TOKEN_NAME: &str = "autoscale";
/// The token's secret.
pub const TOKEN_SECRET: &str = "5f0c1d2e-3b4a-4c5d-8e9f-a0b1c2d3e4f5";

/// One recorded request (method, route template below `/api2/json`, decoded path, parameters, ...).
pub use crate::fake_api::Recorded as Request;

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
    task_failures: HashMap<String, VecDeque<String>>,
    take_on_clone: BTreeSet<u32>,
    agent_boot_pings: u32,
    files: BTreeMap<(u32, String), String>,
    guards: BTreeSet<(u32, String)>,
    script_runs: BTreeMap<u32, u32>,
    execs: Vec<(u32, Vec<String>)>,
    permissions: Value,
    /// How many QEMU VMs the `/cluster/resources?type=vm` answers listed, in all.
    listed: usize,
    /// The request being answered will not get its answer: a task it starts runs to its end at
    /// once (on a real node the task runs on without anyone polling it).
    detach_tasks: bool,
}

/// The running server (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct ProxmoxTestServer {
    /// Base URL without `/api2/json`, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

/// Every route the server answers, below `/api2/json`.
const ROUTES: &[&str] = &[
    "GET /version",
    "GET /access/permissions",
    "GET /cluster/resources",
    "GET /nodes/{node}/tasks/{upid}/status",
    "POST /nodes/{node}/qemu/{vmid}/clone",
    "GET /nodes/{node}/qemu/{vmid}/config",
    "PUT /nodes/{node}/qemu/{vmid}/config",
    "POST /nodes/{node}/qemu/{vmid}/status/start",
    "POST /nodes/{node}/qemu/{vmid}/status/stop",
    "DELETE /nodes/{node}/qemu/{vmid}",
    "POST /nodes/{node}/qemu/{vmid}/agent/ping",
    "POST /nodes/{node}/qemu/{vmid}/agent/file-write",
    "POST /nodes/{node}/qemu/{vmid}/agent/exec",
    "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
];

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
            task_failures: HashMap::new(),
            take_on_clone: BTreeSet::new(),
            agent_boot_pings: 0,
            files: BTreeMap::new(),
            guards: BTreeSet::new(),
            script_runs: BTreeMap::new(),
            execs: Vec::new(),
            permissions: full_permissions(),
            listed: 0,
            detach_tasks: false,
        }));
        let mut b = FakeApi::builder()
            .prefix("/api2/json")
            .guard(|req| {
                let want = format!("PVEAPIToken={USER}!{TOKEN_NAME}={TOKEN_SECRET}");
                let got = req.headers.get("authorization").and_then(|v| v.to_str().ok());
                (got != Some(want.as_str())).then(|| err(401, "authentication failure"))
            })
            .unrouted(|method, path| err(501, &format!("Method '{method} {path}' not implemented")));
        for route in ROUTES {
            let st = inner.clone();
            b = b.route(
                route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    async move { answer(&st, req) }
                }),
            );
        }
        let api = b.start().await;
        ProxmoxTestServer { url: api.url.clone(), api, inner }
    }

    /// The fake API underneath (faults of every kind, the request record).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("proxmox test server lock")
    }

    /// The next `times` calls of `method route` (e.g. `GET /cluster/resources`) answer `status`
    /// with `message` (`{"data":null,"message":...}`).
    pub fn inject(&self, method: &str, route: &str, status: u16, message: &str, times: usize) {
        self.api.inject(&format!("{method} {route}"), Fault::Answer(err(status, message)), 0, times);
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
        self.api.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.api.clear_requests();
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

fn ok(data: Value) -> Reply {
    Reply::json(200, &json!({ "data": data }))
}

fn err(status: u16, message: &str) -> Reply {
    // Proxmox 8+ puts the message in the body as well as in the status line.
    Reply::json(status, &json!({ "data": null, "message": format!("{message}\n") }))
}

fn bad_request(errors: Value) -> Reply {
    Reply::json(400, &json!({ "data": null, "errors": errors }))
}

/// The answer of the route `req` matched (authenticated, not faulted).
fn answer(inner: &Arc<Mutex<Inner>>, req: Incoming) -> Reply {
    let method = req.method.clone();
    let route = req.route.clone();
    let params = req.params.clone();
    let mut st = inner.lock().expect("lock");
    st.detach_tasks = req.answer_lost;
    if let Some(node) = req.vars.get("node")
        && st.nodes.get(node) == Some(&false)
    {
        // What pveproxy answers when it cannot reach the node it proxies to.
        return err(595, &format!("Connection refused - no route to host {node}"));
    }
    let first = |k: &str| params.get(k).and_then(|v| v.first()).cloned();
    let vmid: u32 = req.var("vmid").parse().unwrap_or(0);
    let node = req.var("node").to_string();
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
            _ => {
                let all: Vec<Value> = st.vms.values().map(|v| resource(&st, v)).collect();
                st.listed += all.len();
                ok(Value::Array(all))
            }
        },
        ("GET", "/nodes/{node}/tasks/{upid}/status") => {
            let upid = req.var("upid").to_string();
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
                return bad_request(json!({"newid": "property is missing and it is not optional"}));
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
                return bad_request(json!({"storage": "option is only allowed for full clones"}));
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
                        return bad_request(json!({"file": "missing"}));
                    };
                    if content.len() > 61_440 {
                        return bad_request(json!({"content": "value may only be 61440 characters long"}));
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
    let mut t = Task {
        node: node.to_string(),
        kind: kind.to_string(),
        polls_left: 1,
        exitstatus: failure.unwrap_or_else(|| "OK".into()),
        effect,
    };
    if st.detach_tasks {
        // Nobody will poll it: it runs to its end on its own.
        t.polls_left = 0;
        if t.exitstatus == "OK" {
            apply(st, &t.effect);
        }
        t.effect = Effect::None;
    }
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

/// The Proxmox test server as the provider conformance suite's [`Harness`]. The suite's operations
/// are the calls that do the work: `Create` = `POST .../clone`, `Get` and `List` = `GET
/// /cluster/resources` (the provider reads single VMs from the cluster listing too), `Delete` =
/// `DELETE /nodes/{node}/qemu/{vmid}`. Faults are answered as Proxmox does: 401/403 with a
/// `message`, a missing VM as a 500 "Configuration file ... does not exist", a timeout as no answer
/// for `stall`, out of capacity as a clone task that fails on full storage; 409 and 429 (with
/// `Retry-After`) as a reverse proxy in front of pveproxy would send them.
#[derive(Debug)]
pub struct ProxmoxHarness {
    server: ProxmoxTestServer,
    stall: Duration,
    /// Foreign VMs are added at VMIDs counting down from here (inside the provider's range).
    next_foreign: Mutex<u32>,
}

impl ProxmoxHarness {
    /// A harness over `server` for a provider whose VMID range ends at `range_upper` and whose
    /// HTTP client gives up before `stall`.
    pub fn new(server: ProxmoxTestServer, range_upper: u32, stall: Duration) -> Self {
        ProxmoxHarness { server, stall, next_foreign: Mutex::new(range_upper) }
    }

    fn route(op: Op) -> &'static str {
        match op {
            Op::Create => "POST /nodes/{node}/qemu/{vmid}/clone",
            Op::Get | Op::List => "GET /cluster/resources",
            Op::Delete => "DELETE /nodes/{node}/qemu/{vmid}",
        }
    }
}

#[async_trait]
impl Harness for ProxmoxHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => err(401, "authentication failure"),
            F::Forbidden => err(403, "Permission check failed (/vms, VM.Allocate)"),
            F::NotFound => err(500, "Configuration file 'nodes/pve1/qemu-server/5099.conf' does not exist"),
            F::Conflict => err(409, "VM is locked (backup)"),
            F::RateLimited { retry_after } => {
                err(429, "too many requests").header("Retry-After", retry_after.as_secs().to_string())
            }
            F::ServerError => err(500, "internal server error"),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "too late") };
                return self.server.api.inject(Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!((op, skip), (Op::Create, 0), "out of capacity is a create's answer");
                let mut st = self.server.lock();
                let q = st.task_failures.entry("qmclone".into()).or_default();
                q.extend(std::iter::repeat_n(
                    "clone failed: lvcreate 'pve/vm-5000-disk-0' error:   Volume group \"pve\" has insufficient free \
                     space (0 extents): 8192 required."
                        .to_string(),
                    times,
                ));
                return;
            }
        };
        self.server.api.inject(Self::route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(Self::route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
        self.server.lock().task_failures.clear();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(Self::route(op))
    }

    fn retries(&self) -> RetryRules {
        // The clone is sent once (Proxmox answers a taken VMID with a 500 that no retry fixes);
        // the engine retries the create.
        RetryRules { retried: &[Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        // /cluster/resources answers in one piece.
        None
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        // The clone request carries no idempotency token.
        None
    }

    fn missing_id(&self) -> String {
        "4999".into()
    }

    async fn create_foreign_vm(&self) -> String {
        let vmid = {
            let mut next = self.next_foreign.lock().expect("lock");
            while self.server.vm(*next).is_some() {
                *next -= 1;
            }
            *next
        };
        self.server.add_vm(vmid, &format!("foreign-{vmid}"), "pve1", "team-ops");
        vmid.to_string()
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_vm(id.parse().expect("a VMID"));
    }

    async fn vm_exists(&self, id: &str) -> bool {
        id.parse().ok().and_then(|vmid| self.server.vm(vmid)).is_some()
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim_tag = format!("{}{}", tags::CLAIM, tags::encode(spec.claim.as_str()));
        self.server.vms().iter().filter(|v| v.tags.split(';').any(|t| t == claim_tag) || v.name == spec.name).count()
    }
}
