//! Schedules: when an autoscale config is active. No schedule = always active.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kasm_names::{Conv, KasmColumn, KasmColumns, Target, converted, own_id, reference, same};

/// A day of the week (ISO: Monday first). Accepts `monday`/`mon` (any case) or 1..=7 (1 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

const DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];
const EXPECTED_DAY: &str = "a day name (monday or mon, any case) or an ISO day number 1..=7 (1 = Monday)";

impl Weekday {
    /// The day with ISO number `n` (1 = Monday .. 7 = Sunday).
    pub fn from_iso(n: u32) -> Option<Weekday> {
        n.checked_sub(1).and_then(|i| DAYS.get(i as usize)).copied()
    }
}

impl std::str::FromStr for Weekday {
    type Err = ();

    /// Full or three-letter English name in any case, or the ISO number as text.
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim().to_ascii_lowercase();
        if let Ok(n) = s.parse::<u32>() {
            return Weekday::from_iso(n).ok_or(());
        }
        DAYS.iter()
            .copied()
            .find(|d| {
                let full = format!("{d:?}").to_ascii_lowercase();
                s == full || s == full[..3]
            })
            .ok_or(())
    }
}

impl<'de> Deserialize<'de> for Weekday {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Weekday;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED_DAY)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Weekday, E> {
                v.parse().map_err(|()| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Weekday, E> {
                u32::try_from(v)
                    .ok()
                    .and_then(Weekday::from_iso)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Weekday, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Weekday {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Weekday".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": EXPECTED_DAY,
            "anyOf": [
                { "type": "string", "pattern": "^(?i)(mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday|[1-7])$" },
                { "type": "integer", "minimum": 1, "maximum": 7 }
            ]
        })
    }
}

impl Weekday {
    /// The chrono weekday.
    pub fn to_chrono(self) -> chrono::Weekday {
        match self {
            Weekday::Monday => chrono::Weekday::Mon,
            Weekday::Tuesday => chrono::Weekday::Tue,
            Weekday::Wednesday => chrono::Weekday::Wed,
            Weekday::Thursday => chrono::Weekday::Thu,
            Weekday::Friday => chrono::Weekday::Fri,
            Weekday::Saturday => chrono::Weekday::Sat,
            Weekday::Sunday => chrono::Weekday::Sun,
        }
    }
}

/// A schedule attached to an autoscale config: active on `days_of_the_week` between
/// `active_start_time` and `active_end_time` (HH:MM, local to `timezone`). An end before the start
/// spans midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The autoscale config (by `autoscale_config_name`) this schedule belongs to.
    pub autoscale_config: String,
    /// Days on which the window starts.
    pub days_of_the_week: Vec<Weekday>,
    /// Start of the window, `HH:MM` (24 h).
    pub active_start_time: String,
    /// End of the window, `HH:MM` (24 h); `24:00` or an end before the start spans to the next day.
    pub active_end_time: String,
    /// IANA timezone name, e.g. `Europe/Berlin`. Default UTC.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Our extension: keep at least this many VMs while the schedule is active (pre-warmed fleet).
    #[serde(default)]
    pub minimum_instances: u32,
}

/// Kasm's `schedules` columns: the schedule names its autoscale config by Kasm id (resolved by the ids the
/// autoscale configs of the same file carry), and Kasm writes times as `HH:MM:SS`.
impl KasmColumns for Schedule {
    const KASM_TABLE: &'static str = "schedules";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id("schedule_id"),
        reference("autoscale_config_id", "autoscale_config", Target::Autoscale),
        same("days_of_the_week"),
        converted("active_start_time", "active_start_time", Conv::TimeOfDay),
        converted("active_end_time", "active_end_time", Conv::TimeOfDay),
        same("timezone"),
    ];
}

fn utc() -> String {
    "UTC".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(yaml: &str) -> Result<Vec<Weekday>, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn days_parse_names_abbreviations_any_case_and_iso_numbers() {
        use Weekday::*;
        assert_eq!(days("[monday, Tue, WEDNESDAY, thu]").unwrap(), vec![Monday, Tuesday, Wednesday, Thursday]);
        assert_eq!(
            days("[1, 2, 3, 4, 5, 6, 7]").unwrap(),
            vec![Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday]
        );
        assert_eq!(days("['5', sun]").unwrap(), vec![Friday, Sunday]);
        assert_eq!(serde_json::from_str::<Vec<Weekday>>("[7, \"sat\"]").unwrap(), vec![Sunday, Saturday]);
    }

    #[test]
    fn days_reject_out_of_range_and_unknown_names() {
        for bad in ["[0]", "[8]", "[-1]", "[funday]", "[mo]", "[1.5]", "[true]"] {
            let err = days(bad).unwrap_err();
            assert!(err.contains("1..=7") || err.contains("invalid type"), "{bad}: {err}");
        }
    }

    #[test]
    fn days_serialize_as_lowercase_names() {
        assert_eq!(serde_json::to_string(&Weekday::Friday).unwrap(), "\"friday\"");
    }
}
