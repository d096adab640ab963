//! The AWS EC2 provider against moto, through the real SDK: the shared conformance suite, tags on
//! instances and volumes, user data, the claim's ClientToken (moto ignores it, so an SDK interceptor
//! reads it off the wire), the override reaching the request, pagination, termination, errors.

use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine as _;
use integration_tests::ec2_proxy::Ec2Proxy;
use integration_tests::moto::Moto;
use secrecy::SecretString;
use shared::config::providers::AwsConfig;
use shared::model::{ClaimId, OsFamily, OwnerLabels};
use shared::providers::BuildEnv;
use shared::providers::aws::AwsProvider;
use shared::providers::{ErrorClass, VmProvider, VmSpec, conformance};
use shared::secrets::StaticSecrets;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Records the form body of every EC2 request as sent (after serialization, before the wire).
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "test-recorder"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = ctx.request().body().bytes().unwrap_or_default();
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
        self.0.lock().unwrap().push(form);
        Ok(())
    }
}

impl Recorder {
    fn calls(&self, action: &str) -> Vec<BTreeMap<String, String>> {
        self.0.lock().unwrap().iter().filter(|f| f.get("Action").map(String::as_str) == Some(action)).cloned().collect()
    }
}

/// A moto-listed Linux AMI of us-east-1 (moto's DescribeImages: root device /dev/sda1).
const AMI: &str = "ami-1e749f67";

fn config(over: serde_json::Value) -> AwsConfig {
    let mut c = serde_json::json!({
        "name": "aws-moto",
        "aws_region": "us-east-1",
        "aws_ec2_ami_id": AMI,
        "aws_ec2_instance_type": "t3.micro",
        "max_instances": 20,
        "aws_ec2_ebs_volume_size_gb": 33,
        "aws_ec2_ebs_volume_type": "gp3",
        "aws_ec2_custom_tags": "{\"team\": \"vdi\"}",
        "ssh_key_name": "kasm-key"
    });
    c.as_object_mut().unwrap().extend(over.as_object().unwrap().clone());
    serde_json::from_value(c).expect("test config")
}

async fn provider(moto: &Moto, cfg: AwsConfig, page_size: i32) -> (AwsProvider, Recorder, Client) {
    let sdk = moto.sdk_config().await;
    let rec = Recorder::default();
    let ec2 = Client::from_conf(aws_sdk_ec2::config::Builder::from(&sdk).interceptor(rec.clone()).build());
    let env = BuildEnv::new(std::sync::Arc::new(shared::secrets::StaticSecrets::default()), "t");
    let p = AwsProvider::from_config(&cfg, &env).expect("provider").with_client(ec2.clone()).with_page_size(page_size);
    (p, rec, ec2)
}

fn deployment(test: &str) -> String {
    format!("t-{test}-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis())
}

fn spec(deployment: &str, config: &str, script: &str) -> VmSpec {
    let claim = ClaimId::generate(chrono::Utc::now());
    VmSpec {
        name: format!("kasm-{claim}"),
        labels: OwnerLabels {
            deployment: deployment.into(),
            autoscale_config: Some(config.into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: OsFamily::Linux,
        startup_script: Some(SecretString::from(script.to_string())),
    }
}

/// The shared conformance suite with faults, through the fault-injecting EC2 proxy in front of moto:
/// the SDK gives up on an attempt after 2 s (the proxy stalls 4 s for a timeout; moto on a busy
/// machine can take a second), makes 2 attempts with short backoffs, and lists in pages of 5.
#[tokio::test]
async fn passes_the_conformance_suite_on_moto() {
    use std::time::Duration;
    let moto = Moto::start();
    let proxy = Ec2Proxy::start(&moto.endpoint, Duration::from_secs(4), Some(5)).await;
    // Everything through the one entry point: the endpoint, key pair and HTTP knobs from the config
    // and the build environment (2 attempts, 10 ms backoff, a 2 s attempt timeout).
    let cfg = config(serde_json::json!({
        "endpoint_url": proxy.url, "aws_access_key_id": "env:AK", "aws_secret_access_key": "env:SK"
    }));
    let secrets = StaticSecrets(
        [("env:AK".to_string(), "testing".to_string()), ("env:SK".to_string(), "testing".to_string())].into(),
    );
    let env = BuildEnv {
        retry: shared::http::RetryConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            max_retries: 1,
            budget: Duration::from_secs(10),
        },
        request_timeout: Duration::from_secs(2),
        ..BuildEnv::new(std::sync::Arc::new(secrets), "t")
    };
    let p = AwsProvider::from_config(&cfg, &env).expect("provider").with_page_size(5);
    conformance::run_all(&p, &proxy, &deployment("conformance")).await;
}

#[tokio::test]
async fn create_sends_the_claim_token_tags_user_data_and_the_override() {
    let moto = Moto::start();
    let cfg = config(serde_json::json!({
        "aws_config_override": {"instance_config": {"EbsOptimized": true, "MetadataOptions": {"HttpTokens": "required"}}}
    }));
    let (p, rec, ec2) = provider(&moto, cfg, 1000).await;
    let dep = deployment("create");
    let script = "#!/bin/bash\necho 'kasm {server_id}'\n";
    let s = spec(&dep, "cfg-a", script);
    let vm = p.create_vm(&s).await.expect("create");

    // The request as sent: one instance, the claim as ClientToken, the override applied.
    let runs = rec.calls("RunInstances");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.get("ClientToken"), Some(&s.claim.0), "ClientToken is not the claim id: {run:?}");
    assert_eq!((run["MinCount"].as_str(), run["MaxCount"].as_str()), ("1", "1"));
    assert_eq!(run.get("EbsOptimized").map(String::as_str), Some("true"));
    assert_eq!(run.get("MetadataOptions.HttpTokens").map(String::as_str), Some("required"));
    assert_eq!(run.get("BlockDeviceMapping.1.DeviceName").map(String::as_str), Some("/dev/sda1"));
    assert_eq!(run.get("KeyName").map(String::as_str), Some("kasm-key"));

    // What moto reflects.
    let d = ec2.describe_instances().instance_ids(&vm.id).send().await.unwrap();
    let inst = &d.reservations()[0].instances()[0];
    assert_eq!(inst.ebs_optimized(), Some(true));
    assert_eq!(inst.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()), Some("required"));
    let tags: BTreeMap<&str, &str> = inst.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(tags["Name"], s.name);
    assert_eq!(tags["team"], "vdi");
    assert_eq!(tags[OwnerLabels::DEPLOYMENT], dep);
    assert_eq!(tags[OwnerLabels::CONFIG], "cfg-a");
    assert_eq!(tags[OwnerLabels::CLAIM], s.claim.0);

    // The root volume: size and type from the config, carrying the same tags.
    let vols = ec2
        .describe_volumes()
        .filters(aws_sdk_ec2::types::Filter::builder().name("attachment.instance-id").values(&vm.id).build())
        .send()
        .await
        .unwrap();
    assert_eq!(vols.volumes().len(), 1);
    let vol = &vols.volumes()[0];
    assert_eq!((vol.size(), vol.volume_type().map(|t| t.as_str())), (Some(33), Some("gp3")));
    let vtags: BTreeMap<&str, &str> = vol.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert_eq!(vtags[OwnerLabels::CLAIM], s.claim.0);
    assert_eq!(vtags[OwnerLabels::DEPLOYMENT], dep);

    // User data is the base64 of the packaged script.
    let ud = ec2
        .describe_instance_attribute()
        .instance_id(&vm.id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let got = ud.user_data().and_then(|u| u.value()).expect("user data");
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(got).unwrap(), script.as_bytes());

    // A second create for the claim (a lost response, a redelivered event) finds the instance by its
    // claim tag and does not call RunInstances again.
    let again = p.create_vm(&s).await.expect("second create");
    assert_eq!(again.id, vm.id);
    assert_eq!(rec.calls("RunInstances").len(), 1, "a second RunInstances for one claim");

    // Terminate is idempotent; the VM is then gone from get and list.
    p.delete_vm(&vm.id).await.expect("terminate");
    p.delete_vm(&vm.id).await.expect("terminate again");
    assert_eq!(p.get_vm(&vm.id).await.unwrap_err().class(), ErrorClass::NotFound);
    assert!(p.list_vms(&OwnerLabels::deployment(&dep)).await.unwrap().is_empty());
}

#[tokio::test]
async fn listing_follows_every_page() {
    let moto = Moto::start();
    let (p, rec, _) = provider(&moto, config(serde_json::json!({})), 5).await;
    let dep = deployment("pages");
    let mut made = Vec::new();
    for _ in 0..12 {
        made.push(p.create_vm(&spec(&dep, "cfg-p", "#!/bin/sh\n")).await.expect("create").id);
    }
    let other = p.create_vm(&spec(&format!("{dep}-x"), "cfg-p", "#!/bin/sh\n")).await.unwrap().id;
    let before = rec.calls("DescribeInstances").len();
    let mut listed: Vec<String> =
        p.list_vms(&OwnerLabels::deployment(&dep)).await.expect("list").into_iter().map(|v| v.id).collect();
    let calls = &rec.calls("DescribeInstances")[before..];
    listed.sort();
    made.sort();
    assert_eq!(listed, made, "listing missed instances or listed another deployment's");
    assert!(!listed.contains(&other));
    assert!(calls.len() >= 3, "12 instances in pages of 5 took {} calls", calls.len());
    assert!(calls.iter().all(|c| c.get("MaxResults").map(String::as_str) == Some("5")));
    assert!(calls[1..].iter().all(|c| c.contains_key("NextToken")), "later pages without NextToken: {calls:?}");
}

#[tokio::test]
async fn errors_are_classified_and_foreign_instances_are_left_alone() {
    let moto = Moto::start();
    let dep = deployment("errors");

    // A bad AMI: DescribeImages refuses it before anything is launched.
    let (bad_ami, rec, _) = provider(&moto, config(serde_json::json!({"aws_ec2_ami_id": "ami-00000bad"})), 1000).await;
    let e = bad_ami.create_vm(&spec(&dep, "c", "#!/bin/sh\n")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("InvalidAMIID"), "{e}");
    assert!(rec.calls("RunInstances").is_empty());

    // A bad subnet: RunInstances itself refuses it.
    let (bad_subnet, _, ec2) =
        provider(&moto, config(serde_json::json!({"aws_ec2_subnet_id": "subnet-00000bad"})), 1000).await;
    let e = bad_subnet.create_vm(&spec(&dep, "c", "#!/bin/sh\n")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("InvalidSubnetID"), "{e}");

    // An instance kasm-autoscale did not make is never terminated by it.
    let foreign = ec2.run_instances().image_id(AMI).min_count(1).max_count(1).send().await.unwrap();
    let fid = foreign.instances()[0].instance_id().unwrap().to_string();
    let e = bad_subnet.delete_vm(&fid).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permission, "{e}");
    let still = ec2.describe_instances().instance_ids(&fid).send().await.unwrap();
    let state = still.reservations()[0].instances()[0].state().and_then(|s| s.name()).unwrap().as_str().to_string();
    assert_eq!(state, "running");
}

#[tokio::test]
async fn windows_password_reaches_get_password_data() {
    let moto = Moto::start();
    let dep = deployment("password");
    // Empty password data (EC2Launch has not set it yet; moto answers so for a Linux AMI) is "not yet".
    let retrieve = serde_json::json!({"retrieve_windows_vm_password": true});
    let (linux, _, _) = provider(&moto, config(retrieve.clone()), 1000).await;
    let lvm = linux.create_vm(&spec(&dep, "c", "#!/bin/sh\n")).await.unwrap();
    assert!(linux.windows_password(&lvm.id).await.expect("password data").is_none());
    // A config that does not retrieve passwords says so (its capability is off) and asks EC2 nothing.
    let (off, off_rec, _) = provider(&moto, config(serde_json::json!({})), 1000).await;
    assert!(!off.capabilities().windows_password);
    let e = off.windows_password(&lvm.id).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotSupported, "{e}");
    assert!(off_rec.calls("GetPasswordData").is_empty());

    // moto's Windows AMI ami-12c6146b.
    let (p, rec, _) = provider(
        &moto,
        config(serde_json::json!({"aws_ec2_ami_id": "ami-12c6146b", "retrieve_windows_vm_password": true})),
        1000,
    )
    .await;
    let vm = p.create_vm(&spec(&dep, "c", "<powershell>echo hi</powershell>")).await.unwrap();
    // moto answers GetPasswordData with random text that is no ciphertext of any key: without a
    // configured key that is a configuration error, with one it fails to decrypt. Either way an Invalid
    // error that reveals nothing; the successful decryption is tested with openssl-made data
    // (shared::providers::aws tests) and the fetcher's flow with a fake provider (shared::app tests).
    let e = p.windows_password(&vm.id).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert_eq!(rec.calls("GetPasswordData").len(), 1);
    assert_eq!(rec.calls("GetPasswordData")[0].get("InstanceId"), Some(&vm.id));
    // (moto answers GetPasswordData for an unknown instance with empty data instead of
    // InvalidInstanceID.NotFound, so the NotFound path is covered by the classifier's unit test only.)
}

/// The registry builds the provider the way the Lambda does: credentials from the config's secret
/// references, the region from the config, the endpoint from `AWS_ENDPOINT_URL`, and the key pair's
/// private key from `secretsmanager:<deployment>/keypairs/<ssh_key_name>`. `AWS_ENDPOINT_URL` is
/// process-wide, so the checks run in a child process of this test binary with it set.
#[test]
fn the_registry_builds_from_the_config_and_the_environment() {
    let moto = Moto::start();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "registry_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run the child test");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "child failed:\n{text}");
}

#[tokio::test]
#[ignore = "run by the_registry_builds_from_the_config_and_the_environment, with AWS_ENDPOINT_URL set"]
async fn registry_child() {
    use shared::config::VmProviderConfig;
    use shared::providers::registry;
    use shared::secrets::StaticSecrets;
    assert!(std::env::var("AWS_ENDPOINT_URL").is_ok(), "run through the parent test");
    let dep = deployment("registry");
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("k.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&pem_path)
        .status()
        .unwrap();
    assert!(ok.success());
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let mut map = std::collections::HashMap::new();
    map.insert("env:TEST_AK".to_string(), "testing".to_string());
    map.insert("env:TEST_SK".to_string(), "testing".to_string());
    map.insert(format!("secretsmanager:{dep}/keypairs/kasm-key"), pem);
    let env = BuildEnv::new(std::sync::Arc::new(StaticSecrets(map)), dep.clone());
    let aws = |over: serde_json::Value| {
        let mut v = serde_json::json!({
            "provider": "aws", "name": "reg", "aws_region": "us-east-1", "aws_ec2_ami_id": "ami-12c6146b",
            "aws_ec2_instance_type": "t3.medium", "max_instances": 3, "aws_ec2_ebs_volume_size_gb": 50,
            "aws_ec2_ebs_volume_type": "gp3", "aws_access_key_id": "env:TEST_AK", "aws_secret_access_key": "env:TEST_SK",
            "retrieve_windows_vm_password": true, "ssh_key_name": "kasm-key"
        });
        v.as_object_mut().unwrap().extend(over.as_object().unwrap().clone());
        serde_json::from_value::<VmProviderConfig>(v).unwrap()
    };

    let p = registry::build(&aws(serde_json::json!({})), &env).expect("build");
    assert_eq!(p.name(), "aws");
    assert!(p.capabilities().windows_password && p.capabilities().idempotency_token);
    let vm = p.create_vm(&spec(&dep, "c", "<powershell>echo hi</powershell>")).await.expect("create through moto");
    assert_eq!(p.list_vms(&OwnerLabels::deployment(&dep)).await.unwrap().len(), 1);
    // The key pair's key was read: moto's fake password data gets as far as RSA decryption.
    let e = p.windows_password(&vm.id).await.unwrap_err();
    assert!(e.to_string().contains("RSA decryption failed"), "{e}");

    // No secret under the convention: the config still builds (Linux claims keep working) and the
    // password call says which secret is missing.
    let p2 = registry::build(&aws(serde_json::json!({"ssh_key_name": "absent-key"})), &env)
        .expect("build without the key pair's secret");
    let e = p2.windows_password(&vm.id).await.unwrap_err();
    assert!(e.to_string().contains(&format!("secretsmanager:{dep}/keypairs/absent-key")), "{e}");

    // Half a key pair is a config error.
    let half = aws(serde_json::json!({"aws_secret_access_key": null}));
    let e = registry::build(&half, &env).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    p.delete_vm(&vm.id).await.unwrap();
}
