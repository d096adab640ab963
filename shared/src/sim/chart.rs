//! A self-contained SVG chart of a simulation (no scripts, fonts or links from outside): the summary
//! in words, an upper panel with demand (running and waiting sessions, stacked), capacity, the
//! standby target and the forecast, markers for provider errors, drains and rotation, and a lower
//! panel with the VMs on an axis of their own, both under one clock-time axis ticked at round times.
//!
//! Parts carry ids (`panel-demand`, `panel-vms`, `xtick-N`, `legend-…`, `mark-<kind>-N`, `summary`)
//! so tests and readers of the source can find them.

use std::fmt::Write;

use chrono::{DateTime, Duration, Timelike, Utc};

use super::{MarkKind, Report};

const W: f64 = 1000.0;
const H: f64 = 656.0;
const L: f64 = 72.0; // left margin (axes)
const R: f64 = 24.0;
/// The upper panel: demand, capacity, standby target, forecast.
const T1: f64 = 112.0;
const H1: f64 = 300.0;
/// The lower panel: VMs.
const T2: f64 = T1 + H1 + 28.0;
const H2: f64 = 110.0;

const RUNNING: &str = "#f4a582";
const WAITING: &str = "#d6604d";
const CAPACITY: &str = "#1f6fd1";
const TARGET: &str = "#333333";
const FORECAST: &str = "#8a3ffc";
const VMS: &str = "#2a9d3a";

fn mark_style(k: MarkKind) -> (&'static str, &'static str, &'static str) {
    match k {
        MarkKind::ProviderError => ("provider-error", "#c00000", "provider error"),
        MarkKind::Drain => ("drain", "#7f7f7f", "drain"),
        MarkKind::Rotation => ("rotation", "#e08a00", "rotation"),
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The tick step for a span: the smallest of 15 min, 30 min, 1 h, 2 h, 6 h, 1 day, 1 week that
/// gives at most 12 ticks.
pub fn tick_minutes(span_minutes: f64) -> i64 {
    [15, 30, 60, 120, 360, 1440, 10080].into_iter().find(|&m| span_minutes / m as f64 <= 12.0).unwrap_or(10080)
}

/// The round clock times (UTC) in `[start, start + span]`, every `step` minutes counted from
/// midnight (weeks from Monday midnight).
fn ticks(start: DateTime<Utc>, span_minutes: f64, step: i64) -> Vec<DateTime<Utc>> {
    let end = start + Duration::seconds((span_minutes * 60.0).round() as i64);
    let midnight = start.date_naive().and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let origin = if step == 10080 {
        midnight - Duration::days(i64::from(chrono::Datelike::weekday(&midnight).num_days_from_monday()))
    } else {
        midnight
    };
    let since = (start - origin).num_minutes();
    let mut at = origin + Duration::minutes(since.div_euclid(step) * step);
    if at < start {
        at += Duration::minutes(step);
    }
    let mut out = Vec::new();
    while at <= end {
        out.push(at);
        at += Duration::minutes(step);
    }
    out
}

fn tick_label(at: DateTime<Utc>, step: i64, multi_day: bool) -> String {
    if step >= 1440 {
        at.format("%a %d %b").to_string()
    } else if multi_day && at.hour() == 0 && at.minute() == 0 {
        at.format("%a %H:%M").to_string()
    } else {
        at.format("%H:%M").to_string()
    }
}

/// An SVG path through points; `step` draws a staircase (values hold until the next sample).
fn path_d(pts: &[(f64, f64)], step: bool) -> String {
    let mut d = String::new();
    let mut last: Option<f64> = None;
    for &(px, py) in pts {
        match last {
            None => {
                let _ = write!(d, "M{px:.1},{py:.1}");
            }
            Some(ly) if step => {
                let _ = write!(d, " L{px:.1},{ly:.1} L{px:.1},{py:.1}");
            }
            Some(_) => {
                let _ = write!(d, " L{px:.1},{py:.1}");
            }
        }
        last = Some(py);
    }
    d
}

/// A filled area between `lower` and `upper` (same x), as one closed path.
fn area_d(upper: &[(f64, f64)], lower: &[(f64, f64)]) -> String {
    let mut d = path_d(upper, false);
    for &(px, py) in lower.iter().rev() {
        let _ = write!(d, " L{px:.1},{py:.1}");
    }
    d.push_str(" Z");
    d
}

/// Renders the report as an SVG document.
pub fn svg(r: &Report) -> String {
    let s = &r.samples;
    let span = s.last().map(|x| x.minute).unwrap_or(1.0).max(1.0);
    let y_max = nice_max(
        s.iter()
            .map(|x| x.demand.max(x.capacity).max(x.demand + x.standby).max(x.forecast.unwrap_or(0.0)))
            .fold(0.0, f64::max),
    );
    // Even, so the middle grid line is a whole number of VMs.
    let v_max = (nice_max(s.iter().map(|x| x.vms as f64).fold(0.0, f64::max)).max(2.0) / 2.0).ceil() * 2.0;
    let pw = W - L - R;
    let x = |m: f64| L + m / span * pw;
    let y = |v: f64| T1 + H1 - v / y_max * H1;
    let yv = |v: f64| T2 + H2 - v / v_max * H2;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{L}" y="24" font-size="15" font-weight="bold">{} — from {} (UTC)</text>"#,
        esc(&r.summary.name),
        r.start.format("%a %Y-%m-%d %H:%M")
    );

    // The summary, in words.
    let x_ = &r.summary;
    let mut first = format!(
        "sessions {} · waited {} ({:.1} %) · p95 wait {} s · longest {} s",
        x_.sessions_total, x_.sessions_waited, x_.sessions_waited_percent, x_.p95_wait_seconds, x_.max_wait_seconds
    );
    if x_.sessions_unserved > 0 {
        let _ = write!(first, " · unserved {}", x_.sessions_unserved);
    }
    let mut second = format!("VM-hours {:.2} · estimated cost {}", x_.vm_hours, x_.cost_text());
    if x_.oracle_vm_hours > 0.0 {
        let _ = write!(
            second,
            " · used / oracle {:.2} (oracle {:.2} VM-hours)",
            x_.vm_hours_over_oracle, x_.oracle_vm_hours
        );
    }
    let mut third = format!("peak VMs {} · provider errors {}", x_.peak_vms, x_.provider_errors);
    if x_.vms_rotated > 0 {
        let _ = write!(third, " · VMs rotated out {}", x_.vms_rotated);
    }
    if x_.score_from_day > 0 {
        let _ = write!(third, " · scored from day {}", x_.score_from_day);
    }
    let _ = writeln!(o, r#"<g id="summary">"#);
    for (i, t) in [first, second, third].iter().enumerate() {
        let _ = writeln!(o, r#"<text x="{L}" y="{}">{}</text>"#, 44 + 16 * i, esc(t));
    }
    let _ = writeln!(o, "</g>");

    // Time ticks on round clock times, drawn through both panels; labels under the lower one.
    let step = tick_minutes(span);
    let multi_day = span > 1440.0;
    let _ = writeln!(o, r#"<g id="xticks">"#);
    for (i, at) in ticks(r.start, span, step).into_iter().enumerate() {
        let tx = x((at - r.start).num_seconds() as f64 / 60.0);
        let _ = writeln!(
            o,
            r##"<g id="xtick-{i}"><line x1="{tx:.1}" y1="{T1}" x2="{tx:.1}" y2="{}" stroke="#ececec"/><line x1="{tx:.1}" y1="{}" x2="{tx:.1}" y2="{}" stroke="#ececec"/><text x="{tx:.1}" y="{}" text-anchor="middle">{}</text></g>"##,
            T1 + H1,
            T2,
            T2 + H2 + 5.0,
            T2 + H2 + 18.0,
            tick_label(at, step, multi_day)
        );
    }
    let _ = writeln!(o, "</g>");

    // Upper panel.
    let _ = writeln!(o, r#"<g id="panel-demand">"#);
    grid(&mut o, T1, H1, pw, 5, y_max, "");
    let _ = writeln!(
        o,
        r#"<text x="18" y="{0:.1}" transform="rotate(-90 18 {0:.1})" text-anchor="middle">cores (agents) / session slots (servers)</text>"#,
        T1 + H1 / 2.0
    );
    let base: Vec<(f64, f64)> = s.iter().map(|p| (x(p.minute), y(0.0))).collect();
    let running: Vec<(f64, f64)> = s.iter().map(|p| (x(p.minute), y(p.demand - p.waiting_demand))).collect();
    let total: Vec<(f64, f64)> = s.iter().map(|p| (x(p.minute), y(p.demand))).collect();
    if !s.is_empty() {
        let _ =
            writeln!(o, r#"<path id="area-running" d="{}" fill="{RUNNING}" stroke="none"/>"#, area_d(&running, &base));
        let _ =
            writeln!(o, r#"<path id="area-waiting" d="{}" fill="{WAITING}" stroke="none"/>"#, area_d(&total, &running));
        let target: Vec<(f64, f64)> = s.iter().map(|p| (x(p.minute), y(p.demand + p.standby))).collect();
        let _ = writeln!(
            o,
            r#"<path id="line-target" d="{}" fill="none" stroke="{TARGET}" stroke-width="1.2" stroke-dasharray="2,2"/>"#,
            path_d(&target, true)
        );
        let capacity: Vec<(f64, f64)> = s.iter().map(|p| (x(p.minute), y(p.capacity))).collect();
        let _ = writeln!(
            o,
            r#"<path id="line-capacity" d="{}" fill="none" stroke="{CAPACITY}" stroke-width="2"/>"#,
            path_d(&capacity, true)
        );
    }
    // Predictive scaling: the forecast one lead time ahead, dashed, where there is one.
    let forecast: Vec<(f64, f64)> = s.iter().filter_map(|p| p.forecast.map(|f| (x(p.minute), y(f)))).collect();
    if !forecast.is_empty() {
        let mut d = String::new();
        let mut prev: Option<f64> = None;
        let gap = pw / s.len().max(1) as f64 * 1.5;
        for (px, py) in forecast {
            // A new segment where the forecast was absent for a while.
            let cmd = if prev.is_none_or(|lx| px - lx > gap) { 'M' } else { 'L' };
            let _ = write!(d, "{cmd}{px:.1},{py:.1} ");
            prev = Some(px);
        }
        let _ = writeln!(
            o,
            r#"<path id="line-forecast" d="{}" fill="none" stroke="{FORECAST}" stroke-width="1.5" stroke-dasharray="5,3"/>"#,
            d.trim_end()
        );
    }
    let _ = writeln!(o, r##"<rect x="{L}" y="{T1}" width="{pw}" height="{H1}" fill="none" stroke="#999"/>"##);
    let _ = writeln!(o, "</g>");

    // Markers: a thin line through the upper panel and a labelled flag above it.
    let _ = writeln!(o, r#"<g id="markers">"#);
    let mut n_of = std::collections::HashMap::new();
    for m in &r.marks {
        let (id, color, _) = mark_style(m.kind);
        let n = n_of.entry(id).or_insert(0usize);
        let mx = x(m.minute);
        let row = match m.kind {
            MarkKind::ProviderError => 0.0,
            MarkKind::Drain => 1.0,
            MarkKind::Rotation => 2.0,
        };
        let fy = T1 - 24.0 + row * 8.0;
        let label =
            if m.count > 1 { format!("<title>{} ×{}</title>", mark_style(m.kind).2, m.count) } else { String::new() };
        let _ = writeln!(
            o,
            r#"<g id="mark-{id}-{n}"><line x1="{mx:.1}" y1="{fy:.1}" x2="{mx:.1}" y2="{:.1}" stroke="{color}" stroke-width="1" stroke-opacity="0.6"/><path d="M{:.1},{:.1} L{:.1},{:.1} L{mx:.1},{:.1} Z" fill="{color}"/>{label}</g>"#,
            T1 + H1,
            mx - 4.0,
            fy,
            mx + 4.0,
            fy,
            fy + 6.0
        );
        *n += 1;
    }
    let _ = writeln!(o, "</g>");

    // Lower panel: VMs on their own axis.
    let _ = writeln!(o, r#"<g id="panel-vms">"#);
    grid(&mut o, T2, H2, pw, 2, v_max, &format!(r#" fill="{VMS}""#));
    let _ = writeln!(
        o,
        r#"<text x="18" y="{0:.1}" transform="rotate(-90 18 {0:.1})" text-anchor="middle" fill="{VMS}">VMs</text>"#,
        T2 + H2 / 2.0
    );
    if !s.is_empty() {
        let vms: Vec<(f64, f64)> = s.iter().map(|p| (x(p.minute), yv(p.vms as f64))).collect();
        let _ = writeln!(
            o,
            r#"<path id="line-vms" d="{}" fill="none" stroke="{VMS}" stroke-width="2"/>"#,
            path_d(&vms, true)
        );
    }
    let _ = writeln!(o, r##"<rect x="{L}" y="{T2}" width="{pw}" height="{H2}" fill="none" stroke="#999"/>"##);
    let _ = writeln!(o, "</g>");

    // Legend: two rows under the time axis.
    let mut entries: Vec<(&str, String, &str)> = vec![
        ("running", "sessions running".into(), "area"),
        ("waiting", "sessions waiting".into(), "area"),
        ("capacity", "capacity (enabled VMs)".into(), "line"),
        ("target", "target: demand + standby".into(), "dots"),
    ];
    if s.iter().any(|p| p.forecast.is_some()) {
        entries.push(("forecast", "forecast (one boot ahead)".into(), "dash"));
    }
    entries.push(("vms", "VMs at the provider (below)".into(), "line"));
    for k in [MarkKind::ProviderError, MarkKind::Drain, MarkKind::Rotation] {
        let n: u32 = r.marks.iter().filter(|m| m.kind == k).map(|m| m.count).sum();
        if n > 0 {
            let (id, _, name) = mark_style(k);
            let what = if k == MarkKind::ProviderError { "failed creates" } else { "VMs" };
            entries.push((id, format!("{name} ({n} {what})"), "flag"));
        }
    }
    let _ = writeln!(o, r#"<g id="legend">"#);
    let top = T2 + H2 + 40.0;
    for (i, (id, label, shape)) in entries.iter().enumerate() {
        let lx = L + (i % 4) as f64 * 225.0;
        let ly = top + (i / 4) as f64 * 20.0;
        let color = match *id {
            "running" => RUNNING,
            "waiting" => WAITING,
            "capacity" => CAPACITY,
            "target" => TARGET,
            "forecast" => FORECAST,
            "vms" => VMS,
            "provider-error" => mark_style(MarkKind::ProviderError).1,
            "drain" => mark_style(MarkKind::Drain).1,
            _ => mark_style(MarkKind::Rotation).1,
        };
        let swatch = match *shape {
            "area" => format!(r#"<rect x="{lx}" y="{}" width="22" height="10" fill="{color}"/>"#, ly - 5.0),
            "dots" => format!(
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="1.5" stroke-dasharray="2,2"/>"#,
                lx + 22.0
            ),
            "dash" => format!(
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="1.5" stroke-dasharray="5,3"/>"#,
                lx + 22.0
            ),
            "flag" => format!(
                r#"<path d="M{},{} L{},{} L{},{} Z" fill="{color}"/>"#,
                lx + 7.0,
                ly - 4.0,
                lx + 15.0,
                ly - 4.0,
                lx + 11.0,
                ly + 2.0
            ),
            _ => {
                format!(r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#, lx + 22.0)
            }
        };
        let _ = writeln!(
            o,
            r#"<g id="legend-{id}">{swatch}<text x="{}" y="{}">{}</text></g>"#,
            lx + 28.0,
            ly + 4.0,
            esc(label)
        );
    }
    let _ = writeln!(o, "</g>");
    o.push_str("</svg>\n");
    o
}

/// A panel's horizontal grid lines (`steps` + 1, from 0 to `max`) with their values on the left axis;
/// `label_attrs` is added to each value's `<text>` (e.g. its colour).
fn grid(o: &mut String, top: f64, height: f64, pw: f64, steps: u32, max: f64, label_attrs: &str) {
    for i in 0..=steps {
        let f = f64::from(i) / f64::from(steps);
        let gy = top + height - f * height;
        let _ = writeln!(o, r##"<line x1="{L}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#e5e5e5"/>"##, L + pw);
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end"{label_attrs}>{}</text>"#,
            L - 6.0,
            gy + 4.0,
            fmt(f * max)
        );
    }
}

fn fmt(v: f64) -> String {
    if v.fract().abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests;
