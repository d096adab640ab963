//! Secret references: config files and the store hold *where* a secret is, never its value.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Where a secret lives: `secretsmanager:<name-or-arn>[#json-key]`, `env:NAME` or `file:PATH`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// An AWS Secrets Manager secret, optionally one key of its JSON value.
    SecretsManager {
        /// Secret name or ARN.
        id: String,
        /// Key inside the secret's JSON value.
        json_key: Option<String>,
    },
    /// An environment variable of the process.
    Env(String),
    /// A file's content (trailing newline trimmed).
    File(String),
}

/// Why a secret reference does not parse. Never carries the text, which may be a pasted secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a secret reference: expected `secretsmanager:<name-or-arn>[#json-key]`, `env:NAME` or `file:PATH` (the value itself is not shown; secrets are never written in clear in a config)"
)]
pub struct SecretRefError;

impl FromStr for SecretRef {
    type Err = SecretRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("secretsmanager:") {
            let (id, key) = match rest.split_once('#') {
                Some((id, key)) => (id, Some(key)),
                None => (rest, None),
            };
            if id.is_empty() || key.is_some_and(str::is_empty) {
                return Err(SecretRefError);
            }
            return Ok(SecretRef::SecretsManager { id: id.to_string(), json_key: key.map(str::to_string) });
        }
        if let Some(name) = s.strip_prefix("env:") {
            let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if ok { Ok(SecretRef::Env(name.to_string())) } else { Err(SecretRefError) };
        }
        if let Some(path) = s.strip_prefix("file:") {
            return if path.is_empty() { Err(SecretRefError) } else { Ok(SecretRef::File(path.to_string())) };
        }
        Err(SecretRefError)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::SecretsManager { id, json_key: Some(k) } => write!(f, "secretsmanager:{id}#{k}"),
            SecretRef::SecretsManager { id, json_key: None } => write!(f, "secretsmanager:{id}"),
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reference is not secret; the value it points to is.
        write!(f, "SecretRef({self})")
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor instead of `String::deserialize`: serde's default type errors quote the value, and a
        // number or list given here may well be a pasted secret.
        struct V;
        impl<'a> serde::de::Visitor<'a> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretRef, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(E::custom(SecretRefError))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(SecretRefError))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(SecretRefError))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(E::custom(SecretRefError))
            }
            fn visit_seq<A: serde::de::SeqAccess<'a>>(self, _: A) -> Result<SecretRef, A::Error> {
                Err(serde::de::Error::custom(SecretRefError))
            }
            fn visit_map<A: serde::de::MapAccess<'a>>(self, _: A) -> Result<SecretRef, A::Error> {
                Err(serde::de::Error::custom(SecretRefError))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretRef".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A reference to a secret, never the secret itself: secretsmanager:<name-or-arn>[#json-key], env:NAME or file:PATH",
            "pattern": "^(secretsmanager:[^#]+(#.+)?|env:[A-Za-z0-9_]+|file:.+)$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "secretsmanager:prod/kasm#token".parse::<SecretRef>().unwrap(),
            SecretRef::SecretsManager { id: "prod/kasm".into(), json_key: Some("token".into()) }
        );
        assert_eq!("env:DO_TOKEN".parse::<SecretRef>().unwrap(), SecretRef::Env("DO_TOKEN".into()));
        assert_eq!("file:/run/s".parse::<SecretRef>().unwrap(), SecretRef::File("/run/s".into()));
    }

    #[test]
    fn rejects_clear_text_without_echoing_it() {
        let err = "hunter2".parse::<SecretRef>().unwrap_err().to_string();
        assert!(!err.contains("hunter2"));
        assert!("secretsmanager:".parse::<SecretRef>().is_err());
        assert!("secretsmanager:x#".parse::<SecretRef>().is_err());
        assert!("env:A-B".parse::<SecretRef>().is_err());
    }
}
