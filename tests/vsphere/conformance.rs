//! The shared conformance suite with faults against the vCenter test server.

use integration_tests::vsphere_server::{PASSWORD, VsphereHarness, VsphereTestServer};
use shared::http::RetryConfig;
use shared::providers::vsphere::VsphereProvider;
use std::time::Duration;

/// The client gives up on an answer after 1 s (the harness stalls 2.5 s for a timeout) and waits
/// out a throttling wait of up to 2 s.
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = VsphereTestServer::start().await;
    let free = server.free_bytes();
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = VsphereProvider::from_config(&super::config(&server), &super::env(PASSWORD, retry, Duration::from_secs(1)))
        .expect("build");
    let harness = VsphereHarness::new(server.clone(), Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-vsphere").await;
    // The suite cleaned up after itself: no VM but the template, and every clone's disk space back.
    assert!(server.vms().is_empty(), "{:?}", server.vms());
    assert_eq!(server.free_bytes(), free);
}
