//! Telling the other catalog nodes on one PostgreSQL database that the
//! view changed: `NOTIFY` in the writing transaction, `LISTEN` through
//! sqlx's `PgListener` on each node. SQLite has one process per file, which
//! tells itself in process, so both are no-ops there.

use sqlx::postgres::{PgListener, PgPool};

use crate::StoreError;

/// The channel of view changes; the payload is the repository whose rows
/// changed, or `*` for all of them.
pub const VIEW_CHANNEL: &str = "rbee_catalog_view";

/// What a listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewChange {
    /// The rows of this repository changed.
    Repository(String),
    /// Anything may have changed: a rebuild (`*`), or the connection was
    /// lost and notifications sent meanwhile were missed (the listener
    /// reconnects on the next call).
    Everything,
}

/// A `LISTEN` on [`VIEW_CHANNEL`], on a connection of its own.
#[derive(Debug)]
pub struct ViewListener {
    listener: PgListener,
}

impl ViewListener {
    pub(crate) async fn connect(pool: &PgPool) -> Result<ViewListener, StoreError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(VIEW_CHANNEL).await?;
        Ok(ViewListener { listener })
    }

    /// The next change. Reconnects after a lost connection (and reports
    /// [`ViewChange::Everything`] for what may have been missed); an error
    /// means the server could not be reached this time.
    pub async fn next(&mut self) -> Result<ViewChange, StoreError> {
        Ok(match self.listener.try_recv().await? {
            Some(n) if n.payload() == "*" => ViewChange::Everything,
            Some(n) => ViewChange::Repository(n.payload().to_owned()),
            None => ViewChange::Everything,
        })
    }
}

/// Sends a view change on a connection (within its transaction, if any:
/// PostgreSQL delivers it at commit).
pub(crate) trait NotifyIn {
    async fn notify(self, repository: &str) -> Result<(), sqlx::Error>;
}

impl NotifyIn for &mut sqlx::SqliteConnection {
    async fn notify(self, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl NotifyIn for &mut sqlx::PgConnection {
    async fn notify(self, repository: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(VIEW_CHANNEL)
            .bind(repository)
            .execute(self)
            .await?;
        Ok(())
    }
}
