//! Unit tests: one per rule of the renderer and of the packaging.

use super::*;
use crate::config::ProviderKind;
use crate::model::OsFamily;

/// The script rules the example config of `kind` declares (`events/configs/<kind>.yaml`).
fn rules(kind: ProviderKind) -> ScriptRules {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../events/configs/{kind}.yaml"));
    let (set, problems) = crate::config::validate_files(&[path]);
    assert!(problems.is_empty(), "{problems:?}");
    set.vm_provider_configs[0].common().script_rules()
}

fn vars(pairs: &[(&str, Option<&str>)]) -> Vars {
    pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect()
}

fn std_vars() -> Vars {
    vars(&[("server_id", Some("abc-123")), ("domain", None), ("q", Some("it's")), ("e", Some(""))])
}

fn ok(t: &str) -> String {
    render(t, &std_vars()).unwrap_or_else(|e| panic!("{t:?} failed: {e}"))
}

fn err(t: &str) -> ScriptError {
    match render(t, &std_vars()) {
        Ok(out) => panic!("{t:?} rendered {out:?}, expected an error"),
        Err(e) => e,
    }
}

#[test]
fn replaces_named_placeholders() {
    assert_eq!(ok("id={server_id}; again {server_id}"), "id=abc-123; again abc-123");
    assert_eq!(ok("no fields\nat all"), "no fields\nat all");
    assert_eq!(ok(""), "");
}

#[test]
fn none_renders_as_the_text_none() {
    assert_eq!(ok("[{domain}]"), "[None]");
    assert_eq!(ok("{domain!s}|{domain!r}|{domain!a}|{domain:}"), "None|None|None|None");
    assert_eq!(ok("{domain!s:>6}"), "  None");
}

#[test]
fn doubled_braces_are_literal() {
    assert_eq!(ok("{{server_id}} {{{server_id}}} }}{{"), "{server_id} {abc-123} }{");
    assert_eq!(ok("f() {{ echo; }}"), "f() { echo; }");
}

#[test]
fn single_braces_are_errors_at_their_line() {
    let e = err("a\nb }\nc");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("single '}'"), "{e}");
    let e = err("a\n\nb {");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("single '{'"), "{e}");
    assert_eq!(err("}").line, 1);
    // The first error Python raises wins: the unknown name comes before the stray brace.
    let e = err("{nope}\n}");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("{nope}"));
}

#[test]
fn unknown_placeholder_names_itself_its_line_and_the_known_ones() {
    let e = err("#!/bin/bash\necho {server_id}\nagent -i {sever_id}\n");
    assert_eq!(e.line, 3);
    assert!(e.message.starts_with("unknown placeholder {sever_id} (did you mean {server_id}?); known: "), "{e}");
    assert!(e.message.contains("server_id"));
    assert_eq!(e.to_string(), format!("line 3: {}", e.message));
    assert!(!err("{zzzzzz}").message.contains("did you mean"));
    // Python does not trim names.
    assert!(err("{ server_id}").message.contains("{ server_id}"));
}

#[test]
fn unterminated_fields_are_errors() {
    assert!(err("x\n{server_id").message.contains("expected '}'"));
    assert_eq!(err("x\n{server_id").line, 2);
    assert!(err("{server_id:>5").message.contains("unmatched '{'"));
    assert!(err("{server_id{x}}").message.contains("unexpected '{'"));
    assert!(err("{server_id!").message.contains("conversion"));
    assert!(err("{server_id!rx}").message.contains("expected ':'"));
    assert!(err("{server_id!}").message.contains("unmatched"));
}

#[test]
fn positional_fields_are_errors() {
    for t in ["{}", "{0}", "{12}", "{[0]}", "{.x}", "{:>3}"] {
        assert!(err(t).message.contains("positional"), "{t}");
    }
}

#[test]
fn conversions_follow_python() {
    assert_eq!(ok("{server_id!s}"), "abc-123");
    assert_eq!(ok("{server_id!r}"), "'abc-123'");
    assert_eq!(ok("{q!r}"), "\"it's\"");
    assert_eq!(ok("{e!r}"), "''");
    assert!(err("{server_id!x}").message.contains("unknown conversion !x"));
    // `{a!}}` takes `}` as the conversion character, like Python.
    assert!(err("{server_id!}}").message.contains("unknown conversion !}"));
    let v = vars(&[("v", Some("a'b\"c\\d\te\nf\r\u{1}\u{7f}\u{85}\u{a0}\u{ad}é"))]);
    assert_eq!(render("{v!r}", &v).unwrap(), r#"'a\'b"c\\d\te\nf\r\x01\x7f\x85\xa0\xadé'"#);
    assert_eq!(render("{v!a}", &v).unwrap(), r#"'a\'b"c\\d\te\nf\r\x01\x7f\x85\xa0\xad\xe9'"#);
    let v = vars(&[("v", Some("€😀"))]);
    assert_eq!(render("{v!a}", &v).unwrap(), r"'\u20ac\U0001f600'");
    assert!(render("{v!r}", &v).unwrap_err().message.contains("not supported by kasm-autoscale"));
    assert_eq!(render("{v!s}", &v).unwrap(), "€😀");
}

#[test]
fn string_format_specs_follow_python() {
    assert_eq!(ok("[{server_id:>10}]"), "[   abc-123]");
    assert_eq!(ok("[{server_id:<10}]"), "[abc-123   ]");
    assert_eq!(ok("[{server_id:^10}]"), "[ abc-123  ]");
    assert_eq!(ok("[{server_id:*^11}]"), "[**abc-123**]");
    assert_eq!(ok("[{server_id:10}]"), "[abc-123   ]");
    assert_eq!(ok("[{server_id:.3}]"), "[abc]");
    assert_eq!(ok("[{server_id:>5.2s}]"), "[   ab]");
    assert_eq!(ok("[{server_id:.0}]"), "[]");
    assert_eq!(ok("[{server_id:3}]"), "[abc-123]");
    assert_eq!(ok("[{server_id:09}]"), "[abc-12300]");
    assert_eq!(ok("[{server_id:0}]"), "[abc-123]");
    assert_eq!(ok("[{server_id:}]"), "[abc-123]");
    assert!(err("[{server_id:{{<9}}]").message.contains("unmatched '{'"));
    for (spec, needle) in [
        ("=9", "'=' alignment"),
        ("+", "sign"),
        (" ", "space"),
        ("#", "alternate"),
        ("z", "negative zero"),
        (",", "cannot specify ','"),
        ("_", "cannot specify '_'"),
        (",_", "both"),
        ("d", "unknown format code 'd'"),
        ("ss", "invalid format spec"),
        (".", "missing the precision"),
        ("99999999999999999999", "too many decimal digits"),
    ] {
        let e = err(&format!("{{server_id:{spec}}}"));
        assert!(e.message.contains(needle), "{spec:?}: {e}");
        assert!(e.message.contains("{server_id}"), "{spec:?}: {e}");
    }
    assert!(err("{server_id:>2000000}").message.contains("not supported by kasm-autoscale"));
}

#[test]
fn none_takes_no_format_spec() {
    let e = err("{domain:>10}");
    assert!(e.message.contains("{domain} is None"), "{e}");
}

#[test]
fn nested_specs_expand_once() {
    let v = vars(&[("a", Some("xy")), ("w", Some(">5")), ("f", Some("-")), ("n", Some("4"))]);
    assert_eq!(render("[{a:{w}}]", &v).unwrap(), "[   xy]");
    assert_eq!(render("[{a:{f}^{n}}]", &v).unwrap(), "[-xy-]");
    let e = render("l1\n{a:{w:{n}}}", &v).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("nested too deeply"), "{e}");
    // Errors inside a nested spec name the inner placeholder, at the outer field's line.
    let e = render("l1\nl2 {a:{nope}}", &v).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("{nope}"), "{e}");
}

#[test]
fn indexing_follows_python_and_attributes_are_rejected() {
    assert_eq!(ok("{server_id[0]}{server_id[6]}{server_id[1][0]}"), "a3b");
    assert!(err("{server_id[7]}").message.contains("out of range"));
    assert!(err("{server_id[x]}").message.contains("must be an integer"));
    assert!(err("{server_id[-1]}").message.contains("must be an integer"));
    assert!(err("{server_id[]}").message.contains("empty"));
    assert!(err("{server_id[0}").message.contains("expected '}'"));
    assert!(err("{server_id[0]x}").message.contains("only '.' or '['"));
    assert!(err("{domain[0]}").message.contains("None"));
    let e = err("{server_id.upper}");
    assert!(e.message.contains("attribute access") && e.message.contains("not supported by kasm-autoscale"));
    // `:` and `}` inside brackets belong to the name, like in Python.
    assert!(err("{server_id[:}]}").message.contains("[:}]"));
}

#[test]
fn non_ascii_text_passes_through() {
    let v = vars(&[("h", Some("hôte"))]);
    assert_eq!(render("é {h} ü {{ü}}", &v).unwrap(), "é hôte ü {ü}");
    assert_eq!(render("{h:ü>6}|{h:.2}", &v).unwrap(), "üühôte|hô");
    assert!(render("{h!é}", &v).unwrap_err().message.contains("!é"));
    assert!(render("ü {h.é}", &v).is_err());
    assert!(render("é\n{nope", &v).unwrap_err().message.contains("{nope"));
}

#[test]
fn check_accepts_every_placeholder_and_rejects_unknown_ones() {
    let all: String = PLACEHOLDERS.iter().map(|p| format!("{{{p}}}\n")).collect();
    check(&all).unwrap();
    check("if [ \"{server_external_fqdn}\" == \"None\" ]; then echo {{x}}; fi").unwrap();
    let e = check("ok {server_id}\n{sever_id}").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("{sever_id}") && e.message.contains("server_id"), "{e}");
    // A spec on a placeholder that may be None fails when it is None.
    assert!(check("{server_external_fqdn:>30}").is_err());
    check("{server_id:>40}").unwrap();
    assert!(check("{}").is_err());
}

#[test]
fn unset_vars_render_none() {
    assert_eq!(render("{ssh_key} {nginx_cert_in}", &unset_vars()).unwrap(), "None None");
}

#[test]
fn aws_wraps_windows_scripts_once_and_enforces_16_kib() {
    let s = package(&rules(ProviderKind::Aws), OsFamily::Windows, "Write-Host hi".into()).unwrap();
    assert_eq!(s, "<powershell>\nWrite-Host hi\n</powershell>\n");
    let wrapped = "<powershell>\nWrite-Host hi\n</powershell>\n<persist>true</persist>".to_string();
    assert_eq!(package(&rules(ProviderKind::Aws), OsFamily::Windows, wrapped.clone()).unwrap(), wrapped);
    let batch = " <script>echo hi</script>".to_string();
    assert_eq!(package(&rules(ProviderKind::Aws), OsFamily::Windows, batch.clone()).unwrap(), batch);
    assert_eq!(package(&rules(ProviderKind::Aws), OsFamily::Linux, "#!/bin/sh\n".into()).unwrap(), "#!/bin/sh\n");

    let exact = "x".repeat(16 * 1024);
    assert!(package(&rules(ProviderKind::Aws), OsFamily::Linux, exact.clone()).is_ok());
    let e = package(&rules(ProviderKind::Aws), OsFamily::Linux, exact + "x").unwrap_err();
    assert!(e.message.contains("16385 bytes") && e.message.contains("16384"), "{e}");
    assert_eq!(e.line, 0);
    assert_eq!(e.to_string(), e.message);
    // The limit applies after wrapping.
    let near = "x".repeat(16 * 1024 - 20);
    assert!(package(&rules(ProviderKind::Aws), OsFamily::Windows, near).is_err());
}

#[test]
fn oci_windows_scripts_get_ps1_sysnative() {
    let s = package(&rules(ProviderKind::Oci), OsFamily::Windows, "Write-Host hi\n".into()).unwrap();
    assert_eq!(s, "#ps1_sysnative\nWrite-Host hi\n");
    for marked in ["#ps1_sysnative\nx", "#ps1_x86\nx", "rem cmd\necho", "#cloud-config\n{}"] {
        assert_eq!(package(&rules(ProviderKind::Oci), OsFamily::Windows, marked.into()).unwrap(), marked);
    }
    assert_eq!(package(&rules(ProviderKind::Oci), OsFamily::Linux, "#!/bin/sh".into()).unwrap(), "#!/bin/sh");
}

#[test]
fn base64_limits_are_measured_encoded() {
    // Azure: 87,380 base64 characters = 65,535 raw bytes.
    assert!(package(&rules(ProviderKind::Azure), OsFamily::Linux, "x".repeat(65_535)).is_ok());
    let e = package(&rules(ProviderKind::Azure), OsFamily::Linux, "x".repeat(65_536)).unwrap_err();
    assert!(e.message.contains("65536 bytes, 87384 once base64-encoded") && e.message.contains("87380"), "{e}");
    // OpenStack: 65,535 base64 characters.
    assert!(package(&rules(ProviderKind::Openstack), OsFamily::Linux, "x".repeat(49_149)).is_ok());
    assert!(package(&rules(ProviderKind::Openstack), OsFamily::Linux, "x".repeat(49_152)).is_err());
    // OCI: 32,000 bytes of metadata.
    assert!(package(&rules(ProviderKind::Oci), OsFamily::Linux, "x".repeat(24_000)).is_ok());
    assert!(package(&rules(ProviderKind::Oci), OsFamily::Linux, "x".repeat(24_001)).is_err());
    assert!(package(&rules(ProviderKind::DigitalOcean), OsFamily::Linux, "x".repeat(65_537)).is_err());
    assert!(package(&rules(ProviderKind::Gcp), OsFamily::Linux, "x".repeat(256 * 1024 + 1)).is_err());
    assert!(package(&rules(ProviderKind::Proxmox), OsFamily::Linux, "x".repeat(1 << 20)).is_ok());
    assert_eq!(rules(ProviderKind::Vsphere).limit, None);
}

#[test]
fn warnings_flag_scripts_that_will_not_run() {
    // Azure runs the saved custom data with its Custom Script Extension: nothing to warn about.
    assert!(warnings(&rules(ProviderKind::Azure), OsFamily::Windows, "Write-Host hi").is_empty());
    let saved = ScriptRules {
        windows: WindowsScript::SavedNotRun("C:\\AzureData\\CustomData.bin"),
        ..rules(ProviderKind::Azure)
    };
    let w = warnings(&saved, OsFamily::Windows, "Write-Host hi");
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("CustomData.bin"));
    assert!(warnings(&rules(ProviderKind::Aws), OsFamily::Windows, "<powershell>x</powershell>").is_empty());
    assert!(warnings(&rules(ProviderKind::Gcp), OsFamily::Windows, "<powershell>x</powershell>")[0].contains("EC2"));
    assert!(warnings(&rules(ProviderKind::Aws), OsFamily::Linux, "#!/bin/bash\n").is_empty());
    assert!(warnings(&rules(ProviderKind::Aws), OsFamily::Linux, "#cloud-config\n").is_empty());
    assert!(warnings(&rules(ProviderKind::Openstack), OsFamily::Linux, "apt-get install x")[0].contains("cloud-init"));
    assert!(warnings(&rules(ProviderKind::Proxmox), OsFamily::Linux, "apt-get install x").is_empty());
}
