//! `kasm-autoscale preflight --config FILE...`: checks each VM-provider config against its real
//! endpoint before the first scale-up does (what each provider checks is its own: credentials,
//! privileges, images or templates, networks, startup-script size; see `shared::providers::registry`)
//! and prints one `PASS`/`FAIL <config>.<check>: <detail>` line per check. Read-only. Exit 0 when every
//! check passes, 1 otherwise (invalid configs included).

use std::io::Write;
use std::path::PathBuf;

use std::sync::Arc;

use shared::config::ConfigSet;
use shared::providers::{BuildEnv, Check, registry};
use shared::secrets::{LocalSecrets, Secrets};

/// Runs `preflight` over `files`.
pub async fn run(files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let (set, problems) = shared::config::validate::validate_files(files);
    if !problems.is_empty() {
        for p in &problems {
            let _ = writeln!(err, "{p}");
        }
        let _ = writeln!(err, "error: {} problem(s); nothing checked", problems.len());
        return 1;
    }
    report(&set, Arc::new(LocalSecrets), out).await
}

/// Checks every VM-provider config of `set`; 0 when all passed.
pub async fn report(set: &ConfigSet, secrets: Arc<dyn Secrets>, out: &mut dyn Write) -> i32 {
    let env = BuildEnv::new(secrets, set.settings.deployment_id.clone());
    let mut all_ok = true;
    for p in &set.vm_provider_configs {
        all_ok &= print_checks(p.name(), &registry::preflight(p, &env).await, out);
    }
    if all_ok { 0 } else { 1 }
}

/// Prints one line per check; whether all passed.
fn print_checks(config: &str, checks: &[Check], out: &mut dyn Write) -> bool {
    for c in checks {
        // A detail may quote a server's answer: sanitised (secrets, control characters, length).
        let detail = shared::http::sanitise(&c.detail);
        let _ = writeln!(out, "{} {config}.{}: {detail}", if c.ok { "PASS" } else { "FAIL" }, c.name);
    }
    checks.iter().all(|c| c.ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/configs").join(name)
    }

    async fn go(files: &[PathBuf]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(files, &mut out, &mut err).await;
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn lines_say_pass_or_fail_per_check() {
        let checks = [
            Check { name: "credentials", ok: true, detail: "Proxmox VE 9.0.3".into() },
            Check { name: "template", ok: false, detail: "no template named `x`".into() },
        ];
        let mut out = Vec::new();
        assert!(!print_checks("lab", &checks, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PASS lab.credentials: Proxmox VE 9.0.3\nFAIL lab.template: no template named `x`\n"
        );
        assert!(print_checks("lab", &checks[..1], &mut Vec::new()));
    }

    #[tokio::test]
    async fn an_unusable_harvester_config_fails_its_api_checks_and_exits_1() {
        // The example's token is `file:/etc/kasm-autoscale/harvester-token`, absent here: nothing
        // reaches the network.
        let (code, out, _) = go(&[example("harvester.yaml")]).await;
        assert_eq!(code, 1, "{out}");
        // The example's first config (the second, with a manifest, fails the same way).
        let lines: Vec<&str> = out.lines().filter(|l| l.contains(" harvester-local.")).collect();
        assert_eq!(lines.len(), shared::providers::harvester::CHECKS.len(), "{out}");
        assert_eq!(out.lines().count(), 2 * lines.len(), "{out}");
        assert!(
            lines[0].starts_with("FAIL harvester-local.credentials: ") && lines[0].contains("harvester-token"),
            "{out}"
        );
        let api = &lines[1..lines.len() - 1];
        assert!(api.iter().all(|l| l.starts_with("FAIL harvester-local.") && l.contains("not checked")), "{out}");
        assert!(lines[lines.len() - 1].starts_with("PASS harvester-local.startup_script: renders to "), "{out}");
    }

    #[tokio::test]
    async fn an_unusable_proxmox_config_fails_every_check_and_exits_1() {
        // The example's token is `env:PROXMOX_TOKEN_VALUE`, unset here: nothing reaches the network.
        let (code, out, _) = go(&[example("proxmox.yaml")]).await;
        assert_eq!(code, 1, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), shared::providers::proxmox::CHECKS.len(), "{out}");
        assert!(
            lines[0].starts_with("FAIL proxmox-pve1.credentials: ") && lines[0].contains("PROXMOX_TOKEN_VALUE"),
            "{out}"
        );
        let api = &lines[1..lines.len() - 1];
        assert!(api.iter().all(|l| l.starts_with("FAIL proxmox-pve1.") && l.contains("not checked")), "{out}");
        // The script needs no API: still checked.
        assert!(lines[lines.len() - 1].starts_with("PASS proxmox-pve1.startup_script: renders to "), "{out}");
    }

    #[tokio::test]
    async fn an_unusable_digitalocean_config_fails_its_api_checks_and_exits_1() {
        // The example's token is `env:DIGITALOCEAN_TOKEN`, unset here: nothing reaches the network.
        let (code, out, _) = go(&[example("digital_ocean.yaml")]).await;
        assert_eq!(code, 1, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), shared::providers::digitalocean::CHECKS.len(), "{out}");
        assert!(
            lines[0].starts_with("FAIL do-nyc3.credentials: ") && lines[0].contains("digital_ocean_token"),
            "{out}"
        );
        let api = &lines[1..lines.len() - 2];
        assert!(api.iter().all(|l| l.starts_with("FAIL do-nyc3.") && l.contains("not checked")), "{out}");
        // The tags and the script need no API: still checked.
        assert!(lines[lines.len() - 2].starts_with("PASS do-nyc3.tags: "), "{out}");
        assert!(lines[lines.len() - 1].starts_with("PASS do-nyc3.startup_script: renders to "), "{out}");
    }

    #[tokio::test]
    async fn an_unusable_azure_config_fails_its_api_checks_and_exits_1() {
        // The example's client secret is `file:/run/secrets/azure_client_secret`, absent here: nothing
        // reaches the network.
        let (code, out, _) = go(&[example("azure.yaml")]).await;
        assert_eq!(code, 1, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), shared::providers::azure::CHECKS.len(), "{out}");
        assert!(
            lines[0].starts_with("FAIL azure-eastus.credentials: ") && lines[0].contains("azure_client_secret"),
            "{out}"
        );
        let api = &lines[1..lines.len() - 1];
        assert!(api.iter().all(|l| l.starts_with("FAIL azure-eastus.") && l.contains("not checked")), "{out}");
        // The script needs no API: still checked.
        assert!(lines[lines.len() - 1].starts_with("PASS azure-eastus.startup_script: renders to "), "{out}");
    }

    #[tokio::test]
    async fn invalid_configs_are_reported_and_nothing_is_checked() {
        let (code, out, err) = go(&[example("invalid/ranges.yaml")]).await;
        assert_eq!(code, 1);
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("nothing checked"), "{err}");
    }
}
