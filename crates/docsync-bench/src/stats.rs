//! Summaries of repeated measurements: median with min/max, and percentiles.

/// The median, min and max of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many runs.
    pub runs: usize,
}

impl Summary {
    /// `None` for no values or a value that is not a number.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        })
    }

    /// Each of the runs mapped by `f` (e.g. seconds to files per second).
    /// `f` must be monotonic; a decreasing `f` swaps min and max.
    pub fn map(self, f: impl Fn(f64) -> f64) -> Summary {
        let (a, b) = (f(self.min), f(self.max));
        Summary {
            median: f(self.median),
            min: a.min(b),
            max: a.max(b),
            runs: self.runs,
        }
    }
}

/// The `p`-th percentile (0..=100) by nearest rank: the smallest value with at
/// least `p`% of the values at or below it. `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sizes of the bursts in `times` (sorted, in ms): a gap longer than `gap`
/// starts a new burst (e.g. the requests of one poll cycle).
pub fn burst_sizes(times: &[f64], gap: f64) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut last: Option<f64> = None;
    for &t in times {
        match last {
            Some(prev) if t - prev <= gap => {
                if let Some(n) = sizes.last_mut() {
                    *n += 1;
                }
            }
            _ => sizes.push(1),
        }
        last = Some(t);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_split_at_gaps() {
        let t = [0.0, 1.0, 2.0, 300.0, 301.0, 900.0];
        assert_eq!(burst_sizes(&t, 100.0), vec![3, 2, 1]);
        assert_eq!(burst_sizes(&t, 1000.0), vec![6]);
        assert_eq!(burst_sizes(&[], 100.0), Vec::<usize>::new());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (3.0, 1.0, 5.0, 3));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn no_summary_of_nothing_or_nan() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn decreasing_map_keeps_min_below_max() {
        // seconds -> files per second: the fastest run is the max rate
        let s = Summary::of(&[1.0, 2.0, 4.0])
            .unwrap()
            .map(|secs| 100.0 / secs);
        assert_eq!((s.median, s.min, s.max), (50.0, 25.0, 100.0));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(100.0));
        assert_eq!(percentile(&v, 99.0), Some(198.0));
        assert_eq!(percentile(&v, 100.0), Some(200.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 101.0), None);
    }
}
