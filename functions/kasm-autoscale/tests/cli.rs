//! The `kasm-autoscale` binary as an operator runs it: exit codes, output, files written.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kasm-autoscale"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    bin().current_dir(root()).args(args).output().expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_shipped_trace_simulates_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    for trace in ["morning-rush", "windows-server-pool", "scheduled-prewarm", "server-rotation", "staging-and-queue"] {
        let out_dir = dir.path().join(trace);
        let o = run(&[
            "simulate",
            &format!("events/simulations/{trace}.json"),
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{trace}: {}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
        for k in [
            "peak_vms",
            "vm_hours",
            "estimated_cost",
            "sessions_total",
            "sessions_waited",
            "max_wait_seconds",
            "max_instances_exceeded",
            "decisions",
        ] {
            assert!(v.get(k).is_some(), "{trace}: no {k} in {v}");
        }
        assert_eq!(v["max_instances_exceeded"], false, "{trace}");
        assert!(v["peak_vms"].as_u64().unwrap() > 0, "{trace}: nothing was ever created");
        assert_eq!(v["sessions_unserved"], 0, "{trace}: sessions never served");
        let svg = std::fs::read_to_string(out_dir.join("chart.svg")).expect("chart written");
        assert!(svg.starts_with("<svg") && svg.contains("<path"), "{trace}: not a chart");
        let csv = std::fs::read_to_string(out_dir.join("samples.csv")).expect("samples written");
        assert!(csv.starts_with("time,minute,scored,vms,") && csv.lines().count() > 2, "{trace}: no samples");
    }
}

#[test]
fn the_shipped_traces_show_what_they_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |t: &str| -> Value {
        let o = run(&[
            "simulate",
            &format!("events/simulations/{t}.json"),
            "--out",
            dir.path().to_str().unwrap(),
            "--json",
        ]);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // Morning rush: 86 sessions; capacity follows demand up to 17 agents, then back down.
    let m = sim("morning-rush");
    assert_eq!(m["sessions_total"], 86);
    assert!(m["vms_destroyed"].as_u64().unwrap() > 0, "never scaled down: {m}");
    // Windows pool: Minimum Available Sessions keeps 3 servers ahead, so nobody waits.
    let w = sim("windows-server-pool");
    assert_eq!(w["sessions_waited"], 0, "{w}");
    assert!(w["provider_errors"].as_u64().unwrap() >= 2, "throttling not injected: {w}");
    // Pre-warm: the capacity errors are met and retried; the floor of 4 is reached and removed after hours.
    let p = sim("scheduled-prewarm");
    assert_eq!(p["provider_errors"], 3, "{p}");
    assert_eq!(p["peak_vms"], 4, "{p}");
    assert_eq!(p["vms_destroyed"], 4, "{p}");
    // Rotation: agents replaced after a day, nobody waits while they are.
    let r = sim("server-rotation");
    assert_eq!(r["vms_rotated"], 3, "{r}");
    assert_eq!(r["sessions_waited"], 0, "{r}");
}

#[test]
fn simulate_boot_seconds_replaces_the_trace_s_boot_and_booting_vm_hours_count_it() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |extra: &[&str]| -> Value {
        let mut args =
            vec!["simulate", "events/simulations/morning-rush.json", "--out", dir.path().to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let hours = |v: &Value, k: &str| v[k].as_f64().unwrap();
    let created = |v: &Value| v["vms_created"].as_f64().unwrap();
    let as_traced = sim(&[]);
    assert!(hours(&as_traced, "booting_vm_hours") > 0.0, "{as_traced}");
    assert!(hours(&as_traced, "booting_vm_hours") < hours(&as_traced, "vm_hours"), "{as_traced}");
    // Every VM boots in exactly 600 s (no jitter): that long each, counted while it boots.
    let slow = sim(&["--boot-seconds", "600"]);
    let want = created(&slow) * 600.0 / 3600.0;
    assert!((hours(&slow, "booting_vm_hours") - want).abs() < 0.01, "{slow} vs {want}");
    // At once: only the step that made each VM (15 s in this trace) counts, and fewer wait, none long.
    let instant = sim(&["--boot-seconds", "0", "--predictive", "off"]);
    let want = created(&instant) * 15.0 / 3600.0;
    assert!((hours(&instant, "booting_vm_hours") - want).abs() < 0.01, "{instant} vs {want}");
    assert!(instant["sessions_waited"].as_u64() < as_traced["sessions_waited"].as_u64(), "{instant} {as_traced}");
    assert!(instant["max_wait_seconds"].as_u64().unwrap() <= 60, "{instant}");
    let bad = run(&["simulate", "events/simulations/morning-rush.json", "--boot-seconds", "-1"]);
    assert_eq!(bad.status.code(), Some(2), "a negative boot is refused");
}

#[test]
fn simulation_is_reproducible_and_prints_a_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["simulate", "events/simulations/scheduled-prewarm.json", "--out", dir.path().to_str().unwrap()];
    let a = run(&args);
    let b = run(&args);
    assert_eq!(a.status.code(), Some(0));
    // Claim ids are random (they are idempotency tokens); everything else repeats exactly.
    assert_eq!(without_ids(&text(&a.stdout)), without_ids(&text(&b.stdout)));
    let s = text(&a.stdout);
    assert!(s.contains("timeline (UTC, from Mon 2026-01-05 06:00)"), "{s}");
    assert!(s.contains("summary:") && s.contains("max_instances exceeded  false"), "{s}");
    assert!(s.contains("schedule inactive"), "the reasons are printed: {s}");
}

#[test]
fn the_simulate_timeline_keeps_logs_off_stdout_and_details_behind_verbose() {
    let dir = tempfile::tempdir().unwrap();
    // scheduled-prewarm injects provider errors, which the provisioner logs as warnings.
    let args = ["simulate", "events/simulations/scheduled-prewarm.json", "--out", dir.path().to_str().unwrap()];
    let plain = run(&args);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    let out = text(&plain.stdout);
    assert!(plain.stderr.is_empty(), "logs by default: {}", text(&plain.stderr));
    assert!(out.contains("claim #1: simulated: out of capacity"), "the errors are in the timeline: {out}");
    assert!(!out.contains("why:"), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 120), "a long line: {out}");

    let verbose = bin().current_dir(root()).args(args).arg("--verbose").output().unwrap();
    assert_eq!(verbose.status.code(), Some(0));
    let (out, logs) = (text(&verbose.stdout), text(&verbose.stderr));
    assert!(out.contains("why:  ") && out.contains("does: "), "{out}");
    assert!(logs.lines().any(|l| l.contains("\"level\":\"WARN\"")), "warnings with --verbose, on stderr: {logs}");
    assert!(!out.contains("\"level\""), "a log line on stdout: {out}");
}

#[test]
fn malformed_traces_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (r#"{"name":"x","duration_minutes":10,"config":"c.yaml"}"#, "step_seconds"),
        (r#"{"name":"x","duration_minutes":"ten","step_seconds":15,"config":"c.yaml"}"#, "duration_minutes"),
        (r#"{"name":"x","duration_minutes":10,"step_seconds":15,"config":"missing.yaml"}"#, "config"),
        (
            r#"{"name":"x","duration_minutes":10,"step_seconds":15,"config":"../../events/simulations/configs/morning-rush.yaml",
               "sessions":[{"at_minute":1,"count":1,"duration_minutes":5,"autoscale_config":"nope"}]}"#,
            "sessions[0].autoscale_config",
        ),
        (
            r#"{"name":"x","duration_minutes":10,"step_seconds":15,"config":"../../events/simulations/configs/morning-rush.yaml",
               "provider":{"failures":[{"at_minute":1,"kind":"meteor","count":1}]}}"#,
            "provider.failures[0].kind",
        ),
        (
            r#"{"name":"x","duration_minutes":10,"step_seconds":15,"config":"../../events/simulations/configs/morning-rush.yaml",
               "sessions":[{"at_minute":1,"count":1,"duration_minutes":5,"autoscale_config":"office-agents","image_id":"chrome"}]}"#,
            "sessions[0].image_id",
        ),
        (r#"{"name":"x","duration_minutes":10,"step_seconds":15,"config":{},"surprise":1}"#, "surprise"),
        (
            r#"{"name":"x","duration_minutes":10,"step_seconds":15,"config":{"autoscale_configs":[{"autoscale_config_name":"a",
               "server_pool_id":"p","zone_id":"z","vm_provider_config":"q","standby_cores":"many"}]}}"#,
            "a.standby_cores: invalid type",
        ),
    ];
    for (i, (trace, field)) in cases.iter().enumerate() {
        // Traces live two levels below the repository root here, like events/simulations/.
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let p = sub.join(format!("t{i}.json"));
        let trace = trace.replace("../../events", &root().join("events").display().to_string());
        std::fs::write(&p, trace).unwrap();
        let o = run(&["simulate", p.to_str().unwrap(), "--out", dir.path().to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", text(&o.stderr));
        let e = text(&o.stderr);
        assert!(e.contains(field), "case {i}: {e} does not name {field}");
    }
}

#[test]
fn validate_reports_every_problem_and_exits_1() {
    let ok = run(&["validate", "events/configs/proxmox.yaml", "events/configs/aws.yaml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    let bad = run(&["validate", "events/configs/invalid/references.yaml"]);
    assert_eq!(bad.status.code(), Some(1));
    let lines: Vec<String> =
        text(&bad.stdout).lines().filter(|l| l.starts_with("events/configs/invalid/")).map(str::to_string).collect();
    assert!(lines.len() >= 5, "every problem, one per line: {lines:?}");
}

#[test]
fn render_previews_a_startup_script() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.sh");
    std::fs::write(&p, "install -i {server_id} -r {provider_name} ${{HOME}} {server_external_fqdn}\n").unwrap();
    let o = run(&["render", p.to_str().unwrap(), "--var", "server_id=abc", "--var", "provider_name=proxmox"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "install -i abc -r proxmox ${HOME} None\n");
}

#[test]
fn schema_is_json_schema() {
    let o = run(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("$schema").is_some() || v.get("properties").is_some(), "{v}");
}

#[test]
fn status_of_an_empty_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let o = run(&["status", "--store", state.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "no VMs owned");
}

#[test]
fn plan_with_kasm_unreachable_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let cfg = std::fs::read_to_string(root().join("events/configs/proxmox.yaml")).unwrap();
    let settings = format!(
        "settings:\n  kasm:\n    url: http://127.0.0.1:{port}\n    api_key: k\n    api_key_secret: env:KASM_TEST_SECRET\n"
    );
    let cfg = strip_settings(&cfg);
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, format!("{settings}{cfg}")).unwrap();
    let o = bin()
        .current_dir(root())
        .env("KASM_TEST_SECRET", "do-not-print-me")
        .env("PROXMOX_TOKEN_VALUE", "t")
        .args(["plan", "--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("unreachable"), "{e}");
    assert!(!e.contains("do-not-print-me"));
}

/// Replaces claim ids (26-character lower-case ULIDs) with a marker.
fn without_ids(s: &str) -> String {
    s.split_inclusive(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| {
            let core = w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            if core.len() == 26 && core.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()) {
                w.replacen(core, "<claim>", 1)
            } else {
                w.to_string()
            }
        })
        .collect()
}

fn strip_settings(doc: &str) -> String {
    // Drop a top-level `settings:` block so the test's own settings apply.
    let mut out = String::new();
    let mut skipping = false;
    for line in doc.lines() {
        if line.starts_with("settings:") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with(' ') || line.is_empty()) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn run_serves_health_and_stops_within_10_s_of_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (dead, listen) = (free_port(), free_port());
    let cfg = strip_settings(&std::fs::read_to_string(root().join("events/configs/proxmox.yaml")).unwrap());
    let settings = format!(
        "settings:\n  deployment_id: run-test\n  kasm:\n    url: http://127.0.0.1:{dead}\n    api_key: k\n    api_key_secret: env:KASM_TEST_SECRET\n"
    );
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, format!("{settings}{cfg}")).unwrap();
    let state = dir.path().join("state.redb");
    let mut child = bin()
        .current_dir(root())
        .env("KASM_TEST_SECRET", "s")
        .env("PROXMOX_TOKEN_VALUE", "t")
        .args(["run", "--config", p.to_str().unwrap(), "--state", state.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{listen}"), "--interval", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Up: /healthz answers (Kasm being unreachable does not stop the daemon; each tick retries).
    let mut healthy = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", listen)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            if r.starts_with("HTTP/1.1 200") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !healthy {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("daemon never served /healthz: {}", text(&out.stderr));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500)); // let a tick run
    let t = std::time::Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "still running 10 s after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("unreachable"), "the failed evaluation is logged: {err}");
    assert!(!err.contains("\"s\""), "secret in logs?");
    assert!(state.exists(), "state file kept");
}

/// Every command the binary has (a new one is added here, and to the README's table).
const COMMANDS: [&str; 10] =
    ["validate", "schema", "render", "simulate", "plan", "run", "preflight", "apply", "import", "status"];

#[test]
fn top_level_help_lists_every_command_on_one_line() {
    for flag in ["--help", "-h"] {
        let o = run(&[flag]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let help = text(&o.stdout);
        let section = help.split("Commands:").nth(1).expect("a Commands section");
        let section = section.split("\n\n").next().unwrap();
        let listed: Vec<&str> = section.lines().filter_map(|l| l.split_whitespace().next()).collect();
        for c in COMMANDS {
            let line = section.lines().find(|l| l.split_whitespace().next() == Some(c));
            let line = line.unwrap_or_else(|| panic!("{flag}: {c} not listed:\n{help}"));
            assert!(line.len() <= 100, "{flag}: {c}'s line is not short: {line:?}");
        }
        // Every line is a command (or clap's own `help`): none wrapped onto a second line.
        for name in &listed {
            assert!(COMMANDS.contains(name) || *name == "help", "{flag}: {name:?} is not a command:\n{section}");
        }
    }
}

#[test]
fn store_help_lists_every_form() {
    for cmd in ["plan", "status", "apply"] {
        for flag in ["--help", "-h"] {
            let o = run(&[cmd, flag]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
            let help = text(&o.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
            for form in ["dynamodb://TABLE", "embedded:PATH", "plain PATH", "memory:"] {
                assert!(help.contains(form), "{cmd} {flag}: --store does not name {form}:\n{help}");
            }
        }
    }
}

/// The binary with no AWS credentials anywhere: none in the environment, empty AWS config and
/// credentials files, no instance metadata; a region, and an endpoint nothing listens on (never reached).
fn without_aws_credentials(dir: &Path, args: &[&str]) -> Output {
    let (config, credentials) = (dir.join("config"), dir.join("credentials"));
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let mut cmd = bin();
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(root())
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(args)
        .output()
        .expect("binary runs")
}

#[test]
fn missing_aws_credentials_are_one_sentence() {
    const SENTENCE: &str =
        "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on AWS";
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    for args in [
        &["plan", "--store", "dynamodb://kasm-autoscale-nocreds"][..],
        &["status", "--store", "dynamodb://kasm-autoscale-nocreds"],
        &["apply", "events/configs/aws.yaml", "--store", "dynamodb://kasm-autoscale-nocreds", "--dry-run"],
    ] {
        let o = without_aws_credentials(dir.path(), args);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(SENTENCE), "{args:?}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: one line, nothing else: {e}");
        assert!(e.len() < SENTENCE.len() + 160, "{args:?}: more than the sentence and its context: {e}");
        for dump in ["CredentialsNotLoaded", "source:", "Some(", "DispatchFailure", "{"] {
            assert!(!e.contains(dump), "{args:?}: the SDK's debug output ({dump}): {e}");
        }
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the SDK did not fail fast");
}
