//! `preflight` against the test server: every check passes on a good config, and each fails naming the
//! field when its resource is missing; VM size restrictions from Resource Skus; images by resource id.

use integration_tests::azure_server::{
    AzureTestServer, CLIENT_SECRET, GALLERY, GALLERY_IMAGE, GALLERY_VERSION, MANAGED_IMAGE, RESOURCE_GROUP,
    RESTRICTED_SIZE, ZONE_RESTRICTED_SIZE, resource_id,
};
use shared::config::VmProviderConfig;
use shared::config::providers::AzureImageReference;
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

#[tokio::test]
async fn vm_size_restrictions_from_resource_skus() {
    let server = AzureTestServer::start().await;
    let cfg = config(&server);
    let vm_size = |cfg: &shared::config::providers::AzureConfig| {
        let p = provider_cfg(cfg, CLIENT_SECRET);
        async move { p.preflight().await.into_iter().find(|c| c.name == "vm_size").expect("vm_size check") }
    };
    let ok = vm_size(&cfg).await;
    assert!(ok.ok && ok.detail.contains("Standard_D2s_v5") && ok.detail.contains("2 vCPUs"), "{ok:?}");
    // Resource Skus – List, filtered to the region, every page read (the server pages 3 at a time).
    let reqs: Vec<_> = server.requests().into_iter().filter(|r| r.route.ends_with("/Microsoft.Compute/skus")).collect();
    assert_eq!(reqs.len(), 2, "{:?}", reqs.iter().map(|r| r.path.clone()).collect::<Vec<_>>());
    assert!(reqs.iter().all(|r| r.param("api-version") == Some("2021-07-01")));
    assert!(reqs.iter().all(|r| r.param("$filter") == Some("location eq 'eastus'")));

    let mut restricted = cfg.clone();
    restricted.azure_vm_size = RESTRICTED_SIZE.into();
    let c = vm_size(&restricted).await;
    assert!(!c.ok, "{c:?}");
    assert!(
        c.detail.contains("azure_vm_size")
            && c.detail.contains(RESTRICTED_SIZE)
            && c.detail.contains("NotAvailableForSubscription"),
        "{c:?}"
    );

    let mut absent = cfg.clone();
    absent.azure_vm_size = "Standard_Z99".into();
    let c = vm_size(&absent).await;
    assert!(!c.ok && c.detail.contains("azure_vm_size: Standard_Z99 is not a VM size"), "{c:?}");

    // A zone restriction holds only a VM the override puts in that zone.
    let mut zonal = cfg.clone();
    zonal.azure_vm_size = ZONE_RESTRICTED_SIZE.into();
    assert!(vm_size(&zonal).await.ok, "a regional VM is not held by a zone restriction");
    let mut o = zonal.azure_config_override.clone().unwrap();
    o.0.insert("zones".into(), serde_json::json!(["2"]));
    zonal.azure_config_override = Some(o);
    let c = vm_size(&zonal).await;
    assert!(!c.ok && c.detail.contains("zone 2"), "{c:?}");
}

#[tokio::test]
async fn an_image_by_resource_id_is_resolved() {
    let server = AzureTestServer::start().await;
    let image = |id: String| {
        let mut cfg = config(&server);
        cfg.azure_image_reference.0 = AzureImageReference::Id { id };
        let p = provider_cfg(&cfg, CLIENT_SECRET);
        async move { p.preflight().await.into_iter().find(|c| c.name == "image").expect("image check") }
    };
    let compute = |kind: &str, name: &str| resource_id(RESOURCE_GROUP, "Microsoft.Compute", kind, name);
    let gallery = compute("galleries", GALLERY);

    let c = image(compute("images", MANAGED_IMAGE)).await;
    assert!(c.ok, "{c:?}");
    let c = image(format!("{gallery}/images/{GALLERY_IMAGE}/versions/{GALLERY_VERSION}")).await;
    assert!(c.ok, "{c:?}");
    let c = image(format!("{gallery}/images/{GALLERY_IMAGE}")).await;
    assert!(c.ok && c.detail.contains("1 versions"), "{c:?}");
    let reqs = server.requests();
    let get = |tail: &str| reqs.iter().find(|r| r.route.ends_with(tail)).unwrap_or_else(|| panic!("no {tail}"));
    assert_eq!(get("/images/{image}").param("api-version"), Some("2024-07-01"));
    assert_eq!(get("/versions/{version}").param("api-version"), Some("2024-03-03"));
    assert_eq!(get("/images/{image}/versions").param("api-version"), Some("2024-03-03"));

    for missing in [
        compute("images", "no-such-image"),
        format!("{gallery}/images/{GALLERY_IMAGE}/versions/9.9.9"),
        format!("{gallery}/images/no-such-definition"),
    ] {
        let c = image(missing.clone()).await;
        assert!(!c.ok, "{c:?}");
        assert_eq!(c.detail, format!("azure_image_reference.id: {missing} does not exist"));
    }
    let c = image(compute("disks", "not-an-image")).await;
    assert!(!c.ok && c.detail.contains("is neither a managed image"), "{c:?}");
}
