//! Redaction: scrubs secrets out of text before it goes into an error message or a log line.
//!
//! Two layers, because neither is enough alone:
//! - **Known values**: the secrets this client holds (API key secrets, tokens, passwords) are replaced
//!   wherever they appear, whatever the surrounding syntax, and so are their encoded forms, because a
//!   server or proxy that echoes a request hands them back encoded (issue 21): JSON-escaped, URL-encoded
//!   (either hex case, `+` or `%20` for spaces), hex (either case) and base64 (standard and URL-safe,
//!   at each of the three byte alignments a value can have inside a longer encoded text, such as a
//!   `Basic` header or a base64 startup script).
//! - **Shapes**: values of sensitive-looking keys are replaced even when we never knew the value
//!   (a session token echoed back by a server, a password in a request body quoted in an error):
//!   `Authorization` headers, JSON fields and query/form parameters whose name contains
//!   `password`, `secret` or `token`.
//!
//! Hand-written rather than regex-based: the crate has no regex dependency and the grammar is small.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Known secret values shorter than this are not replaced by value: a one- or two-character
/// "secret" would shred every message it occurs in, and is no secret worth hiding.
const MIN_SECRET_LEN: usize = 4;

/// Scrubs known secret values and sensitive-looking fields from text.
///
/// Cheap to clone; its `Debug` never shows the values it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<SecretString>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

impl Redactor {
    /// A redactor that only knows the shapes (no values).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also replaces this value wherever it occurs.
    pub fn with_secret(mut self, secret: &SecretString) -> Self {
        self.add_secret(secret);
        self
    }

    /// Also replaces this value, and each of its encoded forms, wherever it occurs.
    pub fn add_secret(&mut self, secret: &SecretString) {
        let v = secret.expose_secret();
        if v.len() < MIN_SECRET_LEN {
            return;
        }
        for form in encoded_forms(v) {
            if form.len() >= MIN_SECRET_LEN && !self.secrets.iter().any(|s| s.expose_secret() == form) {
                self.secrets.push(SecretString::from(form));
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
    }

    /// `text` with every known value and every sensitive-looking field value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        redact_fields(&self.redact_values(text))
    }

    /// `text` with every known value replaced (not the shapes).
    fn redact_values(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            let v = s.expose_secret();
            if out.contains(v) {
                out = out.replace(v, REDACTED);
            }
        }
        out
    }
}

/// How many secret values the process remembers (see [`remember`]); the oldest is forgotten first.
/// Configured secrets are a handful; the rest are short-lived tokens that rotate.
pub const MAX_REMEMBERED: usize = 128;

/// How many characters a sanitised message keeps (see [`sanitise`]).
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// The process-wide set of secret values seen: what [`scrub_known`] and [`sanitise`] replace.
#[derive(Default)]
struct Known {
    /// In the order they were first seen (the oldest is dropped beyond [`MAX_REMEMBERED`]).
    values: std::collections::VecDeque<SecretString>,
    redactor: Redactor,
}

fn known() -> &'static std::sync::RwLock<Known> {
    static KNOWN: std::sync::OnceLock<std::sync::RwLock<Known>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Remembers a secret value for the whole process: from now on [`scrub_known`] and [`sanitise`]
/// replace it, and each of its encoded forms, wherever it occurs.
///
/// Every resolved secret and every fetched token goes through here (the secrets ports, the token
/// cache, Kasm's registration tokens), so that the exits — log lines, the CLI's output, a claim's
/// `last_error` — can be scrubbed without knowing which call produced the text (issue 21: a server
/// that echoes a request hands the secret back in an encoding the call's own redactor may not see).
pub fn remember(secret: &SecretString) {
    let v = secret.expose_secret();
    if v.len() < MIN_SECRET_LEN {
        return;
    }
    let lock = known();
    if lock.read().unwrap_or_else(std::sync::PoisonError::into_inner).values.iter().any(|s| s.expose_secret() == v) {
        return;
    }
    let mut k = lock.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if k.values.iter().any(|s| s.expose_secret() == v) {
        return;
    }
    k.values.push_back(secret.clone());
    if k.values.len() > MAX_REMEMBERED {
        k.values.pop_front();
        let mut r = Redactor::new();
        for s in &k.values {
            r.add_secret(s);
        }
        k.redactor = r;
    } else {
        k.redactor.add_secret(secret);
    }
}

/// `text` with every remembered secret value (in every encoded form) replaced by [`REDACTED`]. Only
/// values: the text's syntax is kept (a JSON schema's `password` key keeps its value), so this is
/// safe on any output.
pub fn scrub_known(text: &str) -> std::borrow::Cow<'_, str> {
    let k = known().read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if k.values.is_empty() || !k.redactor.secrets.iter().any(|s| text.contains(s.expose_secret())) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(k.redactor.redact_values(text))
}

/// A message fit to be stored and shown (a claim's `last_error`, a check's detail): remembered
/// secret values and sensitive-looking fields redacted, control characters escaped (a message cannot
/// forge a line of output), and at most [`MAX_MESSAGE_CHARS`] characters.
pub fn sanitise(text: &str) -> String {
    let clean = redact_fields(&scrub_known(text));
    let escaped = crate::input::escape_controls(&clean);
    match escaped.char_indices().nth(MAX_MESSAGE_CHARS) {
        // Idempotent: a sanitised message sanitised again is unchanged.
        Some((cut, _)) if escaped[cut..] != *"…" => format!("{}…", &escaped[..cut]),
        _ => escaped.into_owned(),
    }
}

/// A writer that scrubs remembered secrets ([`scrub_known`]) out of everything written through it,
/// a line at a time (a secret split over two `write` calls is still caught). What is left without a
/// newline goes out on [`flush`](std::io::Write::flush) or drop.
///
/// The CLI's standard output and error and every log line go through one.
pub struct ScrubLines<W: std::io::Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: std::io::Write> fmt::Debug for ScrubLines<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrubLines").field("pending_bytes", &self.pending.len()).finish_non_exhaustive()
    }
}

impl<W: std::io::Write> ScrubLines<W> {
    /// Scrubs what is written to `inner`.
    pub fn new(inner: W) -> Self {
        ScrubLines { inner, pending: Vec::new() }
    }

    fn emit(&mut self, upto: usize) -> std::io::Result<()> {
        let chunk: Vec<u8> = self.pending.drain(..upto).collect();
        match std::str::from_utf8(&chunk) {
            Ok(s) => self.inner.write_all(scrub_known(s).as_bytes()),
            // Not text: passed as it is (our outputs are text; a secret is found in text).
            Err(_) => self.inner.write_all(&chunk),
        }
    }
}

impl<W: std::io::Write> std::io::Write for ScrubLines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last_nl) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(last_nl + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let n = self.pending.len();
            self.emit(n)?;
        }
        self.inner.flush()
    }
}

impl<W: std::io::Write> Drop for ScrubLines<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// The forms a secret value takes when echoed back: itself, JSON-escaped, URL-encoded, hex, base64.
fn encoded_forms(v: &str) -> Vec<String> {
    use base64::Engine as _;
    let mut out = vec![v.to_string()];
    // JSON-escaped (inside a string literal).
    if let Ok(j) = serde_json::to_string(v) {
        out.push(j[1..j.len() - 1].to_string());
    }
    // URL-encoded: form style (`+` for spaces) and path style (`%20`), hex in either case.
    let form: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
    let path = form.replace('+', "%20");
    for e in [form, path] {
        out.push(lower_percent_hex(&e));
        out.push(e);
    }
    // Hex of the bytes.
    let hex: String = v.bytes().map(|b| format!("{b:02x}")).collect();
    out.push(hex.to_ascii_uppercase());
    out.push(hex);
    // Base64 at each alignment: the characters that depend on the secret's bytes alone.
    for engine in [&base64::engine::general_purpose::STANDARD_NO_PAD, &base64::engine::general_purpose::URL_SAFE_NO_PAD]
    {
        for lead in 0..3usize {
            let mut bytes = vec![0u8; lead];
            bytes.extend_from_slice(v.as_bytes());
            let enc = engine.encode(&bytes);
            // Leading characters mixed with the bytes before the secret: 0, 2 or 3.
            let skip = [0, 2, 3][lead];
            // A trailing character mixed with the bytes after it, unless the secret ends a group.
            let cut = usize::from(bytes.len() % 3 != 0);
            if enc.len() > skip + cut + 8 {
                out.push(enc[skip..enc.len() - cut].to_string());
            }
        }
    }
    // A base64 value as a whole, with its padding (the common case: the secret is all that is encoded).
    out.push(base64::engine::general_purpose::STANDARD.encode(v));
    out.push(base64::engine::general_purpose::URL_SAFE.encode(v));
    out.sort();
    out.dedup();
    out
}

/// `%3D` → `%3d`: percent-encoding's hex digits in lowercase (servers echo either).
fn lower_percent_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = 0;
    for c in s.chars() {
        if c == '%' {
            rest = 2;
            out.push(c);
        } else if rest > 0 {
            rest -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`Redactor::redact`] without known values: only the shapes.
pub fn redact(text: &str) -> String {
    redact_fields(text)
}

/// Whether a key name marks its value as secret.
fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "authorization"
        || k == "proxy-authorization"
        || k == "cookie"
        || k == "set-cookie"
        || k.contains("password")
        || k.contains("secret")
        || k.contains("token")
        || k == "pwd"
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Replaces the values of sensitive keys in `key: value`, `"key": "value"`, `key=value` forms.
fn redact_fields(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes[..copied] are already in `out`
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) || (i > 0 && is_key_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        // A key starts at i.
        let start = i;
        while i < bytes.len() && is_key_byte(bytes[i]) {
            i += 1;
        }
        let key = &text[start..i];
        if !is_sensitive_key(key) {
            continue;
        }
        // After the key: an optional closing quote (JSON), spaces, then `:` or `=`.
        let mut j = i;
        if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
            j += 1;
        }
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let Some(&sep) = bytes.get(j) else { break };
        if sep != b':' && sep != b'=' {
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let (value_start, value_end) = match bytes.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                // Quoted: up to the matching unescaped quote.
                let vs = j + 1;
                let mut k = vs;
                while k < bytes.len() && bytes[k] != q {
                    if bytes[k] == b'\\' {
                        k += 1;
                    }
                    k += 1;
                }
                (vs, k.min(bytes.len()))
            }
            Some(_) => {
                let header_like = sep == b':'
                    && ["authorization", "proxy-authorization", "cookie", "set-cookie"]
                        .iter()
                        .any(|h| key.eq_ignore_ascii_case(h));
                let mut k = j;
                while k < bytes.len() {
                    let b = bytes[k];
                    let stop = if header_like {
                        // A header value runs to the end of the line ("Basic dXNlcjpwYXNz").
                        b == b'\n' || b == b'\r'
                    } else if sep == b'=' {
                        matches!(b, b'&' | b' ' | b'\n' | b'\r' | b'"' | b'\'' | b',' | b';' | b'}' | b')')
                    } else {
                        matches!(b, b',' | b'}' | b' ' | b'\n' | b'\r' | b']')
                    };
                    if stop {
                        break;
                    }
                    k += 1;
                }
                (j, k)
            }
            None => break,
        };
        if value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = value_end;
        }
        i = value_end.max(i);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_replaced_anywhere() {
        let r = Redactor::new().with_secret(&SecretString::from("hunter2hunter2"));
        assert_eq!(r.redact("connect failed for key hunter2hunter2!"), "connect failed for key [REDACTED]!");
    }

    #[test]
    fn short_values_are_not_replaced_by_value() {
        let r = Redactor::new().with_secret(&SecretString::from("ab"));
        assert_eq!(r.redact("about a cab"), "about a cab");
    }

    #[test]
    fn json_fields_are_redacted() {
        let text = r#"{"api_key":"k1","api_key_secret":"s3cr3t","target":{"connection_password": "p@ss\"w"},"token":null,"session_token":"abc"}"#;
        let r = redact(text);
        assert!(!r.contains("s3cr3t"), "{r}");
        assert!(!r.contains("p@ss"), "{r}");
        assert!(!r.contains("abc"), "{r}");
        assert!(r.contains(r#""api_key":"k1""#), "api_key is not a secret: {r}");
        assert!(r.contains(r#""api_key_secret":"[REDACTED]""#), "{r}");
    }

    #[test]
    fn headers_and_query_params_are_redacted() {
        let r = redact("GET /x?token=abc123&zone=z1\nAuthorization: Basic dXNlcjpwYXNz\nAccept: */*");
        assert_eq!(r, "GET /x?token=[REDACTED]&zone=z1\nAuthorization: [REDACTED]\nAccept: */*");
        let r = redact("url https://h/api/set_server_status?token=eyJhbGciOi.x.y failed");
        assert_eq!(r, "url https://h/api/set_server_status?token=[REDACTED] failed");
        let r = redact("password=pw1 secret = 'quoted secret'");
        assert_eq!(r, "password=[REDACTED] secret = '[REDACTED]'");
    }

    #[test]
    fn innocent_text_is_unchanged() {
        let text = "Kasm call get_agents failed: HTTP 500 (tokenizer says: no tokens here) password policy";
        assert_eq!(redact(text), text);
        assert_eq!(redact(""), "");
        assert_eq!(redact("token"), "token");
        assert_eq!(redact("token:"), "token:");
    }

    /// Issue 21: a secret echoed back encoded is caught in every encoding.
    #[test]
    fn encoded_forms_of_known_values_are_replaced() {
        use base64::Engine as _;
        let secret = "p+/w\"\\d9 Zq&=tok%en";
        let r = Redactor::new().with_secret(&SecretString::from(secret));
        let json = serde_json::to_string(&serde_json::json!({ "api_key_secret_x": secret })).unwrap();
        let form: String = url::form_urlencoded::byte_serialize(format!("PVEAPIToken={secret}").as_bytes()).collect();
        let hex: String = secret.bytes().map(|b| format!("{b:02X}")).collect();
        let mut cases = vec![
            format!("plan failed: server said {json}"),
            format!("GET /api?x={form}"),
            format!("GET /api?x={}", lower_percent_hex(&form)),
            format!("path /a/{}/b", form.replace('+', "%20")),
            format!("dump {hex} end"),
            format!("dump {} end", hex.to_ascii_lowercase()),
        ];
        // Inside longer base64 texts, at every alignment, in both alphabets (a base64 startup
        // script, a Basic header), and alone with padding.
        for prefix in ["", "u", "us", "user:"] {
            let b = format!("{prefix}{secret} and more");
            cases.push(format!("user_data {}", base64::engine::general_purpose::STANDARD.encode(&b)));
            cases.push(format!("user_data {}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b)));
        }
        cases.push(format!("last_error {}", base64::engine::general_purpose::STANDARD.encode(secret)));
        for text in cases {
            let out = r.redact(&text);
            assert!(out.contains(REDACTED), "not caught: {text} -> {out}");
            for form in encoded_forms(secret) {
                assert!(!out.contains(&form), "{form} left in {out}");
            }
        }
        // Innocent text stays.
        assert_eq!(r.redact("HTTP 500: internal error"), "HTTP 500: internal error");
    }

    /// Issue 21: what the process has seen is scrubbed at its exits, whichever call produced the text.
    #[test]
    fn remembered_secrets_are_scrubbed_in_every_encoding() {
        use base64::Engine as _;
        use std::io::Write as _;
        let secret = "rem/Em+ber\"ed s3&=cr%t";
        assert_eq!(scrub_known(&format!("x {secret} y")), format!("x {secret} y"), "not yet remembered");
        remember(&SecretString::from(secret));
        remember(&SecretString::from(secret)); // once is enough; twice changes nothing
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("#!/bin/bash -M '{secret}'"));
        let text = format!("echo {secret} {} {b64}", serde_json::to_string(secret).unwrap());
        let out = scrub_known(&text);
        for form in encoded_forms(secret) {
            assert!(!out.contains(&form), "{form} left in {out}");
        }
        assert!(out.starts_with("echo [REDACTED] "), "{out}");
        // Syntax is kept: only values go (a schema's `password` key keeps its value).
        assert_eq!(scrub_known(r#"{"password": {"type": "string"}}"#), r#"{"password": {"type": "string"}}"#);

        // A writer catches a secret split over two writes, and what is left without a newline on drop.
        let mut buf = Vec::new();
        {
            let mut w = ScrubLines::new(&mut buf);
            let (a, b) = secret.split_at(5);
            write!(w, "first {a}").unwrap();
            writeln!(w, "{b} end").unwrap();
            write!(w, "tail {secret}").unwrap();
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "first [REDACTED] end\ntail [REDACTED]");
    }

    #[test]
    fn sanitised_messages_are_bounded_escaped_and_stable() {
        remember(&SecretString::from("sanitise-canary-77"));
        let long = format!("\u{1b}[32mOK\u{1b}[0m token=abc sanitise-canary-77 {}", "x".repeat(3 * MAX_MESSAGE_CHARS));
        let s = sanitise(&long);
        assert!(!s.contains('\u{1b}') && s.contains("\\u{1b}[32mOK"), "an escape cannot colour a line: {s}");
        assert!(s.contains("token=[REDACTED]") && !s.contains("sanitise-canary-77"), "{s}");
        assert_eq!(s.chars().count(), MAX_MESSAGE_CHARS + 1, "cut, with an ellipsis");
        assert_eq!(sanitise(&s), s, "sanitising twice changes nothing");
        assert_eq!(sanitise("HTTP 500: no capacity"), "HTTP 500: no capacity");
    }

    #[test]
    fn the_process_remembers_a_bounded_number_of_secrets() {
        for i in 0..MAX_REMEMBERED + 5 {
            remember(&SecretString::from(format!("bounded-secret-{i:04}")));
        }
        assert!(known().read().unwrap().values.len() <= MAX_REMEMBERED);
        // The newest are kept; the oldest went first.
        assert_eq!(scrub_known(&format!("bounded-secret-{:04}", MAX_REMEMBERED + 4)), REDACTED);
        assert_eq!(scrub_known("bounded-secret-0000"), "bounded-secret-0000");
    }

    #[test]
    fn debug_does_not_show_values() {
        let r = Redactor::new().with_secret(&SecretString::from("very-secret-value"));
        assert!(!format!("{r:?}").contains("very-secret"));
    }
}
