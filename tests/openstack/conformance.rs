//! The shared conformance suite (v2) with faults, against Nova behind the real Keystone.

use integration_tests::openstack_server::OpenstackHarness;
use shared::config::providers::OpenstackAuthMethod;
use shared::http::RetryConfig;
use shared::providers::openstack::OpenstackProvider;
use std::time::Duration;

use super::{World, env};

/// The client gives up on an answer after 2 s (the harness stalls 5 s for a timeout), waits out a
/// throttling wait of up to 2 s, and lists in pages of 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let w = World::new("conformance").await;
    let retry = RetryConfig {
        base: Duration::from_millis(5),
        cap: Duration::from_secs(2),
        max_retries: 2,
        budget: Duration::from_secs(10),
    };
    let p = OpenstackProvider::from_config(
        &w.config(OpenstackAuthMethod::ApplicationCredential),
        &env(w.secrets(), retry, Duration::from_secs(2)),
    )
    .expect("build")
    .with_page_size(2);
    let harness = OpenstackHarness::new(w.server.clone(), 2, Duration::from_secs(5));
    shared::providers::conformance::run_all(&p, &harness, "conformance-os").await;
    assert!(w.server.servers().is_empty(), "servers left: {:?}", w.server.servers());
    assert!(w.server.volumes().is_empty(), "volumes left: {:?}", w.server.volumes());
}
