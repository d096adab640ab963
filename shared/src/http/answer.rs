//! What an error answer said, fit for an error message (issue 21): never the raw response body, only
//! the server's message field — found in the JSON, or the first line of a text answer, or the title
//! of an HTML page — sanitised ([`super::sanitise`]: remembered secrets and sensitive fields
//! redacted, control characters escaped) and at most [`MESSAGE_CHARS`] characters.
//!
//! A server (or a proxy in front of it) that echoes the request would otherwise put the request's
//! headers and body — tokens included, in whatever encoding — into our errors, logs and state.
//! Provider parsers that know their API's error shape (Azure's `error.message`, OpenStack's
//! `{kind: {message}}`, …) use [`message_field`] on what they found and [`answer_message`] when
//! the answer is not in that shape.

use serde_json::Value;

/// The most characters of a server's message an error carries.
pub const MESSAGE_CHARS: usize = 300;

/// Keys that hold a server's message, in the order they are preferred (Kasm's `error_message`,
/// the common `message`, OAuth 2's `error_description` (RFC 6749 §5.2), RFC 7807's `detail`…).
const MESSAGE_KEYS: [&str; 10] = [
    "error_message",
    "message",
    "error_description",
    "errorMessage",
    "detail",
    "msg",
    "faultstring",
    "description",
    "title",
    "reason",
];

/// Keys whose value wraps the error (`{"error": {...}}`, `{"errors": [...]}`, `{"fault": {...}}`).
const WRAPPER_KEYS: [&str; 5] = ["error", "errors", "fault", "data", "status"];

/// How deep the search for a message field goes.
const MAX_DEPTH: usize = 4;

/// How many keys of an answer without a message field are named.
const KEYS_NAMED: usize = 8;

/// A message field a parser found, fit for an error: sanitised, whitespace runs collapsed, cut to
/// [`MESSAGE_CHARS`] (with `…`). Idempotent.
pub fn message_field(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let clean = super::sanitise(&one_line);
    match clean.char_indices().nth(MESSAGE_CHARS) {
        Some((cut, _)) if clean[cut..] != *"…" => format!("{}…", &clean[..cut]),
        _ => clean,
    }
}

/// What an error answer `body` said, as [`message_field`] text; empty for an empty body. A JSON
/// answer gives its message field (or, without one, the names of its keys); an HTML page its title;
/// any other text its first non-empty line.
pub fn answer_message(body: &str) -> String {
    let t = body.trim();
    if t.is_empty() {
        return String::new();
    }
    if t.starts_with('{') || t.starts_with('[') {
        return match serde_json::from_str::<Value>(t) {
            Ok(v) => match find_message(&v, 0) {
                Some(m) => message_field(&m),
                None => describe(&v),
            },
            // Cut short (the body kept is bounded) or not JSON after all: look for a message key.
            Err(_) => match scan_message(t) {
                Some(m) => message_field(&m),
                None => format!("(an answer of {} bytes that is not complete JSON)", t.len()),
            },
        };
    }
    let lower = t.get(..t.len().min(512)).unwrap_or(t).to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") || lower.contains("<html") {
        let text = visible_text(t);
        return if text.trim().is_empty() {
            format!("(an HTML page of {} bytes)", t.len())
        } else {
            message_field(&text)
        };
    }
    message_field(t)
}

/// The text an HTML error page shows: tags, `<head>`, scripts and styles dropped, the common
/// entities decoded.
fn visible_text(page: &str) -> String {
    let lower = page.to_ascii_lowercase(); // same byte offsets as `page`
    // The title (`<title>502 Bad Gateway</title>`) usually repeats the first heading: keep the body.
    let mut at = lower.find("<body").or_else(|| lower.find("</head>")).unwrap_or(0);
    let mut out = String::new();
    while let Some(open) = lower[at..].find('<').map(|o| at + o) {
        out.push_str(&page[at..open]);
        out.push(' ');
        // A script's or style's content is not shown: skip to its end tag.
        let mut after = open;
        for name in ["<script", "<style"] {
            if lower[open..].starts_with(name)
                && let Some(end) = lower[open..].find(&format!("</{}", &name[1..]))
            {
                after = open + end;
            }
        }
        match lower[after..].find('>') {
            Some(close) => at = after + close + 1,
            None => return decode(&out),
        }
    }
    out.push_str(&page[at..]);
    decode(&out)
}

/// The common HTML entities, decoded.
fn decode(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The first message field of `v`: a message key of this object, then inside its wrapper keys,
/// then inside any other value, depth first, at most [`MAX_DEPTH`] levels down.
fn find_message(v: &Value, depth: usize) -> Option<String> {
    if depth > MAX_DEPTH {
        return None;
    }
    match v {
        Value::Object(o) => {
            for k in MESSAGE_KEYS {
                if let Some(Value::String(s)) = o.get(k)
                    && !s.trim().is_empty()
                {
                    return Some(match code_of(o, s) {
                        Some(code) => format!("{code}: {s}"),
                        None => s.clone(),
                    });
                }
            }
            // `{"error": "invalid_grant"}` (OAuth 2) and Proxmox's `{"errors": {"param": "why"}}`.
            if let Some(Value::String(s)) = o.get("error")
                && !s.trim().is_empty()
            {
                return Some(s.clone());
            }
            if let Some(Value::Object(errs)) = o.get("errors")
                && !errs.is_empty()
                && errs.values().all(Value::is_string)
            {
                let parts: Vec<String> =
                    errs.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default().trim())).collect();
                return Some(parts.join("; "));
            }
            for k in WRAPPER_KEYS {
                if let Some(inner) = o.get(k)
                    && let Some(m) = find_message(inner, depth + 1)
                {
                    return Some(m);
                }
            }
            o.iter()
                .filter(|(k, _)| !WRAPPER_KEYS.contains(&k.as_str()))
                .find_map(|(_, inner)| find_message(inner, depth + 1))
        }
        Value::Array(items) => items.iter().take(KEYS_NAMED).find_map(|i| find_message(i, depth + 1)),
        _ => None,
    }
}

/// The error code beside a message (`{"code": "QuotaExceeded", "message": …}`, OAuth 2's
/// `{"error": "invalid_grant", "error_description": …}`): a short word, not the message again.
fn code_of<'a>(o: &'a serde_json::Map<String, Value>, message: &str) -> Option<&'a str> {
    CODE_KEYS.iter().find_map(|k| match o.get(*k) {
        Some(Value::String(c))
            if !c.is_empty() && c.len() <= 80 && !c.contains(char::is_whitespace) && c != message =>
        {
            Some(c.as_str())
        }
        _ => None,
    })
}

/// Keys that hold an error's code beside its message.
const CODE_KEYS: [&str; 4] = ["code", "error", "error_code", "errorCode"];

/// An answer without a message field, described by its shape: the names of its keys, never values.
fn describe(v: &Value) -> String {
    match v {
        Value::Object(o) if o.is_empty() => "(an empty JSON object)".into(),
        Value::Object(o) => {
            let mut keys: Vec<String> = o.keys().take(KEYS_NAMED).map(|k| message_field(k)).collect();
            if o.len() > KEYS_NAMED {
                keys.push("…".into());
            }
            message_field(&format!("(no message field in the answer; its keys: {})", keys.join(", ")))
        }
        Value::Array(items) => format!("(no message field in the answer: a JSON list of {} items)", items.len()),
        _ => "(no message field in the answer)".into(),
    }
}

/// A message key's string value in JSON text that does not parse (cut short): the first
/// `"<key>": "<string>"` whose string is complete.
fn scan_message(text: &str) -> Option<String> {
    for k in MESSAGE_KEYS {
        let needle = format!("\"{k}\"");
        let mut from = 0;
        while let Some(at) = text[from..].find(&needle) {
            let rest = text[from + at + needle.len()..].trim_start();
            from += at + needle.len();
            let Some(rest) = rest.strip_prefix(':') else { continue };
            let mut values = serde_json::Deserializer::from_str(rest.trim_start()).into_iter::<String>();
            if let Some(Ok(s)) = values.next()
                && !s.trim().is_empty()
            {
                return Some(s);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_give_their_message_field_only() {
        let cases = [
            (r#"{"error_message":"Access Denied","echo":{"api_key_secret":"s3cr3t"}}"#, "Access Denied"),
            (r#"{"error":{"code":"QuotaExceeded","message":"over quota"}}"#, "QuotaExceeded: over quota"),
            (r#"{"error":"invalid_grant","error_description":"Bad key"}"#, "invalid_grant: Bad key"),
            (r#"{"error":"invalid_grant"}"#, "invalid_grant"),
            (r#"{"errors":{"vmid":"already exists","name":"bad"}}"#, "vmid: already exists; name: bad"),
            (r#"{"badRequest":{"code":400,"message":"Invalid flavor"}}"#, "Invalid flavor"),
            (r#"{"data":{"error":[{"message":"no such image"}]}}"#, "no such image"),
            (r#"[{"detail":"gone"}]"#, "gone"),
        ];
        for (body, want) in cases {
            assert_eq!(answer_message(body), want, "{body}");
        }
    }

    #[test]
    fn answers_without_a_message_never_show_their_values() {
        let echo = r#"{"headers":{"Authorization":"PVEAPIToken=root@pam!t=abc"},"body":"x=1","url":"/api?token=zz"}"#;
        let m = answer_message(echo);
        assert_eq!(m, "(no message field in the answer; its keys: headers, body, url)");
        assert_eq!(answer_message("[1,2,3]"), "(no message field in the answer: a JSON list of 3 items)");
        assert_eq!(answer_message("{}"), "(an empty JSON object)");
        let html = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>p{}</style></head>\
            <body><h1>502 Bad Gateway</h1><script>var t=1;</script><p>nginx &amp; co</p></body></html>";
        assert_eq!(answer_message(html), "502 Bad Gateway nginx & co");
        assert_eq!(answer_message("<html><body> </body></html>"), "(an HTML page of 27 bytes)");
        assert_eq!(answer_message(""), "");
        assert_eq!(answer_message("   \n"), "");
    }

    #[test]
    fn text_answers_give_their_text_bounded_escaped_and_redacted() {
        assert_eq!(
            answer_message("403 Forbidden\n\nYou are not authorized.\n\n "),
            "403 Forbidden You are not authorized."
        );
        let echo = answer_message("no ticket\nAuthorization: PVEAPIToken=root@pam!t=s3cr3t\n");
        assert!(echo.starts_with("no ticket Authorization: ") && !echo.contains("s3cr3t"), "{echo}");
        let long = "w".repeat(5 * MESSAGE_CHARS);
        let m = answer_message(&long);
        assert_eq!(m.chars().count(), MESSAGE_CHARS + 1, "cut to the bound, with …");
        assert!(m.ends_with('…'));
        let ansi = answer_message("\u{1b}[32mOK\u{1b}[0m forged");
        assert!(!ansi.contains('\u{1b}'), "control characters escaped: {ansi}");
        assert_eq!(message_field(&m), m, "idempotent");
    }

    #[test]
    fn cut_json_still_gives_its_message_or_says_it_is_cut() {
        let cut = r#"{"error":{"code":"X","message":"the zone has no capacity","details":[{"a":"#;
        assert_eq!(answer_message(cut), "the zone has no capacity");
        let cut = r#"{"echo":{"Authorization":"Bearer abcdef"#;
        assert_eq!(answer_message(cut), format!("(an answer of {} bytes that is not complete JSON)", cut.len()));
    }

    #[test]
    fn messages_are_redacted_like_every_error() {
        let m = answer_message(r#"{"message":"bad request: password=hunter2&x=1"}"#);
        assert!(!m.contains("hunter2"), "{m}");
    }
}
