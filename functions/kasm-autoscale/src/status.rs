//! `kasm-autoscale status --store URL [--json]`: the VMs we own, by config and state, with their age
//! and last error.

use chrono::Utc;
use std::io::Write;

use shared::store::InstanceFilter;
use shared::wiring;

/// Runs `status`.
pub async fn run(store_url: &str, json: bool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let store = match wiring::open_store_async(store_url, false).await {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    let mut claims = match store.list(&InstanceFilter::default()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return 1;
        }
    };
    claims.sort_by(|a, b| a.autoscale_config.cmp(&b.autoscale_config).then(a.created_at.cmp(&b.created_at)));
    // Written sanitised; sanitised again for what an older version (or a hand edit) stored.
    for c in &mut claims {
        c.last_error = c.last_error.as_deref().map(shared::http::sanitise);
    }
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&claims).unwrap_or_default());
        return 0;
    }
    // Provider configs that cannot be built fail alone (bulkhead): said here, with why.
    if let Ok(Some(configs)) = store.load_configs().await {
        let set = wiring::providers(&configs, std::sync::Arc::new(shared::secrets::LocalSecrets));
        for (name, e) in set.failures() {
            let _ = writeln!(out, "UNUSABLE VM-provider config {name}: {}", shared::http::sanitise(&e.to_string()));
        }
        // Predictive scaling: the forecast of each config's newest decision.
        for a in configs.autoscale_configs.iter().filter(|a| a.predictive_scaling.records()) {
            let name = &a.autoscale_config_name;
            if let Ok(d) = store.decisions(Some(name), 1).await
                && let Some(f) = d.first().and_then(|d| d.plan.summary.forecast.as_ref())
            {
                let _ = writeln!(out, "FORECAST {name}: {}", crate::plan::forecast_text(f));
            }
        }
    }
    if claims.is_empty() {
        let _ = writeln!(out, "no VMs owned");
        return 0;
    }
    let now = Utc::now();
    let _ = writeln!(out, "{:<20} {:<28} {:<10} {:>8} {:<16} LAST ERROR", "CONFIG", "CLAIM", "STATE", "AGE", "VM");
    for c in claims {
        let age = (now - c.created_at).num_seconds().max(0);
        let _ = writeln!(
            out,
            "{:<20} {:<28} {:<10} {:>8} {:<16} {}",
            c.autoscale_config,
            c.id,
            c.state,
            human(age),
            c.vm_id.as_deref().unwrap_or("-"),
            c.last_error.as_deref().unwrap_or("")
        );
    }
    0
}

fn human(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
