//! The shared provider conformance suite (v2, faults included) on the Azure test server.

use integration_tests::azure_server::{AzureHarness, AzureTestServer, CLIENT_SECRET};
use shared::http::RetryConfig;
use shared::providers::azure::AzureProvider;
use std::time::Duration;

use super::{config, env};

/// The client gives up on an answer after 1 s (the harness stalls 2.5 s for a timeout), waits out a
/// throttling wait of up to 2 s, and the server lists 2 VMs a page.
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = AzureTestServer::start().await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = AzureProvider::from_config(&config(&server), &env(CLIENT_SECRET, retry, Duration::from_secs(1)))
        .expect("build");
    let harness = AzureHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-az").await;
    // The suite cleaned up after itself, and so did the provider: no VM, disk, NIC or public IP is
    // left in the resource group — also from the creates that failed under a fault after their NIC
    // and public IP were made.
    assert!(server.resources().is_empty(), "left in the resource group: {:?}", server.resources());
}
