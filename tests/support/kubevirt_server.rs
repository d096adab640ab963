//! An in-process Kubernetes API server with KubeVirt and CDI for tests, on the shared fake-API harness
//! ([`crate::fake_api`]): answers the calls `shared::providers::kubevirt` makes in the shapes of the
//! Kubernetes API machinery and KubeVirt's swagger (objects with `metadata.{name, namespace, uid,
//! labels, ownerReferences, creationTimestamp}`, lists `{kind: ...List, metadata: {continue}, items}`
//! paged by `limit`/`continue`, errors as `Status` objects, `DeleteOptions` bodies), and checks the
//! Bearer token.
//!
//! It keeps Secrets, PVCs, VirtualMachines, VirtualMachineInstances and DataVolumes per namespace. A
//! VirtualMachine's `dataVolumeTemplates` become DataVolumes (owned by the VM) each with a PVC of the
//! same name (owned by the DataVolume, carrying the DataVolume's labels as CDI copies them; CDI
//! source, `newPersistentVolumeClaim`, not in the specs folder). A VM is `Provisioning` for
//! [`START_READS`] reads, then `Running` with a VMI carrying the template's labels and an interface
//! address; in unschedulable mode it is `ErrorUnschedulable` with a VMI whose `PodScheduled` condition is
//! `False`/`Unschedulable`. Deleting a VM deletes its VMI (virt-controller); deleting an object deletes its owned dependents
//! (the garbage collector), unless garbage collection is switched off ([`KubevirtTestServer::set_gc`]) to model leftovers.

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Reply};

/// The token the server accepts.
pub const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.kubevirt-test-service-account-token";
/// The namespace the tests use.
pub const NAMESPACE: &str = "kasm";
/// The source PVC that exists (Bound) in [`NAMESPACE`].
pub const SOURCE_PVC: &str = "ubuntu-2404-src";
/// The Multus network that exists in [`NAMESPACE`].
pub const NAD: &str = "vlan10";
/// Reads of a new VM before it is Running.
pub const START_READS: u32 = 2;
/// The CA the tests trust (base64 of it goes in `ssl_certificate`); the server is plain HTTP.
pub const CA_PEM: &str = include_str!("../../shared/src/providers/kubevirt/fixtures/test-ca.pem");

/// One recorded request.
pub use crate::fake_api::Recorded as Request;

/// The collections the server keeps: (API prefix, plural, kind). The last [`HARVESTER_KINDS`] are
/// routed only by a Harvester server ([`KubevirtTestServer::start_harvester`]).
pub const KINDS: [(&str, &str, &str); 7] = [
    ("/api/v1", "secrets", "Secret"),
    ("/api/v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("/apis/kubevirt.io/v1", "virtualmachines", "VirtualMachine"),
    ("/apis/kubevirt.io/v1", "virtualmachineinstances", "VirtualMachineInstance"),
    ("/apis/cdi.kubevirt.io/v1beta1", "datavolumes", "DataVolume"),
    ("/apis/harvesterhci.io/v1beta1", "virtualmachineimages", "VirtualMachineImage"),
    ("/apis/harvesterhci.io/v1beta1", "keypairs", "KeyPair"),
];

/// How many of [`KINDS`] (at its end) are Harvester's.
pub const HARVESTER_KINDS: usize = 2;

/// Harvester's annotation of PVCs to make for a VM (`pkg/util/constants.go`).
pub const VOLUME_CLAIM_TEMPLATES: &str = "harvesterhci.io/volumeClaimTemplates";

/// The route template of a collection (`GET`/`POST`) or of one object (`GET`/`DELETE`).
pub fn route(method: &str, plural: &str, one: bool) -> String {
    let (prefix, _, _) = KINDS.iter().find(|k| k.1 == plural).expect("a known kind");
    format!("{method} {prefix}/namespaces/{{ns}}/{plural}{}", if one { "/{name}" } else { "" })
}

type Key = (String, String, String); // (plural, namespace, name)

#[derive(Debug)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    /// VM name → reads left before Running.
    starting: BTreeMap<(String, String), u32>,
    next_uid: u64,
    unschedulable: bool,
    gc: bool,
    /// (verb, resource) the token's Role lacks.
    denied: BTreeSet<(String, String)>,
    /// VMs put in list answers, all pages.
    vms_listed: usize,
    /// Harvester mode: its kinds are routed and its VM controller makes PVCs from VM annotations.
    harvester: bool,
}

/// The running server.
#[derive(Debug, Clone)]
pub struct KubevirtTestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

/// A `Status` error answer.
pub fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}

fn not_found(kind: &str, name: &str) -> Reply {
    status(404, "NotFound", &format!("{} \"{name}\" not found", kind.to_ascii_lowercase()))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The label map of an object.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default()
}

/// Parses an equality-based label selector (`k=v,k2=v2`); `None` for anything else.
fn parse_selector(s: &str) -> Option<Vec<(String, String)>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|term| {
            let (k, v) = term.split_once('=')?;
            let v = v.strip_prefix('=').unwrap_or(v);
            (!k.is_empty() && !k.ends_with('!')).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

impl KubevirtTestServer {
    /// Starts a server with namespace [`NAMESPACE`], the Bound source PVC [`SOURCE_PVC`] and the
    /// NetworkAttachmentDefinition [`NAD`].
    pub async fn start() -> KubevirtTestServer {
        Self::start_with(false).await
    }

    /// Starts a server as [`KubevirtTestServer::start`] does, that also serves Harvester's
    /// VirtualMachineImages and KeyPairs and does what Harvester's VM controller does with a VM's
    /// `harvesterhci.io/volumeClaimTemplates` annotation (`createPVCsFromAnnotation`,
    /// `pkg/controller/master/virtualmachine/vm_controller.go`: each PVC created as written, in the VM's
    /// namespace, not owned by the VM; an entry without a name is refused by its VM webhook, "PVC name is
    /// required"; one whose `harvesterhci.io/imageId` image does not exist is skipped).
    pub async fn start_harvester() -> KubevirtTestServer {
        Self::start_with(true).await
    }

    async fn start_with(harvester: bool) -> KubevirtTestServer {
        let inner = Arc::new(Mutex::new(Inner {
            objects: BTreeMap::new(),
            starting: BTreeMap::new(),
            next_uid: 1,
            unschedulable: false,
            gc: true,
            denied: BTreeSet::new(),
            vms_listed: 0,
            harvester,
        }));
        let mut b = FakeApi::builder()
            .guard(|req| {
                let got = req.headers.get("authorization").and_then(|v| v.to_str().ok());
                (got != Some(format!("Bearer {TOKEN}").as_str())).then(|| status(401, "Unauthorized", "Unauthorized"))
            })
            .unrouted(|_, path| {
                status(404, "NotFound", &format!("the server could not find the requested resource ({path})"))
            });
        let mut routes: Vec<String> = vec![
            "GET /version".into(),
            "GET /api/v1/namespaces/{ns}".into(),
            "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews".into(),
            "GET /apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}".into(),
        ];
        let kinds = if harvester { &KINDS[..] } else { &KINDS[..KINDS.len() - HARVESTER_KINDS] };
        for (_, plural, _) in kinds {
            for (m, one) in [("GET", false), ("POST", false), ("GET", true), ("DELETE", true)] {
                routes.push(route(m, plural, one));
            }
        }
        for r in routes {
            let st = inner.clone();
            b = b.route(
                &r,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    async move { answer(&st, req) }
                }),
            );
        }
        let api = b.start().await;
        let server = KubevirtTestServer { url: api.url.clone(), api, inner };
        server.put(
            "persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": SOURCE_PVC, "namespace": NAMESPACE},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
                   "status": {"phase": "Bound"}}),
        );
        server
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

    /// Stores `obj` (as an operator would) in collection `plural`.
    pub fn put(&self, plural: &str, mut obj: Value) {
        let mut st = self.lock();
        let uid = st.next_uid;
        st.next_uid += 1;
        obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{uid:012}"));
        obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or(NAMESPACE).to_string();
        let name = obj["metadata"]["name"].as_str().expect("a name").to_string();
        st.objects.insert((plural.into(), ns, name), obj);
    }

    /// Removes an object (as an operator would).
    pub fn remove(&self, plural: &str, name: &str) {
        self.lock().objects.remove(&(plural.into(), NAMESPACE.into(), name.into()));
    }

    /// The object, if it exists.
    pub fn get(&self, plural: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&(plural.into(), NAMESPACE.into(), name.into())).cloned()
    }

    /// The object in namespace `ns`, if it exists.
    pub fn get_in(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(&(plural.into(), ns.into(), name.into())).cloned()
    }

    /// The names of every object of `plural`.
    pub fn names(&self, plural: &str) -> Vec<String> {
        self.lock().objects.keys().filter(|k| k.0 == plural).map(|k| k.2.clone()).collect()
    }

    /// Every object created by a test (the source PVC excluded), as `plural/name`.
    pub fn leftovers(&self) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|k| !(k.0 == "persistentvolumeclaims" && k.2 == SOURCE_PVC) && k.0 != "virtualmachineimages")
            .map(|k| format!("{}/{}", k.0, k.2))
            .collect()
    }

    /// New VMs stay unschedulable (no node has room).
    pub fn set_unschedulable(&self, on: bool) {
        self.lock().unschedulable = on;
    }

    /// Switches the garbage collector (owned dependents deleted with their owner) on or off.
    pub fn set_gc(&self, on: bool) {
        self.lock().gc = on;
    }

    /// The token's Role lacks `verb` on `resource`.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.lock().denied.insert((verb.into(), resource.into()));
    }
}

fn kind_of(plural: &str) -> &'static str {
    KINDS.iter().find(|k| k.1 == plural).map(|k| k.2).unwrap_or("Unknown")
}

fn api_version_of(plural: &str) -> &'static str {
    match KINDS.iter().find(|k| k.1 == plural).map(|k| k.0) {
        Some("/api/v1") => "v1",
        Some("/apis/kubevirt.io/v1") => "kubevirt.io/v1",
        Some("/apis/harvesterhci.io/v1beta1") => "harvesterhci.io/v1beta1",
        _ => "cdi.kubevirt.io/v1beta1",
    }
}

fn plural_of(route: &str) -> Option<&'static str> {
    KINDS.iter().map(|k| k.1).find(|p| route.contains(&format!("/{p}")))
}

fn answer(st: &Arc<Mutex<Inner>>, req: Incoming) -> Reply {
    let mut st = st.lock().expect("server lock");
    let route = req.route.as_str();
    match (req.method.as_str(), route) {
        ("GET", "/version") => Reply::json(
            200,
            &json!({"major": "1", "minor": "31", "gitVersion": "v1.31.4", "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
                    "gitTreeState": "clean", "buildDate": "2024-12-10T18:44:49Z", "goVersion": "go1.22.9",
                    "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ("GET", "/api/v1/namespaces/{ns}") => {
            if req.var("ns") == NAMESPACE {
                Reply::json(
                    200,
                    &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}, "status": {"phase": "Active"}}),
                )
            } else {
                not_found("Namespace", req.var("ns"))
            }
        }
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") => {
            let Some(body) = req.json() else { return status(400, "BadRequest", "the body is not JSON") };
            let Some(attrs) = body.pointer("/spec/resourceAttributes") else {
                return status(422, "Invalid", "spec.resourceAttributes: Required value");
            };
            let verb = attrs["verb"].as_str().unwrap_or_default().to_string();
            let resource = attrs["resource"].as_str().unwrap_or_default().to_string();
            let allowed = !st.denied.contains(&(verb, resource));
            let mut out = body.clone();
            out["status"] = json!({"allowed": allowed});
            Reply::json(201, &out)
        }
        ("GET", r) if r.contains("network-attachment-definitions") => {
            if req.var("ns") == NAMESPACE && req.var("name") == NAD {
                Reply::json(
                    200,
                    &json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                    "metadata": {"name": NAD, "namespace": NAMESPACE}, "spec": {"config": "{}"}}),
                )
            } else {
                not_found("NetworkAttachmentDefinition", req.var("name"))
            }
        }
        (method, r) => {
            let plural = plural_of(r).expect("a routed kind");
            let ns = req.var("ns").to_string();
            let one = r.ends_with("{name}");
            match (method, one) {
                ("POST", false) => create(&mut st, plural, &ns, &req),
                ("GET", false) => list(&mut st, plural, &ns, &req),
                ("GET", true) => read(&mut st, plural, &ns, req.var("name")),
                ("DELETE", true) => delete(&mut st, plural, &ns, req.var("name"), &req),
                _ => status(405, "MethodNotAllowed", "method not allowed"),
            }
        }
    }
}

fn create(st: &mut Inner, plural: &str, ns: &str, req: &Incoming) -> Reply {
    let kind = kind_of(plural);
    let Some(mut obj) = req.json().filter(Value::is_object) else {
        return status(400, "BadRequest", "the body is not a JSON object");
    };
    if obj["apiVersion"] != api_version_of(plural) || obj["kind"] != kind {
        return status(400, "BadRequest", &format!("the object is not a {} {kind}", api_version_of(plural)));
    }
    let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) else {
        return status(
            422,
            "Invalid",
            &format!("{kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"),
        );
    };
    if let Some(n) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
        && n != ns
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        );
    }
    if ns != NAMESPACE {
        return status(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
    }
    let key = (plural.to_string(), ns.to_string(), name.clone());
    if st.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{plural}.{} \"{name}\" already exists", api_version_of(plural).split('/').next().unwrap_or("")),
        );
    }
    if plural == "virtualmachines"
        && let Err(m) = check_vm(&obj)
    {
        return status(422, "Invalid", &format!("VirtualMachine.kubevirt.io \"{name}\" is invalid: {m}"));
    }
    if plural == "secrets" && obj.get("stringData").is_some_and(|d| !d.is_object()) {
        return status(400, "BadRequest", "stringData must be a map of strings");
    }
    // CRD harvesterhci.io_keypairs.yaml: spec.publicKey (string) is required.
    if plural == "keypairs" && !obj.pointer("/spec/publicKey").is_some_and(Value::is_string) {
        return status(
            422,
            "Invalid",
            &format!("KeyPair.harvesterhci.io \"{name}\" is invalid: spec.publicKey: Required value"),
        );
    }
    let claim_templates = if st.harvester && plural == "virtualmachines" {
        match claim_templates(&obj) {
            Ok(t) => t,
            Err(m) => {
                return status(
                    400,
                    "BadRequest",
                    &format!("admission webhook \"validator.harvesterhci.io\" denied the request: {m}"),
                );
            }
        }
    } else {
        Vec::new()
    };
    let uid = format!("00000000-0000-4000-8000-{:012}", st.next_uid);
    st.next_uid += 1;
    obj["metadata"]["namespace"] = json!(ns);
    obj["metadata"]["uid"] = json!(uid);
    obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    obj["metadata"]["resourceVersion"] = json!(st.next_uid.to_string());
    if plural == "secrets"
        && let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        use base64::Engine as _;
        let data: serde_json::Map<String, Value> = sd
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (k.clone(), json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default())))
            })
            .collect();
        obj["data"] = Value::Object(data);
    }
    for mut pvc in claim_templates {
        // Harvester's VM controller: the PVC as written, unless its image does not exist (skipped).
        let image = pvc.pointer("/metadata/annotations/harvesterhci.io~1imageId").and_then(Value::as_str);
        if let Some((ins, iname)) = image.and_then(|i| i.split_once('/'))
            && !st.objects.contains_key(&("virtualmachineimages".to_string(), ins.to_string(), iname.to_string()))
        {
            continue;
        }
        let pname = pvc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let pkey = ("persistentvolumeclaims".to_string(), ns.to_string(), pname);
        if st.objects.contains_key(&pkey) {
            continue;
        }
        pvc["apiVersion"] = json!("v1");
        pvc["kind"] = json!("PersistentVolumeClaim");
        pvc["metadata"]["namespace"] = json!(ns);
        pvc["metadata"]["uid"] = json!(format!("00000000-0000-4000-a000-{:012}", st.next_uid));
        st.next_uid += 1;
        pvc["status"] = json!({"phase": "Bound"});
        st.objects.insert(pkey, pvc);
    }
    if plural == "virtualmachines" {
        obj["status"] = json!({"printableStatus": "Provisioning", "created": false, "ready": false});
        st.starting.insert((ns.to_string(), name.clone()), START_READS);
        let owner = json!([{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
        for dvt in obj.pointer("/spec/dataVolumeTemplates").and_then(Value::as_array).cloned().unwrap_or_default() {
            let dv_name = dvt.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            let dv_uid = format!("00000000-0000-4000-9000-{:012}", st.next_uid);
            st.next_uid += 1;
            let mut meta = dvt.get("metadata").cloned().unwrap_or_else(|| json!({}));
            meta["namespace"] = json!(ns);
            meta["uid"] = json!(dv_uid);
            meta["ownerReferences"] = owner.clone();
            let dv = json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": meta,
                            "spec": dvt["spec"], "status": {"phase": "Succeeded", "progress": "100.0%"}});
            st.objects.insert(("datavolumes".into(), ns.into(), dv_name.clone()), dv);
            // CDI gives the PVC the DataVolume's labels (and its own `app` label).
            let mut pvc_labels = dvt.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
            pvc_labels["app"] = json!("containerized-data-importer");
            let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": dv_name, "namespace": ns, "labels": pvc_labels,
                    "ownerReferences": [{"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "name": dv_name, "uid": dv_uid, "controller": true}]},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": dvt.pointer("/spec/storage/resources/requests").cloned().unwrap_or(json!({}))}},
                "status": {"phase": "Bound"}});
            st.objects.insert(("persistentvolumeclaims".into(), ns.into(), dv_name), pvc);
        }
    }
    st.objects.insert(key, obj.clone());
    Reply::json(201, &obj)
}

/// The PVCs of a VM's `harvesterhci.io/volumeClaimTemplates` annotation (a JSON list of PVCs, each
/// with a name, as Harvester's VM webhook requires).
fn claim_templates(vm: &Value) -> Result<Vec<Value>, String> {
    let Some(text) = vm.pointer("/metadata/annotations/harvesterhci.io~1volumeClaimTemplates") else {
        return Ok(Vec::new());
    };
    let text = text.as_str().ok_or("the volumeClaimTemplates annotation must be a string")?;
    let pvcs: Vec<Value> = serde_json::from_str(text).map_err(|e| format!("invalid volumeClaimTemplates: {e}"))?;
    for p in &pvcs {
        if p.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err("PVC name is required".into());
        }
        if p.pointer("/spec/resources/requests/storage").and_then(Value::as_str).is_none() {
            return Err("spec.resources.requests.storage: Required value".into());
        }
    }
    Ok(pvcs)
}

/// The checks the API server's schema and KubeVirt's admission webhook make that the provider's
/// requests could break (swagger `v1.VirtualMachineSpec`, `v1.DomainSpec`, `v1.Volume`, ...).
fn check_vm(vm: &Value) -> Result<(), String> {
    let spec = vm.get("spec").ok_or("spec: Required value")?;
    if let Some(rs) = spec.get("runStrategy") {
        let ok = ["Always", "Halted", "Manual", "RerunOnFailure", "Once"];
        if !rs.as_str().is_some_and(|s| ok.contains(&s)) {
            return Err(format!("spec.runStrategy: Unsupported value: {rs}"));
        }
        if spec.get("running").is_some() {
            return Err("spec.running: Invalid value: running and runStrategy are mutually exclusive".into());
        }
    }
    let t = spec.pointer("/template/spec").ok_or("spec.template.spec: Required value")?;
    let devices = t.pointer("/domain/devices").ok_or("spec.template.spec.domain.devices: Required value")?;
    let volumes: Vec<&Value> =
        t.get("volumes").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    let vol_names: BTreeSet<&str> = volumes.iter().filter_map(|v| v["name"].as_str()).collect();
    for d in devices.get("disks").and_then(Value::as_array).into_iter().flatten() {
        let n = d["name"].as_str().ok_or("spec.template.spec.domain.devices.disks.name: Required value")?;
        if !vol_names.contains(n) {
            return Err(format!("spec.template.spec.domain.devices.disks[{n}]: no volume of that name"));
        }
    }
    for v in &volumes {
        if let Some(s) = v.pointer("/cloudInitConfigDrive/secretRef").or(v.pointer("/cloudInitNoCloud/secretRef")) {
            s["name"].as_str().filter(|n| !n.is_empty()).ok_or("cloud-init secretRef.name: Required value")?;
        }
    }
    let ifaces: Vec<&str> = devices
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str())
        .collect();
    let nets: Vec<&str> =
        t.get("networks").and_then(Value::as_array).into_iter().flatten().filter_map(|n| n["name"].as_str()).collect();
    if ifaces != nets {
        return Err(format!("spec.template.spec.networks {nets:?} do not match the interfaces {ifaces:?}"));
    }
    if t.pointer("/domain/firmware/bootloader/efi/secureBoot") == Some(&json!(true))
        && t.pointer("/domain/features/smm/enabled") != Some(&json!(true))
    {
        return Err("spec.template.spec.domain.features.smm: SMM must be enabled for Secure Boot".into());
    }
    for key in ["memory", "cpu"] {
        if t.pointer(&format!("/domain/{key}")).is_none() && t.pointer("/domain/resources").is_none() {
            return Err(format!("spec.template.spec.domain.{key}: Required value (no instancetype)"));
        }
    }
    Ok(())
}

/// A VM read: advances its start; when started, makes its VMI.
fn advance_vm(st: &mut Inner, ns: &str, name: &str) {
    let k = (ns.to_string(), name.to_string());
    let Some(left) = st.starting.get(&k).copied() else { return };
    if left > 1 {
        st.starting.insert(k, left - 1);
        return;
    }
    st.starting.remove(&k);
    let key = ("virtualmachines".to_string(), ns.to_string(), name.to_string());
    let Some(vm) = st.objects.get(&key).cloned() else { return };
    let labels = vm.pointer("/spec/template/metadata/labels").cloned().unwrap_or(json!({}));
    let n = st.next_uid % 250 + 1;
    st.next_uid += 1;
    let (printable, vmi_status) = if st.unschedulable {
        // Stays unschedulable: the scheduler retries it for as long as it exists.
        st.starting.insert((ns.to_string(), name.to_string()), u32::MAX);
        (
            "ErrorUnschedulable",
            json!({"phase": "Scheduling", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."}]}),
        )
    } else {
        (
            "Running",
            json!({"phase": "Running", "nodeName": "node-1",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "interfaces": [{"name": "default", "interfaceName": "eth0", "infoSource": "domain, guest-agent",
                                   "ipAddress": format!("10.244.1.{n}"), "ipAddresses": [format!("10.244.1.{n}")], "mac": "02:00:00:00:00:01"}]}),
        )
    };
    if let Some(vm) = st.objects.get_mut(&key) {
        vm["status"] = json!({"printableStatus": printable, "created": true, "ready": printable == "Running"});
    }
    let vm_uid = vm["metadata"]["uid"].clone();
    let vmi = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": format!("vmi-{}", vm_uid.as_str().unwrap_or_default()),
                     "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": name, "uid": vm_uid, "controller": true}]},
        "spec": vm.pointer("/spec/template/spec").cloned().unwrap_or(json!({})),
        "status": vmi_status});
    st.objects.insert(("virtualmachineinstances".into(), ns.into(), name.into()), vmi);
}

fn read(st: &mut Inner, plural: &str, ns: &str, name: &str) -> Reply {
    if plural == "virtualmachines" {
        advance_vm(st, ns, name);
    }
    match st.objects.get(&(plural.to_string(), ns.to_string(), name.to_string())) {
        Some(o) => Reply::json(200, o),
        None => not_found(&format!("{plural}.{}", api_version_of(plural).split('/').next().unwrap_or("")), name),
    }
}

fn list(st: &mut Inner, plural: &str, ns: &str, req: &Incoming) -> Reply {
    let Some(sel) = parse_selector(req.param("labelSelector").unwrap_or_default()) else {
        return status(400, "BadRequest", "unable to parse requirement: only equality selectors are modelled");
    };
    let limit = req.param("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|(k, _)| k.0 == plural && k.1 == ns)
        .map(|(_, o)| o.clone())
        .filter(|o| {
            let l = labels_of(o);
            sel.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .collect();
    let (page, next) = fake_api::page(&items, req.param("continue"), limit.min(items.len().max(1)));
    if plural == "virtualmachines" {
        st.vms_listed += page.len();
    }
    let mut meta = json!({"resourceVersion": st.next_uid.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
        meta["remainingItemCount"] = json!(items.len() - page.len());
    }
    Reply::json(
        200,
        &json!({"apiVersion": api_version_of(plural), "kind": format!("{}List", kind_of(plural)), "metadata": meta, "items": page}),
    )
}

fn delete(st: &mut Inner, plural: &str, ns: &str, name: &str, req: &Incoming) -> Reply {
    let Some(opts) = req.json() else {
        return status(400, "BadRequest", "the DeleteOptions body is required");
    };
    let policy = opts.get("propagationPolicy").and_then(Value::as_str).unwrap_or("Background");
    if !["Orphan", "Background", "Foreground"].contains(&policy) {
        return status(422, "Invalid", &format!("propagationPolicy: Unsupported value: {policy:?}"));
    }
    let key = (plural.to_string(), ns.to_string(), name.to_string());
    let Some(obj) = st.objects.remove(&key) else {
        return not_found(plural, name);
    };
    if plural == "virtualmachines" {
        // virt-controller stops the VMI of a deleted VM whatever the garbage collector does.
        st.starting.remove(&(ns.to_string(), name.to_string()));
        st.objects.remove(&("virtualmachineinstances".to_string(), ns.to_string(), name.to_string()));
    }
    if policy != "Orphan" && st.gc {
        collect(st, ns, obj["metadata"]["uid"].as_str().unwrap_or_default());
    }
    Reply::json(
        200,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "kind": plural, "uid": obj["metadata"]["uid"]}}),
    )
}

/// The garbage collector: deletes every object owned by `uid`, and theirs.
fn collect(st: &mut Inner, ns: &str, uid: &str) {
    let owned: Vec<Key> = st
        .objects
        .iter()
        .filter(|(k, o)| {
            k.1 == ns
                && o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|rs| rs.iter().any(|r| r["uid"] == uid))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in owned {
        if let Some(o) = st.objects.remove(&k) {
            collect(st, ns, o["metadata"]["uid"].as_str().unwrap_or_default());
        }
    }
}

/// Drives a [`KubevirtTestServer`] for the provider conformance suite.
#[derive(Debug, Clone)]
pub struct KubevirtHarness {
    /// The server.
    pub server: KubevirtTestServer,
    page_size: usize,
    stall: Duration,
}

impl KubevirtHarness {
    /// A harness whose provider lists `page_size` per page and gives up on an answer sooner than
    /// `stall`.
    pub fn new(server: KubevirtTestServer, page_size: usize, stall: Duration) -> Self {
        KubevirtHarness { server, page_size, stall }
    }

    fn route(op: Op) -> String {
        match op {
            Op::Create => route("POST", "virtualmachines", false),
            Op::Get => route("GET", "virtualmachines", true),
            Op::Delete => route("DELETE", "virtualmachines", true),
            Op::List => route("GET", "virtualmachines", false),
        }
    }
}

#[async_trait]
impl Harness for KubevirtHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => status(401, "Unauthorized", "Unauthorized"),
            F::Forbidden => status(
                403,
                "Forbidden",
                "virtualmachines.kubevirt.io is forbidden: User \"system:serviceaccount:kasm:autoscale\" cannot create resource \"virtualmachines\" in API group \"kubevirt.io\" in the namespace \"kasm\"",
            ),
            F::NotFound => not_found("virtualmachines.kubevirt.io", "x"),
            F::Conflict => status(
                409,
                "Conflict",
                "Operation cannot be fulfilled on virtualmachines.kubevirt.io \"x\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            F::RateLimited { retry_after } => {
                status(429, "TooManyRequests", "Too many requests, please try again later.")
                    .header("Retry-After", retry_after.as_secs().to_string())
            }
            F::ServerError => status(500, "InternalError", "Internal error occurred: etcdserver: request timed out"),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: status(504, "Timeout", "too late") };
                return self.server.api.inject(&Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a create's answer");
                // The ResourceQuota admission plugin's refusal (count/virtualmachines.kubevirt.io).
                status(
                    403,
                    "Forbidden",
                    "virtualmachines.kubevirt.io \"x\" is forbidden: exceeded quota: kasm-quota, requested: count/virtualmachines.kubevirt.io=1, used: count/virtualmachines.kubevirt.io=10, limited: count/virtualmachines.kubevirt.io=10",
                )
            }
        };
        self.server.api.inject(&Self::route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(&Self::route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(&Self::route(op))
    }

    fn retries(&self) -> RetryRules {
        // Every call is retried: a create is by name, so a repeat after a lost answer gets 409
        // AlreadyExists and reads the object. Kubernetes sends Retry-After with 429.
        RetryRules { retried: &[Op::Create, Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().vms_listed
    }

    fn last_create_token(&self) -> Option<String> {
        None
    }

    fn missing_id(&self) -> String {
        "kasm-no-such-vm".into()
    }

    async fn create_foreign_vm(&self) -> String {
        let name = format!("ops-vm-{}", self.server.lock().next_uid);
        self.server.put(
            "virtualmachines",
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                   "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "ops"}},
                   "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}}}}},
                   "status": {"printableStatus": "Running"}}),
        );
        name
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove("virtualmachines", id);
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.server.get("virtualmachines", id).is_some()
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim = shared::providers::kube::labels::encode(spec.claim.as_str());
        let st = self.server.lock();
        st.objects
            .iter()
            .filter(|(k, o)| {
                k.0 == "virtualmachines"
                    && (k.2 == spec.name || labels_of(o).get("kasm-autoscale-claim") == Some(&claim))
            })
            .count()
    }
}
