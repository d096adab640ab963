//! What the `kube` crate adds to a Lambda binary (issue 16): `cargo build --release` (baseline: what our
//! binaries link anyway) vs `cargo build --release --features kube` (the calls our KubeVirt and Harvester
//! providers make, through `kube`). README "KubeVirt", "Why not the `kube` crate", has the result.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = std::env::args().nth(1).unwrap_or_else(|| "https://127.0.0.1:6443".into());
    let http = reqwest::Client::builder().build()?;
    let v: serde_json::Value = http.get(format!("{url}/version")).send().await?.json().await?;
    println!("{v}");
    #[cfg(feature = "kube")]
    {
        use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
        use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
        use kube::discovery::ApiResource;
        let mut cfg = kube::Config::new(url.parse()?);
        cfg.auth_info.token = Some(std::env::var("TOKEN").unwrap_or_default().into());
        let client = kube::Client::try_from(cfg)?;
        let ns = "kasm";
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default().labels("kasm-autoscale/deployment=x");
        println!("{}", secrets.list(&lp).await?.items.len());
        let s = Secret {
            metadata: kube::api::ObjectMeta { name: Some("a".into()), ..Default::default() },
            ..Default::default()
        };
        secrets.create(&PostParams::default(), &s).await?;
        secrets.delete("a", &DeleteParams::default()).await?;
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        println!("{}", pvcs.list(&lp).await?.items.len());
        let ar = ApiResource {
            group: "kubevirt.io".into(),
            version: "v1".into(),
            api_version: "kubevirt.io/v1".into(),
            kind: "VirtualMachine".into(),
            plural: "virtualmachines".into(),
        };
        let vms: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
        let vm: DynamicObject = serde_json::from_value(
            serde_json::json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "a"}}),
        )?;
        vms.create(&PostParams::default(), &vm).await?;
        println!("{}", vms.list(&lp).await?.items.len());
    }
    Ok(())
}
