use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::Env;
use crate::model::MaxAge;
use crate::store::Change;

const DIR: &str = "00000000-0000-4000-8000-00000000acc0/business_verification";

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: Config,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir_all(root.join(DIR)).unwrap();
    let mut config = Config::zero_config(&root, &Env::default()).unwrap();
    // every file written before the plan has held still long enough
    config.quiet_window = Duration::ZERO;
    Fx {
        _dir: dir,
        root,
        config,
    }
}

impl Fx {
    fn write(&self, rel: &str, bytes: &[u8]) {
        std::fs::write(self.root.join(rel), bytes).unwrap();
    }
}

fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {tag}\n%%EOF\n").into_bytes()
}

fn by_path(planned: &[Planned]) -> std::collections::BTreeMap<String, (Verdict, String)> {
    planned
        .iter()
        .map(|p| {
            (
                String::from_utf8_lossy(&p.path).into_owned(),
                (p.verdict, p.reason.clone()),
            )
        })
        .collect()
}

#[test]
fn every_file_gets_the_daemons_verdict() {
    let mut fx = fx();
    fx.config.folders[0].max_age = Some(MaxAge::parse("30d").unwrap());
    fx.write(&format!("{DIR}/a.pdf"), &pdf("a"));
    fx.write(&format!("{DIR}/copy-of-a.pdf"), &pdf("a"));
    fx.write(
        &format!("{DIR}/program.pdf"),
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
    );
    fx.write("stray.pdf", &pdf("stray"));
    fx.write(&format!("{DIR}/old.pdf"), &pdf("old"));
    crate::engine::baseline::tests::age(&fx.root.join(format!("{DIR}/old.pdf")), 40);

    let mut store = Store::open_in_memory().unwrap();
    let planned = plan(&mut store, &fx.config, ApiChange::Refuse).unwrap();
    let got = by_path(&planned);
    assert_eq!(got.len(), 5, "{got:#?}");
    let a = &got[&format!("{DIR}/a.pdf")];
    assert_eq!(a.0, Verdict::Upload, "{a:?}");
    assert!(a.1.starts_with("pdf to moov-files 00000000-"), "{a:?}");
    let copy = &got[&format!("{DIR}/copy-of-a.pdf")];
    assert_eq!(copy.0, Verdict::Skip, "{copy:?}");
    assert!(
        copy.1
            .starts_with("duplicate: same content already uploaded as"),
        "{copy:?}"
    );
    let program = &got[&format!("{DIR}/program.pdf")];
    assert_eq!(program.0, Verdict::Refuse, "{program:?}");
    assert!(program.1.starts_with("invalid: "), "{program:?}");
    assert_eq!(got["stray.pdf"].0, Verdict::Refuse);
    let old = &got[&format!("{DIR}/old.pdf")];
    assert_eq!(old.0, Verdict::Skip);
    assert!(
        old.1.starts_with("skipped: older than max_age 30d"),
        "{old:?}"
    );
    // hashed files carry their hash; skipped ones were never read
    let sha = |rel: &str| {
        planned
            .iter()
            .find(|p| p.path == rel.as_bytes())
            .and_then(|p| p.sha256.clone())
    };
    assert!(sha(&format!("{DIR}/a.pdf")).is_some());
    assert_eq!(sha(&format!("{DIR}/old.pdf")), None);
}

#[test]
fn recorded_rows_and_files_being_written() {
    let mut fx = fx();
    fx.write(&format!("{DIR}/done.pdf"), &pdf("done"));
    let mut store = Store::open_in_memory().unwrap();
    plan(&mut store, &fx.config, ApiChange::Refuse).unwrap();
    // as if a run had sent it: pending on the server
    let key = fx.config.folders[0].key();
    let row = store
        .find_live(&key, format!("{DIR}/done.pdf").as_bytes())
        .unwrap()
        .unwrap();
    let change = Change {
        remote_id: Some("r-1".into()),
        ..Change::because("sent")
    };
    store
        .transition(row.id, State::Uploading, State::Pending, &change)
        .unwrap();
    fx.write(&format!("{DIR}/new.pdf"), &pdf("new"));
    fx.config.quiet_window = Duration::from_secs(3600);
    let got = by_path(&plan(&mut store, &fx.config, ApiChange::Refuse).unwrap());
    assert_eq!(
        got[&format!("{DIR}/done.pdf")],
        (
            Verdict::Skip,
            "already uploaded (pending, remote id r-1)".to_owned()
        )
    );
    assert_eq!(got[&format!("{DIR}/new.pdf")].0, Verdict::Wait);
}

#[test]
fn another_api_is_refused_as_a_run_refuses_it_unless_told() {
    let fx = fx();
    fx.write(&format!("{DIR}/a.pdf"), &pdf("a"));
    let mut store = Store::open_in_memory().unwrap();
    store
        .set_api_identity(&crate::model::ApiIdentity::Remote {
            moov: Some("https://elsewhere.example".into()),
            attachments: None,
        })
        .unwrap();
    let err = plan(&mut store, &fx.config, ApiChange::Refuse).unwrap_err();
    assert!(matches!(err, Error::ApiChanged { .. }), "{err}");
    let planned = plan(&mut store, &fx.config, ApiChange::StartOver).unwrap();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].verdict, Verdict::Upload);
}
