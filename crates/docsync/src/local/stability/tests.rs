use super::*;

#[test]
fn stability_table() {
    let quiet = Duration::from_millis(1000);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    enum Step {
        Observe(u64, u64, i64),
        Close(u64, u64, i64),
        Forget,
        Ready(u64, Option<(u64, i64)>),
    }
    use Step::*;
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "still for the window",
            vec![
                Observe(0, 10, 1),
                Ready(999, None),
                Ready(1000, Some((10, 1))),
            ],
        ),
        (
            "growing restarts the window",
            vec![
                Observe(0, 10, 1),
                Observe(800, 20, 2),
                Ready(1000, None),
                Observe(1500, 20, 2),
                Ready(1799, None),
                Ready(1800, Some((20, 2))),
            ],
        ),
        (
            "same stat does not restart",
            vec![
                Observe(0, 10, 1),
                Observe(900, 10, 1),
                Ready(1000, Some((10, 1))),
            ],
        ),
        (
            "close_write is immediate",
            vec![
                Observe(0, 10, 1),
                Close(10, 12, 2),
                Ready(10, Some((12, 2))),
            ],
        ),
        (
            "a write after close_write waits again",
            vec![
                Close(0, 10, 1),
                Observe(5, 11, 2),
                Ready(5, None),
                Ready(1005, Some((11, 2))),
            ],
        ),
        (
            "forgotten files never become ready",
            vec![Observe(0, 10, 1), Forget, Ready(5000, None)],
        ),
    ];
    for (name, steps) in cases {
        let mut tracker = StabilityTracker::new(quiet);
        for step in steps {
            match step {
                Observe(ms, size, mtime) => tracker.observe("f", size, mtime, at(ms)),
                Close(ms, size, mtime) => tracker.close_write("f", size, mtime, at(ms)),
                Forget => tracker.forget(&"f"),
                Ready(ms, want) => {
                    let got: Vec<(u64, i64)> = tracker
                        .take_ready(at(ms))
                        .into_iter()
                        .map(|r| (r.size, r.mtime_ns))
                        .collect();
                    assert_eq!(
                        got,
                        want.into_iter().collect::<Vec<_>>(),
                        "{name} at {ms}ms"
                    );
                }
            }
        }
    }
}

#[test]
fn stability_deadline_and_many_files() {
    let t0 = Instant::now();
    let mut tracker = StabilityTracker::new(Duration::from_secs(1));
    assert_eq!(tracker.next_deadline(), None);
    tracker.observe(("inbox", 1), 1, 1, t0);
    tracker.observe(("inbox", 2), 1, 1, t0 + Duration::from_millis(300));
    assert_eq!(tracker.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(tracker.len(), 2);
    let ready = tracker.take_ready(t0 + Duration::from_secs(1));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].key, ("inbox", 1));
    assert_eq!(
        tracker.next_deadline(),
        Some(t0 + Duration::from_millis(1300))
    );
    assert_eq!(tracker.take_ready(t0 + Duration::from_secs(2)).len(), 1);
    assert!(tracker.is_empty());
}

#[test]
fn a_closed_file_is_due_at_once() {
    let t0 = Instant::now();
    let mut tracker = StabilityTracker::new(Duration::from_secs(1));
    tracker.observe(("inbox", 1), 1, 1, t0);
    tracker.close_write(("inbox", 2), 1, 1, t0 + Duration::from_millis(300));
    // the daemon sleeps until this: the closed file must not wait the window
    assert_eq!(
        tracker.next_deadline(),
        Some(t0 + Duration::from_millis(300))
    );
    let ready = tracker.take_ready(t0 + Duration::from_millis(300));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].key, ("inbox", 2));
    assert_eq!(tracker.next_deadline(), Some(t0 + Duration::from_secs(1)));
}
