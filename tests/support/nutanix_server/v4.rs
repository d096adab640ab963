//! The v4 face of the Prism Central test server: the VMM v4.3 and Prism v4.4 routes the provider
//! calls, answered in the shapes of Nutanix's SDK models (`{data, metadata, $objectType}` envelopes,
//! `vmm.v4.ahv.config.Vm`, `prism.v4.config.TaskReference` and `Task`, errors as `ErrorResponse` with
//! a list of `AppMessage`), and each request held to the spec:
//! - every `POST`, `PUT` and `DELETE` carries an `NTNX-Request-Id` that is a UUID; the clone, the
//!   power-on, the `PUT` and the `DELETE` carry `If-Match`, and a stale one is refused with 412;
//! - a clone whose request id was seen before starts nothing new and answers the first task (the
//!   request id is the idempotency key);
//! - `GET /vms` takes only `$page`, `$limit` (1–100), `$filter` (`name eq '<OData string>'`),
//!   `$orderby`, `$select`; bodies carry only the model's wire names and the right `$objectType`;
//!   `Userdata.value` must be base64 of at most 128000 characters.
//!
//! The VM's version is its `spec_version`: the ETag changes with every change. A clone copies the
//! candidate's description (the override has none) and is not visible until its task is done.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use shared::providers::conformance::{self, Op};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    CANDIDATE_UUID, CAPACITY_TASK_V4, CLUSTER_UUID, Effect, Inner, NO_CAPACITY, NutanixTestServer, TestTask, TestVm,
    USERNAME, apply, basic, new_uuid, positive, unknown_keys,
};
use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

const VMS: &str = "/vmm/v4.3/ahv/config/vms";

/// Every route, below `/api`.
pub(super) const ROUTES: &[&str] = &[
    "GET /vmm/v4.3/ahv/config/vms",
    "GET /vmm/v4.3/ahv/config/vms/{extId}",
    "PUT /vmm/v4.3/ahv/config/vms/{extId}",
    "DELETE /vmm/v4.3/ahv/config/vms/{extId}",
    "POST /vmm/v4.3/ahv/config/vms/{extId}/$actions/clone",
    "POST /vmm/v4.3/ahv/config/vms/{extId}/$actions/power-on",
    "GET /prism/v4.4/config/tasks/{extId}",
];

/// `CloneOverrideParams`' wire names.
const CLONE_KEYS: &[&str] = &[
    "$objectType",
    "$reserved",
    "$unknownFields",
    "name",
    "numSockets",
    "numCoresPerSocket",
    "numThreadsPerCore",
    "memorySizeBytes",
    "nics",
    "bootConfig",
    "guestCustomization",
    "guestCustomizationProfileConfig",
    "bulkCloneOptions",
];

/// `vmm.v4.ahv.config.Vm`'s wire names.
const VM_KEYS: &[&str] = &[
    "$objectType",
    "$reserved",
    "$unknownFields",
    "apcConfig",
    "availabilityZone",
    "biosUuid",
    "bootConfig",
    "categories",
    "cdRoms",
    "cluster",
    "createTime",
    "customAttributes",
    "description",
    "disks",
    "enabledCpuFeatures",
    "extId",
    "generationUuid",
    "gpus",
    "guestCustomization",
    "guestTools",
    "hardwareClockTimezone",
    "host",
    "isAgentVm",
    "isBrandingEnabled",
    "isCpuHotplugEnabled",
    "isCpuPassthroughEnabled",
    "isCrossClusterMigrationInProgress",
    "isGpuConsoleEnabled",
    "isLiveMigrateCapable",
    "isMemoryOvercommitEnabled",
    "isScsiControllerEnabled",
    "isVcpuHardPinningEnabled",
    "isVgaConsoleEnabled",
    "links",
    "machineType",
    "memorySizeBytes",
    "name",
    "nextScheduledReboot",
    "nics",
    "numCoresPerSocket",
    "numNumaNodes",
    "numSockets",
    "numThreadsPerCore",
    "ownershipInfo",
    "pcieDevices",
    "powerState",
    "project",
    "projectExtId",
    "protectionPolicyState",
    "protectionType",
    "serialPorts",
    "source",
    "sourceVmProfile",
    "storageConfig",
    "tenantId",
    "updateTime",
    "vmGuestCustomizationStatus",
    "vtpmConfig",
];

/// An error answer in the v4 shape (`ErrorResponse` with one `AppMessage`).
pub fn err(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"data": {"$objectType": "vmm.v4.error.ErrorResponse",
            "error": [{"$objectType": "vmm.v4.error.AppMessage", "code": code, "message": message,
                "severity": "ERROR", "errorGroup": "VMM_ERROR", "locale": "en_US"}]},
            "$objectType": "vmm.v4.ahv.config.ErrorResponse"}),
    )
}

fn bad(message: impl Into<String>) -> Reply {
    Reply::json(
        400,
        &json!({"data": {"$objectType": "vmm.v4.error.ErrorResponse",
            "error": {"$objectType": "vmm.v4.error.SchemaValidationError", "statusCode": 400, "error": "Bad Request",
                "path": VMS, "validationErrorMessages": [{"$objectType": "vmm.v4.error.SchemaValidationErrorMessage",
                    "location": "body", "message": message.into()}]}}}),
    )
}

fn not_found(what: &str) -> Reply {
    err(404, "VMM-20005", &format!("{what} not found"))
}

fn etag(v: &TestVm) -> String {
    format!("\"{}-{}\"", &v.uuid[..8], v.spec_version)
}

fn vm_json(v: &TestVm) -> Value {
    let n = v.uuid.len() as u64 + v.uuid.bytes().map(u64::from).sum::<u64>() % 200;
    let nics = if v.power_state == "ON" {
        json!([{"$objectType": "vmm.v4.ahv.config.Nic", "extId": format!("{}-nic0", v.uuid),
            "networkInfo": {"$objectType": "vmm.v4.ahv.config.NicNetworkInfo", "nicType": "NORMAL_NIC",
                "ipv4Info": {"$objectType": "vmm.v4.ahv.config.Ipv4Info", "learnedIpAddresses":
                    [{"$objectType": "common.v1.config.IPv4Address", "value": format!("10.42.0.{}", n % 250 + 2), "prefixLength": 32}]}}}])
    } else {
        json!([])
    };
    let mut o = json!({"$objectType": "vmm.v4.ahv.config.Vm", "$reserved": {"$fv": "v4.r3"},
        "extId": v.uuid, "name": v.name, "powerState": v.power_state, "numSockets": v.num_sockets,
        "numCoresPerSocket": v.num_vcpus_per_socket, "numThreadsPerCore": 1,
        "memorySizeBytes": v.memory_size_mib << 20, "createTime": "2026-11-30T08:15:00Z",
        "cluster": {"$objectType": "vmm.v4.ahv.config.ClusterReference", "extId": CLUSTER_UUID},
        "disks": v.disks.iter().map(|d| json!({"$objectType": "vmm.v4.ahv.config.Disk", "extId": d})).collect::<Vec<_>>(),
        "nics": nics,
        "links": [{"$objectType": "common.v1.response.ApiLink", "rel": "self", "href": format!("/api{VMS}/{}", v.uuid)}]});
    if !v.description.is_empty() {
        o["description"] = json!(v.description);
    }
    if let Some(p) = &v.parent {
        o["source"] = json!({"$objectType": "vmm.v4.ahv.config.VmSourceReference", "entityType": "VM", "extId": p});
    }
    o
}

fn task_ref(task: &str, response: &str) -> Reply {
    Reply::json(
        202,
        &json!({"data": {"$objectType": "prism.v4.config.TaskReference", "extId": task},
            "$objectType": format!("vmm.v4.ahv.config.{response}")}),
    )
}

fn new_task(st: &mut Inner, operation: &'static str, effect: Effect, entity: Option<String>, now: bool) -> String {
    let uuid = format!("ZXJnb24=:7a9c{:04x}-1b2c-4d3e-8f40-{:012x}", st.next % 0xffff, st.next + 0x100000);
    st.next += 1;
    let mut t = TestTask {
        status: "RUNNING".into(),
        polls_left: super::TASK_POLLS,
        effect,
        entity,
        error_detail: None,
        operation,
    };
    if now {
        apply(st, &t.effect);
        t.status = "SUCCEEDED".into();
        t.polls_left = 0;
    }
    st.tasks.insert(uuid.clone(), t);
    uuid
}

fn task_json(st: &Inner, id: &str, t: &TestTask) -> Value {
    let mut entities = Vec::new();
    if let Some(e) = &t.entity {
        // A clone's task names the VM it was cloned from and the clone.
        if let Effect::Cloned(_) = t.effect
            && let Some(p) = st.vms.get(e).and_then(|v| v.parent.clone())
        {
            entities.push(
                json!({"$objectType": "prism.v4.config.EntityReference", "extId": p, "rel": "vmm:ahv:config:vm"}),
            );
        }
        entities
            .push(json!({"$objectType": "prism.v4.config.EntityReference", "extId": e, "rel": "vmm:ahv:config:vm"}));
    }
    let done = t.status == "SUCCEEDED" || t.status == "FAILED";
    let mut v = json!({"$objectType": "prism.v4.config.Task", "extId": id, "operation": t.operation,
        "status": t.status, "progressPercentage": if done { 100 } else { 50 },
        "createdTime": "2026-11-30T08:15:00Z", "entitiesAffected": entities, "clusterExtIds": [CLUSTER_UUID],
        "isCancelable": false});
    if let Some(d) = &t.error_detail
        && t.status == "FAILED"
    {
        v["errorMessages"] = json!([{"$objectType": "prism.v4.error.AppMessage", "code": "VMM-30301",
            "message": d, "severity": "ERROR", "locale": "en_US"}]);
        v["legacyErrorMessage"] = json!(d);
    }
    v
}

/// The request id and `If-Match` rules; `Some` refuses the request.
fn check_headers(req: &Incoming, v: Option<&TestVm>, if_match: bool) -> Option<Reply> {
    let h = |k: &str| req.headers.get(k).and_then(|v| v.to_str().ok());
    match h("ntnx-request-id") {
        None => return Some(bad("NTNX-Request-Id is required")),
        Some(id) if uuid::Uuid::parse_str(id).is_err() => {
            return Some(bad(format!("NTNX-Request-Id `{id}` is not a UUID")));
        }
        Some(_) => {}
    }
    if if_match {
        let v = v?;
        match h("if-match") {
            None => return Some(bad("If-Match is required")),
            Some(tag) if tag != etag(v) => {
                return Some(err(412, "VMM-10412", &format!("If-Match {tag} is not the VM's version {}", etag(v))));
            }
            Some(_) => {}
        }
    }
    None
}

/// The OData `name eq '<string>'` of a `$filter`.
fn name_filter(f: &str) -> Result<String, String> {
    let lit = f.strip_prefix("name eq '").and_then(|r| r.strip_suffix('\''));
    match lit {
        Some(l) if !l.replace("''", "").contains('\'') => Ok(l.replace("''", "'")),
        _ => Err(format!("unsupported $filter `{f}` (this server knows name eq '<string>')")),
    }
}

fn check_clone_body(b: &Value) -> Result<(Map<String, Value>, Option<String>), Reply> {
    let Some(o) = b.as_object() else { return Err(bad("the body is not an object")) };
    let extra = unknown_keys(o, CLONE_KEYS);
    if !extra.is_empty() {
        return Err(bad(format!("CloneOverrideParams has no {extra:?}")));
    }
    if o.get("$objectType").and_then(Value::as_str) != Some("vmm.v4.ahv.config.CloneOverrideParams") {
        return Err(bad("$objectType must be vmm.v4.ahv.config.CloneOverrideParams"));
    }
    if o.get("name").and_then(Value::as_str).is_none_or(|n| n.is_empty() || n.chars().count() > 80) {
        return Err(bad("name: length must be less than or equal to `80` (and is required here)"));
    }
    for k in ["numSockets", "numCoresPerSocket", "numThreadsPerCore", "memorySizeBytes"] {
        if o.get(k).is_some_and(|v| positive(v).is_none()) {
            return Err(bad(format!("{k}: must be a value greater than or equal to `1`")));
        }
    }
    let user_data = match o.get("guestCustomization") {
        None => None,
        Some(gc) => {
            let Some(g) = gc.as_object() else { return Err(bad("guestCustomization must be an object")) };
            let extra = unknown_keys(g, &["$objectType", "$reserved", "$unknownFields", "config"]);
            if !extra.is_empty()
                || g.get("$objectType").and_then(Value::as_str) != Some("vmm.v4.ahv.config.GuestCustomizationParams")
            {
                return Err(bad("guestCustomization is a vmm.v4.ahv.config.GuestCustomizationParams {config}"));
            }
            let Some(c) = g.get("config").and_then(Value::as_object) else {
                return Err(bad("guestCustomization.config is required"));
            };
            if c.get("$objectType").and_then(Value::as_str) != Some("vmm.v4.ahv.config.CloudInit") {
                return Err(bad("guestCustomization.config: this server knows vmm.v4.ahv.config.CloudInit"));
            }
            let extra = unknown_keys(
                c,
                &["$objectType", "$reserved", "$unknownFields", "datasourceType", "metadata", "cloudInitScript"],
            );
            if !extra.is_empty() {
                return Err(bad(format!("CloudInit has no {extra:?}")));
            }
            if c.get("datasourceType").is_some_and(|d| d != "CONFIG_DRIVE_V2") {
                return Err(bad("datasourceType: one of CONFIG_DRIVE_V2"));
            }
            let Some(s) = c.get("cloudInitScript").and_then(Value::as_object) else {
                return Err(bad("cloudInitScript is required"));
            };
            if s.get("$objectType").and_then(Value::as_str) != Some("vmm.v4.ahv.config.Userdata")
                || !unknown_keys(s, &["$objectType", "$reserved", "$unknownFields", "value"]).is_empty()
            {
                return Err(bad("cloudInitScript: this server knows vmm.v4.ahv.config.Userdata {value}"));
            }
            let Some(v) = s.get("value").and_then(Value::as_str) else { return Err(bad("Userdata.value is required")) };
            if v.chars().count() > 128_000 {
                return Err(bad("Userdata.value: length must be less than or equal to `128000`"));
            }
            match base64::engine::general_purpose::STANDARD.decode(v).ok().and_then(|b| String::from_utf8(b).ok()) {
                Some(s) => Some(s),
                None => return Err(bad("Userdata.value must be base64 encoded")),
            }
        }
    };
    Ok((o.clone(), user_data))
}

fn answer(inner: &Arc<Mutex<Inner>>, req: Incoming) -> Reply {
    let mut st = inner.lock().expect("server lock");
    if req.method == "PUT" || (req.method == "POST" && req.route.ends_with("/clone")) {
        let ct = req.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if ct != "application/json" {
            return bad(format!("content-type must be application/json, got `{ct}`"));
        }
    }
    let id = req.var("extId").to_string();
    // A clone not yet done is not there.
    let visible = |st: &Inner, id: &str| st.vms.get(id).filter(|v| v.state != "PENDING").cloned();
    match (req.method.as_str(), req.route.trim_start_matches("/vmm/v4.3/ahv/config")) {
        ("GET", "/vms") => {
            let allowed = ["$page", "$limit", "$filter", "$orderby", "$select"];
            if let Some(k) = req.params.keys().find(|k| !allowed.contains(&k.as_str())) {
                return bad(format!("unknown query parameter {k}"));
            }
            let Some(limit) =
                req.param("$limit").map_or(Some(50), |l| l.parse::<usize>().ok()).filter(|l| (1..=100).contains(l))
            else {
                return bad("$limit: must be a positive integer between 1 and 100");
            };
            let Some(page) = req.param("$page").map_or(Some(0), |p| p.parse::<usize>().ok()) else {
                return bad("$page: must be a non-negative integer");
            };
            let name = match req.param("$filter").map(name_filter) {
                None => None,
                Some(Ok(n)) => Some(n),
                Some(Err(e)) => return bad(e),
            };
            let all: Vec<Value> = st
                .vms
                .values()
                .filter(|v| v.state != "PENDING")
                .filter(|v| name.as_deref().is_none_or(|n| v.name == n))
                .map(vm_json)
                .collect();
            let total = all.len();
            let items: Vec<Value> = all.into_iter().skip(page * limit).take(limit).collect();
            st.listed += items.len();
            let mut body = json!({"$objectType": "vmm.v4.ahv.config.ListVmsApiResponse",
                "metadata": {"$objectType": "common.v1.response.ApiResponseMetadata", "totalAvailableResults": total,
                    "flags": [{"name": "hasError", "value": false}, {"name": "isPaginated", "value": true}]}});
            // No VM: the answer carries no `data` (the SDK's EMPTY_LIST).
            if !items.is_empty() {
                body["data"] = json!(items);
            }
            Reply::json(200, &body)
        }
        ("GET", "/vms/{extId}") => match visible(&st, &id) {
            Some(v) => {
                Reply::json(200, &json!({"data": vm_json(&v), "$objectType": "vmm.v4.ahv.config.GetVmApiResponse"}))
                    .header("ETag", etag(&v))
            }
            None => not_found(&format!("VM {id}")),
        },
        ("PUT", "/vms/{extId}") => {
            let v = visible(&st, &id);
            if let Some(r) = check_headers(&req, v.as_ref(), true) {
                return r;
            }
            let Some(v) = v else { return not_found(&format!("VM {id}")) };
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let Some(o) = b.as_object() else { return bad("the body is not an object") };
            let extra = unknown_keys(o, VM_KEYS);
            if !extra.is_empty() {
                return bad(format!("vmm.v4.ahv.config.Vm has no {extra:?}"));
            }
            if o.get("$objectType").and_then(Value::as_str) != Some("vmm.v4.ahv.config.Vm") {
                return bad("$objectType must be vmm.v4.ahv.config.Vm");
            }
            if o.get("extId").is_some_and(|e| e != &json!(id)) || o.get("name").is_some_and(|n| n != &json!(v.name)) {
                return bad("extId and name must be the VM's (this server changes only the description)");
            }
            let desc = match o.get("description") {
                None => String::new(),
                Some(Value::String(d)) => d.clone(),
                Some(_) => return bad("description must be a string"),
            };
            if let Some(vm) = st.vms.get_mut(&id) {
                vm.spec_version += 1;
            }
            let task =
                new_task(&mut st, "VmUpdate", Effect::Describe(id.clone(), desc), Some(id.clone()), req.answer_lost);
            task_ref(&task, "UpdateVmApiResponse")
        }
        ("DELETE", "/vms/{extId}") => {
            let v = visible(&st, &id);
            if let Some(r) = check_headers(&req, v.as_ref(), true) {
                return r;
            }
            if v.is_none() {
                return not_found(&format!("VM {id}"));
            }
            if let Some(vm) = st.vms.get_mut(&id) {
                vm.spec_version += 1;
            }
            let task = new_task(&mut st, "VmDelete", Effect::Deleted(id.clone()), Some(id.clone()), req.answer_lost);
            task_ref(&task, "DeleteVmApiResponse")
        }
        ("POST", "/vms/{extId}/$actions/power-on") => {
            let v = visible(&st, &id);
            if let Some(r) = check_headers(&req, v.as_ref(), true) {
                return r;
            }
            if v.is_none() {
                return not_found(&format!("VM {id}"));
            }
            if !req.body.is_empty() {
                return bad("power-on takes no body");
            }
            if let Some(vm) = st.vms.get_mut(&id) {
                vm.spec_version += 1;
            }
            let task = new_task(
                &mut st,
                "VmPowerOn",
                Effect::Power(id.clone(), "ON".into()),
                Some(id.clone()),
                req.answer_lost,
            );
            task_ref(&task, "PowerOnVmApiResponse")
        }
        ("POST", "/vms/{extId}/$actions/clone") => {
            let parent = visible(&st, &id);
            if let Some(r) = check_headers(&req, parent.as_ref(), true) {
                return r;
            }
            let Some(parent) = parent else { return not_found(&format!("VM {id}")) };
            let Some(b) = req.json() else { return bad("the body is not JSON") };
            let (o, user_data) = match check_clone_body(&b) {
                Ok(x) => x,
                Err(r) => return r,
            };
            let request_id = req.headers.get("ntnx-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if let Some(task) = st.request_ids.get(request_id) {
                // The same request again: nothing new is started.
                return task_ref(&task.clone(), "CloneVmApiResponse");
            }
            let request_id = request_id.to_string();
            let name = o["name"].as_str().unwrap_or_default().to_string();
            let num = |k: &str, dflt: u64| o.get(k).and_then(Value::as_u64).unwrap_or(dflt);
            let sockets = num("numSockets", parent.num_sockets);
            let per = num("numCoresPerSocket", parent.num_vcpus_per_socket);
            let mem = o.get("memorySizeBytes").and_then(Value::as_u64).map_or(parent.memory_size_mib, |b| b >> 20);
            let used: u64 = st.vms.values().filter(|v| v.uuid != CANDIDATE_UUID).map(|v| v.memory_size_mib).sum();
            let new_id = new_uuid(&mut st);
            let task = if used + mem > st.memory_mib {
                let task = format!("ZXJnb24=:7a9cfa11-1b2c-4d3e-8f40-{:012x}", st.next);
                st.tasks.insert(
                    task.clone(),
                    TestTask {
                        status: "RUNNING".into(),
                        polls_left: 1,
                        effect: Effect::None,
                        entity: None,
                        error_detail: Some(NO_CAPACITY.into()),
                        operation: "VmClone",
                    },
                );
                task
            } else {
                st.vms.insert(
                    new_id.clone(),
                    TestVm {
                        uuid: new_id.clone(),
                        name,
                        // The override has no description: the clone keeps its source's.
                        description: parent.description.clone(),
                        state: "PENDING".into(),
                        power_state: "OFF".into(),
                        spec_version: 0,
                        num_sockets: sockets,
                        num_vcpus_per_socket: per,
                        memory_size_mib: mem,
                        user_data,
                        parent: Some(id.clone()),
                        disks: parent.disks.iter().enumerate().map(|(i, _)| format!("{new_id}-disk{i}")).collect(),
                    },
                );
                new_task(&mut st, "VmClone", Effect::Cloned(new_id.clone()), Some(new_id), req.answer_lost)
            };
            st.request_ids.insert(request_id, task.clone());
            task_ref(&task, "CloneVmApiResponse")
        }
        ("GET", "/prism/v4.4/config/tasks/{extId}") => {
            let Some(mut t) = st.tasks.get(&id).cloned() else { return not_found(&format!("task {id}")) };
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
                st.tasks.insert(id.clone(), t.clone());
            }
            Reply::json(
                200,
                &json!({"data": task_json(&st, &id, &t), "$objectType": "prism.v4.config.GetTaskApiResponse"}),
            )
        }
        _ => not_found("route"),
    }
}

/// Serves `inner` through the v4 routes.
pub(super) async fn serve(inner: Arc<Mutex<Inner>>) -> FakeApi {
    let guard_state = inner.clone();
    let mut b = FakeApi::builder()
        .prefix("/api")
        .guard(move |req| {
            let want = basic(USERNAME, &guard_state.lock().expect("server lock").password);
            let got = req.headers.get("authorization").and_then(|v| v.to_str().ok());
            (got != Some(want.as_str())).then(|| err(401, "VMM-10401", "Authentication required."))
        })
        .unrouted(|m, p| err(404, "VMM-10404", &format!("no API at {m} {p}")));
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
    b.start().await
}

/// The route of each conformance operation.
pub(super) fn route(op: Op) -> &'static str {
    match op {
        Op::Create => "POST /vmm/v4.3/ahv/config/vms/{extId}/$actions/clone",
        Op::Get => "GET /vmm/v4.3/ahv/config/vms/{extId}",
        Op::Delete => "DELETE /vmm/v4.3/ahv/config/vms/{extId}",
        Op::List => "GET /vmm/v4.3/ahv/config/vms",
    }
}

/// A conformance fault in v4's words.
pub(super) fn fault(op: Op, fault: conformance::Fault, stall: Duration) -> Fault {
    use conformance::Fault as F;
    let answer = match fault {
        F::Unauthorized => err(401, "VMM-10401", "Authentication required."),
        F::Forbidden => err(403, "VMM-10403", "User does not have permission to perform this operation."),
        F::NotFound => not_found("VM"),
        F::Conflict => err(409, "VMM-10409", "The VM is being updated by another request."),
        F::RateLimited { retry_after } => {
            err(429, "VMM-10429", "Too many requests.").header("Retry-After", retry_after.as_secs().to_string())
        }
        F::ServerError => err(500, "VMM-10500", "Internal Server Error."),
        F::Timeout => return Fault::Stall { hold: stall, then: err(500, "VMM-10500", "too late") },
        F::OutOfCapacity => {
            assert_eq!(op, Op::Create, "out of capacity is a clone's answer");
            // The clone is accepted and its task fails, as the cluster reports it.
            task_ref(CAPACITY_TASK_V4, "CloneVmApiResponse")
        }
    };
    Fault::Answer(answer)
}

/// The claim the last clone carried as its `NTNX-Request-Id` (a ULID written as a UUID).
pub(super) fn last_clone_claim(server: &NutanixTestServer) -> Option<String> {
    let r = server.api.last(route(Op::Create))?;
    let id = r.headers.get("ntnx-request-id")?;
    let u = uuid::Uuid::parse_str(id).ok()?;
    Some(ulid::Ulid(u.as_u128()).to_string().to_ascii_lowercase())
}
