//! "Did you mean …?" hints for misspelt names (fields, override keys, providers, time zones).

/// ` (did you mean `x`?)` when a candidate is close to `got`, else an empty string.
pub fn did_you_mean<'a>(got: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let got_l = got.to_ascii_lowercase().replace(['-', ' '], "_");
    candidates
        .map(|c| (edit_distance(&got_l, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        assert_eq!(
            did_you_mean("max_instance", ["max_instances", "name"].into_iter()),
            " (did you mean `max_instances`?)"
        );
        assert_eq!(did_you_mean("Max-Instances", ["max_instances"].into_iter()), " (did you mean `max_instances`?)");
        assert_eq!(did_you_mean("zzzzzzzz", ["max_instances", "name"].into_iter()), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
