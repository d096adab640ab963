//! `kasm-autoscale plan [--config FILE...] [--store URL] [--json]`: what the evaluator would do now,
//! with its inputs and reasons — changing nothing. Exit 0, or 3 when the plan would change something.

use std::io::Write;
use std::path::PathBuf;

use shared::engine::{Action, Input, Plan};
use shared::wiring;

use crate::configs;

/// Runs `plan`.
pub async fn run(
    files: &[PathBuf],
    store_url: Option<&str>,
    only: Option<&str>,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let store_url = store_url.unwrap_or("memory:");
    let store = match wiring::open_store_async(store_url, false).await {
        Ok(s) => s,
        Err(e) => return fail(err, &e.to_string()),
    };
    let set = match configs::from_files_or_store(files, store.as_ref(), err).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let secrets = wiring::secrets_for(store_url).await;
    let kasm = match wiring::kasm(&set, secrets.as_ref()).await {
        Ok(k) => k,
        Err(e) => return fail(err, &e.to_string()),
    };
    let ctx = wiring::local_ctx(set, store, kasm, Default::default(), secrets).await;
    let plans = match shared::app::plan(&ctx, only).await {
        Ok(p) => p,
        Err(e) => return fail(err, &format!("nothing planned: {e}")),
    };
    let changes = plans.iter().any(|(_, p)| p.changes_something());
    for n in shared::dns::registry::notes(&ctx.configs) {
        let _ = writeln!(err, "note: {n}");
    }
    if json {
        let v: Vec<_> = plans.iter().map(|(_, p)| p).collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for (input, plan) in &plans {
            let _ = write!(out, "{}", text(input, plan));
        }
    }
    if changes { 3 } else { 0 }
}

fn fail(err: &mut dyn Write, msg: &str) -> i32 {
    let _ = writeln!(err, "error: {}", shared::http::sanitise(msg));
    1
}

/// One line of what predictive scaling saw: mode, lead time, the forecast bucket and what it adds, or
/// why nothing is forecast.
pub fn forecast_text(f: &shared::engine::ForecastSummary) -> String {
    let lead = if f.lead_samples > 0 {
        format!("lead {} s (p90 of {} boots)", f.lead_seconds, f.lead_samples)
    } else {
        format!("lead {} s (provision_timeout / 2)", f.lead_seconds)
    };
    match (&f.bucket, &f.note) {
        (Some(b), _) => format!(
            "{}, {lead}: {b} from {} weeks{}: cores {} memory_mb {} gpus {} sessions {} (in use cores {} sessions {}); adds cores {} sessions {}{}",
            f.mode,
            f.weeks,
            f.today_percent.map_or(String::new(), |p| format!(", today at {p} % of the history's level")),
            f.demand.cores,
            f.demand.memory_mb,
            f.demand.gpus,
            f.demand_sessions,
            f.in_use.cores,
            f.in_use_sessions,
            f.extra.cores,
            f.extra_sessions,
            if f.applied { "" } else { " (not applied)" }
        ),
        (None, Some(why)) => format!("{}, {lead}: nothing forecast: {why}", f.mode),
        (None, None) => format!("{}, {lead}", f.mode),
    }
}

/// The human-readable plan of one config.
pub fn text(input: &Input, plan: &Plan) -> String {
    use std::fmt::Write;
    let s = &plan.summary;
    let c = &input.config;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} ({:?}, zone {}, pool {}): {}",
        plan.autoscale_config,
        c.autoscale_type,
        c.zone_id,
        c.server_pool_id,
        if s.active { "active" } else { "inactive (schedule)" }
    );
    let _ = writeln!(
        o,
        "  free/standby  cores {}/{}  memory_mb {}/{}  gpus {}/{}  sessions available {}/{}",
        s.free.cores,
        s.standby.cores,
        s.free.memory_mb,
        s.standby.memory_mb,
        s.free.gpus,
        s.standby.gpus,
        s.available_sessions,
        s.minimum_sessions
    );
    let none = shared::model::Resources::default();
    if s.staging != none || s.staging_unmet != none || s.staging_sessions > 0 || s.queued_requests > 0 {
        let _ = writeln!(
            o,
            "  staging       cores {}  memory_mb {}  gpus {}  session slots {}  unmet cores {}  memory_mb {}  gpus {}",
            s.staging.cores,
            s.staging.memory_mb,
            s.staging.gpus,
            s.staging_sessions,
            s.staging_unmet.cores,
            s.staging_unmet.memory_mb,
            s.staging_unmet.gpus
        );
        let _ = writeln!(
            o,
            "  queued        {} requests; counted (aggressive_scaling) cores {}  memory_mb {}  gpus {}",
            s.queued_requests, s.queued.cores, s.queued.memory_mb, s.queued.gpus
        );
    }
    if let Some(f) = &s.forecast {
        let _ = writeln!(o, "  forecast      {}", forecast_text(f));
    }
    let states: Vec<String> = s.vms_by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        o,
        "  VMs           {} (owned {} / max {}), live sessions {}",
        if states.is_empty() { "none".into() } else { states.join(", ") },
        s.owned_total,
        s.max_instances,
        s.sessions
    );
    let mut what = Vec::new();
    if plan.create > 0 {
        what.push(if plan.replacements.is_empty() {
            format!("create {}", plan.create)
        } else {
            let old: Vec<&str> = plan.replacements.iter().map(|c| c.as_str()).collect();
            format!("create {} ({} replacing {} for rotation)", plan.create, old.len(), old.join(", "))
        });
    }
    for a in &plan.actions {
        what.push(match a {
            Action::Activate { claim, .. } => format!("activate {claim}"),
            Action::Drain { claim, replaced_by: Some(new), .. } => {
                format!("drain {claim} (rotated out, replaced by {new})")
            }
            Action::Drain { claim, .. } => format!("drain {claim}"),
            Action::Undrain { claim, .. } => format!("undrain {claim}"),
            Action::Destroy { claim, .. } => format!("destroy {claim}"),
        });
    }
    let _ = writeln!(o, "  plan          {}", if what.is_empty() { "no change".into() } else { what.join(", ") });
    for r in &plan.reasons {
        let _ = writeln!(o, "    - {r}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::forecast_text;
    use shared::engine::ForecastSummary;
    use shared::model::Resources;

    #[test]
    fn the_forecast_line_names_the_bucket_today_s_level_and_what_it_adds() {
        let f = ForecastSummary {
            mode: "on".into(),
            lead_seconds: 270,
            lead_samples: 12,
            bucket: Some("Mon 08:45".into()),
            weeks: 3,
            demand: Resources::new(19.0, 0.0, 0.0),
            in_use: Resources::new(10.0, 0.0, 0.0),
            extra: Resources::new(9.0, 0.0, 0.0),
            today_percent: Some(50.0),
            applied: true,
            ..ForecastSummary::default()
        };
        assert_eq!(
            forecast_text(&f),
            "on, lead 270 s (p90 of 12 boots): Mon 08:45 from 3 weeks, today at 50 % of the history's level: cores 19 memory_mb 0 gpus 0 sessions 0 (in use cores 10 sessions 0); adds cores 9 sessions 0"
        );
        let quiet = ForecastSummary { today_percent: None, applied: false, ..f };
        assert!(
            forecast_text(&quiet).contains("Mon 08:45 from 3 weeks: cores 19")
                && forecast_text(&quiet).ends_with("(not applied)")
        );
        let paused = ForecastSummary {
            mode: "on".into(),
            lead_seconds: 300,
            note: Some("today does not follow the history".into()),
            paused: true,
            ..ForecastSummary::default()
        };
        assert_eq!(
            forecast_text(&paused),
            "on, lead 300 s (provision_timeout / 2): nothing forecast: today does not follow the history"
        );
    }
}
