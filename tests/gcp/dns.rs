//! Cloud DNS on the test server: the shared DNS conformance suite, atomic changes, and recomputing a
//! change refused as stale.

use integration_tests::fake_api::Fault;
use integration_tests::gcp_server::{DOMAIN, GcpTestServer, MANAGED_ZONE, PROJECT, Zone, err, key_file};
use shared::config::{GcpDnsConfig, SecretRef};
use shared::dns::{ARecord, DnsOwner, DnsProvider};
use shared::model::ClaimId;
use shared::providers::gcp::dns::GcpDns;

use super::secrets;

const CHANGES: &str = "POST /dns/v1/projects/{project}/managedZones/{managedZone}/changes";

fn cfg(server: &GcpTestServer) -> GcpDnsConfig {
    GcpDnsConfig {
        name: "cloud-dns".into(),
        gcp_credentials: SecretRef::Env("GCP_CREDS".into()),
        gcp_project: PROJECT.into(),
        managed_zone: MANAGED_ZONE.into(),
        ttl: 60,
        endpoint_url: Some(server.url.clone()),
        ca_bundle: None,
    }
}

async fn backend(server: &GcpTestServer) -> GcpDns {
    GcpDns::from_config(&cfg(server), secrets(&key_file(&server.url))).expect("build")
}

#[tokio::test]
async fn passes_the_dns_conformance_suite() {
    let server = GcpTestServer::start().await;
    server.add_rrset(DOMAIN, "A", &["1.2.3.4"]);
    let dns = backend(&server).await.with_page_size(2);
    shared::dns::conformance::run_all_with(&dns, &Zone(server.clone()), DOMAIN, "conformance-gcp-dns", 5).await;
    // The operator's records at the apex are untouched.
    let apex: Vec<(String, Vec<String>)> =
        server.rrsets().into_iter().filter(|r| r.name == format!("{DOMAIN}.")).map(|r| (r.kind, r.rrdatas)).collect();
    assert_eq!(
        apex,
        vec![
            ("NS".to_string(), vec!["ns-cloud-a1.googledomains.com.".to_string()]),
            ("A".to_string(), vec!["1.2.3.4".to_string()])
        ]
    );
}

#[tokio::test]
async fn an_upsert_is_one_atomic_change_and_a_stale_one_is_recomputed() {
    let server = GcpTestServer::start().await;
    let dns = backend(&server).await;
    let owner = DnsOwner { deployment: "prod".into(), claim: ClaimId("01jabc".into()) };
    let name = format!("kasm-01jabc.{DOMAIN}");
    let r = ARecord { name: name.clone(), address: "10.0.0.7".parse().unwrap(), ttl: 60, owner: owner.clone() };
    dns.upsert_a(&r).await.unwrap();
    let change = server.api().last(CHANGES).unwrap();
    let b: serde_json::Value = serde_json::from_str(&change.body).unwrap();
    assert_eq!(b["additions"].as_array().unwrap().len(), 2, "the A set and its marker in one change: {b}");
    assert_eq!(b["additions"][0]["name"], format!("{name}."));
    assert_eq!(b["additions"][1]["rrdatas"][0], format!("\"{}\"", owner.marker()));

    // A change applied whose answer was lost: sent again (it is safe to) and refused as stale (409),
    // read again and found done; or, where the HTTP layer cannot tell it was not answered, a
    // retryable error whose repeat finds the zone as wanted.
    server.api().inject(CHANGES, Fault::DropAnswer, 0, 1);
    let moved = ARecord { address: "10.0.0.8".parse().unwrap(), ..r.clone() };
    let before = server.api().count(CHANGES);
    match dns.upsert_a(&moved).await {
        Ok(()) => assert_eq!(server.api().count(CHANGES) - before, 2, "the lost change and its refused repeat"),
        Err(e) => assert!(matches!(e, shared::dns::DnsError::Transient { .. }), "{e:?}"),
    }
    let before = server.api().count(CHANGES);
    dns.upsert_a(&moved).await.expect("repeating after a lost answer succeeds");
    assert_eq!(server.api().count(CHANGES), before, "nothing left to change");
    let a = server.rrsets().into_iter().find(|s| s.kind == "A" && s.name == format!("{name}.")).unwrap();
    assert_eq!(a.rrdatas, ["10.0.0.8"]);

    // A 412 from a concurrent writer: read again, recomputed, applied.
    server.api().inject(
        CHANGES,
        Fault::Answer(err(412, "conditionNotMet", "Precondition not met for 'entity.change.deletions[0]'")),
        0,
        1,
    );
    dns.upsert_a(&ARecord { address: "10.0.0.9".parse().unwrap(), ..r.clone() }).await.expect("recomputed");
    dns.delete_a(&name, &owner).await.unwrap();
    assert!(server.rrsets().iter().all(|s| s.name != format!("{name}.")), "{:?}", server.rrsets());

    // A name outside the managed zone is refused before any change.
    let outside = ARecord { name: "kasm-1.example.org".into(), ..r };
    assert!(matches!(dns.upsert_a(&outside).await, Err(shared::dns::DnsError::Invalid { .. })));
}
