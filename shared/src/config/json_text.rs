//! Fields Kasm's UI takes as JSON (or YAML) *text*: in our files they may be written either as a native
//! YAML/JSON value or as a string holding the text, so configs copied from the Kasm UI work unchanged.

use schemars::JsonSchema;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// A value Kasm takes as JSON text: accepts the value itself, or a string containing it as JSON.
/// Always serialized as the native value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonText<T>(pub T);

/// A value Kasm takes as YAML text (a Kubernetes manifest): accepts the value itself, or a string
/// containing it as YAML (JSON is a subset). Always serialized as the native value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct YamlText<T>(pub T);

impl<T> std::ops::Deref for JsonText<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::Deref for YamlText<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The native value or, for a string, `parse` of it. A string is always read as text, so these wrappers
/// suit only list/map shapes, which is what every Kasm JSON field holds.
fn native_or_text<'de, D, T>(d: D, what: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::String(s) => parse(&s).map_err(|e| D::Error::custom(format!("invalid {what} text: {e}"))),
        other => serde_path_to_error::deserialize(other).map_err(|e| D::Error::custom(at(e.path(), e.inner()))),
    }
}

/// How an error inside a value read through an intermediate (where serde loses the path) keeps it:
/// `at <path inside the value>: <message>`; `validate` joins that path to the field's. A message that
/// already carries an inner path is joined to `path` (`[0]` + `key` → `[0].key`).
pub(crate) fn at(path: &serde_path_to_error::Path, message: impl std::fmt::Display) -> String {
    let outer = path.to_string();
    let message = message.to_string();
    if outer == "." || outer.is_empty() {
        return message;
    }
    match split_at_path(&message) {
        Some((inner, rest)) if inner.starts_with('[') => format!("{AT}{outer}{inner}: {rest}"),
        Some((inner, rest)) => format!("{AT}{outer}.{inner}: {rest}"),
        None => format!("{AT}{outer}: {message}"),
    }
}

/// The prefix of a message carrying a path inside a value.
pub(crate) const AT: &str = "at ";

/// `(inner path, the rest)` of a message made by [`at`], else `None`.
pub(crate) fn split_at_path(message: &str) -> Option<(&str, &str)> {
    let (path, rest) = message.strip_prefix(AT)?.split_once(": ")?;
    let is_path = !path.is_empty()
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '$'));
    is_path.then_some((path, rest))
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for JsonText<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        native_or_text(d, "JSON", |s| serde_json::from_str(s).map_err(|e| e.to_string())).map(JsonText)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for YamlText<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        native_or_text(d, "YAML", |s| serde_yaml_ng::from_str(s).map_err(|e| e.to_string())).map(YamlText)
    }
}

impl<T: Serialize> Serialize for JsonText<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Serialize> Serialize for YamlText<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn either_schema<T: JsonSchema>(g: &mut schemars::SchemaGenerator, what: &str) -> schemars::Schema {
    let inner = g.subschema_for::<T>();
    schemars::json_schema!({
        "anyOf": [
            inner,
            { "type": "string", "description": format!("the same value written as {what} text (as pasted from the Kasm UI)") }
        ]
    })
}

impl<T: JsonSchema> JsonSchema for JsonText<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("JsonText_{}", T::schema_name()).into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        either_schema::<T>(g, "JSON")
    }
}

impl<T: JsonSchema> JsonSchema for YamlText<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("YamlText_{}", T::schema_name()).into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        either_schema::<T>(g, "YAML")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    #[derive(Debug, Deserialize)]
    struct Holder {
        list: JsonText<Vec<String>>,
        map: JsonText<IndexMap<String, String>>,
    }

    #[test]
    fn accepts_native_values_and_json_text() {
        let native: Holder = serde_yaml_ng::from_str("list: [a, b]\nmap: {k: v}\n").unwrap();
        let text: Holder = serde_yaml_ng::from_str("list: '[\"a\", \"b\"]'\nmap: '{\"k\": \"v\"}'\n").unwrap();
        assert_eq!(native.list.0, vec!["a", "b"]);
        assert_eq!(native.list, text.list);
        assert_eq!(native.map, text.map);
    }

    #[test]
    fn rejects_bad_text_and_wrong_shapes() {
        let bad_json = serde_yaml_ng::from_str::<Holder>("list: '[\"a\",'\nmap: {}\n").unwrap_err();
        assert!(bad_json.to_string().contains("invalid JSON text"), "{bad_json}");
        let wrong_shape = serde_yaml_ng::from_str::<Holder>("list: '{\"a\": 1}'\nmap: {}\n").unwrap_err();
        assert!(wrong_shape.to_string().contains("invalid JSON text"), "{wrong_shape}");
        let wrong_native = serde_yaml_ng::from_str::<Holder>("list: {a: 1}\nmap: {}\n").unwrap_err();
        assert!(wrong_native.to_string().contains("invalid type"), "{wrong_native}");
    }

    #[test]
    fn yaml_text_parses_yaml_and_serializes_native() {
        let v: YamlText<serde_json::Value> = serde_json::from_str("\"kind: VirtualMachine\\nspec: {}\\n\"").unwrap();
        assert_eq!(v.0["kind"], "VirtualMachine");
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"kind":"VirtualMachine","spec":{}}"#);
    }
}
