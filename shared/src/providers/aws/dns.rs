//! AWS Route 53: the A records of our VMs in one hosted zone (the DNS-provider config's `hosted_zone_id`),
//! behind [`crate::dns::DnsProvider`].
//!
//! - **Ownership**: Route 53 records carry no tags, so each A record has a TXT record at the same name
//!   holding our marker (`"kasm-autoscale deployment=<id> claim=<id>"`, see [`crate::dns`]). A name is
//!   ours only when its TXT record set is exactly our marker; anything else there is never changed.
//! - **Upsert**: read the name's record sets (ListResourceRecordSets from the name), decide ownership,
//!   then one ChangeResourceRecordSets batch — Route 53 applies a batch all or nothing. A free name gets
//!   `CREATE` A + `CREATE` TXT (a record another writer made in between fails the batch); our own name
//!   gets `UPSERT` A (its marker stays). An unchanged record sends nothing. Between the read and an
//!   `UPSERT` nothing guards the marker: the names are `kasm-<claim id>`, which nobody else writes.
//!   (A `DELETE` + `CREATE` of the marker in the same batch would guard it on Route 53, but moto refuses
//!   that batch, so it could not be tested here.)
//! - **Delete**: `DELETE` of the A record and the marker with exactly the values read, in one batch:
//!   Route 53 refuses the whole batch when either changed since (a conflict, read again next time).
//! - **List**: ListResourceRecordSets over the whole zone, every page (`NextRecordName`/`NextRecordType`).
//! - **Errors**: error codes map to [`DnsError`] in one place (`classify`); a batch refused because
//!   the records changed since our read is a retryable conflict.
//! - **Credentials**: the config's `aws_access_key_id`/`aws_secret_access_key` references, else the default
//!   chain; the region from the environment, else `us-east-1` (Route 53 is global; the SDK picks the
//!   partition's endpoint from the region); `AWS_ENDPOINT_URL` is honoured (emulators).

use aws_sdk_route53::Client;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::credential::{DefaultChain, KeyPairCredentials};
use crate::config::Route53DnsConfig;
use crate::dns::{ARecord, DnsError, DnsOwner, DnsProvider, OwnedRecord, Ownership, normalize_name, ownership};
use crate::secrets::Secrets;

/// The backend's short name.
const NAME: &str = "route53";

/// ListResourceRecordSets page size (the API's maximum is 300).
const DEFAULT_PAGE_SIZE: i32 = 300;

/// Route 53's signing region when the environment names none (the `aws` partition's global endpoint).
const DEFAULT_REGION: &str = "us-east-1";

/// The Route 53 DNS backend of one hosted zone. Build it with [`Route53Dns::from_config`] (or through
/// [`crate::dns::registry`]).
#[derive(Debug, Clone)]
pub struct Route53Dns {
    client: Client,
    zone_id: String,
    page_size: i32,
}

/// One record set as we read it.
#[derive(Debug, Clone, PartialEq)]
struct Set {
    ttl: Option<i64>,
    values: Vec<String>,
}

/// What one name holds, as far as ownership goes.
#[derive(Debug, Default)]
struct AtName {
    /// The plain A record (no alias, no routing policy).
    a: Option<Set>,
    /// The plain TXT record set.
    txt: Option<Set>,
    /// Record sets of any other kind (other types, aliases, routing policies).
    other: bool,
}

impl AtName {
    fn texts(&self) -> Option<Vec<String>> {
        self.txt.as_ref().map(|t| t.values.iter().map(|v| unquote(v)).collect())
    }

    fn ownership(&self, owner: &DnsOwner) -> Ownership {
        ownership(self.a.is_some(), self.other, self.texts().as_deref(), owner)
    }

    fn add(&mut self, rs: &ResourceRecordSet) {
        let plain = rs.set_identifier().is_none() && rs.alias_target().is_none();
        let set =
            || Set { ttl: rs.ttl(), values: rs.resource_records().iter().map(|r| r.value().to_string()).collect() };
        match rs.r#type() {
            RrType::A if plain => self.a = Some(set()),
            RrType::Txt if plain => self.txt = Some(set()),
            _ => self.other = true,
        }
    }
}

/// The text of a TXT value: Route 53 answers each as a quoted string (`"text"`, `\"` and `\\` escaped).
/// A value of several strings, or one that is not quoted, is returned as it is (it is no marker).
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return v.to_string(),
            },
            '"' => return v.to_string(),
            c => out.push(c),
        }
    }
    out
}

/// A TXT value holding `text` (our markers hold no quote or backslash; escaped anyway).
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Route53Dns {
    /// The backend the way the registry builds it, with no I/O: credentials from the config's secret
    /// references read on the first call (or the default chain), signed for the region of the
    /// environment (`AWS_REGION`, else `us-east-1`: Route 53 is global); the endpoint is
    /// `endpoint_url`, else `AWS_ENDPOINT_URL_ROUTE_53`, else `AWS_ENDPOINT_URL` (as the SDK reads
    /// them); `ca_bundle` is trusted for its TLS.
    pub fn from_config(cfg: &Route53DnsConfig, secrets: Arc<dyn Secrets>) -> Result<Self, DnsError> {
        let invalid = |message: String| DnsError::Invalid {
            provider: NAME,
            message: format!("DNS-provider config {}: {message}", cfg.name),
        };
        let zone_id = zone_id(&cfg.hosted_zone_id).map_err(invalid)?;
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let region = aws_sdk_route53::config::Region::new(region);
        let http = crate::http::aws::http_client_with(cfg.ca_bundle.as_deref())
            .map_err(|e| invalid(format!("ca_bundle: {e}")))?;
        let mut conf = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(region.clone())
            .http_client(http);
        conf = match (&cfg.aws_access_key_id, &cfg.aws_secret_access_key) {
            (Some(id), Some(secret)) => conf.credentials_provider(KeyPairCredentials {
                secrets,
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                config: cfg.name.clone(),
                cached: Default::default(),
            }),
            (None, None) => conf.credentials_provider(DefaultChain { region, chain: Default::default() }),
            _ => {
                return Err(invalid(
                    "set both aws_access_key_id and aws_secret_access_key, or neither (default credentials)".into(),
                ));
            }
        };
        let endpoint = cfg
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_ROUTE_53").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|u| !u.trim().is_empty());
        if let Some(url) = endpoint {
            conf = conf.endpoint_url(url);
        }
        Ok(Self { client: Client::from_conf(conf.build()), zone_id, page_size: DEFAULT_PAGE_SIZE })
    }

    /// The backend over `client` (tests: an emulator endpoint) for hosted zone `hosted_zone_id`
    /// (`Z…`, or `/hostedzone/Z…` as the API answers it).
    pub fn with_client(client: Client, hosted_zone_id: &str) -> Result<Self, DnsError> {
        let zone_id = zone_id(hosted_zone_id).map_err(|message| DnsError::Invalid { provider: NAME, message })?;
        Ok(Self { client, zone_id, page_size: DEFAULT_PAGE_SIZE })
    }

    /// ListResourceRecordSets page size (clamped to the API's 1..=300; tests use small pages).
    pub fn page_size(mut self, n: i32) -> Self {
        self.page_size = n.clamp(1, 300);
        self
    }

    /// The record sets at `name` (the list starts at the name and runs in Route 53's order, so the
    /// name's sets come first; pages are followed while they still hold the name).
    async fn read_name(&self, name: &str) -> Result<AtName, DnsError> {
        let mut at = AtName::default();
        let mut start: (String, Option<RrType>, Option<String>) = (fq(name), None, None);
        loop {
            let out = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(&self.zone_id)
                .start_record_name(&start.0)
                .set_start_record_type(start.1.clone())
                .set_start_record_identifier(start.2.clone())
                .max_items(self.page_size)
                .send()
                .await
                .map_err(|e| from_sdk("ListResourceRecordSets", e))?;
            for rs in out.resource_record_sets() {
                if normalize_name(rs.name()) != name {
                    return Ok(at);
                }
                at.add(rs);
            }
            match (out.is_truncated(), out.next_record_name()) {
                (true, Some(next)) if normalize_name(next) == name => {
                    start = (
                        next.to_string(),
                        out.next_record_type().cloned(),
                        out.next_record_identifier().map(str::to_string),
                    );
                }
                _ => return Ok(at),
            }
        }
    }

    /// Every record set of the zone, grouped by name (every page).
    async fn read_zone(&self) -> Result<BTreeMap<String, AtName>, DnsError> {
        let mut by_name: BTreeMap<String, AtName> = BTreeMap::new();
        let mut start: Option<(String, Option<RrType>, Option<String>)> = None;
        loop {
            let mut req =
                self.client.list_resource_record_sets().hosted_zone_id(&self.zone_id).max_items(self.page_size);
            if let Some((n, t, i)) = &start {
                req = req.start_record_name(n).set_start_record_type(t.clone()).set_start_record_identifier(i.clone());
            }
            let out = req.send().await.map_err(|e| from_sdk("ListResourceRecordSets", e))?;
            for rs in out.resource_record_sets() {
                by_name.entry(normalize_name(rs.name())).or_default().add(rs);
            }
            match (out.is_truncated(), out.next_record_name()) {
                (true, Some(next)) => {
                    let n = (
                        next.to_string(),
                        out.next_record_type().cloned(),
                        out.next_record_identifier().map(str::to_string),
                    );
                    if start.as_ref() == Some(&n) {
                        return Err(DnsError::Transient {
                            provider: NAME,
                            message: "ListResourceRecordSets answered the same page again".into(),
                        });
                    }
                    start = Some(n);
                }
                _ => return Ok(by_name),
            }
        }
    }

    async fn apply(&self, changes: Vec<Change>, comment: &str) -> Result<(), DnsError> {
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(changes))
            .build()
            .map_err(|_| invalid("ChangeResourceRecordSets: the change batch could not be built"))?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(batch)
            .send()
            .await
            .map(|_| ())
            .map_err(change_error)
    }
}

/// `Z…` from `Z…` or `/hostedzone/Z…`; the error names the field.
fn zone_id(raw: &str) -> Result<String, String> {
    let id = raw.trim();
    let id = id.strip_prefix("/hostedzone/").unwrap_or(id);
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "hosted_zone_id `{raw}` is not a Route 53 hosted zone id (letters and digits, e.g. Z0123456789ABCDEFGHIJ)"
        ));
    }
    Ok(id.to_string())
}

/// The name as sent to Route 53: fully qualified, with the final dot.
fn fq(name: &str) -> String {
    format!("{}.", normalize_name(name))
}

fn invalid(message: &str) -> DnsError {
    DnsError::Invalid { provider: NAME, message: message.to_string() }
}

fn change(
    action: ChangeAction,
    name: &str,
    kind: RrType,
    ttl: Option<i64>,
    values: &[String],
) -> Result<Change, DnsError> {
    let records = values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("ChangeResourceRecordSets: a record value could not be built"))?;
    let set = ResourceRecordSet::builder()
        .name(fq(name))
        .r#type(kind)
        .set_ttl(ttl)
        .set_resource_records(Some(records))
        .build()
        .map_err(|_| invalid("ChangeResourceRecordSets: a record set could not be built"))?;
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|_| invalid("ChangeResourceRecordSets: a change could not be built"))
}

#[async_trait::async_trait]
impl DnsProvider for Route53Dns {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn upsert_a(&self, record: &ARecord) -> Result<(), DnsError> {
        let name = normalize_name(&record.name);
        crate::dns::check_name(&name).map_err(|m| invalid(&m))?;
        let at = self.read_name(&name).await?;
        if let Ownership::Foreign(why) = at.ownership(&record.owner) {
            return Err(DnsError::NotOurs { provider: NAME, name, why });
        }
        let ttl = Some(i64::from(record.ttl));
        let want_a = Set { ttl, values: vec![record.address.to_string()] };
        let marker = vec![quote(&record.owner.marker())];
        let mut changes = Vec::new();
        match (&at.a, &at.txt) {
            (Some(a), Some(_)) if *a == want_a => return Ok(()),
            (Some(_), _) => changes.push(change(ChangeAction::Upsert, &name, RrType::A, ttl, &want_a.values)?),
            (None, _) => changes.push(change(ChangeAction::Create, &name, RrType::A, ttl, &want_a.values)?),
        }
        // The marker, when it is there, is ours (checked above) and stays as it is.
        if at.txt.is_none() {
            changes.push(change(ChangeAction::Create, &name, RrType::Txt, ttl, &marker)?);
        }
        self.apply(changes, "kasm-autoscale: A record of an autoscaled VM").await
    }

    async fn delete_a(&self, name: &str, owner: &DnsOwner) -> Result<(), DnsError> {
        let name = normalize_name(name);
        let at = self.read_name(&name).await?;
        match at.ownership(owner) {
            Ownership::Free => Ok(()),
            Ownership::Foreign(why) => Err(DnsError::NotOurs { provider: NAME, name, why }),
            Ownership::Ours { .. } => {
                let mut changes = Vec::new();
                if let Some(a) = &at.a {
                    changes.push(change(ChangeAction::Delete, &name, RrType::A, a.ttl, &a.values)?);
                }
                if let Some(t) = &at.txt {
                    changes.push(change(ChangeAction::Delete, &name, RrType::Txt, t.ttl, &t.values)?);
                }
                self.apply(changes, "kasm-autoscale: the VM is gone").await
            }
        }
    }

    async fn list_owned(&self, deployment: &str) -> Result<Vec<OwnedRecord>, DnsError> {
        let zone = self.read_zone().await?;
        Ok(zone
            .into_iter()
            .filter_map(|(name, at)| {
                let owner = match at.texts().as_deref() {
                    Some([one]) => DnsOwner::parse_marker(one)?,
                    _ => return None,
                };
                (owner.deployment == deployment).then(|| OwnedRecord {
                    address: at.a.as_ref().and_then(|a| a.values.first()).and_then(|v| v.parse::<Ipv4Addr>().ok()),
                    name,
                    owner,
                })
            })
            .collect())
    }
}

/// A ChangeResourceRecordSets failure: the batch's own messages (InvalidChangeBatch lists one per
/// refused change) are read, so a batch refused because the records changed since our read is told
/// apart from an invalid one.
fn change_error(e: SdkError<ChangeResourceRecordSetsError, HttpResponse>) -> DnsError {
    if let SdkError::ServiceError(ctx) = &e
        && let ChangeResourceRecordSetsError::InvalidChangeBatch(b) = ctx.err()
    {
        let mut msgs: Vec<&str> = b.messages().iter().map(String::as_str).collect();
        msgs.extend(b.message());
        let joined = msgs.join("; ");
        return classify("ChangeResourceRecordSets", Some("InvalidChangeBatch"), Some(&joined), None, None);
    }
    from_sdk("ChangeResourceRecordSets", e)
}

/// Turns an SDK failure into a [`DnsError`]: the service's error code when there is one, else the kind
/// of failure (timeouts and connection failures are transient). Never the raw response.
fn from_sdk<E>(op: &str, e: SdkError<E, HttpResponse>) -> DnsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(why) = crate::aws_error::credentials_failure(&e) {
        return DnsError::Unauthenticated { provider: NAME, message: format!("{op}: {why}") };
    }
    match &e {
        SdkError::ServiceError(ctx) => {
            let raw = ctx.raw();
            let retry_after =
                raw.headers().get("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
            classify(op, ctx.err().code(), ctx.err().message(), Some(raw.status().as_u16()), retry_after)
        }
        _ => DnsError::Transient { provider: NAME, message: format!("{op}: {}", crate::aws_error::describe(&e)) },
    }
}

/// The one place Route 53 error codes become error classes.
fn classify(
    op: &str,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    retry_after: Option<Duration>,
) -> DnsError {
    let code_s = code.unwrap_or("");
    let text = message.unwrap_or("");
    let message = format!(
        "{op}: {}{}",
        if code_s.is_empty() { "an error without a code" } else { code_s },
        if text.is_empty() { String::new() } else { format!(": {text}") }
    );
    let p = NAME;
    match code_s {
        "NoSuchHostedZone" => DnsError::ZoneNotFound { provider: p, message },
        // Route 53's words for a change refused because the records are not what the batch expected
        // (created meanwhile, deleted meanwhile, changed meanwhile).
        "InvalidChangeBatch"
            if ["already exists", "but it was not found", "do not match the current values"]
                .iter()
                .any(|m| text.contains(m)) =>
        {
            DnsError::Conflict { provider: p, message }
        }
        // "Wait, in intervals of increasing duration, before you try the request again" (API reference).
        "PriorRequestNotComplete" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            DnsError::RateLimited { provider: p, message, retry_after }
        }
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
            DnsError::PermissionDenied { provider: p, message }
        }
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "MissingAuthenticationToken"
        | "UnrecognizedClientException"
        | "IncompleteSignature" => DnsError::Unauthenticated { provider: p, message },
        "InternalFailure" | "InternalError" | "ServiceUnavailable" => DnsError::Transient { provider: p, message },
        "InvalidChangeBatch" | "InvalidInput" | "InvalidArgument" | "ValidationError" | "InvalidDomainName" => {
            DnsError::Invalid { provider: p, message }
        }
        _ => match status {
            Some(s) if s >= 500 => DnsError::Transient { provider: p, message },
            Some(429) => DnsError::RateLimited { provider: p, message, retry_after },
            Some(401) => DnsError::Unauthenticated { provider: p, message },
            Some(403) => DnsError::PermissionDenied { provider: p, message },
            Some(404) => DnsError::ZoneNotFound { provider: p, message },
            _ => DnsError::Invalid { provider: p, message },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ErrorClass;

    #[test]
    fn txt_values_are_unquoted_as_route53_answers_them() {
        assert_eq!(unquote("\"kasm-autoscale deployment=d claim=c\""), "kasm-autoscale deployment=d claim=c");
        assert_eq!(unquote(r#""a \"b\" \\ c""#), r#"a "b" \ c"#);
        assert_eq!(unquote("\"one\" \"two\""), "\"one\" \"two\"", "several strings are no marker");
        assert_eq!(unquote("bare"), "bare");
        assert_eq!(unquote(&quote(r#"x "y" \z"#)), r#"x "y" \z"#);
    }

    #[test]
    fn hosted_zone_ids_are_read_both_ways() {
        assert_eq!(zone_id("Z0123456789ABCDEFGHIJ").unwrap(), "Z0123456789ABCDEFGHIJ");
        assert_eq!(zone_id(" /hostedzone/Z01 ").unwrap(), "Z01");
        for bad in ["", "/hostedzone/", "Z01/../x", "Z 01"] {
            assert!(zone_id(bad).unwrap_err().contains("hosted_zone_id"), "{bad:?}");
        }
    }

    #[test]
    fn error_codes_map_to_classes() {
        let c = |code: &str, msg: &str, status: u16| classify("Op", Some(code), Some(msg), Some(status), None).class();
        assert_eq!(c("NoSuchHostedZone", "No hosted zone found with ID: Z1", 404), ErrorClass::NotFound);
        assert_eq!(
            c(
                "InvalidChangeBatch",
                "Tried to create resource record set [name='a.example.com.', type='A'] but it already exists",
                400
            ),
            ErrorClass::Conflict
        );
        assert_eq!(
            c(
                "InvalidChangeBatch",
                "Tried to delete resource record set [name='a.example.com.', type='TXT'] but it was not found",
                400
            ),
            ErrorClass::Conflict
        );
        assert_eq!(
            c("InvalidChangeBatch", "RRSet with DNS name a.other.com. is not permitted in zone example.com.", 400),
            ErrorClass::Invalid
        );
        assert_eq!(c("PriorRequestNotComplete", "", 400), ErrorClass::RateLimited);
        assert_eq!(c("Throttling", "Rate exceeded", 400), ErrorClass::RateLimited);
        assert_eq!(c("AccessDenied", "User is not authorized", 403), ErrorClass::Permission);
        assert_eq!(c("InvalidClientTokenId", "", 403), ErrorClass::Auth);
        assert_eq!(c("SomethingNew", "", 503), ErrorClass::Transient);
        assert_eq!(c("SomethingNew", "", 400), ErrorClass::Invalid);
        let e = classify("ListResourceRecordSets", Some("Throttling"), None, Some(400), Some(Duration::from_secs(3)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.to_string().contains("ListResourceRecordSets: Throttling"), "{e}");
    }

    /// The stack's roles (infra/template.yaml) allow exactly the two Route 53 calls made here, and only
    /// on names starting with `kasm-`, which every record name does (it is the claim's VM name).
    #[test]
    fn the_stack_grants_what_the_backend_calls_and_no_more() {
        let t = include_str!("../../../../infra/template.yaml");
        let actions: std::collections::BTreeSet<&str> = t
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']'))
            .filter(|w| w.starts_with("route53:"))
            .collect();
        assert_eq!(
            actions.into_iter().collect::<Vec<_>>(),
            vec!["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"]
        );
        assert!(t.contains(r#""route53:ChangeResourceRecordSetsNormalizedRecordNames": ["kasm-*"]"#));
        assert!(t.contains(r#""route53:ChangeResourceRecordSetsRecordTypes": [A, TXT]"#));
        let now = chrono::Utc::now();
        let claim = crate::model::Instance::new_claim(
            crate::model::ClaimId::generate(now),
            "a",
            "p",
            "aws",
            crate::model::OsFamily::Linux,
            now,
        );
        let name = crate::dns::fqdn(&claim.vm_name, "Agents.Example.com").unwrap();
        assert!(name.starts_with("kasm-") && name == name.to_ascii_lowercase(), "{name}");
    }

    #[test]
    fn half_given_credentials_are_refused_naming_the_config() {
        let cfg: Route53DnsConfig = serde_json::from_value(serde_json::json!({
            "name": "r53", "hosted_zone_id": "Z1", "aws_access_key_id": "env:KASM_TEST_NEVER_SET"
        }))
        .unwrap();
        let e = Route53Dns::from_config(&cfg, Arc::new(crate::secrets::StaticSecrets::default())).unwrap_err();
        assert!(matches!(e, DnsError::Invalid { .. }) && e.to_string().contains("DNS-provider config r53"), "{e}");
        let bad: Route53DnsConfig =
            serde_json::from_value(serde_json::json!({"name": "r53", "hosted_zone_id": "not a zone"})).unwrap();
        let e = Route53Dns::from_config(&bad, Arc::new(crate::secrets::StaticSecrets::default())).unwrap_err();
        assert!(e.to_string().contains("hosted_zone_id `not a zone`"), "{e}");
    }

    #[tokio::test]
    async fn a_secret_that_does_not_resolve_is_named_never_shown() {
        let cfg: Route53DnsConfig = serde_json::from_value(serde_json::json!({
            "name": "r53", "hosted_zone_id": "Z1",
            "aws_access_key_id": "env:KASM_TEST_DNS_ID_NEVER_SET",
            "aws_secret_access_key": "env:KASM_TEST_DNS_SECRET_NEVER_SET",
            "endpoint_url": "http://127.0.0.1:1"
        }))
        .unwrap();
        // Built without reading the secret; the first call fails on it, naming the reference.
        let d = Route53Dns::from_config(&cfg, Arc::new(crate::secrets::LocalSecrets)).expect("no I/O at build");
        let owner = DnsOwner { deployment: "d".into(), claim: crate::model::ClaimId("c".into()) };
        let e = d.delete_a("kasm-c.example.com", &owner).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Auth, "{e}");
        assert!(e.to_string().contains("KASM_TEST_DNS_ID_NEVER_SET"), "{e}");
    }
}
