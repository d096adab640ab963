//! EC2 request shapes and calls: the RunInstances parameters as JSON (our base request merged with the
//! config's `instance_config` override), the JSON → SDK mapper, and the Describe/Run/Terminate/
//! GetPasswordData calls. Errors are turned into [`ProviderError`] by [`super::from_sdk`].

use aws_sdk_ec2::Client;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesInputBuilder;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, CapacityReservationPreference, CapacityReservationSpecification, CapacityReservationTarget,
    CpuOptionsRequest, CreditSpecificationRequest, EbsBlockDevice, EnclaveOptionsRequest, Filter,
    HibernationOptionsRequest, IamInstanceProfileSpecification, Instance, InstanceIpv6Address,
    InstanceMaintenanceOptionsRequest, InstanceMarketOptionsRequest, InstanceMetadataOptionsRequest,
    InstanceNetworkInterfaceSpecification, InstanceNetworkPerformanceOptionsRequest, LaunchTemplateSpecification,
    LicenseConfigurationRequest, Placement, PrivateDnsNameOptionsRequest, PrivateIpAddressSpecification,
    RunInstancesMonitoringEnabled, SpotMarketOptions,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::from_sdk;
use crate::config::providers::AwsConfig;
use crate::providers::ProviderError;

/// Instance states a listing or claim lookup counts: everything but `shutting-down` and `terminated`.
pub(super) const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// The RunInstances parameters that come from the provider config, in the EC2 API's names, so the
/// `instance_config` override can be deep-merged onto them before one mapper turns the whole thing
/// into the SDK request. `UserData`, `ClientToken`, `TagSpecifications` and the counts are set by the
/// provider itself (the override may not touch them; see `config::overrides`).
pub(super) fn base_parameters(cfg: &AwsConfig, root_device: &str) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("ImageId".into(), json!(cfg.aws_ec2_ami_id));
    p.insert("InstanceType".into(), json!(cfg.aws_ec2_instance_type));
    let sgs: Vec<&String> = cfg.aws_ec2_security_group_ids.0.iter().filter(|s| !s.trim().is_empty()).collect();
    if !sgs.is_empty() {
        p.insert("SecurityGroupIds".into(), json!(sgs));
    }
    if let Some(subnet) = cfg.aws_ec2_subnet_id.as_deref().filter(|s| !s.trim().is_empty()) {
        p.insert("SubnetId".into(), json!(subnet));
    }
    // The root volume: size and type from the config; deleted with the instance so nothing is left behind.
    p.insert(
        "BlockDeviceMappings".into(),
        json!([{
            "DeviceName": root_device,
            "Ebs": {
                "VolumeSize": cfg.aws_ec2_ebs_volume_size_gb,
                "VolumeType": cfg.aws_ec2_ebs_volume_type,
                "DeleteOnTermination": true
            }
        }]),
    );
    if let Some(iam) = cfg.aws_ec2_iam.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // The field takes a profile name or ARN; EC2 wants them in different members.
        let key = if iam.starts_with("arn:") { "Arn" } else { "Name" };
        p.insert("IamInstanceProfile".into(), json!({ key: iam }));
    }
    if let Some(key) = cfg.ssh_key_name.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        p.insert("KeyName".into(), json!(key));
    }
    p
}

/// Parameters whose value names one alternative (`Name` or `Arn`): an override replaces them whole,
/// or a merged `{"Name": .., "Arn": ..}` would be refused by EC2.
const REPLACED_WHOLE: &[&str] = &["IamInstanceProfile", "LaunchTemplate"];

/// Deep-merges `over` onto `base`: objects merge key by key, anything else (arrays included) replaces.
pub(super) fn merge_override(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) if !REPLACED_WHOLE.contains(&k.as_str()) => merge_objects(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn merge_objects(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge_objects(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Why a RunInstances parameter could not be applied, naming the parameter and the nested field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ParamError {
    /// The mapper does not know the parameter.
    Unsupported(String),
    /// The value does not have the parameter's shape.
    Shape {
        /// The parameter.
        key: String,
        /// serde's description (field names and expected types).
        why: String,
    },
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::Unsupported(k) => write!(f, "RunInstances parameter {k} is not supported by kasm-autoscale"),
            ParamError::Shape { key, why } => write!(f, "RunInstances parameter {key}: {why}"),
        }
    }
}

fn parse<T: DeserializeOwned>(key: &str, v: &Value) -> Result<T, ParamError> {
    // serde_json's messages name the field and the expected type, and may quote a scalar value: fine for
    // override values, which are plain config (`UserData`, the one parameter carrying secrets, is refused).
    T::deserialize(v).map_err(|e| ParamError::Shape { key: key.to_string(), why: e.to_string() })
}

/// Sets one RunInstances parameter, given in the EC2 API's JSON shape, on the request.
pub(super) fn apply_parameter(
    b: RunInstancesInputBuilder,
    key: &str,
    v: &Value,
) -> Result<RunInstancesInputBuilder, ParamError> {
    Ok(match key {
        "AdditionalInfo" => b.set_additional_info(Some(parse(key, v)?)),
        "BlockDeviceMappings" => {
            let m: Vec<BlockDeviceMappingJson> = parse(key, v)?;
            b.set_block_device_mappings(Some(m.into_iter().map(Into::into).collect()))
        }
        "CapacityReservationSpecification" => {
            let c: CapacityReservationJson = parse(key, v)?;
            b.set_capacity_reservation_specification(Some(c.into()))
        }
        "CpuOptions" => {
            let c: CpuOptionsJson = parse(key, v)?;
            b.set_cpu_options(Some(
                CpuOptionsRequest::builder()
                    .set_core_count(c.core_count)
                    .set_threads_per_core(c.threads_per_core)
                    .set_amd_sev_snp(c.amd_sev_snp.as_deref().map(Into::into))
                    .build(),
            ))
        }
        "CreditSpecification" => {
            let c: CreditJson = parse(key, v)?;
            b.set_credit_specification(Some(CreditSpecificationRequest::builder().cpu_credits(c.cpu_credits).build()))
        }
        "DisableApiStop" => b.set_disable_api_stop(Some(parse(key, v)?)),
        "DisableApiTermination" => b.set_disable_api_termination(Some(parse(key, v)?)),
        "EbsOptimized" => b.set_ebs_optimized(Some(parse(key, v)?)),
        "EnablePrimaryIpv6" => b.set_enable_primary_ipv6(Some(parse(key, v)?)),
        "EnclaveOptions" => {
            let e: EnabledJson = parse(key, v)?;
            b.set_enclave_options(Some(EnclaveOptionsRequest::builder().set_enabled(e.enabled).build()))
        }
        "HibernationOptions" => {
            let h: HibernationJson = parse(key, v)?;
            b.set_hibernation_options(Some(HibernationOptionsRequest::builder().set_configured(h.configured).build()))
        }
        "IamInstanceProfile" => {
            let p: IamJson = parse(key, v)?;
            b.set_iam_instance_profile(Some(
                IamInstanceProfileSpecification::builder().set_arn(p.arn).set_name(p.name).build(),
            ))
        }
        "ImageId" => b.set_image_id(Some(parse(key, v)?)),
        "InstanceInitiatedShutdownBehavior" => {
            b.set_instance_initiated_shutdown_behavior(Some(parse::<String>(key, v)?.as_str().into()))
        }
        "InstanceMarketOptions" => {
            let m: MarketJson = parse(key, v)?;
            b.set_instance_market_options(Some(m.into_sdk(key)?))
        }
        "InstanceType" => b.set_instance_type(Some(parse::<String>(key, v)?.as_str().into())),
        "Ipv6AddressCount" => b.set_ipv6_address_count(Some(parse(key, v)?)),
        "Ipv6Addresses" => {
            let a: Vec<Ipv6Json> = parse(key, v)?;
            b.set_ipv6_addresses(Some(a.into_iter().map(Into::into).collect()))
        }
        "KernelId" => b.set_kernel_id(Some(parse(key, v)?)),
        "KeyName" => b.set_key_name(Some(parse(key, v)?)),
        "LaunchTemplate" => {
            let t: LaunchTemplateJson = parse(key, v)?;
            b.set_launch_template(Some(
                LaunchTemplateSpecification::builder()
                    .set_launch_template_id(t.launch_template_id)
                    .set_launch_template_name(t.launch_template_name)
                    .set_version(t.version)
                    .build(),
            ))
        }
        "LicenseSpecifications" => {
            let l: Vec<LicenseJson> = parse(key, v)?;
            b.set_license_specifications(Some(
                l.into_iter()
                    .map(|l| {
                        LicenseConfigurationRequest::builder()
                            .set_license_configuration_arn(l.license_configuration_arn)
                            .build()
                    })
                    .collect(),
            ))
        }
        "MaintenanceOptions" => {
            let m: MaintenanceJson = parse(key, v)?;
            b.set_maintenance_options(Some(
                InstanceMaintenanceOptionsRequest::builder()
                    .set_auto_recovery(m.auto_recovery.as_deref().map(Into::into))
                    .build(),
            ))
        }
        "MetadataOptions" => {
            let m: MetadataJson = parse(key, v)?;
            b.set_metadata_options(Some(
                InstanceMetadataOptionsRequest::builder()
                    .set_http_tokens(m.http_tokens.as_deref().map(Into::into))
                    .set_http_put_response_hop_limit(m.http_put_response_hop_limit)
                    .set_http_endpoint(m.http_endpoint.as_deref().map(Into::into))
                    .set_http_protocol_ipv6(m.http_protocol_ipv6.as_deref().map(Into::into))
                    .set_instance_metadata_tags(m.instance_metadata_tags.as_deref().map(Into::into))
                    .build(),
            ))
        }
        "Monitoring" => {
            let m: EnabledJson = parse(key, v)?;
            b.set_monitoring(Some(RunInstancesMonitoringEnabled::builder().set_enabled(m.enabled).build()))
        }
        "NetworkInterfaces" => {
            let n: Vec<NetworkInterfaceJson> = parse(key, v)?;
            b.set_network_interfaces(Some(n.into_iter().map(Into::into).collect()))
        }
        "NetworkPerformanceOptions" => {
            let n: NetworkPerformanceJson = parse(key, v)?;
            b.set_network_performance_options(Some(
                InstanceNetworkPerformanceOptionsRequest::builder()
                    .set_bandwidth_weighting(n.bandwidth_weighting.as_deref().map(Into::into))
                    .build(),
            ))
        }
        "Placement" => {
            let p: PlacementJson = parse(key, v)?;
            b.set_placement(Some(p.into()))
        }
        "PrivateDnsNameOptions" => {
            let p: PrivateDnsJson = parse(key, v)?;
            b.set_private_dns_name_options(Some(
                PrivateDnsNameOptionsRequest::builder()
                    .set_hostname_type(p.hostname_type.as_deref().map(Into::into))
                    .set_enable_resource_name_dns_a_record(p.enable_resource_name_dns_a_record)
                    .set_enable_resource_name_dns_aaaa_record(p.enable_resource_name_dns_aaaa_record)
                    .build(),
            ))
        }
        "PrivateIpAddress" => b.set_private_ip_address(Some(parse(key, v)?)),
        "RamdiskId" => b.set_ramdisk_id(Some(parse(key, v)?)),
        "SecurityGroupIds" => b.set_security_group_ids(Some(parse(key, v)?)),
        "SecurityGroups" => b.set_security_groups(Some(parse(key, v)?)),
        "SubnetId" => b.set_subnet_id(Some(parse(key, v)?)),

        other => return Err(ParamError::Unsupported(other.to_string())),
    })
}

/// Applies every parameter of `params` (base merged with the override) to `b`.
pub(super) fn apply_parameters(
    mut b: RunInstancesInputBuilder,
    params: &Map<String, Value>,
) -> Result<RunInstancesInputBuilder, ParamError> {
    for (k, v) in params {
        b = apply_parameter(b, k, v)?;
    }
    Ok(b)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct BlockDeviceMappingJson {
    device_name: Option<String>,
    virtual_name: Option<String>,
    no_device: Option<String>,
    ebs: Option<EbsJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EbsJson {
    delete_on_termination: Option<bool>,
    iops: Option<i32>,
    snapshot_id: Option<String>,
    volume_size: Option<i32>,
    volume_type: Option<String>,
    kms_key_id: Option<String>,
    throughput: Option<i32>,
    outpost_arn: Option<String>,
    encrypted: Option<bool>,
}

impl From<BlockDeviceMappingJson> for BlockDeviceMapping {
    fn from(m: BlockDeviceMappingJson) -> Self {
        BlockDeviceMapping::builder()
            .set_device_name(m.device_name)
            .set_virtual_name(m.virtual_name)
            .set_no_device(m.no_device)
            .set_ebs(m.ebs.map(|e| {
                EbsBlockDevice::builder()
                    .set_delete_on_termination(e.delete_on_termination)
                    .set_iops(e.iops)
                    .set_snapshot_id(e.snapshot_id)
                    .set_volume_size(e.volume_size)
                    .set_volume_type(e.volume_type.as_deref().map(Into::into))
                    .set_kms_key_id(e.kms_key_id)
                    .set_throughput(e.throughput)
                    .set_outpost_arn(e.outpost_arn)
                    .set_encrypted(e.encrypted)
                    .build()
            }))
            .build()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CapacityReservationJson {
    capacity_reservation_preference: Option<String>,
    capacity_reservation_target: Option<CapacityTargetJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CapacityTargetJson {
    capacity_reservation_id: Option<String>,
    capacity_reservation_resource_group_arn: Option<String>,
}

impl From<CapacityReservationJson> for CapacityReservationSpecification {
    fn from(c: CapacityReservationJson) -> Self {
        CapacityReservationSpecification::builder()
            .set_capacity_reservation_preference(
                c.capacity_reservation_preference.as_deref().map(CapacityReservationPreference::from),
            )
            .set_capacity_reservation_target(c.capacity_reservation_target.map(|t| {
                CapacityReservationTarget::builder()
                    .set_capacity_reservation_id(t.capacity_reservation_id)
                    .set_capacity_reservation_resource_group_arn(t.capacity_reservation_resource_group_arn)
                    .build()
            }))
            .build()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CpuOptionsJson {
    core_count: Option<i32>,
    threads_per_core: Option<i32>,
    amd_sev_snp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CreditJson {
    cpu_credits: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EnabledJson {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct HibernationJson {
    configured: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct IamJson {
    arn: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MarketJson {
    market_type: Option<String>,
    spot_options: Option<SpotJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct SpotJson {
    max_price: Option<String>,
    spot_instance_type: Option<String>,
    block_duration_minutes: Option<i32>,
    /// ISO 8601, as the API documents it.
    valid_until: Option<String>,
    instance_interruption_behavior: Option<String>,
}

impl MarketJson {
    fn into_sdk(self, key: &str) -> Result<InstanceMarketOptionsRequest, ParamError> {
        let spot = match self.spot_options {
            None => None,
            Some(s) => {
                let valid_until = match s.valid_until {
                    None => None,
                    Some(t) => Some(
                        aws_smithy_types::DateTime::from_str(&t, aws_smithy_types::date_time::Format::DateTime)
                            .map_err(|_| ParamError::Shape {
                                key: key.to_string(),
                                why: "SpotOptions.ValidUntil must be an ISO 8601 date-time".into(),
                            })?,
                    ),
                };
                Some(
                    SpotMarketOptions::builder()
                        .set_max_price(s.max_price)
                        .set_spot_instance_type(s.spot_instance_type.as_deref().map(Into::into))
                        .set_block_duration_minutes(s.block_duration_minutes)
                        .set_valid_until(valid_until)
                        .set_instance_interruption_behavior(s.instance_interruption_behavior.as_deref().map(Into::into))
                        .build(),
                )
            }
        };
        Ok(InstanceMarketOptionsRequest::builder()
            .set_market_type(self.market_type.as_deref().map(Into::into))
            .set_spot_options(spot)
            .build())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Ipv6Json {
    ipv6_address: Option<String>,
    is_primary_ipv6: Option<bool>,
}

impl From<Ipv6Json> for InstanceIpv6Address {
    fn from(a: Ipv6Json) -> Self {
        InstanceIpv6Address::builder().set_ipv6_address(a.ipv6_address).set_is_primary_ipv6(a.is_primary_ipv6).build()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct LaunchTemplateJson {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct LicenseJson {
    license_configuration_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MaintenanceJson {
    auto_recovery: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MetadataJson {
    http_tokens: Option<String>,
    http_put_response_hop_limit: Option<i32>,
    http_endpoint: Option<String>,
    http_protocol_ipv6: Option<String>,
    instance_metadata_tags: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct NetworkInterfaceJson {
    associate_public_ip_address: Option<bool>,
    delete_on_termination: Option<bool>,
    description: Option<String>,
    device_index: Option<i32>,
    groups: Option<Vec<String>>,
    ipv6_address_count: Option<i32>,
    ipv6_addresses: Option<Vec<Ipv6Json>>,
    network_interface_id: Option<String>,
    private_ip_address: Option<String>,
    private_ip_addresses: Option<Vec<PrivateIpJson>>,
    secondary_private_ip_address_count: Option<i32>,
    subnet_id: Option<String>,
    associate_carrier_ip_address: Option<bool>,
    interface_type: Option<String>,
    network_card_index: Option<i32>,
    primary_ipv6: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PrivateIpJson {
    primary: Option<bool>,
    private_ip_address: Option<String>,
}

impl From<NetworkInterfaceJson> for InstanceNetworkInterfaceSpecification {
    fn from(n: NetworkInterfaceJson) -> Self {
        InstanceNetworkInterfaceSpecification::builder()
            .set_associate_public_ip_address(n.associate_public_ip_address)
            .set_delete_on_termination(n.delete_on_termination)
            .set_description(n.description)
            .set_device_index(n.device_index)
            .set_groups(n.groups)
            .set_ipv6_address_count(n.ipv6_address_count)
            .set_ipv6_addresses(n.ipv6_addresses.map(|a| a.into_iter().map(Into::into).collect()))
            .set_network_interface_id(n.network_interface_id)
            .set_private_ip_address(n.private_ip_address)
            .set_private_ip_addresses(n.private_ip_addresses.map(|a| {
                a.into_iter()
                    .map(|p| {
                        PrivateIpAddressSpecification::builder()
                            .set_primary(p.primary)
                            .set_private_ip_address(p.private_ip_address)
                            .build()
                    })
                    .collect()
            }))
            .set_secondary_private_ip_address_count(n.secondary_private_ip_address_count)
            .set_subnet_id(n.subnet_id)
            .set_associate_carrier_ip_address(n.associate_carrier_ip_address)
            .set_interface_type(n.interface_type)
            .set_network_card_index(n.network_card_index)
            .set_primary_ipv6(n.primary_ipv6)
            .build()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct NetworkPerformanceJson {
    bandwidth_weighting: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PlacementJson {
    availability_zone: Option<String>,
    availability_zone_id: Option<String>,
    affinity: Option<String>,
    group_name: Option<String>,
    group_id: Option<String>,
    partition_number: Option<i32>,
    host_id: Option<String>,
    tenancy: Option<String>,
    spread_domain: Option<String>,
    host_resource_group_arn: Option<String>,
}

impl From<PlacementJson> for Placement {
    fn from(p: PlacementJson) -> Self {
        Placement::builder()
            .set_availability_zone(p.availability_zone)
            .set_availability_zone_id(p.availability_zone_id)
            .set_affinity(p.affinity)
            .set_group_name(p.group_name)
            .set_group_id(p.group_id)
            .set_partition_number(p.partition_number)
            .set_host_id(p.host_id)
            .set_tenancy(p.tenancy.as_deref().map(Into::into))
            .set_spread_domain(p.spread_domain)
            .set_host_resource_group_arn(p.host_resource_group_arn)
            .build()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PrivateDnsJson {
    hostname_type: Option<String>,
    enable_resource_name_dns_a_record: Option<bool>,
    #[serde(rename = "EnableResourceNameDnsAAAARecord")]
    enable_resource_name_dns_aaaa_record: Option<bool>,
}

/// `tag:<key>` filters for every pair, plus the live instance states.
pub(super) fn tag_filters<'a>(tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<Filter> {
    let mut f: Vec<Filter> =
        tags.into_iter().map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v.clone()).build()).collect();
    f.push(
        Filter::builder().name("instance-state-name").set_values(Some(LIVE_STATES.map(String::from).into())).build(),
    );
    f
}

/// Every live instance matching `filters`, across every page (`page_size`: MaxResults, 5..=1000).
pub(super) async fn describe_filtered(
    ec2: &Client,
    filters: Vec<Filter>,
    page_size: i32,
) -> Result<Vec<Instance>, ProviderError> {
    let mut pages = ec2.describe_instances().set_filters(Some(filters)).max_results(page_size).into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("DescribeInstances", e))?;
        for r in page.reservations() {
            out.extend(r.instances().iter().cloned());
        }
    }
    Ok(out)
}

/// One instance by id (`None` when EC2 does not know it).
pub(super) async fn describe_one(ec2: &Client, id: &str) -> Result<Option<Instance>, ProviderError> {
    let r = ec2.describe_instances().instance_ids(id).send().await;
    match r {
        Ok(out) => {
            Ok(out.reservations().iter().flat_map(|r| r.instances()).find(|i| i.instance_id() == Some(id)).cloned())
        }
        Err(e) => match from_sdk("DescribeInstances", e) {
            ProviderError::NotFound { .. } => Ok(None),
            other => Err(other),
        },
    }
}

/// The root device name of an AMI (where the root EBS mapping must point).
pub(super) async fn root_device_name(ec2: &Client, ami: &str) -> Result<String, ProviderError> {
    let out = ec2.describe_images().image_ids(ami).send().await.map_err(|e| from_sdk("DescribeImages", e))?;
    let image = out.images().iter().find(|i| i.image_id() == Some(ami)).ok_or_else(|| ProviderError::Invalid {
        provider: super::NAME,
        message: format!("AMI {ami} was not found (or is not shared with this account)"),
    })?;
    image.root_device_name().map(str::to_string).ok_or_else(|| ProviderError::Invalid {
        provider: super::NAME,
        message: format!("AMI {ami} has no root device name"),
    })
}
