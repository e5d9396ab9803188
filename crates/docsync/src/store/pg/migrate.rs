//! The PostgreSQL schema's versioned migrations (`migrations/pg/NNNN_*.sql`),
//! applied at connect: one transaction, serialised between daemons by a
//! transaction-scoped advisory lock, each applied version recorded in
//! `schema_migrations`. Two daemons starting together: the second waits for the
//! lock, then finds everything applied.

use super::{PgError, PgResult, PgStore};

/// The migrations, in order: (version, name, SQL). Append only.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/pg/0001_init.sql"),
    ),
    (
        2,
        "0002_api_identity",
        include_str!("../../../migrations/pg/0002_api_identity.sql"),
    ),
    (
        3,
        "0003_skipped_state",
        include_str!("../../../migrations/pg/0003_skipped_state.sql"),
    ),
    (
        4,
        "0004_hook_outbox",
        include_str!("../../../migrations/pg/0004_hook_outbox.sql"),
    ),
    (
        5,
        "0005_durability_marks",
        include_str!("../../../migrations/pg/0005_durability_marks.sql"),
    ),
];

/// The schema version this binary writes.
pub const PG_SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key of migrations ("docsync" in ASCII): advisory locks are
/// per database, so this serialises only docsync's migrations.
const MIGRATION_LOCK: i64 = 0x0064_6f63_7379_6e63;

impl PgStore {
    /// Apply the migrations not yet applied, in one transaction.
    pub(super) async fn migrate(&self) -> PgResult<()> {
        let what = "migrating the schema";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(self.db("taking the migration lock"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER     PRIMARY KEY,
                 name       TEXT        NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(self.db("creating schema_migrations"))?;
        let applied: Vec<i32> = tx
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(self.db("reading schema_migrations"))?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(self.db("reading schema_migrations"))?;
        if let Some(&found) = applied.iter().max() {
            if found > PG_SCHEMA_VERSION {
                return Err(PgError::SchemaTooNew {
                    target: self.target.clone(),
                    found,
                    known: PG_SCHEMA_VERSION,
                });
            }
        }
        for &(version, name, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            let failed = |source| PgError::Migration {
                target: self.target.clone(),
                name,
                source,
            };
            tx.batch_execute(sql).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit()
            .await
            .map_err(self.db("committing migrations"))?;
        Ok(())
    }

    /// The highest applied schema version, `None` when the database has no
    /// `schema_migrations` table (no daemon has connected to it yet).
    pub(super) async fn schema_version_if_any(&self) -> PgResult<Option<i32>> {
        let what = "reading the schema version";
        let client = self.client(what).await?;
        let row = client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(self.db(what))?;
        let exists: bool = row.try_get(0).map_err(self.db(what))?;
        if !exists {
            return Ok(None);
        }
        drop(client);
        self.schema_version().await.map(Some)
    }

    /// The highest applied schema version (what `schema_migrations` says).
    pub async fn schema_version(&self) -> PgResult<i32> {
        let what = "reading the schema version";
        let row = self
            .client(what)
            .await?
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(self.db(what))?;
        row.try_get(0).map_err(self.db(what))
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_are_one_to_n_and_match_their_file_names() {
        for (i, (version, name, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(*version).ok(), Some(i + 1));
            assert!(name.starts_with(&format!("{version:04}_")), "{name}");
            assert!(!sql.trim().is_empty());
        }
    }

    /// The last migration that sets `files_state_check` lists every state the
    /// daemon writes, so no state is refused by the database.
    #[test]
    fn the_state_check_admits_every_state() {
        let (_, name, sql) = MIGRATIONS
            .iter()
            .rev()
            .find(|(_, _, sql)| sql.contains("files_state_check CHECK"))
            .expect("a migration sets the state check");
        for state in crate::model::State::ALL {
            assert!(
                sql.contains(&format!("'{}'", state.as_str())),
                "{name} refuses the state {state}"
            );
        }
    }

    /// The outbox trigger fires for exactly the states hooks hear about.
    #[test]
    fn the_outbox_trigger_fires_for_the_decision_states() {
        let (_, name, sql) = MIGRATIONS
            .iter()
            .rev()
            .find(|(_, _, sql)| sql.contains("CREATE TRIGGER docsync_hook_outbox"))
            .expect("a migration creates the outbox trigger");
        let states = sql
            .split("NEW.to_state IN (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .expect("the trigger's states");
        let listed: Vec<&str> = states
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        let decisions: Vec<&str> = crate::model::DECISION_STATES
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(listed, decisions, "{name}");
    }
}
