//! `kasm-autoscale render TEMPLATE_FILE [--var NAME=VALUE]...`: print a startup script exactly as Kasm
//! would render it, so an author can check it before a VM boots with it.

use std::io::Write;
use std::path::Path;

use shared::script::{self, PLACEHOLDERS};

/// Renders the template at `template_path` with `vars` (`NAME=VALUE`) to `out`; unset placeholders render
/// `None`, like Kasm. Returns the exit code: 0, or 1 with the reason (placeholder and line) on `err`.
pub fn run(template_path: &Path, vars: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match render(template_path, vars) {
        Ok(rendered) => match out.write_all(rendered.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(err, "error: failed to write the rendered script: {e}");
                1
            }
        },
        Err(message) => {
            let _ = writeln!(err, "error: {message}");
            1
        }
    }
}

fn render(template_path: &Path, assignments: &[String]) -> Result<String, String> {
    let mut vars = script::unset_vars();
    let mut seen = Vec::new();
    for assignment in assignments {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(format!("--var {assignment:?}: expected NAME=VALUE"));
        };
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("--var {name}: not a placeholder; known: {}", PLACEHOLDERS.join(", ")));
        }
        if seen.contains(&name) {
            return Err(format!("--var {name}: given more than once"));
        }
        seen.push(name);
        vars.insert(name.to_string(), Some(value.to_string()));
    }
    let template = std::fs::read_to_string(template_path)
        .map_err(|e| format!("failed to read {}: {e}", template_path.display()))?;
    script::render(&template, &vars).map_err(|e| format!("{}:{}: {}", template_path.display(), e.line, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(template: &str, vars: &[&str]) -> (i32, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("startup.sh");
        std::fs::write(&path, template).unwrap();
        let vars: Vec<String> = vars.iter().map(|v| v.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&path, &vars, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn renders_exactly_with_unset_placeholders_as_none() {
        let (code, out, err) = run_on(
            "#!/bin/bash\nagent -i {server_id} -t {manager_token}\n[ \"{server_external_fqdn}\" == \"None\" ] && {{ :; }}",
            &["server_id=abc", "manager_token=t=1"],
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, "#!/bin/bash\nagent -i abc -t t=1\n[ \"None\" == \"None\" ] && { :; }");
    }

    #[test]
    fn unknown_placeholder_exits_1_naming_it_and_its_line() {
        let (code, out, err) = run_on("ok {server_id}\nagent -i {sever_id}\n", &[]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        assert!(
            err.contains("startup.sh:2: unknown placeholder {sever_id} (did you mean {server_id}?); known: "),
            "{err}"
        );
    }

    #[test]
    fn stray_brace_exits_1_with_its_line() {
        let (code, _, err) = run_on("a\nb\nfunction f() { echo; }\n", &[]);
        assert_eq!(code, 1);
        assert!(err.contains("startup.sh:3:"), "{err}");
    }

    #[test]
    fn bad_vars_are_errors() {
        let (code, _, err) = run_on("{server_id}", &["sever_id=x"]);
        assert_eq!(code, 1);
        assert!(err.contains("--var sever_id: not a placeholder; known: server_id"), "{err}");
        let (code, _, err) = run_on("{server_id}", &["server_id"]);
        assert_eq!(code, 1);
        assert!(err.contains("expected NAME=VALUE"), "{err}");
        let (code, _, err) = run_on("{server_id}", &["server_id=a", "server_id=b"]);
        assert_eq!(code, 1);
        assert!(err.contains("more than once"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(Path::new("/nonexistent/startup.sh"), &[], &mut out, &mut err);
        assert_eq!(code, 1);
        assert!(String::from_utf8(err).unwrap().contains("failed to read /nonexistent/startup.sh"));
    }
}
