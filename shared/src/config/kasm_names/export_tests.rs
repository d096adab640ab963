//! Kasm's column names in config files: a Kasm-style export of every table validates and gives the same
//! configs as our own names, and every column of Kasm 1.19's tables is decided (vendored list, no read of
//! anything outside this crate).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;

use super::*;
use crate::config::dns::{AzureDnsConfig, DigitalOceanDnsConfig, GcpDnsConfig, OciDnsConfig, Route53DnsConfig};
use crate::config::providers::*;
use crate::config::{AutoscaleConfig, ProviderKind, Schedule, StagingConfig, parse_config, validate_text};

const EXPORT: &str = include_str!("kasm-export.yaml");
const OURS: &str = include_str!("ours.yaml");
const COLUMNS_1_19: &str = include_str!("kasm-1.19-columns.txt");

/// Names Kasm's older API (1.15) writes that 1.19's tables no longer have.
const OLDER_API_NAMES: &[(&str, &str)] = &[
    ("autoscale_configs", "nginx_cert"),
    ("autoscale_configs", "nginx_key"),
    ("openstack_vm_configs", "openstack_volume_size_gb"),
    ("vsphere_vm_configs", "vsphere_datastore"),
    ("vsphere_vm_configs", "vsphere_datastore_cluster_name"),
    ("vsphere_vm_configs", "vsphere_memoryMB"),
];

struct Table {
    name: &'static str,
    columns: &'static [KasmColumn],
    fields: BTreeSet<String>,
}

fn table<T: KasmColumns + JsonSchema>() -> Table {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    let fields = schema["properties"].as_object().expect("a struct schema").keys().cloned().collect();
    Table { name: T::KASM_TABLE, columns: T::KASM_COLUMNS, fields }
}

fn tables() -> Vec<Table> {
    vec![
        table::<AutoscaleConfig>(),
        table::<Schedule>(),
        table::<StagingConfig>(),
        table::<AwsConfig>(),
        table::<AzureConfig>(),
        table::<DigitalOceanConfig>(),
        table::<GcpConfig>(),
        table::<HarvesterConfig>(),
        table::<KubevirtConfig>(),
        table::<NutanixConfig>(),
        table::<OciConfig>(),
        table::<OpenstackConfig>(),
        table::<ProxmoxConfig>(),
        table::<VsphereConfig>(),
        table::<Route53DnsConfig>(),
        table::<AzureDnsConfig>(),
        table::<DigitalOceanDnsConfig>(),
        table::<GcpDnsConfig>(),
        table::<OciDnsConfig>(),
    ]
}

/// `table -> columns` from the vendored list.
fn columns_1_19() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in COLUMNS_1_19.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if let Some(t) = line.strip_suffix(':') {
            current = Some(t.to_string());
            out.entry(t.to_string()).or_default();
        } else {
            let t = current.clone().expect("columns follow a `table:` line");
            out.entry(t).or_default().extend(line.split_whitespace().map(str::to_string));
        }
    }
    out
}

fn lines(text: &str) -> Vec<String> {
    validate_text(text, "f.yaml").1.iter().map(ToString::to_string).collect()
}

#[test]
fn a_kasm_export_of_every_table_validates_and_gives_the_configs_our_names_give() {
    let (kasm, problems) = validate_text(EXPORT, "kasm-export.yaml");
    assert!(problems.is_empty(), "{problems:#?}");
    let (ours, problems) = validate_text(OURS, "ours.yaml");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(kasm, ours);
    let kinds: BTreeSet<ProviderKind> = kasm.vm_provider_configs.iter().map(|p| p.kind()).collect();
    assert_eq!(kinds.len(), ProviderKind::ALL.len(), "one provider config per provider");
    assert_eq!(kasm.dns_provider_configs.len(), 5);
    assert_eq!(kasm.autoscale_configs.len(), 11);
    assert_eq!(kasm.schedules.len(), 2);
    assert_eq!(kasm.staging_configs.len(), 1);
    // The ids Kasm names at run time are kept; the staging config's autoscale config resolves by id.
    let agents = kasm.autoscale("aws-agents").unwrap();
    assert_eq!(agents.autoscale_config_id.as_deref(), Some("6c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"));
    assert_eq!(kasm.staging_configs[0].autoscale_config, "aws-agents");
    assert_eq!(kasm.staging_configs[0].id(), "9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6");
    // Plain parsing takes Kasm's names the same way.
    assert_eq!(parse_config(EXPORT, "kasm-export.yaml").unwrap(), parse_config(OURS, "ours.yaml").unwrap());
}

#[test]
fn units_convert_exactly_to_ours() {
    let (set, _) = validate_text(EXPORT, "kasm-export.yaml");
    let agents = set.autoscale("aws-agents").unwrap();
    assert_eq!(agents.standby_memory_mb, 8000.0, "8000000000 bytes / 10^6");
    assert_eq!(agents.agent_memory_override_gb, 16.0, "16000000000 bytes / 10^9");
    match set.provider("proxmox-pve1").unwrap() {
        crate::config::VmProviderConfig::Proxmox(p) => assert_eq!(p.vm_memory, 8, "8589934592 bytes / 2^30"),
        other => panic!("{other:?}"),
    }
    match set.provider("oci-ashburn").unwrap() {
        crate::config::VmProviderConfig::Oci(p) => {
            assert_eq!(p.oci_flex_memory_gb, Some(16.0));
            assert_eq!(p.oci_boot_volume_gb, 100);
            assert_eq!(p.oci_baseline_ocpu_utilization, Some(50.0), "BASELINE_1_2 is half a core");
        }
        other => panic!("{other:?}"),
    }
    let s = &set.schedules[0];
    assert_eq!((s.active_start_time.as_str(), s.active_end_time.as_str()), ("08:00", "18:30"));
}

#[test]
fn every_column_of_kasm_1_19_is_decided_beside_its_config_struct() {
    let vendored = columns_1_19();
    let tables = tables();
    assert_eq!(
        vendored.keys().cloned().collect::<BTreeSet<_>>(),
        tables.iter().map(|t| t.name.to_string()).collect::<BTreeSet<_>>(),
        "the vendored list and the config structs cover the same tables"
    );
    for t in &tables {
        let cols = &vendored[t.name];
        let mut seen = BTreeSet::new();
        for c in t.columns {
            assert!(seen.insert(c.kasm), "{}.{} is listed twice", t.name, c.kasm);
            let older = OLDER_API_NAMES.contains(&(t.name, c.kasm));
            assert!(
                cols.contains(c.kasm) || older,
                "{}.{} is neither a Kasm 1.19 column nor a known older API name",
                t.name,
                c.kasm
            );
            match c.maps_to {
                MapsTo::Field { ours, .. } | MapsTo::Reference { ours, .. } => {
                    assert!(t.fields.contains(ours), "{}.{} maps to `{ours}`, which is not a field", t.name, c.kasm)
                }
                MapsTo::NoField { why, .. } => {
                    // A field added since (e.g. `rotate_servers_in_days`) must take its column: update the table.
                    assert!(
                        !t.fields.contains(c.kasm),
                        "{}.{} is marked as having no field, but the struct has one now: map it",
                        t.name,
                        c.kasm
                    );
                    assert!(!why.trim().is_empty());
                }
                MapsTo::OwnId { keep } => assert_eq!(
                    t.fields.contains(c.kasm),
                    keep,
                    "{}.{}: a kept id needs a field of its name, an id that is not kept must have none",
                    t.name,
                    c.kasm
                ),
            }
        }
        for col in cols {
            assert!(
                seen.contains(col.as_str()),
                "Kasm 1.19's {}.{col} is not decided: map it in the KasmColumns table beside the struct \
                 (a field, the config's id, a reference, or no field and why)",
                t.name
            );
        }
    }
}

#[test]
fn the_export_uses_every_column_that_has_a_place_here() {
    let doc: Value = serde_yaml_ng::from_str(EXPORT).unwrap();
    let keys_of = |list: &str, kind: Option<&str>| -> BTreeSet<String> {
        doc[list]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|e| kind.is_none_or(|k| e["provider"].as_str() == Some(k)))
            .flat_map(|e| e.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()))
            .collect()
    };
    let vendored = columns_1_19();
    let mut checks: Vec<(&str, BTreeSet<String>)> = vec![
        ("autoscale_configs", keys_of("autoscale_configs", None)),
        ("schedules", keys_of("schedules", None)),
        ("staging_configs", keys_of("staging_configs", None)),
    ];
    for kind in ProviderKind::ALL.iter().copied() {
        let names = |c: &[KasmColumn]| c.iter().map(|c| c.kasm).collect::<Vec<_>>();
        let t = tables().into_iter().find(|t| names(t.columns) == names(kind.kasm_columns())).unwrap();
        checks.push((t.name, keys_of("vm_provider_configs", Some(kind.as_str()))));
    }
    for (kind, t) in [
        ("aws", "aws_dns_configs"),
        ("azure", "azure_dns_configs"),
        ("digital_ocean", "digital_ocean_dns_configs"),
        ("gcp", "gcp_dns_configs"),
        ("oci", "oci_dns_configs"),
    ] {
        checks.push((t, keys_of("dns_provider_configs", Some(kind))));
    }
    let tables = tables();
    for (name, used) in checks {
        let t = tables.iter().find(|t| t.name == name).unwrap();
        for c in t.columns.iter().filter(|c| vendored[name].contains(c.kasm)) {
            if !matches!(c.maps_to, MapsTo::NoField { .. }) {
                assert!(used.contains(c.kasm), "kasm-export.yaml never uses {name}.{}", c.kasm);
            }
        }
    }
}

#[test]
fn kasm_columns_that_cannot_be_taken_are_reported_naming_the_column() {
    let doc = "vm_provider_configs:
  - provider: proxmox
    config_name: p
    name: p2
    max_instances: 2
    host: h:8006
    username: u@pve
    token_name: t
    token_value: env:T
    vmid_range_lower: 9000
    vmid_range_upper: 9010
    template_name: tpl
    cluster_node_name: n
    cores: 2
    memory_bytes: 8000000000
    startup_script_path: /tmp
autoscale_configs:
  - autoscale_config_name: a
    server_pool_id: pool
    zone_id: zone
    gcp_vm_config_id: 0f5e2a7c-0000-4000-8000-000000000000
    standby_memory_mb: 100
    standby_memory_bytes: 100000000
";
    assert_eq!(
        lines(doc),
        [
            "f.yaml: p2.config_name: `config_name` is Kasm's name for `name`, which is given too: give one of them",
            "f.yaml: p2.memory_bytes: 8000000000 bytes is not a whole number of GiB (a multiple of 1073741824 \
             bytes), so it does not convert exactly (`memory_bytes` is Kasm's name for `vm_memory`)",
            "f.yaml: a.gcp_vm_config_id: no gcp VM-provider config in this file has Kasm id \
             `0f5e2a7c-0000-4000-8000-000000000000`",
            "f.yaml: a.standby_memory_bytes: `standby_memory_bytes` is Kasm's name for `standby_memory_mb`, which \
             is given too: give one of them",
        ]
    );
}

#[test]
fn a_kasm_secret_column_holding_a_secret_is_refused_without_quoting_it() {
    let doc = EXPORT.replace(
        "    aws_ec2_private_key: null\n",
        "    aws_ec2_private_key: \"-----BEGIN OPENSSH PRIVATE KEY-----hunter2\"\n",
    );
    let l = lines(&doc);
    assert_eq!(l.len(), 1, "{l:#?}");
    assert!(l[0].starts_with("f.yaml: aws-us-east-1.aws_ec2_private_key: Kasm's `aws_ec2_private_key` has no place"));
    assert!(!l[0].contains("hunter2"));
    let doc = EXPORT.replace(
        "    aws_secret_access_key: secretsmanager:kasm/aws#secret_access_key\n",
        "    aws_secret_access_key: hunter2\n",
    );
    let l = lines(&doc);
    assert_eq!(l.len(), 1, "{l:#?}");
    assert!(l[0].contains("aws-us-east-1.aws_secret_access_key: not a secret reference") && !l[0].contains("hunter2"));
}

#[test]
fn readme_lists_every_kasm_1_19_column_without_a_field() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### Kasm's columns that have no field here")
        .nth(1)
        .expect("README section `### Kasm's columns that have no field here`");
    let section = section.split("\n## ").next().unwrap_or(section);
    let vendored = columns_1_19();
    for t in tables() {
        for c in t.columns.iter().filter(|c| matches!(c.maps_to, MapsTo::NoField { .. })) {
            if vendored[t.name].contains(c.kasm) {
                assert!(section.contains(&format!("`{}`", c.kasm)), "README does not list {}.{}", t.name, c.kasm);
            }
        }
    }
}
