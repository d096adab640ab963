//! Predictive pre-warming: a bounded time-of-week demand history per autoscale config, the lead time
//! measured from our own claims, and the forecast `decide` reads. Pure: the clock is passed in. The
//! rule is written once in the engine's module docs ("Forecast"); the constants below are ours.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::{Action, Input, Plan, Timers};
use crate::config::{AutoscaleConfig, AutoscaleType, PredictiveScaling};
use crate::model::{Instance, Resources};

/// Length of one time-of-week bucket (15 minutes).
pub const BUCKET_SECONDS: i64 = 900;
/// Buckets in a week (7 days of 15-minute buckets).
pub const BUCKETS: usize = 672;
/// Seconds in a week.
pub const WEEK_SECONDS: i64 = 604_800;
/// 1970-01-05T00:00Z, the first Monday of the Unix epoch: weeks start on Monday 00:00 UTC.
const FIRST_MONDAY: i64 = 345_600;
/// Weight of the newest week when it is folded into a bucket (exponentially weighted: a week three
/// weeks back weighs 0.5³ of the newest).
pub const ALPHA: f64 = 0.5;
/// Weeks a bucket needs before it forecasts anything (thin history forecasts nothing): one, so a
/// config forecasts after one week of warm-up (the target); its spread is judged from the
/// second week on ([`MAX_SPREAD`]), and a day that does not follow it pauses it ([`TRACKING_MIN`]).
pub const MIN_WEEKS: u16 = 1;
/// Weeks counted at most (the count only gates confidence; it never grows without bound).
pub const MAX_WEEKS: u16 = 52;
/// A bucket whose weighted standard deviation exceeds this share of its weighted mean (in any
/// dimension it has demand in) is erratic and forecasts nothing.
pub const MAX_SPREAD: f64 = 0.5;
/// When the quarter hour that just ended had a confident forecast of at least one VM's worth and
/// demand now is below this share of it, today does not follow the history (a holiday): the
/// forecast pauses.
pub const TRACKING_MIN: f64 = 0.25;
/// How far back demand seen during or at the end of a shortage is attributed (an hour: longer than a
/// boot and the waits it causes, short enough not to smear a rush over the morning).
pub const BACKFILL_SECONDS: i64 = 3600;
/// Boot times kept per history (the newest).
pub const LEAD_SAMPLES: usize = 32;
/// Boot times needed before their p90 replaces `provision_timeout / 2`.
pub const MIN_LEAD_SAMPLES: usize = 3;

/// One 15-minute bucket of the week: this week's peak demand so far, and the exponentially weighted
/// mean and variance of the weekly peaks before it. Dimensions: cores, memory (MB), GPUs in use for
/// Docker Agents; sessions (index 0) for server pools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The week (since the Unix epoch's first Monday) `peak` belongs to; `None` = never observed.
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub week: Option<i32>,
    /// The largest demand observed in this bucket during `week`.
    #[serde(rename = "p", default, skip_serializing_if = "is_zero3")]
    pub peak: [f32; 3],
    /// Weeks folded into `mean`/`var` (at most [`MAX_WEEKS`]).
    #[serde(rename = "n", default, skip_serializing_if = "is_zero")]
    pub weeks: u16,
    /// Weighted mean of the folded weekly peaks.
    #[serde(rename = "m", default, skip_serializing_if = "is_zero3")]
    pub mean: [f32; 3],
    /// Weighted variance of the folded weekly peaks.
    #[serde(rename = "v", default, skip_serializing_if = "is_zero3")]
    pub var: [f32; 3],
    /// `peak` was raised by demand attributed back from a shortage
    /// ([`DemandHistory::observe_capped`]): an estimate, not a measurement.
    #[serde(rename = "pe", default, skip_serializing_if = "is_false")]
    pub peak_estimated: bool,
    /// The newest week folded into `mean` was such an estimate.
    #[serde(rename = "e", default, skip_serializing_if = "is_false")]
    pub estimated: bool,
    /// Every observation of this week's peak was made while today did not follow the history (the
    /// tracking pause: a holiday). Such a week is left out when it closes, unless the week before
    /// was left out too ([`Bucket::skipped`]).
    #[serde(rename = "pu", default, skip_serializing_if = "is_false")]
    pub peak_untracked: bool,
    /// The newest closed week was left out (untracked); the next one is folded whatever it is, so a
    /// lasting fall in demand is learned a week later, not never.
    #[serde(rename = "s", default, skip_serializing_if = "is_false")]
    pub skipped: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

fn is_zero3(v: &[f32; 3]) -> bool {
    v.iter().all(|x| *x == 0.0)
}

impl Bucket {
    /// Folds one week's peak (an estimate or not) into the weighted statistics.
    fn fold(&mut self, x: [f32; 3], estimated: bool) {
        if self.weeks == 0 {
            self.mean = x;
            self.var = [0.0; 3];
        } else {
            for k in 0..3 {
                let (m, v, x) = (self.mean[k] as f64, self.var[k] as f64, x[k] as f64);
                let d = x - m;
                let inc = ALPHA * d;
                self.mean[k] = (m + inc) as f32;
                self.var[k] = ((1.0 - ALPHA) * (v + d * inc)).max(0.0) as f32;
            }
        }
        self.weeks = self.weeks.saturating_add(1).min(MAX_WEEKS);
        self.estimated = estimated;
    }

    /// Closes the week `peak` belongs to: folds its peak, or leaves it out when it was untracked and
    /// the week before was not left out.
    fn close_week(&mut self) {
        if self.peak_untracked && !self.skipped {
            self.skipped = true;
        } else {
            self.fold(self.peak, self.peak_estimated);
            self.skipped = false;
        }
        self.week = None;
        self.peak = [0.0; 3];
        self.peak_estimated = false;
        self.peak_untracked = false;
    }

    /// The statistics as seen from `week`: a peak of an earlier week counts as closed.
    fn as_of(&self, week: i32) -> Bucket {
        let mut b = self.clone();
        if self.week.is_some_and(|w| w < week) {
            b.close_week();
        }
        b
    }
}

/// What a config's demand history holds: one item per autoscale config, kept with its control record
/// ([`super::ControlState::history`]). Bounded: [`BUCKETS`] buckets and [`LEAD_SAMPLES`] boot times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DemandHistory {
    /// [`identity`] of the config the history was recorded for; another identity starts empty.
    pub identity: u64,
    /// The week's buckets, Monday 00:00 UTC first ([`BUCKETS`] of them once anything was observed).
    #[serde(default)]
    pub buckets: Vec<Bucket>,
    /// Our claims' create → checked-in times in seconds, oldest first (at most [`LEAD_SAMPLES`]).
    #[serde(default)]
    pub boot_seconds: Vec<u32>,
    /// When the current shortage began (Unix seconds): free capacity below what the config keeps
    /// free since then. `None` when there is none.
    #[serde(rename = "short_since", default, skip_serializing_if = "Option::is_none")]
    pub short_since: Option<i64>,
}

/// The identity of what a config's demand means: its type, zone, pool and VM-provider config (FNV-1a
/// over them). A history of another identity is dropped: a new or changed config starts empty. Other
/// fields (standby, backoff, ...) change what is kept free, not the demand, and keep the history.
pub fn identity(config: &AutoscaleConfig) -> u64 {
    let kind = match config.autoscale_type {
        AutoscaleType::DockerAgent => "docker_agent",
        AutoscaleType::Server => "server",
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [kind, &config.zone_id, &config.server_pool_id, &config.vm_provider_config] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The week (since 1970-01-05, a Monday) and the bucket of the week `t` falls in, in UTC. (Every
/// instant chrono represents is within ±2³¹ weeks of 1970.)
pub fn slot(t: DateTime<Utc>) -> (i32, usize) {
    let s = t.timestamp().saturating_sub(FIRST_MONDAY);
    let week = s.div_euclid(WEEK_SECONDS).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
    (week, (s.rem_euclid(WEEK_SECONDS) / BUCKET_SECONDS) as usize)
}

/// A bucket's start as the decision log names it: `Mon 08:45`.
pub fn bucket_label(t: DateTime<Utc>) -> String {
    let minute = t.minute() / 15 * 15;
    format!("{} {:02}:{minute:02}", t.weekday(), t.hour())
}

/// What a bucket forecasts, when its history is deep and steady enough.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketForecast {
    /// Weighted mean of the weekly peaks, per dimension.
    pub mean: [f64; 3],
    /// Weighted standard deviation, per dimension.
    pub spread: [f64; 3],
    /// Weeks of history behind it.
    pub weeks: u16,
    /// The newest week's peak was an estimate ([`Bucket::peak_estimated`]).
    pub estimated: bool,
}

/// Why a bucket forecasts nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoForecast {
    /// Fewer than [`MIN_WEEKS`] weeks observed.
    Thin(u16),
    /// The weekly peaks vary too much ([`MAX_SPREAD`]).
    Erratic,
}

impl DemandHistory {
    /// An empty history for a config of `identity`.
    pub fn new(identity: u64) -> Self {
        DemandHistory { identity, buckets: Vec::new(), boot_seconds: Vec::new(), short_since: None }
    }

    /// Whether nothing was observed yet.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.week.is_none() && b.weeks == 0)
    }

    /// Records demand observed at `t`: the bucket's peak for this week grows to it; the first
    /// observation of a new week folds the previous week's peak into the weighted statistics. An
    /// observation older than the bucket's week (a clock that went back) is ignored.
    pub fn observe(&mut self, t: DateTime<Utc>, demand: [f64; 3]) {
        self.observe_as(t, demand, false, false);
    }

    /// [`DemandHistory::observe`], marking the peak an estimate when `estimated` raises it, and the
    /// week untracked while every observation of it is `untracked`.
    fn observe_as(&mut self, t: DateTime<Utc>, demand: [f64; 3], estimated: bool, untracked: bool) {
        if self.buckets.len() != BUCKETS {
            self.buckets = vec![Bucket::default(); BUCKETS];
        }
        let (week, b) = slot(t);
        let d = demand.map(|x| if x.is_finite() { x.max(0.0) as f32 } else { 0.0 });
        let bucket = &mut self.buckets[b];
        match bucket.week {
            Some(w) if w == week => {
                for (p, x) in bucket.peak.iter_mut().zip(d) {
                    if x > *p {
                        *p = x;
                        bucket.peak_estimated |= estimated;
                    }
                }
                bucket.peak_untracked &= untracked;
            }
            Some(w) if w > week => {}
            Some(_) | None => {
                if bucket.week.is_some() {
                    bucket.close_week();
                }
                bucket.week = Some(week);
                bucket.peak = d;
                bucket.peak_estimated = estimated;
                bucket.peak_untracked = untracked;
            }
        }
    }

    /// Records demand observed at `t` as [`DemandHistory::observe`] does, knowing whether the config is
    /// short of capacity at `t` (free below what it keeps free). Demand in use is capped by capacity:
    /// while users wait for a VM (unseen, retrying), the demand in use is less than the demand. So the
    /// demand observed during a shortage and at its end (the users who waited are placed by then) is
    /// attributed back to every bucket since the shortage began, at most [`BACKFILL_SECONDS`] back.
    /// A peak raised by attributing back is marked an estimate ([`Bucket::peak_estimated`]).
    /// `untracked`: today does not follow the history now (the tracking pause; see
    /// [`Bucket::peak_untracked`]).
    pub fn observe_capped(&mut self, t: DateTime<Utc>, demand: [f64; 3], short: bool, untracked: bool) {
        self.observe_as(t, demand, false, untracked);
        if short && self.short_since.is_none_or(|s| s > t.timestamp()) {
            self.short_since = Some(t.timestamp());
        }
        let Some(since) = self.short_since else { return };
        let from = since.max(t.timestamp().saturating_sub(BACKFILL_SECONDS));
        let mut u = t.timestamp().saturating_sub(BUCKET_SECONDS);
        while u >= from - from.rem_euclid(BUCKET_SECONDS) {
            if let Some(at) = DateTime::from_timestamp(u, 0) {
                self.observe_as(at, demand, true, false);
            }
            u = u.saturating_sub(BUCKET_SECONDS);
        }
        if !short {
            self.short_since = None;
        }
    }

    /// The statistics of the bucket `t` falls in, from the weeks before `t`'s week, however erratic;
    /// thin below [`MIN_WEEKS`] weeks.
    fn statistics(&self, t: DateTime<Utc>) -> Result<BucketForecast, NoForecast> {
        let (week, b) = slot(t);
        let Some(bucket) = self.buckets.get(b).map(|x| x.as_of(week)) else { return Err(NoForecast::Thin(0)) };
        if bucket.weeks < MIN_WEEKS {
            return Err(NoForecast::Thin(bucket.weeks));
        }
        Ok(BucketForecast {
            mean: bucket.mean.map(|x| x as f64),
            spread: bucket.var.map(|v| (v as f64).max(0.0).sqrt()),
            weeks: bucket.weeks,
            estimated: bucket.estimated,
        })
    }

    /// The forecast for the bucket `t` falls in, from the weeks before `t`'s week.
    pub fn forecast(&self, t: DateTime<Utc>) -> Result<BucketForecast, NoForecast> {
        let f = self.statistics(t)?;
        if (0..3).any(|k| f.mean[k] > 1e-9 && f.spread[k] > MAX_SPREAD * f.mean[k]) {
            return Err(NoForecast::Erratic);
        }
        Ok(f)
    }

    /// What today is tracked against at `t` (the tracking pause): the bucket's statistics with at
    /// least [`MIN_WEEKS`] weeks, however erratic (a spread too wide to forecast from still says
    /// what a normal day holds).
    pub fn tracked(&self, t: DateTime<Utc>) -> Option<BucketForecast> {
        self.statistics(t).ok()
    }

    /// The history's level at `t`, measured weeks only: a straight line from the forecast mean of the
    /// bucket before `t`'s (reached by its end, `t`'s bucket start) to that of `t`'s bucket (by its
    /// end), since a bucket keeps its peak. `None` when either bucket forecasts nothing or its newest
    /// week was an estimate (a shortage's demand attributed back flattens a ramp, so it says nothing
    /// about today's level).
    pub fn level_at(&self, t: DateTime<Utc>) -> Option<[f64; 3]> {
        let cur = self.forecast(t).ok().filter(|f| !f.estimated)?;
        let before = t.checked_sub_signed(chrono::Duration::seconds(BUCKET_SECONDS))?;
        let prev = self.forecast(before).ok().filter(|f| !f.estimated)?;
        let into = t.timestamp().rem_euclid(BUCKET_SECONDS) as f64 / BUCKET_SECONDS as f64;
        Some(std::array::from_fn(|k| prev.mean[k] + (cur.mean[k] - prev.mean[k]) * into))
    }

    /// Adds one measured boot (create → checked in), keeping the newest [`LEAD_SAMPLES`].
    pub fn add_boot(&mut self, seconds: u32) {
        self.boot_seconds.push(seconds);
        if self.boot_seconds.len() > LEAD_SAMPLES {
            let extra = self.boot_seconds.len() - LEAD_SAMPLES;
            self.boot_seconds.drain(..extra);
        }
    }

    /// The lead time: the p90 of the measured boots once there are [`MIN_LEAD_SAMPLES`], else
    /// `provision_timeout / 2`; never above `provision_timeout` (a claim not checked in by then is
    /// destroyed).
    pub fn lead_time(&self, timers: &Timers) -> LeadTime {
        lead_time(&self.boot_seconds, timers)
    }
}

/// The lead time and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadTime {
    /// Seconds ahead the forecast looks.
    pub seconds: u64,
    /// Boots measured (0 = `provision_timeout / 2`).
    pub samples: u32,
}

/// See [`DemandHistory::lead_time`].
pub fn lead_time(samples: &[u32], timers: &Timers) -> LeadTime {
    let cap = timers.provision_timeout;
    if samples.len() < MIN_LEAD_SAMPLES {
        return LeadTime { seconds: cap / 2, samples: samples.len() as u32 };
    }
    let mut s: Vec<u32> = samples.to_vec();
    s.sort_unstable();
    // Nearest rank: the smallest sample with at least 90 % of the samples at or below it.
    let rank = (s.len() * 9).div_ceil(10).max(1);
    LeadTime { seconds: (s[rank - 1] as u64).min(cap), samples: s.len() as u32 }
}

/// The demand a config scales on, in use now: Docker Agents, the resources of the sessions on its
/// records that allocate or are queued there, plus the requests Kasm queued for it on no record;
/// server pools, those sessions and requests counted (index 0). Staged sessions (Kasm's standby
/// sessions) are not demand: staging keeps its own room.
pub fn in_use(input: &Input) -> [f64; 3] {
    let server_pool = input.config.autoscale_type == AutoscaleType::Server;
    let mut r = Resources::default();
    let mut n = 0u64;
    for k in input.sessions.iter().filter(|k| !k.is_standby && (k.allocates() || k.is_queued())) {
        r += k.resources;
        n += 1;
    }
    for k in input.queued.iter().filter(|k| !k.is_standby) {
        r += k.resources;
        n += 1;
    }
    if server_pool { [n as f64, 0.0, 0.0] } else { [r.cores, r.memory_mb, r.gpus] }
}

/// The history to keep after an evaluation at `now` (the scale-evaluator writes it with the control
/// record): `None` with `predictive_scaling: off` (no history is kept). Otherwise the stored history
/// when it is of this config's [`identity`], else an empty one, with the demand in use now observed
/// and, for every claim the plan activates, its create → checked-in time added.
pub fn record(input: &Input, plan: &Plan, now: DateTime<Utc>) -> Option<DemandHistory> {
    if !input.config.predictive_scaling.records() {
        return None;
    }
    let id = identity(&input.config);
    let mut h = match &input.control.history {
        Some(h) if h.identity == id => h.clone(),
        _ => DemandHistory::new(id),
    };
    let paused = plan.summary.forecast.as_ref().is_some_and(|f| f.paused);
    h.observe_capped(now, in_use(input), short(plan), paused);
    for a in &plan.actions {
        if let Action::Activate { claim, .. } = a
            && let Some(inst) = input.instances.iter().find(|i| &i.id == claim)
        {
            h.add_boot(boot_seconds(inst, now));
        }
    }
    Some(h)
}

/// Whether the config is short of capacity: Docker Agents, free capacity on the agents that are up
/// below standby in a dimension with a standby (VMs on their way up do not serve a user asking now);
/// server pools, fewer available sessions than the minimum.
fn short(plan: &Plan) -> bool {
    let s = &plan.summary;
    let below = |free: f64, want: f64| want > 1e-9 && free + 1e-9 < want;
    below(s.free_ready.cores, s.standby.cores)
        || below(s.free_ready.memory_mb, s.standby.memory_mb)
        || below(s.free_ready.gpus, s.standby.gpus)
        || s.available_sessions < s.minimum_sessions
}

/// Seconds from a claim's creation to `now` (when it is activated), saturating.
fn boot_seconds(inst: &Instance, now: DateTime<Utc>) -> u32 {
    now.signed_duration_since(inst.created_at).num_seconds().clamp(0, u32::MAX as i64) as u32
}

/// What the forecast saw and did, for the decision log, `plan` and `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForecastSummary {
    /// `on` or `forecast_only`.
    pub mode: String,
    /// Seconds ahead it looked.
    pub lead_seconds: u64,
    /// Boots measured behind the lead time (0 = `provision_timeout / 2`).
    pub lead_samples: u32,
    /// The bucket whose forecast counted (`Mon 08:45`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Weeks of history behind it.
    #[serde(default)]
    pub weeks: u16,
    /// Forecast demand in use (Docker Agents; zero otherwise).
    #[serde(default)]
    pub demand: Resources,
    /// Forecast sessions (server pools).
    #[serde(default)]
    pub demand_sessions: u32,
    /// Demand in use now (Docker Agents).
    #[serde(default)]
    pub in_use: Resources,
    /// Sessions in use now (server pools).
    #[serde(default)]
    pub in_use_sessions: u32,
    /// What the forecast adds to what must be free (Docker Agents); with `forecast_only`, what it would add.
    #[serde(default)]
    pub extra: Resources,
    /// What the forecast adds to the available sessions kept (server pools).
    #[serde(default)]
    pub extra_sessions: u32,
    /// Today's demand as a percentage of the history's level now, when below 100 and the forecast
    /// was scaled down by it (see [`DemandHistory::level_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub today_percent: Option<f64>,
    /// Today does not follow the history (the tracking pause): nothing is forecast, and this week's
    /// observations are left out of the history ([`Bucket::peak_untracked`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Whether the forecast changed what is kept free (`on` with a confident forecast above demand).
    #[serde(default)]
    pub applied: bool,
    /// Why nothing is forecast, when nothing is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The mode's name, for the summary.
pub(crate) fn mode_name(m: PredictiveScaling) -> String {
    m.as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // 2026-01-05 is a Monday.
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
            + chrono::Duration::days(d as i64 - 5)
            + chrono::Duration::hours(h as i64)
            + chrono::Duration::minutes(m as i64)
    }

    #[test]
    fn forecast_slots_start_on_monday_utc() {
        let (w, b) = slot(at(5, 0, 0));
        assert_eq!(b, 0);
        assert_eq!(slot(at(12, 0, 0)), (w + 1, 0));
        assert_eq!(slot(at(5, 8, 50)).1, 8 * 4 + 3);
        assert_eq!(bucket_label(at(5, 8, 50)), "Mon 08:45");
        assert_eq!(slot(at(11, 23, 59)).1, BUCKETS - 1);
    }

    #[test]
    fn demand_seen_when_a_shortage_ends_is_attributed_back_to_its_start_within_the_bound() {
        let mut h = DemandHistory::new(1);
        // Short from 08:20 (users wait, unseen: 10 cores in use); the VMs are up at 08:50 and the
        // users who waited are placed: 40 cores in use, no longer short.
        h.observe_capped(at(5, 8, 20), [10.0, 0.0, 0.0], true, false);
        h.observe_capped(at(5, 8, 35), [12.0, 0.0, 0.0], true, false);
        assert_eq!(h.short_since, Some(at(5, 8, 20).timestamp()));
        h.observe_capped(at(5, 8, 50), [40.0, 0.0, 0.0], false, false);
        assert_eq!(h.short_since, None, "the shortage ended");
        let next = |hh: u32, mm: u32| h.forecast(at(12, hh, mm)).map(|f| f.mean[0]);
        // Every bucket since the shortage began (08:15, 08:30, 08:45) forecasts what it ended at;
        // the bucket before it keeps what it saw (nothing).
        assert_eq!((next(8, 15), next(8, 30), next(8, 45)), (Ok(40.0), Ok(40.0), Ok(40.0)));
        assert_eq!(next(8, 0), Err(NoForecast::Thin(0)));

        // Without a shortage it is `observe`.
        let (mut a, mut b) = (DemandHistory::new(1), DemandHistory::new(1));
        for (m, x) in [(0, 4.0), (20, 9.0), (40, 30.0)] {
            a.observe_capped(at(5, 9, m), [x, 0.0, 0.0], false, false);
            b.observe(at(5, 9, m), [x, 0.0, 0.0]);
        }
        assert_eq!(a, b);

        // A long shortage is attributed back at most BACKFILL_SECONDS.
        let mut h = DemandHistory::new(1);
        h.observe_capped(at(5, 6, 0), [1.0, 0.0, 0.0], true, false);
        h.observe_capped(at(5, 9, 0), [50.0, 0.0, 0.0], false, false);
        let f = |hh: u32, mm: u32| h.forecast(at(12, hh, mm)).map(|f| f.mean[0]);
        assert_eq!((f(8, 0), f(8, 45)), (Ok(50.0), Ok(50.0)));
        assert_eq!(f(7, 45), Err(NoForecast::Thin(0)), "an hour back, no further");
        assert_eq!(f(6, 0), Ok(1.0));
    }

    #[test]
    fn forecast_level_now_is_a_line_between_measured_bucket_peaks() {
        let mut h = DemandHistory::new(1);
        // 20 by the end of 08:30-08:45, 50 by the end of 08:45-09:00, measured.
        h.observe(at(5, 8, 40), [20.0, 0.0, 0.0]);
        h.observe(at(5, 8, 55), [50.0, 0.0, 0.0]);
        let level = |hh: u32, mm: u32, h: &DemandHistory| h.level_at(at(12, hh, mm)).map(|l| l[0]);
        assert_eq!(level(8, 45, &h), Some(20.0));
        assert_eq!(level(8, 50, &h), Some(30.0));
        assert_eq!(level(8, 30, &h), None, "the bucket before 08:30 was never observed");
        // Attributed back from a shortage: an estimate, so no level; a measured week after it is.
        let mut e = DemandHistory::new(1);
        e.observe_capped(at(5, 8, 40), [5.0, 0.0, 0.0], true, false);
        e.observe_capped(at(5, 9, 5), [50.0, 0.0, 0.0], false, false);
        let b = |e: &DemandHistory, hh: u32, mm: u32| e.buckets[slot(at(5, hh, mm)).1].clone();
        assert!(b(&e, 8, 30).peak_estimated && b(&e, 8, 45).peak_estimated);
        assert!(!b(&e, 9, 0).peak_estimated, "observed, not attributed back");
        assert_eq!(e.forecast(at(12, 8, 45)).map(|f| (f.mean[0], f.estimated)), Ok((50.0, true)));
        assert_eq!(level(8, 50, &e), None);
        e.observe(at(12, 8, 40), [20.0, 0.0, 0.0]);
        e.observe(at(12, 8, 55), [45.0, 0.0, 0.0]);
        let f = e.forecast(at(19, 8, 45)).expect("two weeks");
        assert!(!f.estimated && (f.mean[0] - 47.5).abs() < 1e-6, "{f:?}");
        assert_eq!(level(8, 45, &e).map(|_| ()), None, "asked in week 12's own week: its peaks are not folded yet");
        assert_eq!(e.level_at(at(19, 8, 45)).map(|l| l[0]), Some(35.0), "50 then 20 weighted 0.5");
    }

    #[test]
    fn forecast_a_holiday_week_is_left_out_once_and_a_lasting_fall_is_learned() {
        let mut h = DemandHistory::new(1);
        for w in 0..3 {
            h.observe(at(5 + 7 * w, 9, 0), [40.0, 0.0, 0.0]);
        }
        // Week 3 is a holiday: every observation of 09:00 was made while today did not follow.
        h.observe_capped(at(26, 9, 0), [0.0; 3], false, true);
        h.observe_capped(at(26, 9, 5), [0.0; 3], false, true);
        let f = h.forecast(at(33, 9, 0)).expect("steady");
        assert_eq!((f.mean[0], f.weeks), (40.0, 3), "the holiday is left out");
        // Week 4 is untracked too: the week before was left out, so this one is folded.
        h.observe_capped(at(33, 9, 0), [0.0; 3], false, true);
        assert_eq!(h.forecast(at(40, 9, 0)), Err(NoForecast::Erratic));
        assert_eq!(h.tracked(at(40, 9, 0)).map(|f| (f.mean[0], f.weeks)), Some((20.0, 4)));
        // A quarter hour that was tracked at any point in its week counts.
        let mut g = DemandHistory::new(1);
        g.observe(at(5, 9, 0), [40.0, 0.0, 0.0]);
        g.observe_capped(at(12, 9, 0), [0.0; 3], false, true);
        g.observe_capped(at(12, 9, 10), [30.0, 0.0, 0.0], false, false);
        assert_eq!(g.forecast(at(19, 9, 0)).map(|f| (f.mean[0], f.weeks)), Ok((35.0, 2)));
        assert_eq!(g.tracked(at(19, 8, 45)), None, "thin: nothing to track against");
    }

    #[test]
    fn forecast_needs_a_week_and_weights_recent_weeks() {
        let mut h = DemandHistory::new(1);
        assert_eq!(h.forecast(at(12, 8, 50)), Err(NoForecast::Thin(0)));
        h.observe(at(5, 8, 50), [30.0, 0.0, 0.0]);
        h.observe(at(5, 8, 55), [38.0, 0.0, 0.0]);
        // The week's peak, from the week after; not in its own week.
        assert_eq!(h.forecast(at(5, 8, 59)), Err(NoForecast::Thin(0)));
        assert_eq!(h.forecast(at(12, 8, 50)).map(|f| (f.mean[0], f.weeks)), Ok((38.0, 1)));
        h.observe(at(12, 8, 50), [42.0, 0.0, 0.0]);
        let f = h.forecast(at(19, 8, 45)).expect("two weeks");
        assert_eq!(f.weeks, 2);
        // 38, then 42 weighted 0.5: 40.
        assert!((f.mean[0] - 40.0).abs() < 1e-6, "{f:?}");
        // The current week's partial peak is not read for its own week.
        assert_eq!(h.forecast(at(12, 8, 59)).map(|f| f.mean[0]), Ok(38.0));
    }

    #[test]
    fn forecast_from_erratic_weeks_is_nothing() {
        let mut h = DemandHistory::new(1);
        for (w, v) in [(0, 40.0), (1, 2.0), (2, 40.0)] {
            h.observe(at(5 + 7 * w, 9, 0), [v, 0.0, 0.0]);
        }
        assert_eq!(h.forecast(at(26, 9, 0)), Err(NoForecast::Erratic));
    }

    #[test]
    fn forecast_history_is_bounded() {
        let mut h = DemandHistory::new(1);
        let mut t = at(5, 0, 0);
        for _ in 0..(60 * 24 * 7 * 3) {
            h.observe(t, [10.0, 1000.0, 1.0]);
            t += chrono::Duration::minutes(1);
        }
        for s in 0..100 {
            h.add_boot(s);
        }
        assert_eq!(h.buckets.len(), BUCKETS);
        assert_eq!(h.boot_seconds.len(), LEAD_SAMPLES);
        // In memory too: 52 bytes a bucket (34.9 KB a config), what the 1,000-config benchmark holds.
        assert_eq!(std::mem::size_of::<Bucket>(), 52);
        assert!(serde_json::to_string(&h).unwrap().len() < 64 * 1024);
    }

    #[test]
    fn forecast_lead_time_is_the_p90_of_boots_or_half_the_timeout() {
        let timers = Timers::default();
        assert_eq!(lead_time(&[100, 200], &timers), LeadTime { seconds: 300, samples: 2 });
        let s: Vec<u32> = (1..=10).map(|k| k * 30).collect();
        assert_eq!(lead_time(&s, &timers), LeadTime { seconds: 270, samples: 10 });
        assert_eq!(lead_time(&[5000, 5000, 5000], &timers).seconds, 600);
    }

    #[test]
    fn forecast_identity_changes_with_what_the_demand_means() {
        let a = AutoscaleConfig::docker_agent("cfg", "prov");
        let mut b = a.clone();
        b.standby_cores = 8.0;
        assert_eq!(identity(&a), identity(&b));
        b.zone_id = "other".into();
        assert_ne!(identity(&a), identity(&b));
        let c = AutoscaleConfig::docker_agent("cfg", "prov2");
        assert_ne!(identity(&a), identity(&c));
    }
}
