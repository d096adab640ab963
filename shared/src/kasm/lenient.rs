//! Lenient field readers for Kasm answers (`#[serde(deserialize_with = ...)]`): numbers may arrive as
//! strings, booleans as `0`/`1`/`"true"`, optional fields as `null` or `""`, times in Kasm's
//! `YYYY-MM-DD HH:MM:SS[.ffffff]` (Python's `str(datetime)`, UTC) or RFC 3339. What cannot be read
//! safely is an error, never a guess.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::Deserializer;
use serde::de::Error as _;
use serde_json::Value;

/// A string; a number is read as its text; `""` and `null` are absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => return Err(D::Error::custom(format!("expected a string, found {}", kind(&other)))),
    })
}

/// A number, or a numeric string; `""` and `null` are absent.
pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(
            s.trim().parse::<f64>().map_err(|_| D::Error::custom("expected a number, found a non-numeric string"))?,
        ),
        Value::Null => None,
        other => return Err(D::Error::custom(format!("expected a number, found {}", kind(&other)))),
    })
}

/// A non-negative whole number (see [`number`]).
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match number(d)? {
        None => Ok(None),
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(Some(f as u32)),
        Some(_) => Err(D::Error::custom("expected a non-negative whole number")),
    }
}

/// A boolean, `0`/`1`, or `"true"`/`"false"`/`"yes"`/`"no"`/`"on"`/`"off"`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            "" => None,
            _ => return Err(D::Error::custom("expected a boolean, found another string")),
        },
        Value::Null => None,
        other => return Err(D::Error::custom(format!("expected a boolean, found {}", kind(&other)))),
    })
}

/// Kasm's `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC, no zone), or RFC 3339.
pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s = match Value::deserialize(d)? {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s,
        other => return Err(D::Error::custom(format!("expected a time, found {}", kind(&other)))),
    };
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").map(|n| n.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
        .map(Some)
        .map_err(|_| D::Error::custom("expected a time as YYYY-MM-DD HH:MM:SS or RFC 3339"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
