//! The reversible escaping both tag-based providers use for label values: bytes of the provider's tag
//! alphabet are kept, every other byte is written as an escape character plus two lowercase hex digits.
//! Each provider chooses its alphabet and escape character (outside the alphabet).

/// `value` with every byte not `kept` written as `escape` + two hex digits.
pub(crate) fn encode(value: &str, kept: fn(u8) -> bool, escape: char) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if kept(b) {
            out.push(b as char);
        } else {
            out.push(escape);
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// The value [`encode`] made `tag_value` from; `None` when it is not one of ours (a byte outside the
/// alphabet, a bad escape, not UTF-8).
pub(crate) fn decode(tag_value: &str, kept: fn(u8) -> bool, escape: u8) -> Option<String> {
    let bytes = tag_value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b == escape => {
                let hex = tag_value.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if kept(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}
