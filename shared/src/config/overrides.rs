//! Config overrides: which keys each provider can honour. An override key the provider would ignore is
//! rejected, never silently dropped (Kasm users lost Azure overrides that way). Each function returns
//! `(field path, message)` pairs; `field` is the override field's name.

use serde_json::{Map, Value};

use super::validate::did_you_mean;

type Found = Vec<(String, String)>;

/// EC2 RunInstances request parameters (API reference) accepted as `instance_config` keys: the ones the
/// AWS provider's mapper applies, plus the managed ones (named so the error says why they are refused).
/// Left out on purpose, so they are rejected: `ElasticGpuSpecification` and `ElasticInferenceAccelerators`
/// (retired services) and `Operator` (reserved for AWS-managed services).
pub const AWS_RUN_INSTANCES_PARAMETERS: &[&str] = &[
    "AdditionalInfo",
    "BlockDeviceMappings",
    "CapacityReservationSpecification",
    "ClientToken",
    "CpuOptions",
    "CreditSpecification",
    "DisableApiStop",
    "DisableApiTermination",
    "DryRun",
    "EbsOptimized",
    "EnablePrimaryIpv6",
    "EnclaveOptions",
    "HibernationOptions",
    "IamInstanceProfile",
    "ImageId",
    "InstanceInitiatedShutdownBehavior",
    "InstanceMarketOptions",
    "InstanceType",
    "Ipv6AddressCount",
    "Ipv6Addresses",
    "KernelId",
    "KeyName",
    "LaunchTemplate",
    "LicenseSpecifications",
    "MaintenanceOptions",
    "MaxCount",
    "MetadataOptions",
    "MinCount",
    "Monitoring",
    "NetworkInterfaces",
    "NetworkPerformanceOptions",
    "Placement",
    "PrivateDnsNameOptions",
    "PrivateIpAddress",
    "RamdiskId",
    "SecurityGroupIds",
    "SecurityGroups",
    "SubnetId",
    "TagSpecifications",
    "UserData",
];

/// RunInstances parameters EC2 has but kasm-autoscale does not apply (so they are refused, not dropped).
pub const AWS_UNSUPPORTED: &[&str] = &["ElasticGpuSpecification", "ElasticInferenceAccelerators", "Operator"];

/// RunInstances parameters kasm-autoscale sets itself and an override must not replace, with why.
pub const AWS_MANAGED: &[(&str, &str)] = &[
    ("ClientToken", "it is the claim's idempotency token"),
    ("MinCount", "each claim creates exactly one instance"),
    ("MaxCount", "each claim creates exactly one instance"),
    ("DryRun", "a dry run creates nothing"),
    ("UserData", "it is rendered from startup_script"),
    ("TagSpecifications", "the ownership tags must stay; use aws_ec2_custom_tags"),
];

/// AWS: `{"instance_config": {<RunInstances parameter>: ...}}`.
pub fn aws(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (k, v) in o {
        if k != "instance_config" {
            f.push((
                format!("{field}.{k}"),
                format!(
                    "unknown block{} (only `instance_config` is applied)",
                    did_you_mean(k, ["instance_config"].into_iter())
                ),
            ));
            continue;
        }
        let Some(ic) = v.as_object() else {
            f.push((format!("{field}.instance_config"), "must be an object of RunInstances parameters".into()));
            continue;
        };
        for (key, value) in ic {
            let path = format!("{field}.instance_config.{key}");
            if let Some((_, why)) = AWS_MANAGED.iter().find(|(m, _)| m == key) {
                f.push((path, format!("cannot be overridden: {why}")));
            } else if AWS_UNSUPPORTED.contains(&key.as_str()) {
                f.push((path, "is an EC2 RunInstances parameter but not supported by kasm-autoscale".into()));
            } else if !AWS_RUN_INSTANCES_PARAMETERS.contains(&key.as_str()) {
                let hint = did_you_mean(key, AWS_RUN_INSTANCES_PARAMETERS.iter().copied());
                f.push((path, format!("not an EC2 RunInstances parameter{hint}")));
            } else if let Err(why) = crate::providers::aws::check_run_instances_parameter(key, value) {
                // The provider's own mapper decides, so what validates is exactly what is applied.
                f.push((path, why));
            }
        }
    }
    f
}

/// Top-level keys of the VM JSON Kasm emits for Azure (snake_case, as the Azure SDK names them), with the
/// known keys below the profiles (`None` = anything below is passed through).
const AZURE_KEYS: &[(&str, Option<&[&str]>)] = &[
    ("location", None),
    ("tags", None),
    ("plan", None),
    ("identity", None),
    ("zones", None),
    ("extended_location", None),
    ("hardware_profile", Some(&["vm_size", "vm_size_properties"])),
    ("scheduled_events_profile", None),
    (
        "storage_profile",
        Some(&["image_reference", "os_disk", "data_disks", "disk_controller_type", "align_regional_disks_to_vm_zone"]),
    ),
    ("additional_capabilities", None),
    (
        "os_profile",
        Some(&[
            "computer_name",
            "admin_username",
            "admin_password",
            "custom_data",
            "windows_configuration",
            "linux_configuration",
            "secrets",
            "allow_extension_operations",
            "require_guest_provision_signal",
        ]),
    ),
    ("network_profile", Some(&["network_interfaces", "network_api_version", "network_interface_configurations"])),
    (
        "security_profile",
        Some(&["uefi_settings", "encryption_at_host", "security_type", "encryption_identity", "proxy_agent_settings"]),
    ),
    ("diagnostics_profile", Some(&["boot_diagnostics"])),
    ("availability_set", None),
    ("virtual_machine_scale_set", None),
    ("proximity_placement_group", None),
    ("priority", None),
    ("eviction_policy", None),
    ("billing_profile", None),
    ("host", None),
    ("host_group", None),
    ("license_type", None),
    ("extensions_time_budget", None),
    ("platform_fault_domain", None),
    ("user_data", None),
    ("capacity_reservation", None),
    ("application_profile", None),
];

/// Azure: dot-notation keys (`hardware_profile.vm_size`, `...public_keys.0.path`) onto the emitted VM JSON.
pub fn azure(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (key, v) in o {
        let path = format!("{field}.{key}");
        let segs: Vec<&str> = key.split('.').collect();
        if segs.iter().any(|s| s.is_empty()) {
            f.push((path, "empty segment in dot-notation key".into()));
            continue;
        }
        let top = segs[0];
        let Some((_, below)) = AZURE_KEYS.iter().find(|(k, _)| *k == top) else {
            let why = match top {
                "name" | "id" | "type" => " (set by kasm-autoscale / Azure)".to_string(),
                _ => did_you_mean(top, AZURE_KEYS.iter().map(|(k, _)| *k)),
            };
            f.push((path, format!("`{top}` is not a key of the Azure VM JSON{why}")));
            continue;
        };
        if top == "tags" && segs.len() == 1 {
            f.push((path, "would replace the ownership tags; use azure_tags or `tags.<key>`".into()));
            continue;
        }
        if key == "os_profile.custom_data" {
            f.push((path, "cannot be overridden: it is rendered from startup_script".into()));
            continue;
        }
        if let (Some(below), Some(second)) = (below, segs.get(1))
            && !below.contains(second)
        {
            let hint = did_you_mean(second, below.iter().copied());
            f.push((path, format!("`{second}` is not a key of `{top}`{hint}")));
            continue;
        }
        if segs.len() == 1 && below.is_some() && !v.is_object() {
            f.push((path, format!("`{top}` is an object; set it to an object or use dot notation")));
        }
    }
    f
}

/// Fields of the Compute Engine Instance resource that can be set on insert.
pub const GCP_INSTANCE_FIELDS: &[&str] = &[
    "advancedMachineFeatures",
    "canIpForward",
    "confidentialInstanceConfig",
    "deletionProtection",
    "description",
    "disks",
    "displayDevice",
    "guestAccelerators",
    "hostname",
    "instanceEncryptionKey",
    "keyRevocationActionType",
    "labels",
    "machineType",
    "metadata",
    "minCpuPlatform",
    "name",
    "networkInterfaces",
    "networkPerformanceConfig",
    "params",
    "privateIpv6GoogleAccess",
    "reservationAffinity",
    "resourcePolicies",
    "scheduling",
    "serviceAccounts",
    "shieldedInstanceConfig",
    "shieldedInstanceIntegrityPolicy",
    "sourceMachineImage",
    "sourceMachineImageEncryptionKey",
    "tags",
];

/// GCP: any Instance field but `name` and `labels` (Kasm's documented rule).
pub fn gcp(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for key in o.keys() {
        let path = format!("{field}.{key}");
        if key == "name" || key == "labels" {
            f.push((
                path,
                "cannot be overridden (name and labels are set by kasm-autoscale; use gcp_custom_labels)".into(),
            ));
        } else if !GCP_INSTANCE_FIELDS.contains(&key.as_str()) {
            let hint = did_you_mean(key, GCP_INSTANCE_FIELDS.iter().copied());
            f.push((path, format!("not a field of the Compute Engine Instance resource{hint}")));
        }
    }
    f
}

/// Attributes of OCI's LaunchInstanceDetails (Python SDK names, as Kasm applies them).
pub const OCI_LAUNCH_INSTANCE_DETAILS: &[&str] = &[
    "agent_config",
    "availability_config",
    "availability_domain",
    "capacity_reservation_id",
    "cluster_placement_group_id",
    "compartment_id",
    "compute_cluster_id",
    "create_vnic_details",
    "dedicated_vm_host_id",
    "defined_tags",
    "display_name",
    "extended_metadata",
    "fault_domain",
    "freeform_tags",
    "hostname_label",
    "image_id",
    "instance_options",
    "ipxe_script",
    "is_pv_encryption_in_transit_enabled",
    "launch_options",
    "launch_volume_attachments",
    "licensing_configs",
    "metadata",
    "platform_config",
    "preemptible_instance_config",
    "security_attributes",
    "shape",
    "shape_config",
    "source_details",
    "subnet_id",
];

const OCI_MANAGED: &[(&str, &str)] = &[
    ("display_name", "it is the claim's deterministic name"),
    ("freeform_tags", "the ownership tags must stay; use oci_custom_tags"),
    ("metadata", "it carries user_data (startup_script) and ssh_authorized_keys (oci_ssh_public_key)"),
    ("availability_domain", "domains are tried in turn from oci_availability_domains"),
];

/// OCI: `{"launch_instance_details": {<LaunchInstanceDetails attribute>: ...}}`; nested models may name
/// their type with `OCI_MODEL_NAME`.
pub fn oci(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for (k, v) in o {
        if k != "launch_instance_details" {
            let hint = did_you_mean(k, ["launch_instance_details"].into_iter());
            f.push((
                format!("{field}.{k}"),
                format!("unknown block{hint} (only `launch_instance_details` is applied)"),
            ));
            continue;
        }
        let Some(d) = v.as_object() else {
            f.push((format!("{field}.{k}"), "must be an object of LaunchInstanceDetails attributes".into()));
            continue;
        };
        for (key, val) in d {
            let path = format!("{field}.launch_instance_details.{key}");
            if let Some((_, why)) = OCI_MANAGED.iter().find(|(m, _)| m == key) {
                f.push((path, format!("cannot be overridden: {why}")));
            } else if !OCI_LAUNCH_INSTANCE_DETAILS.contains(&key.as_str()) {
                let hint = did_you_mean(key, OCI_LAUNCH_INSTANCE_DETAILS.iter().copied());
                f.push((path, format!("not an OCI LaunchInstanceDetails attribute{hint}")));
            } else if let Some(m) = val.as_object().and_then(|m| m.get("OCI_MODEL_NAME"))
                && !m.as_str().is_some_and(|s| s.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            {
                f.push((
                    format!("{path}.OCI_MODEL_NAME"),
                    "must be an OCI model class name, e.g. InstanceOptions".into(),
                ));
            }
        }
    }
    f
}

/// Attributes of Nova's create-server request (`server` object), plus the `os:scheduler_hints` sibling.
pub const OPENSTACK_SERVER_ATTRIBUTES: &[&str] = &[
    "accessIPv4",
    "accessIPv6",
    "adminPass",
    "availability_zone",
    "block_device_mapping_v2",
    "config_drive",
    "description",
    "flavorRef",
    "host",
    "hostname",
    "hypervisor_hostname",
    "imageRef",
    "key_name",
    "metadata",
    "networks",
    "OS-DCF:diskConfig",
    "os:scheduler_hints",
    "personality",
    "security_groups",
    "tags",
    "trusted_image_certificates",
];

const OPENSTACK_MANAGED: &[(&str, &str)] = &[
    ("name", "it is the claim's deterministic name"),
    ("user_data", "it is rendered from startup_script"),
    ("min_count", "each claim creates exactly one server"),
    ("max_count", "each claim creates exactly one server"),
    ("return_reservation_id", "each claim creates exactly one server"),
];

/// OpenStack: Nova create-server attributes.
pub fn openstack(o: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    for key in o.keys() {
        let path = format!("{field}.{key}");
        if let Some((_, why)) = OPENSTACK_MANAGED.iter().find(|(m, _)| m == key) {
            f.push((path, format!("cannot be overridden: {why}")));
        } else if !OPENSTACK_SERVER_ATTRIBUTES.contains(&key.as_str()) {
            let hint = did_you_mean(key, OPENSTACK_SERVER_ATTRIBUTES.iter().copied());
            f.push((path, format!("not a Nova create-server attribute{hint}")));
        }
    }
    f
}

/// KubeVirt / Harvester: a complete VirtualMachine manifest.
pub fn kube_manifest(m: &Map<String, Value>, field: &str) -> Found {
    let mut f = Found::new();
    let api = m.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !api.starts_with("kubevirt.io/") {
        f.push((format!("{field}.apiVersion"), "must be a kubevirt.io API version, e.g. kubevirt.io/v1".into()));
    }
    if m.get("kind").and_then(Value::as_str) != Some("VirtualMachine") {
        f.push((format!("{field}.kind"), "must be VirtualMachine".into()));
    }
    let spec = m.get("spec").and_then(Value::as_object);
    match spec {
        None => f.push((format!("{field}.spec"), "is required".into())),
        Some(spec) => {
            if !spec.get("template").and_then(|t| t.get("spec")).is_some_and(Value::is_object) {
                f.push((
                    format!("{field}.spec.template.spec"),
                    "is required (the VM's domain, disks and volumes)".into(),
                ));
            }
            if spec.contains_key("running") {
                f.push((
                    format!("{field}.spec.running"),
                    "conflicts with runStrategy Always, which the provider sets".into(),
                ));
            }
            // Every VM made from the manifest needs its own disk: a fixed PVC name would be shared by all.
            let volumes = spec.get("template").and_then(|t| t.pointer("/spec/volumes")).and_then(Value::as_array);
            for (i, vol) in volumes.into_iter().flatten().enumerate() {
                if let Some(claim) = vol.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str)
                    && !claim.contains("$KASM_NAME")
                {
                    f.push((
                        format!("{field}.spec.template.spec.volumes[{i}].persistentVolumeClaim.claimName"),
                        "must contain $KASM_NAME, or every VM would share one disk".into(),
                    ));
                }
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields(found: &Found) -> Vec<&str> {
        found.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn aws_accepts_run_instances_parameters_and_rejects_the_rest() {
        let ok = obj(json!({"instance_config": {"EbsOptimized": true, "MetadataOptions": {"HttpTokens": "required"}}}));
        assert!(aws(&ok, "o").is_empty());
        let bad =
            obj(json!({"instance_config": {"EbsOptimised": true, "ClientToken": "x", "UserData": "y"}, "launch": {}}));
        let found = aws(&bad, "o");
        assert_eq!(
            fields(&found),
            [
                "o.instance_config.EbsOptimised",
                "o.instance_config.ClientToken",
                "o.instance_config.UserData",
                "o.launch"
            ]
        );
        assert!(found[0].1.contains("did you mean `EbsOptimized`"), "{found:?}");
        assert!(found[1].1.contains("idempotency"));
        let nested = aws(&obj(json!({"instance_config": {"MetadataOptions": {"HttpToken": "required"}}})), "o");
        assert_eq!(fields(&nested), ["o.instance_config.MetadataOptions"]);
        assert!(nested[0].1.contains("HttpToken"), "{nested:?}");
        let unsupported = aws(&obj(json!({"instance_config": {"Operator": {"Principal": "x"}}})), "o");
        assert_eq!(fields(&unsupported), ["o.instance_config.Operator"]);
        assert!(unsupported[0].1.contains("not supported by kasm-autoscale"), "{unsupported:?}");
        let not_obj = obj(json!({"instance_config": [1]}));
        assert_eq!(fields(&aws(&not_obj, "o")), ["o.instance_config"]);
    }

    #[test]
    fn azure_keys_must_start_at_the_emitted_vm_json() {
        let ok = obj(json!({
            "location": "eastus",
            "hardware_profile.vm_size": "Standard_D4s_v3",
            "os_profile.linux_configuration.ssh.public_keys.0.path": "/home/ubuntu/.ssh/authorized_keys",
            "tags.team": "vdi",
            "storage_profile": {"os_disk": {}}
        }));
        assert_eq!(azure(&ok, "o"), Found::new());
        let bad = obj(json!({
            "hardwareProfile.vmSize": "x",
            "hardware_profile.vmsize": "x",
            "name": "x",
            "tags": {"a": "b"},
            "os_profile.custom_data": "x",
            "location..x": 1,
            "os_profile": "x"
        }));
        let found = azure(&bad, "o");
        assert_eq!(
            fields(&found),
            [
                "o.hardwareProfile.vmSize",
                "o.hardware_profile.vmsize",
                "o.name",
                "o.tags",
                "o.os_profile.custom_data",
                "o.location..x",
                "o.os_profile"
            ]
        );
        assert!(found[1].1.contains("did you mean `vm_size`"), "{found:?}");
    }

    #[test]
    fn gcp_may_change_anything_but_name_and_labels() {
        let ok =
            obj(json!({"shieldedInstanceConfig": {"enableSecureBoot": true}, "scheduling": {"preemptible": true}}));
        assert!(gcp(&ok, "o").is_empty());
        let found = gcp(&obj(json!({"name": "x", "labels": {}, "shieldedInstanceConfg": {}})), "o");
        assert_eq!(fields(&found), ["o.name", "o.labels", "o.shieldedInstanceConfg"]);
        assert!(found[2].1.contains("did you mean `shieldedInstanceConfig`"));
    }

    #[test]
    fn oci_takes_launch_instance_details_attributes() {
        let ok = obj(
            json!({"launch_instance_details": {"instance_options": {"OCI_MODEL_NAME": "InstanceOptions", "are_legacy_imds_endpoints_disabled": true}}}),
        );
        assert!(oci(&ok, "o").is_empty());
        let bad = obj(json!({
            "launch_details": {},
            "launch_instance_details": {"instance_option": {}, "display_name": "x", "agent_config": {"OCI_MODEL_NAME": 3}}
        }));
        assert_eq!(
            fields(&oci(&bad, "o")),
            [
                "o.launch_details",
                "o.launch_instance_details.instance_option",
                "o.launch_instance_details.display_name",
                "o.launch_instance_details.agent_config.OCI_MODEL_NAME"
            ]
        );
    }

    #[test]
    fn openstack_takes_nova_server_attributes() {
        assert!(openstack(&obj(json!({"config_drive": true, "os:scheduler_hints": {"group": "g"}})), "o").is_empty());
        assert_eq!(fields(&openstack(&obj(json!({"name": "x", "flavour": "y"})), "o")), ["o.name", "o.flavour"]);
    }

    #[test]
    fn kube_manifest_must_be_a_virtual_machine_with_unique_disks() {
        let ok = obj(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "spec": {"template": {"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "$KASM_NAME-pvc"}}]}}}
        }));
        assert!(kube_manifest(&ok, "o").is_empty());
        let bad = obj(json!({
            "apiVersion": "v1", "kind": "Pod",
            "spec": {"running": true, "template": {"spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "disk"}}]}}}
        }));
        assert_eq!(
            fields(&kube_manifest(&bad, "o")),
            [
                "o.apiVersion",
                "o.kind",
                "o.spec.running",
                "o.spec.template.spec.volumes[0].persistentVolumeClaim.claimName"
            ]
        );
        assert_eq!(
            fields(&kube_manifest(&obj(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"})), "o")),
            ["o.spec"]
        );
    }
}
