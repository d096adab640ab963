//! AWS EC2: one instance per claim.
//!
//! - **Create**: RunInstances with MinCount = MaxCount = 1, the AMI, type, security groups, subnet, the root
//!   EBS volume (size/type, on the AMI's root device, deleted with the instance), IAM instance profile,
//!   key pair, `UserData` = base64 of the packaged startup script, `ClientToken` = the claim id, and
//!   TagSpecifications on the instance **and** its volumes; then the config's `instance_config` override
//!   deep-merged on top. Before calling RunInstances it looks for a live instance tagged with the claim
//!   (a retried create after a lost response, or an emulator that ignores ClientToken) and returns it.
//! - **Tags** (instance and volumes): `Name` = the VM name, the config's `aws_ec2_custom_tags`, then the
//!   ownership tags `kasm-autoscale-deployment`, `kasm-autoscale-config`, `kasm-autoscale-claim` (ownership
//!   tags win over a custom tag of the same key).
//! - **List**: DescribeInstances with a `tag:` filter per label and the live states, every page.
//! - **Delete**: TerminateInstances; a missing or terminated instance is success; an instance without our
//!   deployment tag key is refused (we never terminate what kasm-autoscale did not create).
//! - **Windows password**: GetPasswordData, then RSA PKCS#1 v1.5 decryption with the key pair's private
//!   key, read from Secrets Manager at `<deployment_id>/keypairs/<ssh_key_name>` (see [`keypair_secret_ref`]).

mod builder;
mod client;
mod credential;
pub mod dns;
mod preflight;

pub use preflight::CHECKS;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{InstanceStateName, ResourceType, Tag, TagSpecification};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Capabilities, ProviderError, Vm, VmProvider, VmSpec, VmState};
use crate::config::SecretRef;
use crate::config::providers::AwsConfig;
use crate::model::OwnerLabels;
use crate::secrets::Secrets;

/// The provider's short name.
pub(crate) const NAME: &str = "aws";

/// DescribeInstances page size of listings (the API allows 5..=1000).
const DEFAULT_PAGE_SIZE: i32 = 1000;

/// The Secrets Manager secret holding the PEM private key of EC2 key pair `key_name` for deployment
/// `deployment_id`: `secretsmanager:<deployment_id>/keypairs/<key_name>` (the whole secret string is
/// the PEM, PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`). A convention rather than a config
/// field: the provider config has exactly Kasm's fields, and the Lambda role may read secrets under
/// its deployment's prefix only.
pub fn keypair_secret_ref(deployment_id: &str, key_name: &str) -> SecretRef {
    SecretRef::SecretsManager { id: format!("{deployment_id}/keypairs/{key_name}"), json_key: None }
}

/// Checks that `value` has the shape of RunInstances parameter `key` as the provider applies it (the
/// config validator's check of `instance_config`, so a misspelt nested field is reported when the config
/// is validated, not when the provider is built). The message names the parameter and nested field.
pub fn check_run_instances_parameter(key: &str, value: &Value) -> Result<(), String> {
    let probe = aws_sdk_ec2::operation::run_instances::RunInstancesInput::builder();
    client::apply_parameter(probe, key, value).map(|_| ()).map_err(|e| e.to_string())
}

/// The AWS EC2 provider. Build it with [`AwsProvider::from_config`] (or through
/// [`crate::providers::registry`]).
#[derive(Debug)]
pub struct AwsProvider {
    ec2: Client,
    config: AwsConfig,
    /// The config's `instance_config` override, checked when the provider was built.
    instance_config: Map<String, Value>,
    secrets: Arc<dyn Secrets>,
    deployment_id: String,
    /// The key pair's private key for Windows passwords, read on first use.
    private_key: Arc<tokio::sync::OnceCell<SecretString>>,
    page_size: i32,
    root_device: tokio::sync::OnceCell<String>,
}

impl AwsProvider {
    /// The key pair's private key (PEM), read from [`keypair_secret_ref`] on first use.
    async fn private_key(&self) -> Result<&SecretString, ProviderError> {
        let key_name = match self.config.ssh_key_name.as_deref().filter(|k| !k.trim().is_empty()) {
            Some(k) if self.config.retrieve_windows_vm_password => k,
            _ => {
                return Err(ProviderError::Invalid {
                    provider: NAME,
                    message: format!(
                        "config {} does not retrieve Windows passwords with a key pair (retrieve_windows_vm_password, ssh_key_name)",
                        self.config.name
                    ),
                });
            }
        };
        self.private_key
            .get_or_try_init(|| async {
                let r = keypair_secret_ref(&self.deployment_id, key_name);
                self.secrets.resolve(&r).await.map_err(|e| ProviderError::Invalid {
                    provider: NAME,
                    message: format!("the private key of key pair {key_name} is not available: {e}"),
                })
            })
            .await
    }

    /// The RunInstances request for `spec`, without sending it (also what the tests inspect).
    async fn run_request(
        &self,
        spec: &VmSpec,
    ) -> Result<aws_sdk_ec2::operation::run_instances::builders::RunInstancesInputBuilder, ProviderError> {
        let root = self
            .root_device
            .get_or_try_init(|| client::root_device_name(&self.ec2, &self.config.aws_ec2_ami_id))
            .await?
            .clone();
        let mut params = client::base_parameters(&self.config, &root);
        client::merge_override(&mut params, &self.instance_config);
        let b = aws_sdk_ec2::operation::run_instances::RunInstancesInput::builder();
        let b = client::apply_parameters(b, &params)
            .map_err(|e| ProviderError::Invalid { provider: NAME, message: e.to_string() })?;
        let tags = self.tags(spec);
        let tag_spec =
            |rt: ResourceType| TagSpecification::builder().resource_type(rt).set_tags(Some(tags.clone())).build();
        let user_data = spec
            .startup_script
            .as_ref()
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s.expose_secret().as_bytes()));
        Ok(b.min_count(1)
            .max_count(1)
            .client_token(spec.claim.as_str())
            .set_user_data(user_data)
            .tag_specifications(tag_spec(ResourceType::Instance))
            .tag_specifications(tag_spec(ResourceType::Volume)))
    }

    /// `Name`, the custom tags, then the ownership tags (which win on a clash).
    fn tags(&self, spec: &VmSpec) -> Vec<Tag> {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        m.insert("Name".into(), spec.name.clone());
        for (k, v) in self.config.aws_ec2_custom_tags.0.iter() {
            m.insert(k.clone(), v.clone());
        }
        m.extend(spec.labels.to_map());
        m.into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
    }

    async fn find_claimed(&self, spec: &VmSpec) -> Result<Option<Vm>, ProviderError> {
        let mut want = BTreeMap::new();
        want.insert(OwnerLabels::DEPLOYMENT.to_string(), spec.labels.deployment.clone());
        want.insert(OwnerLabels::CLAIM.to_string(), spec.claim.0.clone());
        let found = client::describe_filtered(&self.ec2, client::tag_filters(&want), self.page_size).await?;
        // Oldest first, so a duplicate (ClientToken ignored) resolves to the same instance every time.
        let mut vms: Vec<Vm> = found.iter().map(to_vm).collect();
        vms.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(vms.into_iter().next())
    }
}

#[async_trait]
impl VmProvider for AwsProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn preflight(&self) -> Vec<super::Check> {
        AwsProvider::preflight(self).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idempotency_token: true,
            windows_password: self.config.retrieve_windows_vm_password,
            server_side_label_filter: true,
        }
    }

    async fn create_vm(&self, spec: &VmSpec) -> Result<Vm, ProviderError> {
        if let Some(vm) = self.find_claimed(spec).await? {
            return Ok(vm);
        }
        let req = self.run_request(spec).await?;
        let out = req.send_with(&self.ec2).await.map_err(|e| from_sdk("RunInstances", e))?;
        let inst = out.instances().first().ok_or_else(|| ProviderError::Transient {
            provider: NAME,
            message: "RunInstances answered without an instance".into(),
        })?;
        let mut vm = to_vm(inst);
        // RunInstances' answer may leave the tags out; they were requested with the instance.
        if vm.labels.is_empty() {
            vm.labels = self.tags(spec).into_iter().filter_map(|t| Some((t.key?, t.value?))).collect();
            vm.name = spec.name.clone();
        }
        Ok(vm)
    }

    async fn get_vm(&self, id: &str) -> Result<Vm, ProviderError> {
        match client::describe_one(&self.ec2, id).await? {
            Some(i) if !is_gone(&i) => Ok(to_vm(&i)),
            _ => Err(ProviderError::NotFound { provider: NAME, id: id.to_string() }),
        }
    }

    async fn delete_vm(&self, id: &str) -> Result<(), ProviderError> {
        let Some(inst) = client::describe_one(&self.ec2, id).await? else {
            return Ok(());
        };
        if is_gone(&inst) {
            return Ok(());
        }
        if !inst.tags().iter().any(|t| t.key() == Some(OwnerLabels::DEPLOYMENT)) {
            return Err(ProviderError::PermissionDenied {
                provider: NAME,
                message: format!("instance {id} carries no {} tag: not ours to terminate", OwnerLabels::DEPLOYMENT),
            });
        }
        match self.ec2.terminate_instances().instance_ids(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => match from_sdk("TerminateInstances", e) {
                ProviderError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list_vms(&self, labels: &OwnerLabels) -> Result<Vec<Vm>, ProviderError> {
        let want = labels.to_map();
        let found = client::describe_filtered(&self.ec2, client::tag_filters(&want), self.page_size).await?;
        // The filters already match; checked again so a lenient endpoint can never widen what we touch.
        Ok(found.iter().map(to_vm).filter(|v| labels.matches(&v.labels)).collect())
    }

    async fn windows_password(&self, id: &str) -> Result<Option<SecretString>, ProviderError> {
        if !self.capabilities().windows_password {
            return Err(ProviderError::NotSupported {
                provider: NAME,
                what: format!(
                    "windows_password: config {} does not set retrieve_windows_vm_password",
                    self.config.name
                ),
            });
        }
        let out = match self.ec2.get_password_data().instance_id(id).send().await {
            Ok(o) => o,
            Err(e) => {
                return Err(match from_sdk("GetPasswordData", e) {
                    ProviderError::NotFound { .. } => ProviderError::NotFound { provider: NAME, id: id.to_string() },
                    other => other,
                });
            }
        };
        let data = out.password_data().unwrap_or("").trim();
        if data.is_empty() {
            // EC2Launch has not set the password yet.
            return Ok(None);
        }
        let key = self.private_key().await?;
        decrypt_windows_password(data, key).map(Some).map_err(|e| ProviderError::Invalid {
            provider: NAME,
            message: format!("failed to decrypt the Windows password of {id}: {e}"),
        })
    }
}

fn is_gone(i: &aws_sdk_ec2::types::Instance) -> bool {
    matches!(state_of(i), VmState::Deleted)
}

fn state_of(i: &aws_sdk_ec2::types::Instance) -> VmState {
    match i.state().and_then(|s| s.name()) {
        Some(InstanceStateName::Pending) => VmState::Creating,
        Some(InstanceStateName::Running) => VmState::Running,
        Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => VmState::Stopped,
        Some(InstanceStateName::ShuttingDown) => VmState::Deleting,
        Some(InstanceStateName::Terminated) => VmState::Deleted,
        _ => VmState::Unknown,
    }
}

fn to_vm(i: &aws_sdk_ec2::types::Instance) -> Vm {
    let labels: BTreeMap<String, String> =
        i.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
    Vm {
        id: i.instance_id().unwrap_or_default().to_string(),
        name: labels.get("Name").cloned().unwrap_or_default(),
        state: state_of(i),
        private_ip: i.private_ip_address().map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
        created_at: i.launch_time().and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
        labels,
    }
}

/// Turns an SDK failure into the public error: the service's error code when there is one, else the
/// kind of failure (timeouts and connection failures are transient).
pub(crate) fn from_sdk<E>(
    op: &str,
    e: SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(why) = crate::aws_error::credentials_failure(&e) {
        return ProviderError::Unauthenticated { provider: NAME, message: format!("{op}: {why}") };
    }
    match &e {
        SdkError::ServiceError(ctx) => {
            let raw = ctx.raw();
            let retry_after =
                raw.headers().get("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            classify(op, ctx.err().code(), ctx.err().message(), Some(raw.status().as_u16()), retry_after)
        }
        SdkError::TimeoutError(_) => ProviderError::Transient { provider: NAME, message: format!("{op}: timed out") },
        SdkError::DispatchFailure(d) => ProviderError::Transient {
            provider: NAME,
            message: format!(
                "{op}: request not sent ({})",
                if d.is_timeout() {
                    "timeout"
                } else if d.is_io() {
                    "connection failed"
                } else {
                    "dispatch failure"
                }
            ),
        },
        SdkError::ResponseError(_) => {
            ProviderError::Transient { provider: NAME, message: format!("{op}: unreadable response") }
        }
        SdkError::ConstructionFailure(_) => {
            ProviderError::Invalid { provider: NAME, message: format!("{op}: the request could not be built") }
        }
        _ => ProviderError::Transient { provider: NAME, message: format!("{op}: {}", e) },
    }
}

/// The one place EC2 error codes become error classes.
fn classify(
    op: &str,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    retry_after: Option<Duration>,
) -> ProviderError {
    let code_s = code.unwrap_or("");
    let message = format!(
        "{op}: {}{}",
        if code_s.is_empty() { "" } else { code_s },
        message.map(|m| format!(": {m}")).unwrap_or_default()
    );
    let p = NAME;
    match code_s {
        "InsufficientInstanceCapacity"
        | "InstanceLimitExceeded"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "MaxSpotInstanceCountExceeded"
        | "VcpuLimitExceeded"
        | "Unsupported" => ProviderError::OutOfCapacity { provider: p, message },
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
            ProviderError::RateLimited { provider: p, message, retry_after }
        }
        "InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed" => {
            ProviderError::NotFound { provider: p, id: message }
        }
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "OptInRequired" | "Blocked" => {
            ProviderError::PermissionDenied { provider: p, message }
        }
        "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "MissingAuthenticationToken" => ProviderError::Unauthenticated { provider: p, message },
        // The claim's token was used before with other parameters (the config changed between attempts):
        // EC2 will refuse this token for good, so retrying cannot help.
        "IdempotentParameterMismatch" => ProviderError::Invalid { provider: p, message },
        "IncorrectInstanceState" => ProviderError::Conflict { provider: p, message },
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            ProviderError::Transient { provider: p, message }
        }
        c if c.starts_with("InvalidParameter")
            || c.starts_with("InvalidAMIID.")
            || c.starts_with("InvalidSubnetID.")
            || c.starts_with("InvalidSubnet")
            || c.starts_with("InvalidGroup.")
            || c.starts_with("InvalidKeyPair.")
            || c.starts_with("InvalidBlockDeviceMapping")
            || c.starts_with("InvalidInstanceType")
            || c == "MissingParameter"
            || c == "UnknownParameter"
            || c == "ValidationError" =>
        {
            ProviderError::Invalid { provider: p, message }
        }
        _ => match status {
            Some(s) if s >= 500 => ProviderError::Transient { provider: p, message },
            Some(429) => ProviderError::RateLimited { provider: p, message, retry_after },
            Some(401) => ProviderError::Unauthenticated { provider: p, message },
            Some(403) => ProviderError::PermissionDenied { provider: p, message },
            // Any other client error is a request EC2 will keep refusing.
            _ => ProviderError::Invalid { provider: p, message },
        },
    }
}

/// Why a Windows password could not be decrypted. Never carries the key, the ciphertext or the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password data is not base64.
    #[error("the password data is not base64")]
    NotBase64,
    /// The private key is not an RSA PEM (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    #[error("the private key is not an RSA private key in PEM (PKCS#1 or PKCS#8)")]
    BadKey,
    /// RSA PKCS#1 v1.5 decryption failed: the wrong key pair, or corrupt data.
    #[error("RSA decryption failed (wrong key pair or corrupt data)")]
    Decrypt,
    /// The decrypted password is not UTF-8.
    #[error("the decrypted password is not text")]
    NotText,
}

/// Decrypts EC2 `GetPasswordData` output: base64 (whitespace ignored), then RSA PKCS#1 v1.5 with the
/// key pair's private key (PEM, PKCS#1 or PKCS#8).
pub fn decrypt_windows_password(
    ciphertext_b64: &str,
    private_key_pem: &SecretString,
) -> Result<SecretString, PasswordError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    // EC2 wraps the base64 in line breaks.
    let compact: String = ciphertext_b64.chars().filter(|c| !c.is_whitespace()).collect();
    let data = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| PasswordError::NotBase64)?;
    let pem = private_key_pem.expose_secret().trim();
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|_| PasswordError::BadKey)?;
    let plain = key.decrypt(rsa::Pkcs1v15Encrypt, &data).map_err(|_| PasswordError::Decrypt)?;
    let text = String::from_utf8(plain).map_err(|_| PasswordError::NotText)?;
    Ok(SecretString::from(text))
}

#[cfg(test)]
pub(crate) mod tests;
