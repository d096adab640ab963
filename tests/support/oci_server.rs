//! An OCI Core API (20160918) test server on [`crate::fake_api`]: instances launched, read, listed and
//! terminated with the shapes of Oracle's SDK models (`Instance`, `LaunchInstanceDetails`), every
//! request's signature checked, `opc-retry-token` honoured, `opc-next-page` paging, per-availability-
//! domain capacity ("Out of host capacity", 500 `InternalError`), and boot volumes that outlive an
//! instance terminated with `preserveBootVolume=true` (so a test can list what is left).
//!
//! Signatures: OCI signs with RSA PKCS#1 v1.5, which is deterministic, so the server signs the request
//! it received again with the test key (Oracle's published test key, [`TEST_KEY`]) from its own
//! `date`, `host`, body and headers, and refuses with 401 `NotAuthenticated` unless the
//! `Authorization` it got is the same, the `x-content-sha256` is the body's, and the date is within
//! 5 minutes. The signer itself is checked against Oracle's test vector in `shared`.
//!
//! The same server stands in for the Limits API (paths below `/20190729`, as the SDK's `LimitsClient`
//! sends them): `ListLimitDefinitions` and `GetResourceAvailability`, every request checked against
//! `tests/oci/limits-subset.json` ([`check_limits_request`]: extracted from Oracle's Python SDK by
//! `scripts/oci-limits-subset.py`) and every answer against the subset's models. Its limit names and
//! numbers are test data ([`OciTestServer::set_limit`]).
//!
//! [`OciHarness`] drives it for the provider conformance suite.

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::model::OwnerLabels;
use shared::providers::VmSpec;
use shared::providers::conformance::{self, Harness, Op, RetryRules};
use shared::providers::oci::signer::RequestSigner;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::fake_api::{self, FakeApi, Fault, Incoming, Params, Reply};

/// Oracle's published test key (RSA 1024, from the "Request Signatures" page's test values).
pub const TEST_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----";
/// The tenancy of the test key.
pub const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq";
/// The user of the test key.
pub const USER: &str = "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq";
/// The test key's fingerprint.
pub const FINGERPRINT: &str = "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34";
/// The compartment the server holds.
pub const COMPARTMENT: &str = "ocid1.compartment.oc1..aaaaaaaatestcompartment";
/// Its availability domains.
pub const ADS: [&str; 3] = ["Uocm:PHX-AD-1", "Uocm:PHX-AD-2", "Uocm:PHX-AD-3"];
/// The image, subnet and NSG it knows.
pub const IMAGE: &str = "ocid1.image.oc1.phx.aaaaaaaatestimage";
/// The subnet.
pub const SUBNET: &str = "ocid1.subnet.oc1.phx.aaaaaaaatestsubnet";
/// The network security group.
pub const NSG: &str = "ocid1.networksecuritygroup.oc1.phx.aaaaaaaatestnsg";

/// The SDK models' wire fields a launch may carry (from `LaunchInstanceDetails` and the nested models
/// we or the seed's overrides send); anything else is refused as the real API's 400 would.
const LAUNCH_FIELDS: &[&str] = &[
    "agentConfig",
    "availabilityConfig",
    "availabilityDomain",
    "capacityReservationId",
    "clusterPlacementGroupId",
    "compartmentId",
    "computeClusterId",
    "createVnicDetails",
    "dedicatedVmHostId",
    "definedTags",
    "displayName",
    "extendedMetadata",
    "faultDomain",
    "freeformTags",
    "hostnameLabel",
    "imageId",
    "instanceConfigurationId",
    "instanceOptions",
    "ipxeScript",
    "isAIEnterpriseEnabled",
    "isPvEncryptionInTransitEnabled",
    "launchOptions",
    "launchVolumeAttachments",
    "licensingConfigs",
    "metadata",
    "placementConstraintDetails",
    "platformConfig",
    "preemptibleInstanceConfig",
    "securityAttributes",
    "shape",
    "shapeConfig",
    "sourceDetails",
    "subnetId",
];
const VNIC_FIELDS: &[&str] = &[
    "assignIpv6Ip",
    "assignPrivateDnsRecord",
    "assignPublicIp",
    "definedTags",
    "displayName",
    "freeformTags",
    "hostnameLabel",
    "ipv6AddressIpv6SubnetCidrPairDetails",
    "nsgIds",
    "privateIp",
    "privateIpId",
    "securityAttributes",
    "skipSourceDestCheck",
    "subnetCidr",
    "subnetId",
    "vlanId",
];
const IMAGE_SOURCE_FIELDS: &[&str] = &[
    "bootVolumeSizeInGBs",
    "bootVolumeVpusPerGB",
    "imageId",
    "instanceSourceImageFilterDetails",
    "kmsKeyId",
    "sourceType",
];
const SHAPE_CONFIG_FIELDS: &[&str] = &[
    "baselineOcpuUtilization",
    "localVolumeSizeInGBs",
    "memoryInGBs",
    "nvmes",
    "ocpus",
    "resourceManagement",
    "vcpus",
];

/// One instance the server holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TestInstance {
    /// Its OCID.
    pub id: String,
    /// `displayName`.
    pub name: String,
    /// `lifecycleState`.
    pub state: String,
    /// `availabilityDomain`.
    pub ad: String,
    /// `freeformTags`.
    pub tags: BTreeMap<String, String>,
    /// The launch body as received.
    pub launch: Value,
    /// Its boot volume's OCID.
    pub boot_volume: String,
    /// Its primary VNIC's OCID.
    pub vnic: String,
    /// The VNIC's private IP.
    pub private_ip: String,
    /// The VNIC's public IP (when the launch asked for one).
    pub public_ip: Option<String>,
    /// Listed once as TERMINATED: later listings leave it out (OCI lists terminated instances for a
    /// while; GetInstance still answers it).
    pub gone_from_lists: bool,
}

#[derive(Debug, Default)]
struct Inner {
    instances: BTreeMap<String, TestInstance>,
    /// Boot volume OCID → its freeform tags.
    boot_volumes: BTreeMap<String, BTreeMap<String, String>>,
    next: u64,
    tokens: BTreeMap<String, String>,
    last_token: Option<String>,
    full_ads: BTreeSet<String>,
    listed: usize,
    /// The Limits API's compute limits by name.
    limits: BTreeMap<String, TestLimit>,
}

/// One compute limit the Limits API knows (test data).
#[derive(Debug, Clone, PartialEq)]
pub struct TestLimit {
    /// `scopeType`: `GLOBAL`, `REGION` or `AD`.
    pub scope: &'static str,
    /// `isResourceAvailabilitySupported`; when false `GetResourceAvailability` answers `{}`.
    pub supported: bool,
    /// `(available, used)` by availability domain (`AD` scope) or under `""` (other scopes).
    pub availability: BTreeMap<String, (f64, f64)>,
}

impl TestLimit {
    /// An AD-scoped limit with `available` and `used` in every domain of [`ADS`].
    pub fn per_ad(available: f64, used: f64) -> TestLimit {
        TestLimit {
            scope: "AD",
            supported: true,
            availability: ADS.iter().map(|a| (a.to_string(), (available, used))).collect(),
        }
    }
}

/// The test server.
#[derive(Debug, Clone)]
pub struct OciTestServer {
    /// Its base URL (the provider's `endpoint_url`).
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<Inner>>,
}

/// An OCI error answer.
pub fn err(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, &json!({"code": code, "message": message})).header("opc-request-id", "test-request")
}

fn not_found() -> Reply {
    err(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
}

const ROUTES: [&str; 16] = [
    "POST /instances",
    "GET /instances",
    "GET /instances/{instanceId}",
    "DELETE /instances/{instanceId}",
    "GET /vnicAttachments",
    "GET /vnics/{vnicId}",
    "GET /bootVolumeAttachments",
    "GET /bootVolumes/{bootVolumeId}",
    "PUT /bootVolumes/{bootVolumeId}",
    // Identity (the same server stands in for identity.<region>.oci) and the preflight reads.
    "GET /users/{userId}",
    "GET /compartments/{compartmentId}",
    "GET /availabilityDomains",
    "GET /images/{imageId}",
    "GET /shapes",
    "GET /subnets/{subnetId}",
    "GET /networkSecurityGroups/{networkSecurityGroupId}",
];

/// The Limits API's routes (below `/20190729`).
const LIMITS_ROUTES: [&str; 2] =
    ["GET /limitDefinitions", "GET /services/{serviceName}/limits/{limitName}/resourceAvailability"];

/// The shapes `ListShapes` offers for the image (two pages of one).
const SHAPES: [(&str, bool); 2] = [("VM.Standard2.1", false), ("VM.Standard.E4.Flex", true)];

/// Checks the request's signature by signing it again (see the module doc).
fn check_signature(url: &str, version: &str, req: &Incoming) -> Option<Reply> {
    let refuse = |why: &str| {
        Some(err(
            401,
            "NotAuthenticated",
            &format!("The required information to complete authentication was not provided or was incorrect ({why})."),
        ))
    };
    let got = req.headers.get("authorization").and_then(|v| v.to_str().ok())?;
    let Some(date) = req.headers.get("date").and_then(|v| v.to_str().ok()) else { return refuse("no date") };
    let Ok(when) = chrono::DateTime::parse_from_rfc2822(date) else { return refuse("bad date") };
    if (chrono::Utc::now() - when.with_timezone(&chrono::Utc)).num_seconds().abs() > 300 {
        return refuse("clock skew");
    }
    let signer = RequestSigner::from_pem(TENANCY, USER, FINGERPRINT, TEST_KEY).expect("the test key");
    let mut full = format!("{url}{version}{}", req.path);
    if !req.query.is_empty() {
        full.push('?');
        full.push_str(&req.query);
    }
    let mut again = reqwest::Request::new(req.method.clone(), full.parse().expect("a URL"));
    if let Some(ct) = req.headers.get("content-type") {
        again.headers_mut().insert("content-type", ct.clone());
    }
    if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        *again.body_mut() = Some(req.body.to_vec().into());
    }
    signer.sign(&mut again, when.with_timezone(&chrono::Utc)).expect("signed");
    let host = req.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if again.headers().get("host").and_then(|v| v.to_str().ok()) != Some(host) {
        return refuse("host");
    }
    for h in ["x-content-sha256", "content-length"] {
        if again.headers().get(h).is_some() && again.headers().get(h) != req.headers.get(h) {
            return refuse(h);
        }
    }
    let want = again.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    (got != want).then(|| refuse("signature")).flatten()
}

fn unknown_keys(v: &Value, allowed: &[&str], at: &str) -> Option<String> {
    v.as_object()?.keys().find(|k| !allowed.contains(&k.as_str())).map(|k| format!("{at}.{k}"))
}

fn instance_json(i: &TestInstance) -> Value {
    json!({
        "id": i.id,
        "displayName": i.name,
        "lifecycleState": i.state,
        "availabilityDomain": i.ad,
        "compartmentId": COMPARTMENT,
        "region": "phx",
        "shape": i.launch.get("shape").cloned().unwrap_or(Value::Null),
        "freeformTags": i.tags,
        "timeCreated": "2026-12-01T10:00:00.000Z",
    })
}

impl OciTestServer {
    /// Starts a server holding the compartment, ADs, image, subnet and NSG above.
    pub async fn start() -> OciTestServer {
        let limits = [
            ("standard-e4-core-count", TestLimit::per_ad(40.0, 8.0)),
            ("standard-e4-memory-count", TestLimit::per_ad(640.0, 64.0)),
            (
                "custom-image-count",
                TestLimit { scope: "REGION", supported: true, availability: [(String::new(), (98.0, 2.0))].into() },
            ),
            ("dedicated-vm-host-count", TestLimit { scope: "AD", supported: false, availability: BTreeMap::new() }),
        ]
        .into_iter()
        .map(|(n, l)| (n.to_string(), l))
        .collect();
        let inner = Arc::new(Mutex::new(Inner { next: 1, limits, ..Inner::default() }));
        let url_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        let guard_url = url_cell.clone();
        let mut b = FakeApi::builder()
            .prefix("/20160918")
            .guard(move |req| {
                let url = guard_url.lock().expect("url").clone();
                match req.headers.get("authorization") {
                    None => Some(err(
                        401,
                        "NotAuthenticated",
                        "The required information to complete authentication was not provided.",
                    )),
                    Some(_) => check_signature(&url, &req.prefix, req),
                }
            })
            .unrouted(|_, _| not_found());
        for route in ROUTES {
            let st = inner.clone();
            b = b.route(
                route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    async move { route_request(&mut st.lock().expect("server lock"), &req) }
                }),
            );
        }
        for route in LIMITS_ROUTES {
            let st = inner.clone();
            b = b.route_below(
                "/20190729",
                route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    async move { limits_request(&st.lock().expect("server lock"), &req) }
                }),
            );
        }
        let api = b.start().await;
        *url_cell.lock().expect("url") = api.url.clone();
        OciTestServer { url: api.url.clone(), api, inner }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("server lock")
    }

    /// The fake API underneath (faults, recorded requests).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// The instances held (terminated ones included until removed).
    pub fn instances(&self) -> Vec<TestInstance> {
        self.lock().instances.values().cloned().collect()
    }

    /// The boot volumes that exist.
    pub fn boot_volumes(&self) -> Vec<String> {
        self.lock().boot_volumes.keys().cloned().collect()
    }

    /// The freeform tags of boot volume `id`, while it exists.
    pub fn boot_volume_tags(&self, id: &str) -> Option<BTreeMap<String, String>> {
        self.lock().boot_volumes.get(id).cloned()
    }

    /// The last `opc-retry-token` a launch carried.
    pub fn last_retry_token(&self) -> Option<String> {
        self.lock().last_token.clone()
    }

    /// Sets (or adds) the compute limit `name`.
    pub fn set_limit(&self, name: &str, limit: TestLimit) {
        self.lock().limits.insert(name.to_string(), limit);
    }

    /// Makes availability domain `ad` answer launches with "Out of host capacity".
    pub fn fill_ad(&self, ad: &str) {
        self.lock().full_ads.insert(ad.to_string());
    }

    /// Adds an instance not made by us (tags as given), running.
    pub fn add_instance(&self, name: &str, tags: &[(&str, &str)]) -> String {
        let mut st = self.lock();
        let id = new_instance(
            &mut st,
            name,
            ADS[0],
            tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            json!({}),
        );
        st.instances.get_mut(&id).expect("added").state = "RUNNING".into();
        id
    }

    /// Removes an instance outright.
    pub fn remove_instance(&self, id: &str) {
        let mut st = self.lock();
        if let Some(i) = st.instances.remove(id) {
            st.boot_volumes.remove(&i.boot_volume);
        }
    }
}

fn new_instance(st: &mut Inner, name: &str, ad: &str, tags: BTreeMap<String, String>, launch: Value) -> String {
    let n = st.next;
    st.next += 1;
    let id = format!("ocid1.instance.oc1.phx.test{n:06}");
    let boot = format!("ocid1.bootvolume.oc1.phx.test{n:06}");
    st.boot_volumes.insert(boot.clone(), BTreeMap::new());
    let public = launch.pointer("/createVnicDetails/assignPublicIp").and_then(Value::as_bool) == Some(true);
    st.instances.insert(
        id.clone(),
        TestInstance {
            id: id.clone(),
            name: name.into(),
            state: "PROVISIONING".into(),
            ad: ad.into(),
            tags,
            launch,
            boot_volume: boot,
            vnic: format!("ocid1.vnic.oc1.phx.test{n:06}"),
            private_ip: format!("10.0.1.{}", n % 250 + 2),
            public_ip: public.then(|| format!("203.0.113.{}", n % 250 + 2)),
            gone_from_lists: false,
        },
    );
    id
}

/// One step of an instance's life per read: PROVISIONING → RUNNING, TERMINATING → TERMINATED.
fn tick(i: &mut TestInstance) {
    match i.state.as_str() {
        "PROVISIONING" => i.state = "RUNNING".into(),
        "TERMINATING" => i.state = "TERMINATED".into(),
        _ => {}
    }
}

fn route_request(st: &mut Inner, req: &Incoming) -> Reply {
    match (req.method.as_str(), req.route.as_str()) {
        ("POST", "/instances") => launch(st, req),
        ("GET", "/instances") => {
            let Some(compartment) = req.param("compartmentId") else {
                return err(400, "MissingParameter", "Missing compartmentId");
            };
            let mut all: Vec<Value> = Vec::new();
            if compartment == COMPARTMENT && req.param("page").is_none() {
                for i in st.instances.values_mut() {
                    if i.state == "TERMINATED" {
                        i.gone_from_lists = true;
                    }
                    tick(i);
                }
            }
            if compartment == COMPARTMENT {
                all = st.instances.values().filter(|i| !i.gone_from_lists).map(instance_json).collect();
            }
            let size = req.param("limit").and_then(|l| l.parse().ok()).unwrap_or(1000usize);
            let (items, next) = fake_api::page(&all, req.param("page"), size);
            st.listed += items.len();
            let mut r = Reply::json(200, &Value::Array(items));
            if let Some(n) = next {
                r = r.header("opc-next-page", n);
            }
            r
        }
        ("GET", "/instances/{instanceId}") => match st.instances.get_mut(req.var("instanceId")) {
            Some(i) => {
                let json = instance_json(i);
                tick(i);
                Reply::json(200, &json)
            }
            None => not_found(),
        },
        ("DELETE", "/instances/{instanceId}") => {
            let preserve = req.param("preserveBootVolume") != Some("false");
            match st.instances.get_mut(req.var("instanceId")) {
                Some(i) if i.state == "TERMINATED" => not_found(),
                Some(i) => {
                    i.state = "TERMINATING".into();
                    let boot = i.boot_volume.clone();
                    if !preserve {
                        st.boot_volumes.remove(&boot);
                    }
                    Reply::empty(204)
                }
                None => not_found(),
            }
        }
        ("GET", "/vnicAttachments") => {
            let (Some(compartment), Some(instance)) = (req.param("compartmentId"), req.param("instanceId")) else {
                return err(400, "MissingParameter", "compartmentId is required (and this server needs instanceId)");
            };
            let all: Vec<Value> = st
                .instances
                .values()
                .filter(|i| compartment == COMPARTMENT && i.id == instance && i.state != "TERMINATED")
                .map(|i| {
                    let attached = i.state == "RUNNING";
                    json!({"id": format!("ocid1.vnicattachment.{}", i.id), "instanceId": i.id, "compartmentId": COMPARTMENT,
                        "availabilityDomain": i.ad, "lifecycleState": if attached { "ATTACHED" } else { "ATTACHING" },
                        "vnicId": if attached { Value::from(i.vnic.clone()) } else { Value::Null },
                        "subnetId": SUBNET, "nicIndex": 0, "timeCreated": "2026-12-01T10:00:00.000Z"})
                })
                .collect();
            paged(&all, req)
        }
        ("GET", "/vnics/{vnicId}") => match st.instances.values().find(|i| i.vnic == req.var("vnicId")) {
            Some(i) if i.state != "TERMINATED" => Reply::json(
                200,
                &json!({"id": i.vnic, "isPrimary": true, "privateIp": i.private_ip, "publicIp": i.public_ip,
                    "availabilityDomain": i.ad, "compartmentId": COMPARTMENT, "lifecycleState": "AVAILABLE",
                    "subnetId": SUBNET, "freeformTags": i.tags, "timeCreated": "2026-12-01T10:00:00.000Z"}),
            ),
            _ => not_found(),
        },
        ("GET", "/bootVolumeAttachments") => {
            let (Some(ad), Some(compartment)) = (req.param("availabilityDomain"), req.param("compartmentId")) else {
                return err(400, "MissingParameter", "availabilityDomain and compartmentId are required");
            };
            let instance = req.param("instanceId");
            let all: Vec<Value> = st
                .instances
                .values()
                .filter(|i| compartment == COMPARTMENT && i.ad == ad && instance.is_none_or(|x| x == i.id))
                .filter(|i| i.state != "TERMINATED" && st.boot_volumes.contains_key(&i.boot_volume))
                .map(|i| {
                    json!({"id": format!("ocid1.bootvolumeattachment.{}", i.id), "instanceId": i.id,
                        "bootVolumeId": i.boot_volume, "availabilityDomain": i.ad, "compartmentId": COMPARTMENT,
                        "lifecycleState": if i.state == "PROVISIONING" { "ATTACHING" } else { "ATTACHED" },
                        "timeCreated": "2026-12-01T10:00:00.000Z"})
                })
                .collect();
            paged(&all, req)
        }
        ("GET", "/bootVolumes/{bootVolumeId}") => match st.boot_volumes.get(req.var("bootVolumeId")) {
            Some(tags) => Reply::json(200, &boot_volume_json(req.var("bootVolumeId"), tags)),
            None => not_found(),
        },
        ("PUT", "/bootVolumes/{bootVolumeId}") => {
            let Some(body) = req.json() else { return err(400, "InvalidParameter", "The body is not JSON") };
            if let Some(k) = unknown_keys(&body, UPDATE_BOOT_VOLUME_FIELDS, "updateBootVolumeDetails") {
                return err(400, "InvalidParameter", &format!("Unrecognized field {k}"));
            }
            let Some(tags) = st.boot_volumes.get_mut(req.var("bootVolumeId")) else { return not_found() };
            if let Some(t) = body.get("freeformTags").and_then(Value::as_object) {
                // Freeform tags are replaced as a whole.
                *tags = t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
            }
            let json = boot_volume_json(req.var("bootVolumeId"), tags);
            Reply::json(200, &json)
        }
        ("GET", "/users/{userId}") if req.var("userId") == USER => Reply::json(
            200,
            &json!({"id": USER, "name": "kasm-autoscale", "compartmentId": TENANCY, "lifecycleState": "ACTIVE",
                "description": "API user", "timeCreated": "2026-01-01T00:00:00.000Z"}),
        ),
        ("GET", "/compartments/{compartmentId}") if req.var("compartmentId") == COMPARTMENT => Reply::json(
            200,
            &json!({"id": COMPARTMENT, "name": "kasm", "compartmentId": TENANCY, "lifecycleState": "ACTIVE",
                "description": "Kasm", "timeCreated": "2026-01-01T00:00:00.000Z"}),
        ),
        ("GET", "/availabilityDomains") if req.param("compartmentId") == Some(TENANCY) => Reply::json(
            200,
            &Value::Array(
                ADS.iter()
                    .map(
                        |a| json!({"name": a, "id": format!("ocid1.availabilitydomain.{a}"), "compartmentId": TENANCY}),
                    )
                    .collect(),
            ),
        ),
        ("GET", "/availabilityDomains") => err(400, "MissingParameter", "compartmentId must be the tenancy"),
        ("GET", "/images/{imageId}") if req.var("imageId") == IMAGE => Reply::json(
            200,
            &json!({"id": IMAGE, "displayName": "Canonical-Ubuntu-24.04", "operatingSystem": "Canonical Ubuntu",
                "operatingSystemVersion": "24.04", "lifecycleState": "AVAILABLE", "compartmentId": null,
                "createImageAllowed": true, "timeCreated": "2026-01-01T00:00:00.000Z"}),
        ),
        ("GET", "/shapes") => {
            if req.param("compartmentId") != Some(COMPARTMENT) || req.param("imageId") != Some(IMAGE) {
                return err(400, "InvalidParameter", "compartmentId and a known imageId are required here");
            }
            let all: Vec<Value> = SHAPES.iter().map(|(s, f)| json!({"shape": s, "isFlexible": f})).collect();
            let (items, next) = fake_api::page(&all, req.param("page"), 1);
            let mut r = Reply::json(200, &Value::Array(items));
            if let Some(n) = next {
                r = r.header("opc-next-page", n);
            }
            r
        }
        ("GET", "/subnets/{subnetId}") if req.var("subnetId") == SUBNET => Reply::json(
            200,
            &json!({"id": SUBNET, "displayName": "kasm-agents", "cidrBlock": "10.0.1.0/24", "lifecycleState": "AVAILABLE",
                "compartmentId": COMPARTMENT, "vcnId": "ocid1.vcn.oc1.phx.test", "routeTableId": "ocid1.routetable.oc1.phx.test",
                "securityListIds": [], "virtualRouterIp": "10.0.1.1", "virtualRouterMac": "00:00:17:00:00:01"}),
        ),
        ("GET", "/networkSecurityGroups/{networkSecurityGroupId}") if req.var("networkSecurityGroupId") == NSG => {
            Reply::json(
                200,
                &json!({"id": NSG, "displayName": "kasm-agents", "lifecycleState": "AVAILABLE",
                "compartmentId": COMPARTMENT, "vcnId": "ocid1.vcn.oc1.phx.test", "timeCreated": "2026-01-01T00:00:00.000Z"}),
            )
        }
        _ => not_found(),
    }
}

/// The Limits API subset (`tests/oci/limits-subset.json`).
fn limits_spec() -> &'static Value {
    static S: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    S.get_or_init(|| serde_json::from_str(include_str!("../oci/limits-subset.json")).expect("limits-subset.json"))
}

/// `sort_by` → `sortBy` (the subset names allowed values by the SDK's Python parameter).
fn camel(python: &str) -> String {
    let mut out = String::new();
    for (i, part) in python.split('_').enumerate() {
        let mut c = part.chars();
        match (i, c.next()) {
            (0, Some(f)) => out.extend(std::iter::once(f).chain(c)),
            (_, Some(f)) => out.extend(f.to_uppercase().chain(c)),
            _ => {}
        }
    }
    out
}

/// Checks a Limits API request against the subset: the operation by method and path (the client's
/// base path + the operation's resource path, `{param}` one non-empty segment), every query
/// parameter one the operation takes, the required ones present, enum-valued ones within their
/// allowed values, and the headers the SDK fixes (`accept`) as it sends them when sent. Answers the
/// operation (`LimitsClient.<method>`) or what is wrong.
pub fn check_limits_request(
    method: &str,
    path: &str,
    params: &Params,
    headers: &[(&str, &str)],
) -> Result<String, String> {
    let spec = limits_spec();
    let base = spec["clients"]["LimitsClient"]["base_path"].as_str().expect("base_path").trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (name, op) = spec["operations"]
        .as_object()
        .expect("operations")
        .iter()
        .find(|(_, op)| {
            let template = format!("{base}{}", op["resource_path"].as_str().expect("resource_path"));
            let want: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
            op["method"] == method
                && want.len() == segs.len()
                && want.iter().zip(&segs).all(|(w, g)| (w.starts_with('{') && !g.is_empty()) || w == g)
        })
        .ok_or_else(|| format!("no Limits operation is {method} {path}"))?;
    let query = op["query_params"].as_object().cloned().unwrap_or_default();
    for k in params.keys() {
        if !query.contains_key(k) {
            return Err(format!("{name} takes no query parameter {k}"));
        }
    }
    for (k, p) in &query {
        if p["required"] == true && !params.contains_key(k) {
            return Err(format!("{name} requires the query parameter {k}"));
        }
    }
    for (python, allowed) in op["allowed_values"].as_object().into_iter().flatten() {
        let wire = camel(python);
        for v in params.get(&wire).into_iter().flatten() {
            if !allowed.as_array().expect("allowed values").iter().any(|a| a == v.as_str()) {
                return Err(format!("{name}: {wire}={v} is not one of {allowed}"));
            }
        }
    }
    for (h, v) in headers {
        if let Some(fixed) = op["header_params"][h.to_ascii_lowercase()]["fixed"].as_str()
            && fixed != *v
        {
            return Err(format!("{name}: header {h} is `{v}`, the SDK sends `{fixed}`"));
        }
    }
    Ok(name.clone())
}

/// Checks a value against the subset's type `ty` (`str`, `int`, `float`, `bool`, `list[T]`, a model).
fn check_limits_value(v: &Value, ty: &str, at: &str) -> Result<(), String> {
    let ok = match ty {
        "str" => v.is_string(),
        "int" => v.is_i64() || v.is_u64(),
        "float" => v.is_number(),
        "bool" => v.is_boolean(),
        _ => {
            if let Some(inner) = ty.strip_prefix("list[").and_then(|t| t.strip_suffix(']')) {
                let items = v.as_array().ok_or_else(|| format!("{at} is not a list"))?;
                for (i, item) in items.iter().enumerate() {
                    check_limits_value(item, inner, &format!("{at}[{i}]"))?;
                }
                return Ok(());
            }
            let model = &limits_spec()["models"]["limits"][ty];
            let fields = model["fields"].as_object().ok_or_else(|| format!("{at}: no model {ty} in the subset"))?;
            let obj = v.as_object().ok_or_else(|| format!("{at} is not a {ty}"))?;
            for (k, fv) in obj {
                let f = fields.get(k).ok_or_else(|| format!("{at}.{k} is no field of {ty}"))?;
                check_limits_value(fv, f["type"].as_str().expect("type"), &format!("{at}.{k}"))?;
                if let Some(e) = f["enum"].as_array()
                    && !e.contains(fv)
                {
                    return Err(format!("{at}.{k}={fv} is not one of {e:?}"));
                }
            }
            for (k, f) in fields {
                if f["required"] == true && !obj.contains_key(k) {
                    return Err(format!("{at}.{k} is required in {ty}"));
                }
            }
            true
        }
    };
    if ok { Ok(()) } else { Err(format!("{at} is not a {ty}: {v}")) }
}

/// An answer of operation `op`, checked against its response type (an off-spec answer is the test
/// server's bug: 500 naming it).
fn limits_answer(op: &str, body: Value) -> Reply {
    let ty = limits_spec()["operations"][op]["response_type"].as_str().expect("response_type");
    match check_limits_value(&body, ty, ty) {
        Ok(()) => Reply::json(200, &body),
        Err(e) => err(500, "TestServerBug", &format!("the test server's answer is off the SDK's model: {e}")),
    }
}

fn limits_request(st: &Inner, req: &Incoming) -> Reply {
    let path = format!("{}{}", req.prefix, req.path);
    let headers: Vec<(&str, &str)> =
        req.headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let op = match check_limits_request(req.method.as_str(), &path, &req.params, &headers) {
        Ok(op) => op,
        Err(e) => return err(400, "InvalidParameter", &e),
    };
    match req.route.as_str() {
        "/limitDefinitions" => {
            if req.param("compartmentId") != Some(TENANCY) {
                return err(400, "InvalidParameter", "this server holds the tenancy's limit definitions");
            }
            let all: Vec<Value> = st
                .limits
                .iter()
                .filter(|_| req.param("serviceName").is_none_or(|s| s == "compute"))
                .filter(|(n, _)| req.param("name").is_none_or(|want| want == n.as_str()))
                .map(|(n, l)| {
                    json!({"name": n, "serviceName": "compute", "description": format!("test limit {n}"),
                        "scopeType": l.scope, "areQuotasSupported": true,
                        "isResourceAvailabilitySupported": l.supported, "isDeprecated": false,
                        "isEligibleForLimitIncrease": true, "isDynamic": false})
                })
                .collect();
            let size = req.param("limit").and_then(|l| l.parse().ok()).unwrap_or(1000usize);
            let (items, next) = fake_api::page(&all, req.param("page"), size);
            let mut r = limits_answer(&op, Value::Array(items));
            if let Some(n) = next {
                r = r.header("opc-next-page", n);
            }
            r
        }
        _ => {
            let Some(l) = st.limits.get(req.var("limitName")).filter(|_| req.var("serviceName") == "compute") else {
                return not_found();
            };
            // The SDK: availabilityDomain "is mandatory if the scopeType of the target resource limit is AD.
            // Otherwise, this field should be omitted. [...] the API returns a 400 - InvalidParameter response."
            let ad = req.param("availabilityDomain");
            if (l.scope == "AD") != ad.is_some() {
                return err(400, "InvalidParameter", "availabilityDomain is required exactly for AD-scoped limits");
            }
            if !l.supported {
                return limits_answer(&op, json!({}));
            }
            let Some((available, used)) = l.availability.get(ad.unwrap_or_default()) else {
                return err(400, "InvalidParameter", "Invalid availabilityDomain");
            };
            limits_answer(
                &op,
                json!({"available": available.floor() as i64, "used": used.ceil() as i64,
                    "fractionalAvailability": available, "fractionalUsage": used}),
            )
        }
    }
}

/// The wire fields of `UpdateBootVolumeDetails`.
const UPDATE_BOOT_VOLUME_FIELDS: &[&str] = &[
    "autotunePolicies",
    "bootVolumeReplicas",
    "definedTags",
    "displayName",
    "freeformTags",
    "isAutoTuneEnabled",
    "sizeInGBs",
    "vpusPerGB",
];

fn boot_volume_json(id: &str, tags: &BTreeMap<String, String>) -> Value {
    json!({"id": id, "availabilityDomain": ADS[0], "compartmentId": COMPARTMENT, "lifecycleState": "AVAILABLE",
        "sizeInMBs": 61440, "sizeInGBs": 60, "vpusPerGB": 10, "imageId": IMAGE, "freeformTags": tags,
        "timeCreated": "2026-12-01T10:00:00.000Z"})
}

/// One page of `all` by `limit`/`page`, with `opc-next-page`.
fn paged(all: &[Value], req: &Incoming) -> Reply {
    let size = req.param("limit").and_then(|l| l.parse().ok()).unwrap_or(1000usize);
    let (items, next) = fake_api::page(all, req.param("page"), size);
    let mut r = Reply::json(200, &Value::Array(items));
    if let Some(n) = next {
        r = r.header("opc-next-page", n);
    }
    r
}

fn launch(st: &mut Inner, req: &Incoming) -> Reply {
    let Some(body) = req.json() else { return err(400, "InvalidParameter", "The body is not JSON") };
    let token = req.headers.get("opc-retry-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    st.last_token = token.clone();
    if let Some(t) = &token
        && let Some(id) = st.tokens.get(t)
        && let Some(i) = st.instances.get(id)
    {
        return Reply::json(200, &instance_json(i));
    }
    let bad = unknown_keys(&body, LAUNCH_FIELDS, "launchInstanceDetails")
        .or_else(|| body.get("createVnicDetails").and_then(|v| unknown_keys(v, VNIC_FIELDS, "createVnicDetails")))
        .or_else(|| body.get("sourceDetails").and_then(|v| unknown_keys(v, IMAGE_SOURCE_FIELDS, "sourceDetails")))
        .or_else(|| body.get("shapeConfig").and_then(|v| unknown_keys(v, SHAPE_CONFIG_FIELDS, "shapeConfig")));
    if let Some(k) = bad {
        return err(400, "InvalidParameter", &format!("Unrecognized field {k}"));
    }
    let ad = body.get("availabilityDomain").and_then(Value::as_str).unwrap_or_default().to_string();
    if body.get("compartmentId").and_then(Value::as_str) != Some(COMPARTMENT) {
        return not_found();
    }
    if !ADS.contains(&ad.as_str()) {
        return err(400, "InvalidParameter", "Invalid availabilityDomain");
    }
    if body.pointer("/sourceDetails/sourceType").and_then(Value::as_str) != Some("image")
        || body.pointer("/sourceDetails/imageId").and_then(Value::as_str) != Some(IMAGE)
    {
        return err(400, "InvalidParameter", "sourceDetails must name a known image");
    }
    if body.pointer("/createVnicDetails/subnetId").and_then(Value::as_str) != Some(SUBNET) {
        return err(400, "InvalidParameter", "createVnicDetails.subnetId is not a known subnet");
    }
    if st.full_ads.contains(&ad) {
        return err(500, "InternalError", "Out of host capacity.");
    }
    let tags: BTreeMap<String, String> = body
        .get("freeformTags")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let name = body.get("displayName").and_then(Value::as_str).unwrap_or_default().to_string();
    let id = new_instance(st, &name, &ad, tags, body);
    if let Some(t) = token {
        st.tokens.insert(t, id.clone());
    }
    Reply::json(200, &instance_json(&st.instances[&id]))
        .header("opc-work-request-id", format!("ocid1.workrequest.{id}"))
}

/// The server as the provider conformance suite drives it.
#[derive(Debug)]
pub struct OciHarness {
    server: OciTestServer,
    stall: Duration,
    page_size: usize,
}

impl OciHarness {
    /// A harness over `server`; the provider must list with `page_size` per page.
    pub fn new(server: OciTestServer, page_size: usize, stall: Duration) -> Self {
        OciHarness { server, stall, page_size }
    }

    fn route(op: Op) -> &'static str {
        match op {
            Op::Create => "POST /instances",
            Op::Get => "GET /instances/{instanceId}",
            Op::Delete => "DELETE /instances/{instanceId}",
            Op::List => "GET /instances",
        }
    }
}

#[async_trait]
impl Harness for OciHarness {
    fn inject(&self, op: Op, fault: conformance::Fault, skip: usize, times: usize) {
        use conformance::Fault as F;
        let answer = match fault {
            F::Unauthorized => err(
                401,
                "NotAuthenticated",
                "The required information to complete authentication was not provided or was incorrect.",
            ),
            F::Forbidden => err(403, "NotAllowed", "The action is not allowed."),
            F::NotFound => not_found(),
            F::Conflict => err(409, "Conflict", "The resource is in a conflicted state."),
            F::RateLimited { retry_after } => err(429, "TooManyRequests", "Too many requests for the tenancy")
                .header("retry-after", retry_after.as_secs().to_string()),
            F::ServerError => err(500, "InternalServerError", "Internal server error"),
            F::Timeout => {
                let late = Fault::Stall { hold: self.stall, then: err(500, "InternalServerError", "too late") };
                return self.server.api.inject(Self::route(op), late, skip, times);
            }
            F::OutOfCapacity => {
                assert_eq!(op, Op::Create, "out of capacity is a create's answer");
                err(500, "InternalError", "Out of host capacity.")
            }
        };
        self.server.api.inject(Self::route(op), Fault::Answer(answer), skip, times);
    }

    fn lose_next_answer(&self, op: Op) {
        self.server.api.inject(Self::route(op), Fault::DropAnswer, 0, 1);
    }

    fn clear_faults(&self) {
        self.server.api.clear_faults();
    }

    fn requests(&self, op: Op) -> usize {
        self.server.api.count(Self::route(op))
    }

    fn retries(&self) -> RetryRules {
        // The launch carries opc-retry-token, so every call is retried; Retry-After is whole seconds.
        RetryRules { retried: &[Op::Create, Op::Get, Op::Delete, Op::List], retry_after_hint: true }
    }

    fn page_size(&self) -> Option<usize> {
        Some(self.page_size)
    }

    fn vms_in_list_answers(&self) -> usize {
        self.server.lock().listed
    }

    fn last_create_token(&self) -> Option<String> {
        self.server.last_retry_token()
    }

    fn missing_id(&self) -> String {
        "ocid1.instance.oc1.phx.missing".into()
    }

    async fn create_foreign_vm(&self) -> String {
        self.server.add_instance("ops-bastion", &[("team", "ops")])
    }

    async fn remove_foreign_vm(&self, id: &str) {
        self.server.remove_instance(id);
    }

    async fn vm_exists(&self, id: &str) -> bool {
        self.server.lock().instances.get(id).is_some_and(|i| !matches!(i.state.as_str(), "TERMINATING" | "TERMINATED"))
    }

    async fn vms_made_for(&self, spec: &VmSpec) -> usize {
        let claim = spec.claim.to_string();
        self.server
            .instances()
            .iter()
            .filter(|i| !matches!(i.state.as_str(), "TERMINATING" | "TERMINATED"))
            .filter(|i| i.tags.get(OwnerLabels::CLAIM) == Some(&claim) || i.name == spec.name)
            .count()
    }
}

/// The zone the DNS test server holds.
pub const DNS_ZONE: &str = "kasm.example.com";
/// Its OCID.
pub const DNS_ZONE_ID: &str = "ocid1.dns-zone.oc1..aaaaaaaatestzone";

/// One record of the DNS test server (`Record`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// `domain`, lower case, without the final dot.
    pub domain: String,
    /// `rtype`.
    pub rtype: String,
    /// `rdata` (TXT data quoted, as OCI presents it).
    pub rdata: String,
    /// `ttl`.
    pub ttl: u32,
}

/// The wire fields of `RecordOperation` (`PatchDomainRecordsDetails.items`).
const RECORD_OPERATION_FIELDS: &[&str] =
    &["domain", "isProtected", "operation", "rdata", "recordHash", "rrsetVersion", "rtype", "ttl"];

#[derive(Debug, Default)]
struct DnsInner {
    records: Vec<DnsRecord>,
    version: u64,
    patches: usize,
}

/// An OCI DNS API (20180115) test server on [`crate::fake_api`]: one zone ([`DNS_ZONE`], also reachable
/// by [`DNS_ZONE_ID`]), `GetZone`, `GetZoneRecords` and `GetDomainRecords` paged by `limit`/`page` and
/// `opc-next-page`, and `PatchDomainRecords` applying `RecordOperation`s atomically: the preconditions
/// (`REQUIRE`, `PROHIBIT`; fields left out match anything) first, answering 412 `PreconditionFailed`
/// when one fails, then `REMOVE` and `ADD` (an `ADD` of data that is there sets the TTL). Every
/// request's signature is checked as on the Core server.
#[derive(Debug, Clone)]
pub struct OciDnsTestServer {
    /// Its base URL (the DNS config's `endpoint_url`).
    pub url: String,
    api: FakeApi,
    inner: Arc<Mutex<DnsInner>>,
}

const DNS_ROUTES: [&str; 4] = [
    "GET /zones/{zoneNameOrId}",
    "GET /zones/{zoneNameOrId}/records",
    "GET /zones/{zoneNameOrId}/records/{domain}",
    "PATCH /zones/{zoneNameOrId}/records/{domain}",
];

fn record_json(r: &DnsRecord, version: u64) -> Value {
    json!({"domain": r.domain, "rtype": r.rtype, "rdata": r.rdata, "ttl": r.ttl, "isProtected": false,
        "recordHash": format!("{:x}", r.rdata.len() * 31 + r.domain.len()), "rrsetVersion": version.to_string()})
}

/// Whether record `r` matches operation `op`'s fields (those left out match anything).
fn matches_op(r: &DnsRecord, op: &Value) -> bool {
    let s = |k: &str| op.get(k).and_then(Value::as_str);
    s("domain").is_none_or(|d| d.trim_end_matches('.').eq_ignore_ascii_case(&r.domain))
        && s("rtype").is_none_or(|t| t.eq_ignore_ascii_case(&r.rtype))
        && s("rdata").is_none_or(|d| d == r.rdata)
        && op.get("ttl").and_then(Value::as_u64).is_none_or(|t| t == u64::from(r.ttl))
}

impl OciDnsTestServer {
    /// Starts a server holding the empty zone.
    pub async fn start() -> OciDnsTestServer {
        let inner = Arc::new(Mutex::new(DnsInner { version: 1, ..DnsInner::default() }));
        let url_cell: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
        let guard_url = url_cell.clone();
        let mut b = FakeApi::builder()
            .prefix("/20180115")
            .guard(move |req| {
                let url = guard_url.lock().expect("url").clone();
                match req.headers.get("authorization") {
                    None => Some(err(
                        401,
                        "NotAuthenticated",
                        "The required information to complete authentication was not provided.",
                    )),
                    Some(_) => check_signature(&url, "/20180115", req),
                }
            })
            .unrouted(|_, _| not_found());
        for route in DNS_ROUTES {
            let st = inner.clone();
            b = b.route(
                route,
                fake_api::handler(move |req| {
                    let st = st.clone();
                    async move { dns_request(&mut st.lock().expect("dns lock"), &req) }
                }),
            );
        }
        let api = b.start().await;
        *url_cell.lock().expect("url") = api.url.clone();
        OciDnsTestServer { url: api.url.clone(), api, inner }
    }

    fn lock(&self) -> MutexGuard<'_, DnsInner> {
        self.inner.lock().expect("dns lock")
    }

    /// The fake API underneath (faults, recorded requests).
    pub fn api(&self) -> &FakeApi {
        &self.api
    }

    /// Every record of the zone.
    pub fn records(&self) -> Vec<DnsRecord> {
        self.lock().records.clone()
    }

    /// How many `PatchDomainRecords` were applied.
    pub fn patches(&self) -> usize {
        self.lock().patches
    }

    /// Adds a record as an operator would (TXT data is quoted here).
    pub fn add_record(&self, domain: &str, rtype: &str, data: &str) {
        let rdata = if rtype == "TXT" { format!("\"{data}\"") } else { data.to_string() };
        let mut st = self.lock();
        st.records.push(DnsRecord {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            rtype: rtype.into(),
            rdata,
            ttl: 300,
        });
        st.version += 1;
    }
}

fn in_zone(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == DNS_ZONE || n.ends_with(&format!(".{DNS_ZONE}"))
}

fn records_page(st: &DnsInner, req: &Incoming, domain: Option<&str>) -> Reply {
    let rtype = req.param("rtype");
    let all: Vec<Value> = st
        .records
        .iter()
        .filter(|r| domain.is_none_or(|d| r.domain == d))
        .filter(|r| rtype.is_none_or(|t| r.rtype == t))
        .map(|r| record_json(r, st.version))
        .collect();
    let size = req.param("limit").and_then(|l| l.parse().ok()).unwrap_or(50usize);
    let (items, next) = fake_api::page(&all, req.param("page"), size);
    let mut r = Reply::json(200, &json!({"items": items})).header("opc-total-items", all.len().to_string());
    if let Some(n) = next {
        r = r.header("opc-next-page", n);
    }
    r
}

fn dns_request(st: &mut DnsInner, req: &Incoming) -> Reply {
    let zone = req.var("zoneNameOrId");
    if zone != DNS_ZONE && zone != DNS_ZONE_ID {
        return not_found();
    }
    if req.param("compartmentId").is_some() {
        return err(400, "InvalidParameter", "compartmentId is deprecated on this call and must not be sent");
    }
    match (req.method.as_str(), req.route.as_str()) {
        ("GET", "/zones/{zoneNameOrId}") => Reply::json(
            200,
            &json!({"id": DNS_ZONE_ID, "name": DNS_ZONE, "zoneType": "PRIMARY", "scope": "GLOBAL",
                "compartmentId": COMPARTMENT, "lifecycleState": "ACTIVE", "serial": st.version,
                "version": st.version.to_string(), "isProtected": false, "dnssecState": "DISABLED",
                "resolutionMode": "STATIC", "freeformTags": {}, "definedTags": {}, "externalMasters": [],
                "externalDownstreams": [], "nameservers": [{"hostname": "ns1.p68.dns.oraclecloud.net"}],
                "self": format!("https://dns.test/20180115/zones/{DNS_ZONE_ID}"),
                "timeCreated": "2026-01-01T00:00:00.000Z"}),
        )
        .header("etag", format!("\"{}\"", st.version)),
        ("GET", "/zones/{zoneNameOrId}/records") => records_page(st, req, None),
        ("GET", "/zones/{zoneNameOrId}/records/{domain}") => {
            let d = req.var("domain").trim_end_matches('.').to_ascii_lowercase();
            if !in_zone(&d) {
                return err(400, "InvalidParameter", "The domain is not in the zone");
            }
            records_page(st, req, Some(&d))
        }
        ("PATCH", "/zones/{zoneNameOrId}/records/{domain}") => patch_records(st, req),
        _ => not_found(),
    }
}

fn patch_records(st: &mut DnsInner, req: &Incoming) -> Reply {
    let domain = req.var("domain").trim_end_matches('.').to_ascii_lowercase();
    let Some(body) = req.json() else { return err(400, "InvalidParameter", "The body is not JSON") };
    if let Some(k) = unknown_keys(&body, &["items"], "patchDomainRecordsDetails") {
        return err(400, "InvalidParameter", &format!("Unrecognized field {k}"));
    }
    let Some(ops) = body.get("items").and_then(Value::as_array) else {
        return err(400, "InvalidParameter", "items is required");
    };
    for op in ops {
        if let Some(k) = unknown_keys(op, RECORD_OPERATION_FIELDS, "items[]") {
            return err(400, "InvalidParameter", &format!("Unrecognized field {k}"));
        }
        let d = op.get("domain").and_then(Value::as_str).unwrap_or_default();
        if !d.trim_end_matches('.').eq_ignore_ascii_case(&domain) {
            return err(400, "InvalidParameter", "Every operation's domain must be the path's domain");
        }
        match op.get("operation").and_then(Value::as_str) {
            Some("REQUIRE" | "PROHIBIT" | "REMOVE") => {}
            Some("ADD") if op.get("rtype").is_some() && op.get("rdata").is_some() && op.get("ttl").is_some() => {}
            Some("ADD") => return err(400, "InvalidParameter", "ADD needs rtype, rdata and ttl here"),
            _ => return err(400, "InvalidParameter", "operation must be REQUIRE, PROHIBIT, ADD or REMOVE"),
        }
    }
    // Preconditions first, against the records as they are.
    for op in ops {
        let any = st.records.iter().any(|r| matches_op(r, op));
        let failed = match op["operation"].as_str() {
            Some("REQUIRE") => !any,
            Some("PROHIBIT") => any,
            _ => false,
        };
        if failed {
            return err(412, "PreconditionFailed", "A precondition of the patch failed.");
        }
    }
    let mut records = st.records.clone();
    for op in ops {
        match op["operation"].as_str() {
            Some("REMOVE") => records.retain(|r| !matches_op(r, op)),
            Some("ADD") => {
                let rtype = op["rtype"].as_str().unwrap_or_default().to_string();
                let rdata = op["rdata"].as_str().unwrap_or_default().to_string();
                let ttl = op["ttl"].as_u64().unwrap_or(300) as u32;
                // An RRSet has one TTL.
                for r in records.iter_mut().filter(|r| r.domain == domain && r.rtype == rtype) {
                    r.ttl = ttl;
                }
                if !records.iter().any(|r| r.domain == domain && r.rtype == rtype && r.rdata == rdata) {
                    records.push(DnsRecord { domain: domain.clone(), rtype, rdata, ttl });
                }
            }
            _ => {}
        }
    }
    st.records = records;
    st.version += 1;
    st.patches += 1;
    let items: Vec<Value> =
        st.records.iter().filter(|r| r.domain == domain).map(|r| record_json(r, st.version)).collect();
    Reply::json(200, &json!({"items": items}))
}

/// The DNS test server's zone as the DNS conformance suite reads and plants records.
#[derive(Debug, Clone)]
pub struct DnsZone(pub OciDnsTestServer);

fn unquoted(d: &str) -> String {
    d.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap_or(d).to_string()
}

#[async_trait]
impl shared::dns::conformance::ZoneAccess for DnsZone {
    async fn put_foreign_a(&self, name: &str, address: std::net::Ipv4Addr) {
        self.0.add_record(name, "A", &address.to_string());
    }

    async fn put_txt(&self, name: &str, text: &str) {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        self.0.lock().records.retain(|r| !(r.domain == n && r.rtype == "TXT"));
        self.0.add_record(&n, "TXT", text);
    }

    async fn a_record(&self, name: &str) -> Option<std::net::Ipv4Addr> {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        self.0.records().into_iter().find(|r| r.domain == n && r.rtype == "A").and_then(|r| r.rdata.parse().ok())
    }

    async fn txt(&self, name: &str) -> Option<Vec<String>> {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        let t: Vec<String> = self
            .0
            .records()
            .into_iter()
            .filter(|r| r.domain == n && r.rtype == "TXT")
            .map(|r| unquoted(&r.rdata))
            .collect();
        (!t.is_empty()).then_some(t)
    }
}
