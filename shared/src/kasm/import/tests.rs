use super::*;

fn fixture(name: &str) -> Json {
    let text = match name {
        "get_autoscale_configs" => include_str!("../fixtures/import/get_autoscale_configs.json"),
        "get_vm_provider_configs" => include_str!("../fixtures/import/get_vm_provider_configs.json"),
        "get_dns_provider_configs" => include_str!("../fixtures/import/get_dns_provider_configs.json"),
        "get_server_pools" => include_str!("../fixtures/import/get_server_pools.json"),
        "get_schedules" => include_str!("../fixtures/import/get_schedules.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn answers() -> KasmAnswers {
    let list = |c: &ImportCall| answer_list(c, &fixture(c.call.name())["response"]).unwrap();
    KasmAnswers {
        autoscale_configs: list(&IMPORT_CALLS[0]),
        vm_provider_configs: list(&IMPORT_CALLS[1]),
        dns_provider_configs: list(&IMPORT_CALLS[2]),
        server_pools: list(&IMPORT_CALLS[3]),
        schedules: list(&IMPORT_CALLS[4]),
    }
}

fn target() -> ImportTarget {
    ImportTarget {
        url: "https://kasm.example.com".into(),
        api_key: "key-1".into(),
        api_key_secret_env: "KASM_API_KEY_SECRET".into(),
        auth_mode: KasmAuthMode::Body,
        verify_tls: true,
    }
}

fn imported() -> Imported {
    import(&answers(), &target(), "imported.yaml").unwrap()
}

/// Every string in the fixtures' answers that is a secret Kasm gave in clear, or a mask.
const SECRETS_IN_ANSWERS: [&str; 3] = ["AKIAIMPORTFIXTURE0001", "AKIAIMPORTFIXTURE0002", "**********"];

#[test]
fn the_fixtures_import_to_a_file_validation_accepts_with_the_expected_configs() {
    let im = imported();
    assert!(im.problems.is_empty(), "{:#?}\n{}", im.problems, im.yaml);
    let (got, problems) = validate_text(&im.yaml, "imported.yaml");
    assert!(problems.is_empty());
    let (want, problems) = validate_text(include_str!("../fixtures/import/expected.yaml"), "expected.yaml");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(got, want);
    assert_eq!(got.autoscale_configs.len(), 4);
    assert_eq!(got.vm_provider_configs.len(), 7);
    assert_eq!(got.dns_provider_configs.len(), 5);
    assert_eq!(got.schedules.len(), 3);
}

#[test]
fn names_units_and_references_are_ours() {
    let (set, _) = validate_text(&imported().yaml, "imported.yaml");
    let a = set.autoscale("Docker Agents (AWS)").unwrap();
    assert_eq!(a.vm_provider_config, "AWS us-east-1", "by name, from vm_provider_config_id");
    assert_eq!(a.dns_provider_config.as_deref(), Some("route53"));
    assert_eq!((a.standby_memory_mb, a.agent_memory_override_gb), (16000.0, 16.0), "1.15's MB and GB are ours");
    let rdp = set.autoscale("windows-rdp").unwrap();
    assert_eq!(rdp.autoscale_type, crate::config::AutoscaleType::Server);
    assert_eq!(rdp.dns_provider_config.as_deref(), Some("azure-dns"));
    assert_eq!(set.autoscale("gcp-gpu").unwrap().vm_provider_config, "gcp-us-east4");
    match set.provider("vsphere-dc1").unwrap() {
        VmProviderConfig::Vsphere(v) => {
            assert_eq!(v.amount_of_guest_memory_gib, 8, "vsphere_memoryMB 8192 MiB");
            assert_eq!(v.datastore_name.as_deref(), Some("datastore1"));
        }
        other => panic!("{other:?}"),
    }
    match set.provider("oci-ashburn").unwrap() {
        VmProviderConfig::Oci(o) => assert_eq!(o.oci_baseline_ocpu_utilization, Some(100.0), "BASELINE_1_1"),
        other => panic!("{other:?}"),
    }
    let sat = &set.schedules[1];
    // Kasm's start = end (from the start until midnight) is our rule too: taken as it is.
    assert_eq!((sat.active_start_time.as_str(), sat.active_end_time.as_str()), ("09:00", "09:00"));
    let s = &set.settings;
    assert_eq!(s.deployment_id, DEPLOYMENT_ID_PLACEHOLDER);
    let k = s.kasm.as_ref().unwrap();
    assert_eq!((k.url.as_str(), k.api_key.as_str()), ("https://kasm.example.com", "key-1"));
    assert_eq!(k.api_key_secret.to_string(), "env:KASM_API_KEY_SECRET");
}

#[test]
fn every_secret_is_a_placeholder_listed_and_no_secret_is_written() {
    let im = imported();
    let vars: Vec<String> = im.secret_vars.iter().map(|v| format!("{} {}.{}", v.var, v.config, v.field)).collect();
    assert_eq!(
        vars,
        [
            "KASM_IMPORT_WINDOWS_RDP_CONNECTION_PASSWORD windows-rdp.connection_password",
            "KASM_IMPORT_AZURE_EASTUS_AZURE_CLIENT_SECRET azure-eastus.azure_client_secret",
            "KASM_IMPORT_AZURE_EASTUS_AZURE_OS_PASSWORD azure-eastus.azure_os_password",
            "KASM_IMPORT_AWS_US_EAST_1_AWS_ACCESS_KEY_ID AWS us-east-1.aws_access_key_id",
            "KASM_IMPORT_AWS_US_EAST_1_AWS_SECRET_ACCESS_KEY AWS us-east-1.aws_secret_access_key",
            "KASM_IMPORT_DO_NYC3_TOKEN do-nyc3.token",
            "KASM_IMPORT_OCI_ASHBURN_OCI_PRIVATE_KEY oci-ashburn.oci_private_key",
            "KASM_IMPORT_GCP_US_EAST4_GCP_CREDENTIALS gcp-us-east4.gcp_credentials",
            "KASM_IMPORT_VSPHERE_DC1_GUEST_VM_PASSWORD vsphere-dc1.guest_vm_password",
            "KASM_IMPORT_VSPHERE_DC1_VSPHERE_VCENTER_PASSWORD vsphere-dc1.vsphere_vcenter_password",
            "KASM_IMPORT_OPENSTACK_REGION1_APPLICATION_CREDENTIAL_SECRET openstack-region1.application_credential_secret",
            "KASM_IMPORT_AZURE_DNS_AZURE_CLIENT_SECRET azure-dns.azure_client_secret",
            "KASM_IMPORT_ROUTE53_AWS_SECRET_ACCESS_KEY route53.aws_secret_access_key",
            "KASM_IMPORT_ROUTE53_AWS_ACCESS_KEY_ID route53.aws_access_key_id",
            "KASM_IMPORT_DO_DNS_TOKEN do-dns.token",
            "KASM_IMPORT_OCI_DNS_OCI_PRIVATE_KEY oci-dns.oci_private_key",
            "KASM_IMPORT_GCP_DNS_GCP_CREDENTIALS gcp-dns.gcp_credentials",
        ]
    );
    for v in &im.secret_vars {
        assert!(im.yaml.contains(&format!(": env:{}\n", v.var)), "{} not referenced", v.var);
        assert!(im.yaml.contains(&format!("#   {}  ({}.{})\n", v.var, v.config, v.field)), "{} not listed", v.var);
    }
    for s in SECRETS_IN_ANSWERS {
        assert!(!im.yaml.contains(s), "{s} written");
        assert!(!format!("{im:?}").contains(s), "{s} in the result");
    }
}

#[test]
fn fields_without_a_place_are_listed_never_dropped_silently() {
    let im = imported();
    for expected in [
        "windows-rdp.nginx_cert: a secret Kasm masks; removed in Kasm 1.17",
        "gcp-gpu.hooks: Kasm's `hooks` has no place in kasm-autoscale",
        "Docker Agents (AWS).last_provision: runtime state Kasm keeps",
        "azure-dns.azure_region: Azure DNS zones are global",
    ] {
        assert!(im.not_imported.iter().any(|l| l.starts_with(expected)), "{expected}: {:#?}", im.not_imported);
        assert!(im.yaml.contains(&format!("#   not imported: {expected}")), "{expected} not in the file");
    }
    let fill: Vec<&str> = im.fill_in.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        fill,
        [
            "settings.deployment_id",
            "azure-dns.zone_name",
            "route53.hosted_zone_id",
            "do-dns.domain",
            "oci-dns.zone_name_or_id",
            "gcp-dns.managed_zone"
        ]
    );
    assert!(!im.notes.iter().any(|n| n.contains("schedule")), "schedules need no note: {:#?}", im.notes);
}

#[test]
fn kasm_1_19_names_and_units_are_read_too() {
    // Kasm 1.19's answers are not public: a record in its database names (with the API's provider name),
    // as the column tables read them.
    let mut a = answers();
    a.vm_provider_configs.push(serde_json::json!({
        "config_id": "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f50", "config_name": "pve", "vm_provider_name": "proxmox",
        "max_instances": 3, "host": "pve.example.com:8006", "username": "kasm@pve", "token_name": "kasm",
        "token_value": "**********", "verify_ssl": true, "vmid_range_lower": 9000, "vmid_range_upper": 9009,
        "full_clone": false, "template_name": "tpl", "cluster_node_name": "pve1", "cores": 2,
        "memory_bytes": 4294967296_u64, "installed_os_type": "linux", "startup_script_path": "/tmp",
        "startup_script": "echo {server_id}", "resource_pool_name": null
    }));
    let mut asc = a.autoscale_configs[3].clone();
    asc["autoscale_config_id"] = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f51".into();
    asc["autoscale_config_name"] = "pve-agents".into();
    asc["vm_provider_config_id"] = serde_json::Value::Null;
    asc["openstack_vm_config_id"] = serde_json::Value::Null;
    asc["proxmox_vm_config_id"] = "0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f50".into();
    asc["standby_memory_bytes"] = 2_000_000_000_u64.into();
    asc.as_object_mut().unwrap().remove("standby_memory_mb");
    a.autoscale_configs.push(asc);
    let im = import(&a, &target(), "imported.yaml").unwrap();
    assert!(im.problems.is_empty(), "{:#?}", im.problems);
    let (set, _) = validate_text(&im.yaml, "imported.yaml");
    let asc = set.autoscale("pve-agents").unwrap();
    assert_eq!((asc.vm_provider_config.as_str(), asc.standby_memory_mb), ("pve", 2000.0));
    match set.provider("pve").unwrap() {
        VmProviderConfig::Proxmox(p) => {
            assert_eq!((p.vm_cores, p.vm_memory), (2, 4));
            assert_eq!(p.token_value.to_string(), "env:KASM_IMPORT_PVE_TOKEN_VALUE");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_size_that_does_not_convert_is_listed_and_the_file_says_it_needs_work() {
    let mut a = answers();
    a.vm_provider_configs[5]["vsphere_memoryMB"] = 3000.into();
    let im = import(&a, &target(), "imported.yaml").unwrap();
    assert!(
        im.not_imported
            .iter()
            .any(|l| l.starts_with("vsphere-dc1.vsphere_memoryMB: 3000 MiB is not a whole number of GiB")),
        "{:#?}",
        im.not_imported
    );
    assert!(im.fill_in.iter().any(|l| l.starts_with("vsphere-dc1.amount_of_guest_memory_gib: missing")));
    let p: Vec<String> = im.problems.iter().map(ToString::to_string).collect();
    assert_eq!(p, ["imported.yaml: vsphere-dc1.amount_of_guest_memory_gib: is required"]);
}

#[test]
fn records_that_cannot_be_told_apart_are_errors_naming_the_call() {
    let mut a = answers();
    a.vm_provider_configs[1].as_object_mut().unwrap().remove("vm_provider_name");
    let e = import(&a, &target(), "x").unwrap_err().to_string();
    assert_eq!(
        e,
        "Kasm's answer to get_vm_provider_configs did not parse: record 1 has no vm_provider_name: its provider cannot be told"
    );
    let mut a = answers();
    a.autoscale_configs[0].as_object_mut().unwrap().remove("autoscale_config_name");
    let e = import(&a, &target(), "x").unwrap_err().to_string();
    assert!(e.contains("get_autoscale_configs") && e.contains("record 0 has no autoscale_config_name"), "{e}");
    let mut a = answers();
    a.vm_provider_configs[0]["vm_provider_name"] = "cloudstack".into();
    let im = import(&a, &target(), "x").unwrap();
    assert!(im.not_imported.iter().any(|l| l.starts_with("azure-eastus: a `cloudstack` VM-provider config")));
}

#[test]
fn answers_without_their_list_are_errors_naming_the_call() {
    let c = &IMPORT_CALLS[0];
    let e = answer_list(c, &serde_json::json!({"autoscale_config": []})).unwrap_err().to_string();
    assert_eq!(e, "Kasm's answer to get_autoscale_configs did not parse: the answer has no `autoscale_configs` list");
    let e = answer_list(c, &serde_json::json!({"autoscale_configs": [1]})).unwrap_err().to_string();
    assert!(e.ends_with("record 0 of `autoscale_configs` is not an object"), "{e}");
}

#[test]
fn kasm_errors_name_the_permission_or_the_key() {
    let auth = |call: &str, message: &str| KasmError::Auth { call: call.into(), message: message.into() };
    let e = explain(&auth("get_vm_provider_configs", "HTTP 401: Unauthorized"));
    assert!(e.contains("lacks the permission VM_PROVIDER_VIEW (\"View VM Provider configurations.\")"), "{e}");
    let e = explain(&auth("get_schedules", "HTTP 401: Unauthorized"));
    assert!(e.contains("AUTOSCALE_SCHEDULE_VIEW"), "{e}");
    let e = explain(&auth("get_autoscale_configs", "HTTP 403: Access Denied"));
    assert!(e.contains("the key or its secret is wrong") && !e.contains("permission"), "{e}");
    let e = explain(&auth("get_server_pools", "HTTP 403: Access Denied. This feature is not licensed"));
    assert!(e.contains("not licensed"), "{e}");
    let e = explain(&auth("get_server_pools", "HTTP 401: Access has expired"));
    assert!(e.contains("has expired") && !e.contains("SERVER_POOLS_VIEW"), "{e}");
    // Some versions answer 200 with the error message.
    let e = explain(&auth("get_dns_provider_configs", "Unauthorized"));
    assert!(e.contains("lacks the permission DNS_PROVIDERS_VIEW"), "{e}");
    for c in IMPORT_CALLS {
        assert!(c.call.is_read(), "{}", c.call.name());
        assert_eq!(c.call.path(), format!("/api/admin/{}", c.call.name()));
        assert_eq!(fixture(c.call.name())["path"], c.call.path());
    }
}

#[test]
fn placeholder_variables_are_upper_case_and_unique() {
    assert_eq!(secret_var("AWS us-east-1", "aws_secret_access_key"), "KASM_IMPORT_AWS_US_EAST_1_AWS_SECRET_ACCESS_KEY");
    let mut a = answers();
    // Two configs whose names differ only in punctuation.
    a.dns_provider_configs[2]["config_name"] = "do.dns".into();
    a.dns_provider_configs[2]["dns_provider_config_name"] = "do.dns".into();
    a.dns_provider_configs[0]["config_name"] = "do-dns".into();
    a.dns_provider_configs[0]["dns_provider_config_name"] = "do-dns".into();
    let im = import(&a, &target(), "x").unwrap();
    let vars: BTreeSet<&str> = im.secret_vars.iter().map(|v| v.var.as_str()).collect();
    assert_eq!(vars.len(), im.secret_vars.len(), "unique");
    assert!(vars.contains("KASM_IMPORT_DO_DNS_TOKEN") && vars.contains("KASM_IMPORT_DO_DNS_AZURE_CLIENT_SECRET"));
}

#[test]
fn duplicate_kasm_names_are_made_unique_and_references_follow_ids() {
    let mut a = answers();
    a.vm_provider_configs[1]["config_name"] = "azure-eastus".into();
    a.vm_provider_configs[1]["vm_provider_config_name"] = "azure-eastus".into();
    let im = import(&a, &target(), "x").unwrap();
    assert!(im.problems.is_empty(), "{:#?}", im.problems);
    let (set, _) = validate_text(&im.yaml, "x");
    assert_eq!(set.autoscale("Docker Agents (AWS)").unwrap().vm_provider_config, "azure-eastus-2");
    assert_eq!(set.autoscale("windows-rdp").unwrap().vm_provider_config, "azure-eastus");
    assert!(im.notes.iter().any(|n| n.starts_with("azure-eastus-2: renamed from `azure-eastus`")));
}

#[tokio::test]
async fn the_client_makes_only_read_calls_for_import() {
    use crate::config::{KasmSettings, SecretRef};
    let settings = KasmSettings {
        url: "http://127.0.0.1:9".into(),
        api_key: "key-1".into(),
        api_key_secret: SecretRef::Env("X".into()),
        auth_mode: KasmAuthMode::Body,
        verify_tls: true,
        manager_token: None,
        upstream_auth_address: None,
        agent_registration: Default::default(),
    };
    let client = super::super::KasmClient::new(&settings, secrecy::SecretString::from("s3cret")).unwrap();
    let e = client.read_call(Call::DeleteServer, serde_json::Map::new()).await.unwrap_err();
    assert_eq!(e.to_string(), "Kasm client settings are invalid: delete_server is not a read call");
}
