//! The per-folder summary of `docsync status`: each folder's files by state, and
//! how long its oldest pending file (uploaded, waiting for a decision) has
//! waited: `folder /srv/inbox: 12 approved, 3 pending (oldest 4m), 1 rejected`.
//! On stderr, below the table (or next to `--json`): stdout stays what scripts
//! read.

use std::collections::BTreeMap;

use anyhow::Context;
use docsync::model::text;
use docsync::store::{State, StateView};

/// One line per folder (of `only`, when given), folders in name order.
pub async fn lines(
    view: &StateView,
    only: Option<&str>,
    now_ms: i64,
) -> anyhow::Result<Vec<String>> {
    let counts = view
        .counts_by_folder()
        .await
        .context("counting the files of each folder")?;
    let oldest = view
        .oldest_pending_by_folder()
        .await
        .context("finding the oldest pending file of each folder")?;
    Ok(counts
        .iter()
        .filter(|f| only.is_none_or(|only| only == f.folder))
        .filter_map(|f| {
            let since = oldest.get(&f.folder).copied();
            line(
                &f.folder,
                &f.counts,
                since.map(|at| now_ms.saturating_sub(at)),
            )
        })
        .collect())
}

/// `folder NAME: 12 approved, 3 pending (oldest 4m), 1 rejected`; `None` for a
/// folder with no live files (only superseded or deleted rows).
fn line(
    folder: &str,
    counts: &BTreeMap<State, u64>,
    oldest_pending_ms: Option<i64>,
) -> Option<String> {
    let parts: Vec<String> = State::ALL
        .iter()
        .filter(|s| s.is_live())
        .filter_map(|s| match counts.get(s) {
            Some(&n) if n > 0 => Some(match (s, oldest_pending_ms) {
                (State::Pending, Some(age)) => format!("{n} {s} (oldest {})", age_text(age)),
                _ => format!("{n} {s}"),
            }),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "folder {}: {}",
        text::escape_str(folder),
        parts.join(", ")
    ))
}

/// `45s`, `4m`, `2h 5m`, `3d 4h`.
fn age_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        for (ms, want) in [
            (-5, "0s"),
            (999, "0s"),
            (45_000, "45s"),
            (4 * 60_000 + 59_000, "4m"),
            (2 * 3_600_000 + 5 * 60_000, "2h 5m"),
            (3 * 86_400_000 + 4 * 3_600_000 + 1, "3d 4h"),
        ] {
            assert_eq!(age_text(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn a_line_names_the_folder_its_states_and_the_oldest_pending() {
        let counts: BTreeMap<State, u64> = [
            (State::Rejected, 1),
            (State::Approved, 12),
            (State::Pending, 3),
            (State::Superseded, 7),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            line("/srv/in\nbox", &counts, Some(4 * 60_000)).as_deref(),
            Some("folder /srv/in\\nbox: 3 pending (oldest 4m), 12 approved, 1 rejected")
        );
        let history_only: BTreeMap<State, u64> = [(State::Deleted, 2)].into_iter().collect();
        assert_eq!(line("/x", &history_only, None), None);
    }
}
