//! `kasm-autoscale apply` against moto through the binary, as an operator runs it: the AWS
//! configuration comes from the environment (`AWS_ENDPOINT_URL` points at moto).

use integration_tests::moto::Moto;
use shared::config::ConfigSet;
use shared::store::Store;
use shared::store::dynamodb::{DynamoDbStore, create_table};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the binary with only moto's placeholder credentials and no AWS files.
fn apply(moto: &Moto, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kasm-autoscale"))
        .current_dir(root())
        .arg("apply")
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("binary runs")
}

fn valid(path: &Path) -> ConfigSet {
    let (set, problems) = shared::config::validate_files(&[path.to_path_buf()]);
    assert!(problems.is_empty(), "{problems:?}");
    set
}

#[tokio::test]
async fn apply_shows_the_diff_and_writes_only_valid_configs_for_real() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let table =
        format!("apply-{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    create_table(&client, &table).await.expect("create table");
    let store = DynamoDbStore::new(client.clone(), &table);
    let url = format!("dynamodb://{table}");

    let file = dir.path().join("aws.yaml");
    let original = std::fs::read_to_string(root().join("events/configs/aws.yaml")).unwrap();
    std::fs::write(&file, &original).unwrap();
    let f = file.to_str().unwrap();

    // Dry run: the diff, nothing written.
    let o = apply(&moto, dir.path(), &[f, "--store", &url, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("+ autoscale_config aws-agents\n"), "{out}");
    assert!(out.contains("+ vm_provider_config aws-us-east-1\n"), "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(store.load_configs().await.unwrap(), None, "a dry run wrote configs");

    // For real.
    let o = apply(&moto, dir.path(), &[f, "--store", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("applied to {url}")), "{}", text(&o.stdout));
    assert_eq!(store.load_configs().await.unwrap(), Some(valid(&file)));

    // Again, unchanged.
    let o = apply(&moto, dir.path(), &[f, "--store", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("no changes"), "{}", text(&o.stdout));

    // A changed field.
    std::fs::write(&file, original.replace("standby_cores: 8", "standby_cores: 12")).unwrap();
    let o = apply(&moto, dir.path(), &[f, "--store", &url]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("~ autoscale_config aws-agents: standby_cores\n"), "{out}");
    assert!(out.contains("0 added, 1 changed, 0 removed"), "{out}");
    let stored = store.load_configs().await.unwrap().expect("configs");
    assert_eq!(stored.autoscale_configs[0].standby_cores, 12.0);

    // An invalid file: every problem, nothing written.
    std::fs::write(&file, original.replace("standby_cores: 8", "standby_cores: -3")).unwrap();
    let o = apply(&moto, dir.path(), &[f, "--store", &url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("aws-agents.standby_cores"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(store.load_configs().await.unwrap(), Some(stored), "an invalid apply changed the store");
}

#[tokio::test]
async fn a_missing_table_is_an_error_unless_asked_to_create_it() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let table =
        format!("apply-new-{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let url = format!("dynamodb://{table}");
    let f = root().join("events/configs/aws.yaml");
    let f = f.to_str().unwrap();

    let o = apply(&moto, dir.path(), &[f, "--store", &url]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains(&format!("no DynamoDB table {table}")), "{}", text(&o.stderr));
    // A dry run never creates it.
    let o = apply(&moto, dir.path(), &[f, "--store", &url, "--dry-run", "--create-table"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));

    let o = apply(&moto, dir.path(), &[f, "--store", &url, "--create-table"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let store = DynamoDbStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config().await), &table);
    assert!(store.load_configs().await.unwrap().is_some());
}
