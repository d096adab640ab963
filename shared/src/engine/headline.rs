//! The one-line summary of a plan (see [`Plan::headline`]).

use super::{Action, Plan};
use crate::config::AutoscaleType;

impl Plan {
    /// One short line for a decision: what it does (`+2 agents`, `2 agents up`, `drain 15`, ...) and the
    /// reason that drove it, taken from the plan's reasons (the part before the action they name). The
    /// `simulate` timeline and the daemon's status page show it.
    pub fn headline(&self, claimed: usize, kind: Option<AutoscaleType>) -> String {
        let plan = self;

        let noun = |n: usize| match (kind, n) {
            (Some(AutoscaleType::Server), 1) => "server",
            (Some(AutoscaleType::Server), _) => "servers",
            (_, 1) => "agent",
            _ => "agents",
        };
        // The part of the first reason holding `marker` that comes before it.
        let because =
            |marker: &str| plan.reasons.iter().find_map(|r| r.find(marker).map(|i| r[..i].trim().to_string()));
        // Of the reasons that ask for VMs (`<why>: +N ...`), the one asking for the most (the one that
        // drove the plan; the first of equals): its `<why>`.
        let asks_most = || {
            let asks = |r: &String| -> Option<(u32, String)> {
                let i = r.find(": +")?;
                let n: String = r[i + 3..].chars().take_while(char::is_ascii_digit).collect();
                Some((n.parse().ok()?, r[..i].trim().to_string()))
            };
            let mut best: Option<(u32, String)> = None;
            for (n, why) in plan.reasons.iter().filter_map(asks) {
                if best.as_ref().is_none_or(|(m, _)| n > *m) {
                    best = Some((n, why));
                }
            }
            best.map(|(_, why)| why)
        };
        let mut what: Vec<String> = Vec::new();
        let mut why: Vec<String> = Vec::new();
        if claimed > 0 {
            let replacing = plan.replacements.len().min(claimed);
            what.push(if replacing == 0 {
                format!("+{claimed} {}", noun(claimed))
            } else {
                format!("+{claimed} {} ({replacing} for rotation)", noun(claimed))
            });
            if let Some(w) = asks_most() {
                why.push(w);
            } else if replacing > 0 {
                why.push("rotation".into());
            }
        }
        let count = |f: &dyn Fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
        let up = count(&|a| matches!(a, Action::Activate { .. }));
        if up > 0 {
            what.push(format!("{up} {} up", noun(up)));
        }
        let undrained = count(&|a| matches!(a, Action::Undrain { .. }));
        if undrained > 0 {
            what.push(format!("undrain {undrained}"));
        }
        let rotated = count(&|a| matches!(a, Action::Drain { replaced_by: Some(_), .. }));
        if rotated > 0 {
            what.push(format!("drain {rotated} (rotated out)"));
        }
        let drained = count(&|a| matches!(a, Action::Drain { replaced_by: None, .. }));
        if drained > 0 {
            what.push(format!("drain {drained}"));
            if let Some(w) = because(": draining").or_else(|| because(": no other session")) {
                why.push(w);
            } else if let Some(w) = plan.reasons.iter().find(|r| r.starts_with("schedule inactive")) {
                why.push(w.split(" (").next().unwrap_or(w).to_string());
            }
        }
        let destroyed: Vec<&str> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Destroy { reason, .. } => Some(reason.split(" (").next().unwrap_or(reason)),
                _ => None,
            })
            .collect();
        if let Some(first) = destroyed.first() {
            what.push(format!("destroy {} ({first})", destroyed.len()));
        }
        if why.is_empty() { what.join(", ") } else { format!("{} — {}", what.join(", "), why.join("; ")) }
    }
}
