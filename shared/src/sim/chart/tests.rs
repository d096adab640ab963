//! The chart read back as a viewer would: parsed by usvg, rendered to PNG by resvg, and checked for
//! its parts (by id) and the round times of its ticks — not for pixels.

use super::*;
use crate::sim::{Summary, load, run};
use resvg::usvg::{self, roxmltree};
use std::path::Path;

async fn report(name: &str) -> Report {
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/simulations").join(name);
    run(&load(&trace).expect("the shipped trace loads")).await
}

/// Every id in the usvg tree (groups and paths), depth first.
fn ids(g: &usvg::Group, out: &mut Vec<String>) {
    if !g.id().is_empty() {
        out.push(g.id().to_string());
    }
    for n in g.children() {
        match n {
            usvg::Node::Group(c) => ids(c, out),
            other if !other.id().is_empty() => out.push(other.id().to_string()),
            _ => {}
        }
    }
}

fn find<'a>(g: &'a usvg::Group, id: &str) -> Option<&'a usvg::Group> {
    if g.id() == id {
        return Some(g);
    }
    g.children().iter().find_map(|n| match n {
        usvg::Node::Group(c) => find(c, id),
        _ => None,
    })
}

/// Parses (usvg, with the system's fonts for the text), renders to PNG, and returns the tree's ids.
/// With `KASM_CHART_PNG=DIR` the PNG is also written there as `<name>.png`, to look at.
fn parse_and_render(name: &str, svg: &str) -> (usvg::Tree, Vec<String>) {
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = usvg::Tree::from_str(svg, &opt).expect("the chart parses");
    let size = tree.size().to_int_size();
    assert_eq!((size.width(), size.height()), (W as u32, H as u32));
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).expect("a pixmap");
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let inked = pixmap.pixels().iter().filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255)).count();
    assert!(inked > 10_000, "the PNG is (nearly) blank: {inked} non-white pixels");
    let png = pixmap.encode_png().expect("PNG encodes");
    assert!(png.len() > 5_000 && png.starts_with(b"\x89PNG"), "{} bytes", png.len());
    if let Some(dir) = std::env::var_os("KASM_CHART_PNG") {
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), &png).expect("PNG written");
    }
    let mut out = Vec::new();
    ids(tree.root(), &mut out);
    (tree, out)
}

/// The tick labels and x positions, from the SVG text.
fn xticks(svg: &str) -> Vec<(String, f64)> {
    let doc = roxmltree::Document::parse(svg).expect("XML");
    doc.descendants()
        .filter(|n| n.attribute("id").is_some_and(|id| id.starts_with("xtick-")))
        .map(|g| {
            let text = g.children().find(|c| c.has_tag_name("text")).expect("a label");
            (text.text().unwrap_or_default().to_string(), text.attribute("x").unwrap().parse().unwrap())
        })
        .collect()
}

fn count(ids: &[String], prefix: &str) -> usize {
    ids.iter().filter(|i| i.starts_with(prefix)).count()
}

#[test]
fn ticks_are_round_clock_times_at_a_step_fitting_the_span() {
    assert_eq!(
        [90.0, 300.0, 600.0, 1440.0, 4320.0, 10080.0, 30240.0].map(tick_minutes),
        [15, 30, 60, 120, 360, 1440, 10080]
    );
    let start = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 5, 7, 10, 0).unwrap();
    let t = ticks(start, 600.0, 60);
    assert_eq!(t.len(), 10, "{t:?}");
    assert!(t.iter().all(|at| at.minute() == 0 && at.second() == 0), "{t:?}");
    assert_eq!(t[0].hour(), 8);
    let t = ticks(start, 4320.0, 360);
    assert!(t.iter().all(|at| at.hour() % 6 == 0 && at.minute() == 0), "{t:?}");
}

#[test]
fn the_cost_always_says_its_unit() {
    let mut s = Summary { estimated_cost: 38.514, ..Default::default() };
    assert_eq!(s.cost_text(), "38.51 cost units (hourly_price has no currency)");
    s.currency = Some("EUR".into());
    assert_eq!(s.cost_text(), "38.51 EUR");
}

/// morning-rush: ten hours from 07:00 → hourly ticks 07:00–17:00; two panels, the VMs one below;
/// running and waiting drawn apart, the standby target, two drain markers, the summary with its
/// currency and the oracle ratio.
#[tokio::test]
async fn the_chart_renders_with_panels_ticks_legend_markers_and_summary() {
    let r = report("morning-rush.json").await;
    let svg = svg(&r);
    let (tree, ids) = parse_and_render("morning-rush", &svg);
    for id in [
        "summary",
        "panel-demand",
        "panel-vms",
        "area-running",
        "area-waiting",
        "line-capacity",
        "line-target",
        "line-vms",
        "markers",
        "legend",
    ] {
        assert!(ids.iter().any(|i| i == id), "no {id} in {ids:?}");
    }
    assert!(!ids.iter().any(|i| i == "line-forecast"), "no forecast in a reactive run");
    // Waiting sessions are there (42 waited), and drawn apart from the running ones.
    assert!(r.samples.iter().any(|s| s.waiting_demand > 0.0));
    assert!(r.samples.iter().all(|s| s.standby == 16.0), "the config's standby is 16 cores");

    // The VMs panel lies wholly below the demand panel.
    let upper = find(tree.root(), "panel-demand").unwrap().abs_bounding_box();
    let lower = find(tree.root(), "panel-vms").unwrap().abs_bounding_box();
    assert!(lower.top() > upper.bottom(), "{upper:?} {lower:?}");

    // Hourly ticks on the hour, each at its minute's place on the axis.
    let t = xticks(&svg);
    let labels: Vec<&str> = t.iter().map(|(l, _)| l.as_str()).collect();
    let hours: Vec<String> = (7..=17).map(|h| format!("{h:02}:00")).collect();
    assert_eq!(labels, hours);
    let span = r.samples.last().unwrap().minute;
    for (i, (_, tx)) in t.iter().enumerate() {
        let expect = L + (i as f64 * 60.0) / span * (W - L - R);
        assert!((tx - expect).abs() < 0.11, "{labels:?}: tick {i} at {tx}, not {expect}");
    }
    assert_eq!(count(&ids, "xtick-"), 11);

    // Markers: the two drain decisions (15 and 7 VMs), no provider error, no rotation.
    assert_eq!(count(&ids, "mark-drain-"), 2);
    assert_eq!(count(&ids, "mark-provider-error-"), 0);
    assert_eq!(count(&ids, "mark-rotation-"), 0);
    let legend: Vec<&String> = ids.iter().filter(|i| i.starts_with("legend-")).collect();
    assert_eq!(
        legend,
        ["legend-running", "legend-waiting", "legend-capacity", "legend-target", "legend-vms", "legend-drain"]
    );
    assert!(svg.contains(">drain (22 VMs)<"), "{svg}");

    // The summary in the picture, with the currency and the oracle ratio.
    let s = &r.summary;
    for want in [
        format!("waited {} ({:.1} %)", s.sessions_waited, s.sessions_waited_percent),
        format!("p95 wait {} s", s.p95_wait_seconds),
        format!("VM-hours {:.2}", s.vm_hours),
        format!("estimated cost {:.2} USD", s.estimated_cost),
        format!("used / oracle {:.2}", s.vm_hours_over_oracle),
    ] {
        assert!(svg.contains(&want), "no {want:?} in the summary");
    }
    // Self-contained: nothing fetched from elsewhere.
    assert!(!svg.contains("href") && !svg.contains("@import") && !svg.contains("url("));
}

/// Provider errors and rotation get their markers, one per failed create and per rotation drain.
#[tokio::test]
async fn provider_errors_and_rotation_are_marked() {
    let r = report("scheduled-prewarm.json").await;
    assert!(r.summary.provider_errors > 0);
    let (_, ids) = parse_and_render("scheduled-prewarm", &svg(&r));
    assert_eq!(count(&ids, "mark-provider-error-"), r.summary.provider_errors as usize);
    assert!(ids.iter().any(|i| i == "legend-provider-error"));

    let r = report("server-rotation.json").await;
    let svg = svg(&r);
    let (_, ids) = parse_and_render("server-rotation", &svg);
    assert_eq!(count(&ids, "mark-rotation-"), 3, "the three rotation drains");
    assert!(ids.iter().any(|i| i == "legend-rotation"));
    // Two days and more: ticks every few hours, on round times, the days named at midnight.
    let t = xticks(&svg);
    assert!((4..=13).contains(&t.len()), "{t:?}");
    assert!(t.iter().all(|(l, _)| l.ends_with(":00")), "{t:?}");
    assert!(t.iter().any(|(l, _)| l.starts_with("Tue 00:00")), "{t:?}");
}
