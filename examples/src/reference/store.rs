//! Where items live: in memory (bounded) or in PostgreSQL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use garde::Validate;
use patterns::error::{Error, Kind};
use patterns::server::postgres::{Database, Migration};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// The service's schema, applied in order at start.
pub(crate) static MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "items",
    include_str!("migrations/0001_items.sql"),
)];

/// A stored item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Item {
    /// Assigned by the service, increasing.
    pub id: i64,
    /// 1 to 100 characters.
    pub name: String,
    /// 0 to 1 000 000.
    pub quantity: i32,
    /// When it was created (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A name without NUL, which PostgreSQL cannot store (the in-memory store
/// could: both refuse it alike).
fn no_nul(name: &str, _: &()) -> garde::Result {
    if name.contains('\0') {
        Err(garde::Error::new("must not contain a NUL character"))
    } else {
        Ok(())
    }
}

fn rfc3339<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let text = at.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

/// The body of `POST /v1/items`. Each rule is stated twice, for garde
/// and for the schema; a test checks that the two agree at every bound.
#[derive(Clone, Debug, Deserialize, Validate, ToSchema)]
#[schema(example = json!({"name": "widget", "quantity": 3}))]
pub struct NewItem {
    /// 1 to 100 characters, none of them NUL (PostgreSQL's text holds
    /// none).
    #[garde(length(chars, min = 1, max = 100), custom(no_nul))]
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00]*$")]
    pub name: String,
    /// 0 to 1 000 000.
    #[garde(range(min = 0, max = 1_000_000))]
    #[schema(minimum = 0, maximum = 1_000_000)]
    #[serde(deserialize_with = "patterns::api::extract::integer")]
    pub quantity: i64,
}

/// One page of items and the id to continue after.
pub(crate) struct Page {
    pub(crate) items: Vec<Item>,
    pub(crate) next_after: Option<i64>,
}

/// The item store the handlers use; cloning shares it.
#[derive(Clone, Debug)]
pub(crate) enum Store {
    Memory(Arc<Memory>),
    Postgres(Database),
}

/// Items in a bounded in-memory map.
#[derive(Debug)]
pub(crate) struct Memory {
    state: Mutex<MemoryState>,
    max_items: usize,
}

#[derive(Debug, Default)]
struct MemoryState {
    items: BTreeMap<i64, Item>,
    last_id: i64,
}

const COLUMNS: &str = "id, name, quantity, created_at";

fn from_row(row: &tokio_postgres::Row) -> Result<Item, Error> {
    let read = |e| Error::with_source(Kind::Internal, "reading an item row", e);
    Ok(Item {
        id: row.try_get("id").map_err(read)?,
        name: row.try_get("name").map_err(read)?,
        quantity: row.try_get("quantity").map_err(read)?,
        created_at: row.try_get("created_at").map_err(read)?,
    })
}

fn not_found(id: i64) -> Error {
    Error::new(Kind::NotFound, format!("no item with id {id}"))
}

impl Store {
    /// An in-memory store holding at most `max_items`.
    pub(crate) fn memory(max_items: usize) -> Self {
        Self::Memory(Arc::new(Memory {
            state: Mutex::default(),
            max_items,
        }))
    }

    /// Stores a validated item.
    pub(crate) async fn create(&self, new: NewItem) -> Result<Item, Error> {
        let quantity = i32::try_from(new.quantity)
            .map_err(|_| Error::new(Kind::InvalidInput, "quantity out of range"))?;
        match self {
            Self::Memory(memory) => {
                let mut state = memory.lock();
                if state.items.len() >= memory.max_items {
                    return Err(Error::new(Kind::Overloaded, "the item store is full")
                        .with_retry_after(Duration::from_secs(60)));
                }
                state.last_id += 1;
                let item = Item {
                    id: state.last_id,
                    name: new.name,
                    quantity,
                    created_at: OffsetDateTime::now_utc(),
                };
                state.items.insert(item.id, item.clone());
                Ok(item)
            }
            Self::Postgres(db) => {
                let statement = format!(
                    "INSERT INTO items (name, quantity) VALUES ($1, $2) RETURNING {COLUMNS}"
                );
                let row = db
                    .with_connection(move |connection| {
                        Box::pin(async move {
                            connection
                                .query_one(&statement, &[&new.name, &quantity])
                                .await
                        })
                    })
                    .await?;
                from_row(&row)
            }
        }
    }

    /// The item `id`, or not found.
    pub(crate) async fn get(&self, id: i64) -> Result<Item, Error> {
        match self {
            Self::Memory(memory) => memory
                .lock()
                .items
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found(id)),
            Self::Postgres(db) => {
                let statement = format!("SELECT {COLUMNS} FROM items WHERE id = $1");
                let row = db
                    .with_connection(move |connection| {
                        Box::pin(async move { connection.query_opt(&statement, &[&id]).await })
                    })
                    .await?;
                row.as_ref().map(from_row).ok_or_else(|| not_found(id))?
            }
        }
    }

    /// Removes the item `id`, or not found.
    pub(crate) async fn delete(&self, id: i64) -> Result<(), Error> {
        let removed = match self {
            Self::Memory(memory) => u64::from(memory.lock().items.remove(&id).is_some()),
            Self::Postgres(db) => {
                db.with_connection(move |connection| {
                    Box::pin(async move {
                        connection
                            .execute("DELETE FROM items WHERE id = $1", &[&id])
                            .await
                    })
                })
                .await?
            }
        };
        if removed == 0 {
            Err(not_found(id))
        } else {
            Ok(())
        }
    }

    /// Up to `limit` items with ids above `after`, in id order.
    pub(crate) async fn list(&self, after: i64, limit: usize) -> Result<Page, Error> {
        let mut items = match self {
            Self::Memory(memory) => memory
                .lock()
                .items
                .range(after.saturating_add(1)..)
                .take(limit + 1)
                .map(|(_, item)| item.clone())
                .collect::<Vec<_>>(),
            Self::Postgres(db) => {
                let statement =
                    format!("SELECT {COLUMNS} FROM items WHERE id > $1 ORDER BY id LIMIT $2");
                let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
                db.with_connection(move |connection| {
                    Box::pin(async move { connection.query(&statement, &[&after, &fetch]).await })
                })
                .await?
                .iter()
                .map(from_row)
                .collect::<Result<Vec<_>, _>>()?
            }
        };
        // One more than asked for tells whether another page follows.
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|item| item.id)
        } else {
            None
        };
        Ok(Page { items, next_after })
    }

    /// Removes the items created more than `ttl` ago; returns how many.
    pub(crate) async fn sweep(&self, ttl: Duration) -> Result<u64, Error> {
        match self {
            Self::Memory(memory) => {
                // A cutoff before the calendar's start: nothing is that old.
                let Some(cutoff) = time::Duration::try_from(ttl)
                    .ok()
                    .and_then(|ttl| OffsetDateTime::now_utc().checked_sub(ttl))
                else {
                    return Ok(0);
                };
                let mut state = memory.lock();
                let before = state.items.len();
                state.items.retain(|_, item| item.created_at >= cutoff);
                Ok((before - state.items.len()) as u64)
            }
            Self::Postgres(db) => {
                let seconds = ttl.as_secs_f64();
                db.with_connection(move |connection| {
                    Box::pin(async move {
                        connection
                            .execute(
                                "DELETE FROM items WHERE created_at < now() - make_interval(secs => $1)",
                                &[&seconds],
                            )
                            .await
                    })
                })
                .await
            }
        }
    }
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Store;

    /// A time to live beyond the calendar removes nothing and never panics
    /// (it panicked at every sweep).
    #[tokio::test]
    async fn sweeping_with_any_time_to_live() {
        let store = Store::memory(10);
        for ttl in [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(u64::MAX / 2),
            Duration::MAX,
        ] {
            assert_eq!(store.sweep(ttl).await.unwrap(), 0, "{ttl:?}");
        }
    }
}
