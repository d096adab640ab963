//! Redaction: scrubs secrets out of text before it goes into an error message or a log line.
//!
//! Two layers, because neither is enough alone:
//! - **Known values**: the secrets this client holds (API key secrets, tokens, passwords) are replaced
//!   wherever they appear, whatever the surrounding syntax.
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

    /// Also replaces this value wherever it occurs.
    pub fn add_secret(&mut self, secret: &SecretString) {
        if secret.expose_secret().len() >= MIN_SECRET_LEN {
            self.secrets.push(secret.clone());
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        }
    }

    /// `text` with every known value and every sensitive-looking field value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            let v = s.expose_secret();
            if out.contains(v) {
                out = out.replace(v, REDACTED);
            }
        }
        redact_fields(&out)
    }
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

    #[test]
    fn debug_does_not_show_values() {
        let r = Redactor::new().with_secret(&SecretString::from("very-secret-value"));
        assert!(!format!("{r:?}").contains("very-secret"));
    }
}
