//! `kasm-autoscale preflight` for vSphere: every check an operator would otherwise discover from a
//! failed clone — the vCenter session, the datacenter, the template and its VMware Tools, a linked
//! clone's snapshot, each named placement object, the datastore cluster, the privileges the flow
//! needs on each of those objects, and the startup script — read-only, one result per check.
//!
//! # Privileges
//! The vSphere Automation REST API (`/api`) has no operation that reports the session's
//! privileges; vim25 has. `privileges` asks `AuthorizationManager.HasPrivilegeOnEntities(entity[],
//! sessionId, privId[])` (pyvmomi: vSphere API 5.5; the method needs `System.View`, each entity
//! `System.Read`), once for every object the clone uses, with the session id read from
//! `SessionManager.currentSession.key`. It is chosen over `HasPrivilegeOnEntity` (one entity, a bare
//! `boolean[]` in the order asked) because its answer names each entity and privilege
//! (`EntityPrivilege{entity, privAvailability[{privId, isGranted}]}`), so nothing rests on order, and
//! over `FetchUserPrivilegeOnEntities` (6.5, by user name) because it asks about this session,
//! which is what the flow will use.
//!
//! The privileges are the ones Kasm's vSphere guide lists for the service account, each by its API
//! id from VMware's "Defined Privileges" pages of the vSphere Security guide (column "Privilege Name
//! in the API") or, where those pages were not readable, from VMware's API reference or pyvmomi's
//! method tables ([`PRIVILEGES`] names the source of each). Each is asked on the object VMware's
//! "Required On" column names: datastore privileges on `datastore_name` (or the datastore cluster,
//! whose datastores inherit it); `Resource.AssignVMToPool` on the resource pool the clone joins;
//! `VirtualMachine.Inventory.Create*` on the clones' folder; `Deploy template` and `Cancel task` (the
//! clone task's object) on the template; `Remove` and `Unregister` (needed on a VM and its parent) on
//! the folder; and what the clones themselves need (CPU count, memory, guest operations, power) on
//! the folder *and* the resource pool: the clones do not exist yet, and a VM inherits the
//! permissions of both its folder and its resource pool (VMware: "the permissions on one object are
//! added to the permissions on the other"), so such a privilege is missing only when neither grants
//! it. Two of Kasm's entries are not checked ([`NOT_CHECKED`]): `Network > Assign network`, whose API
//! id we could not read in VMware's API column (and the config names no network: clones keep the
//! template's), and `Set annotation`, whose id we could not confirm (VMware's API reference says a
//! VM's `annotation` needs `VirtualMachine.Config.Rename`; this provider sets none).
//!
//! The vSphere Automation ids of the folder, pool and datastore are used as vim25 references, as the
//! vim25 clone does (not documented by VMware): a wrong premise answers `ManagedObjectNotFound`,
//! which fails the check naming the object. A refused or unavailable call (no vim25 session, no
//! `authorizationManager`, a fault) reports the check as not checked with the cause, never as a pass.

use super::client::ClonePlacement;
use super::vim25::MoRef;
use super::{Error, Template, VsphereProvider, vim25};
use crate::config::ProviderConfigCommon;
use crate::config::providers::VsphereCloneType;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 8] = [
    "credentials",
    "datacenter",
    "template",
    "snapshot",
    "placement",
    "datastore_cluster",
    "privileges",
    "startup_script",
];

/// The object a privilege is asked on (VMware's "Required On", as the flow meets it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The template VM (`vm_template_name`).
    Template,
    /// The clones' folder (`vm_folder`, else the template's).
    Folder,
    /// The resource pool the clones join (`resource_pool`, else the cluster's root pool, else the
    /// template's).
    Pool,
    /// `datastore_name`, or the datastore cluster `datastore_cluster_name`.
    Datastore,
    /// The clones themselves: granted on the folder or the resource pool (a VM inherits both).
    Clones,
}

/// One privilege of Kasm's list for the service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privilege {
    /// The API id, e.g. `Datastore.AllocateSpace`.
    pub id: &'static str,
    /// Kasm's label (its guide's list), e.g. `Allocate space`.
    pub label: &'static str,
    /// Where it is asked.
    pub on: On,
    /// Where the id (and its "Required On") was read.
    pub source: &'static str,
}

const SEC: &str = "https://docs.vmware.com/en/VMware-vSphere/8.0/vsphere-security/";
const DATASTORE_PAGE: &str = "GUID-B2426ACC-D73F-4732-8BBC-DE9B1B2263D9.html";
const GLOBAL_PAGE: &str = "GUID-AD9A8245-E5AA-4620-A8A9-A35845FA0F9E.html";
const RESOURCE_PAGE: &str = "GUID-7BA4AE08-233C-4FF3-9A78-5B4BD4A6E28D.html";
const CONFIG_PAGE: &str = "GUID-FEAB5DF5-F7A2-412D-BF3D-7420A355AE8F.html";
const INVENTORY_PAGE: &str = "GUID-C81A92E3-4A73-4CE7-88D5-031079A53693.html";
const GUEST_PAGE: &str = "GUID-6A952214-0E5E-4CCF-9D2A-90948FF643EC.html";
const PYVMOMI: &str = "pyvmomi pyVmomi/_typeinfo_vim.py (the method's privilege)";

/// The privileges `privileges` asks, in Kasm's order. Sources: `SEC` + page is VMware's vSphere 8.0
/// Security guide, "Defined Privileges" (column "Privilege Name in the API"); where that page's API
/// column was not readable to us, the privilege pyvmomi's method table lists for the method that
/// needs it (`PowerOnVM_Task`, `UnregisterVM`, `ListProcessesInGuest`), or VMware's vSphere
/// Automation API reference.
pub const PRIVILEGES: [Privilege; 16] = [
    Privilege { id: "Datastore.AllocateSpace", label: "Allocate space", on: On::Datastore, source: DATASTORE_PAGE },
    Privilege { id: "Datastore.Browse", label: "Browse datastore", on: On::Datastore, source: DATASTORE_PAGE },
    Privilege { id: "Global.CancelTask", label: "Cancel task", on: On::Template, source: GLOBAL_PAGE },
    Privilege {
        id: "Resource.AssignVMToPool",
        label: "Assign virtual machine to resource pool",
        on: On::Pool,
        source: RESOURCE_PAGE,
    },
    Privilege { id: "VirtualMachine.Config.CPUCount", label: "Change CPU count", on: On::Clones, source: CONFIG_PAGE },
    Privilege { id: "VirtualMachine.Config.Memory", label: "Change Memory", on: On::Clones, source: CONFIG_PAGE },
    Privilege {
        id: "VirtualMachine.Inventory.CreateFromExisting",
        label: "Create from existing",
        on: On::Folder,
        source: INVENTORY_PAGE,
    },
    Privilege { id: "VirtualMachine.Inventory.Create", label: "Create new", on: On::Folder, source: INVENTORY_PAGE },
    Privilege { id: "VirtualMachine.Inventory.Delete", label: "Remove", on: On::Folder, source: INVENTORY_PAGE },
    Privilege { id: "VirtualMachine.Inventory.Unregister", label: "Unregister", on: On::Folder, source: PYVMOMI },
    Privilege {
        id: "VirtualMachine.GuestOperations.Modify",
        label: "Guest operation modifications",
        on: On::Clones,
        source: GUEST_PAGE,
    },
    Privilege {
        id: "VirtualMachine.GuestOperations.Execute",
        label: "Guest operation program execution",
        on: On::Clones,
        source: GUEST_PAGE,
    },
    Privilege {
        id: "VirtualMachine.GuestOperations.Query",
        label: "Guest operation queries",
        on: On::Clones,
        source: PYVMOMI,
    },
    Privilege { id: "VirtualMachine.Interact.PowerOff", label: "Power off", on: On::Clones, source: PYVMOMI },
    Privilege { id: "VirtualMachine.Interact.PowerOn", label: "Power on", on: On::Clones, source: PYVMOMI },
    Privilege {
        id: "VirtualMachine.Provisioning.DeployTemplate",
        label: "Deploy template",
        on: On::Template,
        source: "https://developer.broadcom.com/xapis/vsphere-automation-api/latest/api/vcenter/vm-template/library-items/templateLibraryItem__action=deploy/post",
    },
];

/// Kasm's entries `privileges` does not ask, with why.
pub const NOT_CHECKED: [(&str, &str); 2] = [
    (
        "Network > Assign network",
        "its API id is not in what we read of VMware's API column, and the config names no network (clones keep the template's)",
    ),
    (
        "Virtual machine > Change Configuration > Set annotation",
        "its API id is not confirmed by what we read (VMware's API reference puts a VM's annotation under \
         VirtualMachine.Config.Rename); this provider sets no annotation",
    ),
];

/// The full URL of a [`Privilege::source`].
pub fn source_url(source: &str) -> String {
    if source.starts_with("GUID-") { format!("{SEC}{source}") } else { source.to_string() }
}

impl VsphereProvider {
    /// Runs every check of [`CHECKS`], read-only. A refused session fails `credentials` and leaves
    /// the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        let not_checked = |name, why: &str| Check::fail(name, format!("not checked: {why}"));
        match self.client.session_user().await {
            Ok(user) => out.push(Check::pass(
                "credentials",
                format!("session created for `{user}` (POST /api/session); privileges are not reported by the API"),
            )),
            Err(e) => {
                let detail = match e.status() {
                    Some(404) => {
                        format!("{e}; is {} vCenter 7.0 U2 or later (the /api surface)?", self.client.base_url())
                    }
                    _ => e.into_provider().to_string(),
                };
                out.push(Check::fail("credentials", detail));
                for n in ["datacenter", "template", "snapshot", "placement", "datastore_cluster", "privileges"] {
                    out.push(not_checked(n, "no vCenter session"));
                }
                out.push(self.check_script());
                return out;
            }
        }
        let dc = match self.datacenter().await {
            Ok(dc) => {
                out.push(Check::pass("datacenter", format!("`{}` is {dc}", self.config.datacenter_name)));
                dc
            }
            Err(e) => {
                out.push(Check::fail("datacenter", e.into_provider().to_string()));
                for n in ["template", "snapshot", "placement", "datastore_cluster", "privileges"] {
                    out.push(not_checked(n, "no datacenter"));
                }
                out.push(self.check_script());
                return out;
            }
        };
        let template = self.template(&dc).await;
        out.push(match &template {
            Err(e) => Check::fail("template", e.to_string()),
            Ok(Template::Library(item)) => Check::pass(
                "template",
                format!(
                    "`{}` is the content-library VM template item {item} (deployed, not cloned); its VMware Tools \
                     cannot be read before a VM is deployed from it",
                    self.config.vm_template_name
                ),
            ),
            Ok(Template::Vm(vm)) => match self.client.tools(vm).await {
                Ok(t) if t.version_status.as_deref() == Some("NOT_INSTALLED") => Check::fail(
                    "template",
                    format!(
                        "`{}` ({vm}) has no VMware Tools; the startup script runs through them",
                        self.config.vm_template_name
                    ),
                ),
                Ok(t) => Check::pass(
                    "template",
                    format!(
                        "`{}` is {vm}; VMware Tools {} ({})",
                        self.config.vm_template_name,
                        t.version.as_deref().unwrap_or("of unknown version"),
                        t.version_status.as_deref().unwrap_or("status not reported")
                    ),
                ),
                Err(e) => Check::fail("template", e.into_provider().to_string()),
            },
        });
        out.push(self.check_snapshot(&template).await);
        // The placement's error as the check reports it (its class's message).
        let placement = self.placement(&dc).await.map_err(|e| e.into_provider().to_string());
        out.push(match &placement {
            Ok(p) => {
                let mut parts = Vec::new();
                for (field, v) in [
                    ("folder", &p.folder),
                    ("cluster", &p.cluster),
                    ("resource pool", &p.resource_pool),
                    ("datastore", &p.datastore),
                ] {
                    parts.push(format!("{field} {}", v.as_deref().unwrap_or("of the template")));
                }
                Check::pass("placement", parts.join(", "))
            }
            Err(e) => Check::fail("placement", e.clone()),
        });
        out.push(self.check_pod(&dc).await);
        out.push(match (&template, placement) {
            (Err(_), _) => not_checked("privileges", "no template"),
            (_, Err(_)) => not_checked("privileges", "the placement does not resolve"),
            (Ok(t), Ok(p)) => match self.check_privileges(&dc, t, &p).await {
                Ok(c) => c,
                Err(e) => not_checked("privileges", &e.into_provider().to_string()),
            },
        });
        out.push(self.check_script());
        out
    }

    /// The objects whose privileges are asked: each with a description for messages.
    async fn privilege_objects(
        &self,
        dc: &str,
        template: &Template,
        p: &ClonePlacement,
    ) -> Result<(Vec<(On, MoRef, String)>, Vec<String>), Error> {
        let c = &self.config;
        let mut objects = Vec::new();
        let mut skipped = Vec::new();
        let vm = match template {
            Template::Vm(vm) => Some(vm.as_str()),
            Template::Library(item) => {
                skipped.push(format!(
                    "the template is the content-library item {item}, not an inventory object: Deploy template and \
                     Cancel task are not asked on it"
                ));
                None
            }
        };
        // The template's folder and pool, read over vim25 only when the config leaves them unset.
        let need_template = p.folder.is_none() || (p.resource_pool.is_none() && p.cluster.is_none());
        let template_props = match vm {
            Some(vm) if need_template => self.vim_template(vm, &["parent", "resourcePool"]).await?,
            _ => Vec::new(),
        };
        let prop = |n: &str| template_props.iter().find(|(k, _)| k == n).and_then(|(_, v)| v.as_moref());
        if let Some(vm) = vm {
            objects.push((
                On::Template,
                MoRef::new("VirtualMachine", vm),
                format!("template `{}` ({vm})", c.vm_template_name),
            ));
        }
        match (&p.folder, prop("parent").filter(|m| m.kind == "Folder")) {
            (Some(f), _) => objects.push((
                On::Folder,
                MoRef::new("Folder", f),
                format!("folder `{}` ({f})", c.vm_folder.as_deref().unwrap_or_default()),
            )),
            (None, Some(f)) => {
                let d = format!("the template's folder ({})", f.value);
                objects.push((On::Folder, f, d));
            }
            (None, None) => skipped.push("no vm_folder and no template folder: the folder's privileges".into()),
        }
        let pool = match (&p.resource_pool, &p.cluster) {
            (Some(rp), _) => Some((
                MoRef::new("ResourcePool", rp),
                format!("resource pool `{}` ({rp})", c.resource_pool.as_deref().unwrap_or_default()),
            )),
            (None, Some(cl)) => {
                let what = format!(
                    "read the root resource pool of cluster_name `{}`",
                    c.cluster_name.as_deref().unwrap_or_default()
                );
                let props =
                    self.vim.properties(&MoRef::new("ClusterComputeResource", cl), &["resourcePool"], &what).await?;
                props.unwrap_or_default().iter().find(|(k, _)| k == "resourcePool").and_then(|(_, v)| v.as_moref()).map(
                    |m| {
                        let d = format!(
                            "the root resource pool ({}) of cluster `{}`",
                            m.value,
                            c.cluster_name.as_deref().unwrap_or_default()
                        );
                        (m, d)
                    },
                )
            }
            (None, None) => prop("resourcePool").map(|m| {
                let d = format!("the template's resource pool ({})", m.value);
                (m, d)
            }),
        };
        match pool {
            Some((m, d)) => objects.push((On::Pool, m, d)),
            None => skipped.push("no resource pool resolves: the pool's privileges".into()),
        }
        match (&c.datastore_cluster_name, &p.datastore) {
            // A datastore cluster that does not resolve fails `datastore_cluster`; the other objects
            // are still asked.
            (Some(name), _) => match self.vim_pod(dc).await {
                Ok(pod) => {
                    let d = format!("datastore cluster `{name}` ({})", pod.value);
                    objects.push((On::Datastore, pod, d));
                }
                Err(_) => skipped.push(format!(
                    "datastore_cluster_name `{name}` does not resolve (see datastore_cluster): the datastore privileges"
                )),
            },
            (None, Some(ds)) => objects.push((
                On::Datastore,
                MoRef::new("Datastore", ds),
                format!("datastore `{}` ({ds})", c.datastore_name.as_deref().unwrap_or_default()),
            )),
            (None, None) => skipped.push(
                "no datastore_name or datastore_cluster_name (the template's datastore is used): the datastore privileges"
                    .into(),
            ),
        }
        Ok((objects, skipped))
    }

    /// `privileges`: every privilege of [`PRIVILEGES`] on its object, asked over vim25 (see the
    /// module docs). Fails naming each missing privilege by id and Kasm's label, and the object.
    async fn check_privileges(&self, dc: &str, template: &Template, p: &ClonePlacement) -> Result<Check, Error> {
        let (objects, mut skipped) = self.privilege_objects(dc, template, p).await?;
        // `startup_script_method: cloud_init` runs no guest operation; the privilege its guest
        // customization needs is not named in the sources we read, so it is not asked either.
        let cloud_init = self.config.cloud_init();
        let used = |p: &Privilege| !(cloud_init && p.id.starts_with("VirtualMachine.GuestOperations."));
        if cloud_init {
            skipped.push(
                "the guest-operation privileges (startup_script_method cloud_init does not use them) and the guest \
                 customization's (not named in the sources read)"
                    .into(),
            );
        }
        if objects.is_empty() {
            return Ok(Check::fail("privileges", format!("not checked: no object to ask on ({})", skipped.join("; "))));
        }
        let entities: Vec<MoRef> = objects.iter().map(|(_, m, _)| m.clone()).collect();
        let ids: Vec<&str> = PRIVILEGES.iter().filter(|p| used(p)).map(|p| p.id).collect();
        let answer = self
            .vim
            .has_privileges(
                &entities,
                &ids,
                "ask vCenter which privileges the session holds (AuthorizationManager.HasPrivilegeOnEntities)",
            )
            .await?;
        // None: the answer does not say.
        let granted = |m: &MoRef, id: &str| -> Option<bool> {
            answer.iter().find(|e| e.entity == *m)?.privileges.iter().find(|(p, _)| p == id).map(|(_, g)| *g)
        };
        let of = |on: On| objects.iter().filter(move |(o, _, _)| *o == on);
        let mut missing: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |place: String, item: String| match missing.iter_mut().find(|(p, _)| *p == place) {
            Some((_, v)) => v.push(item),
            None => missing.push((place, vec![item])),
        };
        let mut asked = 0;
        for priv_ in PRIVILEGES.iter().filter(|p| used(p)) {
            let item = |unanswered: bool| {
                format!("{} ({}){}", priv_.id, priv_.label, if unanswered { " [not in vCenter's answer]" } else { "" })
            };
            if priv_.on == On::Clones {
                let places: Vec<_> = of(On::Folder).chain(of(On::Pool)).collect();
                if places.is_empty() {
                    continue;
                }
                asked += 1;
                let answers: Vec<Option<bool>> = places.iter().map(|(_, m, _)| granted(m, priv_.id)).collect();
                if !answers.contains(&Some(true)) {
                    let names: Vec<&str> = places.iter().map(|(_, _, d)| d.as_str()).collect();
                    add(
                        format!("for the clones, on {} (a clone inherits either)", names.join(" and ")),
                        item(answers.contains(&None)),
                    );
                }
                continue;
            }
            for (_, m, d) in of(priv_.on) {
                asked += 1;
                match granted(m, priv_.id) {
                    Some(true) => {}
                    g => add(format!("on {d}"), item(g.is_none())),
                }
            }
        }
        let skipped_note =
            if skipped.is_empty() { String::new() } else { format!("; not asked: {}", skipped.join("; ")) };
        let not_checked: Vec<&str> = NOT_CHECKED.iter().map(|(l, _)| *l).collect();
        let kasm_note = format!("; Kasm's list also has {} (not checked, see the README)", not_checked.join(", "));
        if missing.is_empty() {
            let names: Vec<&str> = objects.iter().map(|(_, _, d)| d.as_str()).collect();
            Ok(Check::pass(
                "privileges",
                format!(
                    "the session holds all {asked} asked privileges of Kasm's list on {} (HasPrivilegeOnEntities){skipped_note}{kasm_note}",
                    names.join(", ")
                ),
            ))
        } else {
            let parts: Vec<String> = missing.iter().map(|(p, v)| format!("missing {p}: {}", v.join(", "))).collect();
            Ok(Check::fail("privileges", format!("{}{skipped_note}", parts.join("; "))))
        }
    }

    /// `snapshot`: with `clone_type: linked`, `vm_snapshot_name` is one snapshot of the template
    /// (read over vim25: the template's `snapshot` tree).
    async fn check_snapshot(&self, template: &Result<Template, Error>) -> Check {
        let Some(name) =
            self.config.vm_snapshot_name.as_deref().filter(|_| self.config.clone_type == VsphereCloneType::Linked)
        else {
            return Check::pass("snapshot", "not used: full clones (clone_type: full)");
        };
        match template {
            Err(_) => Check::fail("snapshot", "not checked: no template"),
            Ok(Template::Library(item)) => Check::fail(
                "snapshot",
                format!("vm_template_name names the content-library item {item}, which has no snapshots"),
            ),
            Ok(Template::Vm(vm)) => match self.vim_snapshot(vm).await {
                Ok(s) => Check::pass(
                    "snapshot",
                    format!(
                        "`{name}` is {} of {vm} (linked clones over vim25, SOAPAction {})",
                        s.value,
                        vim25::SOAP_ACTION
                    ),
                ),
                Err(e) => Check::fail("snapshot", e.into_provider().to_string()),
            },
        }
    }

    /// `datastore_cluster`: `datastore_cluster_name` is a datastore cluster (StoragePod) of the
    /// datacenter (over vim25).
    async fn check_pod(&self, dc: &str) -> Check {
        let Some(name) = self.config.datastore_cluster_name.as_deref() else {
            return Check::pass("datastore_cluster", "not used (no datastore_cluster_name)");
        };
        match self.vim_pod(dc).await {
            Ok(p) => Check::pass(
                "datastore_cluster",
                format!("`{name}` is the datastore cluster {} (Storage DRS places each clone)", p.value),
            ),
            Err(e) => Check::fail("datastore_cluster", e.into_provider().to_string()),
        }
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass(
                "startup_script",
                "empty: the template itself must install and register the Kasm agent",
            );
        }
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        let os = self.config.os_family;
        match script::package(&self.config.script_rules(), os, rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) if self.config.cloud_init() => Check::pass(
                "startup_script",
                format!(
                    "renders with sample values ({} bytes of the {} cloud-init user data takes), run by cloud-init at \
                     first boot (startup_script_method cloud_init)",
                    s.len(),
                    crate::config::providers::CLOUD_INIT_USERDATA_MAX
                ),
            ),
            Ok(s) => Check::pass(
                "startup_script",
                format!(
                    "renders with sample values ({} bytes, run by {} as guest user `{}`); guest operations document no size limit",
                    s.len(),
                    if os == OsFamily::Windows { "PowerShell" } else { "/bin/bash" },
                    self.config.guest_vm_username
                ),
            ),
        }
    }
}
