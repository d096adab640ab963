//! Schedules: when an autoscale config is active. No schedule = always active.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A day of the week (ISO: Monday first). Accepts `monday`/`mon` or 1..=7 (1 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    #[serde(alias = "mon", alias = "1")]
    Monday,
    /// Tuesday.
    #[serde(alias = "tue", alias = "2")]
    Tuesday,
    /// Wednesday.
    #[serde(alias = "wed", alias = "3")]
    Wednesday,
    /// Thursday.
    #[serde(alias = "thu", alias = "4")]
    Thursday,
    /// Friday.
    #[serde(alias = "fri", alias = "5")]
    Friday,
    /// Saturday.
    #[serde(alias = "sat", alias = "6")]
    Saturday,
    /// Sunday.
    #[serde(alias = "sun", alias = "7")]
    Sunday,
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

fn utc() -> String {
    "UTC".to_string()
}
