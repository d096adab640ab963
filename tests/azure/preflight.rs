//! `preflight` against the test server: every check passes on a good config, and each fails naming the
//! field when its resource is missing.

use integration_tests::azure_server::{AzureTestServer, CLIENT_SECRET};
use shared::config::VmProviderConfig;
use shared::providers::azure::CHECKS;

use super::{config, env, fast_retry, provider_cfg};

fn lines(checks: &[shared::providers::Check]) -> Vec<String> {
    checks.iter().map(|c| format!("{} {}: {}", if c.ok { "PASS" } else { "FAIL" }, c.name, c.detail)).collect()
}

#[tokio::test]
async fn every_check_passes_on_a_good_config_and_fails_naming_the_field_otherwise() {
    let server = AzureTestServer::start().await;
    let mut cfg = config(&server);
    cfg.startup_script = "#!/bin/bash\necho {server_id}\n".into();
    let checks = provider_cfg(&cfg, CLIENT_SECRET).preflight().await;
    assert_eq!(checks.iter().map(|c| c.name).collect::<Vec<_>>(), CHECKS.to_vec());
    assert!(checks.iter().all(|c| c.ok), "{:#?}", lines(&checks));
    // Read-only: nothing but GETs (and the token) reached the server.
    assert!(server.requests().iter().all(|r| r.method == "GET" || r.route.ends_with("/token")));

    let mut bad = cfg.clone();
    bad.azure_vm_size = "Standard_Z99".into();
    bad.azure_subnet = bad.azure_subnet.replace("/subnets/default", "/subnets/missing");
    bad.azure_network_sg = Some(bad.azure_network_sg.unwrap().replace("kasm-nsg", "gone-nsg"));
    bad.azure_image_reference.0 = shared::config::providers::AzureImageReference::Marketplace {
        publisher: "canonical".into(),
        offer: "no-such-offer".into(),
        sku: "server".into(),
        version: "latest".into(),
    };
    bad.azure_resource_group = "no-such-rg".into();
    server.set_quota(0);
    let checks = provider_cfg(&bad, CLIENT_SECRET).preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    assert_eq!(
        failed,
        ["resource_group", "subnet", "network_security_group", "vm_size", "image", "quota"],
        "{:#?}",
        lines(&checks)
    );
    let text = lines(&checks).join("\n");
    for field in ["azure_subnet", "azure_network_sg", "azure_vm_size", "azure_image_reference", "ResourceGroupNotFound"]
    {
        assert!(text.contains(field), "{field}: {text}");
    }

    // Wrong credentials: one failed credentials check, the rest not checked; the secret never shown.
    let checks = shared::providers::registry::preflight(
        &VmProviderConfig::Azure(cfg.clone()),
        &env("wrong-secret-Yy7", fast_retry(), std::time::Duration::from_secs(5)),
    )
    .await;
    assert!(!checks[0].ok && checks[0].detail.contains("AADSTS7000215"), "{:#?}", lines(&checks));
    assert!(!lines(&checks).join("\n").contains("wrong-secret-Yy7"));
}
