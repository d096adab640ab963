//! The vSphere provider driven by the real Lambda functions (PROVIDER-CHECKLIST point 9): the table and
//! the secrets on moto, the vCenter test server reached through the config's `endpoint_url`, the
//! vCenter and guest passwords read from Secrets Manager (see `integration_tests::lambda_world`).

use integration_tests::lambda_world::{AgentPool, POOL_MANAGER_TOKEN, POOL_SCRIPT, agent_pool_loop};
use integration_tests::vsphere_server::{self, TEMPLATE, VsphereTestServer};
use shared::providers::vsphere::labels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_functions_scale_a_vsphere_pool_up_and_down() {
    let api = VsphereTestServer::start().await;
    let free = api.free_bytes();
    let dep = format!("lambda-vsphere-{}", std::process::id());
    let provider_yaml = format!(
        r#"  - provider: vsphere
    name: pool-vms
    max_instances: 3
    vsphere_vcenter_address: vcenter.example.test
    vsphere_vcenter_username: {user}
    vsphere_vcenter_password: secretsmanager:{dep}/vcenter
    vm_template_name: {template}
    datacenter_name: DC1
    vm_folder: Kasm/Autoscale
    guest_vm_username: {guest}
    guest_vm_password: secretsmanager:{dep}/guest
    number_of_guest_cpus: 4
    amount_of_guest_memory_gib: 8
    os_family: linux
    endpoint_url: {url}
    startup_script: |
{POOL_SCRIPT}"#,
        user = vsphere_server::USERNAME,
        template = TEMPLATE.0,
        guest = vsphere_server::GUEST_USER,
        url = api.url
    );
    let vms = || api.vms().iter().map(|v| v.id.clone()).collect();
    let on_created = |claim: &shared::model::Instance| {
        let vm = api.vms().pop().expect("the VM");
        assert_eq!(vm.power_state, "POWERED_ON");
        assert_eq!((vm.cpus, vm.memory_mib), (4, 8192));
        let owned = labels::labels(&vm.data_sets[0].2);
        assert_eq!(owned.get("kasm-autoscale-deployment"), Some(&dep), "{vm:?}");
        assert_eq!(vm.processes.len(), 1, "the script ran once");
        let script = &vm.processes[0].2;
        assert!(script.contains(&format!("-i {}", claim.kasm_server_id)), "{script}");
        assert!(script.contains(&format!("-M {POOL_MANAGER_TOKEN}")), "the manager token from Secrets Manager");
        assert!(vm.files.is_empty(), "the script file is removed from the guest");
    };
    let on_deleted = |_: &shared::model::Instance| {
        assert_eq!(api.free_bytes(), free, "the clone's disk is gone");
        assert!(api.vm(TEMPLATE.1).is_some(), "the template is never touched");
    };
    agent_pool_loop(AgentPool {
        dep: &dep,
        provider_yaml: &provider_yaml,
        secrets: vec![
            (format!("{dep}/vcenter"), vsphere_server::PASSWORD.to_string()),
            (format!("{dep}/guest"), vsphere_server::GUEST_PASSWORD.to_string()),
        ],
        vms: &vms,
        on_created: &on_created,
        on_deleted: &on_deleted,
    })
    .await;
}
