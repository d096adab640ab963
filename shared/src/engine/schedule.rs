//! Whether an autoscale config's schedules make it active at an instant, and the `minimum_instances`
//! floor they set. The rule is Kasm's `Schedule.is_active`; it is documented in the engine's module
//! docs ("Schedules").

use chrono::{DateTime, Utc};
use jiff::tz::TimeZone;

use crate::config::Schedule;

/// The outcome of evaluating a config's schedules at one instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleEval {
    /// The config may scale up and keeps its VMs (subject to standby); inactive, every VM is drained.
    pub active: bool,
    /// The largest `minimum_instances` among the active schedules.
    pub floor: u32,
    /// Human-readable notes for the plan's reasons.
    pub notes: Vec<String>,
}

/// Evaluates `schedules` at `now`. No schedules = always active, floor 0 (as Kasm's
/// `AutoScaleConfig.is_active`: active when it has no schedules or any of them is active).
pub(crate) fn evaluate(schedules: &[Schedule], now: DateTime<Utc>) -> ScheduleEval {
    if schedules.is_empty() {
        return ScheduleEval { active: true, floor: 0, notes: Vec::new() };
    }
    let mut eval = ScheduleEval { active: false, floor: 0, notes: Vec::new() };
    for (i, s) in schedules.iter().enumerate() {
        match is_active(s, now) {
            Ok(true) => {
                eval.active = true;
                eval.floor = eval.floor.max(s.minimum_instances);
                eval.notes.push(format!("schedule {} ({}) is active", i + 1, s.describe()));
            }
            Ok(false) => {}
            Err(e) => {
                // Fail open: a schedule we cannot read must not strand users by draining the pool.
                // Config validation rejects such schedules; this only guards stored data.
                eval.active = true;
                eval.notes.push(format!("schedule {} is invalid ({e}): treated as active, its floor ignored", i + 1));
            }
        }
    }
    if !eval.active {
        eval.notes.push(format!("no schedule is active at {} (UTC)", now.format("%a %H:%M")));
    }
    eval
}

/// The config's schedules for the plan's reasons, e.g. `schedule 1: Mon–Fri 08:00–17:00 Europe/Berlin`
/// ([`Schedule::describe`]); several are joined with `; `.
pub(crate) fn describe_all(schedules: &[Schedule]) -> String {
    schedules
        .iter()
        .enumerate()
        .map(|(i, s)| format!("schedule {}: {}", i + 1, s.describe()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The IANA time zone called `name`, from the tz database compiled into the binary (so validation on
/// an operator's machine and evaluation in Lambda agree, whatever the host has installed). The name
/// must be spelled exactly as in the database (`America/New_York`), as Kasm's own lookup requires.
pub(crate) fn time_zone(name: &str) -> Option<TimeZone> {
    jiff::tz::db().get(name).ok().filter(|tz| tz.iana_name() == Some(name))
}

/// Every time zone name the compiled-in database knows (for "did you mean" hints).
pub(crate) fn time_zone_names() -> Vec<String> {
    jiff::tz::db().available().map(|n| n.as_str().to_string()).collect()
}

/// The wall clock of `tz` at `now`, in whole minutes: (ISO weekday 1 = Monday .. 7 = Sunday, minute
/// of the day 0 ..= 1439). A UTC instant has exactly one wall time (Python's `astimezone`, which
/// Kasm uses, agrees): in a DST gap the skipped wall times never occur, in a fold the repeated
/// ones occur twice. Seconds are dropped, as Kasm drops them.
fn wall_clock(tz: &TimeZone, now: DateTime<Utc>) -> Result<(u32, u32), String> {
    // chrono's timestamp() is the floor of the instant in seconds, so dropping the nanoseconds
    // never moves it into another minute.
    let instant = jiff::Timestamp::from_second(now.timestamp()).map_err(|_| format!("instant {now} out of range"))?;
    let local = tz.to_datetime(instant);
    let weekday = u32::from(local.weekday().to_monday_one_offset().unsigned_abs());
    let minute = u32::from(local.hour().unsigned_abs()) * 60 + u32::from(local.minute().unsigned_abs());
    Ok((weekday, minute))
}

/// Whether the schedule `s` is active at `now`: Kasm's `Schedule.is_active`, minute for minute.
///
/// With today's wall clock in the schedule's zone (weekday and minute, seconds dropped):
/// - today listed: start < end → start ≤ now ≤ end; otherwise (start ≥ end) → now ≥ start, i.e.
///   until midnight;
/// - else yesterday listed and start > end → now ≤ end (yesterday's window continuing past midnight);
/// - else inactive.
///
/// "Yesterday" is today's ISO number minus one, as in Kasm: on a Monday that is 0, which no
/// schedule lists, so a Sunday window crossing midnight does not continue into Monday morning.
pub(crate) fn is_active(s: &Schedule, now: DateTime<Utc>) -> Result<bool, String> {
    let tz = time_zone(&s.timezone).ok_or_else(|| format!("unknown timezone {:?}", s.timezone))?;
    let start = s.start_minute().ok_or_else(|| format!("bad active_start_time {:?}", s.active_start_time))?;
    let end = s.end_minute().ok_or_else(|| format!("bad active_end_time {:?}", s.active_end_time))?;
    let (today, current) = wall_clock(&tz, now)?;
    let listed = |iso: u32| s.days_of_the_week.iter().any(|d| d.iso() == iso);
    Ok(if listed(today) {
        if start < end { start <= current && current <= end } else { current >= start }
    } else if listed(today - 1) {
        start > end && current <= end
    } else {
        false
    })
}

#[cfg(test)]
mod tests;
