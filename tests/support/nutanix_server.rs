//! An in-process Prism Central v3 API for tests, on the shared fake-API harness
//! ([`crate::fake_api`]): answers the calls `shared::providers::nutanix` makes in the shapes of
//! Nutanix's own v3 Go client (`VMIntentResource` with `metadata`/`spec`/`status`,
//! `VMListIntentResponse` with `metadata.total_matches`, `TasksResponse`, `DeleteResponse`, errors as
//! `{api_version, code, kind, message_list: [{message, reason}], state: "ERROR"}`), checks HTTP Basic
//! credentials, and refuses request bodies that carry names the v3 structures do not have.
//!
//! It keeps VMs, tasks and one cluster in memory. A clone makes a `PENDING` VM (not listed: "entities
//! that have not been created successfully are not listed") and a `RUNNING` task; after the task has
//! been polled [`TASK_POLLS`] times it `SUCCEEDED` naming the VM, which becomes `COMPLETE` and
//! powered off (as its candidate). A `PUT` must carry the `metadata.spec_version` last read (else
//! 409). A `DELETE` marks the VM `DELETE_PENDING` until its task is done. The cluster's memory is
//! finite: a clone that does not fit fails its task with [`NO_CAPACITY`].
//! [`NutanixHarness`] drives it for the provider conformance suite.
//!
//! [`NutanixTestServer::start_v4`] serves the same VMs through the v4 APIs instead (`v4.rs`: the VMM
//! v4.3 and Prism v4.4 routes, ETags, request ids and the v4 error envelope).

mod v4;

pub use v4::err as err_v4;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use shared::providers::nutanix::labels;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The user the server accepts.
pub const USERNAME: &str = "kasm-autoscale";
/// That user's password.
pub const PASSWORD: &str = "Pr1sm-Central-pa55word!";
/// The VM candidate's name.
pub const CANDIDATE: &str = "kasm-agent-template";
/// The VM candidate's uuid.
pub const CANDIDATE_UUID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
/// The cluster's uuid.
pub const CLUSTER_UUID: &str = "0005a7b8-c9d0-1e2f-0000-00000000c1c1";
/// The cluster's name.
pub const CLUSTER_NAME: &str = "PHX-POC";
/// Polls of a task before it is done.
pub const TASK_POLLS: u32 = 2;
/// The `error_detail` of a clone task the cluster has no room for (UNSOURCED wording: AHV's
/// "no host resources" failure as it is reported; the v3 structures give no example).
pub const NO_CAPACITY: &str = "NoHostResources: No host has enough available resources for VM";
/// A task that has failed for lack of capacity (the harness's out-of-capacity answer points to it).
pub const CAPACITY_TASK: &str = "8d1e5c2a-0000-4000-8000-00000000fa11";
/// The same task as v4 names it (`prism.v4.config.TaskReference.extId`: `<base64>:<uuid>`).
pub const CAPACITY_TASK_V4: &str = "ZXJnb24=:8d1e5c2a-0000-4000-8000-00000000fa11";

/// One recorded request (method, route template below `/api/nutanix/v3`, body, ...).
pub use crate::fake_api::Recorded as Request;

/// A VM as the server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestVm {
    /// Its uuid.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Description (our labels, or an operator's text).
    pub description: String,
    /// `PENDING`, `COMPLETE`, `DELETE_PENDING`.
    pub state: String,
    /// `ON` or `OFF`.
    pub power_state: String,
    /// `metadata.spec_version`.
    pub spec_version: i64,
    /// `num_sockets`.
    pub num_sockets: u64,
    /// `num_vcpus_per_socket`.
    pub num_vcpus_per_socket: u64,
    /// `memory_size_mib`.
    pub memory_size_mib: u64,
    /// The cloud-init user data, decoded from base64.
    pub user_data: Option<String>,
    /// The uuid of the VM it was cloned from.
    pub parent: Option<String>,
    /// Its vdisks (cloned from the candidate's; deleted with it).
    pub disks: Vec<String>,
}

#[derive(Debug, Clone)]
enum Effect {
    /// The clone of VM uuid finishes.
    Cloned(String),
    /// The power state of VM uuid becomes this.
    Power(String, String),
    /// VM uuid is gone.
    Deleted(String),
    /// VM uuid's description becomes this (a v4 `PUT`).
    Describe(String, String),
    None,
}

#[derive(Debug, Clone)]
struct TestTask {
    status: String,
    polls_left: u32,
    effect: Effect,
    entity: Option<String>,
    error_detail: Option<String>,
    operation: &'static str,
}

#[derive(Debug)]
struct Inner {
    vms: BTreeMap<String, TestVm>,
    tasks: BTreeMap<String, TestTask>,
    next: u64,
    /// Memory the cluster can give clones, MiB.
    memory_mib: u64,
    /// How many VMs the list answers carried, in all.
    listed: usize,
    /// The password the server accepts now (tests rotate it).
    password: String,
    /// v4: each `NTNX-Request-Id` of a clone seen, and the task it started.
    request_ids: BTreeMap<String, String>,
}

/// The running server (the task ends with the test's runtime).
#[derive(Debug, Clone)]
pub struct NutanixTestServer {
    /// The server root, e.g. `http://127.0.0.1:41234` (the API is below `/api/nutanix/v3`).
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
    v4: bool,
}

/// Every route the server answers, below `/api/nutanix/v3`.
const ROUTES: &[&str] = &[
    "POST /vms/list",
    "GET /vms/{uuid}",
    "PUT /vms/{uuid}",
    "DELETE /vms/{uuid}",
    "POST /vms/{uuid}/clone",
    "GET /tasks/{uuid}",
    "POST /clusters/list",
];

/// An error answer in the v3 shape.
pub fn err(status: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"api_version": "3.1", "code": status, "kind": "vm",
            "message_list": [{"message": message, "reason": reason}], "state": "ERROR"}),
    )
}

fn not_found(what: &str) -> Reply {
    err(404, "ENTITY_NOT_FOUND", &format!("{what} not found"))
}

fn bad(message: impl Into<String>) -> Reply {
    err(422, "INVALID_REQUEST", &message.into())
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

impl NutanixTestServer {
    /// Starts a v3 server holding the VM candidate (powered off, one disk) and a cluster with 64
    /// GiB for clones.
    pub async fn start() -> NutanixTestServer {
        let inner = new_state();
        let guard_state = inner.clone();
        let mut b = FakeApi::builder()
            .prefix("/api/nutanix/v3")
            .guard(move |req| {
                let want = basic(USERNAME, &guard_state.lock().expect("server lock").password);
                let got = req.headers.get("authorization").and_then(|v| v.to_str().ok());
                (got != Some(want.as_str())).then(|| err(401, "AUTHENTICATION_REQUIRED", "Authentication required."))
            })
            .unrouted(|m, p| err(404, "ENTITY_NOT_FOUND", &format!("no API at {m} {p}")));
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
        NutanixTestServer { url: api.url.clone(), api, inner, v4: false }
    }

    /// Starts a v4 server (the VMM v4.3 and Prism v4.4 routes below `/api`) holding the same
    /// candidate and cluster.
    pub async fn start_v4() -> NutanixTestServer {
        let inner = new_state();
        let api = v4::serve(inner.clone()).await;
        NutanixTestServer { url: api.url.clone(), api, inner, v4: true }
    }

    /// Whether it serves the v4 APIs.
    pub fn is_v4(&self) -> bool {
        self.v4
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

    /// Every VM but the candidate.
    pub fn vms(&self) -> Vec<TestVm> {
        self.lock().vms.values().filter(|v| v.uuid != CANDIDATE_UUID).cloned().collect()
    }

    /// VM `uuid`.
    pub fn vm(&self, uuid: &str) -> Option<TestVm> {
        self.lock().vms.get(uuid).cloned()
    }

    /// Adds a powered-on VM of an operator's (no labels of ours); returns its uuid.
    pub fn add_vm(&self, name: &str, description: &str) -> String {
        let mut st = self.lock();
        let uuid = new_uuid(&mut st);
        st.vms.insert(
            uuid.clone(),
            TestVm {
                uuid: uuid.clone(),
                name: name.into(),
                description: description.into(),
                state: "COMPLETE".into(),
                power_state: "ON".into(),
                spec_version: 1,
                num_sockets: 1,
                num_vcpus_per_socket: 1,
                memory_size_mib: 1024,
                user_data: None,
                parent: None,
                disks: vec![format!("{uuid}-disk0")],
            },
        );
        uuid
    }

    /// Removes VM `uuid` (as an operator would).
    pub fn remove_vm(&self, uuid: &str) {
        self.lock().vms.remove(uuid);
    }

    /// Sets the memory the cluster can give clones, MiB.
    pub fn set_memory_mib(&self, mib: u64) {
        self.lock().memory_mib = mib;
    }

    /// Changes the password the server accepts.
    pub fn set_password(&self, password: &str) {
        self.lock().password = password.into();
    }

    /// Changes VM `uuid` behind the provider's back (its `spec_version` moves on, as any update does).
    pub fn touch(&self, uuid: &str) {
        if let Some(v) = self.lock().vms.get_mut(uuid) {
            v.spec_version += 1;
        }
    }

    /// Every vdisk the cluster holds, with the VM holding it.
    pub fn disks(&self) -> Vec<(String, String)> {
        self.lock().vms.values().flat_map(|v| v.disks.iter().map(|d| (v.uuid.clone(), d.clone()))).collect()
    }
}

/// The candidate (powered off, one disk), the failed capacity task, 64 GiB for clones.
fn new_state() -> Arc<Mutex<Inner>> {
    let mut vms = BTreeMap::new();
    vms.insert(
        CANDIDATE_UUID.to_string(),
        TestVm {
            uuid: CANDIDATE_UUID.into(),
            name: CANDIDATE.into(),
            description: "Ubuntu 22.04 with Docker, cloud-init".into(),
            state: "COMPLETE".into(),
            power_state: "OFF".into(),
            spec_version: 7,
            num_sockets: 2,
            num_vcpus_per_socket: 1,
            memory_size_mib: 4096,
            user_data: None,
            parent: None,
            disks: vec!["a1b2c3d4-0000-4000-8000-0000000d15c0".into()],
        },
    );
    let mut tasks = BTreeMap::new();
    for id in [CAPACITY_TASK, CAPACITY_TASK_V4] {
        tasks.insert(
            id.to_string(),
            TestTask {
                status: "FAILED".into(),
                polls_left: 0,
                effect: Effect::None,
                entity: None,
                error_detail: Some(NO_CAPACITY.into()),
                operation: "VmClone",
            },
        );
    }
    Arc::new(Mutex::new(Inner {
        vms,
        tasks,
        next: 1,
        memory_mib: 64 * 1024,
        listed: 0,
        password: PASSWORD.into(),
        request_ids: BTreeMap::new(),
    }))
}

fn new_uuid(st: &mut Inner) -> String {
    st.next += 1;
    format!("4b5e0c4a-{:04x}-4a3b-9f6e-{:012x}", st.next % 0xffff, st.next)
}

fn vm_json(v: &TestVm) -> Value {
    let cluster = json!({"kind": "cluster", "uuid": CLUSTER_UUID, "name": CLUSTER_NAME});
    let mut resources = json!({"num_sockets": v.num_sockets, "num_vcpus_per_socket": v.num_vcpus_per_socket,
        "memory_size_mib": v.memory_size_mib, "power_state": v.power_state,
        "disk_list": v.disks.iter().map(|d| json!({"uuid": d, "device_properties": {"device_type": "DISK",
            "disk_address": {"adapter_type": "SCSI", "device_index": 0}}})).collect::<Vec<_>>()});
    if let Some(u) = &v.user_data {
        resources["guest_customization"] = json!({"cloud_init": {"user_data":
            base64::engine::general_purpose::STANDARD.encode(u)}});
    }
    let mut status_res = resources.clone();
    let n = v.uuid.len() as u64 + v.uuid.bytes().map(u64::from).sum::<u64>() % 200;
    status_res["nic_list"] = if v.state == "COMPLETE" && v.power_state == "ON" {
        json!([{"uuid": format!("{}-nic0", v.uuid), "is_connected": true,
            "ip_endpoint_list": [{"ip": format!("10.42.0.{}", n % 250 + 2), "type": "ASSIGNED"}]}])
    } else {
        json!([])
    };
    status_res["hypervisor_type"] = json!("AHV");
    let mut spec = json!({"name": v.name, "cluster_reference": cluster, "resources": resources});
    let mut status = json!({"name": v.name, "state": v.state, "cluster_reference": cluster,
        "resources": status_res, "message_list": []});
    if !v.description.is_empty() {
        spec["description"] = json!(v.description);
        status["description"] = json!(v.description);
    }
    json!({"api_version": "3.1",
        "metadata": {"kind": "vm", "uuid": v.uuid, "spec_version": v.spec_version, "categories": {},
            "creation_time": "2026-11-30T08:15:00Z", "last_update_time": "2026-11-30T08:16:00Z"},
        "spec": spec, "status": status})
}

fn task_json(uuid: &str, t: &TestTask) -> Value {
    let mut v = json!({"uuid": uuid, "status": t.status, "operation_type": t.operation, "api_version": "3.1",
        "percentage_complete": if t.status == "SUCCEEDED" || t.status == "FAILED" { 100 } else { 50 },
        "progress_message": t.operation, "creation_time": "2026-11-30T08:15:00Z",
        "entity_reference_list": t.entity.iter().map(|e| json!({"kind": "vm", "uuid": e})).collect::<Vec<_>>(),
        "cluster_reference": {"kind": "cluster", "uuid": CLUSTER_UUID}});
    if let Some(d) = &t.error_detail {
        v["error_detail"] = json!(d);
    }
    v
}

fn apply(st: &mut Inner, effect: &Effect) {
    match effect {
        Effect::Cloned(uuid) => {
            if let Some(v) = st.vms.get_mut(uuid) {
                v.state = "COMPLETE".into();
            }
        }
        Effect::Power(uuid, p) => {
            if let Some(v) = st.vms.get_mut(uuid) {
                v.power_state = p.clone();
            }
        }
        Effect::Deleted(uuid) => {
            st.vms.remove(uuid);
        }
        Effect::Describe(uuid, d) => {
            if let Some(v) = st.vms.get_mut(uuid) {
                v.description = d.clone();
            }
        }
        Effect::None => {}
    }
}

fn new_task(st: &mut Inner, operation: &'static str, effect: Effect, entity: Option<String>, now: bool) -> String {
    let uuid = format!("7a9c{:04x}-1b2c-4d3e-8f40-{:012x}", st.next % 0xffff, st.next + 0x100000);
    st.next += 1;
    let mut t =
        TestTask { status: "RUNNING".into(), polls_left: TASK_POLLS, effect, entity, error_detail: None, operation };
    if now {
        apply(st, &t.effect);
        t.status = "SUCCEEDED".into();
        t.polls_left = 0;
    }
    st.tasks.insert(uuid.clone(), t);
    uuid
}

/// The keys `DSMetadata` has.
const LIST_KEYS: &[&str] = &["kind", "offset", "length", "filter", "sort_attribute", "sort_order"];
/// The keys a clone's `override_spec` may have: `VM` (`name`, `description`, `cluster_reference`, ...)
/// with `VMResources` flattened into it.
const OVERRIDE_KEYS: &[&str] = &[
    "name",
    "description",
    "availability_zone_reference",
    "cluster_reference",
    "boot_config",
    "disk_list",
    "gpu_list",
    "guest_customization",
    "guest_os_id",
    "guest_tools",
    "hardware_clock_timezone",
    "memory_size_mib",
    "nic_list",
    "num_threads_per_core",
    "num_sockets",
    "num_vcpus_per_socket",
    "power_state",
    "vga_console_enabled",
    "machine_type",
];

fn unknown_keys(o: &Map<String, Value>, allowed: &[&str]) -> Vec<String> {
    o.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect()
}

fn positive(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

fn answer(inner: &Arc<Mutex<Inner>>, req: Incoming) -> Reply {
    let mut st = inner.lock().expect("server lock");
    if req.method.as_str() != "GET" && req.method.as_str() != "DELETE" {
        let ct = req.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if ct != "application/json" {
            return bad(format!("content-type must be application/json, got `{ct}`"));
        }
    }
    let uuid = req.var("uuid").to_string();
    match (req.method.as_str(), req.route.as_str()) {
        ("POST", "/vms/list") | ("POST", "/clusters/list") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, LIST_KEYS);
            if !extra.is_empty() {
                return bad(format!("DSMetadata has no {extra:?}"));
            }
            let want_kind = if req.route == "/vms/list" { "vm" } else { "cluster" };
            if o.get("kind").and_then(Value::as_str) != Some(want_kind) {
                return bad(format!("kind must be `{want_kind}`"));
            }
            let offset = o.get("offset").map_or(Some(0), Value::as_u64).unwrap_or(u64::MAX) as usize;
            let Some(length) = o.get("length").map_or(Some(20), positive).filter(|l| *l <= 500) else {
                return bad("length must be 1..=500");
            };
            if offset == usize::MAX {
                return bad("offset must be a non-negative integer");
            }
            if want_kind == "cluster" {
                let c = json!({"api_version": "3.1", "metadata": {"kind": "cluster", "uuid": CLUSTER_UUID},
                    "spec": {"name": CLUSTER_NAME, "resources": {}},
                    "status": {"name": CLUSTER_NAME, "state": "COMPLETE", "resources": {"nodes": {}, "config": {}}}});
                let items: Vec<Value> = vec![c].into_iter().skip(offset).take(length as usize).collect();
                return Reply::json(
                    200,
                    &json!({"api_version": "3.1", "entities": items,
                        "metadata": {"kind": "cluster", "total_matches": 1, "offset": offset, "length": length}}),
                );
            }
            let name = match o.get("filter").map(|f| f.as_str()) {
                None => None,
                Some(Some(f)) => match f.strip_prefix("vm_name==") {
                    Some(n) if !n.is_empty() && !n.contains([';', ',']) => Some(n.to_string()),
                    _ => return bad(format!("unsupported filter `{f}` (this server knows vm_name==<name>)")),
                },
                Some(None) => return bad("filter must be a string"),
            };
            let all: Vec<Value> = st
                .vms
                .values()
                .filter(|v| v.state != "PENDING")
                .filter(|v| name.as_deref().is_none_or(|n| v.name == n))
                .map(vm_json)
                .collect();
            let total = all.len();
            let page: Vec<Value> = all.into_iter().skip(offset).take(length as usize).collect();
            st.listed += page.len();
            Reply::json(
                200,
                &json!({"api_version": "3.1", "entities": page,
                    "metadata": {"kind": "vm", "total_matches": total, "offset": offset, "length": length}}),
            )
        }
        ("GET", "/vms/{uuid}") => match st.vms.get(&uuid) {
            Some(v) => Reply::json(200, &vm_json(v)),
            None => not_found(&format!("VM {uuid}")),
        },
        ("PUT", "/vms/{uuid}") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["api_version", "metadata", "spec"]);
            if !extra.is_empty() {
                return bad(format!("VMIntentInput has no {extra:?}"));
            }
            let (Some(meta), Some(spec)) = (o.get("metadata"), o.get("spec")) else {
                return bad("metadata and spec are required");
            };
            if meta["kind"] != "vm" || spec["name"].as_str().is_none() {
                return bad("metadata.kind must be vm and spec.name is required");
            }
            let Some(v) = st.vms.get(&uuid).cloned() else { return not_found(&format!("VM {uuid}")) };
            if meta["spec_version"].as_i64() != Some(v.spec_version) {
                return err(
                    409,
                    "CONCURRENT_REQUESTS_NOT_ALLOWED",
                    &format!("spec_version {} is not the VM's {}", meta["spec_version"], v.spec_version),
                );
            }
            let power = spec["resources"]["power_state"].as_str().unwrap_or(&v.power_state).to_string();
            if !["ON", "OFF"].contains(&power.as_str()) {
                return bad(format!("power_state `{power}`"));
            }
            if let Some(vm) = st.vms.get_mut(&uuid) {
                vm.spec_version += 1;
            }
            let task =
                new_task(&mut st, "VmUpdate", Effect::Power(uuid.clone(), power), Some(uuid.clone()), req.answer_lost);
            let mut body = vm_json(&st.vms[&uuid]);
            body["status"] = json!({"state": "PENDING", "execution_context": {"task_uuid": [task]}});
            Reply::json(202, &body)
        }
        ("DELETE", "/vms/{uuid}") => {
            let Some(v) = st.vms.get_mut(&uuid) else { return not_found(&format!("VM {uuid}")) };
            v.state = "DELETE_PENDING".into();
            let task =
                new_task(&mut st, "VmDelete", Effect::Deleted(uuid.clone()), Some(uuid.clone()), req.answer_lost);
            Reply::json(
                202,
                &json!({"status": {"state": "DELETE_PENDING", "execution_context": {"task_uuid": task}},
                    "spec": "", "api_version": "3.1", "metadata": {"kind": "vm", "uuid": uuid}}),
            )
        }
        ("POST", "/vms/{uuid}/clone") => {
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, &["override_spec", "metadata"]);
            if !extra.is_empty() {
                return bad(format!("the clone body has no {extra:?}"));
            }
            let Some(spec) = o.get("override_spec").and_then(Value::as_object) else {
                return bad("override_spec is required");
            };
            let extra = unknown_keys(spec, OVERRIDE_KEYS);
            if !extra.is_empty() {
                return bad(format!("override_spec has no {extra:?} (VMResources are flattened into it)"));
            }
            let Some(parent) = st.vms.get(&uuid).cloned() else { return not_found(&format!("VM {uuid}")) };
            let name = spec.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
            let Some(name) = name.map(str::to_string) else { return bad("override_spec.name is required") };
            let num = |k: &str, dflt: u64| spec.get(k).map_or(Some(dflt), positive);
            let (Some(sockets), Some(per), Some(mem)) = (
                num("num_sockets", parent.num_sockets),
                num("num_vcpus_per_socket", parent.num_vcpus_per_socket),
                num("memory_size_mib", parent.memory_size_mib),
            ) else {
                return bad("num_sockets, num_vcpus_per_socket and memory_size_mib must be positive integers");
            };
            if spec.get("description").is_some_and(|d| !d.is_string()) {
                return bad("description must be a string");
            }
            let user_data = match spec.get("guest_customization") {
                None => None,
                Some(gc) => {
                    let Some(g) = gc.as_object() else { return bad("guest_customization must be an object") };
                    let extra = unknown_keys(g, &["cloud_init", "sysprep", "is_overridable"]);
                    if !extra.is_empty() || (g.contains_key("cloud_init") && g.contains_key("sysprep")) {
                        return bad("guest_customization takes ONE OF cloud_init or sysprep");
                    }
                    let ci = g.get("cloud_init").and_then(Value::as_object);
                    let extra = ci.map(|c| unknown_keys(c, &["user_data", "meta_data", "custom_key_values"]));
                    if extra.is_some_and(|e| !e.is_empty()) {
                        return bad("cloud_init has user_data, meta_data, custom_key_values");
                    }
                    let Some(ud) = ci.and_then(|c| c.get("user_data")).and_then(Value::as_str) else {
                        return bad("cloud_init.user_data is required");
                    };
                    match base64::engine::general_purpose::STANDARD
                        .decode(ud)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                    {
                        Some(s) => Some(s),
                        None => return bad("cloud_init.user_data must be base64 encoded"),
                    }
                }
            };
            let used: u64 = st.vms.values().filter(|v| v.uuid != CANDIDATE_UUID).map(|v| v.memory_size_mib).sum();
            let id = new_uuid(&mut st);
            let task_id;
            if used + mem > st.memory_mib {
                // Accepted; the task fails when polled: the cluster has no room.
                task_id = format!("7a9cfa11-1b2c-4d3e-8f40-{:012x}", st.next);
                st.tasks.insert(
                    task_id.clone(),
                    TestTask {
                        status: "RUNNING".into(),
                        polls_left: 1,
                        effect: Effect::None,
                        entity: None,
                        error_detail: Some(NO_CAPACITY.into()),
                        operation: "VmClone",
                    },
                );
            } else {
                st.vms.insert(
                    id.clone(),
                    TestVm {
                        uuid: id.clone(),
                        name,
                        description: spec.get("description").and_then(Value::as_str).unwrap_or_default().to_string(),
                        state: "PENDING".into(),
                        power_state: "OFF".into(),
                        spec_version: 0,
                        num_sockets: sockets,
                        num_vcpus_per_socket: per,
                        memory_size_mib: mem,
                        user_data,
                        parent: Some(uuid.clone()),
                        disks: parent.disks.iter().enumerate().map(|(i, _)| format!("{id}-disk{i}")).collect(),
                    },
                );
                task_id = new_task(&mut st, "VmClone", Effect::Cloned(id.clone()), Some(id.clone()), req.answer_lost);
            }
            Reply::json(202, &json!({"task_uuid": task_id}))
        }
        ("GET", "/tasks/{uuid}") => {
            let Some(t) = st.tasks.get(&uuid).cloned() else { return not_found(&format!("task {uuid}")) };
            let mut t = t;
            if t.status == "RUNNING" {
                t.polls_left = t.polls_left.saturating_sub(1);
                if t.polls_left == 0 {
                    if t.error_detail.is_some() {
                        t.status = "FAILED".into();
                    } else {
                        apply(&mut st, &t.effect);
                        t.status = "SUCCEEDED".into();
                    }
                }
                st.tasks.insert(uuid.clone(), t.clone());
            }
            Reply::json(200, &task_json(&uuid, &t))
        }
        _ => not_found("route"),
    }
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct NutanixHarness {
    server: NutanixTestServer,
    /// How long a stalled request is held (longer than the client's timeout).
    stall: Duration,
    page_size: usize,
}

impl NutanixHarness {
    /// A harness over `server`; the provider must list with `page_size` per page.
    pub fn new(server: NutanixTestServer, page_size: usize, stall: Duration) -> Self {
        NutanixHarness { server, stall, page_size }
    }

    fn route(&self, op: Op) -> &'static str {
        if self.server.v4 {
            return v4::route(op);
        }
        match op {
            Op::Create => "POST /vms/{uuid}/clone",
            Op::Get => "GET /vms/{uuid}",
            Op::Delete => "DELETE /vms/{uuid}",
            Op::List => "POST /vms/list",
        }
    }
}

#[async_trait]
impl Harness for NutanixHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        if self.server.v4 {
            let f = v4::fault(op, fault, self.stall);
            return self.server.api.inject(self.route(op), f, skip, times);
        }
        let answer = match fault {
            F::Unauthorized => err(401, "AUTHENTICATION_REQUIRED", "Authentication required."),
            F::Forbidden => err(403, "ACCESS_DENIED", "User does not have permission to perform this operation."),
            F::NotFound => not_found("VM"),
            F::Conflict => err(409, "CONCURRENT_REQUESTS_NOT_ALLOWED", "The VM is being updated by another request."),
            F::RateLimited { retry_after } => err(429, "TOO_MANY_REQUESTS", "Too many requests.")
                .header("Retry-After", retry_after.as_secs().to_string()),
            F::ServerError => err(500, "INTERNAL_ERROR", "Internal Server Error."),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "INTERNAL_ERROR", "too late") };
                return self.server.api.inject(self.route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a clone's answer");
                // The clone is accepted and its task fails, as the cluster reports it.
                Reply::json(202, &json!({"task_uuid": CAPACITY_TASK}))
            }
        };
        self.server.api.inject(self.route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(self.route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(self.route(op))
    }

    fn retries(&self) -> RetryRules {
        // The clone is sent once (a retried POST could make a second VM); reads (the list is a POST
        // that reads) and the DELETE are retried. The test server sends Retry-After on a 429.
        RetryRules { retried: &[Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        // The v3 clone takes no idempotency token; v4's carries the claim as its NTNX-Request-Id.
        if self.server.v4 { v4::last_clone_claim(&self.server) } else { None }
    }

    fn missing_id(&self) -> String {
        "00000000-0000-4000-8000-000000000000".into()
    }

    async fn create_foreign_vm(&self) -> String {
        self.server.add_vm("ops-database", "Operator's database server")
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
                    || labels::labels(&v.description).get("kasm-autoscale-claim").map(String::as_str)
                        == Some(spec.claim.as_str())
            })
            .count()
    }
}
