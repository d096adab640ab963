//! Entry points of the fuzz targets in `fuzz/` (feature `fuzz`, off in every shipped build; see the
//! README's "Fuzzing"). Each takes arbitrary bytes the way the product receives them from outside —
//! a config file, a trace, a startup-script template, a webhook request, an API's answer — and must
//! neither panic, hang, nor grow without bound, whatever the bytes. Results are thrown away: the
//! targets look for crashes and timeouts; the unit tests check the answers.

use chrono::{TimeZone as _, Utc};
use secrecy::SecretString;

use crate::config::ConfigSet;

/// A config document: size limit, then parse and validate; every problem is rendered.
pub fn config(data: &[u8]) {
    if data.len() as u64 > crate::input::MAX_CONFIG_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (set, problems) = crate::config::validate::validate_text(text, "fuzz.yaml");
    for p in &problems {
        std::hint::black_box(p.to_string());
    }
    std::hint::black_box(crate::config::validate::validate_set(&set, "fuzz.yaml"));
}

/// A simulator trace: size limit, then parse (a `config` path in it is read as the CLI would, relative
/// to `events/simulations/`, so the shipped traces in the corpus load their configs).
pub fn trace(data: &[u8]) {
    if data.len() as u64 > crate::input::MAX_TRACE_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = crate::sim::trace::parse(
        text,
        "fuzz.json",
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/simulations")),
    ) {
        std::hint::black_box(e.to_string());
    }
}

/// A startup-script template, and (after the first NUL byte) a value every placeholder gets: checked,
/// rendered, and packaged for each OS family under each provider's script rules.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (template, value) = text.split_once('\0').unwrap_or((text, "v"));
    let _ = crate::script::check(template);
    let mut vars = crate::script::unset_vars();
    for (i, k) in crate::script::ALWAYS_SET.iter().enumerate() {
        vars.insert((*k).to_string(), (i % 2 == 0).then(|| value.to_string()));
    }
    vars.insert("server_hostname".into(), Some(value.to_string()));
    let Ok(rendered) = crate::script::render(template, &vars) else { return };
    use crate::script::{Limit, ScriptRules, WindowsScript};
    for os in [crate::model::OsFamily::Linux, crate::model::OsFamily::Windows] {
        for windows in [WindowsScript::Ec2Launch, WindowsScript::CloudbaseInit] {
            let rules = ScriptRules {
                provider: "fuzz",
                limit: Some(Limit::Base64(16 * 1024)),
                windows,
                linux_cloud_init: true,
            };
            std::hint::black_box(crate::script::warnings(&rules, os, &rendered));
            let _ = crate::script::package(&rules, os, rendered.clone());
        }
    }
}

/// The HMAC key of [`webhook`]'s requests.
const FUZZ_HMAC: &str = "fuzz-hmac-secret";
/// The Splunk HEC token of [`webhook`]'s requests.
const FUZZ_HEC: &str = "fuzz-hec-token";

/// A webhook request: the first byte picks the way in (signed event or Splunk HEC) and whether the
/// request carries valid credentials (so the body parsers are reached, not only authentication);
/// then header lines (`name: value`) up to an empty line, then the body.
pub fn webhook(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let mut headers: Vec<(String, String)> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    let now = Utc.timestamp_opt(1_780_000_000, 0).single().unwrap_or_default();
    let hec = mode & 1 == 1;
    if mode & 2 == 2 {
        if hec {
            headers.push(("Authorization".into(), format!("Splunk {FUZZ_HEC}")));
        } else {
            let ts = now.timestamp();
            let sig = crate::webhook::sign(&SecretString::from(FUZZ_HMAC), ts, body);
            headers.push((crate::webhook::TIMESTAMP_HEADER.into(), ts.to_string()));
            headers.push((crate::webhook::SIGNATURE_HEADER.into(), sig));
        }
    }
    let keys = crate::webhook::Keys {
        hmac_secret: Some(SecretString::from(FUZZ_HMAC)),
        hec_token: Some(SecretString::from(FUZZ_HEC)),
        max_body_bytes: 64 * 1024,
        ..Default::default()
    };
    let path = if hec { "/services/collector/event" } else { "/webhook" };
    let method = if mode & 4 == 4 { "GET" } else { "POST" };
    let req = crate::webhook::Request { method, path, headers: headers.clone(), body };
    std::hint::black_box(crate::webhook::preauthenticate(method, path, &headers, &keys, now).is_ok());
    std::hint::black_box(crate::webhook::handle(&req, &keys, &ConfigSet::default(), now));
}

/// An API's answer: every Kasm answer parser, every provider's error-message parser in this build,
/// and the redactor and sanitiser over the same text.
pub fn responses(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    crate::kasm::client::fuzz_answers(text);
    #[cfg(feature = "azure")]
    std::hint::black_box(crate::providers::azure::client::error_message(text));
    #[cfg(feature = "digitalocean")]
    std::hint::black_box(crate::providers::digitalocean::client::error_message(text));
    #[cfg(feature = "nutanix")]
    {
        std::hint::black_box(crate::providers::nutanix::client::error_message(text));
        std::hint::black_box(crate::providers::nutanix::client_v4::error_message(text));
    }
    #[cfg(feature = "oci")]
    std::hint::black_box(crate::providers::oci::client::error_message(text));
    #[cfg(feature = "openstack")]
    std::hint::black_box(crate::providers::openstack::client::error_message(text));
    let r = crate::http::Redactor::new().with_secret(&SecretString::from("fuzz/Se+cret\"val ue"));
    std::hint::black_box(r.redact(text));
    std::hint::black_box(crate::http::sanitise(text));
    std::hint::black_box(crate::http::body_snippet(text, &r));
    let said = crate::http::answer_message(text);
    assert!(said.chars().count() <= crate::http::MESSAGE_CHARS + 1, "an unbounded answer message: {said}");
}
