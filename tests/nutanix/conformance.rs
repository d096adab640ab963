//! The shared conformance suite with faults against the Prism Central test server.

use integration_tests::nutanix_server::{CANDIDATE_UUID, NutanixHarness, NutanixTestServer, PASSWORD};
use shared::http::RetryConfig;
use shared::providers::nutanix::NutanixProvider;
use std::time::Duration;

/// The client gives up on an answer after 1 s (the harness stalls 2.5 s for a timeout), waits out a
/// throttling wait of up to 2 s, and lists in pages of 2.
#[tokio::test]
async fn passes_the_conformance_suite() {
    conformance(NutanixTestServer::start().await, "conformance-ntnx").await;
}

/// The same on the v4 APIs: the clone carries the claim as its request id.
#[tokio::test]
async fn passes_the_conformance_suite_on_v4() {
    conformance(NutanixTestServer::start_v4().await, "conformance-ntnx-v4").await;
}

async fn conformance(server: NutanixTestServer, deployment: &str) {
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = NutanixProvider::from_config(&super::config(&server), &super::env(PASSWORD, retry, Duration::from_secs(1)))
        .expect("build")
        .with_page_size(2);
    let harness = NutanixHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, deployment).await;
    // The suite cleaned up after itself: no VM is left, and no vdisk but the candidate's.
    assert!(server.vms().is_empty(), "{:?}", server.vms());
    let disks = server.disks();
    assert!(disks.iter().all(|(vm, _)| vm == CANDIDATE_UUID), "{disks:?}");
}
