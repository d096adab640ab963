//! The shared conformance suites on the GCP test server.

use integration_tests::gcp_server::{GcpHarness, GcpTestServer, key_file};
use shared::http::RetryConfig;
use shared::providers::gcp::GcpProvider;
use std::time::Duration;

use super::{config, env};

/// The VM-provider suite with faults: the client gives up on an answer after 1 s (the harness stalls
/// 2.5 s for a timeout), retries twice, and lists in pages of 2.
#[tokio::test]
async fn passes_the_conformance_suite() {
    let server = GcpTestServer::start().await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = GcpProvider::from_config(&config(&server), &env(&key_file(&server.url), retry, Duration::from_secs(1)))
        .expect("build")
        .with_page_size(2);
    let harness = GcpHarness::new(server.clone(), 2, Duration::from_millis(2500));
    shared::providers::conformance::run_all(&p, &harness, "conformance-gcp").await;
    // The suite cleaned up after itself: no instance and no disk is left.
    assert!(server.instances().is_empty(), "{:?}", server.instances());
    assert!(server.disks().is_empty(), "disks left: {:?}", server.disks());
    // Tokens are cached: one for hundreds of calls, and one more after each of the four 401s the
    // suite answers (a refused token is dropped).
    assert_eq!(server.tokens_issued(), 1 + 4, "tokens for one provider");
}
