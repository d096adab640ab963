//! The OCI provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table and the
//! secrets on moto, the OCI test server reached through the config's `endpoint_url` (every request's
//! signature checked), the API private key read from Secrets Manager (see `integration_tests::lambda_world`).

use base64::Engine as _;
use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use integration_tests::oci_server::{self, OciTestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_an_oci_pool_up_and_down() {
    let api = OciTestServer::start().await;
    let dep = format!("lambda-oci-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: oci
    name: pool-vms
    oci_user_ocid: {user}
    oci_public_key_fingerprint: "{fingerprint}"
    oci_private_key: secretsmanager:{dep}/oci
    oci_region: us-phoenix-1
    oci_tenancy_ocid: {tenancy}
    oci_compartment_ocid: {compartment}
    max_instances: 3
    oci_availability_domains: ["{ad}"]
    oci_image_ocid: {image}
    oci_shape: VM.Standard.E4.Flex
    oci_flex_cpus: 2
    oci_flex_memory_gb: 8
    oci_boot_volume_gb: 50
    oci_subnet_ocid: {subnet}
    endpoint_url: {url}
    startup_script: |
{POOL_SCRIPT}"#,
        user = oci_server::USER,
        fingerprint = oci_server::FINGERPRINT,
        tenancy = oci_server::TENANCY,
        compartment = oci_server::COMPARTMENT,
        ad = oci_server::ADS[0],
        image = oci_server::IMAGE,
        subnet = oci_server::SUBNET,
        url = api.url
    );
    let live = || {
        api.instances()
            .into_iter()
            .filter(|i| !matches!(i.state.as_str(), "TERMINATING" | "TERMINATED"))
            .collect::<Vec<_>>()
    };
    let vms = || live().into_iter().map(|i| i.id).collect();
    let on_created = |claim: &shared::model::Instance| {
        let vm = live().pop().expect("the instance");
        assert_eq!(vm.tags.get("kasm-autoscale-deployment"), Some(&dep), "{vm:?}");
        let b64 = vm.launch["metadata"]["user_data"].as_str().expect("user data").to_string();
        let script = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert!(api.boot_volumes().is_empty(), "boot volumes left: {:?}", api.boot_volumes());
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![(format!("{dep}/oci"), oci_server::TEST_KEY.to_string())],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
