use super::*;
use crate::model::OsFamily;
use crate::model::Resources;
use std::collections::BTreeSet;
use std::path::Path;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/configs")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn lines(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

fn problems_of(text: &str) -> Vec<String> {
    lines(&validate_text(text, "f.yaml").1)
}

#[test]
fn every_example_validates_clean_alone_and_together() {
    let files = yaml_files(&configs_dir());
    let providers: HashSet<String> =
        files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for kind in ProviderKind::ALL.iter().copied() {
        assert!(providers.contains(kind.as_str()), "no example for {kind}");
    }
    for f in &files {
        let (set, problems) = validate_files(std::slice::from_ref(f));
        assert!(problems.is_empty(), "{}:\n{}", f.display(), lines(&problems).join("\n"));
        let stem = f.file_stem().unwrap().to_string_lossy();
        if stem != "settings" {
            assert!(!set.autoscale_configs.is_empty() && !set.vm_provider_configs.is_empty(), "{stem}");
            assert!(set.vm_provider_configs.iter().all(|p| p.kind().as_str() == stem), "{stem}");
        }
    }
    let (set, problems) = validate_files(&files);
    assert!(problems.is_empty(), "{}", lines(&problems).join("\n"));
    assert_eq!(set.settings.deployment_id, "kasm-prod");
    let kinds: HashSet<ProviderKind> = set.vm_provider_configs.iter().map(VmProviderConfig::kind).collect();
    assert_eq!(kinds.len(), ProviderKind::ALL.len());
    assert_eq!(set.dns_provider_configs.len(), 5, "one DNS example per DNS provider");
}

#[test]
fn every_invalid_example_yields_exactly_its_expected_problems() {
    let files = yaml_files(&configs_dir().join("invalid"));
    assert!(files.len() >= 5);
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut expected: Vec<String> =
            text.lines().filter_map(|l| l.strip_prefix("# expect: ")).map(|l| format!("{name}: {l}")).collect();
        assert!(!expected.is_empty(), "{name} lists no expected problems");
        let mut got = lines(&validate_text(&text, &name).1);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn a_rejected_secret_value_never_appears_in_any_message() {
    let secrets = ["Sup3rS3cretPassw0rd!", "dop_v1_0123456789abcdef", "hunter2", "8675309"];
    let text = format!(
        "autoscale_configs:\n  - {{autoscale_config_name: a, server_pool_id: p, zone_id: z, vm_provider_config: d, connection_password: '{}', connection_passphrase: 8675309, connection_private_key: [hunter2]}}\nvm_provider_configs:\n  - {{provider: digital_ocean, name: d, token: {}, max_instances: 1, region: r, image: i, droplet_size: s-1vcpu-1gb}}\n",
        secrets[0], secrets[1]
    );
    let problems = problems_of(&text);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    for p in &problems {
        assert!(p.contains("not a secret reference"), "{p}");
        for s in secrets {
            assert!(!p.contains(s), "{p} echoes {s}");
        }
    }
}

/// Every JSON-text field, as written in the examples and in the other form, parses to the same config.
#[test]
fn every_json_text_field_accepts_a_native_value_and_json_text() {
    const FIELDS: &[&str] = &[
        "aws_ec2_security_group_ids",
        "aws_ec2_custom_tags",
        "aws_config_override",
        "azure_image_reference",
        "azure_tags",
        "azure_config_override",
        "gcp_network_tags",
        "gcp_custom_labels",
        "gcp_metadata",
        "gcp_service_account",
        "gcp_guest_accelerators",
        "gcp_config_override",
        "oci_nsg_ocids",
        "oci_availability_domains",
        "oci_custom_tags",
        "oci_config_override",
        "metadata",
        "security_groups",
        "config_override",
        "connection_info",
        "configuration_override",
    ];
    let mut exercised: HashSet<&str> = HashSet::new();
    for f in yaml_files(&configs_dir()) {
        let text = std::fs::read_to_string(&f).unwrap();
        let (original, problems) = validate_text(&text, "x");
        assert!(problems.is_empty());
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        for list in ["vm_provider_configs", "autoscale_configs"] {
            let Some(items) = doc.get(list).and_then(Value::as_sequence) else { continue };
            for (i, item) in items.iter().enumerate() {
                for field in FIELDS {
                    let Some(v) = item.get(*field) else { continue };
                    // Flip the form: text -> native value, native value -> JSON text.
                    let flipped = match v {
                        Value::String(s) if *field == "configuration_override" => {
                            serde_yaml_ng::from_str::<Value>(s).unwrap()
                        }
                        Value::String(s) => serde_yaml_ng::from_str::<Value>(s).unwrap(),
                        other => Value::String(serde_json::to_string(&serde_json::to_value(other).unwrap()).unwrap()),
                    };
                    let mut doc2 = doc.clone();
                    doc2[list][i][*field] = flipped;
                    let (set, problems) = validate_text(&serde_yaml_ng::to_string(&doc2).unwrap(), "x");
                    assert!(problems.is_empty(), "{}: {field}: {:?}", f.display(), lines(&problems));
                    assert_eq!(set, original, "{}: {field}", f.display());
                    exercised.insert(field);
                }
            }
        }
    }
    let missing: Vec<&&str> = FIELDS.iter().filter(|f| !exercised.contains(**f)).collect();
    assert!(missing.is_empty(), "JSON-text fields not shown in any example: {missing:?}");
}

#[test]
fn problems_display_as_file_config_field_message() {
    let p = |config: Option<&str>, field: Option<&str>| Problem {
        file: "a.yaml".into(),
        config: config.map(Into::into),
        field: field.map(Into::into),
        message: "is wrong".into(),
    };
    assert_eq!(p(Some("c"), Some("f.g")).to_string(), "a.yaml: c.f.g: is wrong");
    assert_eq!(p(Some("c"), None).to_string(), "a.yaml: c: is wrong");
    assert_eq!(p(None, Some("k")).to_string(), "a.yaml: k: is wrong");
    assert_eq!(p(None, None).to_string(), "a.yaml: is wrong");
}

const DO_PROVIDER: &str =
    "  - {provider: digital_ocean, name: d, token: env:T, max_instances: 2, region: r, image: i, droplet_size: c-2}\n";

fn agent(name: &str, provider: &str) -> String {
    format!("  - {{autoscale_config_name: {name}, server_pool_id: p, zone_id: z, vm_provider_config: {provider}}}\n")
}

#[test]
fn configs_without_a_name_are_labelled_by_position() {
    let text = format!(
        "autoscale_configs:\n{}  - {{server_pool_id: p, zone_id: z, vm_provider_config: d}}\nvm_provider_configs:\n{DO_PROVIDER}",
        agent("a", "d")
    );
    assert_eq!(problems_of(&text), ["f.yaml: autoscale_configs[1].autoscale_config_name: is required"]);
}

#[test]
fn one_bad_field_hides_neither_the_next_field_nor_other_configs() {
    let text = format!(
        "autoscale_configs:\n  - {{autoscale_config_name: a, server_pool_id: 1, zone_id: [z], vm_provider_config: d, standby_cores: x}}\n{}vm_provider_configs:\n{DO_PROVIDER}",
        agent("b", "nope")
    );
    assert_eq!(
        problems_of(&text),
        [
            "f.yaml: a.server_pool_id: invalid type: integer `1`, expected a string",
            "f.yaml: a.zone_id: invalid type: sequence, expected a string",
            "f.yaml: a.standby_cores: invalid type: string \"x\", expected a number",
            "f.yaml: b.vm_provider_config: no VM-provider config named `nope`",
        ]
    );
}

#[test]
fn a_broken_config_is_reported_once_not_again_by_its_references() {
    let text = format!(
        "autoscale_configs:\n{}vm_provider_configs:\n  - {{provider: digital_ocean, name: d, token: env:T, max_instances: -1, region: r, image: i, droplet_size: c-2}}\n",
        agent("a", "d")
    );
    assert_eq!(
        problems_of(&text),
        ["f.yaml: d.max_instances: invalid value: integer `-1`, expected a whole number ≥ 0"]
    );
}

#[test]
fn duplicates_and_references_are_checked_across_files() {
    let a =
        ("one.yaml".to_string(), format!("autoscale_configs:\n{}vm_provider_configs:\n{DO_PROVIDER}", agent("a", "d")));
    let b = (
        "two.yaml".to_string(),
        format!(
            "autoscale_configs:\n{}vm_provider_configs:\n{DO_PROVIDER}schedules:\n  - {{autoscale_config: a, days_of_the_week: [1], active_start_time: '08:00', active_end_time: '09:00'}}\n",
            agent("a", "d")
        ),
    );
    let (set, problems) = validate_sources(&[a.clone(), b]);
    assert_eq!(
        lines(&problems),
        [
            "two.yaml: a.autoscale_config_name: duplicate name (first defined in one.yaml)",
            "two.yaml: d.name: duplicate name (first defined in one.yaml)",
        ]
    );
    assert_eq!(set.schedules.len(), 1);
    // The schedule in one file may refer to the autoscale config in another.
    let c = ("three.yaml".to_string(), "schedules:\n  - {autoscale_config: a, days_of_the_week: [sun], active_start_time: '08:00', active_end_time: '24:00'}\n".to_string());
    assert!(validate_sources(&[a, c]).1.is_empty());
}

#[test]
fn settings_are_checked_and_may_be_given_once() {
    let s = "settings: {deployment_id: 'bad id', provision_timeout: 10, agent_missing_after: 600, agent_dead_after: 60, provisioning_workers: 0, evaluation_interval: 0, kasm: {url: 'kasm.example.com', api_key: ' ', api_key_secret: 'env:K'}}\n";
    assert_eq!(
        lines(&validate_text(s, "s.yaml").1),
        [
            "s.yaml: settings.deployment_id: must be 1-63 letters, digits, `-` or `_` (it is written as a tag/label on every VM)",
            "s.yaml: settings.provision_timeout: must be between 60 and 604800 seconds",
            "s.yaml: settings.agent_dead_after: must not be shorter than agent_missing_after (600 s)",
            "s.yaml: settings.provisioning_workers: must be between 1 and 256",
            "s.yaml: settings.evaluation_interval: must be between 1 and 86400 seconds",
            "s.yaml: settings.kasm.url: must be an http(s) URL, e.g. https://kasm.example.com",
            "s.yaml: settings.kasm.api_key: must not be empty",
        ]
    );
    let ok = "settings: {deployment_id: x}\n".to_string();
    let (_, problems) = validate_sources(&[("a.yaml".into(), ok.clone()), ("b.yaml".into(), ok)]);
    assert_eq!(lines(&problems), ["b.yaml: settings: defined in more than one file (a.yaml, b.yaml)"]);
}

#[test]
fn file_level_problems_have_no_config() {
    assert_eq!(problems_of(""), ["f.yaml: the file holds no configs"]);
    assert_eq!(
        problems_of("- a\n"),
        [
            "f.yaml: expected a mapping with any of: settings, autoscale_configs, vm_provider_configs, dns_provider_configs, schedules, staging_configs"
        ]
    );
    assert_eq!(
        problems_of("autoscale_config: []\n"),
        ["f.yaml: autoscale_config: unknown top-level key (did you mean `autoscale_configs`?)"]
    );
    assert_eq!(problems_of("schedules: {a: 1}\n"), ["f.yaml: schedules: expected a list of configs"]);
    assert_eq!(
        problems_of("vm_provider_configs: [{name: x}]\n"),
        [
            "f.yaml: x.provider: is required (one of: aws, azure, digital_ocean, gcp, harvester, oci, nutanix, proxmox, vsphere, openstack, kubevirt)"
        ]
    );
    assert_eq!(
        problems_of("dns_provider_configs: [{provider: nutanix, name: x}]\n"),
        ["f.yaml: x.provider: unknown provider `nutanix` (one of: aws, azure, digital_ocean, gcp, oci)"]
    );
    let (_, p) = validate_files(&[PathBuf::from("/nonexistent/kasm.yaml")]);
    assert_eq!(p.len(), 1);
    assert!(p[0].to_string().starts_with("/nonexistent/kasm.yaml: failed to read: "), "{}", p[0]);
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let text = "vm_provider_configs:\n  - &base {provider: digital_ocean, name: d1, token: env:T, max_instances: 2, region: r, image: i, droplet_size: c-2}\n  - {<<: *base, name: d2}\n";
    let (set, problems) = validate_text(text, "f.yaml");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(set.vm_provider_configs.len(), 2);
}

#[test]
fn label_derived_aliases_are_accepted() {
    let text = "vm_provider_configs:\n  - {provider: digital_ocean, name: d, token: env:T, max_droplets: 3, region: r, image: i, droplet_size: c-2}\n  - {provider: aws, name: a, aws_region: r, aws_ec2_ami_id: ami-1, aws_ec2_instance_type: t3.micro, aws_max_ec2_nodes: 4, aws_ec2_ebs_volume_size_gb: 8, aws_ec2_ebs_volume_type: gp3, ssh_keys: k}\n";
    let (set, problems) = validate_text(text, "f.yaml");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(set.provider("d").unwrap().max_instances(), 3);
    assert_eq!(set.provider("a").unwrap().max_instances(), 4);
}

#[test]
fn validate_set_checks_typed_configs_too() {
    let text = format!("autoscale_configs:\n{}vm_provider_configs:\n{DO_PROVIDER}", agent("a", "d"));
    let (mut set, problems) = validate_text(&text, "f.yaml");
    assert!(problems.is_empty());
    assert!(validate_set(&set, "store").is_empty());
    set.autoscale_configs[0].vm_provider_config = "gone".into();
    set.autoscale_configs[0].standby_cores = f64::NAN;
    assert_eq!(
        lines(&validate_set(&set, "store")),
        [
            "store: a.standby_cores: must be a number ≥ 0",
            "store: a.vm_provider_config: no VM-provider config named `gone`"
        ]
    );
}

#[test]
fn providers_state_their_size_and_os() {
    let (set, problems) = validate_files(&yaml_files(&configs_dir()));
    assert!(problems.is_empty());
    let size = |n: &str| set.provider(n).unwrap().common().vm_size();
    let os = |n: &str| set.provider(n).unwrap().common().os();
    assert_eq!(size("proxmox-pve1"), Some(Resources::new(4.0, 8192.0, 0.0)));
    assert_eq!(size("vsphere-dc1"), Some(Resources::new(4.0, 8192.0, 0.0)));
    assert_eq!(size("nutanix-pc"), Some(Resources::new(4.0, 16384.0, 0.0)));
    assert_eq!(size("kubevirt-gke"), Some(Resources::new(4.0, 4096.0, 0.0)));
    assert_eq!(size("harvester-local"), Some(Resources::new(4.0, 8192.0, 0.0)));
    // 2 OCPUs of an x86 Flex shape are 4 vCPUs.
    assert_eq!(size("oci-ashburn"), Some(Resources::new(4.0, 16384.0, 0.0)));
    assert_eq!(size("aws-us-east-1"), Some(Resources::new(4.0, 16384.0, 0.0)));
    assert_eq!(size("azure-eastus"), Some(Resources::new(4.0, 16384.0, 0.0)));
    assert_eq!(size("do-nyc3"), Some(Resources::new(4.0, 8192.0, 0.0)));
    // n1-standard-8 plus one T4 from the guest accelerators.
    assert_eq!(size("gcp-us-east4"), Some(Resources::new(8.0, 30720.0, 1.0)));
    assert_eq!(size("openstack-region1"), None);
    assert_eq!(os("azure-eastus"), OsFamily::Windows);
    assert_eq!(os("proxmox-pve1"), OsFamily::Linux);
    assert_eq!(os("gcp-us-east4"), OsFamily::Linux);
}

#[test]
fn the_schema_describes_every_field() {
    let schema = schema();
    let mut undescribed = Vec::new();
    let mut objects = vec![("ConfigFile".to_string(), &schema)];
    if let Some(defs) = schema.get("$defs").and_then(serde_json::Value::as_object) {
        objects.extend(defs.iter().map(|(k, v)| (k.clone(), v)));
    }
    let mut seen_variants = 0;
    while let Some((name, s)) = objects.pop() {
        for key in ["oneOf", "anyOf", "allOf"] {
            for (i, sub) in s.get(key).and_then(serde_json::Value::as_array).into_iter().flatten().enumerate() {
                seen_variants += 1;
                objects.push((format!("{name}/{key}[{i}]"), sub));
            }
        }
        for (field, prop) in s.get("properties").and_then(serde_json::Value::as_object).into_iter().flatten() {
            // The `provider` tag of the enums is described by the variant itself.
            if field != "provider" && prop.get("description").is_none() {
                undescribed.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(seen_variants >= 16, "the provider enums' variants were not walked");
    assert!(undescribed.is_empty(), "fields without a description: {undescribed:?}");
    let aws = serde_json::to_string(&schema).unwrap();
    assert!(aws.contains("aws_ec2_security_group_ids") && aws.contains("oci_boot_volume_vpus_per_gb"));
}

#[test]
fn plain_parsing_agrees_with_validation_and_configs_round_trip() {
    for f in yaml_files(&configs_dir()) {
        let text = std::fs::read_to_string(&f).unwrap();
        let (validated, problems) = validate_text(&text, "x");
        assert!(problems.is_empty());
        let mut parsed = ConfigSet::default();
        parsed.merge(super::super::parse_config(&text, "x").unwrap());
        assert_eq!(parsed, validated, "{}", f.display());
        // What the store keeps (serialized) reads back the same, secrets still as references.
        let yaml = serde_yaml_ng::to_string(&validated).unwrap();
        let back: ConfigSet = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back, validated, "{}", f.display());
    }
}

#[test]
fn load_files_fails_with_every_problem() {
    let dir = configs_dir().join("invalid");
    let err = super::super::load_files(&[dir.join("references.yaml")]).unwrap_err();
    let super::super::ConfigError::Invalid { problems } = &err else { panic!("{err}") };
    assert_eq!(problems.len(), 11, "{err}");
    assert!(err.to_string().starts_with("11 problem(s) in the configs:\n"));
    assert!(super::super::load_files(&[configs_dir().join("proxmox.yaml")]).is_ok());
}

#[test]
fn schedule_times_and_timezones() {
    let sched = |start: &str, end: &str, tz: &str| {
        let text = format!(
            "schedules:\n  - {{autoscale_config: a, days_of_the_week: [7], active_start_time: '{start}', active_end_time: '{end}', timezone: '{tz}'}}\nautoscale_configs:\n{}vm_provider_configs:\n{DO_PROVIDER}",
            agent("a", "d")
        );
        problems_of(&text)
    };
    assert!(sched("22:00", "06:00", "Asia/Tokyo").is_empty(), "a window may span midnight");
    assert!(sched("00:00", "24:00", "UTC").is_empty());
    // Kasm's times carry seconds (ignored); start = end is Kasm's "from the start until midnight".
    assert!(sched("08:00:00", "17:59:59", "UTC").is_empty());
    assert!(sched("09:00", "09:00", "UTC").is_empty());
    assert!(sched("00:00:00", "24:00:00", "UTC").is_empty());
    const START: &str = "f.yaml: schedules[0].active_start_time: must be a time HH:MM or HH:MM:SS (00:00 to 23:59)";
    const END: &str = "f.yaml: schedules[0].active_end_time: must be a time HH:MM or HH:MM:SS (00:00 to 23:59, or 24:00 for the end of the day)";
    assert_eq!(sched("24:00", "7:00", "UTC"), [START, END]);
    for (start, end) in
        [("8:00", "24:01"), ("08:00:60", "24:00:01"), ("08:00:00:00", "18"), ("08:00 ", "18:00:0"), ("", "1:00:00")]
    {
        assert_eq!(sched(start, end, "UTC"), [START, END], "{start:?} {end:?}");
    }
    assert_eq!(
        sched("08:00", "09:60", "Mars/Olympus_Mons_Base"),
        [
            END,
            "f.yaml: schedules[0].timezone: `Mars/Olympus_Mons_Base` is not an IANA timezone name (e.g. UTC, Europe/Berlin, America/New_York)",
        ]
    );
    assert_eq!(
        sched("08:00", "09:00", "america/new_york"),
        [
            "f.yaml: schedules[0].timezone: `america/new_york` is not an IANA timezone name (did you mean `America/New_York`?)"
        ]
    );
}

#[test]
fn schedule_days_are_names_or_kasm_iso_numbers() {
    let days = |list: &str| {
        let text = format!(
            "schedules:\n  - {{autoscale_config: a, days_of_the_week: {list}, active_start_time: '08:00', active_end_time: '09:00'}}\nautoscale_configs:\n{}vm_provider_configs:\n{DO_PROVIDER}",
            agent("a", "d")
        );
        let (set, problems) = validate_text(&text, "f.yaml");
        (
            set.schedules.first().map(|s| s.days_of_the_week.iter().map(|d| d.iso()).collect::<Vec<_>>()),
            lines(&problems),
        )
    };
    // Kasm stores ISO weekday numbers (1 = Monday .. 7 = Sunday); numbers, numeric strings and names all work.
    assert_eq!(days("[1, 2, 3, 4, 5, 6, 7]"), (Some(vec![1, 2, 3, 4, 5, 6, 7]), vec![]));
    assert_eq!(days("['1', '7', sat, Friday]"), (Some(vec![1, 7, 6, 5]), vec![]));
    assert_eq!(days("[7, sunday]").1, ["f.yaml: schedules[0].days_of_the_week: sunday is listed twice"]);
    for (list, at, bad) in [
        ("[0]", 0, "integer `0`"),
        ("[1, 8]", 1, "integer `8`"),
        ("[1, '0']", 1, "string \"0\""),
        ("[-1]", 0, "integer `-1`"),
        ("[mon, someday]", 1, "string \"someday\""),
        ("[1.5]", 0, "floating point `1.5`"),
    ] {
        let (_, problems) = days(list);
        assert_eq!(problems.len(), 1, "{list}: {problems:?}");
        let want = format!("f.yaml: schedules[0].days_of_the_week[{at}]: invalid ");
        assert!(problems[0].starts_with(&want) && problems[0].contains(bad), "{list}: {problems:?}");
    }
}

#[test]
fn unquoted_schedule_times_read_as_text() {
    // YAML 1.1 would read 17:30:00 as a base-60 number; our YAML parser keeps it text. Kasm's
    // `HH:MM:SS` is then written `HH:MM` (seconds are ignored, by Kasm as by us).
    let text = format!(
        "schedules:\n  - {{autoscale_config: a, days_of_the_week: [1], active_start_time: 08:00, active_end_time: 17:30:00}}\nautoscale_configs:\n{}vm_provider_configs:\n{DO_PROVIDER}",
        agent("a", "d")
    );
    let (set, problems) = validate_text(&text, "f.yaml");
    assert!(problems.is_empty(), "{problems:?}");
    let s = &set.schedules[0];
    assert_eq!((s.active_start_time.as_str(), s.active_end_time.as_str()), ("08:00", "17:30"));
    assert_eq!((s.start_minute(), s.end_minute()), (Some(8 * 60), Some(17 * 60 + 30)));
}

/// Issue 21 point 6: every problem of `settings.kasm` at once, not one per run.
#[test]
fn every_problem_of_settings_kasm_is_reported_at_once() {
    let lines = problems_of(
        "settings:\n  kasm:\n    url: ftp://kasm\n    api_key: ''\n    auth_mode: carrier-pigeon\n    verify_tls: maybe\n    colour: blue\n",
    );
    for needle in [
        "settings.kasm.auth_mode",
        "settings.kasm.verify_tls",
        "settings.kasm.colour",
        "settings.kasm.api_key_secret",
        "settings.kasm.url",
        "settings.kasm.api_key:",
    ] {
        assert!(lines.iter().any(|l| l.contains(needle)), "{needle} missing in {lines:#?}");
    }
}

/// An untagged enum's error names the field and the accepted forms, not serde's enum name.
#[test]
fn an_untagged_enum_error_names_the_field_and_the_forms() {
    let text = std::fs::read_to_string(configs_dir().join("azure.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut doc = doc;
    let vm = &mut doc["vm_provider_configs"][0];
    let image_key = ["azure_image_reference", "image_reference"]
        .into_iter()
        .find(|k| vm.get(*k).is_some())
        .expect("the example sets an image reference");
    vm[image_key] = serde_yaml_ng::from_str("{publisher: canonical, offer: ubuntu}").unwrap();
    let lines = problems_of(&serde_yaml_ng::to_string(&doc).unwrap());
    let line = lines.iter().find(|l| l.contains(image_key)).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(line.contains("{publisher, offer, sku, version}") && line.contains("{id}"), "{line}");
    assert!(!line.contains("untagged enum"), "{line}");
}

/// Control characters from the input (an ANSI sequence that would paint a forged `OK`) are escaped.
#[test]
fn control_characters_in_echoed_input_are_escaped() {
    let lines = problems_of("\"sett\\e[32mOK\\e[0m\\rings\": 1\nsettings: {}\n");
    assert!(lines.iter().all(|l| !l.contains('\u{1b}') && !l.contains('\r')), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("\\u{1b}[32mOK")), "{lines:?}");
}

#[test]
fn predictive_scaling_is_off_on_or_forecast_only_and_a_bad_value_names_the_field() {
    for (value, want) in [
        ("off", crate::config::PredictiveScaling::Off),
        ("on", crate::config::PredictiveScaling::On),
        ("forecast_only", crate::config::PredictiveScaling::ForecastOnly),
    ] {
        let text = format!(
            "autoscale_configs:\n  - {{autoscale_config_name: a, server_pool_id: p, zone_id: z, vm_provider_config: d, predictive_scaling: {value}}}\nvm_provider_configs:\n{DO_PROVIDER}"
        );
        let (set, problems) = validate_text(&text, "f.yaml");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(set.autoscale_configs[0].predictive_scaling, want);
    }
    let text = format!(
        "autoscale_configs:\n  - {{autoscale_config_name: a, server_pool_id: p, zone_id: z, vm_provider_config: d, predictive_scaling: yes}}\nvm_provider_configs:\n{DO_PROVIDER}"
    );
    let problems = problems_of(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("f.yaml: a.predictive_scaling: "), "{problems:?}");
    assert!(problems[0].contains("forecast_only"), "{problems:?}");
}

/// The schema of `value` under `s`: `$ref`s followed, `anyOf [X, null]` unwrapped, and of the
/// variants of an enum the one `value` is (the `provider` tag, else the one with all its keys).
fn schema_of<'a>(
    s: &'a serde_json::Value,
    defs: &'a serde_json::Value,
    value: &serde_json::Value,
) -> &'a serde_json::Value {
    if let Some(name) = s.get("$ref").and_then(serde_json::Value::as_str) {
        return schema_of(&defs[name.trim_start_matches("#/$defs/")], defs, value);
    }
    for key in ["anyOf", "oneOf"] {
        let Some(variants) = s.get(key).and_then(serde_json::Value::as_array) else { continue };
        let fits = |v: &&'a serde_json::Value| {
            let v = schema_of(v, defs, value);
            match (v.get("properties").and_then(serde_json::Value::as_object), value.as_object()) {
                (Some(props), Some(obj)) => match (props.get("provider"), obj.get("provider")) {
                    (Some(tag), Some(given)) => tag.get("const") == Some(given),
                    _ => obj.keys().all(|k| props.contains_key(k)),
                },
                _ => v.get("type").and_then(serde_json::Value::as_str) != Some("null"),
            }
        };
        if let Some(v) = variants.iter().find(fits) {
            return schema_of(v, defs, value);
        }
    }
    s
}

/// Every object of `value` that has named fields, as (JSON pointer, its schema).
fn objects_of<'a>(
    value: &serde_json::Value,
    s: &'a serde_json::Value,
    defs: &'a serde_json::Value,
    at: String,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    let s = schema_of(s, defs, value);
    match value {
        serde_json::Value::Object(obj) => {
            let Some(props) = s.get("properties").and_then(serde_json::Value::as_object) else { return };
            out.push((at.clone(), s));
            for (k, v) in obj {
                if let Some(p) = props.get(k) {
                    objects_of(v, p, defs, format!("{at}/{k}"), out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    objects_of(v, item, defs, format!("{at}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

/// Whether the field schema `s` takes a list.
fn takes_a_list(s: &serde_json::Value, defs: &serde_json::Value) -> bool {
    if let Some(name) = s.get("$ref").and_then(serde_json::Value::as_str) {
        return takes_a_list(&defs[name.trim_start_matches("#/$defs/")], defs);
    }
    let typed = match s.get("type") {
        Some(serde_json::Value::String(t)) => t == "array",
        Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "array"),
        _ => false,
    };
    typed
        || ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| s.get(*k).and_then(serde_json::Value::as_array))
            .flatten()
            .any(|v| takes_a_list(v, defs))
}

/// Issue 21: every field of every object the examples use (all providers, DNS, schedules, staging,
/// settings), set to a value of the wrong type, is reported with the field's name — never serde's
/// type or enum name alone. Fields that take any value are listed and must stay those.
#[test]
fn a_wrong_type_in_any_field_is_reported_by_the_fields_name() {
    let schema = schema();
    let defs = &schema["$defs"];
    let mut checked = 0;
    let mut unnamed = Vec::new();
    let mut take_anything = BTreeSet::new();
    let mut seen_fields = BTreeSet::new();
    for f in yaml_files(&configs_dir()) {
        let doc: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let mut objects = Vec::new();
        objects_of(&doc, &schema, defs, String::new(), &mut objects);
        for (at, s) in objects {
            for (field, prop) in s["properties"].as_object().unwrap() {
                if field == "provider" {
                    continue; // the enum's tag: a wrong one is "unknown provider", tested elsewhere
                }
                // A float is no list, map, string, integer or bool; a list of lists of bools is
                // none of the scalars or maps any field takes.
                let wrong =
                    if takes_a_list(prop, defs) { serde_json::json!(12.5) } else { serde_json::json!([[true]]) };
                let mut d = doc.clone();
                d.pointer_mut(&at).unwrap().as_object_mut().unwrap().insert(field.clone(), wrong);
                let problems = validate_text(&serde_json::to_string(&d).unwrap(), "f.yaml").1;
                checked += 1;
                seen_fields.insert(field.clone());
                let where_ = format!("{}: {at}/{field}", f.file_name().unwrap().to_string_lossy());
                if problems.is_empty() {
                    take_anything.insert(field.clone());
                    continue;
                }
                let names_it = problems.iter().any(|p| {
                    let in_path =
                        p.field.as_deref().is_some_and(|path| path.split(['.', '[', ']']).any(|seg| seg == field));
                    in_path || p.config.as_deref() == Some(field) || p.message.contains(&format!("`{field}`"))
                });
                if !names_it {
                    unnamed.push(format!("{where_}: {}", lines(&problems).join(" | ")));
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} fields were tried: the walk missed the examples' objects");
    assert!(unnamed.is_empty(), "{} type errors do not name their field:\n{}", unnamed.len(), unnamed.join("\n"));
    assert!(take_anything.is_empty(), "fields that took a value of the wrong type: {take_anything:?}");
    for must in ["aws_ec2_security_group_ids", "azure_image_reference", "gcp_metadata", "days_of_the_week", "kasm"] {
        assert!(seen_fields.contains(must), "{must} was not tried");
    }
}
