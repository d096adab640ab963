//! A small vim25 (vSphere Web Services, SOAP at `https://<vcenter>/sdk`) client: the few methods
//! the vSphere Automation REST API (`/api`) lacks — a linked clone from a snapshot (`CloneVM_Task`
//! with `VirtualMachineCloneSpec.snapshot` and `diskMoveType: createNewChildDiskBacking`) and Storage
//! DRS placement in a datastore cluster (`RecommendDatastores`, `ApplyStorageDrsRecommendation_Task`),
//! and the session's privileges for `preflight` (`AuthorizationManager.HasPrivilegeOnEntities`, with
//! the session id from `SessionManager.currentSession`).
//!
//! # The wire, and where each fact comes from
//! Everything below is from VMware's Python SDK pyvmomi (`pyVmomi/SoapAdapter.py`, the generated
//! type tables `_typeinfo_*.py`, and the real vCenter exchanges recorded in its `tests/fixtures/`);
//! `tests/vsphere/vim25-subset.json` holds the methods and types used here, extracted by
//! `scripts/vim25-subset.py`, and the test vCenter checks every request against it.
//! - A request is `POST /sdk`, `Content-Type: text/xml; charset=UTF-8`, `SOAPAction: "urn:vim25/<v>"`
//!   (quotes included), and an envelope whose body is `<Method xmlns="urn:vim25"><_this
//!   type="Kind">value</_this>` then the parameters in declaration order; data objects as elements
//!   whose children are the fields in WSDL order (inherited first), unset optional fields left out;
//!   arrays as repeated elements; managed object references as `<name type="Kind">value</name>`.
//! - The answer is `<MethodResponse><returnval>…</returnval></MethodResponse>`, or a SOAP fault
//!   (HTTP 500): `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>…</faultstring>
//!   <detail><XFault xsi:type="X">…</XFault></detail></soapenv:Fault>`; a task's error is a
//!   `LocalizedMethodFault` (`<fault xsi:type="X">`, `<localizedMessage>`).
//! - `RetrieveServiceContent` on the managed object `ServiceInstance` (type and value, as pyvmomi
//!   calls it) answers the references of the session manager, property collector, search index,
//!   storage resource manager and authorization manager; `SessionManager.Login(userName, password)` answers a `UserSession` and
//!   sets the cookie `vmware_soap_session`, sent back on every later request.
//!
//! **Not in pyvmomi, so chosen and said here**: the API version we send in `SOAPAction` is
//! [`API_VERSION`] (`7.0.2.0`, pyvmomi's id of vSphere 7.0 U2, the provider's minimum; every method and
//! field we send exists in it per the type tables); a vCenter refusing it answers a fault naming the
//! call. That the `/api` ids (`vm-42`, `group-v4`, `resgroup-8`, `datastore-11`) are the vim25
//! managed object reference values is **not documented** by VMware in what we read: the provider
//! reads the template by that id over vim25 and compares its `name` with `vm_template_name`, so a
//! vCenter where the two differ fails loudly instead of cloning the wrong VM.
//!
//! The password is escaped into the `Login` body and never logged; it and the session cookie are in
//! the [`Redactor`] of every request, so no error carries them.

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderValue, SET_COOKIE};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

use super::Error;
use super::credential::Source;
use crate::http::{HttpError, Redactor, RetryConfig, message_field};

/// The WSDL namespace of every method and type we use.
pub const NAMESPACE: &str = "urn:vim25";

/// The vim25 API version we speak (pyvmomi's `vim.version.v7_0_2_0`: vSphere 7.0 U2).
pub const API_VERSION: &str = "7.0.2.0";

/// The `SOAPAction` header: pyvmomi sends `"urn:<namespace>/<version id>"`, quotes included.
pub const SOAP_ACTION: &str = "\"urn:vim25/7.0.2.0\"";

/// The session cookie vCenter sets at `Login`.
pub const COOKIE_NAME: &str = "vmware_soap_session";

/// The `diskMoveType` of a linked clone (`VirtualMachineRelocateDiskMoveOptions`).
pub const LINKED_DISK_MOVE: &str = "createNewChildDiskBacking";

const SOAPENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The fault types that mean "no room": `InsufficientResourcesFault` with every subtype pyvmomi's
/// type tables list (`tests/vsphere/vim25-subset.json`, `faults`), and `NoDiskSpace`.
pub const CAPACITY_FAULTS: &[&str] = &[
    "InsufficientAgentVmsDeployed",
    "InsufficientCpuResourcesFault",
    "InsufficientFailoverResourcesFault",
    "InsufficientGraphicsResourcesFault",
    "InsufficientHostCapacityFault",
    "InsufficientHostCpuCapacityFault",
    "InsufficientHostMemoryCapacityFault",
    "InsufficientMemoryResourcesFault",
    "InsufficientNetworkCapacity",
    "InsufficientNetworkResourcePoolCapacity",
    "InsufficientPerCpuCapacity",
    "InsufficientResourcesFault",
    "InsufficientStandbyCpuResource",
    "InsufficientStandbyMemoryResource",
    "InsufficientStandbyResource",
    "InsufficientStorageSpace",
    "InsufficientVFlashResourcesFault",
    "InvalidResourcePoolStructureFault",
    "NumVirtualCpusExceedsLimit",
    "VmFaultToleranceTooManyFtVcpusOnHost",
    "VmFaultToleranceTooManyVMsOnHost",
    "VmSmpFaultToleranceTooManyVMsOnHost",
    "NoDiskSpace",
];

/// Bad credentials: `InvalidLogin` and its subtypes.
pub const LOGIN_FAULTS: &[&str] = &["InvalidLogin", "InvalidClientCertificate", "PasswordExpired"];

/// A managed object reference: its type and value (`VirtualMachine`, `vm-42`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoRef {
    /// The managed type, e.g. `VirtualMachine`.
    pub kind: String,
    /// The value, e.g. `vm-42`.
    pub value: String,
}

impl MoRef {
    /// A reference of `kind` with `value`.
    pub fn new(kind: &str, value: &str) -> MoRef {
        MoRef { kind: kind.into(), value: value.into() }
    }
}

/// `s` with `& < > " '` escaped for XML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<name>escaped text</name>`.
pub fn text(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", escape(value))
}

/// `<name type="Kind">value</name>`.
pub fn moref(name: &str, m: &MoRef) -> String {
    format!("<{name} type=\"{}\">{}</{name}>", escape(&m.kind), escape(&m.value))
}

/// `<name>inner</name>` (inner already XML).
pub fn el(name: &str, inner: &str) -> String {
    format!("<{name}>{inner}</{name}>")
}

/// The request envelope of `method` on `this` with `params` (already XML, in declaration order).
pub fn envelope(method: &str, this: &MoRef, params: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" \
         xmlns:soapenv=\"{SOAPENV}\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"{XSI}\">\n\
         <soapenv:Body><{method} xmlns=\"{NAMESPACE}\">{}{params}</{method}></soapenv:Body>\n</soapenv:Envelope>",
        moref("_this", this)
    )
}

/// An element of an answer, owned: its local name, `xsi:type` and `type` attributes, text, children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// `xsi:type` without its prefix.
    pub xsi_type: Option<String>,
    /// The `type` attribute of a managed object reference.
    pub mo_type: Option<String>,
    /// The text content (of a leaf).
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Node>,
}

impl Node {
    fn from(n: roxmltree::Node<'_, '_>) -> Node {
        let xsi_type = n.attribute((XSI, "type")).map(|t| t.rsplit(':').next().unwrap_or(t).to_string());
        Node {
            name: n.tag_name().name().to_string(),
            xsi_type,
            mo_type: n.attribute("type").map(str::to_string),
            text: n.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect::<String>(),
            children: n.children().filter(|c| c.is_element()).map(Node::from).collect(),
        }
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name` (an array's items).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// This element as a managed object reference (`type` attribute and text).
    pub fn as_moref(&self) -> Option<MoRef> {
        let kind = self.mo_type.as_deref()?;
        let value = self.text.trim();
        (!value.is_empty()).then(|| MoRef::new(kind, value))
    }
}

/// A vim25 fault: its type (`NotAuthenticated`, `InsufficientStorageSpace`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The fault's type (its `xsi:type`, else its element name without the `Fault` suffix).
    pub kind: String,
    /// `faultstring` or `localizedMessage`.
    pub message: String,
}

/// The type of a fault element (`<XFault xsi:type="X">` or a task's `<fault xsi:type="X">`).
fn fault_kind(n: &Node) -> String {
    n.xsi_type.clone().unwrap_or_else(|| n.name.strip_suffix("Fault").unwrap_or(&n.name).to_string())
}

/// Parses an answer to `method`: the `<methodResponse>` element, or the fault it carries.
pub fn parse_answer(xml: &str, method: &str) -> Result<Result<Node, Fault>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("the answer is not XML: {e}"))?;
    let body = doc
        .root_element()
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "Body" && c.tag_name().namespace() == Some(SOAPENV))
        .ok_or("the answer has no SOAP Body")?;
    let first = body.children().find(|c| c.is_element()).ok_or("the SOAP Body is empty")?;
    if first.tag_name().name() == "Fault" && first.tag_name().namespace() == Some(SOAPENV) {
        let f = Node::from(first);
        let message = message_field(f.text_of("faultstring").unwrap_or_default());
        let kind = f
            .child("detail")
            .and_then(|d| d.children.first())
            .map(fault_kind)
            .unwrap_or_else(|| "unknown fault".into());
        return Ok(Err(Fault { kind, message }));
    }
    let want = format!("{method}Response");
    if first.tag_name().name() != want || first.tag_name().namespace() != Some(NAMESPACE) {
        return Err(format!("the answer is `{}`, not a {want} of {NAMESPACE}", first.tag_name().name()));
    }
    Ok(Ok(Node::from(first)))
}

/// A task's `error` (`LocalizedMethodFault`) as a [`Fault`].
pub fn task_fault(error: &Node) -> Fault {
    let kind = error.child("fault").map(fault_kind).unwrap_or_else(|| "unknown fault".into());
    let message = message_field(
        error.text_of("localizedMessage").or_else(|| error.child("fault").and_then(|f| f.text_of("msg"))).unwrap_or(""),
    );
    Fault { kind, message }
}

/// One snapshot of a `VirtualMachineSnapshotTree`: its name and reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot's name.
    pub name: String,
    /// Its reference (`VirtualMachineSnapshot`).
    pub snapshot: MoRef,
}

/// Every snapshot of a `VirtualMachineSnapshotInfo` (`rootSnapshotList`, each with its
/// `childSnapshotList`, to any depth), in tree order.
pub fn snapshots(info: &Node) -> Vec<Snapshot> {
    fn walk(tree: &Node, out: &mut Vec<Snapshot>) {
        if let (Some(name), Some(snap)) = (tree.text_of("name"), tree.child("snapshot").and_then(Node::as_moref)) {
            out.push(Snapshot { name: name.to_string(), snapshot: snap });
        }
        for c in tree.all("childSnapshotList") {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for root in info.all("rootSnapshotList") {
        walk(root, &mut out);
    }
    out
}

/// The one snapshot named exactly `name`, else a message saying there is none or several.
pub fn find_snapshot(info: Option<&Node>, name: &str) -> Result<MoRef, String> {
    let all = info.map(snapshots).unwrap_or_default();
    let hits: Vec<&Snapshot> = all.iter().filter(|s| s.name == name).collect();
    match hits.as_slice() {
        [one] => Ok(one.snapshot.clone()),
        [] if all.is_empty() => {
            Err(format!("vm_snapshot_name: the template has no snapshots, so none is named `{name}`"))
        }
        [] => Err(format!(
            "vm_snapshot_name: the template has no snapshot named `{name}` (it has {})",
            all.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ")
        )),
        many => Err(format!(
            "vm_snapshot_name: {} snapshots of the template are named `{name}` ({}); the name must be unique",
            many.len(),
            many.iter().map(|s| s.snapshot.value.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The references `RetrieveServiceContent` answers that we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// `sessionManager`.
    pub session_manager: MoRef,
    /// `propertyCollector`.
    pub property_collector: MoRef,
    /// `searchIndex`.
    pub search_index: MoRef,
    /// `storageResourceManager`.
    pub storage_resource_manager: MoRef,
    /// `authorizationManager` (optional in `ServiceContent`: a vCenter may leave it out).
    pub authorization_manager: Option<MoRef>,
}

/// One entity's answer to `HasPrivilegeOnEntities`: each privilege asked and whether it is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityPrivileges {
    /// The entity.
    pub entity: MoRef,
    /// `(privId, isGranted)` as answered.
    pub privileges: Vec<(String, bool)>,
}

/// The `EntityPrivilege[]` of a `HasPrivilegeOnEntitiesResponse` (each `returnval`); entries
/// without an entity, and availabilities whose `isGranted` is not `true`/`false`, are left out.
pub fn entity_privileges(response: &Node) -> Vec<EntityPrivileges> {
    response
        .all("returnval")
        .filter_map(|rv| {
            let entity = rv.child("entity").and_then(Node::as_moref)?;
            let privileges = rv
                .all("privAvailability")
                .filter_map(|a| {
                    let granted = match a.text_of("isGranted")? {
                        "true" => true,
                        "false" => false,
                        _ => return None,
                    };
                    Some((a.text_of("privId")?.to_string(), granted))
                })
                .collect();
            Some(EntityPrivileges { entity, privileges })
        })
        .collect()
}

/// One vim25 session: its cookie and a redactor knowing the password and the cookie.
#[derive(Debug)]
struct Session {
    cookie: HeaderValue,
    redactor: Redactor,
}

/// The vim25 client: one session (made on first use, made again once when vCenter answers
/// `NotAuthenticated`), the service content read once.
#[derive(Debug)]
pub(crate) struct Vim {
    http: reqwest::Client,
    url: Url,
    source: Source,
    retry: RetryConfig,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    content: tokio::sync::OnceCell<Content>,
}

/// `<base>/sdk`.
pub fn sdk_url(base: &Url) -> Url {
    let mut url = base.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty();
        p.push("sdk");
    }
    url
}

/// The `vmware_soap_session=…` pair of a `Set-Cookie` value.
pub fn session_cookie(set_cookie: &str) -> Option<&str> {
    let pair = set_cookie.split(';').next()?.trim();
    let (k, v) = pair.split_once('=')?;
    (k.trim() == COOKIE_NAME && !v.trim().trim_matches('"').is_empty()).then_some(pair)
}

impl Vim {
    pub(crate) fn new(http: reqwest::Client, base: &Url, source: Source, retry: RetryConfig) -> Vim {
        Vim {
            http,
            url: sdk_url(base),
            source,
            retry,
            session: tokio::sync::Mutex::new(None),
            content: tokio::sync::OnceCell::new(),
        }
    }

    /// Sends one envelope; answers the status and body. Transport failures of read-only calls are
    /// retried with the client's rules; a SOAP fault (HTTP 500 with a fault body) never is.
    async fn post(
        &self,
        body: String,
        cookie: Option<&HeaderValue>,
        redactor: &Redactor,
        what: &str,
        read_only: bool,
    ) -> Result<(reqwest::StatusCode, Option<String>, String), Error> {
        let http_err = |source| Error::Http { what: what.to_string(), source };
        let mut req = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "text/xml; charset=UTF-8")
            .header("SOAPAction", SOAP_ACTION)
            .body(body);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c.clone());
        }
        let req = req.build().map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
        let mut backoff = crate::http::retry::Backoff::new(&self.retry);
        let mut tries = 0;
        loop {
            let attempt = req
                .try_clone()
                .ok_or_else(|| Error::Decode { what: what.into(), message: "request not cloneable".into() })?;
            match self.http.execute(attempt).await {
                Ok(resp) => {
                    let status = resp.status();
                    let set_cookie = resp.headers().get(SET_COOKIE).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let text = resp.text().await.map_err(|e| http_err(HttpError::from_reqwest(e, redactor)))?;
                    let is_soap = text.contains(SOAPENV);
                    if status.is_success() || (status.as_u16() == 500 && is_soap) {
                        return Ok((status, set_cookie, text));
                    }
                    let retryable = read_only && (status.is_server_error() || status.as_u16() == 429);
                    if !retryable || tries >= self.retry.max_retries {
                        return Err(http_err(HttpError::Status {
                            status,
                            body: crate::http::body_snippet(&text, redactor),
                            retry_after: None,
                        }));
                    }
                }
                Err(e) => {
                    let e = HttpError::from_reqwest(e, redactor);
                    let retryable = read_only || matches!(e, HttpError::Connect { .. });
                    if !retryable || tries >= self.retry.max_retries {
                        return Err(http_err(e));
                    }
                }
            }
            tries += 1;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// `RetrieveServiceContent` (anonymous), once.
    pub(crate) async fn content(&self) -> Result<&Content, Error> {
        self.content
            .get_or_try_init(|| async {
                let what = "read vCenter's vim25 service content (RetrieveServiceContent)";
                let this = MoRef::new("ServiceInstance", "ServiceInstance");
                let body = envelope("RetrieveServiceContent", &this, "");
                let (_, _, text) = self.post(body, None, &Redactor::new(), what, true).await?;
                let r = self.answer(&text, "RetrieveServiceContent", what)?;
                let rv = r.child("returnval").ok_or_else(|| decode(what, "no returnval"))?;
                let get =
                    |n: &str| rv.child(n).and_then(Node::as_moref).ok_or_else(|| decode(what, &format!("no {n}")));
                Ok(Content {
                    session_manager: get("sessionManager")?,
                    property_collector: get("propertyCollector")?,
                    search_index: get("searchIndex")?,
                    storage_resource_manager: get("storageResourceManager")?,
                    authorization_manager: rv.child("authorizationManager").and_then(Node::as_moref),
                })
            })
            .await
    }

    /// The answer element of `method`, or its fault as [`Error::Fault`].
    fn answer(&self, text: &str, method: &str, what: &str) -> Result<Node, Error> {
        match parse_answer(text, method) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(f)) => Err(Error::Fault { what: what.into(), kind: f.kind, message: f.message }),
            Err(m) => Err(decode(what, &m)),
        }
    }

    /// `SessionManager.Login(userName, password)`; the session is the `vmware_soap_session` cookie.
    async fn login(&self) -> Result<Session, Error> {
        let what = "log in to vCenter's vim25 API (SessionManager.Login)";
        let s = &self.source;
        let password = s.password().await?;
        let escaped = SecretString::from(escape(password.expose_secret()));
        let redactor = Redactor::new().with_secret(&password).with_secret(&escaped);
        let sm = self.content().await?.session_manager.clone();
        let params = format!("{}{}", text("userName", &s.username), el("password", escaped.expose_secret()));
        let body = envelope("Login", &sm, &params);
        let (_, set_cookie, text) = self.post(body, None, &redactor, what, false).await?;
        self.answer(&text, "Login", what)?;
        let pair = set_cookie.as_deref().and_then(session_cookie).ok_or_else(|| {
            decode(what, &format!("the answer sets no `{COOKIE_NAME}` cookie (the session); is this vCenter?"))
        })?;
        let secret = SecretString::from(pair.to_string());
        let mut cookie =
            HeaderValue::from_str(pair).map_err(|_| decode(what, "the session cookie is not a header value"))?;
        cookie.set_sensitive(true);
        let token = pair.split_once('=').map(|(_, v)| v.trim_matches('"').to_string()).unwrap_or_default();
        tracing::info!(user = %s.username, "vCenter vim25 session created");
        Ok(Session { cookie, redactor: redactor.with_secret(&secret).with_secret(&SecretString::from(token)) })
    }

    async fn session(&self, used: Option<&Arc<Session>>) -> Result<Arc<Session>, Error> {
        let mut g = self.session.lock().await;
        match (&*g, used) {
            (Some(cur), Some(u)) if !Arc::ptr_eq(cur, u) => return Ok(cur.clone()),
            (Some(cur), None) => return Ok(cur.clone()),
            _ => {}
        }
        *g = None;
        let s = Arc::new(self.login().await?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// Calls `method` on `this` with `params` in the session; a `NotAuthenticated` fault (vCenter
    /// no longer knows the session) logs in once more and sends the request again.
    pub(crate) async fn call(
        &self,
        method: &str,
        this: &MoRef,
        params: &str,
        what: &str,
        read_only: bool,
    ) -> Result<Node, Error> {
        let mut session = self.session(None).await?;
        let mut renewed = false;
        loop {
            let body = envelope(method, this, params);
            let (_, _, text) = self.post(body, Some(&session.cookie), &session.redactor, what, read_only).await?;
            match self.answer(&session.redactor.redact(&text), method, what) {
                Err(Error::Fault { kind, .. }) if kind == "NotAuthenticated" && !renewed => {
                    tracing::info!("vCenter refused the vim25 session; logging in again");
                    session = self.session(Some(&session)).await?;
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    /// `RetrievePropertiesEx` of `paths` of one object: the `(name, val)` pairs, `None` when vCenter
    /// returns no such object.
    pub(crate) async fn properties(
        &self,
        obj: &MoRef,
        paths: &[&str],
        what: &str,
    ) -> Result<Option<Vec<(String, Node)>>, Error> {
        let pc = self.content().await?.property_collector.clone();
        let path_set: String = paths.iter().map(|p| text("pathSet", p)).collect();
        let spec = el(
            "specSet",
            &format!(
                "{}{}",
                el("propSet", &format!("{}{path_set}", text("type", &obj.kind))),
                el("objectSet", &moref("obj", obj))
            ),
        );
        let params = format!("{spec}{}", el("options", ""));
        let r = self.call("RetrievePropertiesEx", &pc, &params, what, true).await?;
        let Some(objects) = r
            .child("returnval")
            .and_then(|rv| rv.all("objects").find(|o| o.child("obj").and_then(Node::as_moref).as_ref() == Some(obj)))
        else {
            return Ok(None);
        };
        Ok(Some(
            objects
                .all("propSet")
                .filter_map(|p| Some((p.text_of("name")?.to_string(), p.child("val")?.clone())))
                .collect(),
        ))
    }

    /// `SearchIndex.FindChild(entity, name)`: the child of `entity` named `name`, if any.
    pub(crate) async fn find_child(&self, entity: &MoRef, name: &str, what: &str) -> Result<Option<MoRef>, Error> {
        let si = self.content().await?.search_index.clone();
        let params = format!("{}{}", moref("entity", entity), text("name", name));
        let r = self.call("FindChild", &si, &params, what, true).await?;
        Ok(r.child("returnval").and_then(Node::as_moref))
    }

    /// The `key` of this session's `UserSession` (`SessionManager.currentSession`, read with
    /// `RetrievePropertiesEx`; pyvmomi's own tests take the session id from it). Never logged.
    pub(crate) async fn session_key(&self) -> Result<SecretString, Error> {
        let what = "read the vim25 session's id (SessionManager.currentSession)";
        let sm = self.content().await?.session_manager.clone();
        let props = self.properties(&sm, &["currentSession"], what).await?.unwrap_or_default();
        props
            .iter()
            .find(|(n, _)| n == "currentSession")
            .and_then(|(_, v)| v.text_of("key"))
            .filter(|k| !k.is_empty())
            .map(|k| SecretString::from(k.to_string()))
            .ok_or_else(|| decode(what, "vCenter answers no currentSession.key for this session"))
    }

    /// `AuthorizationManager.HasPrivilegeOnEntities(entity[], sessionId, privId[])`: for each
    /// entity, each privilege and whether this session holds it there. The answer names every
    /// entity and privilege (`EntityPrivilege{entity, privAvailability[{privId, isGranted}]}`), so
    /// nothing rests on the order of the answer; an entity or privilege the answer leaves out is
    /// missing from the result (the caller reports it as not answered).
    pub(crate) async fn has_privileges(
        &self,
        entities: &[MoRef],
        privileges: &[&str],
        what: &str,
    ) -> Result<Vec<EntityPrivileges>, Error> {
        let am = self.content().await?.authorization_manager.clone().ok_or_else(|| {
            decode(what, "vCenter's service content names no authorizationManager; privileges cannot be asked")
        })?;
        let key = self.session_key().await?;
        let mut params: String = entities.iter().map(|e| moref("entity", e)).collect();
        params.push_str(&text("sessionId", key.expose_secret()));
        params.extend(privileges.iter().map(|p| text("privId", p)));
        let r = self.call("HasPrivilegeOnEntities", &am, &params, what, true).await.map_err(|e| match e {
            // The session id is no password, but it names this session: kept out of messages.
            Error::Fault { what, kind, message } => {
                Error::Fault { what, kind, message: message.replace(key.expose_secret(), "[session id]") }
            }
            e => e,
        })?;
        Ok(entity_privileges(&r))
    }

    /// `SessionManager.Logout`, when there is a session; sent once.
    pub(crate) async fn logout(&self) -> Result<(), Error> {
        let Some(s) = self.session.lock().await.take() else { return Ok(()) };
        let what = "end the vim25 session (SessionManager.Logout)";
        let sm = self.content().await?.session_manager.clone();
        let (_, _, text) = self.post(envelope("Logout", &sm, ""), Some(&s.cookie), &s.redactor, what, false).await?;
        self.answer(&text, "Logout", what).map(drop)
    }
}

fn decode(what: &str, message: &str) -> Error {
    Error::Decode { what: what.into(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_escape_every_string_and_name_this() {
        let e = envelope(
            "Login",
            &MoRef::new("SessionManager", "SessionManager"),
            &format!("{}{}", text("userName", "kasm@vsphere.local"), text("password", "p<&>\"'w")),
        );
        assert!(e.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{e}");
        assert!(e.contains("<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this>"), "{e}");
        assert!(e.contains("<password>p&lt;&amp;&gt;&quot;&apos;w</password></Login>"), "{e}");
        let doc = roxmltree::Document::parse(&e).expect("well-formed");
        let pw = doc.descendants().find(|n| n.has_tag_name((NAMESPACE, "password"))).unwrap();
        assert_eq!(pw.text(), Some("p<&>\"'w"));
        assert_eq!(
            moref("vm", &MoRef::new("VirtualMachine", "vm-<1>")),
            "<vm type=\"VirtualMachine\">vm-&lt;1&gt;</vm>"
        );
        assert_eq!(SOAP_ACTION, format!("\"urn:vim25/{API_VERSION}\""));
        assert_eq!(
            sdk_url(&Url::parse("https://vc.example.com:8443/").unwrap()).as_str(),
            "https://vc.example.com:8443/sdk"
        );
        assert_eq!(
            session_cookie("vmware_soap_session=\"f92d3e\"; Path=/; HttpOnly; Secure;"),
            Some("vmware_soap_session=\"f92d3e\"")
        );
        assert_eq!(session_cookie("other=1; Path=/"), None);
    }

    // The fault of a wrong password as pyvmomi's recorded vCenter exchange shows it
    // (tests/fixtures/basic_connection_bad_password.yaml).
    const BAD_LOGIN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soapenv:Envelope xmlns:soapenc=\"http://schemas.xmlsoap.org/soap/encoding/\" xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n<soapenv:Body>\n<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete login due to an incorrect user name or password.</faultstring><detail><InvalidLoginFault xmlns=\"urn:vim25\" xsi:type=\"InvalidLogin\"></InvalidLoginFault></detail></soapenv:Fault>\n</soapenv:Body>\n</soapenv:Envelope>";

    #[test]
    fn answers_and_faults_parse() {
        let f = parse_answer(BAD_LOGIN, "Login").unwrap().unwrap_err();
        assert_eq!(f.kind, "InvalidLogin");
        assert!(f.message.contains("incorrect user name or password"), "{f:?}");
        let ok = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><FindChildResponse xmlns=\"urn:vim25\"><returnval type=\"StoragePod\">group-p1</returnval></FindChildResponse></soapenv:Body></soapenv:Envelope>";
        let n = parse_answer(ok, "FindChild").unwrap().unwrap();
        assert_eq!(n.child("returnval").and_then(Node::as_moref), Some(MoRef::new("StoragePod", "group-p1")));
        assert!(parse_answer(ok, "Login").unwrap_err().contains("not a LoginResponse"));
        assert!(parse_answer("<html>", "Login").is_err());
        let err = Node {
            name: "error".into(),
            children: vec![
                Node { name: "fault".into(), xsi_type: Some("InsufficientStorageSpace".into()), ..Node::default() },
                Node {
                    name: "localizedMessage".into(),
                    text: "Insufficient disk space on datastore 'ssd-01'.".into(),
                    ..Node::default()
                },
            ],
            ..Node::default()
        };
        let f = task_fault(&err);
        assert_eq!(f.kind, "InsufficientStorageSpace");
        assert!(f.message.contains("Insufficient disk space"));
    }

    #[test]
    fn privilege_answers_name_each_entity_and_privilege() {
        let xml = "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><HasPrivilegeOnEntitiesResponse xmlns=\"urn:vim25\"><returnval><entity type=\"Datastore\">datastore-15</entity><privAvailability><privId>Datastore.AllocateSpace</privId><isGranted>false</isGranted></privAvailability><privAvailability><privId>Datastore.Browse</privId><isGranted>true</isGranted></privAvailability><privAvailability><privId>Odd</privId><isGranted>maybe</isGranted></privAvailability></returnval><returnval><privAvailability><privId>X</privId><isGranted>true</isGranted></privAvailability></returnval></HasPrivilegeOnEntitiesResponse></soapenv:Body></soapenv:Envelope>";
        let r = parse_answer(xml, "HasPrivilegeOnEntities").unwrap().unwrap();
        assert_eq!(
            entity_privileges(&r),
            vec![EntityPrivileges {
                entity: MoRef::new("Datastore", "datastore-15"),
                privileges: vec![("Datastore.AllocateSpace".into(), false), ("Datastore.Browse".into(), true)],
            }]
        );
    }

    fn tree(name: &str, id: &str, children: Vec<Node>) -> Node {
        let mut c = vec![
            Node {
                name: "snapshot".into(),
                mo_type: Some("VirtualMachineSnapshot".into()),
                text: id.into(),
                ..Node::default()
            },
            Node { name: "name".into(), text: name.into(), ..Node::default() },
        ];
        c.extend(children.into_iter().map(|mut n| {
            n.name = "childSnapshotList".into();
            n
        }));
        Node { name: "rootSnapshotList".into(), children: c, ..Node::default() }
    }

    #[test]
    fn snapshots_are_found_at_any_depth_and_must_be_unique() {
        let info = Node {
            name: "val".into(),
            children: vec![
                tree(
                    "base",
                    "snapshot-1",
                    vec![tree("patched", "snapshot-2", vec![tree("kasm-1.19", "snapshot-3", vec![])])],
                ),
                tree(
                    "other-root",
                    "snapshot-4",
                    vec![tree("dup", "snapshot-5", vec![]), tree("dup", "snapshot-6", vec![])],
                ),
            ],
            ..Node::default()
        };
        assert_eq!(find_snapshot(Some(&info), "kasm-1.19"), Ok(MoRef::new("VirtualMachineSnapshot", "snapshot-3")));
        assert_eq!(find_snapshot(Some(&info), "base"), Ok(MoRef::new("VirtualMachineSnapshot", "snapshot-1")));
        let missing = find_snapshot(Some(&info), "nope").unwrap_err();
        assert!(missing.starts_with("vm_snapshot_name:") && missing.contains("`patched`"), "{missing}");
        let dup = find_snapshot(Some(&info), "dup").unwrap_err();
        assert!(dup.contains("2 snapshots") && dup.contains("snapshot-5, snapshot-6"), "{dup}");
        assert!(find_snapshot(None, "base").unwrap_err().contains("has no snapshots"));
    }
}
