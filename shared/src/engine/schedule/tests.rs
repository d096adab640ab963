//! Schedule activity against Kasm's rule (`Schedule.is_active` in Kasm 1.15's `data/model.py`): a
//! table of edge cases, and a property comparing `is_active` with a plain re-statement of the rule.

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use proptest::prelude::*;

use super::*;
use crate::config::Weekday;

fn sched(days: &[u32], start: &str, end: &str, tz: &str, min: u32) -> Schedule {
    Schedule {
        autoscale_config: "c".into(),
        days_of_the_week: days.iter().map(|d| Weekday::from_iso(*d).expect("ISO day 1..=7")).collect(),
        active_start_time: start.into(),
        active_end_time: end.into(),
        timezone: tz.into(),
        minimum_instances: min,
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One schedule and the instants it is checked at: (instant, expected activity, why).
struct Case {
    what: &'static str,
    /// ISO weekdays, 1 = Monday .. 7 = Sunday.
    days: &'static [u32],
    start: &'static str,
    end: &'static str,
    tz: &'static str,
    at: &'static [(&'static str, bool, &'static str)],
}

// Calendar: 2026-11-22 is a Sunday, 11-23 Monday, 11-24 Tuesday, 11-27 Friday, 11-28 Saturday.
// DST 2026: Berlin springs forward Sun 03-29 at 01:00Z (02:00 CET → 03:00 CEST) and falls back
// Sun 10-25 at 01:00Z (03:00 CEST → 02:00 CET); New York springs forward Sun 03-08 at 07:00Z
// (02:00 EST → 03:00 EDT) and falls back Sun 11-01 at 06:00Z (02:00 EDT → 01:00 EST).
const CASES: &[Case] = &[
    Case {
        what: "office hours on a listed day",
        days: &[1],
        start: "08:00",
        end: "18:00",
        tz: "UTC",
        at: &[
            ("2026-11-23T10:00:00Z", true, "inside"),
            ("2026-11-23T07:59:59Z", false, "the minute before the start"),
            ("2026-11-23T08:00:00Z", true, "the start minute is inclusive"),
            ("2026-11-23T18:00:00Z", true, "the end minute is inclusive"),
            ("2026-11-23T18:00:59Z", true, "now's seconds are dropped: still 18:00"),
            ("2026-11-23T18:01:00Z", false, "the minute after the end"),
            ("2026-11-24T10:00:00Z", false, "Tuesday is not listed"),
            ("2026-11-24T03:00:00Z", false, "yesterday is listed but its window does not cross midnight"),
            ("2026-11-22T10:00:00Z", false, "Sunday is not listed"),
        ],
    },
    Case {
        what: "seconds in the schedule's times are ignored",
        days: &[1],
        start: "08:00:59",
        end: "18:00:01",
        tz: "UTC",
        at: &[
            ("2026-11-23T07:59:59Z", false, "07:59"),
            ("2026-11-23T08:00:00Z", true, "08:00 ≥ 08:00 (the :59 is dropped)"),
            ("2026-11-23T18:00:30Z", true, "18:00 ≤ 18:00 (the :01 is dropped)"),
            ("2026-11-23T18:01:00Z", false, "18:01"),
        ],
    },
    Case {
        what: "start = end means from the start until midnight",
        days: &[7],
        start: "09:00",
        end: "09:00",
        tz: "UTC",
        at: &[
            ("2026-11-22T08:59:00Z", false, "before the start"),
            ("2026-11-22T09:00:00Z", true, "from the start"),
            ("2026-11-22T23:59:59Z", true, "until midnight"),
            ("2026-11-23T00:00:00Z", false, "not past midnight (start = end is not a crossing)"),
            ("2026-11-23T08:59:00Z", false, "not 24 hours"),
        ],
    },
    Case {
        what: "00:00 to 00:00 is the whole listed day",
        days: &[7],
        start: "00:00",
        end: "00:00",
        tz: "UTC",
        at: &[
            ("2026-11-22T00:00:00Z", true, "midnight"),
            ("2026-11-22T23:59:59Z", true, "last minute"),
            ("2026-11-21T23:59:00Z", false, "Saturday"),
            ("2026-11-23T00:00:00Z", false, "Monday"),
        ],
    },
    Case {
        what: "crossing midnight into a day that is not listed",
        days: &[5],
        start: "22:00",
        end: "06:00",
        tz: "UTC",
        at: &[
            ("2026-11-27T21:59:00Z", false, "Friday before the start"),
            ("2026-11-27T22:00:00Z", true, "Friday from the start"),
            ("2026-11-27T23:59:59Z", true, "Friday until midnight"),
            ("2026-11-28T00:00:00Z", true, "continues into Saturday"),
            ("2026-11-28T06:00:59Z", true, "up to Saturday's end minute, inclusive"),
            ("2026-11-28T06:01:00Z", false, "after the end"),
            ("2026-11-28T22:00:00Z", false, "Saturday night is not a Friday window"),
            ("2026-11-27T03:00:00Z", false, "Friday morning: Friday is listed, so only ≥ 22:00 counts"),
        ],
    },
    Case {
        what: "crossing midnight into a day that is itself listed",
        days: &[5, 6],
        start: "22:00",
        end: "06:00",
        tz: "UTC",
        at: &[
            ("2026-11-28T03:00:00Z", false, "Saturday is listed: Friday's window does not continue into it"),
            ("2026-11-28T22:00:00Z", true, "Saturday's own window"),
            ("2026-11-29T03:00:00Z", true, "Sunday is not listed: Saturday's window continues"),
            ("2026-11-29T06:01:00Z", false, "after Sunday's end"),
        ],
    },
    Case {
        what: "Monday listed, crossing midnight",
        days: &[1],
        start: "22:00",
        end: "06:00",
        tz: "UTC",
        at: &[
            ("2026-11-23T03:00:00Z", false, "Monday morning: Monday is listed, so only ≥ 22:00 counts"),
            ("2026-11-23T22:00:00Z", true, "Monday night"),
            ("2026-11-24T06:00:00Z", true, "Tuesday morning"),
        ],
    },
    Case {
        what: "Sunday → Monday: Kasm's 'yesterday' of Monday is day 0",
        days: &[7],
        start: "22:00",
        end: "06:00",
        tz: "UTC",
        at: &[
            ("2026-11-22T23:00:00Z", true, "Sunday night"),
            ("2026-11-23T00:00:00Z", false, "does not continue into Monday (Kasm computes 1 − 1 = 0)"),
            ("2026-11-23T05:00:00Z", false, "nor Monday morning"),
        ],
    },
    Case {
        what: "Saturday → Sunday continues (7 − 1 = 6)",
        days: &[6],
        start: "22:00",
        end: "06:00",
        tz: "UTC",
        at: &[("2026-11-22T05:00:00Z", true, "Sunday morning"), ("2026-11-22T06:01:00Z", false, "after the end")],
    },
    Case {
        what: "ending at 00:00 crosses midnight by one minute",
        days: &[5],
        start: "22:00",
        end: "00:00",
        tz: "UTC",
        at: &[
            ("2026-11-27T23:59:00Z", true, "Friday"),
            ("2026-11-28T00:00:00Z", true, "Saturday 00:00 ≤ 00:00"),
            ("2026-11-28T00:01:00Z", false, "Saturday 00:01"),
        ],
    },
    Case {
        what: "24:00 (ours) is the last minute, 23:59",
        days: &[7],
        start: "12:00",
        end: "24:00",
        tz: "UTC",
        at: &[
            ("2026-11-22T11:59:00Z", false, "before"),
            ("2026-11-22T12:00:00Z", true, "start"),
            ("2026-11-22T23:59:59Z", true, "last minute"),
            ("2026-11-23T00:00:00Z", false, "not into Monday"),
        ],
    },
    Case {
        what: "every day, all day",
        days: &[1, 2, 3, 4, 5, 6, 7],
        start: "00:00",
        end: "24:00:00",
        tz: "UTC",
        at: &[
            ("2026-11-23T00:00:00Z", true, "Monday midnight"),
            ("2026-11-25T12:34:56Z", true, "Wednesday"),
            ("2026-11-22T23:59:59Z", true, "Sunday's last second"),
        ],
    },
    Case {
        what: "office hours in Berlin (UTC+1 in November)",
        days: &[1],
        start: "08:00",
        end: "18:00",
        tz: "Europe/Berlin",
        at: &[
            ("2026-11-23T06:59:00Z", false, "07:59 local"),
            ("2026-11-23T07:00:00Z", true, "08:00 local"),
            ("2026-11-23T17:00:00Z", true, "18:00 local, inclusive"),
            ("2026-11-23T17:01:00Z", false, "18:01 local"),
        ],
    },
    Case {
        what: "the weekday is the local one",
        days: &[1],
        start: "00:00",
        end: "01:00",
        tz: "Asia/Tokyo",
        at: &[
            ("2026-11-22T15:30:00Z", true, "Sunday in UTC, Monday 00:30 in Tokyo"),
            ("2026-11-23T15:30:00Z", false, "Tuesday 00:30 in Tokyo"),
        ],
    },
    Case {
        what: "a half-hour offset (Kolkata, UTC+5:30)",
        days: &[1],
        start: "09:00",
        end: "17:00",
        tz: "Asia/Kolkata",
        at: &[
            ("2026-11-23T03:29:00Z", false, "08:59 local"),
            ("2026-11-23T03:30:00Z", true, "09:00 local"),
            ("2026-11-23T11:30:00Z", true, "17:00 local, inclusive"),
            ("2026-11-23T11:31:00Z", false, "17:01 local"),
        ],
    },
    Case {
        what: "crossing midnight west of UTC (New York, UTC−5 in November)",
        days: &[5],
        start: "22:00",
        end: "06:00",
        tz: "America/New_York",
        at: &[
            ("2026-11-28T03:00:00Z", true, "Friday 22:00 local"),
            ("2026-11-28T11:00:00Z", true, "Saturday 06:00 local"),
            ("2026-11-28T11:01:00Z", false, "Saturday 06:01 local"),
        ],
    },
    Case {
        what: "Berlin spring forward: a start in the skipped hour opens at 03:00",
        days: &[7],
        start: "02:30",
        end: "05:00",
        tz: "Europe/Berlin",
        at: &[
            ("2026-03-29T00:59:00Z", false, "01:59 CET"),
            ("2026-03-29T01:00:00Z", true, "03:00 CEST ≥ 02:30 (02:30 never shows on the clock)"),
            ("2026-03-29T03:00:00Z", true, "05:00 CEST, inclusive"),
            ("2026-03-29T03:01:00Z", false, "05:01 CEST"),
        ],
    },
    Case {
        what: "Berlin spring forward: an end in the skipped hour closes at 03:00",
        days: &[7],
        start: "01:00",
        end: "02:30",
        tz: "Europe/Berlin",
        at: &[
            ("2026-03-29T00:00:00Z", true, "01:00 CET"),
            ("2026-03-29T00:59:00Z", true, "01:59 CET"),
            ("2026-03-29T01:00:00Z", false, "03:00 CEST > 02:30"),
        ],
    },
    Case {
        what: "Berlin spring forward: a window inside the skipped hour never opens that day",
        days: &[7],
        start: "02:15",
        end: "02:45",
        tz: "Europe/Berlin",
        at: &[
            ("2026-03-29T00:59:00Z", false, "01:59 CET"),
            ("2026-03-29T01:00:00Z", false, "03:00 CEST"),
            ("2026-03-29T01:30:00Z", false, "03:30 CEST"),
            ("2026-04-05T00:15:00Z", true, "the next Sunday, 02:15 CEST"),
        ],
    },
    Case {
        what: "Berlin spring forward: an overnight window is an hour shorter",
        days: &[6],
        start: "22:00",
        end: "06:00",
        tz: "Europe/Berlin",
        at: &[
            ("2026-03-28T21:00:00Z", true, "Saturday 22:00 CET"),
            ("2026-03-29T04:00:00Z", true, "Sunday 06:00 CEST"),
            ("2026-03-29T04:01:00Z", false, "Sunday 06:01 CEST"),
        ],
    },
    Case {
        what: "Berlin fall back: a start in the repeated hour opens, closes and reopens",
        days: &[7],
        start: "02:30",
        end: "05:00",
        tz: "Europe/Berlin",
        at: &[
            ("2026-10-25T00:29:00Z", false, "02:29 CEST"),
            ("2026-10-25T00:30:00Z", true, "02:30 CEST, the first time"),
            ("2026-10-25T00:59:00Z", true, "02:59 CEST"),
            ("2026-10-25T01:00:00Z", false, "02:00 CET: the clock fell back before the start"),
            ("2026-10-25T01:29:00Z", false, "02:29 CET"),
            ("2026-10-25T01:30:00Z", true, "02:30 CET, the second time"),
            ("2026-10-25T04:00:00Z", true, "05:00 CET, inclusive"),
            ("2026-10-25T04:01:00Z", false, "05:01 CET"),
        ],
    },
    Case {
        what: "Berlin fall back: an end in the repeated hour closes and reopens",
        days: &[7],
        start: "01:00",
        end: "02:30",
        tz: "Europe/Berlin",
        at: &[
            ("2026-10-24T23:00:00Z", true, "01:00 CEST"),
            ("2026-10-25T00:30:00Z", true, "02:30 CEST"),
            ("2026-10-25T00:31:00Z", false, "02:31 CEST"),
            ("2026-10-25T01:00:00Z", true, "02:00 CET: the repeated hour is inside the window again"),
            ("2026-10-25T01:30:00Z", true, "02:30 CET"),
            ("2026-10-25T01:31:00Z", false, "02:31 CET"),
        ],
    },
    Case {
        what: "New York spring forward: a start in the skipped hour opens at 03:00",
        days: &[7],
        start: "02:30",
        end: "04:00",
        tz: "America/New_York",
        at: &[
            ("2026-03-08T06:59:00Z", false, "01:59 EST"),
            ("2026-03-08T07:00:00Z", true, "03:00 EDT"),
            ("2026-03-08T08:00:00Z", true, "04:00 EDT, inclusive"),
            ("2026-03-08T08:01:00Z", false, "04:01 EDT"),
        ],
    },
    Case {
        what: "New York fall back: a window inside the repeated hour is active twice",
        days: &[7],
        start: "01:30",
        end: "01:45",
        tz: "America/New_York",
        at: &[
            ("2026-11-01T05:29:00Z", false, "01:29 EDT"),
            ("2026-11-01T05:30:00Z", true, "01:30 EDT"),
            ("2026-11-01T05:45:00Z", true, "01:45 EDT"),
            ("2026-11-01T05:46:00Z", false, "01:46 EDT"),
            ("2026-11-01T06:29:00Z", false, "01:29 EST"),
            ("2026-11-01T06:30:00Z", true, "01:30 EST"),
            ("2026-11-01T06:45:00Z", true, "01:45 EST"),
            ("2026-11-01T06:46:00Z", false, "01:46 EST"),
        ],
    },
];

#[test]
fn activity_matches_kasm_on_the_edge_cases() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for c in CASES {
        let s = sched(c.days, c.start, c.end, c.tz, 0);
        for (instant, expected, why) in c.at {
            checked += 1;
            let got = is_active(&s, at(instant)).unwrap();
            if got != *expected {
                wrong.push(format!("{} [{}-{} {}] at {instant} ({why}): got {got}", c.what, c.start, c.end, c.tz));
            }
            // The table must agree with the plain re-statement below, or one of them is wrong.
            assert_eq!(kasm_rule(&s, at(instant)), *expected, "re-statement disagrees: {} at {instant}", c.what);
        }
    }
    assert!(wrong.is_empty(), "{} of {checked} wrong:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn no_schedules_is_always_active() {
    let e = evaluate(&[], at("2026-11-22T03:00:00Z"));
    assert!(e.active);
    assert_eq!(e.floor, 0);
}

#[test]
fn any_active_schedule_activates_and_the_floor_is_the_max() {
    let all_sunday = sched(&[7], "00:00", "24:00", "UTC", 2);
    let late_morning = sched(&[7], "10:00", "11:00", "UTC", 5);
    let monday = sched(&[1], "00:00", "24:00", "UTC", 9);
    let saturday_night = sched(&[6], "22:00", "06:00", "UTC", 7);
    let all = [all_sunday, late_morning, monday, saturday_night];
    let floor_at = |t: &str| {
        let e = evaluate(&all, at(t));
        assert!(e.active, "{t}");
        e.floor
    };
    assert_eq!(floor_at("2026-11-22T10:30:00Z"), 5);
    assert_eq!(floor_at("2026-11-22T11:00:59Z"), 5, "the end minute is inclusive for the floor too");
    assert_eq!(floor_at("2026-11-22T11:01:00Z"), 2);
    assert_eq!(floor_at("2026-11-22T05:00:00Z"), 7, "Saturday's window continues into unlisted Sunday");
    assert_eq!(floor_at("2026-11-23T05:00:00Z"), 9);
    let e = evaluate(&all, at("2026-11-24T05:00:00Z"));
    assert!(!e.active);
    assert_eq!(e.floor, 0);
    assert_eq!(e.notes, vec!["no schedule is active at Tue 05:00 (UTC)".to_string()]);
    let e = evaluate(&all[1..2], at("2026-11-22T10:30:00Z"));
    assert_eq!(e.notes, vec!["schedule 1 (Sun 10:00–11:00 UTC) is active".to_string()]);
}

#[test]
fn invalid_schedule_fails_open_without_floor() {
    let s = sched(&[1], "8am", "18:00", "UTC", 5);
    let e = evaluate(&[s], at("2026-11-22T03:00:00Z"));
    assert!(e.active);
    assert_eq!(e.floor, 0);
    assert!(e.notes[0].contains("invalid") && e.notes[0].contains("active_start_time"), "{:?}", e.notes);
    let s = sched(&[1], "08:00", "18:00", "Mars/Olympus", 5);
    assert!(is_active(&s, at("2026-11-22T03:00:00Z")).unwrap_err().contains("timezone"));
    let s = sched(&[1], "08:00", "24:01", "UTC", 5);
    assert!(is_active(&s, at("2026-11-22T03:00:00Z")).unwrap_err().contains("active_end_time"));
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

// ---------- the property: `is_active` equals a plain re-statement of Kasm's rule ----------

/// Kasm's rule, re-stated as plainly as possible and computed another way than `is_active`: the
/// local wall time is UTC plus the zone's offset at that instant (chrono arithmetic), times are
/// parsed with chrono, days are compared as ISO numbers.
fn kasm_rule(s: &Schedule, now: DateTime<Utc>) -> bool {
    let tz = time_zone(&s.timezone).unwrap();
    let offset = tz.to_offset(jiff::Timestamp::from_second(now.timestamp()).unwrap()).seconds();
    let local = now.naive_utc() + Duration::seconds(i64::from(offset));
    let local = local.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let today = chrono::Datelike::weekday(&local).number_from_monday();
    let current = local.time();
    let time = |t: &str| -> NaiveTime {
        if t.starts_with("24:00") {
            return NaiveTime::from_hms_opt(23, 59, 0).unwrap();
        }
        let parsed = NaiveTime::parse_from_str(t, "%H:%M:%S").or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"));
        parsed.unwrap().with_second(0).unwrap()
    };
    let (start, end) = (time(&s.active_start_time), time(&s.active_end_time));
    let days: Vec<u32> = s.days_of_the_week.iter().map(|d| *d as u32 + 1).collect();
    if days.contains(&today) {
        if start < end {
            return start <= current && current <= end;
        }
        return current >= start;
    }
    if days.contains(&(today - 1)) && start > end {
        return current <= end;
    }
    false
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe", // a 30-minute DST shift
    "Asia/Kolkata",
    "America/St_Johns", // UTC−3:30 / −2:30
    "Pacific/Chatham",  // UTC+12:45 / +13:45
    "Pacific/Apia",     // skipped Friday 2011-12-30 entirely
];

fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..24, 0u32..60).prop_map(|(h, m)| format!("{h:02}:{m:02}")),
        (0u32..24, 0u32..60, 0u32..60).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}")),
        // Few distinct values, so start = end and shared minutes come up often.
        prop::sample::select(vec!["00:00", "06:00", "06:00:30", "22:00", "23:59"]).prop_map(String::from),
    ]
}

fn arbitrary_schedule() -> impl Strategy<Value = Schedule> {
    (
        prop::sample::subsequence(vec![1u32, 2, 3, 4, 5, 6, 7], 0..=7),
        time_text(),
        prop_oneof![4 => time_text(), 1 => Just("24:00".to_string()), 1 => Just("24:00:00".to_string())],
        prop::sample::select(ZONES),
        0u32..=5,
    )
        .prop_map(|(days, start, end, tz, min)| sched(&days, &start, &end, tz, min))
}

/// Instants anywhere from 1970 to 2100, and instants within a day of one of the zone's transitions
/// (DST changes, offset changes) between 1990 and 2040.
fn instant_for(tz: &'static str) -> impl Strategy<Value = DateTime<Utc>> {
    let anywhere = (0i64..4_102_444_800).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap());
    let zone = time_zone(tz).unwrap();
    let from = jiff::Timestamp::from_second(631_152_000).unwrap(); // 1990-01-01
    let until = jiff::Timestamp::from_second(2_208_988_800).unwrap(); // 2040-01-01
    let transitions: Vec<i64> =
        zone.following(from).map(|t| t.timestamp().as_second()).take_while(|s| *s < until.as_second()).collect();
    if transitions.is_empty() {
        return anywhere.boxed();
    }
    let near = (prop::sample::select(transitions), -86_400i64..=86_400)
        .prop_map(|(t, d)| DateTime::from_timestamp(t + d, 0).unwrap());
    prop_oneof![1 => anywhere, 3 => near].boxed()
}

fn schedules_and_instant() -> impl Strategy<Value = (Vec<Schedule>, DateTime<Utc>)> {
    prop::collection::vec(arbitrary_schedule(), 1..=3).prop_flat_map(|v| {
        let tz = ZONES.iter().copied().find(|z| *z == v[0].timezone).unwrap();
        (Just(v), instant_for(tz))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn is_active_equals_kasm_rule((schedules, now) in schedules_and_instant()) {
        let mut any = false;
        let mut floor = 0;
        for s in &schedules {
            let expected = kasm_rule(s, now);
            prop_assert_eq!(is_active(s, now).unwrap(), expected, "{:?} at {}", s, now);
            if expected {
                any = true;
                floor = floor.max(s.minimum_instances);
            }
        }
        let e = evaluate(&schedules, now);
        prop_assert_eq!(e.active, any);
        prop_assert_eq!(e.floor, floor, "the floor is the largest minimum_instances among active schedules");
    }
}
