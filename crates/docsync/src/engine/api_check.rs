//! At start, before anything is asked or sent: the rows in the state database
//! must have been synced against the API configured now, or the user must say
//! what to do with them ([`ApiChange`]). Rows recorded as uploaded on one
//! server are not uploaded on another; keeping them silently would leave files
//! on the new API never sent.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{now_ms, ApiIdentity};
use crate::store::pg::{ApiCheck, PgStore};
use crate::store::{Store, SANDBOX_DIR};

/// What to do when the rows were synced against another API than the
/// configured one. Has no effect when the API is the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ApiChange {
    /// Do not run: [`Error::ApiChanged`].
    #[default]
    Refuse,
    /// Forget the rows (a backup of the database is kept next to it): every
    /// file in the folders is uploaded to the new API.
    StartOver,
    /// Record the new API and keep the rows as they are: files already synced
    /// are not sent again.
    KeepHistory,
}

/// Compare the recorded API with `config`'s, record it, and act on a change
/// as `choice` says.
pub(super) fn check_api(store: &mut Store, config: &Config, choice: ApiChange) -> Result<()> {
    let current = config.api_identity();
    let recorded = match store.api_identity()? {
        Some(recorded) => match current.merged_with(&recorded) {
            Some(merged) => {
                if merged != recorded {
                    store.set_api_identity(&merged)?;
                }
                return nothing_to_do(choice, &current);
            }
            None => Some(recorded),
        },
        // Not recorded: a new database, or one an older docsync wrote. Its rows
        // are taken to be this API's, unless the embedded sandbox (which older
        // versions started silently) ran with this state and this is not it.
        None if sandbox_ran_here(store, &config.state_dir)? && !current.is_sandbox() => None,
        None => {
            store.set_api_identity(&current)?;
            return nothing_to_do(choice, &current);
        }
    };
    let before = recorded
        .as_ref()
        .map_or_else(|| "an unrecorded API".to_owned(), ToString::to_string);
    match choice {
        ApiChange::Refuse => Err(Error::ApiChanged {
            db: store.path().to_owned(),
            recorded,
            current,
        }),
        ApiChange::KeepHistory => {
            let rows = store.file_count()?;
            store.set_api_identity(&current)?;
            warn!(
                rows,
                before = %before,
                now = %current,
                "--keep-history: the rows synced against the old API are kept as they are; files already synced are not sent to the new API"
            );
            Ok(())
        }
        ApiChange::StartOver => {
            let backup = backup_path(store.path());
            store.backup_to(&backup)?;
            let rows = store.start_over(&current)?;
            warn!(
                rows,
                before = %before,
                now = %current,
                backup = %backup.display(),
                "--start-over: the rows synced against the old API are forgotten (kept in the backup); every file in the folders is uploaded to the new API, except those already moved into approved/ or rejected/"
            );
            Ok(())
        }
    }
}

/// [`check_api`] for the state in PostgreSQL, shared by every daemon pointed
/// at it: they must all use the API its rows were synced against.
/// `--keep-history` records the new one (every daemon must then be moved to
/// it); `--start-over` is refused, as it would forget every daemon's rows.
pub(super) async fn check_shared_api(
    pg: &PgStore,
    config: &Config,
    choice: ApiChange,
) -> Result<()> {
    let current = config.api_identity();
    let keep = choice == ApiChange::KeepHistory;
    match pg.check_api(&current, keep).await? {
        ApiCheck::Same => nothing_to_do(choice, &current),
        ApiCheck::KeptHistory { recorded } => {
            warn!(
                before = %recorded,
                now = %current,
                "--keep-history: the shared rows synced against the old API are kept as they are; files already synced are not sent to the new API; point every daemon sharing this state at the new API"
            );
            Ok(())
        }
        ApiCheck::Changed { .. } if choice == ApiChange::StartOver => Err(Error::NotOnPostgres {
            what: START_OVER_SHARED,
        }),
        ApiCheck::Changed { recorded } => Err(Error::SharedApiChanged {
            target: pg.target().to_owned(),
            recorded: Box::new(recorded),
            current: Box::new(current),
        }),
    }
}

/// Why `--start-over` is refused with a shared state.
pub const START_OVER_SHARED: &str =
    "--start-over (it would forget every daemon's rows; use a new database, or --keep-history)";

/// `--start-over` or `--keep-history` given while the API did not change.
fn nothing_to_do(choice: ApiChange, current: &ApiIdentity) -> Result<()> {
    if choice != ApiChange::Refuse {
        info!(api = %current, "the rows were synced against the configured API: --start-over and --keep-history have nothing to do");
    }
    Ok(())
}

/// Whether the database has rows and the embedded sandbox kept its data in
/// `state_dir`.
fn sandbox_ran_here(store: &Store, state_dir: &Path) -> Result<bool> {
    Ok(state_dir.join(SANDBOX_DIR).is_dir() && store.file_count()? > 0)
}

/// `<db>.before-start-over-<unix ms>`, next to the database.
fn backup_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".before-start-over-{}", now_ms()));
    db.with_file_name(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::Env;
    use crate::engine::testkit::{fixture_with, ACCOUNT};
    use crate::model::{TargetKey, TargetKind};
    use crate::store::{Observed, DB_FILE};

    fn env() -> Env {
        Env::from_pairs([("DOCSYNC_PUBLIC_KEY", "pk"), ("DOCSYNC_SECRET_KEY", "sk")])
    }

    fn at(url: &str) -> String {
        format!("[api]\nurl = {url:?}")
    }

    /// A database in `config`'s state directory with `n` rows.
    fn store_with_rows(config: &Config, n: usize) -> Store {
        let mut store = Store::open_in_state_dir(&config.state_dir).unwrap();
        let seen: Vec<Observed> = (0..n)
            .map(|i| Observed {
                path: format!("f{i}.pdf").into_bytes(),
                size: 1,
                mtime_ns: 1,
                target: TargetKey {
                    kind: TargetKind::MoovFiles,
                    account: ACCOUNT.into(),
                    purpose: "business_verification".into(),
                },
            })
            .collect();
        store.observe_batch("inbox", &seen, false).unwrap();
        store
    }

    #[test]
    fn the_first_run_records_the_api_and_the_same_api_runs() {
        let (_dir, config) = fixture_with(&at("http://127.0.0.1:1/"), &env());
        let mut store = store_with_rows(&config, 2);
        check_api(&mut store, &config, ApiChange::Refuse).unwrap();
        assert_eq!(store.api_identity().unwrap(), Some(config.api_identity()));
        for choice in [
            ApiChange::Refuse,
            ApiChange::StartOver,
            ApiChange::KeepHistory,
        ] {
            check_api(&mut store, &config, choice).unwrap();
            assert_eq!(
                store.file_count().unwrap(),
                2,
                "{choice:?} changed the rows"
            );
        }
    }

    #[test]
    fn another_api_is_refused_until_told_what_to_do() {
        let (dir, sandboxed) = fixture_with("[api]\nsandbox = true", &Env::default());
        let mut store = store_with_rows(&sandboxed, 3);
        check_api(&mut store, &sandboxed, ApiChange::Refuse).unwrap();
        let mut real = sandboxed.clone();
        real.api.sandbox = false;
        real.api.url = Some("https://api.moov.io".into());

        let err = check_api(&mut store, &real, ApiChange::Refuse).unwrap_err();
        let Error::ApiChanged {
            db,
            recorded,
            current,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(db, &sandboxed.state_dir.join(DB_FILE));
        assert_eq!(recorded, &Some(ApiIdentity::Sandbox));
        assert_eq!(current, &real.api_identity());
        let text = err.to_string();
        for needle in [
            "embedded sandbox (not the real Moov API)",
            "https://api.moov.io",
            "--start-over",
            "--keep-history",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert_eq!(store.file_count().unwrap(), 3);
        assert_eq!(store.api_identity().unwrap(), Some(ApiIdentity::Sandbox));

        // --keep-history: the rows stay, the new API is recorded
        check_api(&mut store, &real, ApiChange::KeepHistory).unwrap();
        assert_eq!(store.file_count().unwrap(), 3);
        assert_eq!(store.api_identity().unwrap(), Some(real.api_identity()));

        // --start-over (back to the sandbox): a backup, then no rows
        check_api(&mut store, &sandboxed, ApiChange::StartOver).unwrap();
        assert_eq!(store.file_count().unwrap(), 0);
        assert_eq!(store.api_identity().unwrap(), Some(ApiIdentity::Sandbox));
        let backups: Vec<_> = std::fs::read_dir(&sandboxed.state_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".before-start-over-"))
            .collect();
        assert_eq!(backups.len(), 1, "{backups:?}");
        let old = Store::open_read_only(&backups[0]).unwrap();
        assert_eq!(old.file_count().unwrap(), 3);
        drop(dir);
    }

    /// A database an older docsync wrote has no API recorded. Its rows are
    /// taken as the configured API's, unless the embedded sandbox (which older
    /// versions started silently) ran with this state directory.
    #[test]
    fn an_unrecorded_api_after_the_embedded_sandbox_ran_is_refused() {
        let (_dir, config) = fixture_with(&at("https://api.moov.io"), &env());
        let mut store = store_with_rows(&config, 1);
        std::fs::create_dir_all(config.state_dir.join(SANDBOX_DIR)).unwrap();
        let err = check_api(&mut store, &config, ApiChange::Refuse).unwrap_err();
        assert!(
            matches!(err, Error::ApiChanged { recorded: None, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("embedded sandbox ran"), "{err}");
        assert_eq!(store.api_identity().unwrap(), None);
        check_api(&mut store, &config, ApiChange::KeepHistory).unwrap();
        assert_eq!(store.api_identity().unwrap(), Some(config.api_identity()));

        // without the sandbox's data: the rows are the configured API's
        let (_dir, config) = fixture_with(&at("https://api.moov.io"), &env());
        let mut store = store_with_rows(&config, 1);
        check_api(&mut store, &config, ApiChange::Refuse).unwrap();
        assert_eq!(store.api_identity().unwrap(), Some(config.api_identity()));
    }
}
