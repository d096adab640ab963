//! `decide`: the scaling rule. (Being implemented; see engine/mod.rs for the contract.)

use chrono::{DateTime, Utc};

use super::{Input, Plan, Summary};

/// Decides what to do for one autoscale config at `now`.
pub fn decide(input: &Input, now: DateTime<Utc>) -> Plan {
    let _ = now;
    Plan {
        autoscale_config: input.config.autoscale_config_name.clone(),
        create: 0,
        actions: Vec::new(),
        request_downscale_at: input.control.request_downscale_at,
        reasons: vec!["engine not implemented yet".into()],
        summary: Summary::default(),
    }
}

/// Decides for many configs (one call per config; no shared state).
pub fn decide_all(inputs: &[Input], now: DateTime<Utc>) -> Vec<Plan> {
    inputs.iter().map(|i| decide(i, now)).collect()
}
