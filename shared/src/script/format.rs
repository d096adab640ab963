//! A port of CPython's `str.format(**kwargs)` (Objects/stringlib/unicode_format.h and the `str` half of
//! Python/formatter_unicode.c, Python 3.11) for values that are `str` or `None`.
//!
//! One left-to-right pass, like CPython, so the *first* error CPython would raise is the one reported.
//! Errors carry the byte offset of what failed: the brace for a stray `{`/`}`, otherwise the opening brace
//! of the top-level replacement field (also for errors inside a nested format spec).
//!
//! Deliberate divergences (each error message says "not supported by kasm-autoscale"):
//! attribute access (`{name.attr}`: Python would print e.g. a bound method's address), `!r` of a value with
//! characters above U+00FF (printability needs Unicode tables), widths above [`MAX_WIDTH`], and non-ASCII
//! decimal digits in indexes and widths (Python accepts them; we report an error).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::Vars;

/// The widest field width we pad to; Python has no limit, but no provider accepts a script this large.
pub const MAX_WIDTH: usize = 1 << 20;

/// Phrase in every error where Python would have produced output.
pub(crate) const DIVERGENCE: &str = "not supported by kasm-autoscale";

/// A failure at a byte offset of the top-level template.
#[derive(Debug)]
pub(crate) struct Fail {
    pub at: usize,
    pub message: String,
}

/// CPython's recursion budget for `str.format`: the template, plus one level of nested format spec.
const RECURSION_DEPTH: u8 = 2;

/// Renders `template` with `vars`, failing at the first error Python would raise.
pub(crate) fn format(template: &str, vars: &Vars) -> Result<String, Fail> {
    let mut out = String::with_capacity(template.len() + 256);
    Renderer { vars }.build(template, RECURSION_DEPTH, &mut out)?;
    Ok(out)
}

/// A field value: Python `str` or `None`.
enum Value<'a> {
    Str(Cow<'a, str>),
    None,
}

impl Value<'_> {
    /// `str(value)`.
    fn into_str(self) -> String {
        match self {
            Value::Str(s) => s.into_owned(),
            Value::None => "None".to_string(),
        }
    }
}

/// One parsed replacement field `{name!c:spec}`, borrowed from the template.
struct Field<'t> {
    name: &'t str,
    conversion: Option<char>,
    /// The raw spec; `None` when there is no `:`.
    spec: Option<&'t str>,
    spec_needs_expanding: bool,
}

struct Renderer<'v> {
    vars: &'v Vars,
}

impl Renderer<'_> {
    /// CPython `build_string` + `do_markup`. Offsets in errors are into `s`, the template at the top level
    /// (a nested spec's errors are re-reported at its field).
    fn build(&self, s: &str, depth: u8, out: &mut String) -> Result<(), Fail> {
        let fail = |at: usize, message: String| Fail { at, message };
        if depth == 0 {
            return Err(fail(0, "format spec nested too deeply (Python: Max string recursion exceeded)".into()));
        }
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let start = i;
            while i < b.len() && b[i] != b'{' && b[i] != b'}' {
                i += 1;
            }
            out.push_str(&s[start..i]);
            if i == b.len() {
                break;
            }
            let brace = b[i];
            let brace_at = i;
            i += 1;
            if i < b.len() && b[i] == brace {
                // `{{` or `}}`: one literal brace.
                out.push(brace as char);
                i += 1;
                continue;
            }
            if brace == b'}' {
                return Err(fail(brace_at, "single '}' encountered (write '}}' for a literal brace)".into()));
            }
            if i == b.len() {
                return Err(fail(
                    brace_at,
                    "single '{' encountered at end of script (write '{{' for a literal brace)".into(),
                ));
            }
            let field = parse_field(s, &mut i).map_err(|m| fail(brace_at, m))?;
            self.output_markup(&field, depth, out).map_err(|m| fail(brace_at, m))?;
        }
        Ok(())
    }

    /// CPython `output_markup`: look the value up, convert, expand the spec, format. Errors inside a nested
    /// spec are reported at this field (only their message is kept).
    fn output_markup(&self, field: &Field<'_>, depth: u8, out: &mut String) -> Result<(), String> {
        let value = self.field_value(field.name)?;
        let value = match field.conversion {
            None => value,
            Some('s') => Value::Str(Cow::Owned(value.into_str())),
            Some(c @ ('r' | 'a')) => Value::Str(Cow::Owned(match value {
                Value::None => "None".to_string(),
                Value::Str(s) => repr(&s, c == 'a')?,
            })),
            Some(c) => return Err(format!("unknown conversion !{c} in {{{}}} (only !s, !r and !a exist)", field.name)),
        };
        let spec: Cow<'_, str> = match field.spec {
            None => Cow::Borrowed(""),
            Some(raw) if !field.spec_needs_expanding => Cow::Borrowed(raw),
            Some(raw) => {
                let mut expanded = String::new();
                self.build(raw, depth - 1, &mut expanded).map_err(|f| f.message)?;
                Cow::Owned(expanded)
            }
        };
        match value {
            Value::Str(s) => format_str(&s, &spec, out).map_err(|m| format!("{m} in {{{}}}", field.name)),
            Value::None if spec.is_empty() => {
                out.push_str("None");
                Ok(())
            }
            Value::None => Err(format!(
                "{{{}}} is None here and None takes no format spec '{spec}' (Python: unsupported format string \
                 passed to NoneType.__format__)",
                field.name
            )),
        }
    }

    /// CPython `get_field_object` with kwargs only: `first(.attr|[index])*`.
    fn field_value(&self, name: &str) -> Result<Value<'_>, String> {
        let split = name.find(['.', '[']).unwrap_or(name.len());
        let (first, mut rest) = name.split_at(split);
        if first.is_empty() || get_integer(first)?.is_some() {
            return Err(format!(
                "positional placeholder {{{first}}} is not allowed: Kasm passes only named placeholders (known: {})",
                self.known()
            ));
        }
        let mut value = match self.vars.get(first) {
            None => {
                let hint = self.closest(first).map(|k| format!(" (did you mean {{{k}}}?)")).unwrap_or_default();
                return Err(format!("unknown placeholder {{{first}}}{hint}; known: {}", self.known()));
            }
            Some(Some(v)) => Value::Str(Cow::Borrowed(v.as_str())),
            Some(None) => Value::None,
        };
        // CPython's FieldNameIterator: each part is applied before the next one is parsed.
        while let Some(kind) = rest.chars().next() {
            rest = &rest[kind.len_utf8()..];
            let part;
            match kind {
                '.' => {
                    let end = rest.find(['.', '[']).unwrap_or(rest.len());
                    (part, rest) = rest.split_at(end);
                }
                '[' => {
                    let Some(end) = rest.find(']') else {
                        return Err(format!("missing ']' in {{{name}}}"));
                    };
                    part = &rest[..end];
                    rest = &rest[end + 1..];
                }
                _ => return Err(format!("only '.' or '[' may follow ']' in {{{name}}}")),
            }
            if part.is_empty() {
                return Err(format!("empty attribute or index in {{{name}}}"));
            }
            if kind == '.' {
                return Err(format!("attribute access {{{name}}} is {DIVERGENCE} (Python would look up .{part})"));
            }
            let s = match value {
                Value::None => return Err(format!("{{{first}}} is None here and cannot be indexed ({{{name}}})")),
                Value::Str(s) => s,
            };
            let Some(index) = get_integer(part)? else {
                if !part.is_ascii() && part.chars().all(char::is_numeric) {
                    return Err(format!("non-ASCII index in {{{name}}} is {DIVERGENCE}"));
                }
                return Err(format!("string index [{part}] in {{{name}}} must be an integer"));
            };
            let Some(c) = s.chars().nth(index) else {
                return Err(format!("string index [{index}] out of range in {{{name}}}"));
            };
            value = Value::Str(Cow::Owned(c.to_string()));
        }
        Ok(value)
    }

    /// The known name closest to a misspelt one, if it is within two edits.
    fn closest(&self, name: &str) -> Option<&str> {
        self.vars.keys().map(|k| (edit_distance(k, name), k.as_str())).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
    }

    fn known(&self) -> String {
        self.vars.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// Levenshtein distance (names are short; only computed for an error).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// CPython `parse_field`: `i` is just past the opening `{`; on success it is just past the closing `}`.
fn parse_field<'t>(s: &'t str, i: &mut usize) -> Result<Field<'t>, String> {
    let b = s.as_bytes();
    let name_start = *i;
    let mut c = 0u8;
    while *i < b.len() {
        c = b[*i];
        *i += 1;
        match c {
            b'{' => return Err("unexpected '{' in placeholder name".into()),
            b'[' => {
                while *i < b.len() && b[*i] != b']' {
                    *i += 1;
                }
            }
            b'}' | b':' | b'!' => break,
            _ => {}
        }
    }
    if !matches!(c, b'}' | b':' | b'!') {
        return Err(format!("expected '}}' before end of script (placeholder {{{}…)", &s[name_start..]));
    }
    let name = &s[name_start..*i - 1];
    let mut field = Field { name, conversion: None, spec: None, spec_needs_expanding: false };
    if c == b'}' {
        return Ok(field);
    }
    if c == b'!' {
        let Some(conv) = s[*i..].chars().next() else {
            return Err(format!("end of script while looking for the conversion after {{{name}!"));
        };
        field.conversion = Some(conv);
        *i += conv.len_utf8();
        if *i < b.len() {
            let next = b[*i];
            *i += 1;
            if next == b'}' {
                return Ok(field);
            }
            if next != b':' {
                return Err(format!("expected ':' or '}}' after the conversion in {{{name}!{conv}…"));
            }
        }
    }
    let spec_start = *i;
    let mut count = 1;
    while *i < b.len() {
        let ch = b[*i];
        *i += 1;
        if ch == b'{' {
            field.spec_needs_expanding = true;
            count += 1;
        } else if ch == b'}' {
            count -= 1;
            if count == 0 {
                field.spec = Some(&s[spec_start..*i - 1]);
                return Ok(field);
            }
        }
    }
    Err(format!("unmatched '{{' in the format spec of {{{name}}}"))
}

/// CPython `get_integer`: `Ok(None)` unless every character is an (ASCII) digit.
fn get_integer(s: &str) -> Result<Option<usize>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let mut acc: usize = 0;
    for c in s.chars() {
        let Some(d) = c.to_digit(10) else { return Ok(None) };
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(d as usize))
            .filter(|a| *a <= isize::MAX as usize)
            .ok_or_else(|| "too many decimal digits in format string".to_string())?;
    }
    Ok(Some(acc))
}

/// Python `repr(str)` (or `ascii(str)` when `ascii`), exact for characters up to U+00FF.
fn repr(s: &str, ascii: bool) -> Result<String, String> {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            // C0 controls, DEL, C1 controls, NBSP and SOFT HYPHEN are not printable.
            '\0'..='\u{a0}' | '\u{ad}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{a1}'..='\u{ff}' if !ascii => out.push(c),
            '\u{a1}'..='\u{ff}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            _ if ascii && (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            _ if ascii => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            _ => return Err(format!("!r of a value with {c:?} (above U+00FF) is {DIVERGENCE}; use !a or !s")),
        }
    }
    out.push(quote);
    Ok(out)
}

/// `format(str, spec)`: CPython `parse_internal_render_format_spec` + `format_string_internal`.
fn format_str(s: &str, spec: &str, out: &mut String) -> Result<(), String> {
    if spec.is_empty() {
        out.push_str(s);
        return Ok(());
    }
    let bad = |what: &str| Err(format!("{what} not allowed in a string format spec '{spec}'"));
    let sp: Vec<char> = spec.chars().collect();
    let n = sp.len();
    let is_align = |c: char| matches!(c, '<' | '>' | '=' | '^');
    let (mut pos, mut fill, mut align) = (0, ' ', '<');
    let mut fill_specified = false;
    if n >= 2 && is_align(sp[1]) {
        (fill, align, fill_specified, pos) = (sp[0], sp[1], true, 2);
    } else if n >= 1 && is_align(sp[0]) {
        (align, pos) = (sp[0], 1);
    }
    let mut sign = None;
    if pos < n && matches!(sp[pos], '+' | '-' | ' ') {
        sign = Some(sp[pos]);
        pos += 1;
    }
    let no_neg_0 = pos < n && sp[pos] == 'z';
    pos += usize::from(no_neg_0);
    let alternate = pos < n && sp[pos] == '#';
    pos += usize::from(alternate);
    if !fill_specified && pos < n && sp[pos] == '0' {
        // Python >= 3.10: for strings the '0' flag only sets the fill (the default alignment stays '<').
        fill = '0';
        pos += 1;
    }
    let width = spec_integer(&sp, &mut pos)?;
    let mut grouping = None;
    if pos < n && sp[pos] == ',' {
        grouping = Some(',');
        pos += 1;
    }
    if pos < n && sp[pos] == '_' {
        if grouping.is_some() {
            return Err(format!("cannot specify both ',' and '_' in format spec '{spec}'"));
        }
        grouping = Some('_');
        pos += 1;
    }
    if pos < n && sp[pos] == ',' && grouping == Some('_') {
        return Err(format!("cannot specify both ',' and '_' in format spec '{spec}'"));
    }
    let mut precision = None;
    if pos < n && sp[pos] == '.' {
        pos += 1;
        precision = spec_integer(&sp, &mut pos)?;
        if precision.is_none() {
            return Err(format!("format spec '{spec}' is missing the precision after '.'"));
        }
    }
    if n - pos > 1 {
        return Err(format!("invalid format spec '{spec}' for a string"));
    }
    let ty = if n - pos == 1 { sp[pos] } else { 's' };
    if let Some(g) = grouping {
        return Err(format!("cannot specify '{g}' with '{ty}' in format spec '{spec}'"));
    }
    if ty != 's' {
        return Err(format!("unknown format code '{ty}' for a string in format spec '{spec}'"));
    }
    match sign {
        Some(' ') => return bad("space"),
        Some(_) => return bad("sign"),
        None => {}
    }
    if no_neg_0 {
        return bad("negative zero coercion (z)");
    }
    if alternate {
        return bad("alternate form (#)");
    }
    if align == '=' {
        return bad("'=' alignment");
    }
    let len = s.chars().count();
    let (s, len) = match precision {
        Some(p) if p < len => (&s[..s.char_indices().nth(p).map_or(s.len(), |(i, _)| i)], p),
        _ => (s, len),
    };
    let width = width.unwrap_or(0);
    if width > MAX_WIDTH {
        return Err(format!("width {width} (over {MAX_WIDTH}) is {DIVERGENCE}"));
    }
    let total = width.max(len);
    let left = match align {
        '>' => total - len,
        '^' => (total - len) / 2,
        _ => 0,
    };
    out.extend(std::iter::repeat_n(fill, left));
    out.push_str(s);
    out.extend(std::iter::repeat_n(fill, total - len - left));
    Ok(())
}

/// CPython's `get_integer` inside a format spec: consumes ASCII digits, `None` when there are none.
fn spec_integer(sp: &[char], pos: &mut usize) -> Result<Option<usize>, String> {
    let start = *pos;
    let mut acc: usize = 0;
    while *pos < sp.len() {
        let Some(d) = sp[*pos].to_digit(10) else {
            if sp[*pos].is_numeric() && !sp[*pos].is_ascii() {
                return Err(format!("non-ASCII digits in a format spec are {DIVERGENCE}"));
            }
            break;
        };
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(d as usize))
            .filter(|a| *a <= isize::MAX as usize)
            .ok_or_else(|| "too many decimal digits in format spec".to_string())?;
        *pos += 1;
    }
    Ok((*pos > start).then_some(acc))
}
