//! One [`Store`] shared between tasks: calls run on tokio's blocking pool, one
//! short section each, and [`SharedStore::call_grouped`] lets calls made meanwhile
//! share one commit.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::Store;
use crate::error::{Error, Result};

/// The one writer, shareable between tasks: a [`Store`] behind a mutex whose calls run
/// on tokio's blocking pool, one short section each.
#[derive(Debug, Clone)]
pub struct SharedStore {
    inner: Arc<Mutex<Store>>,
    grouped: Arc<Grouped>,
}

/// A call waiting for [`SharedStore::call_grouped`]'s next commit: it runs, and
/// returns what tells its caller the outcome once the commit is known.
type GroupedJob = Box<dyn FnOnce(&mut Store) -> GroupedReply + Send>;

/// Given the commit's failure (if it failed), answer the caller.
type GroupedReply = Box<dyn FnOnce(Option<&Error>) + Send>;

/// The calls waiting for a grouped commit, and whether a flush is on its way.
#[derive(Default)]
struct Grouped {
    queue: Mutex<(Vec<GroupedJob>, bool)>,
}

impl Grouped {
    /// The waiting calls (a panic elsewhere never leaves them unusable).
    fn waiting(&self) -> std::sync::MutexGuard<'_, (Vec<GroupedJob>, bool)> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouped").finish_non_exhaustive()
    }
}

impl SharedStore {
    pub fn new(store: Store) -> Self {
        SharedStore {
            inner: Arc::new(Mutex::new(store)),
            grouped: Arc::default(),
        }
    }

    /// [`SharedStore::call`] for calls that may share one commit with the
    /// calls made meanwhile (the upload intents of the files ready at once,
    /// and the outcomes after requests: `pending`, `retrying`, `failed`):
    /// every call waiting when the store is free runs, each atomic on its own,
    /// in one [`Store::batch`], and each caller learns its result only after
    /// that commit, synced (`synchronous = FULL`). So an intent's request is
    /// still sent only once its intent is on disk. One trip to the blocking
    /// pool and one fsync for all of them.
    pub async fn call_grouped<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<R>>();
        let job: GroupedJob = Box::new(move |store| {
            let result = f(store);
            Box::new(move |commit_failed: Option<&Error>| {
                let answer = match commit_failed {
                    Some(e) => Err(Error::Task {
                        what: "committing grouped store calls",
                        message: e.to_string(),
                    }),
                    None => result,
                };
                let _ = tx.send(answer);
            })
        });
        let start = {
            let mut queue = self.grouped.waiting();
            queue.0.push(job);
            !std::mem::replace(&mut queue.1, true)
        };
        if start {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.flush_grouped());
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::Task {
                what: "store call",
                message: "the grouped commit was abandoned (a call panicked)".into(),
            })
        })
    }

    /// Run the waiting grouped calls, one commit per round, until none is left.
    fn flush_grouped(&self) {
        loop {
            let jobs = {
                let mut queue = self.grouped.waiting();
                if queue.0.is_empty() {
                    queue.1 = false;
                    return;
                }
                std::mem::take(&mut queue.0)
            };
            let mut replies = Vec::with_capacity(jobs.len());
            let committed = self.call_blocking(|s| {
                s.batch(|s| {
                    for job in jobs {
                        // a panicking call is rolled back alone (its savepoint)
                        // and its caller told so; the others still commit
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(s)));
                        replies.extend(ran.ok());
                    }
                    Ok(())
                })
            });
            let failed = committed.err();
            for reply in replies {
                reply(failed.as_ref());
            }
        }
    }

    /// Run `f` with exclusive access to the store on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || this.call_blocking(f)).await;
        match joined {
            Ok(result) => result,
            Err(e) => Err(Error::Task {
                what: "store call",
                message: e.to_string(),
            }),
        }
    }

    /// [`SharedStore::call`] with commits not synced to disk ([`Store::relaxed`]):
    /// for the intake's writes, which the next scan sees again.
    pub async fn call_relaxed<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.call(move |s| s.relaxed(f)).await
    }

    /// Run `f` with exclusive access to the store on this thread, which must be
    /// one that may block (a `spawn_blocking` closure, never an async task): for
    /// work that is blocking already, such as the uploader's hash followed by
    /// its record, so the two cost one trip to the blocking pool.
    pub fn call_blocking<R>(&self, f: impl FnOnce(&mut Store) -> Result<R>) -> Result<R> {
        // a panic inside a closure rolled its transaction back; the store is usable
        let mut store = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store.recover_open_transaction();
        f(&mut store)
    }
}
