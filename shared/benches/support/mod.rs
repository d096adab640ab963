//! Synthetic engine inputs for the `decide` benchmark and the `decide_rss` example: many autoscale
//! configs, each with agents (ours in every lifecycle state, plus the operator's own) and sessions.

use chrono::{DateTime, Duration, Utc};
use shared::config::AutoscaleConfig;
use shared::engine::{ControlState, Input, Timers};
use shared::kasm::{KasmServer, KasmSession, ServerKind};
use shared::model::{ClaimId, Instance, InstanceState, OsFamily, Resources};

/// A fixed instant, so every run decides the same thing.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// A UUID-shaped id (36 characters, like Kasm's), deterministic from two numbers.
fn uuid(a: usize, b: usize) -> String {
    format!("{:08x}-{:04x}-4000-8000-{:012x}", a, b & 0xffff, b)
}

/// `configs` inputs with `agents` Kasm records and `sessions` sessions each. Per config: 10% of the
/// records are the operator's own, the rest are ours (mostly running; some booting, draining, and a
/// pending claim without a record), standby and sessions vary so every path of the engine runs.
pub fn inputs(configs: usize, agents: usize, sessions: usize) -> Vec<Input> {
    let now = now();
    (0..configs)
        .map(|c| {
            let mut config = AutoscaleConfig::docker_agent(&format!("config-{c}"), "provider");
            config.standby_cores = (c % 5 * 32) as f64;
            config.standby_memory_mb = (c % 3 * 16384) as f64;
            config.aggressive_scaling = c % 2 == 0;
            let mut instances = Vec::with_capacity(agents);
            let mut servers = Vec::with_capacity(agents);
            for a in 0..agents {
                let id = uuid(c, a);
                let ours = a % 10 != 0;
                let state = match a % 10 {
                    1 => InstanceState::Booting,
                    2 => InstanceState::Draining,
                    _ => InstanceState::Running,
                };
                if ours {
                    let created = now - Duration::seconds(600 + a as i64 * 60);
                    let mut inst = Instance::new_claim(
                        ClaimId(format!("01jf{c:06}{a:06}zzzzzzzzzz")),
                        &config.autoscale_config_name,
                        "provider",
                        "aws",
                        OsFamily::Linux,
                        created,
                    );
                    inst.kasm_server_id = id.clone();
                    inst.state = state;
                    instances.push(inst);
                }
                servers.push(KasmServer {
                    server_id: id,
                    kind: ServerKind::Agent,
                    hostname: Some(format!("agent-{c}-{a}.internal")),
                    public_ip: Some(format!("10.{}.{}.{}", c / 256 % 256, c % 256, a % 256)),
                    zone_id: "zone".into(),
                    friendly_name: None,
                    autoscale_config_id: None,
                    server_pool_id: Some("pool".into()),
                    enabled: state != InstanceState::Draining && !(ours && state == InstanceState::Booting),
                    operational_status: "running".into(),
                    last_reported: Some(now - Duration::seconds((a % 7) as i64 * 30)),
                    reported: Resources::new(8.0, 32768.0, 0.0),
                    overridden: Resources::default(),
                    allocated: Resources::default(),
                    max_sessions: None,
                    agent_installed: false,
                });
            }
            // One claim still being created (no record yet).
            let mut pending = Instance::new_claim(
                ClaimId(format!("01jf{c:06}999999zzzzzzzzzz")),
                &config.autoscale_config_name,
                "provider",
                "aws",
                OsFamily::Linux,
                now - Duration::seconds(20),
            );
            pending.state = InstanceState::Creating;
            instances.push(pending);
            // Sessions on the first half of the records: the other half stays idle (scale-down candidates).
            let busy = (agents / 2).max(1);
            let sessions: Vec<KasmSession> = (0..sessions)
                .map(|s| {
                    let on = s % busy;
                    servers[on].allocated.cores += 0.5;
                    servers[on].allocated.memory_mb += 2048.0;
                    KasmSession {
                        kasm_id: uuid(c + 1_000_000, s),
                        server_id: servers[on].server_id.clone(),
                        resources: Resources::new(0.5, 2048.0, 0.0),
                        status: "running".into(),
                        ..Default::default()
                    }
                })
                .collect();
            Input {
                config,
                schedules: Vec::new(),
                max_instances: agents as u32 + 10,
                owned_total: instances.len() as u32,
                new_vm_size: Some(Resources::new(8.0, 32768.0, 0.0)),
                control: ControlState {
                    request_downscale_at: (c % 4 == 0).then(|| now - Duration::seconds(3600)),
                    ..ControlState::default()
                },
                timers: Timers::default(),
                instances,
                servers,
                sessions,
                staging: Vec::new(),
                queued: Vec::new(),
            }
        })
        .collect()
}

/// Turns on predictive scaling for every input, with a three-week history of an office's shape:
/// weekdays 07:00-19:00 UTC busy (up to the config's sessions' cores), other buckets observed idle,
/// and 20 measured boots — the forecast's whole path runs (confident buckets in the look-ahead).
pub fn with_forecasts(inputs: &mut [Input]) {
    use shared::engine::forecast::{self, DemandHistory};
    let now = now();
    for (c, input) in inputs.iter_mut().enumerate() {
        input.config.predictive_scaling = shared::config::PredictiveScaling::On;
        let mut h = DemandHistory::new(forecast::identity(&input.config));
        let busy = input.sessions.len() as f64 * 0.5;
        for w in (1..=3i64).rev() {
            let week_start = now - Duration::days(7 * w);
            for b in 0..forecast::BUCKETS as i64 {
                let t = week_start + Duration::minutes(15 * b);
                let (day, hour) = (b / 96, b % 96 / 4);
                let level = if day < 5 && (7..19).contains(&hour) { busy * (1.0 + (c % 7) as f64 / 10.0) } else { 0.0 };
                h.observe(t, [level, level * 4096.0, 0.0]);
            }
        }
        for k in 0..20 {
            h.add_boot(240 + k * 3);
        }
        input.control.history = Some(h);
    }
}
