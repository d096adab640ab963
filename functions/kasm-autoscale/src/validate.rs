//! `kasm-autoscale validate FILE...`: every problem of the config files, one per line.

use std::io::Write;
use std::path::PathBuf;

/// Validates `files` as one deployment. Prints a short summary and returns 0 when they are valid; otherwise
/// prints every problem (`FILE: <config>.<field>: <what is wrong>`) and returns 1.
pub fn run(files: &[PathBuf], out: &mut dyn Write) -> i32 {
    let (set, problems) = shared::config::validate_files(files);
    // Output errors (a closed pipe) cannot change the verdict, so they are ignored.
    // Notes (what this version cannot do for a valid config) follow the summary; they change no verdict.
    let mut notes = shared::dns::registry::notes(&set);
    // Startup scripts the provider will accept but probably not run as meant (its declared rules).
    for p in &set.vm_provider_configs {
        let c = p.common();
        if !c.startup_script().trim().is_empty() {
            for w in shared::script::warnings(&c.script_rules(), c.os(), c.startup_script()) {
                notes.push(format!("{}.startup_script: {w}", c.name()));
            }
        }
    }
    if problems.is_empty() {
        let _ = writeln!(
            out,
            "OK: {} file(s), {} autoscale config(s), {} VM-provider config(s), {} DNS-provider config(s), {} schedule(s)",
            files.len(),
            set.autoscale_configs.len(),
            set.vm_provider_configs.len(),
            set.dns_provider_configs.len(),
            set.schedules.len()
        );
        for n in &notes {
            let _ = writeln!(out, "note: {n}");
        }
        return 0;
    }
    for p in &problems {
        let _ = writeln!(out, "{p}");
    }
    for n in &notes {
        let _ = writeln!(out, "note: {n}");
    }
    let _ = writeln!(out, "{} problem(s) found", problems.len());
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_files_print_a_summary_and_exit_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.yaml");
        std::fs::write(&path, include_str!("../../../events/configs/nutanix.yaml")).unwrap();
        let mut out = Vec::new();
        assert_eq!(run(&[path], &mut out), 0);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("OK: 1 file(s), 1 autoscale config(s), 1 VM-provider config(s)"), "{out}");
    }

    #[test]
    fn dns_registration_with_a_built_backend_is_no_note() {
        // The OCI example registers its VMs in OCI DNS, which this build has: no note. (The note for a
        // DNS backend a build lacks is `shared::dns::registry`'s test; printing notes is tested below.)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oci.yaml");
        let text = include_str!("../../../events/configs/oci.yaml");
        assert!(text.contains("register_dns: true") && text.contains("dns_provider_config: oci-dns"), "{text}");
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        assert_eq!(run(&[path], &mut out), 0);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("OK: ") && !out.contains("note: "), "{out}");
    }

    #[test]
    fn a_script_cloud_init_will_not_run_is_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("do.yaml");
        let text = include_str!("../../../events/configs/digital_ocean.yaml").replace("      #!/bin/bash\n", "");
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        assert_eq!(run(&[path], &mut out), 0, "a note is no problem");
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(".startup_script: digital_ocean hands the script to cloud-init"), "{out}");
    }

    #[test]
    fn invalid_files_print_every_problem_and_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "autoscale_configs:\n  - autoscale_config_name: a\n    zone_id: z\n    server_pool_id: p\n    vm_provider_config: nope\n    standby_cores: -1\n").unwrap();
        let mut out = Vec::new();
        assert_eq!(run(std::slice::from_ref(&path), &mut out), 1);
        let out = String::from_utf8(out).unwrap();
        let f = path.display();
        assert!(out.contains(&format!("{f}: a.standby_cores: must be a number ≥ 0\n")), "{out}");
        assert!(out.contains(&format!("{f}: a.vm_provider_config: no VM-provider config named `nope`\n")), "{out}");
        assert!(out.ends_with("2 problem(s) found\n"), "{out}");
    }
}
