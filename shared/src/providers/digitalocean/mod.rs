//! The DigitalOcean provider: one droplet per claim, created from the config's image, size and
//! region with the packaged startup script as `user_data`, tagged with our ownership labels, added
//! to the config's firewall. DigitalOcean DNS (domains and records) is [`dns`].
//!
//! # How `create_vm` works, and why
//! DigitalOcean has no idempotency token, so `create_vm` is a lookup before a create, and every
//! step after the create can be repeated:
//!
//! 1. **Find**: the droplet of the claim is the one tagged `ka:k:<claim>` (`GET /v2/droplets?tag_name=`,
//!    every page). Tags are set by the create request itself, so a droplet of ours is never
//!    untagged. Found → resume at step 4.
//! 2. **Tags exist**: the deployment and config tags and the config's `tags` are read (`GET
//!    /v2/tags/{name}`) and created when missing (`POST /v2/tags`), so a create never fails on a tag
//!    (Kasm's "Tag does not exist"). The claim's tag is left to the create request, which the spec
//!    says accepts new tags: a failed create then leaves no claim tag behind.
//! 3. **Create**: the SSH key is resolved from its *name* to its id (`GET /v2/account/keys`, every
//!    page), then `POST /v2/droplets` with `name` (the claim's deterministic name), `region`, `size`,
//!    `image` (an integer id when the config's image is all digits, else a slug), `ssh_keys`, `tags`
//!    (ours + the config's) and `user_data` (the rendered script, at most 64 KiB). The request is sent
//!    once: a retried POST could make a second droplet. A lost answer is a retryable error, and the
//!    engine's next attempt finds the droplet at step 1.
//! 4. **Wait**: the create action (`links.actions[rel=create]`, `GET /v2/actions/{id}`) until
//!    `completed` (`errored` fails the attempt), then the droplet until it leaves `new`, polling every
//!    [`Timings::poll`] for at most [`Timings::operation_timeout`].
//! 5. **Firewall**: the config's `firewall_name` is found by name (`GET /v2/firewalls`, every page) and
//!    the droplet added to it by id (`POST /v2/firewalls/{id}/droplets`) unless already a member. We
//!    add the droplet rather than attach our tag to the firewall: the operator's firewall keeps the
//!    exact rules and targets they gave it, as Kasm does.
//!
//! # The listing may lag a create
//! A droplet created a moment ago may not be listed by tag yet. The engine records the claim before
//! it calls `create_vm` and calls again only on a retryable error, after its retry delay (30 s and
//! more), so the window is a lost answer followed by a listing still lagging 30 s later. Known limit:
//! a second droplet made in that window carries the same claim tag, so `list_vms` for the claim
//! shows both and nothing of it is hidden.
//!
//! # Tags
//! Labels map to tags as [`tags`] describes (`ka:d:`, `ka:c:`, `ka:k:` + a reversible lowercase
//! encoding). A droplet is ours when it carries a `ka:d:` tag; any other droplet is never deleted.
//!
//! # Delete
//! `GET /v2/droplets/{id}` (404: already gone, success), refuse a droplet without our deployment tag,
//! `DELETE /v2/droplets/{id}` (404 is success), then the claim's tag is deleted (`DELETE
//! /v2/tags/{name}`) so claim tags do not pile up in the account (after a 404 only when no droplet is
//! listed with it: deleting a tag strips it from every resource). A droplet has no disks, NICs or IPs
//! of its own that outlive it (we attach no volumes and reserve no IPs). We do not remove the
//! droplet from the firewall first: DigitalOcean drops a destroyed droplet from its firewalls
//! (UNSOURCED: the spec does not say so; the test server models it).
//!
//! # Errors
//! Statuses map through [`crate::http`]: 401 Unauthenticated, 403 PermissionDenied (a token without
//! the scope), 404 NotFound, 409 Conflict, 429 RateLimited carrying the wait `ratelimit-reset` gives,
//! 5xx Transient. A 422 whose message says the droplet limit is reached or the size/region is not
//! available is OutOfCapacity (the config backs off); other 422s are Invalid. The error body's
//! `message` is quoted; the token never is. The client stops sending once `ratelimit-remaining` hits
//! 0 until `ratelimit-reset` (waiting when that is near, else handing back RateLimited).
//!
//! # Windows
//! DigitalOcean offers no Windows droplet images; a Windows spec is refused as Invalid.

mod builder;
pub(crate) mod client;
mod credential;
pub mod dns;
mod preflight;
pub mod tags;

pub use preflight::CHECKS;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use tokio::time::Instant;

use self::client::{Client, Droplet, DropletCreate};
use super::{Capabilities, ProviderError, Timings, Vm, VmProvider, VmSpec, VmState};
use crate::config::providers::DigitalOceanConfig;
use crate::http::HttpError;
use crate::model::{OsFamily, OwnerLabels};

/// The provider's short name.
pub const NAME: &str = "digital_ocean";

/// The longest wait between two polls of a create (see `wait_created`).
pub const MAX_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest `user_data` DigitalOcean accepts ("may not exceed 64 KiB", `droplet_create.yml`).
pub const USER_DATA_MAX: usize = 64 * 1024;

/// A DigitalOcean [`VmProvider`] bound to one VM-provider config. Build it with
/// [`DigitalOceanProvider::from_config`].
#[derive(Debug)]
pub struct DigitalOceanProvider {
    client: Client,
    config: DigitalOceanConfig,
    timings: Timings,
    /// Tags this process has seen exist (tags are never deleted by us except claim tags, which are
    /// never cached): saves their reads on every create.
    known_tags: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// What went wrong inside the provider; converted to [`ProviderError`] at the trait boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("failed to {what}: {source}")]
    Http {
        what: String,
        #[source]
        source: HttpError,
    },
    #[error("failed to {what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
    #[error("{message}")]
    Config { message: String },
    #[error("{message}")]
    Credential { message: String },
    #[error("the create action {action} of droplet {droplet} {status}")]
    ActionFailed { droplet: u64, action: u64, status: String },
    #[error("droplet {droplet} is still being created after {secs} s")]
    Timeout { droplet: u64, secs: u64 },
    #[error("the startup script is {bytes} bytes; DigitalOcean's user_data accepts at most {USER_DATA_MAX}")]
    ScriptTooLarge { bytes: usize },
    #[error("droplet {id} was not made by kasm-autoscale (no ka:d: deployment tag); not deleting it")]
    NotOurs { id: u64 },
}

/// Whether a 422 message says there is no capacity for the droplet. UNSOURCED: the API spec gives
/// only the generic 422 body (`request payload validation failed`); these phrases are what
/// DigitalOcean is reported to answer for the account's droplet limit and for sizes or regions that
/// cannot take new droplets. An unmatched 422 stays Invalid, which fails loudly with the message.
fn says_no_capacity(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "droplet limit",
        "droplet_limit",
        "size is not available",
        "region is not available",
        "not available in this region",
        "size unavailable",
        "region unavailable",
        "is currently unavailable",
    ]
    .iter()
    .any(|p| m.contains(p))
}

impl Error {
    /// The HTTP status of an API error.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Error::Http { source: HttpError::Status { status, .. }, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    pub(crate) fn into_provider(self) -> ProviderError {
        let message = self.to_string();
        match self {
            Error::Http { what, source: HttpError::Status { status, body, retry_after } } => {
                let (id, said) = client::error_message(&body);
                let text = if id.is_empty() {
                    format!("failed to {what}: {said}")
                } else {
                    format!("failed to {what}: {id}: {said}")
                };
                if status.as_u16() == 422 && says_no_capacity(&said) {
                    return ProviderError::OutOfCapacity { provider: NAME, message: text };
                }
                ProviderError::from_status(NAME, status, &text, retry_after)
            }
            Error::Http { source, what } => {
                let e = ProviderError::from_http(source, NAME);
                match e {
                    ProviderError::Transient { message, .. } => {
                        ProviderError::Transient { provider: NAME, message: format!("failed to {what}: {message}") }
                    }
                    ProviderError::Invalid { message, .. } => {
                        ProviderError::Invalid { provider: NAME, message: format!("failed to {what}: {message}") }
                    }
                    other => other,
                }
            }
            Error::Credential { .. } => ProviderError::Unauthenticated { provider: NAME, message },
            Error::Decode { .. } | Error::Timeout { .. } | Error::ActionFailed { .. } => {
                ProviderError::Transient { provider: NAME, message }
            }
            Error::Config { .. } | Error::ScriptTooLarge { .. } | Error::NotOurs { .. } => {
                ProviderError::Invalid { provider: NAME, message }
            }
        }
    }
}

/// The normalised state of a droplet `status`.
fn state(status: &str) -> VmState {
    match status {
        "new" => VmState::Creating,
        "active" => VmState::Running,
        "off" => VmState::Stopped,
        // "archive": kept by DigitalOcean without running; not a state we make or act on.
        _ => VmState::Unknown,
    }
}

fn to_vm(d: &Droplet) -> Vm {
    let ip = |kind: &str| d.networks.v4.iter().find(|n| n.kind == kind).map(|n| n.ip_address.clone());
    Vm {
        id: d.id.to_string(),
        name: d.name.clone(),
        state: state(&d.status),
        labels: tags::labels(&d.tags),
        private_ip: ip("private"),
        public_ip: ip("public"),
        created_at: d
            .created_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    }
}

impl DigitalOceanProvider {
    /// The config's image as the API takes it: an integer id when all digits, else a slug.
    fn image(&self) -> serde_json::Value {
        let i = self.config.image.trim();
        match i.parse::<u64>() {
            Ok(n) if !i.is_empty() => serde_json::Value::from(n),
            _ => serde_json::Value::from(i),
        }
    }

    async fn find_claim(&self, claim_tag: &str) -> Result<Option<Droplet>, Error> {
        Ok(self.client.droplets_by_tag(claim_tag).await?.into_iter().find(|d| d.status != "archive"))
    }

    /// Makes every tag in `names` exist (read, create when missing, read again after a failed create:
    /// another process may have made it first).
    async fn ensure_tags(&self, names: &[String]) -> Result<(), Error> {
        for t in names {
            if !tags::is_legal(t) {
                return Err(Error::Config { message: format!("tags: `{t}` is not a valid DigitalOcean tag") });
            }
            if self.known_tags.lock().expect("tag cache").contains(t) {
                continue;
            }
            if !self.client.tag_exists(t).await?
                && let Err(e) = self.client.create_tag(t).await
                && (e.is_auth() || !self.client.tag_exists(t).await?)
            {
                return Err(e);
            }
            self.known_tags.lock().expect("tag cache").insert(t.clone());
        }
        Ok(())
    }

    async fn ssh_key_ids(&self) -> Result<Vec<u64>, Error> {
        let Some(name) = self.config.ssh_key_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(Vec::new());
        };
        let keys = self.client.ssh_keys().await?;
        match keys.iter().find(|k| k.name == name).and_then(|k| k.id) {
            Some(id) => Ok(vec![id]),
            None => Err(Error::Config {
                message: format!("ssh_key_name: no SSH key named `{name}` in the DigitalOcean account"),
            }),
        }
    }

    async fn ensure_firewall(&self, droplet: u64) -> Result<(), Error> {
        let Some(name) = self.config.firewall_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let fws = self.client.firewalls().await?;
        let fw = fws.iter().find(|f| f.name == name).ok_or_else(|| Error::Config {
            message: format!("firewall_name: no firewall named `{name}` in the DigitalOcean account"),
        })?;
        if !fw.droplet_ids.as_deref().unwrap_or_default().contains(&droplet) {
            self.client.add_to_firewall(&fw.id, droplet).await?;
            tracing::info!(droplet, firewall = %fw.id, "droplet added to the firewall");
        }
        Ok(())
    }

    /// Waits for the create action, then for the droplet to leave `new`. The wait between polls
    /// starts at [`Timings::poll`] and doubles up to [`MAX_POLL`] (at least `poll`): a droplet takes
    /// about a minute, and polling every 2 s for each of several creates would spend a good part of
    /// the 250 requests a minute.
    async fn wait_created(&self, droplet: u64, action: Option<u64>) -> Result<Droplet, Error> {
        let deadline = Instant::now() + self.timings.operation_timeout;
        let timeout = || Error::Timeout { droplet, secs: self.timings.operation_timeout.as_secs() };
        let cap = MAX_POLL.max(self.timings.poll);
        let mut wait = self.timings.poll;
        if let Some(action) = action {
            loop {
                let a = self.client.action(action).await?;
                match a.status.as_str() {
                    "completed" => break,
                    "errored" => return Err(Error::ActionFailed { droplet, action, status: "errored".into() }),
                    _ => {}
                }
                if Instant::now() + wait > deadline {
                    return Err(timeout());
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(cap);
            }
        }
        loop {
            let d = self.client.droplet(droplet).await?;
            if d.status != "new" {
                return Ok(d);
            }
            if Instant::now() + wait > deadline {
                return Err(timeout());
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(cap);
        }
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, Error> {
        if spec.os == OsFamily::Windows {
            return Err(Error::Config {
                message: "DigitalOcean offers no Windows droplet images; this config can only run Linux".into(),
            });
        }
        let script = spec.startup_script.as_ref().map(|s| s.expose_secret().to_string()).filter(|s| !s.is_empty());
        if let Some(s) = &script
            && s.len() > USER_DATA_MAX
        {
            return Err(Error::ScriptTooLarge { bytes: s.len() });
        }
        let ours = tags::for_labels(&spec.labels).map_err(|message| Error::Config { message })?;
        let claim_tag = tags::claim_tag(spec.claim.as_str());
        let (id, action) = match self.find_claim(&claim_tag).await? {
            Some(d) => {
                tracing::info!(droplet = d.id, claim = %spec.claim, "droplet of this claim exists; resuming");
                (d.id, None)
            }
            None => {
                let mut all: Vec<String> = ours.clone();
                for t in self.config.tag_list() {
                    if !all.iter().any(|a| a == t) {
                        all.push(t.to_string());
                    }
                }
                // The long-lived tags (deployment, config, the operator's) are made to exist first;
                // the claim's own tag is made by the create itself ("Tag names can either be
                // existing or new tags", droplet_create.yml), so a create that fails leaves no
                // claim tag behind.
                let lasting: Vec<String> = all.iter().filter(|t| **t != claim_tag).cloned().collect();
                self.ensure_tags(&lasting).await?;
                let body = DropletCreate {
                    name: spec.name.clone(),
                    region: self.config.region.clone(),
                    size: self.config.droplet_size.clone(),
                    image: self.image(),
                    ssh_keys: self.ssh_key_ids().await?,
                    tags: all,
                    user_data: script,
                };
                let created = self.client.create_droplet(&body).await?;
                tracing::info!(droplet = created.droplet.id, claim = %spec.claim, "droplet create accepted");
                (created.droplet.id, created.create_action())
            }
        };
        let d = self.wait_created(id, action).await?;
        self.ensure_firewall(d.id).await?;
        Ok(to_vm(&d))
    }

    async fn delete(&self, id: &str) -> Result<(), Error> {
        // Not a droplet id: no droplet of ours has it.
        let Ok(id) = id.parse::<u64>() else { return Ok(()) };
        let d = match self.client.droplet(id).await {
            Ok(d) => d,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !tags::is_ours(&d.tags) {
            return Err(Error::NotOurs { id });
        }
        let gone_before = match self.client.delete_droplet(id).await {
            Ok(()) => {
                tracing::info!(droplet = id, "droplet deleted");
                false
            }
            Err(e) if e.status() == Some(404) => true,
            Err(e) => return Err(e),
        };
        for t in d.tags.iter().filter(|t| t.to_ascii_lowercase().starts_with(tags::CLAIM)) {
            // Deleting a tag strips it from every resource: after a 404 (someone else's delete, or
            // ours whose answer was lost) delete it only when no droplet carries it any more, so a
            // droplet that still exists never loses the tag that names its claim.
            if gone_before && !self.client.droplets_by_tag(t).await?.is_empty() {
                continue;
            }
            match self.client.delete_tag(t).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                // Best effort: the droplet is gone; a leftover claim tag holds nothing.
                Err(e) => tracing::warn!(tag = %t, error = %e, "could not delete the claim's tag"),
            }
        }
        Ok(())
    }

    async fn list(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, Error> {
        // The narrowest tag the API can filter by; the rest of the labels are matched here.
        let tag = match &labels.claim {
            Some(c) => tags::claim_tag(c.as_str()),
            None => tags::deployment_tag(&labels.deployment),
        };
        Ok(self
            .client
            .droplets_by_tag(&tag)
            .await?
            .iter()
            .filter(|d| d.status != "archive")
            .map(to_vm)
            .filter(|vm| labels.matches(&vm.labels))
            .collect())
    }
}

#[async_trait]
impl VmProvider for DigitalOceanProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        DigitalOceanProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        // No request token: a lookup by the claim's tag. Listing filters by one tag server-side
        // (the claim's, else the deployment's).
        Capabilities { idempotency_token: false, windows_password: false, server_side_label_filter: true }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        self.create(spec).await.map_err(Error::into_provider)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        let not_found = || ProviderError::NotFound { provider: NAME, id: id.to_string() };
        let n = id.parse::<u64>().map_err(|_| not_found())?;
        match self.client.droplet(n).await {
            Ok(d) => Ok(to_vm(&d)),
            Err(e) if e.status() == Some(404) => Err(not_found()),
            Err(e) => Err(e.into_provider()),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        self.delete(id).await.map_err(Error::into_provider)
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        self.list(labels).await.map_err(Error::into_provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use reqwest::StatusCode;

    fn status_err(code: u16, body: &str) -> Error {
        Error::Http {
            what: "create the droplet".into(),
            source: HttpError::Status {
                status: StatusCode::from_u16(code).unwrap(),
                body: body.into(),
                retry_after: None,
            },
        }
    }

    #[test]
    fn statuses_and_messages_map_to_the_classes_the_engine_acts_on() {
        let c = |code, body| status_err(code, body).into_provider().class();
        assert_eq!(c(401, r#"{"id":"unauthorized","message":"Unable to authenticate you."}"#), ErrorClass::Auth);
        assert_eq!(
            c(403, r#"{"id":"forbidden","message":"You do not have access for the attempted action."}"#),
            ErrorClass::Permission
        );
        assert_eq!(
            c(404, r#"{"id":"not_found","message":"The resource you were accessing could not be found."}"#),
            ErrorClass::NotFound
        );
        assert_eq!(
            c(429, r#"{"id":"too_many_requests","message":"API rate limit exceeded."}"#),
            ErrorClass::RateLimited
        );
        assert_eq!(c(500, r#"{"id":"server_error","message":"Unexpected server-side error"}"#), ErrorClass::Transient);
        assert_eq!(
            c(
                422,
                r#"{"id":"unprocessable_entity","message":"creating this/these droplet(s) will exceed your droplet limit"}"#
            ),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            c(422, r#"{"id":"unprocessable_entity","message":"Size is not available in this region."}"#),
            ErrorClass::OutOfCapacity
        );
        assert_eq!(
            c(422, r#"{"id":"unprocessable_entity","message":"request payload validation failed"}"#),
            ErrorClass::Invalid
        );
        let msg = status_err(
            422,
            r#"{"id":"unprocessable_entity","message":"request payload validation failed","request_id":"r"}"#,
        )
        .into_provider()
        .to_string();
        assert!(msg.contains("create the droplet") && msg.contains("request payload validation failed"), "{msg}");
        assert_eq!(Error::NotOurs { id: 1 }.into_provider().class(), ErrorClass::Invalid);
        assert_eq!(Error::ScriptTooLarge { bytes: 70_000 }.into_provider().class(), ErrorClass::Invalid);
        assert_eq!(Error::Timeout { droplet: 1, secs: 1 }.into_provider().class(), ErrorClass::Transient);
    }

    #[test]
    fn droplets_normalise() {
        let v: serde_json::Value = serde_json::from_str(include_str!("fixtures/droplets_page.json")).unwrap();
        let d: Droplet = serde_json::from_value(v["droplets"][0].clone()).unwrap();
        let vm = to_vm(&d);
        assert_eq!(vm.state, VmState::Running);
        assert_eq!(vm.public_ip.as_deref(), Some("104.236.32.182"));
        assert_eq!(vm.private_ip.as_deref(), Some("10.128.192.124"));
        assert!(vm.labels.is_empty());
        assert_eq!(state("new"), VmState::Creating);
        assert_eq!(state("off"), VmState::Stopped);
    }
}
