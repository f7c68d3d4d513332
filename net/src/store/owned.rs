//! Which queue records the delivery queue still owns, for the store: core decides
//! (`sluice_core::queue::still_owned`: not final, or a success notice owed); this
//! states the same predicate over the stored columns, once, for every query that
//! restores, lists or releases the queue's records.

use sluice_core::queue::still_owned;

/// The `queue_records` rows the queue still owns, as an SQL condition on the row's
/// own `state` and `success_owed` columns: core's `still_owned`, with the stored
/// names of the states that are not final ('pending', 'deferred'; the final ones
/// are 'delivered' and 'failed'). Written term by term, exactly as the partial
/// index `queue_records_owned` (migration 6) states it, so that SQLite and
/// PostgreSQL see that a query with this condition, or with one of its terms
/// (`state = 'deferred'`), can read that index.
pub(super) const STILL_OWNED: &str =
    "(state = 'pending' OR state = 'deferred' OR success_owed = 1)";

/// An SQL condition on a message's queue id, `queue_id_column`: the message has a
/// record the queue still owns. The queue takes a message with all its records.
pub(super) fn message_still_owned(queue_id_column: &str) -> String {
    format!("{queue_id_column} IN (SELECT queue_id FROM queue_records WHERE {STILL_OWNED})")
}

/// Whether a stored state name is final.
pub(super) fn is_final(state: &str) -> bool {
    state == "delivered" || state == "failed"
}

/// Core's `still_owned` for a stored record. A record the queue owns holds a
/// reference to its message's body: an attempt will send it, or the owed notice
/// returns it.
pub(super) fn record_still_owned(state: &str, success_owed: bool) -> bool {
    still_owned(is_final(state), success_owed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Db;
    use sqlx::Row;

    const STATES: [&str; 4] = ["pending", "deferred", "delivered", "failed"];

    #[tokio::test]
    async fn the_sql_condition_selects_exactly_what_core_calls_owned() {
        let db = Db::connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        sqlx::query("CREATE TABLE queue_records (queue_id TEXT, state TEXT, success_owed INTEGER)")
            .execute(&db.pool)
            .await
            .expect("created");
        for state in STATES {
            for owed in [0, 1] {
                sqlx::query("INSERT INTO queue_records VALUES (?, ?, ?)")
                    .bind(format!("{state}-{owed}"))
                    .bind(state)
                    .bind(owed)
                    .execute(&db.pool)
                    .await
                    .expect("inserted");
            }
        }
        let owned = |sql: String| {
            let db = db.clone();
            async move {
                let rows = sqlx::query(&sql)
                    .fetch_all(&db.pool)
                    .await
                    .expect("selected");
                let mut ids: Vec<String> = rows
                    .iter()
                    .map(|row| row.try_get("queue_id").expect("a queue id"))
                    .collect();
                ids.sort();
                ids
            }
        };
        let mut expected: Vec<String> = STATES
            .iter()
            .flat_map(|state| [(state, false), (state, true)])
            .filter(|(state, owed)| record_still_owned(state, *owed))
            .map(|(state, owed)| format!("{state}-{}", i32::from(owed)))
            .collect();
        expected.sort();
        assert_eq!(
            expected.len(),
            6,
            "all but the two final records owing nothing"
        );
        let by_row = owned(format!(
            "SELECT queue_id FROM queue_records WHERE {STILL_OWNED}"
        ))
        .await;
        assert_eq!(by_row, expected);
        let by_message = owned(format!(
            "SELECT queue_id FROM queue_records r WHERE {}",
            message_still_owned("r.queue_id")
        ))
        .await;
        assert_eq!(by_message, expected);
    }

    /// The partial index of migration 6 serves every query that looks for the
    /// records the queue owns (a plan without it scans every record ever kept).
    #[tokio::test]
    async fn sqlite_finds_the_owned_records_through_their_partial_index() {
        let db = Db::connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        crate::store::migrate::run(&db).await.expect("migrated");
        for statement in [
            format!("SELECT queue_id FROM queue_records WHERE {STILL_OWNED}"),
            format!(
                "SELECT queue_id FROM queue_messages WHERE {}",
                message_still_owned("queue_id")
            ),
            "UPDATE queue_records SET next_attempt_ms = 1 WHERE state = 'deferred'".to_owned(),
        ] {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {statement}"))
                .fetch_all(&db.pool)
                .await
                .expect("planned")
                .iter()
                .map(|row| row.try_get("detail").expect("a plan step"))
                .collect();
            assert!(
                plan.iter().any(|step| step.contains("queue_records_owned")),
                "{statement}: {plan:?}"
            );
        }
    }

    #[test]
    fn a_stored_record_is_owned_as_core_says() {
        assert!(record_still_owned("pending", false));
        assert!(record_still_owned("deferred", false));
        assert!(!record_still_owned("delivered", false));
        assert!(!record_still_owned("failed", false));
        assert!(record_still_owned("delivered", true));
    }
}
