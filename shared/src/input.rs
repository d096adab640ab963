//! Limits on untrusted input, checked before it is parsed: config files and simulation traces are
//! read with a size limit and scanned for nesting depth in one linear pass, so a hostile or broken
//! file costs milliseconds and a few megabytes, never minutes or gigabytes (issue 21, points 3–4).
//! Text from input that is echoed back in an error goes through [`echo`] (control characters
//! escaped, length bounded), so a config cannot forge terminal output.

use std::io::Read;
use std::path::Path;

/// Largest config file read (bytes). Real configs, startup scripts inline, are tens of kilobytes.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Largest simulation trace read (bytes).
pub const MAX_TRACE_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest nesting (block indentation levels plus flow brackets) of a config or trace. Kasm's deepest
/// structures (a KubeVirt manifest in `config_override`) are about 12 levels.
pub const MAX_NESTING: usize = 64;
/// Longest piece of input echoed in one message (characters).
pub const MAX_ECHO_CHARS: usize = 80;

/// Why input was refused before parsing. Never holds the input's content.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("failed to read: {0}")]
    Read(#[from] std::io::Error),
    /// Larger than the limit.
    #[error("{size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// Size seen (at least `limit + 1`).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not UTF-8 text.
    #[error("not UTF-8 text (at byte {at})")]
    NotText {
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// Nested deeper than the limit.
    #[error("nested deeper than {limit} levels (line {line})")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// First line beyond it (1-based).
        line: usize,
    },
}

/// Reads `path` as UTF-8 text of at most `limit` bytes, then checks its nesting (see [`check_nesting`]).
/// Reads at most `limit + 1` bytes whatever the file claims its size is (a FIFO, `/dev/zero`).
pub fn read_text(path: &Path, limit: u64) -> Result<String, InputError> {
    let file = std::fs::File::open(path)?;
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > limit
    {
        return Err(InputError::TooLarge { size: meta.len(), limit });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { size: bytes.len() as u64, limit });
    }
    let text = String::from_utf8(bytes).map_err(|e| InputError::NotText { at: e.utf8_error().valid_up_to() })?;
    check_nesting(&text, MAX_NESTING)?;
    Ok(text)
}

/// Checks in one linear pass that YAML or JSON `text` nests at most `limit` levels: block levels
/// (indentation and `- ` entries) plus flow levels (`[`/`{` outside quotes and comments). Block
/// scalars (`|`, `>`) are text and do not count. It over-counts rather than under-counts (a bracket
/// in a plain scalar counts), which is harmless at a limit this far above real configs.
pub fn check_nesting(text: &str, limit: usize) -> Result<(), InputError> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // Indentation of the line that opened a block scalar: deeper lines are its text.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let too_deep = || InputError::TooDeep { limit, line: n + 1 };
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(parent) = block_scalar {
            if rest.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if flow == 0 {
            if rest.trim().is_empty() || rest.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - x`: each entry marker opens one more level.
            let mut col = indent;
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("- ").or_else(|| (tail == "-").then_some("")) {
                col += 2;
                indents.push(col);
                tail = t.trim_start_matches(' ');
                col += t.len() - tail.len();
            }
            if indents.len() > limit {
                return Err(too_deep());
            }
        }
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut prev = ' ';
        for c in rest.chars() {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '"' | '\'' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':') => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        if indents.len() + flow > limit {
                            return Err(too_deep());
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        if flow == 0 && block_scalar_indicator(rest) {
            block_scalar = Some(indent);
        }
    }
    Ok(())
}

/// Does the line end with a block scalar indicator (`|`, `>`, with optional chomping/indent digits)?
fn block_scalar_indicator(line: &str) -> bool {
    let line = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    let last = line.trim_end().rsplit([' ', ':']).next().unwrap_or_default();
    let mut chars = last.chars();
    matches!(chars.next(), Some('|' | '>')) && chars.all(|c| matches!(c, '-' | '+' | '1'..='9'))
}

/// `s` as it may appear in a message: control characters (ANSI escapes, newlines, NUL) written as
/// `\u{..}` escapes and at most [`MAX_ECHO_CHARS`] characters (then `…`).
pub fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => escape_controls(&s[..cut]).into_owned() + "…",
        None => escape_controls(s).into_owned(),
    }
}

/// `s` with its control characters written as `\u{..}` escapes (no terminal sequence, no line
/// break, no carriage return that would overwrite what was printed before).
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn real_configs_pass_and_deep_documents_fail_fast() {
        for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/configs")).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                read_text(&p, MAX_CONFIG_BYTES).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
        }
        // The finding: 100,000 levels of flow nesting took 55.8 s in the YAML parser.
        let flow = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let block: String = (0..200).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let dashes = format!("a:\n  {}x\n", "- ".repeat(100));
        for doc in [&flow, &block, &dashes] {
            let start = Instant::now();
            assert!(matches!(check_nesting(doc, MAX_NESTING), Err(InputError::TooDeep { .. })));
            assert!(start.elapsed() < Duration::from_secs(1));
        }
    }

    #[test]
    fn scalars_and_comments_do_not_count() {
        let script = format!(
            "script: |\n{}\nnext: 1\n",
            (0..100).map(|i| format!("{}x", " ".repeat(2 + i))).collect::<Vec<_>>().join("\n")
        );
        check_nesting(&script, MAX_NESTING).unwrap();
        check_nesting("a: \"[[[[[[\" # {{{{{{{\nb: '{{{{{'\n", 2).unwrap();
        check_nesting("a: {b: [1, {c: 2}]}\n", 4).unwrap();
        assert!(check_nesting("a: {b: [1, {c: 2}]}\n", 3).is_err());
    }

    #[test]
    fn size_is_bounded_whatever_the_file_claims() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "a: 1\n".repeat(1000)).unwrap();
        assert!(matches!(read_text(&big, 100), Err(InputError::TooLarge { limit: 100, .. })));
        // A device that never ends is cut at the limit, not read to exhaustion.
        assert!(matches!(read_text(Path::new("/dev/zero"), 1024), Err(InputError::TooLarge { size: 1025, .. })));
        std::fs::write(&big, [b'a', b':', 0xff]).unwrap();
        assert!(matches!(read_text(&big, 100), Err(InputError::NotText { at: 2 })));
    }

    #[test]
    fn echo_escapes_control_characters_and_bounds_length() {
        assert_eq!(echo("ok\u{1b}[32m OK\n"), "ok\\u{1b}[32m OK\\u{a}");
        let long = "x".repeat(500);
        assert_eq!(echo(&long).chars().count(), MAX_ECHO_CHARS + 1);
    }
}
