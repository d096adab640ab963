//! Differential test: our renderer against CPython's `str.format(**vars)` on fixed edge cases and
//! proptest-generated templates, all in one `python3` process. Skipped (with a notice) without `python3`.
//!
//! For each Python error the harness also derives where CPython failed, by replaying the template through
//! `_string.formatter_parser` (the same MarkupIterator `str.format` uses): a parse error is at the first
//! brace after the last complete item, a lookup/format error at the opening brace of the field that fails
//! when formatted alone. Our error line must match that position's line.

use std::io::Write as _;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value as Json, json};

use super::format::DIVERGENCE;
use super::{Vars, render};

const HARNESS: &str = r#"
import json, sys, _string

def locate(s, kw):
    p = 0
    it = _string.formatter_parser(s)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return None
        except ValueError:
            return next((j for j in range(p, len(s)) if s[j] in '{}'), None)
        lit, name, spec, conv = item
        p += len(lit)
        if name is None:
            if lit and lit[-1] in '{}':
                p += 1
            continue
        start = p
        p += 1 + len(name)
        if conv is not None:
            p += 2
        if s[p] == ':':
            p += 1 + len(spec)
        p += 1
        try:
            s[start:p].format(**kw)
        except Exception:
            return start

out = []
for t, kw in json.load(sys.stdin):
    try:
        out.append({"ok": t.format(**kw)})
    except Exception as e:
        out.append({"err": type(e).__name__ + ": " + str(e), "pos": locate(t, kw)})
json.dump(out, sys.stdout)
"#;

/// Hand-picked edge cases, rendered with [`fixed_vars`].
const FIXED: &[&str] = &[
    "",
    "plain text\nno fields",
    "{server_id}",
    "{domain}",
    "{{",
    "}}",
    "{{}}",
    "{{{server_id}}}",
    "{",
    "}",
    "a\n}",
    "a\n{",
    "x}y",
    "x{y",
    "{}",
    "{0}",
    "{ }",
    "{server_id }",
    "{server_id",
    "{server_id!}",
    "{server_id!}}",
    "{server_id!r}",
    "{server_id!s}",
    "{server_id!a}",
    "{server_id!x}",
    "{server_id!r:}",
    "{server_id!r:>12}",
    "{server_id!rr}",
    "{server_id!",
    "{server_id:",
    "{server_id:}",
    "{server_id:>10}",
    "{server_id:<10}|",
    "{server_id:^10}|",
    "{server_id:^11}|",
    "{server_id:x^11}|",
    "{server_id:{^11}|",
    "{server_id:}^11}|",
    "{server_id:.2}",
    "{server_id:.0}",
    "{server_id:.}",
    "{server_id:10.2s}",
    "{server_id:s}",
    "{server_id:ss}",
    "{server_id:d}",
    "{server_id:=10}",
    "{server_id:+}",
    "{server_id: }",
    "{server_id:-}",
    "{server_id:#}",
    "{server_id:z}",
    "{server_id:,}",
    "{server_id:_}",
    "{server_id:,_}",
    "{server_id:_,}",
    "{server_id:0}",
    "{server_id:05}",
    "{server_id:010}",
    "{server_id:<05}",
    "{server_id:0<5}",
    "{server_id:00}",
    "{server_id:x<09}",
    "{server_id:0^09}",
    "{server_id:99999999999999999999}",
    "{server_id:{w}}",
    "{server_id:{w}{n}}",
    "{server_id:{n}}",
    "{server_id:{w:{n}}}",
    "{server_id:{{}}}",
    "{server_id:{}}",
    "{server_id:{nope}}",
    "a\n{server_id:\n{nope}}",
    "a\n{server_id:\n{w:{n}}}",
    "{server_id:{domain}}",
    "{domain:}",
    "{domain:>5}",
    "{domain!s:>5}",
    "{domain!r}",
    "{domain!a:^9}",
    "{domain[0]}",
    "{server_id[0]}",
    "{server_id[6]}",
    "{server_id[7]}",
    "{server_id[0][0]}",
    "{server_id[0][1]}",
    "{server_id[x]}",
    "{server_id[-1]}",
    "{server_id[]}",
    "{server_id[0}",
    "{server_id[0]x}",
    "{server_id[:}]}",
    "{server_id[}",
    "{server_id.}",
    "{server_id..x}",
    "{server_id{}}",
    "{server_id}{nope}",
    "{nope}{server_id",
    "{nope}\n}",
    "line1\nline2 {server_id}\nline3 {sever_id}",
    "a\n{server_id\n}",
    "a\n{server_id:\n>5}\nb {nope}",
    "{q!r}{q!a}{q:.3}",
    "é {server_id:é>9} ü",
    "{q!é}",
    "#!/bin/bash\nif [ \"{server_external_fqdn}\" == \"None\" ]; then\n  f() {{ echo {server_id}; }}\nfi\n",
];

fn fixed_vars() -> Vars {
    [
        ("server_id", Some("abc-123")),
        ("domain", None),
        ("server_external_fqdn", None),
        ("q", Some("it's \"q\" \\ \t\n\u{7f}é\u{a0}")),
        ("w", Some(">9")),
        ("n", Some("4")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
    .collect()
}

const NAMES: &[&str] = &["server_id", "domain", "q", "w", "n"];

fn template_strategy() -> impl Strategy<Value = String> {
    let mut tokens: Vec<&'static str> = vec![
        "{",
        "{",
        "{",
        "{",
        "}",
        "}",
        "}",
        "}",
        "{{",
        "}}",
        ":",
        ":",
        ":",
        "!",
        "!",
        "\n",
        "\n",
        "a",
        "x",
        "s",
        "r",
        "[",
        "]",
        "0",
        "1",
        "5",
        ".",
        "<",
        ">",
        "^",
        "=",
        " ",
        ",",
        "_",
        "#",
        "+",
        "z",
        "é",
        "{server_id}",
        "{q}",
        "{w}",
        "{n}",
        "{domain}",
        "{n:",
        "{server_id:{w}}",
        "{q!r}",
        "{q!a:^9}",
        "{domain!r}",
        "{n:{w}}",
    ];
    for name in NAMES {
        tokens.extend([*name, *name]);
    }
    prop::collection::vec(prop::sample::select(tokens), 0..24).prop_map(|t| t.concat())
}

fn vars_strategy() -> impl Strategy<Value = Vars> {
    let value = prop_oneof![
        Just(None),
        Just(Some("3".to_string())),
        Just(Some(">4".to_string())),
        Just(Some("*^7".to_string())),
        Just(Some(String::new())),
        "[a-z'\"{}é<>^0-9.\\\\\n\t]{0,6}".prop_map(Some),
    ];
    prop::collection::vec(value, NAMES.len())
        .prop_map(|values| NAMES.iter().map(|n| n.to_string()).zip(values).collect())
}

/// `python3` >= 3.10 (older versions reject the '0' flag on strings, a behaviour Python changed on purpose).
fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 10))"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_python(cases: &[(String, Vars)]) -> Vec<Json> {
    let input: Vec<Json> = cases.iter().map(|(t, v)| json!([t, v])).collect();
    let mut child = Command::new("python3")
        .args(["-c", HARNESS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child.stdin.take().unwrap().write_all(Json::Array(input).to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().expect("python3 output");
    assert!(output.status.success(), "python3 harness failed");
    serde_json::from_slice(&output.stdout).expect("python3 JSON")
}

/// Line of a Python (code point) offset.
fn python_line(template: &str, pos: usize) -> usize {
    1 + template.chars().take(pos).filter(|&c| c == '\n').count()
}

#[test]
fn script_renderer_matches_python_str_format() {
    if !python_available() {
        println!("NOTICE: python3 >= 3.10 not found; skipping the differential test against str.format");
        return;
    }
    let mut cases: Vec<(String, Vars)> = FIXED.iter().map(|t| (t.to_string(), fixed_vars())).collect();
    // A fixed seed keeps CI reproducible; SCRIPT_DIFF_CASES=N runs N cases from a random seed instead.
    let (mut runner, n) = match std::env::var("SCRIPT_DIFF_CASES").ok().and_then(|n| n.parse().ok()) {
        Some(n) => (TestRunner::default(), n),
        None => (TestRunner::deterministic(), 4000),
    };
    let strategy = (template_strategy(), vars_strategy());
    for _ in 0..n {
        cases.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    let results = run_python(&cases);
    assert_eq!(results.len(), cases.len());

    let (mut oks, mut substituted, mut errs, mut divergences) = (0, 0, 0, Vec::new());
    let mut mismatches = Vec::new();
    for ((template, vars), py) in cases.iter().zip(&results) {
        let ours = render(template, vars);
        match (py.get("ok").and_then(Json::as_str), &ours) {
            (Some(expected), Ok(got)) if got == expected => {
                oks += 1;
                substituted += usize::from(template.replace("{{", "{").replace("}}", "}") != *got);
            }
            (Some(_), Err(e)) if e.message.contains(DIVERGENCE) => divergences.push(template.clone()),
            (None, Err(e)) => {
                errs += 1;
                let pos = py["pos"].as_u64().unwrap_or_else(|| panic!("harness found no position for {template:?}"));
                let line = python_line(template, pos as usize);
                if e.line != line {
                    mismatches.push(format!("{template:?} {vars:?}: python {py} (line {line}), ours line {e}"));
                }
            }
            _ => mismatches.push(format!("{template:?} {vars:?}: python {py}, ours {ours:?}")),
        }
    }
    println!(
        "{} cases: {oks} identical outputs ({substituted} with fields), {errs} errors on both sides, {} deliberate divergences {:?}",
        cases.len(),
        divergences.len(),
        &divergences[..divergences.len().min(5)]
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches[..mismatches.len().min(15)].join("\n")
    );
    // Guard against a vacuous run: both outcomes must be well represented.
    assert!(oks > cases.len() / 5 && errs > cases.len() / 5, "oks {oks}, errs {errs}");
    assert!(substituted > cases.len() / 20, "only {substituted} outputs substituted a field");
    assert!(divergences.len() <= cases.len() / 50, "too many divergences: {}", divergences.len());
}
