//! What the engine's stage tests share: a folder and a store in a temporary
//! directory, and (for the stages that talk to the server) an in-process
//! sandbox on 127.0.0.1:0 with a [`Ctx`] pointed at it. No daemon is started:
//! each test drives one stage's functions directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use docsync_sandbox::{DecisionRule, Sandbox, SandboxConfig, SandboxHandle};

use super::ctx::Ctx;
use super::intake::reconcile_folder;
use super::upload::intent::{commit_intent, Prepared};
use crate::config::{parse, Env};
use crate::local::check::{check_file, Seen};
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::{scan_folder, FileStat};
use crate::local::stability::StabilityTracker;
use crate::model::Folder;
use crate::store::{FileRow, SharedStore, StateStore, Store};

/// The account every fixture folder uploads to (Moov's account IDs are UUIDs).
pub const ACCOUNT: &str = "00000000-0000-4000-8000-00000000acc0";

/// [`super::upload::process`] for one row, the only one in hand.
pub async fn process(ctx: &Ctx, row: FileRow) -> crate::error::Result<super::upload::Processed> {
    let in_hand = std::sync::Arc::new(tokio::sync::Semaphore::new(1))
        .acquire_owned()
        .await
        .expect("a fresh semaphore has a permit");
    super::upload::process(ctx, row, in_hand).await
}

/// A folder and a store, no server.
pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub folder: Folder,
    pub store: Store,
}

/// A moov-files folder `inbox` with `extra` configuration lines.
pub fn fixture_with(extra: &str, env: &Env) -> (tempfile::TempDir, crate::config::Config) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir(&root).unwrap();
    let text = format!(
        "state_dir = {:?}\n{extra}\n[[folder]]\npath = {:?}\ntarget = {{ kind = \"moov-files\", account_id = \"{ACCOUNT}\", file_purpose = \"business_verification\" }}\n",
        dir.path().join("state"),
        root
    );
    let config = parse(&text, None, env).unwrap();
    (dir, config)
}

pub fn fixture() -> Fixture {
    let (dir, config) = fixture_with("[api]\nsandbox = true", &Env::default());
    Fixture {
        root: config.folders[0].path.clone(),
        folder: config.folders[0].clone(),
        store: Store::open_in_memory().unwrap(),
        _dir: dir,
    }
}

impl Fixture {
    /// Scan, then let the tracker call every file stable (as if the window passed).
    pub fn scan_and_settle(&mut self) -> Vec<FileRow> {
        let scan = scan_folder(&self.root, &IgnoreSet::for_folder(&self.folder).unwrap()).unwrap();
        reconcile_folder(&mut self.store, &self.folder, &scan).unwrap();
        let mut tracker = StabilityTracker::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for f in &scan.files {
            tracker.observe(f.rel_bytes(), f.stat.size, f.stat.mtime_ns, t0);
        }
        let mut out = Vec::new();
        for ready in tracker.take_ready(t0 + Duration::from_secs(1)) {
            if let Some(row) = self
                .store
                .promote_stable(
                    &self.folder.key(),
                    &ready.key,
                    ready.size,
                    ready.mtime_ns,
                    "quiet for 1s",
                )
                .unwrap()
            {
                out.push(row);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// The local check and the intent, as the upload stage runs them.
    pub fn prepare(&mut self, row: &FileRow) -> Prepared {
        let seen = Seen {
            rel: &row.path,
            size: row.size,
            mtime_ns: row.mtime_ns,
        };
        let checked = check_file(&self.folder, seen).unwrap();
        let path = self.folder.file_path(&row.path);
        commit_intent(&mut self.store, row, checked, &path).unwrap()
    }
}

/// A folder, a store and a sandbox, with the [`Ctx`] the stages run with.
pub struct Stage {
    pub _dir: tempfile::TempDir,
    pub sandbox: SandboxHandle,
    pub ctx: Ctx,
    pub folder: Folder,
    /// The store's database file (a second connection may read it).
    pub db: PathBuf,
}

/// A stage fixture whose sandbox decides after `delay`.
pub async fn stage(delay: Duration) -> Stage {
    let sandbox = Sandbox::start(SandboxConfig {
        decision: DecisionRule {
            delay,
            ..DecisionRule::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let url = sandbox.url().to_owned();
    stage_at(sandbox, &url)
}

/// A stage fixture whose API is at `url` (the sandbox still runs, for its
/// credentials and to stop with the fixture).
pub fn stage_at(sandbox: SandboxHandle, url: &str) -> Stage {
    let creds = sandbox.credentials().clone();
    let env = Env::from_pairs([
        ("DOCSYNC_PUBLIC_KEY", creds.public_key.as_str()),
        ("DOCSYNC_SECRET_KEY", creds.secret_key.as_str()),
    ]);
    let (dir, config) = fixture_with(&format!("[api]\nurl = {url:?}"), &env);
    let apis = crate::remote::connect::apis(&config).unwrap();
    let db = dir.path().join("state.db");
    let store = StateStore::sqlite(SharedStore::new(Store::open(&db).unwrap()));
    let ctx = Ctx::new(store, apis, &config.folders).with_retry_initial(Duration::from_millis(10));
    Stage {
        _dir: dir,
        sandbox,
        folder: config.folders[0].clone(),
        ctx,
        db,
    }
}

impl Stage {
    /// Write `name` into the folder and bring its row to `stable`, as the
    /// intake does once the file held still.
    pub async fn stable_file(&self, name: &str, bytes: &[u8]) -> FileRow {
        std::fs::write(self.folder.path.join(name), bytes).unwrap();
        let folder = self.folder.clone();
        let name = name.to_owned();
        self.ctx
            .store
            .call(move |s| {
                let scan = scan_folder(&folder.path, &IgnoreSet::for_folder(&folder)?)?;
                reconcile_folder(s, &folder, &scan)?;
                let row = s.find_live(&folder.key(), name.as_bytes())?.unwrap();
                Ok(
                    s.promote_stable(&folder.key(), &row.path, row.size, row.mtime_ns, "test")?
                        .unwrap(),
                )
            })
            .await
            .unwrap()
    }

    /// A file whose upload reached the server but whose answer was never
    /// recorded (a crash or a timeout right after the request): its row is
    /// `uploading`, with the intent committed.
    pub async fn sent_but_unrecorded(&self, name: &str, bytes: &[u8]) -> FileRow {
        let row = self.stable_file(name, bytes).await;
        let folder = self.folder.clone();
        let prepared = self
            .ctx
            .store
            .call(move |s| {
                let seen = Seen {
                    rel: &row.path,
                    size: row.size,
                    mtime_ns: row.mtime_ns,
                };
                let checked = check_file(&folder, seen)?;
                commit_intent(s, &row, checked, &folder.file_path(&row.path))
            })
            .await
            .unwrap();
        let Prepared::Upload(ready) = prepared else {
            panic!("not ready to send: {prepared:?}")
        };
        let path = self.folder.file_path(&ready.row.path);
        let target = self.folder.target_for(std::path::Path::new(name)).unwrap();
        let upload = crate::remote::Upload {
            path: &path,
            content: None,
            remote_name: &ready.plan.file_name,
            size: ready.row.size,
            sha256: ready.row.sha256.as_deref().unwrap(),
            content_type: ready.plan.content_type,
        };
        self.ctx.apis.upload(&target, &upload).await.unwrap();
        ready.row
    }

    /// Put `name` into the folder and upload it straight to the server, with
    /// its marker, and nothing recorded: what a lost intent leaves behind.
    pub async fn uploaded_behind_the_store(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.folder.path.join(name), bytes).unwrap();
        let seen = Seen {
            rel: name.as_bytes(),
            size: bytes.len() as u64,
            mtime_ns: FileStat::of_path(&self.folder.path.join(name))
                .unwrap()
                .mtime_ns,
        };
        let crate::local::check::Checked::Ready { hashed, plan } =
            check_file(&self.folder, seen).unwrap()
        else {
            panic!("not ready to send")
        };
        let path = self.folder.path.join(name);
        let target = self.folder.target_for(std::path::Path::new(name)).unwrap();
        let upload = crate::remote::Upload {
            path: &path,
            content: None,
            remote_name: &plan.file_name,
            size: hashed.size,
            sha256: &hashed.sha256,
            content_type: plan.content_type,
        };
        self.ctx.apis.upload(&target, &upload).await.unwrap();
    }

    /// The row with this id, as the store has it now.
    pub async fn row(&self, id: i64) -> FileRow {
        self.ctx
            .store
            .call(move |s| s.get(id))
            .await
            .unwrap()
            .unwrap()
    }
}
