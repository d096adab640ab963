//! An in-process vCenter for tests, on the shared fake-API harness ([`crate::fake_api`]): answers
//! the vSphere Automation REST calls `shared::providers::vsphere` makes (below `/api`), in the wire
//! names of VMware's API metadata (`VM.summary`, `VM.info`, `cis.task.info`, `vm.data_sets.summary`,
//! `vm.tools.info`, `vm.guest.processes.info`, vAPI errors as `{error_type, messages: [{id,
//! default_message, args}]}`), with session authentication (`POST /api/session` with Basic, then the
//! `vmware-api-session-id` header), and refuses request bodies carrying names the structs lack.
//!
//! It holds one datacenter, one VM folder path `Kasm/Autoscale`, a cluster, a resource pool, a
//! datastore with finite free space, the template (VMware Tools installed), and the VMs cloned from
//! it. A clone is a task that succeeds after [`TASK_POLLS`] polls (the VM exists, powered off, from
//! the clone's answer on); a clone the datastore has no room for fails its task with
//! `UNABLE_TO_ALLOCATE_RESOURCE`. Powering on starts VMware Tools; guest file transfers answer a
//! URL on this server (`PUT /api/transfer/{id}`, no session, as an ESXi ticket); a guest process
//! "runs" the uploaded script: it exits with the number after `EXIT_CODE=` in it (0 without), after
//! one poll. [`VsphereHarness`] drives it for the provider conformance suite.
//!
//! A content library holds [`LIBRARY_TEMPLATE`] (a VM template: `GET
//! /api/vcenter/vm-template/library-items/{item}` answers its info) and [`LIBRARY_OVF`] (an OVF
//! item: that read answers `null`, as VMware's reference says for an item holding no VM template).
//! `POST /api/content/library/item?action=find` matches names case-insensitively (VMware's
//! `FindSpec.name`); `POST /api/vcenter/vm-template/library-items/{item}?action=deploy` takes a
//! `DeploySpec` (unknown names refused) and answers the new VM's id once it exists (synchronous: the
//! API has no task form of it), powered off, taking a clone's disk space.

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use shared::providers::vsphere::labels;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The vCenter user the server accepts.
pub const USERNAME: &str = "kasm-svc@vsphere.local";
/// That user's password.
pub const PASSWORD: &str = "vC3nter-pa55word!";
/// The guest account.
pub const GUEST_USER: &str = "kasm";
/// Its password.
pub const GUEST_PASSWORD: &str = "Gu3st-pa55word!";
/// The datacenter's name and id.
pub const DATACENTER: (&str, &str) = ("DC1", "datacenter-3");
/// The template's name and id.
pub const TEMPLATE: (&str, &str) = ("ubuntu-2204-kasm", "vm-100");
/// The cluster's name and id.
pub const CLUSTER: (&str, &str) = ("Cluster1", "domain-c8");
/// The resource pool's name and id.
pub const POOL: (&str, &str) = ("Kasm", "resgroup-21");
/// The datastore's name and id.
pub const DATASTORE: (&str, &str) = ("ssd-01", "datastore-15");
/// The VM folders: (name, id, parent id).
pub const FOLDERS: [(&str, &str, &str); 2] =
    [("Kasm", "group-v31", "group-v4"), ("Autoscale", "group-v32", "group-v31")];
/// Polls of a task before it is done.
pub const TASK_POLLS: u32 = 2;
/// The disk space one clone takes, bytes.
pub const CLONE_BYTES: u64 = 20 << 30;
/// The content-library item holding a VM template: (name, item id).
pub const LIBRARY_TEMPLATE: (&str, &str) = ("ubuntu-2404-kasm-lib", "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
/// A content-library item holding an OVF package (no VM template): (name, item id).
pub const LIBRARY_OVF: (&str, &str) = ("ubuntu-2404-ovf", "7a2b3c4d-5e6f-4b7c-8d9e-0f1a2b3c4d5e");

/// A task that has failed for lack of datastore space (the harness's out-of-capacity answer).
pub const CAPACITY_TASK: &str = "52a1f7c4-0000-4000-8000-00000000fa11:com.vmware.vcenter.vm";

/// One recorded request.
pub use crate::fake_api::Recorded as Request;

/// A VM as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestVm {
    /// `vm-<n>`.
    pub id: String,
    /// Name.
    pub name: String,
    /// `POWERED_ON`, `POWERED_OFF`.
    pub power_state: String,
    /// CPUs.
    pub cpus: u64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Data sets: (id, name, description).
    pub data_sets: Vec<(String, String, String)>,
    /// The clone's placement as sent.
    pub placement: Value,
    /// Guest files (path → content).
    pub files: BTreeMap<String, String>,
    /// Every guest process started: (program, arguments, script content run).
    pub processes: Vec<(String, String, String)>,
    /// The guest user's `~/.ssh/authorized_keys` lines (written by the provider's key command).
    pub authorized_keys: Vec<String>,
    /// A cloud-init guest customization set and not applied yet: (metadata, userdata).
    pub pending_cloud_init: Option<(String, String)>,
    /// The cloud-init data the guest booted with (applied at the power-on after it was set).
    pub cloud_init: Option<(String, String)>,
    /// Whether it holds disk space on the datastore (clones do).
    pub clone: bool,
    /// What it was made from: the template VM's id, or `library-item:<id>` for a deploy.
    pub source: String,
}

#[derive(Debug, Clone)]
struct TestTask {
    polls_left: u32,
    vm: Option<String>,
    error: Option<Value>,
}

#[derive(Debug)]
struct Inner {
    vms: BTreeMap<String, TestVm>,
    tasks: BTreeMap<String, TestTask>,
    sessions: Vec<String>,
    /// (vm, path) of each transfer id.
    transfers: BTreeMap<String, (String, String)>,
    /// (vm, pid) → (exit code, polls before it finishes).
    procs: BTreeMap<(String, i64), (i64, u32)>,
    next: u64,
    free_bytes: u64,
    listed: usize,
    password: String,
    sessions_made: usize,
    sessions_ended: usize,
    /// The server root (transfer URLs point here).
    base: String,
    /// vim25: requests the subset refused.
    soap_violations: Vec<String>,
    /// vim25: every checked call (method, body).
    soap_calls: Vec<(String, String)>,
    /// vim25: faults to answer instead of the next call of a method (method, fault type, message).
    soap_faults: Vec<(String, String, String)>,
    /// vim25: session ids (the `vmware_soap_session` cookie's value).
    soap_sessions: Vec<String>,
    soap_logins: usize,
    /// The template has no snapshots.
    no_snapshots: bool,
    /// The exit code of the guest's SSH-key command (0: it installs the key).
    key_exit: i64,
    vim_tasks: BTreeMap<String, VimTask>,
    /// Storage DRS recommendations (key → the placement spec).
    recommendations: BTreeMap<String, soap::X>,
    /// Faults the next vim25 clone tasks end with (type, message).
    vim_task_faults: std::collections::VecDeque<(String, String)>,
    vim_clones: BTreeMap<String, VimClone>,
    /// The template's name as vim25 reports it, when it differs from /api's.
    vim_template_name: Option<String>,
    /// vim25: each session's `UserSession.key` (cookie value → key).
    soap_keys: BTreeMap<String, String>,
    /// Privileges not granted: (user, entity id, privilege id). Every other privilege is granted
    /// on every entity.
    revoked: std::collections::BTreeSet<(String, String, String)>,
}

/// The running server.
#[derive(Debug, Clone)]
pub struct VsphereTestServer {
    /// The server root, e.g. `http://127.0.0.1:41234` (the API is below `/api`).
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

const ROUTES: &[&str] = &[
    "POST /session",
    "GET /session",
    "DELETE /session",
    "GET /vcenter/datacenter",
    "GET /vcenter/folder",
    "GET /vcenter/cluster",
    "GET /vcenter/resource-pool",
    "GET /vcenter/datastore",
    "GET /vcenter/vm",
    "POST /vcenter/vm?action=clone",
    "POST /content/library/item?action=find",
    "GET /content/library/item/{item}",
    "GET /vcenter/vm-template/library-items/{item}",
    "POST /vcenter/vm-template/library-items/{item}?action=deploy",
    "GET /cis/tasks/{task}",
    "GET /vcenter/vm/{vm}",
    "DELETE /vcenter/vm/{vm}",
    "GET /vcenter/vm/{vm}/data-sets",
    "POST /vcenter/vm/{vm}/data-sets",
    "PATCH /vcenter/vm/{vm}/data-sets/{ds}",
    "PATCH /vcenter/vm/{vm}/hardware/cpu",
    "PATCH /vcenter/vm/{vm}/hardware/memory",
    "PUT /vcenter/vm/{vm}/guest/customization",
    "POST /vcenter/vm/{vm}/power?action=start",
    "POST /vcenter/vm/{vm}/power?action=stop",
    "GET /vcenter/vm/{vm}/tools",
    "GET /vcenter/vm/{vm}/guest/operations",
    "GET /vcenter/vm/{vm}/guest/identity",
    "POST /vcenter/vm/{vm}/guest/filesystem?action=create",
    "POST /vcenter/vm/{vm}/guest/processes?action=create",
    "POST /vcenter/vm/{vm}/guest/processes/{pid}?action=get",
    "PUT /transfer/{id}",
];

/// A vAPI error answer.
pub fn err(status: u16, error_type: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error_type": error_type, "messages": [{"args": [], "default_message": message,
            "id": format!("com.vmware.api.vcenter.{}", error_type.to_ascii_lowercase())}]}),
    )
}

fn not_found(what: &str) -> Reply {
    err(404, "NOT_FOUND", &format!("{what} was not found"))
}

fn bad(message: impl Into<String>) -> Reply {
    err(400, "INVALID_ARGUMENT", &message.into())
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn template_vm() -> TestVm {
    TestVm {
        id: TEMPLATE.1.into(),
        name: TEMPLATE.0.into(),
        power_state: "POWERED_OFF".into(),
        cpus: 2,
        memory_mib: 4096,
        data_sets: Vec::new(),
        placement: json!({}),
        files: BTreeMap::new(),
        processes: Vec::new(),
        authorized_keys: Vec::new(),
        pending_cloud_init: None,
        cloud_init: None,
        clone: false,
        source: String::new(),
    }
}

impl VsphereTestServer {
    /// Starts a server with the template and room on the datastore for `clones` clones.
    pub async fn start_with_room(clones: u64) -> VsphereTestServer {
        let mut vms = BTreeMap::new();
        vms.insert(TEMPLATE.1.to_string(), template_vm());
        let mut tasks = BTreeMap::new();
        tasks.insert(CAPACITY_TASK.to_string(), TestTask { polls_left: 0, vm: None, error: Some(no_space()) });
        let inner = Arc::new(Mutex::new(Inner {
            vms,
            tasks,
            sessions: Vec::new(),
            transfers: BTreeMap::new(),
            procs: BTreeMap::new(),
            next: 200,
            free_bytes: clones * CLONE_BYTES,
            listed: 0,
            password: PASSWORD.into(),
            sessions_made: 0,
            sessions_ended: 0,
            base: String::new(),
            soap_violations: Vec::new(),
            soap_calls: Vec::new(),
            soap_faults: Vec::new(),
            soap_sessions: Vec::new(),
            soap_logins: 0,
            no_snapshots: false,
            key_exit: 0,
            vim_tasks: BTreeMap::new(),
            recommendations: BTreeMap::new(),
            vim_task_faults: std::collections::VecDeque::new(),
            vim_clones: BTreeMap::new(),
            vim_template_name: None,
            soap_keys: BTreeMap::new(),
            revoked: std::collections::BTreeSet::new(),
        }));
        let g = inner.clone();
        let mut b = FakeApi::builder()
            .prefix("/api")
            .guard(move |req| {
                let st = g.lock().expect("server lock");
                if req.path.starts_with("/transfer/") {
                    return None;
                }
                if req.method.as_str() == "POST" && req.path == "/session" {
                    let want = basic(USERNAME, &st.password);
                    let got = req.headers.get("authorization").and_then(|v| v.to_str().ok());
                    return (got != Some(want.as_str()))
                        .then(|| err(401, "UNAUTHENTICATED", "Authentication required."));
                }
                let got = req.headers.get("vmware-api-session-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
                (!st.sessions.iter().any(|s| s == got)).then(|| err(401, "UNAUTHENTICATED", "Authentication required."))
            })
            .unrouted(|m, p| err(404, "NOT_FOUND", &format!("no API at {m} {p}")));
        // Requests outside `/api` reach the fallback with the path `/` (the harness strips what it
        // cannot route): the vim25 endpoint, `POST /sdk`. The client's `/sdk` path is pinned by its
        // own unit test; here every such request must be a valid vim25 call.
        let soap_state = inner.clone();
        b = b.fallback(fake_api::handler(move |req| {
            let st = soap_state.clone();
            async move {
                if req.path != "/" {
                    return err(404, "NOT_FOUND", &format!("no API at {} {}", req.method, req.path));
                }
                if req.method.as_str() != "POST" {
                    return soap::fault("InvalidRequest", "the vim25 endpoint takes POST only");
                }
                soap::answer(&st, req)
            }
        }));
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
        inner.lock().expect("server lock").base = api.url.trim_end_matches('/').to_string();
        VsphereTestServer { url: api.url.clone(), api, inner }
    }

    /// Starts a server with room for 100 clones.
    pub async fn start() -> VsphereTestServer {
        Self::start_with_room(100).await
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

    /// Every VM but the template.
    pub fn vms(&self) -> Vec<TestVm> {
        self.lock().vms.values().filter(|v| v.id != TEMPLATE.1).cloned().collect()
    }

    /// VM `id`.
    pub fn vm(&self, id: &str) -> Option<TestVm> {
        self.lock().vms.get(id).cloned()
    }

    /// Adds a powered-on VM of an operator's (no data set); returns its id.
    pub fn add_vm(&self, name: &str) -> String {
        let mut st = self.lock();
        st.next += 1;
        let id = format!("vm-{}", st.next);
        st.vms.insert(
            id.clone(),
            TestVm { id: id.clone(), name: name.into(), power_state: "POWERED_ON".into(), ..template_vm() },
        );
        id
    }

    /// Removes VM `id` (as an operator would).
    pub fn remove_vm(&self, id: &str) {
        self.lock().vms.remove(id);
    }

    /// Changes the password the server accepts.
    pub fn set_password(&self, password: &str) {
        self.lock().password = password.into();
    }

    /// Ends every session (as vCenter does to idle ones).
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Sessions open now (created and neither ended nor expired).
    pub fn live_sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Sessions created and ended so far.
    pub fn session_counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.sessions_made, st.sessions_ended)
    }

    /// Free bytes on the datastore.
    pub fn free_bytes(&self) -> u64 {
        self.lock().free_bytes
    }

    /// vim25: the requests the subset refused (empty when every request was valid).
    pub fn soap_violations(&self) -> Vec<String> {
        self.lock().soap_violations.clone()
    }

    /// vim25: the bodies of every valid call of `method`.
    pub fn soap_calls(&self, method: &str) -> Vec<String> {
        self.lock().soap_calls.iter().filter(|(m, _)| m == method).map(|(_, b)| b.clone()).collect()
    }

    /// vim25: answers the next call of `method` with a fault of type `kind`.
    pub fn inject_soap_fault(&self, method: &str, kind: &str, message: &str) {
        self.lock().soap_faults.push((method.into(), kind.into(), message.into()));
    }

    /// vim25: the next clone task ends with a fault of type `kind`.
    pub fn fail_next_vim_task(&self, kind: &str, message: &str) {
        self.lock().vim_task_faults.push_back((kind.into(), message.into()));
    }

    /// vim25: `privilege` is no longer granted to the service account on the entity `entity`
    /// (HasPrivilegeOnEntities answers `isGranted` false for it).
    pub fn revoke_privilege(&self, entity: &str, privilege: &str) {
        self.lock().revoked.insert((USERNAME.to_string(), entity.to_string(), privilege.to_string()));
    }

    /// vim25: ends every session (as vCenter does to idle ones).
    pub fn expire_soap_sessions(&self) {
        self.lock().soap_sessions.clear();
    }

    /// vim25: logins so far, and sessions open now.
    pub fn soap_sessions(&self) -> (usize, usize) {
        let st = self.lock();
        (st.soap_logins, st.soap_sessions.len())
    }

    /// vim25: how VM `id` was cloned, when it was.
    pub fn vim_clone(&self, id: &str) -> Option<VimClone> {
        self.lock().vim_clones.get(id).cloned()
    }

    /// Makes vim25 report another name for the template's id (an `/api` id that is not the vim25
    /// reference of the same VM).
    pub fn set_vim25_template_name(&self, name: &str) {
        self.lock().vim_template_name = Some(name.into());
    }

    /// Removes the template's snapshots.
    /// Makes the guest's SSH-key command exit with `code` (0: it installs the key again).
    pub fn set_key_exit(&self, code: i64) {
        self.lock().key_exit = code;
    }

    pub fn drop_snapshots(&self) {
        self.lock().no_snapshots = true;
    }
}

fn no_space() -> Value {
    json!({"error_type": "UNABLE_TO_ALLOCATE_RESOURCE", "messages": [{"args": [DATASTORE.0],
        "default_message": format!("Insufficient disk space on datastore '{}'.", DATASTORE.0),
        "id": "com.vmware.vim.vmomi.fault.InsufficientDiskSpace"}]})
}

fn unknown_keys(o: &Map<String, Value>, allowed: &[&str]) -> Vec<String> {
    o.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect()
}

fn param_all<'a>(req: &'a Incoming, k: &str) -> Vec<&'a str> {
    req.params.get(k).map(|v| v.iter().map(String::as_str).collect()).unwrap_or_default()
}

/// Checks the query keys against a filter spec's field names (plus the fixed `action`).
fn check_query(req: &Incoming, allowed: &[&str]) -> Option<Reply> {
    let extra: Vec<&String> = req.params.keys().filter(|k| !allowed.contains(&k.as_str()) && *k != "action").collect();
    (!extra.is_empty()).then(|| bad(format!("the filter spec has no {extra:?}")))
}

fn named(req: &Incoming, name: &str) -> bool {
    let names = param_all(req, "names");
    names.is_empty() || names.contains(&name)
}

fn in_dc(req: &Incoming) -> Result<(), Reply> {
    let dcs = param_all(req, "datacenters");
    if dcs.is_empty() || dcs.contains(&DATACENTER.1) { Ok(()) } else { Err(Reply::json(200, &json!([]))) }
}

fn guest_creds_ok(b: &Value) -> Result<(), Reply> {
    let c = &b["credentials"];
    let Some(o) = c.as_object() else { return Err(bad("credentials are required")) };
    let extra = unknown_keys(o, &["interactive_session", "password", "saml_token", "type", "user_name"]);
    if !extra.is_empty() || c["interactive_session"].as_bool().is_none() || c["type"] != "USERNAME_PASSWORD" {
        return Err(bad("credentials must be vm.guest.credentials (interactive_session, type, user_name, password)"));
    }
    if c["user_name"] != GUEST_USER || c["password"] != GUEST_PASSWORD {
        return Err(err(
            401,
            "UNAUTHENTICATED",
            "Failed to authenticate with the guest operating system using the supplied credentials.",
        ));
    }
    Ok(())
}

fn summary(v: &TestVm) -> Value {
    json!({"vm": v.id, "name": v.name, "power_state": v.power_state, "cpu_count": v.cpus, "memory_size_MiB": v.memory_mib})
}

fn answer(inner: &Arc<Mutex<Inner>>, req: Incoming) -> Reply {
    let mut st = inner.lock().expect("server lock");
    if req.method.as_str() == "PATCH"
        || (req.method.as_str() == "PUT" && req.route != "/transfer/{id}")
        || (req.method.as_str() == "POST" && !req.body.is_empty())
    {
        let ct = req.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if ct != "application/json" {
            return bad(format!("content-type must be application/json, got `{ct}`"));
        }
    }
    let vm_id = req.var("vm").to_string();
    match (req.method.as_str(), req.route.as_str()) {
        ("POST", "/session") => {
            st.next += 1;
            let id = format!("b00c{:028x}", st.next);
            st.sessions.push(id.clone());
            st.sessions_made += 1;
            Reply::json(201, &json!(id))
        }
        ("GET", "/session") => Reply::json(
            200,
            &json!({"user": format!("VSPHERE.LOCAL\\{}", USERNAME.split('@').next().unwrap_or_default()),
                "created_time": "2026-12-01T08:00:00.000Z", "last_accessed_time": "2026-12-01T08:00:01.000Z"}),
        ),
        ("DELETE", "/session") => {
            let got =
                req.headers.get("vmware-api-session-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            st.sessions.retain(|s| *s != got);
            st.sessions_ended += 1;
            Reply::empty(204)
        }
        ("GET", "/vcenter/datacenter") => {
            if let Some(r) = check_query(&req, &["datacenters", "folders", "names"]) {
                return r;
            }
            let items: Vec<Value> = [DATACENTER]
                .iter()
                .filter(|(n, _)| named(&req, n))
                .map(|(n, id)| json!({"datacenter": id, "name": n}))
                .collect();
            Reply::json(200, &json!(items))
        }
        ("GET", "/vcenter/folder") => {
            if let Some(r) = check_query(&req, &["datacenters", "folders", "names", "parent_folders", "type"]) {
                return r;
            }
            if let Err(r) = in_dc(&req) {
                return r;
            }
            let parents = param_all(&req, "parent_folders");
            let items: Vec<Value> = FOLDERS
                .iter()
                .filter(|(n, _, p)| named(&req, n) && (parents.is_empty() || parents.contains(p)))
                .filter(|_| req.param("type").is_none_or(|t| t == "VIRTUAL_MACHINE"))
                .map(|(n, id, _)| json!({"folder": id, "name": n, "type": "VIRTUAL_MACHINE"}))
                .collect();
            Reply::json(200, &json!(items))
        }
        ("GET", "/vcenter/cluster") => {
            if let Some(r) = check_query(&req, &["clusters", "datacenters", "folders", "names"]) {
                return r;
            }
            if let Err(r) = in_dc(&req) {
                return r;
            }
            let items: Vec<Value> = [CLUSTER]
                .iter()
                .filter(|(n, _)| named(&req, n))
                .map(|(n, id)| json!({"cluster": id, "name": n, "drs_enabled": true, "ha_enabled": false}))
                .collect();
            Reply::json(200, &json!(items))
        }
        ("GET", "/vcenter/resource-pool") => {
            if let Some(r) = check_query(
                &req,
                &["clusters", "datacenters", "hosts", "names", "parent_resource_pools", "resource_pools"],
            ) {
                return r;
            }
            if let Err(r) = in_dc(&req) {
                return r;
            }
            let items: Vec<Value> = [POOL]
                .iter()
                .filter(|(n, _)| named(&req, n))
                .map(|(n, id)| json!({"resource_pool": id, "name": n}))
                .collect();
            Reply::json(200, &json!(items))
        }
        ("GET", "/vcenter/datastore") => {
            if let Some(r) = check_query(&req, &["datacenters", "datastores", "folders", "names", "types"]) {
                return r;
            }
            if let Err(r) = in_dc(&req) {
                return r;
            }
            let free = st.free_bytes;
            let items: Vec<Value> = [DATASTORE].iter().filter(|(n, _)| named(&req, n))
                .map(|(n, id)| json!({"datastore": id, "name": n, "type": "VMFS", "free_space": free, "capacity": 2u64 << 40}))
                .collect();
            Reply::json(200, &json!(items))
        }
        ("GET", "/vcenter/vm") => {
            if let Some(r) = check_query(
                &req,
                &["clusters", "datacenters", "folders", "hosts", "names", "power_states", "resource_pools", "vms"],
            ) {
                return r;
            }
            if let Err(r) = in_dc(&req) {
                return r;
            }
            let items: Vec<Value> = st.vms.values().filter(|v| named(&req, &v.name)).map(summary).collect();
            st.listed += items.len();
            Reply::json(200, &json!(items))
        }
        ("POST", "/vcenter/vm?action=clone") => {
            if req.param("vmw-task") != Some("true") {
                return bad("this server answers clones as tasks (vmw-task=true)");
            }
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(
                o,
                &[
                    "disks_to_remove",
                    "disks_to_update",
                    "guest_customization_spec",
                    "name",
                    "placement",
                    "power_on",
                    "source",
                ],
            );
            if !extra.is_empty() {
                return bad(format!("VM.clone_spec has no {extra:?}"));
            }
            if let Some(p) = o.get("placement") {
                let Some(p) = p.as_object() else { return bad("placement must be an object") };
                let extra = unknown_keys(p, &["cluster", "datastore", "folder", "host", "resource_pool"]);
                if !extra.is_empty() {
                    return bad(format!("VM.clone_placement_spec has no {extra:?}"));
                }
                for (k, want) in [
                    ("folder", FOLDERS[1].1),
                    ("cluster", CLUSTER.1),
                    ("resource_pool", POOL.1),
                    ("datastore", DATASTORE.1),
                ] {
                    if p.get(k).is_some_and(|v| v != want && v != FOLDERS[0].1) {
                        return not_found(&format!("{k} {}", p[k]));
                    }
                }
            }
            let Some(name) = o.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
                return bad("name is required");
            };
            let Some(source) = o.get("source").and_then(Value::as_str) else { return bad("source is required") };
            let Some(src) = st.vms.get(source).cloned() else { return not_found(&format!("VM {source}")) };
            if st.vms.values().any(|v| v.name == name) {
                return err(400, "ALREADY_EXISTS", &format!("The name '{name}' already exists."));
            }
            st.next += 1;
            let task = format!("52a1f7c4-{:04x}-4000-8000-{:012x}:com.vmware.vcenter.vm", st.next % 0xffff, st.next);
            if st.free_bytes < CLONE_BYTES {
                st.tasks.insert(task.clone(), TestTask { polls_left: 1, vm: None, error: Some(no_space()) });
            } else {
                st.free_bytes -= CLONE_BYTES;
                let id = format!("vm-{}", st.next);
                let vm = TestVm {
                    id: id.clone(),
                    name: name.into(),
                    power_state: if o.get("power_on") == Some(&json!(true)) {
                        "POWERED_ON".into()
                    } else {
                        "POWERED_OFF".into()
                    },
                    placement: o.get("placement").cloned().unwrap_or(json!({})),
                    clone: true,
                    source: source.to_string(),
                    ..src
                };
                st.vms.insert(id.clone(), vm);
                st.tasks.insert(
                    task.clone(),
                    TestTask { polls_left: if req.answer_lost { 0 } else { TASK_POLLS }, vm: Some(id), error: None },
                );
            }
            Reply::json(200, &json!(task))
        }
        ("POST", "/content/library/item?action=find") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["cached", "library_id", "name", "source_id", "type"]);
            if !extra.is_empty() {
                return bad(format!("content.library.item.find_spec has no {extra:?}"));
            }
            let name = o.get("name").and_then(Value::as_str).map(str::to_ascii_lowercase);
            let ids: Vec<&str> = [LIBRARY_TEMPLATE, LIBRARY_OVF]
                .iter()
                .filter(|(n, _)| name.as_deref().is_none_or(|want| n.to_ascii_lowercase() == want))
                .map(|(_, id)| *id)
                .collect();
            Reply::json(200, &json!(ids))
        }
        ("GET", "/content/library/item/{item}") => {
            let id = req.var("item");
            match [LIBRARY_TEMPLATE, LIBRARY_OVF].iter().find(|(_, i)| *i == id) {
                Some((name, id)) => Reply::json(
                    200,
                    &json!({"id": id, "name": name, "library_id": "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
                        "type": if *id == LIBRARY_TEMPLATE.1 { "vm-template" } else { "ovf" },
                        "cached": true, "size": CLONE_BYTES, "version": "2", "content_version": "1",
                        "creation_time": "2026-11-01T10:00:00.000Z", "last_modified_time": "2026-11-01T10:00:00.000Z",
                        "description": "", "metadata_version": "1", "security_compliance": true}),
                ),
                None => not_found(&format!("library item {id}")),
            }
        }
        ("GET", "/vcenter/vm-template/library-items/{item}") => {
            let id = req.var("item");
            if id == LIBRARY_TEMPLATE.1 {
                Reply::json(
                    200,
                    &json!({"guest_OS": "UBUNTU_64", "vm_template": "vm-150",
                        "cpu": {"count": 2, "cores_per_socket": 1}, "memory": {"size_MiB": 4096},
                        "vm_home_storage": {"datastore": DATASTORE.1}, "disks": {}, "nics": {}}),
                )
            } else if id == LIBRARY_OVF.1 {
                Reply::json(200, &Value::Null)
            } else {
                not_found(&format!("library item {id}"))
            }
        }
        ("POST", "/vcenter/vm-template/library-items/{item}?action=deploy") => {
            let item = req.var("item").to_string();
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(
                o,
                &[
                    "description",
                    "disk_storage",
                    "disk_storage_overrides",
                    "guest_customization",
                    "hardware_customization",
                    "name",
                    "placement",
                    "powered_on",
                    "tags",
                    "vm_home_storage",
                ],
            );
            if !extra.is_empty() {
                return bad(format!("vm_template.library_items.deploy_spec has no {extra:?}"));
            }
            if let Some(p) = o.get("placement") {
                let Some(p) = p.as_object() else { return bad("placement must be an object") };
                let extra = unknown_keys(p, &["cluster", "folder", "host", "resource_pool"]);
                if !extra.is_empty() {
                    return bad(format!("vm_template.library_items.deploy_placement_spec has no {extra:?}"));
                }
                for (k, want) in [("folder", FOLDERS[1].1), ("cluster", CLUSTER.1), ("resource_pool", POOL.1)] {
                    if p.get(k).is_some_and(|v| v != want && v != FOLDERS[0].1) {
                        return not_found(&format!("{k} {}", p[k]));
                    }
                }
            }
            for key in ["vm_home_storage", "disk_storage"] {
                if let Some(d) = o.get(key) {
                    let Some(d) = d.as_object() else { return bad(format!("{key} must be an object")) };
                    let extra = unknown_keys(d, &["datastore", "storage_policy"]);
                    if !extra.is_empty() {
                        return bad(format!("{key} has no {extra:?}"));
                    }
                    if d.get("datastore").is_some_and(|v| v != DATASTORE.1) {
                        return not_found(&format!("datastore {}", d["datastore"]));
                    }
                }
            }
            let Some(name) = o.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
                return bad("name is required");
            };
            if item == LIBRARY_OVF.1 {
                return bad(format!("library item {item} does not contain a virtual machine template"));
            }
            if item != LIBRARY_TEMPLATE.1 {
                return not_found(&format!("library item {item}"));
            }
            if st.vms.values().any(|v| v.name == name) {
                return err(400, "ALREADY_EXISTS", &format!("The name '{name}' already exists."));
            }
            if st.free_bytes < CLONE_BYTES {
                return Reply::json(500, &no_space());
            }
            st.free_bytes -= CLONE_BYTES;
            st.next += 1;
            let id = format!("vm-{}", st.next);
            let mut placement = o.get("placement").cloned().unwrap_or(json!({}));
            if let Some(ds) = o.get("vm_home_storage").and_then(|d| d.get("datastore")) {
                placement["datastore"] = ds.clone();
            }
            let vm = TestVm {
                id: id.clone(),
                name: name.into(),
                power_state: if o.get("powered_on") == Some(&json!(true)) {
                    "POWERED_ON".into()
                } else {
                    "POWERED_OFF".into()
                },
                placement,
                clone: true,
                source: format!("library-item:{item}"),
                ..template_vm()
            };
            st.vms.insert(id.clone(), vm);
            Reply::json(200, &json!(id))
        }
        ("GET", "/cis/tasks/{task}") => {
            let id = req.var("task").to_string();
            let Some(mut t) = st.tasks.get(&id).cloned() else { return not_found(&format!("task {id}")) };
            t.polls_left = t.polls_left.saturating_sub(1);
            st.tasks.insert(id.clone(), t.clone());
            let status = match (t.polls_left, &t.error) {
                (0, Some(_)) => "FAILED",
                (0, None) => "SUCCEEDED",
                _ => "RUNNING",
            };
            let mut v = json!({"status": status, "cancelable": false, "operation": "clone", "service": "com.vmware.vcenter.VM",
                "description": {"id": "vcenter.vm.clone", "default_message": "Clone virtual machine", "args": []},
                "start_time": "2026-12-01T08:00:00.000Z"});
            if status == "FAILED" {
                v["error"] = t.error.clone().unwrap_or_default();
            }
            if status == "SUCCEEDED" {
                v["result"] = json!(t.vm);
                v["end_time"] = json!("2026-12-01T08:00:05.000Z");
            }
            Reply::json(200, &v)
        }
        ("GET", "/vcenter/vm/{vm}") => match st.vms.get(&vm_id) {
            Some(v) => Reply::json(
                200,
                &json!({"name": v.name, "power_state": v.power_state, "guest_OS": "UBUNTU_64",
                    "cpu": {"count": v.cpus, "cores_per_socket": 1, "hot_add_enabled": false, "hot_remove_enabled": false},
                    "memory": {"size_MiB": v.memory_mib, "hot_add_enabled": false},
                    "hardware": {"version": "VMX_20", "upgrade_policy": "NEVER", "upgrade_status": "NONE"},
                    "boot": {"type": "EFI", "delay": 0, "retry": false, "retry_delay": 10000, "enter_setup_mode": false},
                    "boot_devices": [], "cdroms": {}, "disks": {"2000": {"label": "Hard disk 1", "type": "SCSI", "capacity": CLONE_BYTES}},
                    "floppies": {}, "nics": {}, "parallel_ports": {}, "sata_adapters": {}, "scsi_adapters": {}, "serial_ports": {}}),
            ),
            None => not_found(&format!("VM {vm_id}")),
        },
        ("DELETE", "/vcenter/vm/{vm}") => {
            let Some(v) = st.vms.get(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            if v.power_state != "POWERED_OFF" {
                return err(
                    400,
                    "NOT_ALLOWED_IN_CURRENT_STATE",
                    "The attempted operation cannot be performed in the current state (Powered on).",
                );
            }
            let v = st.vms.remove(&vm_id).expect("checked");
            let linked =
                st.vim_clones.get(&vm_id).is_some_and(|c| c.disk_move.as_deref() == Some("createNewChildDiskBacking"));
            if v.clone {
                st.free_bytes += if linked { soap::LINKED_BYTES } else { CLONE_BYTES };
            }
            Reply::empty(204)
        }
        ("GET", "/vcenter/vm/{vm}/data-sets") => match st.vms.get(&vm_id) {
            Some(v) => Reply::json(
                200,
                &json!(
                    v.data_sets
                        .iter()
                        .map(|(id, n, d)| json!({"data_set": id, "name": n, "description": d}))
                        .collect::<Vec<_>>()
                ),
            ),
            None => not_found(&format!("VM {vm_id}")),
        },
        ("POST", "/vcenter/vm/{vm}/data-sets") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["description", "guest", "host", "name", "omit_from_snapshot_and_clone"]);
            if !extra.is_empty() {
                return bad(format!("vm.data_sets.create_spec has no {extra:?}"));
            }
            let access = ["NONE", "READ_ONLY", "READ_WRITE"];
            let (Some(name), Some(desc)) =
                (o.get("name").and_then(Value::as_str), o.get("description").and_then(Value::as_str))
            else {
                return bad("name and description are required strings");
            };
            if !["host", "guest"].iter().all(|k| o.get(*k).and_then(Value::as_str).is_some_and(|a| access.contains(&a)))
            {
                return bad("host and guest must be NONE, READ_ONLY or READ_WRITE");
            }
            st.next += 1;
            let n = st.next;
            let Some(v) = st.vms.get_mut(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            if v.data_sets.iter().any(|(_, dn, _)| dn == name) {
                return err(400, "ALREADY_EXISTS", &format!("A data set named '{name}' already exists."));
            }
            let id = format!("ds-{n}");
            v.data_sets.push((id.clone(), name.into(), desc.into()));
            Reply::json(201, &json!(id))
        }
        ("PATCH", "/vcenter/vm/{vm}/data-sets/{ds}") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["description", "guest", "host", "omit_from_snapshot_and_clone"]);
            if !extra.is_empty() {
                return bad(format!("vm.data_sets.update_spec has no {extra:?}"));
            }
            let ds = req.var("ds").to_string();
            let Some(v) = st.vms.get_mut(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            let Some(d) = v.data_sets.iter_mut().find(|(id, _, _)| *id == ds) else {
                return not_found(&format!("data set {ds}"));
            };
            if let Some(desc) = o.get("description").and_then(Value::as_str) {
                d.2 = desc.into();
            }
            Reply::empty(204)
        }
        ("PATCH", "/vcenter/vm/{vm}/hardware/cpu") | ("PATCH", "/vcenter/vm/{vm}/hardware/memory") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let cpu = req.route.ends_with("cpu");
            let allowed: &[&str] = if cpu {
                &["cores_per_socket", "count", "hot_add_enabled", "hot_remove_enabled"]
            } else {
                &["hot_add_enabled", "size_MiB"]
            };
            let extra = unknown_keys(o, allowed);
            if !extra.is_empty() {
                return bad(format!("the update_spec has no {extra:?}"));
            }
            let Some(v) = st.vms.get_mut(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            if v.power_state != "POWERED_OFF" {
                return err(400, "NOT_ALLOWED_IN_CURRENT_STATE", "Hot add is not enabled.");
            }
            let n = o.get(if cpu { "count" } else { "size_MiB" }).and_then(Value::as_u64).filter(|n| *n > 0);
            match (cpu, n) {
                (true, Some(n)) => v.cpus = n,
                (false, Some(n)) => v.memory_mib = n,
                _ => return bad("count / size_MiB must be a positive integer"),
            }
            Reply::empty(204)
        }
        ("POST", "/vcenter/vm/{vm}/power?action=start") | ("POST", "/vcenter/vm/{vm}/power?action=stop") => {
            let want = if req.route.ends_with("start") { "POWERED_ON" } else { "POWERED_OFF" };
            let Some(v) = st.vms.get_mut(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            if v.power_state == want {
                return err(
                    400,
                    "ALREADY_IN_DESIRED_STATE",
                    "Virtual machine is already in the requested power state.",
                );
            }
            v.power_state = want.into();
            if want == "POWERED_ON"
                && let Some(c) = v.pending_cloud_init.take()
            {
                v.cloud_init = Some(c);
            }
            Reply::empty(204)
        }
        ("PUT", "/vcenter/vm/{vm}/guest/customization") => {
            // `vm.guest.customization.set`: the body is the `Customization.SetSpec`; this server takes
            // the cloud-init form only (`customization_spec` requires `configuration_spec`,
            // `global_DNS_settings` and `interfaces`; `cloud_config.type` is `CLOUDINIT`).
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body must be a Customization.SetSpec object") };
            if !unknown_keys(o, &["name", "spec"]).is_empty() {
                return bad(format!("the set_spec has no {:?}", unknown_keys(o, &["name", "spec"])));
            }
            let Some(spec) = o.get("spec").and_then(Value::as_object) else {
                return bad("spec: this server takes a customization spec, not a stored spec's name");
            };
            let extra = unknown_keys(spec, &["configuration_spec", "global_DNS_settings", "interfaces"]);
            if !extra.is_empty() {
                return bad(format!("the customization_spec has no {extra:?}"));
            }
            if !spec.get("global_DNS_settings").is_some_and(Value::is_object) {
                return bad("customization_spec.global_DNS_settings is required");
            }
            if !spec.get("interfaces").is_some_and(Value::is_array) {
                return bad("customization_spec.interfaces is required (an array)");
            }
            let Some(cc) = spec.get("configuration_spec").and_then(|c| c.get("cloud_config")) else {
                return bad("configuration_spec.cloud_config is required here");
            };
            if cc.get("type") != Some(&json!("CLOUDINIT")) {
                return bad("cloud_config.type must be CLOUDINIT");
            }
            let (Some(meta), user) = (
                cc.pointer("/cloudinit/metadata").and_then(Value::as_str),
                cc.pointer("/cloudinit/userdata").and_then(Value::as_str),
            ) else {
                return bad("cloudinit.metadata is required");
            };
            if meta.len() > 524_288 || user.is_some_and(|u| u.len() > 524_288) {
                return bad("the max size of the metadata and the userdata is 524288 bytes");
            }
            let Some(v) = st.vms.get_mut(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            if v.power_state != "POWERED_OFF" {
                return err(400, "NOT_ALLOWED_IN_CURRENT_STATE", "The virtual machine must be powered off.");
            }
            v.pending_cloud_init = Some((meta.to_string(), user.unwrap_or_default().to_string()));
            Reply::empty(204)
        }
        ("GET", "/vcenter/vm/{vm}/tools") => match st.vms.get(&vm_id) {
            Some(v) => Reply::json(
                200,
                &json!({"auto_update_supported": false, "upgrade_policy": "MANUAL", "install_type": "OPEN_VM_TOOLS",
                    "version_status": "UNMANAGED", "version_number": 12389, "version": "12389",
                    "run_state": if v.power_state == "POWERED_ON" { "RUNNING" } else { "NOT_RUNNING" }}),
            ),
            None => not_found(&format!("VM {vm_id}")),
        },
        ("GET", "/vcenter/vm/{vm}/guest/operations") => match st.vms.get(&vm_id) {
            Some(v) => Reply::json(
                200,
                &json!({"guest_operations_ready": v.power_state == "POWERED_ON",
                "interactive_guest_operations_ready": false}),
            ),
            None => not_found(&format!("VM {vm_id}")),
        },
        ("GET", "/vcenter/vm/{vm}/guest/identity") => match st.vms.get(&vm_id) {
            Some(v) if v.power_state == "POWERED_ON" => {
                let n: u64 = v.id.bytes().map(u64::from).sum::<u64>() % 250 + 2;
                Reply::json(
                    200,
                    &json!({"name": "UBUNTU_64", "family": "LINUX", "host_name": v.name,
                    "ip_address": format!("10.20.0.{n}"),
                    "full_name": {"id": "x", "default_message": "Ubuntu Linux (64-bit)", "args": []}}),
                )
            }
            Some(_) => err(503, "SERVICE_UNAVAILABLE", "VMware Tools is not running."),
            None => not_found(&format!("VM {vm_id}")),
        },
        ("POST", "/vcenter/vm/{vm}/guest/filesystem?action=create") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["credentials", "spec"]);
            if !extra.is_empty() {
                return bad(format!("transfers.create has no {extra:?}"));
            }
            if let Err(r) = guest_creds_ok(&b) {
                return r;
            }
            let spec = &b["spec"];
            let Some(path) = spec["path"].as_str() else { return bad("spec.path is required") };
            let Some(a) = spec["attributes"].as_object() else {
                return bad("spec.attributes is required for an upload");
            };
            let extra = unknown_keys(a, &["last_accessed", "last_modified", "overwrite", "posix", "size", "windows"]);
            if !extra.is_empty() || a.get("size").and_then(Value::as_u64).is_none() {
                return bad("file_creation_attributes: size (integer) and the struct's fields only");
            }
            if st.vms.get(&vm_id).is_none_or(|v| v.power_state != "POWERED_ON") {
                return err(400, "NOT_ALLOWED_IN_CURRENT_STATE", "The guest operations agent is not running.");
            }
            st.next += 1;
            let id = format!("t{}", st.next);
            st.transfers.insert(id.clone(), (vm_id.clone(), path.to_string()));
            // The ESXi host's ticket URL; here the same server.
            Reply::json(201, &json!(format!("{}/api/transfer/{id}?size={}", st.base, a["size"])))
        }
        ("PUT", "/transfer/{id}") => {
            let id = req.var("id").to_string();
            let Some((vm, path)) = st.transfers.remove(&id) else { return Reply::text(404, "no such transfer") };
            if req.param("size").and_then(|s| s.parse::<usize>().ok()) != Some(req.body.len()) {
                return Reply::text(400, "the body's size is not the size announced");
            }
            let content = String::from_utf8_lossy(&req.body).to_string();
            if let Some(v) = st.vms.get_mut(&vm) {
                v.files.insert(path, content);
            }
            Reply::empty(200)
        }
        ("POST", "/vcenter/vm/{vm}/guest/processes?action=create") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["credentials", "spec"]);
            if !extra.is_empty() {
                return bad(format!("processes.create has no {extra:?}"));
            }
            if let Err(r) = guest_creds_ok(&b) {
                return r;
            }
            let Some(spec) = b["spec"].as_object() else { return bad("spec is required") };
            let extra = unknown_keys(
                spec,
                &["arguments", "environment_variables", "path", "start_minimized", "working_directory"],
            );
            if !extra.is_empty() {
                return bad(format!("processes.create_spec has no {extra:?}"));
            }
            let (Some(prog), args) = (
                spec.get("path").and_then(Value::as_str),
                spec.get("arguments").and_then(Value::as_str).unwrap_or_default(),
            ) else {
                return bad("spec.path is required");
            };
            st.next += 1;
            let pid = st.next as i64;
            let key_exit = st.key_exit;
            let Some(v) = st.vms.get_mut(&vm_id) else { return not_found(&format!("VM {vm_id}")) };
            // The provider's SSH-key command: the key is its last single-quoted word; appended once.
            if args.contains(".ssh/authorized_keys") {
                let key = args.strip_suffix('\'').and_then(|a| a.rsplit_once(" '")).map(|(_, k)| k.to_string());
                let code = match key {
                    None => 2,
                    Some(_) if key_exit != 0 => key_exit,
                    Some(k) => {
                        if !v.authorized_keys.contains(&k) {
                            v.authorized_keys.push(k);
                        }
                        0
                    }
                };
                v.processes.push((prog.to_string(), args.to_string(), String::new()));
                st.procs.insert((vm_id.clone(), pid), (code, 1));
                return Reply::json(201, &json!(pid));
            }
            // Runs the file the arguments name (and removes it, as the arguments say).
            let file = v.files.keys().find(|p| args.contains(p.as_str())).cloned();
            let content = file.as_ref().and_then(|f| v.files.get(f)).cloned().unwrap_or_default();
            let code = content
                .split("EXIT_CODE=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(if file.is_some() { 0 } else { 127 });
            if let Some(f) = file.filter(|f| args.contains(&format!("rm -f {f}")) || args.contains("Remove-Item")) {
                v.files.remove(&f);
            }
            v.processes.push((prog.to_string(), args.to_string(), content));
            st.procs.insert((vm_id.clone(), pid), (code, 1));
            Reply::json(201, &json!(pid))
        }
        ("POST", "/vcenter/vm/{vm}/guest/processes/{pid}?action=get") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            if let Err(r) = guest_creds_ok(&b) {
                return r;
            }
            let Ok(pid) = req.var("pid").parse::<i64>() else { return bad("pid must be an integer") };
            let Some((code, polls)) = st.procs.get(&(vm_id.clone(), pid)).cloned() else {
                return not_found(&format!("process {pid}"));
            };
            st.procs.insert((vm_id.clone(), pid), (code, polls.saturating_sub(1)));
            let mut v = json!({"name": "bash", "owner": GUEST_USER, "command": "/bin/bash", "started": "2026-12-01T08:01:00.000Z"});
            if polls == 0 {
                v["exit_code"] = json!(code);
                v["finished"] = json!("2026-12-01T08:01:09.000Z");
            }
            Reply::json(200, &v)
        }
        _ => not_found("route"),
    }
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct VsphereHarness {
    server: VsphereTestServer,
    stall: Duration,
}

impl VsphereHarness {
    /// A harness over `server`; a stalled request is held for `stall`.
    pub fn new(server: VsphereTestServer, stall: Duration) -> Self {
        VsphereHarness { server, stall }
    }

    fn route(op: Op) -> &'static str {
        match op {
            Op::Create => "POST /vcenter/vm?action=clone",
            Op::Get => "GET /vcenter/vm/{vm}",
            Op::Delete => "DELETE /vcenter/vm/{vm}",
            Op::List => "GET /vcenter/vm",
        }
    }
}

#[async_trait]
impl Harness for VsphereHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => {
                // vCenter answers 401 when it no longer knows the session; the provider then creates
                // one new session, once. Credentials vCenter refuses are that new session refused
                // too: the password stops working until the faults are cleared.
                self.server.set_password("refused-while-the-fault-lasts");
                err(401, "UNAUTHENTICATED", "Authentication required.")
            }
            F::Forbidden => err(403, "UNAUTHORIZED", "Permission to perform this operation was denied."),
            F::NotFound => not_found("VM"),
            F::Conflict => err(400, "RESOURCE_BUSY", "The VM is busy with another operation."),
            F::RateLimited { retry_after } => {
                err(429, "", "Too many requests.").header("Retry-After", retry_after.as_secs().to_string())
            }
            F::ServerError => err(500, "ERROR", "A general system error occurred."),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "ERROR", "too late") };
                return self.server.api.inject(Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a clone's answer");
                // The clone task is accepted and fails: the datastore is full.
                Reply::json(200, &json!(CAPACITY_TASK))
            }
        };
        self.server.api.inject(Self::route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(Self::route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
        self.server.set_password(PASSWORD);
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(Self::route(op))
    }

    fn retries(&self) -> RetryRules {
        // The clone is sent once (no idempotency token); reads and the DELETE are retried.
        RetryRules { retried: &[Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        // `GET /api/vcenter/vm` does not page.
        None
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        None
    }

    fn missing_id(&self) -> String {
        "vm-999999".into()
    }

    async fn create_foreign_vm(&self) -> String {
        self.server.add_vm("ops-database")
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_vm(id);
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.server.vm(id).is_some()
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        self.server
            .vms()
            .iter()
            .filter(|v| {
                v.name == spec.name
                    || v.data_sets.iter().any(|(_, n, d)| {
                        n == labels::DATA_SET
                            && labels::labels(d).get("kasm-autoscale-claim").map(String::as_str)
                                == Some(spec.claim.as_str())
                    })
            })
            .count()
    }
}

/// What a vim25 clone recorded (by VM id): how it was made.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VimClone {
    /// The snapshot it was cloned from (`snapshot-…`), for a linked clone.
    pub snapshot: Option<String>,
    /// `diskMoveType` as sent.
    pub disk_move: Option<String>,
    /// The datastore cluster Storage DRS placed it in.
    pub pod: Option<String>,
    /// The datastore as sent (`datastore-…`), or Storage DRS's.
    pub datastore: Option<String>,
    /// The resource pool as sent.
    pub pool: String,
    /// The folder as sent.
    pub folder: String,
}

/// The vim25 endpoint (`POST /sdk`) of the test vCenter: every request is checked against the
/// subset of pyvmomi's type tables in `tests/vsphere/vim25-subset.json` (the `SOAPAction`, the
/// method, `_this`'s type, the parameters in order with their types, each data object's fields in
/// WSDL order, enum values, the properties read), and answered in the shapes pyvmomi's recorded
/// vCenter exchanges show (`<MethodResponse><returnval>`, faults as HTTP 500 `soapenv:Fault` with
/// `<detail><XFault xsi:type="X">`, the `vmware_soap_session` cookie). A request the subset does not
/// allow is answered with an `InvalidRequest` fault naming what is wrong, and recorded in
/// [`VsphereTestServer::soap_violations`].
pub mod soap {
    use super::{
        CLONE_BYTES, CLUSTER, DATACENTER, DATASTORE, FOLDERS, Inner, POOL, TASK_POLLS, TEMPLATE, TestVm, USERNAME,
        VimClone,
    };
    use crate::fake_api::{Incoming, Reply};
    use serde_json::Value;
    use std::sync::{Arc, Mutex, OnceLock};

    /// The subset (pyvmomi facts), loaded once.
    pub fn subset() -> &'static Value {
        static S: OnceLock<Value> = OnceLock::new();
        S.get_or_init(|| serde_json::from_str(include_str!("../vsphere/vim25-subset.json")).expect("vim25-subset.json"))
    }

    /// The VM folder root, the datastore folder, the cluster's root pool, the datastore cluster.
    pub const VM_ROOT: &str = "group-v4";
    /// The datacenter's datastore folder.
    pub const DS_FOLDER: &str = "group-s5";
    /// The cluster's root resource pool.
    pub const ROOT_POOL: &str = "resgroup-9";
    /// The datastore cluster: (name, id).
    pub const POD: (&str, &str) = ("pod-ssd", "group-p61");
    /// The template's snapshots: (name, id, parent id).
    pub const SNAPSHOTS: [(&str, &str, Option<&str>); 4] = [
        ("base", "snapshot-101", None),
        ("kasm-1.19", "snapshot-102", Some("snapshot-101")),
        ("dup", "snapshot-103", Some("snapshot-101")),
        ("dup", "snapshot-104", Some("snapshot-102")),
    ];
    /// A linked clone's own disk space (its delta disk), bytes.
    pub const LINKED_BYTES: u64 = 1 << 30;

    /// A received element: local name, `type` and `xsi:type` attributes, text, children.
    #[derive(Debug, Clone, Default)]
    pub struct X {
        /// Local name.
        pub name: String,
        /// `type` (a managed object reference's).
        pub mo: Option<String>,
        /// `xsi:type`.
        pub xsi: Option<String>,
        /// Text.
        pub text: String,
        /// Children.
        pub kids: Vec<X>,
    }

    impl X {
        fn from(n: roxmltree::Node<'_, '_>) -> X {
            X {
                name: n.tag_name().name().into(),
                mo: n.attribute("type").map(Into::into),
                xsi: n.attribute(("http://www.w3.org/2001/XMLSchema-instance", "type")).map(Into::into),
                text: n.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect(),
                kids: n.children().filter(|c| c.is_element()).map(X::from).collect(),
            }
        }
        /// First child `n`.
        pub fn get(&self, n: &str) -> Option<&X> {
            self.kids.iter().find(|k| k.name == n)
        }
        /// Text of child `n`.
        pub fn t(&self, n: &str) -> Option<&str> {
            self.get(n).map(|k| k.text.as_str())
        }
    }

    fn managed_is(kind: &str, want: &str) -> bool {
        match subset()["managed"].get(kind) {
            Some(chain) => chain.as_array().is_some_and(|c| c.iter().any(|k| k == want)),
            None => kind == want,
        }
    }

    /// Checks the elements `items` against `fields` (in order, each `{name, type, optional}`).
    fn check_fields(items: &[X], fields: &[Value], at: &str) -> Result<(), String> {
        let mut i = 0;
        for f in fields {
            let name = f["name"].as_str().unwrap_or_default();
            let ty = f["type"].as_str().unwrap_or_default();
            let (base, arr) = ty.strip_suffix("[]").map_or((ty, false), |b| (b, true));
            let mut n = 0;
            while i < items.len() && items[i].name == name {
                check_value(&items[i], base, &format!("{at}.{name}"))?;
                i += 1;
                n += 1;
                if !arr {
                    break;
                }
            }
            if n == 0 && !f["optional"].as_bool().unwrap_or(false) {
                return Err(format!("{at}: the required `{name}` is missing (or out of order)"));
            }
        }
        if let Some(extra) = items.get(i) {
            return Err(format!(
                "{at}: `{}` is not a field here, or not in the WSDL order ({})",
                extra.name,
                fields.iter().filter_map(|f| f["name"].as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(())
    }

    fn check_value(x: &X, ty: &str, at: &str) -> Result<(), String> {
        let leaf =
            |ok: bool| if ok && x.kids.is_empty() { Ok(()) } else { Err(format!("{at}: `{}` is not a {ty}", x.text)) };
        if let Some(kind) = ty.strip_prefix("ManagedObjectReference:") {
            let t = x.mo.as_deref().ok_or_else(|| format!("{at}: a reference without `type`"))?;
            if !managed_is(t, kind) {
                return Err(format!("{at}: a {t} reference where a {kind} is expected"));
            }
            return leaf(!x.text.trim().is_empty());
        }
        if let Some(e) = ty.strip_prefix("enum:") {
            let ok = subset()["enums"][e].as_array().is_some_and(|v| v.iter().any(|v| v == x.text.as_str()));
            return leaf(ok);
        }
        match ty {
            "ManagedObjectReference" => leaf(x.mo.is_some() && !x.text.trim().is_empty()),
            "string" | "dateTime" | "anyURI" => leaf(true),
            "boolean" => leaf(x.text == "true" || x.text == "false"),
            "int" | "long" | "short" | "byte" => leaf(x.text.parse::<i64>().is_ok()),
            t => {
                let actual = x.xsi.as_deref().unwrap_or(t);
                let spec = &subset()["types"][actual];
                if spec.is_null() {
                    return Err(format!("{at}: type {actual} is not in the vim25 subset"));
                }
                if actual != t && !spec["ancestors"].as_array().is_some_and(|a| a.iter().any(|v| v == t)) {
                    return Err(format!("{at}: {actual} is not a {t}"));
                }
                check_fields(&x.kids, spec["fields"].as_array().map(Vec::as_slice).unwrap_or_default(), at)?;
                // String fields whose values are an enum's (pyvmomi declares them `string`).
                for (field, e) in [
                    ("diskMoveType", "VirtualMachineRelocateDiskMoveOptions"),
                    ("type", "StoragePlacementSpecPlacementType"),
                ] {
                    let applies = (field == "diskMoveType" && actual == "VirtualMachineRelocateSpec")
                        || (field == "type" && actual == "StoragePlacementSpec");
                    if let (true, Some(v)) = (applies, x.t(field))
                        && !subset()["enums"][e].as_array().is_some_and(|vals| vals.iter().any(|a| a == v))
                    {
                        return Err(format!("{at}.{field}: `{v}` is not a {e}"));
                    }
                }
                if actual == "PropertySpec" {
                    let kind = x.t("type").unwrap_or_default();
                    for p in x.kids.iter().filter(|k| k.name == "pathSet") {
                        let known = subset()["properties"].as_object().is_some_and(|props| {
                            props
                                .keys()
                                .any(|k| k.split_once('.').is_some_and(|(t, n)| n == p.text && managed_is(kind, t)))
                        });
                        if !known {
                            return Err(format!(
                                "{at}.pathSet: `{}` is not a property of {kind} in the subset",
                                p.text
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Checks one request; answers the method's name and element.
    pub fn check(req: &Incoming) -> Result<(String, X), String> {
        let ct = req.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !ct.starts_with("text/xml") {
            return Err(format!("content-type must be text/xml, got `{ct}`"));
        }
        let action = req.headers.get("soapaction").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if action != subset()["version"]["soap_action"] {
            return Err(format!("SOAPAction `{action}` is not {}", subset()["version"]["soap_action"]));
        }
        let text = std::str::from_utf8(&req.body).map_err(|_| "the body is not UTF-8".to_string())?;
        let doc = roxmltree::Document::parse(text).map_err(|e| format!("the body is not XML: {e}"))?;
        let env = doc.root_element();
        let soapenv = "http://schemas.xmlsoap.org/soap/envelope/";
        if !env.has_tag_name((soapenv, "Envelope")) {
            return Err("the root is not a soapenv:Envelope".into());
        }
        let body = env.children().find(|c| c.has_tag_name((soapenv, "Body"))).ok_or("no soapenv:Body")?;
        let calls: Vec<_> = body.children().filter(|c| c.is_element()).collect();
        let [call] = calls.as_slice() else { return Err("the Body must hold one call".into()) };
        if call.tag_name().namespace() != subset()["wsdl_namespace"].as_str() {
            return Err(format!("the call is not in {}", subset()["wsdl_namespace"]));
        }
        let method = call.tag_name().name().to_string();
        let spec = &subset()["methods"][&method];
        if spec.is_null() {
            return Err(format!("{method} is not a method of the subset"));
        }
        let x = X::from(*call);
        let this =
            x.kids.first().filter(|k| k.name == "_this").ok_or_else(|| format!("{method}: `_this` must come first"))?;
        let want = spec["this"].as_str().unwrap_or_default();
        check_value(this, &format!("ManagedObjectReference:{want}"), &format!("{method}._this"))?;
        check_fields(&x.kids[1..], spec["params"].as_array().map(Vec::as_slice).unwrap_or_default(), &method)?;
        Ok((method, x))
    }

    /// A `MethodResponse` envelope.
    pub fn ok(method: &str, inner: &str) -> Reply {
        Reply::xml(
            200,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\"\n xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"\n xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"\n xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body>\n<{method}Response xmlns=\"urn:vim25\">{inner}</{method}Response>\n</soapenv:Body>\n</soapenv:Envelope>"
            ),
        )
    }

    /// A SOAP fault of type `kind` (HTTP 500), as pyvmomi's recorded exchanges show one.
    pub fn fault(kind: &str, message: &str) -> Reply {
        Reply::xml(
            500,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\"\n xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"\n xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"\n xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body>\n<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>{}</faultstring><detail><{kind}Fault xmlns=\"urn:vim25\" xsi:type=\"{kind}\"></{kind}Fault></detail></soapenv:Fault>\n</soapenv:Body>\n</soapenv:Envelope>",
                esc(message)
            ),
        )
    }

    fn esc(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }

    fn mo(name: &str, kind: &str, v: &str) -> String {
        format!("<{name} type=\"{kind}\">{v}</{name}>")
    }

    fn snapshot_tree(parent: Option<&str>) -> String {
        SNAPSHOTS
            .iter()
            .filter(|(_, _, p)| *p == parent)
            .map(|(n, id, _)| {
                let tag = if parent.is_none() { "rootSnapshotList" } else { "childSnapshotList" };
                format!(
                    "<{tag}>{}{}<name>{n}</name><description></description><id>{}</id><createTime>2026-11-01T10:00:00Z</createTime><state>poweredOff</state><quiesced>false</quiesced>{}</{tag}>",
                    mo("snapshot", "VirtualMachineSnapshot", id),
                    mo("vm", "VirtualMachine", TEMPLATE.1),
                    id.trim_start_matches("snapshot-"),
                    snapshot_tree(Some(id))
                )
            })
            .collect()
    }

    fn task_info(id: &str, t: &super::VimTask) -> String {
        let state = if t.polls_left > 0 {
            "running"
        } else if t.error.is_some() {
            "error"
        } else {
            "success"
        };
        let outcome = match (&t.error, state) {
            (Some((k, m)), "error") => format!(
                "<error><fault xsi:type=\"{k}\"></fault><localizedMessage>{}</localizedMessage></error>",
                esc(m)
            ),
            (None, "success") => t.result.clone(),
            _ => String::new(),
        };
        format!(
            "<key>{id}</key>{}<descriptionId>{}</descriptionId><state>{state}</state><cancelled>false</cancelled><cancelable>false</cancelable>{outcome}<reason xsi:type=\"TaskReasonUser\"><userName>VSPHERE.LOCAL\\kasm-svc</userName></reason><queueTime>2026-12-01T08:00:00Z</queueTime><eventChainId>1</eventChainId>",
            mo("task", "Task", id),
            t.description
        )
    }

    /// Answers one `POST /sdk`.
    pub(super) fn answer(inner: &Arc<Mutex<Inner>>, req: Incoming) -> Reply {
        let mut st = inner.lock().expect("server lock");
        let (method, x) = match check(&req) {
            Ok(v) => v,
            Err(e) => {
                st.soap_violations.push(e.clone());
                return fault("InvalidRequest", &e);
            }
        };
        st.soap_calls.push((method.clone(), String::from_utf8_lossy(&req.body).into_owned()));
        if let Some(pos) = st.soap_faults.iter().position(|(m, _, _)| *m == method) {
            let (_, kind, msg) = st.soap_faults.remove(pos);
            return fault(&kind, &msg);
        }
        match method.as_str() {
            "RetrieveServiceContent" => {
                return ok(
                    &method,
                    &format!(
                        "<returnval>{}{}<about><name>VMware vCenter Server</name><fullName>VMware vCenter Server 8.0.3 build-69507950</fullName><vendor>VMware, Inc.</vendor><version>8.0.3</version><build>69507950</build><apiType>VirtualCenter</apiType><apiVersion>8.0.2.0</apiVersion></about>{}{}{}{}</returnval>",
                        mo("rootFolder", "Folder", "group-d1"),
                        mo("propertyCollector", "PropertyCollector", "propertyCollector"),
                        mo("sessionManager", "SessionManager", "SessionManager"),
                        mo("authorizationManager", "AuthorizationManager", "AuthorizationManager"),
                        mo("searchIndex", "SearchIndex", "SearchIndex"),
                        mo("storageResourceManager", "StorageResourceManager", "StorageResourceManager"),
                    ),
                );
            }
            "Login" => {
                if x.t("userName") != Some(USERNAME) || x.t("password") != Some(st.password.as_str()) {
                    return fault("InvalidLogin", "Cannot complete login due to an incorrect user name or password.");
                }
                st.next += 1;
                let id = format!("{:040x}", st.next * 7919);
                st.soap_sessions.push(id.clone());
                st.soap_logins += 1;
                let key = format!("5220f274-9ba1-a663-b51f-{:012x}", st.next);
                st.soap_keys.insert(id.clone(), key);
                return ok(
                    &method,
                    &format!("<returnval><key>5220f274-9ba1-a663-b51f-{:012x}</key><userName>{USERNAME}</userName><fullName>{USERNAME}</fullName><loginTime>2026-12-01T08:00:00Z</loginTime><lastActiveTime>2026-12-01T08:00:00Z</lastActiveTime><locale>en</locale><messageLocale>en</messageLocale><extensionSession>false</extensionSession><ipAddress>127.0.0.1</ipAddress><userAgent>kasm-autoscale</userAgent><callCount>0</callCount></returnval>", st.next),
                )
                .header("Set-Cookie", format!("vmware_soap_session=\"{id}\"; Path=/; HttpOnly; Secure;"));
            }
            _ => {}
        }
        let cookie = req.headers.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let known = st.soap_sessions.iter().any(|s| cookie == format!("vmware_soap_session=\"{s}\""));
        if !known {
            return fault("NotAuthenticated", "The session is not authenticated.");
        }
        let session_key = st
            .soap_keys
            .iter()
            .find(|(c, _)| cookie == format!("vmware_soap_session=\"{c}\""))
            .map(|(_, k)| k.clone())
            .unwrap_or_default();
        match method.as_str() {
            "Logout" => {
                st.soap_sessions.retain(|s| cookie != format!("vmware_soap_session=\"{s}\""));
                ok(&method, "")
            }
            "RetrievePropertiesEx" => {
                let spec = x.get("specSet").cloned().unwrap_or_default();
                let obj = spec.get("objectSet").and_then(|o| o.get("obj")).cloned().unwrap_or_default();
                let paths: Vec<String> = spec
                    .get("propSet")
                    .map(|p| p.kids.iter().filter(|k| k.name == "pathSet").map(|k| k.text.clone()).collect())
                    .unwrap_or_default();
                let kind = obj.mo.clone().unwrap_or_default();
                let id = obj.text.clone();
                let mut props = Vec::new();
                for p in &paths {
                    let val = match (kind.as_str(), p.as_str()) {
                        ("VirtualMachine", _) if !st.vms.contains_key(&id) => None,
                        ("VirtualMachine", "name") => st.vms.get(&id).map(|v| {
                            let name =
                                st.vim_template_name.clone().filter(|_| id == TEMPLATE.1).unwrap_or(v.name.clone());
                            format!("<val xsi:type=\"xsd:string\">{}</val>", esc(&name))
                        }),
                        ("VirtualMachine", "parent") => {
                            Some(format!("<val type=\"Folder\" xsi:type=\"ManagedObjectReference\">{VM_ROOT}</val>"))
                        }
                        ("VirtualMachine", "resourcePool") => Some(format!(
                            "<val type=\"ResourcePool\" xsi:type=\"ManagedObjectReference\">{}</val>",
                            POOL.1
                        )),
                        ("VirtualMachine", "snapshot") if id == TEMPLATE.1 && !st.no_snapshots => Some(format!(
                            "<val xsi:type=\"VirtualMachineSnapshotInfo\">{}{}</val>",
                            mo("currentSnapshot", "VirtualMachineSnapshot", SNAPSHOTS[1].1),
                            snapshot_tree(None)
                        )),
                        ("VirtualMachine", "snapshot") => None,
                        ("ClusterComputeResource", "resourcePool") if id == CLUSTER.1 => Some(format!(
                            "<val type=\"ResourcePool\" xsi:type=\"ManagedObjectReference\">{ROOT_POOL}</val>"
                        )),
                        ("SessionManager", "currentSession") => Some(format!(
                            "<val xsi:type=\"UserSession\"><key>{session_key}</key><userName>{USERNAME}</userName><fullName>{USERNAME}</fullName><loginTime>2026-12-01T08:00:00Z</loginTime><lastActiveTime>2026-12-01T08:00:00Z</lastActiveTime><locale>en</locale><messageLocale>en</messageLocale><extensionSession>false</extensionSession><ipAddress>127.0.0.1</ipAddress><userAgent>kasm-autoscale</userAgent><callCount>0</callCount></val>"
                        )),
                        ("Datacenter", "datastoreFolder") if id == DATACENTER.1 => {
                            Some(format!("<val type=\"Folder\" xsi:type=\"ManagedObjectReference\">{DS_FOLDER}</val>"))
                        }
                        ("Task", "info") => {
                            let Some(t) = st.vim_tasks.get_mut(&id) else {
                                return fault(
                                    "ManagedObjectNotFound",
                                    &format!(
                                        "The object 'vim.Task:{id}' has already been deleted or has not been completely created"
                                    ),
                                );
                            };
                            let info = task_info(&id, t);
                            t.polls_left = t.polls_left.saturating_sub(1);
                            Some(format!("<val xsi:type=\"TaskInfo\">{info}</val>"))
                        }
                        _ => {
                            return fault(
                                "ManagedObjectNotFound",
                                &format!(
                                    "The object 'vim.{kind}:{id}' has already been deleted or has not been completely created"
                                ),
                            );
                        }
                    };
                    if let Some(v) = val {
                        props.push(format!("<propSet><name>{p}</name>{v}</propSet>"));
                    }
                }
                if kind == "VirtualMachine" && !st.vms.contains_key(&id) {
                    return fault(
                        "ManagedObjectNotFound",
                        &format!(
                            "The object 'vim.VirtualMachine:{id}' has already been deleted or has not been completely created"
                        ),
                    );
                }
                ok(
                    &method,
                    &format!("<returnval><objects>{}{}</objects></returnval>", mo("obj", &kind, &id), props.concat()),
                )
            }
            "FindChild" => {
                let entity = x.get("entity").map(|e| e.text.clone()).unwrap_or_default();
                let name = x.t("name").unwrap_or_default();
                let found = match (entity.as_str(), name) {
                    (DS_FOLDER, n) if n == POD.0 => Some(mo("returnval", "StoragePod", POD.1)),
                    (DS_FOLDER, n) if n == DATASTORE.0 => Some(mo("returnval", "Datastore", DATASTORE.1)),
                    _ => None,
                };
                ok(&method, &found.unwrap_or_default())
            }
            "CloneVM_Task" => {
                let src = x.get("_this").map(|t| t.text.clone()).unwrap_or_default();
                let name = x.t("name").unwrap_or_default().to_string();
                let folder = x.get("folder").map(|f| f.text.clone()).unwrap_or_default();
                let spec = x.get("spec").cloned().unwrap_or_default();
                clone(&mut st, &method, &src, &name, &folder, &spec, None)
            }
            "RecommendDatastores" => {
                let s = x.get("storageSpec").cloned().unwrap_or_default();
                let pod = s.get("podSelectionSpec").and_then(|p| p.get("storagePod")).map(|p| p.text.clone());
                if pod.as_deref() != Some(POD.1) || s.t("type") != Some("clone") {
                    return fault("InvalidArgument", "A specified parameter was not correct: storageSpec");
                }
                st.next += 1;
                let key = format!("{}", st.next);
                let rec = if st.free_bytes >= LINKED_BYTES {
                    st.recommendations.insert(key.clone(), s);
                    format!(
                        "<recommendations><key>{key}</key><type>V1</type><time>2026-12-01T08:00:00Z</time><rating>1</rating><reason>storagePlacement</reason><reasonText>Satisfy storage initial placement requests</reasonText></recommendations>"
                    )
                } else {
                    String::new()
                };
                ok(&method, &format!("<returnval>{rec}</returnval>"))
            }
            "ApplyStorageDrsRecommendation_Task" => {
                let key = x.t("key").unwrap_or_default().to_string();
                let Some(s) = st.recommendations.remove(&key) else {
                    return fault("InvalidArgument", "A specified parameter was not correct: key");
                };
                let src = s.get("vm").map(|v| v.text.clone()).unwrap_or_default();
                let name = s.t("cloneName").unwrap_or_default().to_string();
                let folder = s.get("folder").map(|f| f.text.clone()).unwrap_or_default();
                let spec = s.get("cloneSpec").cloned().unwrap_or_default();
                clone(&mut st, &method, &src, &name, &folder, &spec, Some(POD.1))
            }
            "HasPrivilegeOnEntities" => {
                // Only this session's privileges are answered (the test vCenter knows one user).
                if x.t("sessionId") != Some(session_key.as_str()) {
                    return fault("InvalidArgument", "A specified parameter was not correct: sessionId");
                }
                let privs: Vec<&str> = x.kids.iter().filter(|k| k.name == "privId").map(|k| k.text.as_str()).collect();
                let mut out = String::new();
                for e in x.kids.iter().filter(|k| k.name == "entity") {
                    let kind = e.mo.clone().unwrap_or_default();
                    let id = e.text.as_str();
                    let known = match kind.as_str() {
                        "VirtualMachine" => st.vms.contains_key(id),
                        "Folder" => id == VM_ROOT || id == DS_FOLDER || FOLDERS.iter().any(|f| f.1 == id),
                        "ResourcePool" => id == POOL.1 || id == ROOT_POOL,
                        "Datastore" => id == DATASTORE.1,
                        "StoragePod" => id == POD.1,
                        "ClusterComputeResource" => id == CLUSTER.1,
                        "Datacenter" => id == DATACENTER.1,
                        _ => false,
                    };
                    if !known {
                        return fault(
                            "ManagedObjectNotFound",
                            &format!(
                                "The object 'vim.{kind}:{id}' has already been deleted or has not been completely created"
                            ),
                        );
                    }
                    let avail: String = privs
                        .iter()
                        .map(|p| {
                            let granted = !st.revoked.contains(&(USERNAME.to_string(), id.to_string(), p.to_string()));
                            format!("<privAvailability><privId>{}</privId><isGranted>{granted}</isGranted></privAvailability>", esc(p))
                        })
                        .collect();
                    out.push_str(&format!("<returnval>{}{avail}</returnval>", mo("entity", &kind, id)));
                }
                ok(&method, &out)
            }
            other => fault("NotImplemented", &format!("{other} is not served by the test vCenter")),
        }
    }

    fn clone(st: &mut Inner, method: &str, src: &str, name: &str, folder: &str, spec: &X, pod: Option<&str>) -> Reply {
        let Some(source) = st.vms.get(src).cloned() else {
            return fault(
                "ManagedObjectNotFound",
                &format!("The object 'vim.VirtualMachine:{src}' has already been deleted"),
            );
        };
        if st.vms.values().any(|v| v.name == name) {
            return fault("DuplicateName", &format!("The name '{name}' already exists."));
        }
        if ![FOLDERS[1].1, FOLDERS[0].1, VM_ROOT].contains(&folder) {
            return fault(
                "ManagedObjectNotFound",
                &format!("The object 'vim.Folder:{folder}' has already been deleted"),
            );
        }
        let loc = spec.get("location").cloned().unwrap_or_default();
        let snapshot = spec.get("snapshot").map(|s| s.text.clone());
        let disk_move = loc.t("diskMoveType").map(str::to_string);
        if let Some(s) = &snapshot
            && (src != TEMPLATE.1 || !SNAPSHOTS.iter().any(|(_, id, _)| id == s))
        {
            return fault("InvalidArgument", "A specified parameter was not correct: spec.snapshot");
        }
        if disk_move.as_deref() == Some("createNewChildDiskBacking") && snapshot.is_none() {
            return fault("InvalidArgument", "A specified parameter was not correct: spec.location.diskMoveType");
        }
        let pool = loc.get("pool").map(|p| p.text.clone()).unwrap_or_default();
        if ![POOL.1, ROOT_POOL].contains(&pool.as_str()) {
            return fault(
                "ManagedObjectNotFound",
                &format!("The object 'vim.ResourcePool:{pool}' has already been deleted"),
            );
        }
        let datastore = loc.get("datastore").map(|d| d.text.clone()).or_else(|| pod.map(|_| DATASTORE.1.to_string()));
        let need = if disk_move.as_deref() == Some("createNewChildDiskBacking") { LINKED_BYTES } else { CLONE_BYTES };
        st.next += 1;
        let task = format!("task-{}", st.next);
        let description = if pod.is_some() {
            "com.vmware.vim.StorageResourceManager.applyRecommendation"
        } else {
            "VirtualMachine.clone"
        };
        let injected = st.vim_task_faults.pop_front();
        if st.free_bytes < need || injected.is_some() {
            let error = injected.unwrap_or_else(|| {
                ("NoDiskSpace".into(), format!("Insufficient disk space on datastore '{}'.", DATASTORE.0))
            });
            st.vim_tasks.insert(
                task.clone(),
                super::VimTask {
                    polls_left: 1,
                    result: String::new(),
                    error: Some(error),
                    description: description.into(),
                },
            );
        } else {
            st.free_bytes -= need;
            let id = format!("vm-{}", st.next);
            let vm = TestVm {
                id: id.clone(),
                name: name.into(),
                power_state: "POWERED_OFF".into(),
                placement: serde_json::json!({}),
                clone: true,
                source: src.to_string(),
                data_sets: Vec::new(),
                files: Default::default(),
                processes: Vec::new(),
                authorized_keys: Vec::new(),
                pending_cloud_init: None,
                cloud_init: None,
                ..source
            };
            st.vms.insert(id.clone(), vm);
            st.vim_clones.insert(
                id.clone(),
                VimClone { snapshot, disk_move, pod: pod.map(str::to_string), datastore, pool, folder: folder.into() },
            );
            let result = if pod.is_some() {
                format!(
                    "<result xsi:type=\"ApplyStorageRecommendationResult\">{}</result>",
                    mo("vm", "VirtualMachine", &id)
                )
            } else {
                format!("<result type=\"VirtualMachine\" xsi:type=\"ManagedObjectReference\">{id}</result>")
            };
            st.vim_tasks.insert(
                task.clone(),
                super::VimTask { polls_left: TASK_POLLS, result, error: None, description: description.into() },
            );
        }
        ok(method, &mo("returnval", "Task", &task))
    }
}

/// A vim25 task of the test vCenter.
#[derive(Debug, Clone)]
struct VimTask {
    polls_left: u32,
    /// The `<result>` element on success.
    result: String,
    /// The fault (type, message) on error.
    error: Option<(String, String)>,
    description: String,
}
