//! A dependency-free SVG chart of a simulation: demand vs capacity vs VMs over time.

use std::fmt::Write;

use super::Report;

const W: f64 = 960.0;
const H: f64 = 420.0;
const L: f64 = 64.0; // left margin
const R: f64 = 64.0; // right margin (VM axis)
const T: f64 = 48.0;
const B: f64 = 48.0;

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

/// Renders the report's samples as an SVG document.
pub fn svg(r: &Report) -> String {
    let s = &r.samples;
    let max_min = s.last().map(|x| x.minute).unwrap_or(1.0).max(1.0);
    let y_max = nice_max(s.iter().map(|x| x.demand.max(x.capacity).max(x.forecast.unwrap_or(0.0))).fold(0.0, f64::max));
    let v_max = nice_max(s.iter().map(|x| x.vms as f64).fold(0.0, f64::max));
    let pw = W - L - R;
    let ph = H - T - B;
    let x = |m: f64| L + m / max_min * pw;
    let y = |v: f64| T + ph - v / y_max * ph;
    let yv = |v: f64| T + ph - v / v_max * ph;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{L}" y="24" font-size="15" font-weight="bold">{} — demand vs capacity vs VMs (UTC)</text>"#,
        esc(&r.summary.name)
    );
    // Grid and axes.
    for i in 0..=5 {
        let f = i as f64 / 5.0;
        let gy = T + ph - f * ph;
        let _ = writeln!(o, r##"<line x1="{L}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#e5e5e5"/>"##, L + pw);
        let _ =
            writeln!(o, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, L - 6.0, gy + 4.0, fmt(f * y_max));
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" fill="#2a9d3a">{}</text>"##,
            L + pw + 6.0,
            gy + 4.0,
            fmt(f * v_max)
        );
    }
    let ticks = 6;
    for i in 0..=ticks {
        let m = max_min * i as f64 / ticks as f64;
        let at = r.start + chrono::Duration::seconds((m * 60.0).round() as i64);
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(m),
            T + ph + 18.0,
            at.format("%H:%M")
        );
    }
    let _ = writeln!(o, r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##);
    let _ = writeln!(
        o,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">cores (agents) / session slots (servers)</text>"#,
        T + ph / 2.0,
        T + ph / 2.0
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" transform="rotate(90 {:.1} {:.1})" text-anchor="middle" fill="#2a9d3a">VMs</text>"##,
        W - 14.0,
        T + ph / 2.0,
        W - 14.0,
        T + ph / 2.0
    );
    let line = |o: &mut String, pts: Vec<(f64, f64)>, color: &str, step: bool| {
        let mut d = String::new();
        let mut last: Option<(f64, f64)> = None;
        for (px, py) in pts {
            match last {
                None => {
                    let _ = write!(d, "M{px:.1},{py:.1}");
                }
                Some((_, ly)) if step => {
                    let _ = write!(d, " L{px:.1},{ly:.1} L{px:.1},{py:.1}");
                }
                Some(_) => {
                    let _ = write!(d, " L{px:.1},{py:.1}");
                }
            }
            last = Some((px, py));
        }
        let _ = writeln!(o, r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>"#);
    };
    line(&mut o, s.iter().map(|p| (x(p.minute), y(p.capacity))).collect(), "#1f6fd1", true);
    line(&mut o, s.iter().map(|p| (x(p.minute), y(p.demand))).collect(), "#d1341f", false);
    line(&mut o, s.iter().map(|p| (x(p.minute), yv(p.vms as f64))).collect(), "#2a9d3a", true);
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
            r##"<path d="{}" fill="none" stroke="#8a3ffc" stroke-width="1.5" stroke-dasharray="5,3"/>"##,
            d.trim_end()
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" fill="#8a3ffc">- - forecast (one boot ahead)</text>"##,
            L + pw - 190.0,
            T + 14.0
        );
    }
    // Legend.
    for (i, (label, color)) in [
        ("demand (sessions running + waiting)", "#d1341f"),
        ("capacity (enabled VMs)", "#1f6fd1"),
        ("VMs at the provider", "#2a9d3a"),
    ]
    .iter()
    .enumerate()
    {
        let lx = L + 10.0 + i as f64 * 270.0;
        let ly = H - 12.0;
        let _ = writeln!(
            o,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 24.0
        );
        let _ = writeln!(o, r#"<text x="{}" y="{}">{label}</text>"#, lx + 30.0, ly + 4.0);
    }
    o.push_str("</svg>\n");
    o
}

fn fmt(v: f64) -> String {
    if v.fract().abs() < 1e-9 { format!("{v:.0}") } else { format!("{v:.1}") }
}
