//! `docsync baseline [FOLDER]`: record what the folders hold now as `skipped`
//! (already handled: not sent), so that `run` uploads only what is added
//! afterwards. Nothing is read or sent; the API is not contacted.

use anyhow::{bail, Context};
use docsync::config::Config;
use docsync::engine::baseline::{baseline as record, folder_files, BaselineCount, BASELINE_REASON};
use docsync::model::{text, Folder};
use docsync::store::pg::PgStore;
use docsync::store::{InstanceLock, Store};

use super::{setup, BaselineArgs, EXIT_OK, EXIT_PROBLEMS};

/// Exit 0 when every folder was recorded, 1 when part of one could not be read
/// (its files there are not recorded), 2 on a setup error (a daemon running
/// on the same SQLite state).
pub async fn baseline(args: BaselineArgs) -> anyhow::Result<u8> {
    // With a configuration, FOLDER picks one of its folders; without one, it is
    // the folder of the zero-config layout (as `docsync run FOLDER`).
    let configured = setup::config_file(&args.api.config)?.is_some();
    let config = if configured {
        setup::load(&args.api, None)?
    } else {
        setup::load(&args.api, args.folder.as_deref())?
    };
    let mut folders = config.folders.clone();
    if let (true, Some(only)) = (configured, &args.folder) {
        let only = setup::absolute(only)?;
        folders.retain(|f| f.path == only);
        if folders.is_empty() {
            let known: Vec<_> = config
                .folders
                .iter()
                .map(|f| text::escape_str(&f.key()).into_owned())
                .collect();
            bail!(
                "{} is not a folder of the configuration; give one of: {}",
                text::escape_path(&only),
                known.join(", ")
            );
        }
    }
    let counts = match &config.state.url {
        Some(url) => record_shared(url.expose(), &folders).await?,
        None => record_local(&config, &folders)?,
    };
    let mut code = EXIT_OK;
    for count in &counts {
        outln!("{}", line(count));
        for error in &count.errors {
            code = EXIT_PROBLEMS;
            eprintln!(
                "docsync: {}: {} (its files there are not recorded; run baseline again once it can be read)",
                text::escape_str(&count.folder),
                text::escape_str(error)
            );
        }
    }
    let total: usize = counts.iter().map(|c| c.skipped).sum();
    outln!(
        "baseline: {total} file{} recorded skipped (not sent); files added from now on are uploaded",
        if total == 1 { "" } else { "s" }
    );
    Ok(code)
}

/// `folder /srv/inbox: 120 files, 118 recorded skipped, 2 already known`.
fn line(c: &BaselineCount) -> String {
    let folder = text::escape_str(&c.folder);
    if !c.exists {
        return format!("folder {folder}: does not exist; nothing recorded");
    }
    format!(
        "folder {folder}: {} files, {} recorded skipped, {} already known",
        c.found,
        c.skipped,
        c.found - c.skipped
    )
}

/// The baseline in the state directory's SQLite database, under its lock.
fn record_local(config: &Config, folders: &[Folder]) -> anyhow::Result<Vec<BaselineCount>> {
    // rows are written: never while a daemon runs on the same state
    let lock = InstanceLock::acquire(&config.state_dir).with_context(|| {
        "docsync baseline records files in the state database: stop the running docsync first, \
         then run it again"
    })?;
    let clean = lock.last_stop_was_clean();
    let db = config.state_dir.join(docsync::store::DB_FILE);
    let mut store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let counts = record(&mut store, folders)
        .with_context(|| format!("recording the baseline in {}", db.display()))?;
    drop(store);
    if clean {
        // the lock says what it said before: a clean stop (a pid left by an
        // unclean one stays for the next run to see)
        lock.stopped_cleanly()
            .context("releasing the state directory's lock")?;
    }
    Ok(counts)
}

/// The baseline in the PostgreSQL state daemons share (`state.url`): daemons
/// may run meanwhile (a file one of them recorded first keeps its row). The
/// command is recorded as an instance, so `history` says who skipped what.
async fn record_shared(url: &str, folders: &[Folder]) -> anyhow::Result<Vec<BaselineCount>> {
    let host = docsync::model::host_name().unwrap_or_else(|| "localhost".to_owned());
    let pg = PgStore::connect(url, &format!("{host}: docsync baseline"))
        .await
        .context("opening the PostgreSQL state (state.url)")?;
    let mut counts = Vec::with_capacity(folders.len());
    for folder in folders {
        let (mut count, observed) = folder_files(folder)
            .with_context(|| format!("reading {}", text::escape_path(&folder.path)))?;
        if count.exists {
            count.skipped = pg
                .record_skipped(&count.folder, &observed, BASELINE_REASON)
                .await
                .with_context(|| format!("recording the baseline in {}", pg.target()))?;
        }
        counts.push(count);
    }
    Ok(counts)
}
