//! The Secrets Manager resolver against moto: plain and JSON-key secrets, missing keys and secrets,
//! binary secrets, the cache, and that no error ever shows a value.

use integration_tests::moto::Moto;
use secrecy::ExposeSecret;
use shared::config::SecretRef;
use shared::secrets::aws::AwsSecrets;
use shared::secrets::{SecretError, Secrets};
use std::time::Duration;

/// Unique secret names (tests share one moto server).
fn name(what: &str) -> String {
    format!(
        "kasm-autoscale-test/{}/{}/{what}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

fn r(s: &str) -> SecretRef {
    s.parse().expect("a secret reference")
}

async fn client(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await)
}

async fn put(c: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    c.create_secret().name(name).secret_string(value).send().await.expect("create secret");
}

/// Every error text and debug form, which must never contain `value`.
fn assert_hidden(e: &SecretError, value: &str) {
    let text = format!("{e} / {e:?}");
    assert!(!text.contains(value), "an error shows the secret value: {text}");
}

#[tokio::test]
async fn resolves_plain_and_json_key_secrets() {
    let moto = Moto::start();
    let c = client(&moto).await;
    let (plain, json) = (name("plain"), name("json"));
    put(&c, &plain, "pl41n-value").await;
    put(&c, &json, r#"{"api_key":"k3y-value","api_key_secret":"s3cret-value","port":8443}"#).await;
    let s = AwsSecrets::new(c, Duration::from_secs(300));

    assert_eq!(s.resolve(&r(&format!("secretsmanager:{plain}"))).await.unwrap().expose_secret(), "pl41n-value");
    let key = |k: &str| r(&format!("secretsmanager:{json}#{k}"));
    assert_eq!(s.resolve(&key("api_key_secret")).await.unwrap().expose_secret(), "s3cret-value");
    assert_eq!(s.resolve(&key("api_key")).await.unwrap().expose_secret(), "k3y-value");
    assert_eq!(s.resolve(&key("port")).await.unwrap().expose_secret(), "8443");
    // The whole JSON when no key is given.
    assert!(s.resolve(&r(&format!("secretsmanager:{json}"))).await.unwrap().expose_secret().contains("k3y-value"));
}

#[tokio::test]
async fn missing_keys_and_secrets_are_errors_that_name_the_reference_only() {
    let moto = Moto::start();
    let c = client(&moto).await;
    let (json, plain, binary) = (name("json"), name("plain"), name("binary"));
    put(&c, &json, r#"{"password":"hunter2-VALUE"}"#).await;
    put(&c, &plain, "not-json-VALUE").await;
    c.create_secret()
        .name(&binary)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(b"b1nary-VALUE".to_vec()))
        .send()
        .await
        .expect("create binary secret");
    let s = AwsSecrets::new(c, Duration::from_secs(300));

    let missing_key = format!("secretsmanager:{json}#username");
    match s.resolve(&r(&missing_key)).await {
        Err(e @ SecretError::Unreadable { .. }) => {
            assert!(e.to_string().contains(&missing_key) && e.to_string().contains("username"), "{e}");
            assert_hidden(&e, "hunter2-VALUE");
        }
        other => panic!("missing key gave {other:?}"),
    }
    let not_json = format!("secretsmanager:{plain}#password");
    match s.resolve(&r(&not_json)).await {
        Err(e @ SecretError::Unreadable { .. }) => {
            assert!(e.to_string().contains(&not_json) && e.to_string().contains("not JSON"), "{e}");
            assert_hidden(&e, "not-json-VALUE");
        }
        other => panic!("a key of a non-JSON secret gave {other:?}"),
    }
    match s.resolve(&r(&format!("secretsmanager:{binary}"))).await {
        Err(e @ SecretError::Unreadable { .. }) => {
            assert!(e.to_string().contains("binary"), "{e}");
            assert_hidden(&e, "b1nary-VALUE");
        }
        other => panic!("a binary secret gave {other:?}"),
    }
    let gone = format!("secretsmanager:{}", name("never-created"));
    match s.resolve(&r(&gone)).await {
        Err(e @ SecretError::NotFound { .. }) => assert!(e.to_string().contains(&gone), "{e}"),
        other => panic!("a missing secret gave {other:?}"),
    }
}

#[tokio::test]
async fn values_are_cached_until_the_ttl() {
    let moto = Moto::start();
    let c = client(&moto).await;
    let id = name("rotating");
    put(&c, &id, r#"{"token":"first"}"#).await;
    let reference = r(&format!("secretsmanager:{id}#token"));
    let cached = AwsSecrets::new(c.clone(), Duration::from_secs(300));
    let uncached = AwsSecrets::new(c.clone(), Duration::ZERO);
    assert_eq!(cached.resolve(&reference).await.unwrap().expose_secret(), "first");
    assert_eq!(uncached.resolve(&reference).await.unwrap().expose_secret(), "first");

    c.put_secret_value().secret_id(&id).secret_string(r#"{"token":"second"}"#).send().await.expect("rotate");
    assert_eq!(cached.resolve(&reference).await.unwrap().expose_secret(), "first", "the cache was not used");
    assert_eq!(uncached.resolve(&reference).await.unwrap().expose_secret(), "second", "ttl 0 cached");

    // A short TTL expires: the rotated value is read.
    let short = AwsSecrets::new(c.clone(), Duration::from_millis(200));
    assert_eq!(short.resolve(&reference).await.unwrap().expose_secret(), "second");
    c.put_secret_value().secret_id(&id).secret_string(r#"{"token":"third"}"#).send().await.expect("rotate");
    assert_eq!(short.resolve(&reference).await.unwrap().expose_secret(), "second");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(short.resolve(&reference).await.unwrap().expose_secret(), "third", "the cache outlived its ttl");
}

#[tokio::test]
async fn env_and_file_references_are_resolved_locally() {
    let moto = Moto::start();
    let s = AwsSecrets::new(client(&moto).await, Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "f1le-value\n").unwrap();
    assert_eq!(s.resolve(&r(&format!("file:{}", f.display()))).await.unwrap().expose_secret(), "f1le-value");
    // PATH is set in every test process; its value is no secret.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(s.resolve(&r("env:PATH")).await.unwrap().expose_secret(), path);
    assert!(matches!(
        s.resolve(&r("env:KASM_AUTOSCALE_SURELY_UNSET_VARIABLE")).await,
        Err(SecretError::NotFound { .. })
    ));
}
