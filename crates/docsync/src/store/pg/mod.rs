//! The state store in PostgreSQL, for several daemons (any hosts) sharing one
//! state (issue 16), selected by `state.url`. The engine reaches it through
//! [`PgInstance`] behind [`super::StateStore`], the interface SQLite's store
//! sits behind too (see ARCHITECTURE.md, "PostgreSQL state").
//!
//! # Driver
//!
//! tokio-postgres with deadpool-postgres: async on the tokio runtime the daemon
//! already runs (no blocking pool, unlike rusqlite behind `SharedStore`), no
//! database needed at compile time (sqlx's checked macros want one, or a
//! prepared offline cache kept in step), few dependencies, pure Rust, and
//! maintained with the protocol crates every Rust PostgreSQL stack uses.
//! deadpool gives the pool: a bounded number of connections, a wait and a
//! connect timeout so a database that went away is an error to retry, not a
//! hang; each connection keeps its prepared statements (`prepare_cached`).
//! TLS is not set up yet (`NoTls`: a Unix socket or a trusted network).
//!
//! # Leases
//!
//! Several instances claim work from the same rows. A row an instance works on
//! carries `lease_owner` (its instance id, a row of `instances`) and
//! `lease_expires_at`, from the database's clock only. [`PgStore::claim_uploads`]
//! takes `stable` and due `retrying` rows whose lease is free or expired with
//! `SELECT … FOR UPDATE SKIP LOCKED`, so two instances claiming at once never get
//! the same row. [`PgStore::begin_upload`] commits the intent (`uploading`) only
//! while this instance holds an unexpired lease, under a per-account advisory
//! lock so the duplicate and quota checks count every host's rows. A row left
//! `uploading` by an instance whose lease expired is taken over with
//! [`PgStore::take_over_expired`], which hands it out as an [`Orphan`]: asked
//! about on the server before anything is sent (nothing here can send an
//! `uploading` row again: `begin_upload` takes only `stable` or `retrying`).
//! [`PgStore::claim_poll_account`] gives one instance an account's polling.
//!
//! # Layout
//!
//! - `error`: [`PgError`].
//! - `migrate`: the versioned files of `migrations/pg/`, applied at connect.
//! - `rows`: the row type read back, the transition written with its event.
//! - `observe`: recording what a folder scan saw (SQLite's reconciliation).
//! - `lease`: claims, renewals, takeovers, poll leases.
//! - `instance`: [`PgInstance`], the store as one daemon's engine uses it
//!   (leases renewed, requests fenced by their lease).
//! - `upload`: the intent, under the lease and the account's lock.
//! - `outbox`: the decision hooks' outbox: subscriptions, claims, deliveries.
//! - `outcome`: the server's answer, a failed attempt, a poll's news, a move.
//! - `identity`: which API the shared rows were synced against, checked at
//!   start.
//! - `reads`: what the stages read (counts, rows of a state, pending rows).
//! - `overview`: what people read (`status`, `history`, the status page, who
//!   holds what) and `retry`.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use super::{Change, FileRow, State};

mod error;
mod identity;
mod instance;
mod lease;
mod migrate;
mod observe;
mod outbox;
mod outcome;
mod overview;
mod reads;
mod rows;
mod upload;

pub use error::{PgError, PgResult};
pub use identity::ApiCheck;
pub use instance::PgInstance;
pub use lease::{Lease, LeasedRow, Orphan, PollClaim};
pub use migrate::PG_SCHEMA_VERSION;

/// Connections one store keeps at most (the daemon's stages share them).
const POOL_SIZE: usize = 8;
/// How long a caller waits for a free connection, and for a new one.
const POOL_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The state store in PostgreSQL, as one instance (one daemon) uses it. Cheap
/// to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// What the pool connects with (for [`PgStore::take_instance`]'s own
    /// session); holds the password: never shown.
    config: tokio_postgres::Config,
    instance: String,
    /// user@host/database, for messages: never the password.
    target: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the pool holds the configuration, password included: never shown
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The session setting every connection of the store starts with: a commit
/// is answered only once its WAL is flushed (PostgreSQL's default, which a
/// server may have turned off; then a crash takes back answered commits).
const DURABLE_COMMITS: &str = "-c synchronous_commit=on";

impl PgStore {
    /// Connect to `url` (`postgres://…` or libpq key=value pairs) as instance
    /// `instance_id` (unique per daemon: it names the daemon's leases), apply
    /// the migrations this binary knows (one transaction, under an advisory
    /// lock: daemons starting together do not race), and record the instance.
    pub async fn connect(url: &str, instance_id: &str) -> PgResult<PgStore> {
        let store = PgStore::open(url, instance_id)?;
        store.migrate().await?;
        store.register().await?;
        Ok(store)
    }

    /// Connect to `url` for the commands people run against the state
    /// (`status`, `history`, `retry`) as `who`: nothing is migrated and no
    /// instance recorded (a write records `who` first, see
    /// [`PgStore::register`]). `None` when the database holds no docsync
    /// state yet (no daemon has connected to it).
    pub async fn connect_viewer(url: &str, who: &str) -> PgResult<Option<PgStore>> {
        let store = PgStore::open(url, who)?;
        let found = store.schema_version_if_any().await?;
        match found {
            None | Some(0) => Ok(None),
            Some(found) if found > PG_SCHEMA_VERSION => Err(PgError::SchemaTooNew {
                target: store.target.clone(),
                found,
                known: PG_SCHEMA_VERSION,
            }),
            Some(_) => Ok(Some(store)),
        }
    }

    /// The pool for `url`, as instance `instance_id`; no connection made yet.
    fn open(url: &str, instance_id: &str) -> PgResult<PgStore> {
        let bad_id = instance_id.is_empty()
            || instance_id.chars().count() > 200
            || instance_id.chars().any(char::is_control);
        if bad_id {
            return Err(PgError::BadInstanceId(instance_id.to_owned()));
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|source| PgError::BadUrl { source })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("docsync {instance_id}"));
        }
        // An intent is committed before its request is sent: a commit must
        // be durable when it is answered, whatever the server's default
        // (a later `-c` wins over the URL's own options).
        let options = match config.get_options() {
            Some(theirs) => format!("{theirs} {DURABLE_COMMITS}"),
            None => DURABLE_COMMITS.to_owned(),
        };
        config.options(options);
        let target = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| PgError::Setup {
                target: target.clone(),
                message: e.to_string(),
            })?;
        Ok(PgStore {
            pool,
            config,
            instance: instance_id.to_owned(),
            target,
        })
    }

    /// This instance's id (what its leases and events carry).
    pub fn instance_id(&self) -> &str {
        &self.instance
    }

    /// user@host/database: what messages name (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A connection from the pool.
    async fn client(&self, what: &'static str) -> PgResult<Object> {
        self.pool.get().await.map_err(|source| PgError::Pool {
            target: self.target.clone(),
            what,
            source,
        })
    }

    /// A `map_err` argument: a [`PgError::Db`] while doing `what`.
    fn db(&self, what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let target = self.target.clone();
        move |source| PgError::Db {
            target,
            what,
            source,
        }
    }

    /// Record this instance (a restart with the same id takes its row over).
    pub async fn register(&self) -> PgResult<()> {
        let hostname = crate::model::host_name().unwrap_or_default();
        let pid = i32::try_from(std::process::id()).ok();
        self.client("registering the instance")
            .await?
            .execute(
                "INSERT INTO instances (id, hostname, pid) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, \
                 started_at = now(), last_seen_at = now()",
                &[&self.instance, &hostname, &pid],
            )
            .await
            .map_err(self.db("registering the instance"))?;
        Ok(())
    }

    /// Run as this instance: hold its session lock (a second daemon started
    /// with the same instance id is refused while this one lives), and give
    /// back the claims a previous run under this id left (rows claimed but not
    /// started; its `uploading` rows stay leased to it, for its settle stage
    /// to ask the server about at once). The lock lives as long as the guard
    /// and its connection.
    pub async fn take_instance(&self) -> PgResult<InstanceGuard> {
        let what = "taking the instance lock";
        let (client, connection) = self.config.connect(NoTls).await.map_err(self.db(what))?;
        let task = tokio::spawn(async move {
            // ends when the guard drops the client (or the server goes away)
            let _ = connection.await;
        });
        let guard = InstanceGuard {
            _client: client,
            task,
        };
        let row = guard
            ._client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('docsync instance ' || $1, 0))",
                &[&self.instance],
            )
            .await
            .map_err(self.db(what))?;
        let locked: bool = row.try_get(0).map_err(self.db(what))?;
        if !locked {
            return Err(PgError::InstanceTaken {
                target: self.target.clone(),
                instance: self.instance.clone(),
            });
        }
        self.client(what)
            .await?
            .execute(
                "UPDATE files SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE lease_owner = $1 AND state <> 'uploading'",
                &[&self.instance],
            )
            .await
            .map_err(self.db(what))?;
        Ok(guard)
    }

    /// One row by id, with its lease.
    pub async fn get(&self, id: i64) -> PgResult<Option<LeasedRow>> {
        let client = self.client("reading a file").await?;
        let sql = format!("SELECT {} FROM files WHERE id = $1", rows::columns(""));
        let stmt = client
            .prepare_cached(&sql)
            .await
            .map_err(self.db("reading a file"))?;
        let row = client
            .query_opt(&stmt, &[&id])
            .await
            .map_err(self.db("reading a file"))?;
        row.map(|r| rows::read(&self.target, &r)).transpose()
    }

    /// Move row `id` from `expected` to `to`, with its event, in one transaction.
    /// Refused while another instance holds an unexpired lease on the row, and
    /// for a row in `uploading` unless this instance holds its lease (the
    /// sender, or the instance that took it over to reconcile it). Never into
    /// `uploading`: that is [`PgStore::begin_upload`]. The lease is released.
    pub async fn transition(
        &self,
        id: i64,
        expected: State,
        to: State,
        change: &Change,
    ) -> PgResult<FileRow> {
        if to == State::Uploading {
            return Err(PgError::NotAnIntent { id });
        }
        let what = "recording a transition";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let leased = rows::lock_row(&tx, &self.target, id).await?;
        rows::expect_state(&leased.row, expected)?;
        let must_hold = leased.row.state == State::Uploading;
        rows::check_lease(&leased, &self.instance, must_hold)?;
        let new = rows::apply(&tx, &self.target, &self.instance, &leased.row, to, change).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(new)
    }
}

/// The session that holds an instance's lock ([`PgStore::take_instance`]):
/// dropped, the connection closes and the lock is released.
pub struct InstanceGuard {
    _client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for InstanceGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceGuard").finish_non_exhaustive()
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// user@host:port/database for messages, from a parsed configuration: never the
/// password, whatever form the URL had.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) => dir.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "(default host)".to_owned()
    } else {
        hosts.join(",")
    };
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("{user}@{hosts}/{db}")
}
