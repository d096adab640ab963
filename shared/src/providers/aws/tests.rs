//! Unit tests: error classification, the override mapper against the accepted list, the request we
//! build, and Windows password decryption with keys and ciphertexts made by the openssl CLI.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use std::process::Command;

use super::client::{ParamError, apply_parameter, apply_parameters, base_parameters, merge_override};
use super::*;
use crate::config::providers::{AWS_MANAGED, AWS_RUN_INSTANCES_PARAMETERS, AWS_UNSUPPORTED};
use crate::providers::ErrorClass;

fn env() -> crate::providers::BuildEnv {
    crate::providers::BuildEnv::new(std::sync::Arc::new(crate::secrets::StaticSecrets::default()), "dep")
}

fn class(code: &str, status: u16) -> ErrorClass {
    classify("RunInstances", Some(code), Some("m"), Some(status), None).class()
}

#[test]
fn ec2_error_codes_map_to_classes() {
    use ErrorClass::*;
    let cases = [
        ("InsufficientInstanceCapacity", 500, OutOfCapacity),
        ("InstanceLimitExceeded", 400, OutOfCapacity),
        ("InsufficientHostCapacity", 400, OutOfCapacity),
        ("Unsupported", 400, OutOfCapacity),
        ("RequestLimitExceeded", 503, RateLimited),
        ("Throttling", 400, RateLimited),
        ("InvalidParameterValue", 400, Invalid),
        ("InvalidParameterCombination", 400, Invalid),
        ("InvalidAMIID.NotFound", 400, Invalid),
        ("InvalidAMIID.Malformed", 400, Invalid),
        ("InvalidSubnetID.NotFound", 400, Invalid),
        ("InvalidGroup.NotFound", 400, Invalid),
        ("InvalidKeyPair.NotFound", 400, Invalid),
        ("UnauthorizedOperation", 403, Permission),
        ("AuthFailure", 401, Auth),
        ("InvalidInstanceID.NotFound", 400, NotFound),
        ("InvalidInstanceID.Malformed", 400, NotFound),
        ("IdempotentParameterMismatch", 400, Invalid),
        ("IncorrectInstanceState", 400, Conflict),
        ("InternalError", 500, Transient),
        ("Unavailable", 503, Transient),
        ("SomethingNew", 502, Transient),
        ("SomethingNew", 400, Invalid),
    ];
    for (code, status, want) in cases {
        assert_eq!(class(code, status), want, "{code} ({status})");
    }
    let rl = classify("RunInstances", Some("RequestLimitExceeded"), None, Some(503), Some(Duration::from_secs(7)));
    assert!(matches!(rl, ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
    assert!(rl.is_retryable());
    assert!(!classify("RunInstances", Some("InvalidAMIID.NotFound"), None, Some(400), None).is_retryable());
}

#[test]
fn the_mapper_applies_exactly_the_accepted_overridable_parameters() {
    let managed: Vec<&str> = AWS_MANAGED.iter().map(|(k, _)| *k).collect();
    let overridable: Vec<&str> =
        AWS_RUN_INSTANCES_PARAMETERS.iter().copied().filter(|k| !managed.contains(k)).collect();
    let b = || aws_sdk_ec2::operation::run_instances::RunInstancesInput::builder();
    // The key list is kept once (in the config); every overridable key has an arm in the mapper: a
    // wrong-shaped value is a shape error, not "unsupported".
    for k in &overridable {
        match apply_parameter(b(), k, &json!([[[]]])) {
            Err(ParamError::Shape { .. }) => {}
            other => panic!("{k}: {:?}", other.map(|_| ())),
        }
    }
    for k in AWS_UNSUPPORTED.iter().chain(managed.iter()) {
        assert!(!AWS_RUN_INSTANCES_PARAMETERS.contains(k) || managed.contains(k), "{k} accepted and unsupported");
        assert_eq!(apply_parameter(b(), k, &json!({})).err(), Some(ParamError::Unsupported(k.to_string())), "{k}");
    }
}

#[test]
fn nested_parameters_reach_the_request() {
    let p = json!({
        "EbsOptimized": true,
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        "CreditSpecification": {"CpuCredits": "unlimited"},
        "Placement": {"AvailabilityZone": "us-east-1b", "Tenancy": "dedicated"},
        "PrivateDnsNameOptions": {"HostnameType": "resource-name", "EnableResourceNameDnsAAAARecord": true},
        "NetworkInterfaces": [{"DeviceIndex": 0, "AssociatePublicIpAddress": true, "Groups": ["sg-1"]}],
        "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.05", "ValidUntil": "2030-01-01T00:00:00Z"}},
        "InstanceInitiatedShutdownBehavior": "terminate"
    });
    let b =
        apply_parameters(aws_sdk_ec2::operation::run_instances::RunInstancesInput::builder(), p.as_object().unwrap())
            .unwrap();
    assert_eq!(b.get_ebs_optimized(), &Some(true));
    let md = b.get_metadata_options().as_ref().unwrap();
    assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(md.http_put_response_hop_limit(), Some(2));
    assert_eq!(b.get_credit_specification().as_ref().unwrap().cpu_credits(), Some("unlimited"));
    assert_eq!(b.get_placement().as_ref().unwrap().tenancy().map(|t| t.as_str()), Some("dedicated"));
    assert_eq!(b.get_private_dns_name_options().as_ref().unwrap().enable_resource_name_dns_aaaa_record(), Some(true));
    assert_eq!(b.get_network_interfaces().as_ref().unwrap()[0].groups(), ["sg-1"]);
    let spot = b.get_instance_market_options().as_ref().unwrap().spot_options().unwrap();
    assert_eq!(spot.max_price(), Some("0.05"));
    assert!(spot.valid_until().is_some());
    assert_eq!(b.get_instance_initiated_shutdown_behavior().as_ref().map(|s| s.as_str()), Some("terminate"));

    // A misspelt nested field is refused with its name, never dropped.
    let bad = json!({"MetadataOptions": {"HttpToken": "required"}});
    let err =
        apply_parameters(aws_sdk_ec2::operation::run_instances::RunInstancesInput::builder(), bad.as_object().unwrap())
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("MetadataOptions") && err.contains("HttpToken"), "{err}");
}

fn config() -> AwsConfig {
    serde_json::from_value(json!({
        "name": "aws1",
        "aws_region": "us-east-1",
        "aws_ec2_ami_id": "ami-12c6146b",
        "aws_ec2_instance_type": "t3.micro",
        "max_instances": 3,
        "aws_ec2_security_group_ids": "[\"sg-1\", \"sg-2\"]",
        "aws_ec2_subnet_id": "subnet-1",
        "aws_ec2_ebs_volume_size_gb": 40,
        "aws_ec2_ebs_volume_type": "gp3",
        "aws_ec2_iam": "arn:aws:iam::123456789012:instance-profile/kasm",
        "aws_ec2_custom_tags": {"team": "vdi", "kasm-autoscale-deployment": "spoofed"},
        "ssh_key_name": "kasm-key",
        "aws_config_override": {"instance_config": {
            "EbsOptimized": true,
            "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 100, "Encrypted": true}}],
            "IamInstanceProfile": {"Name": "other"}
        }}
    }))
    .expect("test config")
}

#[test]
fn base_request_carries_the_config_and_the_override_merges_deeply() {
    let cfg = config();
    let mut p = base_parameters(&cfg, "/dev/xvda");
    assert_eq!(p["SecurityGroupIds"], json!(["sg-1", "sg-2"]));
    assert_eq!(p["IamInstanceProfile"], json!({"Arn": "arn:aws:iam::123456789012:instance-profile/kasm"}));
    assert_eq!(p["BlockDeviceMappings"][0]["DeviceName"], "/dev/xvda");
    assert_eq!(p["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"], 40);
    merge_override(
        &mut p,
        json!({"IamInstanceProfile": {"Name": "other"}, "Placement": {"Tenancy": "dedicated"}}).as_object().unwrap(),
    );
    // One-of parameters are replaced whole: EC2 refuses Name and Arn together.
    assert_eq!(p["IamInstanceProfile"], json!({"Name": "other"}));
    let mut a = json!({"MetadataOptions": {"HttpTokens": "optional", "HttpEndpoint": "enabled"}});
    merge_override(
        a.as_object_mut().unwrap(),
        json!({"MetadataOptions": {"HttpTokens": "required"}}).as_object().unwrap(),
    );
    assert_eq!(a, json!({"MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}}));
}

#[tokio::test]
async fn the_request_has_token_tags_user_data_and_the_override() {
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .http_client(crate::http::aws::http_client())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .build(),
    );
    let p = AwsProvider::from_config(&config(), &env()).unwrap().with_client(ec2);
    // No network here: the root device is known already.
    p.root_device.set("/dev/sda1".into()).unwrap();
    let claim = crate::model::ClaimId("01jclaim".into());
    let spec = VmSpec {
        name: "kasm-01jclaim".into(),
        labels: OwnerLabels {
            deployment: "dep".into(),
            autoscale_config: Some("cfg".into()),
            claim: Some(claim.clone()),
        },
        claim,
        os: crate::model::OsFamily::Linux,
        startup_script: Some(SecretString::from("#!/bin/sh\necho hi\n".to_string())),
    };
    let b = p.run_request(&spec).await.unwrap();
    assert_eq!(b.get_client_token().as_deref(), Some("01jclaim"));
    assert_eq!((b.get_min_count(), b.get_max_count()), (&Some(1), &Some(1)));
    assert_eq!(b.get_user_data().as_deref(), Some("IyEvYmluL3NoCmVjaG8gaGkK"));
    assert_eq!(b.get_key_name().as_deref(), Some("kasm-key"));
    assert_eq!(b.get_ebs_optimized(), &Some(true));
    assert_eq!(b.get_iam_instance_profile().as_ref().unwrap().name(), Some("other"));
    let bdm = &b.get_block_device_mappings().as_ref().unwrap()[0];
    assert_eq!(bdm.ebs().unwrap().volume_size(), Some(100));
    let specs = b.get_tag_specifications().as_ref().unwrap();
    let kinds: Vec<&str> = specs.iter().map(|s| s.resource_type().unwrap().as_str()).collect();
    assert_eq!(kinds, ["instance", "volume"]);
    for s in specs {
        let tags: BTreeMap<&str, &str> = s.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        assert_eq!(tags["Name"], "kasm-01jclaim");
        assert_eq!(tags["team"], "vdi");
        assert_eq!(tags[OwnerLabels::DEPLOYMENT], "dep", "a custom tag replaced the ownership tag");
        assert_eq!(tags[OwnerLabels::CONFIG], "cfg");
        assert_eq!(tags[OwnerLabels::CLAIM], "01jclaim");
    }
}

#[test]
fn a_bad_override_fails_the_build_with_the_parameter_named() {
    let mut cfg = config();
    cfg.aws_config_override = Some(crate::config::JsonText(
        json!({"instance_config": {"Monitoring": {"Enabeld": true}}}).as_object().unwrap().clone(),
    ));
    let err = AwsProvider::from_config(&cfg, &env()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert!(err.to_string().contains("Monitoring"), "{err}");
}

/// A key pair and a ciphertext of `password`, made by the openssl CLI: (PKCS#8 PEM, PKCS#1 PEM, base64).
pub(crate) fn openssl_fixture(password: &str) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).to_string_lossy().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().expect("openssl CLI");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &d("k8.pem")]);
    run(&["rsa", "-in", &d("k8.pem"), "-traditional", "-out", &d("k1.pem")]);
    std::fs::write(d("pw.txt"), password).unwrap();
    run(&[
        "pkeyutl",
        "-encrypt",
        "-inkey",
        &d("k8.pem"),
        "-pkeyopt",
        "rsa_padding_mode:pkcs1",
        "-in",
        &d("pw.txt"),
        "-out",
        &d("ct.bin"),
    ]);
    let ct = std::fs::read(d("ct.bin")).unwrap();
    let k8 = std::fs::read_to_string(d("k8.pem")).unwrap();
    let k1 = std::fs::read_to_string(d("k1.pem")).unwrap();
    assert!(k8.contains("BEGIN PRIVATE KEY") && k1.contains("BEGIN RSA PRIVATE KEY"));
    (k8, k1, base64::engine::general_purpose::STANDARD.encode(ct))
}

#[test]
fn windows_passwords_decrypt_with_pkcs1_and_pkcs8_keys() {
    let pw = "Kz7%qP!w9-Lm";
    let (k8, k1, ct) = openssl_fixture(pw);
    for pem in [&k8, &k1] {
        let got = decrypt_windows_password(&ct, &SecretString::from(pem.clone())).unwrap();
        assert_eq!(got.expose_secret(), pw);
    }
    // EC2 wraps the base64 in line breaks.
    let wrapped: String =
        ct.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
    let got = decrypt_windows_password(&format!("\r\n{wrapped}\r\n"), &SecretString::from(k1.clone())).unwrap();
    assert_eq!(got.expose_secret(), pw);
}

#[test]
fn wrong_keys_and_garbage_fail_without_revealing_anything() {
    let pw = "Secr3t-Passw0rd";
    let (_, k1, ct) = openssl_fixture(pw);
    let (other, _, _) = openssl_fixture("x");
    let cases = [
        (decrypt_windows_password(&ct, &SecretString::from(other.clone())), PasswordError::Decrypt),
        (decrypt_windows_password("@@not base64@@", &SecretString::from(k1.clone())), PasswordError::NotBase64),
        (decrypt_windows_password(&ct, &SecretString::from("not a pem".to_string())), PasswordError::BadKey),
    ];
    for (got, want) in cases {
        let e = got.expect_err("must fail");
        assert_eq!(e, want);
        let text = format!("{e} {e:?}");
        assert!(!text.contains(pw) && !text.contains("PRIVATE KEY") && !text.contains(&ct[..16]), "{text}");
    }
}
