//! Kasm's own names for our config fields: the columns of Kasm 1.19's database (as Kasm's `export_schema()`
//! writes them, and as its Helm chart's preseed takes them), plus the older API names where they differ.
//!
//! A config file may use them instead of ours, so a Kasm export or preseed entry validates as it is. Each
//! config struct lists its own table of [`KasmColumn`]s beside it (its [`KasmColumns`] impl); this module
//! is only the mechanism that applies a table to one config entry before it is deserialized:
//!
//! - a **renamed** column becomes our field; where Kasm counts in other **units** the value is converted
//!   exactly (see [`Unit`]), and a value that does not convert cleanly is an error naming the column;
//! - Kasm's **ids**: a config's own id (`aws_config_id`, `config_id`, ...) is accepted and used to resolve
//!   the references other configs of the same document make by id (`aws_config_id` on an autoscale
//!   config, `autoscale_config_id` on a schedule), which become references by name, as ours are; the ids
//!   Kasm itself names at run time (an autoscale config's, on the session requests it queues and the
//!   staging configs it counts; a staging config's, on its staged sessions) are also kept in a field;
//! - a column with **no field** here is accepted only while it holds nothing that would change what Kasm
//!   does (its [`Accept`] rule; ids and runtime state always), otherwise it is an error saying why;
//! - giving Kasm's name and ours for the same field (or two Kasm names for one field) is an error naming
//!   both; a Kasm column holding `null` is treated as absent (Kasm exports every column).
//!
//! Secrets stay references: a Kasm column that holds a secret maps to one of our secret-reference fields
//! and is checked as such (a pasted secret is refused without being quoted).

use std::collections::HashMap;

use serde_yaml_ng::{Mapping, Value};

/// A unit sizes are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: Kasm 1.19's `*_bytes` columns.
    Bytes,
    /// Kasm's MB, 10^6 bytes (Kasm 1.15's `Image.memory_mb` is `memory / 1000000`; the Kasm client reports
    /// memory in the same MB): `standby_memory_mb`.
    Mb,
    /// Kasm's GB, 10^9 bytes (Kasm 1.15 compares `agent_memory_override_gb` with `Image.memory_gb`, which is
    /// `memory / 1000000000`): `agent_memory_override_gb`.
    Gb,
    /// MiB, 2^20 bytes (vSphere's `memoryMB`, Kasm 1.15's `vsphere_memoryMB`).
    Mib,
    /// GiB, 2^30 bytes: our VM memory and disk sizes, which the provider APIs take in GiB (or MiB, as
    /// `GiB × 1024`). Kasm's preseed documentation gives these columns in whole GiB (53687091200 = 50 GiB,
    /// 8589934592 = 8 GiB).
    Gib,
}

impl Unit {
    /// Bytes in one of this unit.
    pub const fn bytes(self) -> u64 {
        match self {
            Unit::Bytes => 1,
            Unit::Mb => 1_000_000,
            Unit::Gb => 1_000_000_000,
            Unit::Mib => 1 << 20,
            Unit::Gib => 1 << 30,
        }
    }

    /// The unit's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Mb => "MB (10^6 bytes)",
            Unit::Gb => "GB (10^9 bytes)",
            Unit::Mib => "MiB",
            Unit::Gib => "GiB",
        }
    }
}

/// What a Kasm value goes through on its way to our field.
#[derive(Debug, Clone, Copy)]
pub enum Conv {
    /// Taken as it is.
    AsIs,
    /// Taken as it is, except that an empty object, list or string (the default Kasm stores) means "not set".
    EmptyIsUnset,
    /// A size counted in `from`, our field in `to`. With `whole`, our field holds whole numbers only and the
    /// size must be an exact multiple of `to`.
    Size {
        /// Kasm's unit.
        from: Unit,
        /// Ours.
        to: Unit,
        /// Our field takes whole numbers only.
        whole: bool,
    },
    /// A time of day, `HH:MM[:SS[.ffffff]]` (Kasm writes `08:00:00`) to our `HH:MM`. Kasm's schedules drop
    /// the seconds (`replace(second=0)`), so they are dropped here too.
    TimeOfDay,
    /// A conversion the config's own module defines: the value, or why it does not convert.
    Custom(fn(&Value) -> Result<Value, String>),
}

/// The kind of config a Kasm id refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An autoscale config (`autoscale_config_id`).
    Autoscale,
    /// A VM-provider config of this provider (`aws`, `proxmox`, ...).
    VmProvider(&'static str),
    /// A DNS-provider config of this provider.
    DnsProvider(&'static str),
}

impl Target {
    fn what(self) -> String {
        match self {
            Target::Autoscale => "autoscale config".into(),
            Target::VmProvider(k) => format!("{k} VM-provider config"),
            Target::DnsProvider(k) => format!("{k} DNS-provider config"),
        }
    }
}

/// When a Kasm column without a field here is accepted (and then ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Always: it carries nothing we act on (Kasm's runtime state, a key Kasm generates itself).
    Any,
    /// While it is unset: `null`, `false`, `0`, `""`, `{}` or `[]`.
    Unset,
    /// While it is unset or equals this number (Kasm's default).
    UnsetOr(i64),
    /// While it is unset or a secret reference: the column holds a secret we do not use, and a config
    /// file never holds a secret in clear.
    UnsetOrSecretRef,
}

/// What a Kasm column is here.
#[derive(Debug, Clone, Copy)]
pub enum MapsTo {
    /// One of our fields (the same name or another), through a conversion.
    Field {
        /// Our field.
        ours: &'static str,
        /// How the value converts.
        conv: Conv,
    },
    /// The config's own Kasm id. With `keep`, our field of the same name holds it too (others refer to
    /// the config by it at run time, e.g. Kasm's staged sessions and queued requests); without, it only
    /// resolves the references of the same document.
    OwnId {
        /// Our field of the same name keeps it.
        keep: bool,
    },
    /// Kasm's id of another config; our field names that config.
    Reference {
        /// Our field (holding the other config's name).
        ours: &'static str,
        /// What it refers to.
        target: Target,
    },
    /// No field here.
    NoField {
        /// Why not (shown when the column is refused, and by `kasm-autoscale import`).
        why: &'static str,
        /// When it is accepted anyway.
        accept: Accept,
    },
}

/// One Kasm column and what it is here.
#[derive(Debug, Clone, Copy)]
pub struct KasmColumn {
    /// Kasm's name.
    pub kasm: &'static str,
    /// What it becomes.
    pub maps_to: MapsTo,
}

/// A column of the same name and meaning as ours.
pub const fn same(name: &'static str) -> KasmColumn {
    KasmColumn { kasm: name, maps_to: MapsTo::Field { ours: name, conv: Conv::AsIs } }
}

/// A column of the same name, where Kasm's empty default means "not set".
pub const fn same_or_empty(name: &'static str) -> KasmColumn {
    KasmColumn { kasm: name, maps_to: MapsTo::Field { ours: name, conv: Conv::EmptyIsUnset } }
}

/// Kasm's name for one of our fields, same value.
pub const fn renamed(kasm: &'static str, ours: &'static str) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::Field { ours, conv: Conv::AsIs } }
}

/// Kasm's name for one of our fields, where Kasm's empty default means "not set".
pub const fn renamed_or_empty(kasm: &'static str, ours: &'static str) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::Field { ours, conv: Conv::EmptyIsUnset } }
}

/// A size Kasm counts in `from` and we in `to` (`whole`: ours takes whole numbers only).
pub const fn size(kasm: &'static str, ours: &'static str, from: Unit, to: Unit, whole: bool) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::Field { ours, conv: Conv::Size { from, to, whole } } }
}

/// A column converted by `conv`.
pub const fn converted(kasm: &'static str, ours: &'static str, conv: Conv) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::Field { ours, conv } }
}

/// The config's own Kasm id.
pub const fn own_id(kasm: &'static str) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::OwnId { keep: false } }
}

/// The config's own Kasm id, kept in our field of the same name.
pub const fn own_id_kept(kasm: &'static str) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::OwnId { keep: true } }
}

/// Kasm's id of another config.
pub const fn reference(kasm: &'static str, ours: &'static str, target: Target) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::Reference { ours, target } }
}

/// A column with no field here.
pub const fn no_field(kasm: &'static str, why: &'static str, accept: Accept) -> KasmColumn {
    KasmColumn { kasm, maps_to: MapsTo::NoField { why, accept } }
}

/// Kasm's names for one config struct's fields: its table and columns.
pub trait KasmColumns {
    /// Kasm 1.19's table (`aws_configs`, `proxmox_vm_configs`, ...).
    const KASM_TABLE: &'static str;
    /// Every column of that table, and older API names where they differ.
    const KASM_COLUMNS: &'static [KasmColumn];
}

/// Kasm's ids of the configs in one document, for the references made by id.
#[derive(Debug, Default, Clone)]
pub struct KasmIds {
    ids: HashMap<String, Vec<(Target, String)>>,
}

/// Ids compare without dashes and case (Kasm's API writes 32 hex digits, its database dashed UUIDs).
pub fn norm_id(id: &str) -> String {
    id.chars().filter(|c| *c != '-').flat_map(char::to_lowercase).collect()
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl KasmIds {
    /// Records that the config named `name`, of kind `target`, has Kasm id `id`.
    pub fn insert(&mut self, target: Target, id: &str, name: &str) {
        self.ids.entry(norm_id(id)).or_default().push((target, name.to_string()));
    }

    /// Records the id of one config entry (Kasm's or our names), if it carries one: its [`MapsTo::OwnId`]
    /// column, and its name from `name_field` or the Kasm column renamed to it.
    pub fn insert_entry(&mut self, target: Target, entry: &Mapping, columns: &[KasmColumn], name_field: &str) {
        let get = |k: &str| entry.get(k).and_then(id_text);
        let id = columns.iter().find(|c| matches!(c.maps_to, MapsTo::OwnId { .. })).and_then(|c| get(c.kasm));
        let name = get(name_field).or_else(|| {
            columns.iter().find_map(|c| match c.maps_to {
                MapsTo::Field { ours, .. } if ours == name_field && c.kasm != name_field => get(c.kasm),
                _ => None,
            })
        });
        if let (Some(id), Some(name)) = (id, name) {
            self.insert(target, &id, &name);
        }
    }

    /// The name of the config `target` with Kasm id `id`, or why there is none.
    pub fn resolve(&self, target: Target, id: &str) -> Result<String, String> {
        let found = self.ids.get(&norm_id(id)).map(Vec::as_slice).unwrap_or_default();
        if let Some((_, name)) = found.iter().find(|(t, _)| *t == target) {
            return Ok(name.clone());
        }
        match found.first() {
            Some((t, name)) => {
                Err(format!("`{id}` is the Kasm id of {} `{name}`, not of a {}", t.what(), target.what()))
            }
            None => Err(format!("no {} in this file has Kasm id `{id}`", target.what())),
        }
    }
}

/// A Kasm column that could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnProblem {
    /// The column as written (Kasm's name).
    pub field: String,
    /// What is wrong (never quoting a secret).
    pub message: String,
    /// Our field this column stood for, left unset because of the problem (so that its absence is not
    /// reported a second time).
    pub ours: Option<&'static str>,
}

/// A Kasm column accepted and dropped (it has no field here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Kasm's name.
    pub kasm: &'static str,
    /// Why it has no field here.
    pub why: &'static str,
    /// Whether it held a value (not `null`, `false`, `0` or empty).
    pub had_value: bool,
}

/// What [`to_ours`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Columns that could not be taken.
    pub problems: Vec<ColumnProblem>,
    /// Columns accepted without a field here.
    pub dropped: Vec<Dropped>,
    /// Kasm's own id of the config, when it carried one.
    pub own_id: Option<String>,
}

fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.trim().is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::Tagged(_) => false,
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim().is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

fn accepted(accept: Accept, v: &Value) -> bool {
    match accept {
        Accept::Any => true,
        Accept::Unset => is_unset(v),
        Accept::UnsetOr(n) => is_unset(v) || v.as_i64() == Some(n) || v.as_f64() == Some(n as f64),
        Accept::UnsetOrSecretRef => {
            is_unset(v) || v.as_str().is_some_and(|s| s.parse::<super::secret::SecretRef>().is_ok())
        }
    }
}

/// A whole, non-negative number (as Kasm's integer columns hold), or `None`.
fn whole_number(v: &Value) -> Option<u128> {
    match v {
        Value::Number(n) => n.as_u64().map(u128::from).or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1e30).map(|f| f as u128)
        }),
        _ => None,
    }
}

/// Converts a size: `v` counted in `from` to `to`.
pub fn convert_size(v: &Value, from: Unit, to: Unit, whole: bool) -> Result<Value, String> {
    let Some(n) = whole_number(v) else {
        return Err(format!("expected a whole number of {} ≥ 0", from.name()));
    };
    let bytes = n * u128::from(from.bytes());
    let per = u128::from(to.bytes());
    if whole {
        if bytes % per != 0 {
            return Err(format!(
                "{n} {} is not a whole number of {} (a multiple of {per} bytes), so it does not convert exactly",
                from.name(),
                to.name()
            ));
        }
        let q = bytes / per;
        return u64::try_from(q)
            .map(|q| Value::Number(q.into()))
            .map_err(|_| format!("{n} {} is too large", from.name()));
    }
    // Exact in decimal; as f64 the quotient is the nearest double, as for any number written in a file.
    Ok(Value::Number(serde_yaml_ng::Number::from(bytes as f64 / per as f64)))
}

/// A valid time of day `HH:MM:SS[.ffffff]` (hours 00–23, minutes and seconds 00–59) → `HH:MM`; any
/// other text is left for the field's own check (which names it), so nothing invalid becomes valid.
pub fn time_of_day(v: &Value) -> Result<Value, String> {
    let Some(s) = v.as_str() else { return Ok(v.clone()) };
    let parts: Vec<&str> = s.trim().split(':').collect();
    let two = |p: &str, max: u32| p.len() == 2 && p.parse::<u32>().is_ok_and(|n| n <= max);
    match parts.as_slice() {
        [h, m, sec]
            if two(h, 23) && two(m, 59) && {
                let whole = sec.split('.').next().unwrap_or("");
                two(whole, 59) && sec.split('.').skip(1).all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
            } =>
        {
            Ok(Value::String(format!("{h}:{m}")))
        }
        _ => Ok(v.clone()),
    }
}

fn apply_conv(conv: Conv, v: &Value) -> Result<Option<Value>, String> {
    match conv {
        Conv::AsIs => Ok(Some(v.clone())),
        Conv::EmptyIsUnset => Ok((!is_empty_container(v)).then(|| v.clone())),
        Conv::Size { from, to, whole } => convert_size(v, from, to, whole).map(Some),
        Conv::TimeOfDay => time_of_day(v).map(Some),
        Conv::Custom(f) => f(v).map(Some),
    }
}

/// Rewrites one config entry from Kasm's names (in `columns`) to ours, resolving ids through `ids`. What
/// could not be taken is reported; the entry keeps everything else (unknown keys are left for the
/// deserializer to report).
pub fn to_ours(map: &mut Mapping, columns: &[KasmColumn], ids: &KasmIds) -> Outcome {
    let mut out = Outcome::default();
    // Which Kasm column set each of our fields, for conflicts between two Kasm names.
    let mut set_by: HashMap<&'static str, &'static str> = HashMap::new();
    for col in columns {
        let key = Value::String(col.kasm.to_string());
        let Some(v) = map.get(&key).cloned() else { continue };
        if v.is_null() {
            map.remove(&key);
            continue;
        }
        match col.maps_to {
            MapsTo::OwnId { keep } => {
                if !keep {
                    map.remove(&key);
                }
                out.own_id = id_text(&v);
            }
            MapsTo::NoField { why, accept } => {
                map.remove(&key);
                if accepted(accept, &v) {
                    out.dropped.push(Dropped { kasm: col.kasm, why, had_value: !is_unset(&v) });
                } else {
                    out.problems.push(ColumnProblem {
                        field: col.kasm.into(),
                        message: format!("Kasm's `{}` has no place in kasm-autoscale: {why}", col.kasm),
                        ours: None,
                    });
                }
            }
            MapsTo::Field { ours, conv } if ours == col.kasm => match apply_conv(conv, &v) {
                Ok(Some(nv)) => {
                    map.insert(key, nv);
                    set_by.insert(ours, col.kasm);
                }
                Ok(None) => {
                    map.remove(&key);
                }
                Err(e) => {
                    map.remove(&key);
                    out.problems.push(ColumnProblem { field: col.kasm.into(), message: e, ours: Some(ours) });
                }
            },
            MapsTo::Field { ours, conv } => {
                map.remove(&key);
                if let Some(p) = conflict(map, &set_by, col.kasm, ours) {
                    out.problems.push(p);
                    continue;
                }
                match apply_conv(conv, &v) {
                    Ok(Some(nv)) => {
                        map.insert(Value::String(ours.into()), nv);
                        set_by.insert(ours, col.kasm);
                    }
                    Ok(None) => {}
                    Err(e) => out.problems.push(ColumnProblem {
                        field: col.kasm.into(),
                        message: format!("{e} (`{}` is Kasm's name for `{ours}`)", col.kasm),
                        ours: Some(ours),
                    }),
                }
            }
            MapsTo::Reference { ours, target } => {
                map.remove(&key);
                if let Some(p) = conflict(map, &set_by, col.kasm, ours) {
                    out.problems.push(p);
                    continue;
                }
                let Some(id) = id_text(&v) else {
                    out.problems.push(ColumnProblem {
                        field: col.kasm.into(),
                        message: format!("expected Kasm's id of a {}", target.what()),
                        ours: Some(ours),
                    });
                    continue;
                };
                match ids.resolve(target, &id) {
                    Ok(name) => {
                        map.insert(Value::String(ours.into()), Value::String(name));
                        set_by.insert(ours, col.kasm);
                    }
                    Err(e) => out.problems.push(ColumnProblem { field: col.kasm.into(), message: e, ours: Some(ours) }),
                }
            }
        }
    }
    out
}

/// The problem when `ours` is set already (by our name or by another Kasm column).
fn conflict(
    map: &Mapping,
    set_by: &HashMap<&'static str, &'static str>,
    kasm: &'static str,
    ours: &'static str,
) -> Option<ColumnProblem> {
    if !map.contains_key(ours) {
        return None;
    }
    let message = match set_by.get(ours) {
        Some(other) if *other != ours => {
            format!("`{kasm}` and `{other}` both set `{ours}` (they are Kasm's names for it): give one of them")
        }
        _ => format!("`{kasm}` is Kasm's name for `{ours}`, which is given too: give one of them"),
    };
    Some(ColumnProblem { field: kasm.into(), message, ours: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(yaml: &str) -> Mapping {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const COLUMNS: &[KasmColumn] = &[
        own_id("config_id"),
        renamed("config_name", "name"),
        same("max_instances"),
        size("memory_bytes", "vm_memory", Unit::Bytes, Unit::Gib, true),
        size("standby_memory_bytes", "standby_memory_mb", Unit::Bytes, Unit::Mb, false),
        size("vsphere_memoryMB", "vm_memory", Unit::Mib, Unit::Gib, true),
        same_or_empty("metadata"),
        converted("active_start_time", "active_start_time", Conv::TimeOfDay),
        reference("aws_config_id", "vm_provider_config", Target::VmProvider("aws")),
        reference("gcp_vm_config_id", "vm_provider_config", Target::VmProvider("gcp")),
        no_field("last_provision", "runtime state", Accept::Any),
        no_field("reusable", "not supported", Accept::Unset),
        no_field("max_simultaneous_users", "not supported", Accept::UnsetOr(1)),
        no_field("aws_ec2_private_key", "not used", Accept::UnsetOrSecretRef),
    ];

    fn run(yaml: &str) -> (Mapping, Outcome) {
        let mut ids = KasmIds::default();
        ids.insert(Target::VmProvider("aws"), "0f5e2a7c-1b2d-4e3f-9a8b-7c6d5e4f3a2b", "aws-east");
        ids.insert(Target::VmProvider("gcp"), "11111111222233334444555555555555", "gcp-west");
        let mut m = map(yaml);
        let out = to_ours(&mut m, COLUMNS, &ids);
        (m, out)
    }

    #[test]
    fn sizes_convert_exactly_in_each_unit() {
        let (m, out) = run("memory_bytes: 8589934592\nstandby_memory_bytes: 2147483648\n");
        assert!(out.problems.is_empty(), "{out:?}");
        assert_eq!(m, map("vm_memory: 8\nstandby_memory_mb: 2147.483648\n"));
        let (m, _) = run("vsphere_memoryMB: 16384\n");
        assert_eq!(m, map("vm_memory: 16\n"));
        assert_eq!(convert_size(&Value::from(4_000_000_000_u64), Unit::Bytes, Unit::Gb, false), Ok(Value::from(4.0)));
        assert_eq!(convert_size(&Value::from(0), Unit::Bytes, Unit::Gib, true), Ok(Value::from(0)));
    }

    #[test]
    fn sizes_that_do_not_convert_cleanly_are_refused_naming_the_column() {
        for bad in ["8000000000", "-1073741824", "1.5", "'8 GiB'", "[1]"] {
            let (m, out) = run(&format!("memory_bytes: {bad}\n"));
            assert_eq!(out.problems.len(), 1, "{bad}: {out:?}");
            let p = &out.problems[0];
            assert_eq!(p.field, "memory_bytes");
            assert_eq!(p.ours, Some("vm_memory"));
            assert!(p.message.contains("Kasm's name for `vm_memory`"), "{}", p.message);
            assert!(!m.contains_key("vm_memory"), "{bad}");
        }
        let (_, out) = run("memory_bytes: 8000000000\n");
        assert!(out.problems[0].message.contains("not a whole number of GiB"), "{:?}", out.problems);
    }

    #[test]
    fn both_names_for_one_field_is_an_error_naming_both() {
        let (m, out) = run("name: a\nconfig_name: b\n");
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].field, "config_name");
        assert!(out.problems[0].message.contains("`config_name` is Kasm's name for `name`"), "{:?}", out.problems);
        assert_eq!(m, map("name: a\n"));
        let (_, out) = run("vm_memory: 8\nmemory_bytes: 8589934592\n");
        assert!(out.problems[0].message.contains("`memory_bytes` is Kasm's name for `vm_memory`"));
        let (_, out) = run("memory_bytes: 8589934592\nvsphere_memoryMB: 8192\n");
        assert!(
            out.problems[0].message.contains("`vsphere_memoryMB` and `memory_bytes` both set `vm_memory`"),
            "{:?}",
            out.problems
        );
    }

    #[test]
    fn references_by_kasm_id_become_names_and_nulls_are_absent() {
        let (m, out) = run(
            "aws_config_id: 0f5e2a7c1b2d4e3f9a8b7c6d5e4f3a2b\ngcp_vm_config_id: null\nconfig_id: abc\nmax_instances: null\n",
        );
        assert!(out.problems.is_empty(), "{out:?}");
        assert_eq!(out.own_id.as_deref(), Some("abc"));
        assert_eq!(m, map("vm_provider_config: aws-east\n"));
        let (_, out) = run("aws_config_id: 0f5e2a7c\n");
        assert!(out.problems[0].message.contains("no aws VM-provider config in this file has Kasm id"));
        let (_, out) = run("aws_config_id: 11111111-2222-3333-4444-555555555555\n");
        assert!(out.problems[0].message.contains("Kasm id of gcp VM-provider config `gcp-west`"), "{out:?}");
        let (_, out) = run(
            "aws_config_id: 0f5e2a7c1b2d4e3f9a8b7c6d5e4f3a2b\ngcp_vm_config_id: '11111111222233334444555555555555'\n",
        );
        assert!(out.problems[0].message.contains("`gcp_vm_config_id` and `aws_config_id` both set"), "{out:?}");
    }

    #[test]
    fn columns_without_a_field_are_accepted_only_while_inert() {
        let (m, out) = run(
            "last_provision: '2024-01-01 00:00:00'\nreusable: false\nmax_simultaneous_users: 1\naws_ec2_private_key: env:K\n",
        );
        assert!(out.problems.is_empty(), "{out:?}");
        assert!(m.is_empty());
        assert_eq!(out.dropped.iter().filter(|d| d.had_value).count(), 3, "{:?}", out.dropped);
        let (_, out) = run("reusable: true\nmax_simultaneous_users: 2\naws_ec2_private_key: '-----BEGIN KEY-----'\n");
        let fields: Vec<&str> = out.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["reusable", "max_simultaneous_users", "aws_ec2_private_key"]);
        assert!(out.problems.iter().all(|p| !p.message.contains("BEGIN")));
    }

    #[test]
    fn empty_defaults_and_times_of_day() {
        let (m, _) = run("metadata: {}\nactive_start_time: '08:30:00'\n");
        assert_eq!(m, map("active_start_time: '08:30'\n"));
        let (m, _) = run("metadata: {a: b}\nactive_start_time: '08:30'\n");
        assert_eq!(m, map("metadata: {a: b}\nactive_start_time: '08:30'\n"));
        assert_eq!(time_of_day(&Value::from("18:05:59.123456")), Ok(Value::from("18:05")));
        assert_eq!(time_of_day(&Value::from("soon")), Ok(Value::from("soon")));
    }
}

#[cfg(test)]
mod export_tests;
