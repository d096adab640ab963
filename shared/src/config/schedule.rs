//! Schedules: when an autoscale config is active. No schedule = always active. The rule is Kasm's
//! (`Schedule.is_active`); the engine's module docs ("Schedules") state it.

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

const DAYS: [Weekday; 7] = Weekday::ALL;
const EXPECTED_DAY: &str = "a day name (monday or mon, any case) or an ISO day number 1..=7 (1 = Monday)";

impl Weekday {
    /// Every day, Monday (ISO 1) to Sunday (ISO 7).
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// The day with ISO number `n` (1 = Monday .. 7 = Sunday).
    pub fn from_iso(n: u32) -> Option<Weekday> {
        n.checked_sub(1).and_then(|i| DAYS.get(i as usize)).copied()
    }

    /// The ISO number of the day (1 = Monday .. 7 = Sunday), as Kasm stores `days_of_the_week`.
    pub fn iso(self) -> u32 {
        self as u32 + 1
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

/// A schedule attached to an autoscale config, with Kasm's fields and Kasm's meaning: on the listed
/// days, active from `active_start_time` to `active_end_time` inclusive, read on the wall clock of
/// `timezone` in whole minutes. An end before the start spans midnight (continuing into the next
/// morning only when that day is not itself listed); an end equal to the start means "until midnight".
/// The full rule is in the engine's module docs ("Schedules").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The autoscale config (by `autoscale_config_name`) this schedule belongs to.
    pub autoscale_config: String,
    /// Days on which the window starts: names or Kasm's ISO numbers (1 = Monday .. 7 = Sunday).
    pub days_of_the_week: Vec<Weekday>,
    /// Start of the window, `HH:MM` or `HH:MM:SS` (24 h; seconds are ignored, as Kasm ignores them).
    pub active_start_time: String,
    /// End of the window, `HH:MM` or `HH:MM:SS`, inclusive to the minute. `24:00` (our addition;
    /// Kasm stores a time of day, which cannot be 24:00) means 23:59, the end of the day.
    pub active_end_time: String,
    /// IANA timezone name, e.g. `Europe/Berlin`. Default UTC.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Our extension: keep at least this many VMs while the schedule is active (pre-warmed fleet).
    #[serde(default)]
    pub minimum_instances: u32,
}

/// Kasm's `schedules` columns: the schedule names its autoscale config by Kasm id (resolved by the ids the
/// autoscale configs of the same file carry); Kasm's `HH:MM:SS` times are written `HH:MM` (Kasm
/// ignores the seconds too).
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

/// The last minute of a day, 23:59, which `24:00` stands for as an end.
const LAST_MINUTE: u32 = 23 * 60 + 59;

impl Schedule {
    /// `active_start_time` as minutes after local midnight (0 ..= 1439), seconds dropped; `None` if
    /// it is not a time of day `HH:MM` or `HH:MM:SS`.
    pub fn start_minute(&self) -> Option<u32> {
        parse_time_of_day(&self.active_start_time, false)
    }

    /// `active_end_time` as minutes after local midnight (0 ..= 1439), seconds dropped, `24:00`
    /// read as 23:59; `None` if it is not `HH:MM` or `HH:MM:SS` (or `24:00`/`24:00:00`).
    pub fn end_minute(&self) -> Option<u32> {
        parse_time_of_day(&self.active_end_time, true)
    }

    /// The schedule as people write it: `Mon–Fri 08:00–17:00 Europe/Berlin` (runs of consecutive days
    /// as ranges, others listed: `Mon, Wed, Fri`; all seven `every day`; times as configured, seconds
    /// dropped).
    pub fn describe(&self) -> String {
        let mut days: Vec<u32> = self.days_of_the_week.iter().map(|d| d.iso()).collect();
        days.sort_unstable();
        days.dedup();
        let name = |iso: u32| Weekday::from_iso(iso).map(|d| d.to_chrono().to_string()).unwrap_or_default();
        let days_text = if days.len() == 7 {
            "every day".to_string()
        } else {
            // Runs of consecutive ISO days: three or more as a range, shorter ones listed.
            let mut parts: Vec<String> = Vec::new();
            let mut i = 0;
            while i < days.len() {
                let mut j = i;
                while j + 1 < days.len() && days[j + 1] == days[j] + 1 {
                    j += 1;
                }
                if j - i >= 2 {
                    parts.push(format!("{}–{}", name(days[i]), name(days[j])));
                } else {
                    parts.extend(days[i..=j].iter().map(|&d| name(d)));
                }
                i = j + 1;
            }
            parts.join(", ")
        };
        let hhmm = |t: &str| t.split(':').take(2).collect::<Vec<_>>().join(":");
        format!("{days_text} {}–{} {}", hhmm(&self.active_start_time), hhmm(&self.active_end_time), self.timezone)
    }
}

/// Parses `HH:MM` or `HH:MM:SS` (two digits each, 24 h) to the minute of the day, dropping the
/// seconds as Kasm does. With `is_end`, `24:00` (and `24:00:00`) is the last minute, 23:59: an
/// operator writing "until 24:00" means the end of the day, and Kasm's end minute is inclusive.
fn parse_time_of_day(s: &str, is_end: bool) -> Option<u32> {
    let two_digits = |p: &str, max: u32| -> Option<u32> {
        let ok = p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| p.parse().ok()).flatten().filter(|v| *v <= max)
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts[..] {
        [h, m] => (two_digits(h, 24)?, two_digits(m, 59)?, 0),
        [h, m, sec] => (two_digits(h, 24)?, two_digits(m, 59)?, two_digits(sec, 59)?),
        _ => return None,
    };
    match h {
        24 if is_end && m == 0 && sec == 0 => Some(LAST_MINUTE),
        24 => None,
        _ => Some(h * 60 + m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_describe_themselves_as_people_write_them() {
        let s = |days: &str, start: &str, end: &str, tz: &str| -> String {
            let doc = format!(
                "{{autoscale_config: a, days_of_the_week: {days}, active_start_time: '{start}', \
                 active_end_time: '{end}', timezone: {tz}}}"
            );
            serde_yaml_ng::from_str::<Schedule>(&doc).unwrap().describe()
        };
        assert_eq!(
            s("[mon, tue, wed, thu, fri]", "08:00", "17:00", "Europe/Berlin"),
            "Mon–Fri 08:00–17:00 Europe/Berlin"
        );
        assert_eq!(s("[5, 1, 3]", "22:00:00", "06:00:00", "UTC"), "Mon, Wed, Fri 22:00–06:00 UTC");
        assert_eq!(s("[1, 2, 3, 4, 5, 6, 7]", "00:00", "24:00", "UTC"), "every day 00:00–24:00 UTC");
        assert_eq!(s("[sat, sun, mon, tue]", "09:00", "12:00", "UTC"), "Mon, Tue, Sat, Sun 09:00–12:00 UTC");
        assert_eq!(s("[sun]", "10:00", "11:00", "UTC"), "Sun 10:00–11:00 UTC");
    }

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
    fn iso_numbers_round_trip() {
        for n in 1..=7 {
            assert_eq!(Weekday::from_iso(n).unwrap().iso(), n);
        }
        assert_eq!(Weekday::Monday.iso(), 1);
        assert_eq!(Weekday::Sunday.iso(), 7);
        assert_eq!(Weekday::from_iso(0), None);
        assert_eq!(Weekday::from_iso(8), None);
    }

    #[test]
    fn times_are_minutes_of_the_day_seconds_dropped() {
        let s = |start: &str, end: &str| {
            let s = Schedule {
                autoscale_config: "a".into(),
                days_of_the_week: vec![Weekday::Monday],
                active_start_time: start.into(),
                active_end_time: end.into(),
                timezone: utc(),
                minimum_instances: 0,
            };
            (s.start_minute(), s.end_minute())
        };
        assert_eq!(s("00:00", "23:59"), (Some(0), Some(1439)));
        assert_eq!(s("08:30:45", "17:00:59"), (Some(510), Some(1020)));
        // 24:00 is an end only, meaning the last minute of the day.
        assert_eq!(s("24:00", "24:00"), (None, Some(1439)));
        assert_eq!(s("24:00:00", "24:00:00"), (None, Some(1439)));
        for bad in [
            "24:00:01",
            "24:01",
            "8:00",
            "08:60",
            "08:00:60",
            "",
            "08",
            "08:00:00:00",
            " 08:00",
            "+8:00",
            "08:0",
            "٠٨:00",
        ] {
            assert_eq!(s(bad, bad), (None, None), "{bad:?}");
        }
    }

    #[test]
    fn days_serialize_as_lowercase_names() {
        assert_eq!(serde_json::to_string(&Weekday::Friday).unwrap(), "\"friday\"");
    }
}
