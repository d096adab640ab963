//! Whether an autoscale config's schedules make it active at an instant, and the `minimum_instances`
//! floor they set. Rules are documented in the engine's module docs ("Schedules").

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::config::Schedule;

/// The outcome of evaluating a config's schedules at one instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScheduleEval {
    /// The config may scale up and keeps idle VMs (subject to standby).
    pub active: bool,
    /// The largest `minimum_instances` among the schedules whose window contains now.
    pub floor: u32,
    /// Human-readable notes for the plan's reasons.
    pub notes: Vec<String>,
}

/// Evaluates `schedules` at `now`. No schedules = always active, floor 0.
pub(crate) fn evaluate(schedules: &[Schedule], now: DateTime<Utc>) -> ScheduleEval {
    if schedules.is_empty() {
        return ScheduleEval { active: true, floor: 0, notes: Vec::new() };
    }
    let mut eval = ScheduleEval { active: false, floor: 0, notes: Vec::new() };
    for (i, s) in schedules.iter().enumerate() {
        match window_contains(s, now) {
            Ok(true) => {
                eval.active = true;
                eval.floor = eval.floor.max(s.minimum_instances);
                eval.notes.push(format!(
                    "schedule {} ({:?} {}-{} {}) is active",
                    i + 1,
                    day_names(s),
                    s.active_start_time,
                    s.active_end_time,
                    s.timezone
                ));
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
        eval.notes.push(format!("no schedule window contains {} (UTC)", now.format("%a %H:%M")));
    }
    eval
}

fn day_names(s: &Schedule) -> Vec<String> {
    s.days_of_the_week.iter().map(|d| d.to_chrono().to_string()).collect()
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

/// Whether the window of `s` contains `now`. A window belongs to its start day; an end ≤ start (or
/// `24:00`) ends on the next day, so yesterday's window may still be open today.
pub(crate) fn window_contains(s: &Schedule, now: DateTime<Utc>) -> Result<bool, String> {
    let tz = time_zone(&s.timezone).ok_or_else(|| format!("unknown timezone {:?}", s.timezone))?;
    let start = parse_hhmm(&s.active_start_time, false)
        .flatten()
        .ok_or_else(|| format!("bad active_start_time {:?}", s.active_start_time))?;
    let end =
        parse_hhmm(&s.active_end_time, true).ok_or_else(|| format!("bad active_end_time {:?}", s.active_end_time))?;
    let today = local_date(&tz, now)?;
    for day in [today - Duration::days(1), today] {
        if !s.days_of_the_week.iter().any(|d| d.to_chrono() == day.weekday()) {
            continue;
        }
        let (start_at, end_at) = window_on(&tz, day, start, end)?;
        if start_at <= now && now < end_at {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The local calendar date in `tz` at the instant `now`.
fn local_date(tz: &TimeZone, now: DateTime<Utc>) -> Result<NaiveDate, String> {
    let instant = jiff::Timestamp::from_second(now.timestamp()).map_err(|_| format!("instant {now} out of range"))?;
    let offset = tz.to_offset(instant).seconds();
    Ok((now.naive_utc() + Duration::seconds(i64::from(offset))).date())
}

/// The UTC bounds of the window starting on local `day`. `end` = None means `24:00`.
fn window_on(
    tz: &TimeZone,
    day: NaiveDate,
    start: NaiveTime,
    end: Option<NaiveTime>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let next = day + Duration::days(1);
    let end_local = match end {
        None => next.and_time(NaiveTime::MIN),
        Some(e) if e <= start => next.and_time(e),
        Some(e) => day.and_time(e),
    };
    Ok((resolve(tz, day.and_time(start), false)?, resolve(tz, end_local, true)?))
}

/// Local wall time to an instant. Ambiguous times (DST fold) take the earlier instant for a start
/// and the later for an end, so the window is never shortened. Non-existent times (DST gap) move
/// to the first valid minute after the gap: "02:30" on a spring-forward night means 03:00.
fn resolve(tz: &TimeZone, local: NaiveDateTime, is_end: bool) -> Result<DateTime<Utc>, String> {
    let pick = |l: NaiveDateTime| -> Result<Option<DateTime<Utc>>, String> {
        let offset = match tz.to_ambiguous_timestamp(civil(l)?).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            AmbiguousOffset::Fold { before, after } => {
                if is_end {
                    after
                } else {
                    before
                }
            }
            AmbiguousOffset::Gap { .. } => return Ok(None),
        };
        Ok(Some((l - Duration::seconds(i64::from(offset.seconds()))).and_utc()))
    };
    // Gaps are at most a few hours in every zone in the tz database.
    for m in 0..=(6 * 60) {
        if let Some(t) = pick(local + Duration::minutes(m))? {
            return Ok(t);
        }
    }
    Ok(local.and_utc())
}

/// A chrono local date-time as jiff's civil date-time (whole seconds, as schedules are in minutes).
fn civil(l: NaiveDateTime) -> Result<jiff::civil::DateTime, String> {
    let out_of_range = || format!("local time {l} out of range");
    let year = i16::try_from(l.year()).map_err(|_| out_of_range())?;
    // Month, day, hour, minute and second are small by construction.
    let small = |v: u32| v as i8;
    jiff::civil::DateTime::new(
        year,
        small(l.month()),
        small(l.day()),
        small(l.hour()),
        small(l.minute()),
        small(l.second()),
        0,
    )
    .map_err(|_| out_of_range())
}

/// Parses `HH:MM` (24 h). With `allow_24`, `24:00` parses as `None` (end of day).
fn parse_hhmm(s: &str, allow_24: bool) -> Option<Option<NaiveTime>> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if allow_24 && h == 24 && m == 0 {
        return Some(None);
    }
    NaiveTime::from_hms_opt(h, m, 0).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Weekday;

    fn sched(days: &[Weekday], start: &str, end: &str, tz: &str, min: u32) -> Schedule {
        Schedule {
            autoscale_config: "c".into(),
            days_of_the_week: days.to_vec(),
            active_start_time: start.into(),
            active_end_time: end.into(),
            timezone: tz.into(),
            minimum_instances: min,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn no_schedules_is_always_active() {
        let e = evaluate(&[], at("2026-11-22T03:00:00Z"));
        assert!(e.active);
        assert_eq!(e.floor, 0);
    }

    #[test]
    fn office_hours_in_a_timezone() {
        // 2026-11-23 is a Monday. Berlin is UTC+1 in November.
        let s = sched(&[Weekday::Monday], "08:00", "18:00", "Europe/Berlin", 3);
        assert!(!window_contains(&s, at("2026-11-23T06:59:00Z")).unwrap());
        assert!(window_contains(&s, at("2026-11-23T07:00:00Z")).unwrap());
        assert!(window_contains(&s, at("2026-11-23T16:59:00Z")).unwrap());
        assert!(!window_contains(&s, at("2026-11-23T17:00:00Z")).unwrap());
        // Tuesday is not listed.
        assert!(!window_contains(&s, at("2026-11-24T10:00:00Z")).unwrap());
        let e = evaluate(&[s], at("2026-11-23T10:00:00Z"));
        assert!(e.active);
        assert_eq!(e.floor, 3);
    }

    #[test]
    fn overnight_window_belongs_to_its_start_day() {
        // Friday 22:00 → Saturday 06:00, UTC.
        let s = sched(&[Weekday::Friday], "22:00", "06:00", "UTC", 0);
        assert!(window_contains(&s, at("2026-11-27T23:00:00Z")).unwrap()); // Fri
        assert!(window_contains(&s, at("2026-11-28T05:59:00Z")).unwrap()); // Sat morning
        assert!(!window_contains(&s, at("2026-11-28T06:00:00Z")).unwrap());
        // Saturday night is not a Friday window.
        assert!(!window_contains(&s, at("2026-11-28T23:00:00Z")).unwrap());
        // Friday morning belongs to Thursday's (absent) window.
        assert!(!window_contains(&s, at("2026-11-27T03:00:00Z")).unwrap());
    }

    #[test]
    fn end_of_day_and_full_day_windows() {
        let s = sched(&[Weekday::Sunday], "12:00", "24:00", "UTC", 0);
        assert!(window_contains(&s, at("2026-11-22T23:59:59Z")).unwrap());
        assert!(!window_contains(&s, at("2026-11-23T00:00:00Z")).unwrap());
        // end == start: 24 hours from the start.
        let s = sched(&[Weekday::Sunday], "09:00", "09:00", "UTC", 0);
        assert!(window_contains(&s, at("2026-11-23T08:59:00Z")).unwrap());
        assert!(!window_contains(&s, at("2026-11-23T09:00:00Z")).unwrap());
    }

    #[test]
    fn dst_gap_start_moves_to_first_valid_minute() {
        // 2026-03-29: Berlin springs forward 02:00 → 03:00 local (01:00 UTC). A 02:30 start means 03:00 CEST.
        let s = sched(&[Weekday::Sunday], "02:30", "05:00", "Europe/Berlin", 0);
        assert!(!window_contains(&s, at("2026-03-29T00:59:00Z")).unwrap());
        assert!(window_contains(&s, at("2026-03-29T01:00:00Z")).unwrap());
        assert!(window_contains(&s, at("2026-03-29T02:59:00Z")).unwrap());
        assert!(!window_contains(&s, at("2026-03-29T03:00:00Z")).unwrap());
    }

    #[test]
    fn dst_fold_end_takes_the_later_instant() {
        // 2026-10-25: Berlin falls back 03:00 CEST → 02:00 CET; 02:30 happens twice (00:30 and 01:30 UTC).
        let s = sched(&[Weekday::Sunday], "01:00", "02:30", "Europe/Berlin", 0);
        assert!(window_contains(&s, at("2026-10-25T01:15:00Z")).unwrap());
        assert!(!window_contains(&s, at("2026-10-25T01:30:00Z")).unwrap());
    }

    #[test]
    fn invalid_schedule_fails_open_without_floor() {
        let s = sched(&[Weekday::Monday], "8am", "18:00", "UTC", 5);
        let e = evaluate(&[s], at("2026-11-22T03:00:00Z"));
        assert!(e.active);
        assert_eq!(e.floor, 0);
        assert!(e.notes[0].contains("invalid"), "{:?}", e.notes);
        let s = sched(&[Weekday::Monday], "08:00", "18:00", "Mars/Olympus", 5);
        assert!(window_contains(&s, at("2026-11-22T03:00:00Z")).unwrap_err().contains("timezone"));
    }

    #[test]
    fn any_window_activates_and_floor_is_the_max() {
        let a = sched(&[Weekday::Sunday], "00:00", "24:00", "UTC", 2);
        let b = sched(&[Weekday::Sunday], "10:00", "11:00", "UTC", 5);
        let c = sched(&[Weekday::Monday], "00:00", "24:00", "UTC", 9);
        let e = evaluate(&[a, b, c], at("2026-11-22T10:30:00Z"));
        assert!(e.active);
        assert_eq!(e.floor, 5);
    }

    #[test]
    fn time_zones_come_from_the_bundled_database_spelled_exactly() {
        for name in ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "US/Eastern", "Etc/GMT+5"] {
            assert!(time_zone(name).is_some(), "{name}");
        }
        for name in ["america/new_york", "Mars/Olympus", "", "Europe/Berlin "] {
            assert!(time_zone(name).is_none(), "{name:?}");
        }
        let names = time_zone_names();
        assert!(names.len() > 400, "{}", names.len());
        assert!(names.iter().all(|n| time_zone(n).is_some()), "every listed name resolves");
    }

    #[test]
    fn southern_hemisphere_and_half_hour_offsets() {
        // Sydney is UTC+11 in (southern) summer; Kolkata is UTC+5:30 all year.
        let s = sched(&[Weekday::Monday], "09:00", "17:00", "Australia/Sydney", 0);
        assert!(window_contains(&s, at("2026-11-22T22:00:00Z")).unwrap()); // Mon 09:00 AEDT
        assert!(!window_contains(&s, at("2026-11-22T21:59:00Z")).unwrap());
        let s = sched(&[Weekday::Monday], "09:00", "17:00", "Asia/Kolkata", 0);
        assert!(window_contains(&s, at("2026-11-23T03:30:00Z")).unwrap());
        assert!(!window_contains(&s, at("2026-11-23T03:29:00Z")).unwrap());
        assert!(!window_contains(&s, at("2026-11-23T11:30:00Z")).unwrap());
    }
}
