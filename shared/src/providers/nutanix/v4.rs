//! The v4 flow (`api_version: v4`, Kasm's preview): the same VM, labels and waits as v3, through
//! the VMM v4.3 and Prism v4.4 APIs ([`client_v4`](super::client_v4)). See the module doc's "v4"
//! section for why each step is as it is.

use base64::Engine as _;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::time::Instant;

use super::client_v4::{self, CLONE_OVERRIDE, CloneOverride, GuestCustomization, Task};
use super::{Error, MAX_POLL, NutanixProvider, labels};
use crate::model::OwnerLabels;
use crate::providers::{Vm, VmSpec, VmState};

/// Whether an error is the API refusing a stale `If-Match` (412), or a conflicting change (409).
fn stale(e: &Error) -> bool {
    matches!(e.status(), Some(409 | 412))
}

/// The normalised state of a v4 VM (its `powerState`; a v4 VM is listed once its clone is done).
pub(crate) fn state(power: &str) -> VmState {
    match power {
        "ON" => VmState::Running,
        "OFF" | "PAUSED" => VmState::Stopped,
        _ => VmState::Unknown,
    }
}

pub(crate) fn to_vm(v: &client_v4::Vm) -> Vm {
    Vm {
        id: v.ext_id.clone(),
        name: v.name().to_string(),
        state: state(v.power_state()),
        labels: labels::labels(v.description()),
        private_ip: v.first_ip(),
        public_ip: None,
        created_at: v
            .create_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

fn claim_of(v: &client_v4::Vm) -> Option<String> {
    labels::labels(v.description()).get(OwnerLabels::CLAIM).cloned()
}

impl NutanixProvider {
    fn v4(&self) -> &client_v4::Client {
        self.v4.as_ref().expect("the v4 flow runs with a v4 client")
    }

    /// The VMs named exactly `name` (`$filter=name eq '<name>'`, every page, then compared here).
    pub(crate) async fn by_name_v4(&self, name: &str) -> Result<Vec<client_v4::Vm>, Error> {
        let filter = format!("name eq {}", client_v4::odata_string(name));
        Ok(self.v4().vms(Some(&filter)).await?.into_iter().filter(|v| v.name() == name).collect())
    }

    /// The one VM named `vm_candidate_name`.
    pub(crate) async fn candidate_v4(&self) -> Result<client_v4::Vm, Error> {
        let name = &self.config.vm_candidate_name;
        let mut found = self.by_name_v4(name).await?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::Config {
                message: format!("vm_candidate_name: no VM named `{name}` in Prism Central {}", self.config.host),
            }),
            n => Err(Error::Config {
                message: format!(
                    "vm_candidate_name: {n} VMs are named `{name}` in Prism Central {}; the candidate must be unique",
                    self.config.host
                ),
            }),
        }
    }

    /// Polls task `task` until it succeeds (bounded); a failed or canceled task is an error.
    async fn wait_task_v4(&self, task: &str, what: &str) -> Result<Task, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let cap = MAX_POLL.max(self.timings.poll);
        let mut wait = self.timings.poll;
        loop {
            let t = self.v4().task(task).await?;
            match t.status.as_str() {
                "SUCCEEDED" => return Ok(t),
                "FAILED" | "CANCELED" => {
                    return Err(Error::TaskFailed {
                        what: what.into(),
                        task: task.into(),
                        status: t.status.clone(),
                        detail: t.detail(),
                    });
                }
                _ => {}
            }
            if Instant::now() + wait > deadline {
                return Err(Error::Timeout {
                    what: what.into(),
                    task: task.into(),
                    secs: self.timings.operation_timeout.as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cap);
        }
    }

    /// Runs `op` with VM `ext_id`'s current ETag; a 409 or 412 (the VM changed since the read) reads
    /// it again and runs `op` once more. Answers the task `op` started, done.
    async fn with_etag<F, Fut>(&self, ext_id: &str, what: &str, op: F) -> Result<Task, Error>
    where
        F: Fn(Value, Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<String, Error>>,
    {
        let mut tried = false;
        loop {
            let (vm, etag) = self.v4().vm_raw(ext_id).await?;
            match op(vm, etag).await {
                Ok(task) => return self.wait_task_v4(&task, what).await,
                Err(e) if stale(&e) && !tried => {
                    tracing::info!(vm = ext_id, "the VM changed since it was read ({what}); reading it again");
                    tried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes our labels into VM `ext_id`'s description (`PUT /vms/{extId}` with the VM as read).
    async fn label_v4(&self, ext_id: &str, description: &str) -> Result<(), Error> {
        let what = "write our labels into the VM's description";
        self.with_etag(ext_id, what, |mut vm, etag| async move {
            match vm.as_object_mut() {
                Some(o) => {
                    o.insert("description".into(), Value::String(description.to_string()));
                }
                None => return Err(Error::Decode { what: what.into(), message: "the VM is not a JSON object".into() }),
            }
            self.v4().update_vm(ext_id, vm, etag, what).await
        })
        .await?;
        tracing::info!(vm = ext_id, "labels written");
        Ok(())
    }

    /// `$actions/power-on` with the VM's ETag.
    async fn power_on_v4(&self, ext_id: &str) -> Result<(), Error> {
        self.with_etag(ext_id, "power on the VM", |_, etag| self.v4().power_on(ext_id, etag)).await?;
        tracing::info!(vm = ext_id, "VM powered on");
        Ok(())
    }

    fn clone_body(&self, spec: &VmSpec) -> CloneOverride {
        let user_data = spec
            .startup_script
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.is_empty())
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        CloneOverride {
            object_type: CLONE_OVERRIDE,
            name: spec.name.clone(),
            num_sockets: self.config.vm_cores,
            num_cores_per_socket: 1,
            memory_size_bytes: u64::from(self.config.vm_memory) << 30,
            guest_customization: user_data.map(GuestCustomization::cloud_init),
        }
    }

    /// Clones the candidate for `spec`: the candidate's ETag as `If-Match`, the claim as the request
    /// id; a 409/412 (the candidate changed since the read) reads it again and sends once more under
    /// a second id derived from the claim. Answers the new VM's extId.
    async fn clone_v4(&self, spec: &VmSpec, candidate: &client_v4::Vm) -> Result<String, Error> {
        let what = "clone the VM candidate";
        let body = self.clone_body(spec);
        let mut retry = 0;
        let task = loop {
            let (_, etag) = self.v4().vm(&candidate.ext_id).await?;
            let id = client_v4::clone_request_id(spec.claim.as_str(), retry);
            match self.v4().clone_vm(&candidate.ext_id, etag, id, &body).await {
                Ok(t) => break t,
                Err(e) if stale(&e) && retry == 0 => {
                    tracing::info!(claim = %spec.claim, "the VM candidate changed since it was read; reading it again");
                    retry = 1;
                }
                Err(e) => return Err(e),
            }
        };
        tracing::info!(task = %task, claim = %spec.claim, "clone accepted");
        let done = self.wait_task_v4(&task, what).await?;
        // The task names the VMs it touched: the candidate and the clone.
        for e in &done.entities_affected {
            let Some(id) = e.ext_id.as_deref().filter(|id| !id.is_empty() && *id != candidate.ext_id) else {
                continue;
            };
            match self.v4().vm(id).await {
                Ok((v, _)) if v.name() == spec.name => return Ok(v.ext_id),
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
        }
        self.by_name_v4(&spec.name)
            .await?
            .into_iter()
            .find(|v| v.source_vm() == Some(candidate.ext_id.as_str()))
            .map(|v| v.ext_id)
            .ok_or_else(|| Error::Decode {
                what: what.into(),
                message: format!("task {task} succeeded, but names no VM and none is named `{}`", spec.name),
            })
    }

    pub(crate) async fn create_v4(&self, spec: &VmSpec) -> Result<Vm, Error> {
        let claim = spec.claim.as_str();
        let named = self.by_name_v4(&spec.name).await?;
        let ext_id = match named.iter().find(|v| claim_of(v).as_deref() == Some(claim)) {
            Some(v) => {
                tracing::info!(vm = %v.ext_id, claim, "VM of this claim exists; resuming");
                v.ext_id.clone()
            }
            None => {
                let candidate = self.candidate_v4().await?;
                if named.is_empty() {
                    self.clone_v4(spec, &candidate).await?
                } else {
                    // A clone of ours whose labelling was cut short: the claim's own name, cloned from
                    // the candidate, no labels of ours (it carries the candidate's description).
                    match named
                        .iter()
                        .find(|v| !labels::is_ours(v.description()) && v.source_vm() == Some(candidate.ext_id.as_str()))
                    {
                        Some(v) => {
                            tracing::info!(vm = %v.ext_id, claim, "clone of this claim found unlabelled; labelling it");
                            v.ext_id.clone()
                        }
                        None => return Err(Error::NameTaken { name: spec.name.clone() }),
                    }
                }
            }
        };
        let (v, _) = self.v4().vm(&ext_id).await?;
        if claim_of(&v).as_deref() != Some(claim) {
            self.label_v4(&ext_id, &labels::description(&spec.labels)).await?;
        }
        let (v, _) = self.v4().vm(&ext_id).await?;
        if v.power_state() != "ON" {
            self.power_on_v4(&ext_id).await?;
        }
        Ok(to_vm(&self.v4().vm(&ext_id).await?.0))
    }

    pub(crate) async fn get_v4(&self, id: &str) -> Result<Vm, Error> {
        Ok(to_vm(&self.v4().vm(id).await?.0))
    }

    pub(crate) async fn delete_v4(&self, id: &str) -> Result<(), Error> {
        let mut tried = false;
        loop {
            let (v, etag) = match self.v4().vm(id).await {
                Ok(x) => x,
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) => return Err(e),
            };
            if !labels::is_ours(v.description()) {
                return Err(Error::NotOurs { id: id.to_string() });
            }
            match self.v4().delete_vm(id, etag).await {
                Ok(task) => {
                    self.wait_task_v4(&task, "delete the VM").await?;
                    tracing::info!(vm = id, "VM deleted");
                    return Ok(());
                }
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) if e.status() == Some(412) && !tried => {
                    tracing::info!(vm = id, "the VM changed since it was read; reading it again");
                    tried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn list_v4(&self, want: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        Ok(self
            .v4()
            .vms(None)
            .await?
            .iter()
            .filter(|v| labels::is_ours(v.description()))
            .map(to_vm)
            .filter(|vm| vm.state != VmState::Deleted && want.matches(&vm.labels))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states_normalise() {
        assert_eq!(state("ON"), VmState::Running);
        assert_eq!(state("OFF"), VmState::Stopped);
        assert_eq!(state("PAUSED"), VmState::Stopped);
        assert_eq!(state("UNDETERMINED"), VmState::Unknown);
        assert_eq!(state("$UNKNOWN"), VmState::Unknown);
    }
}
