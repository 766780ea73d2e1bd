//! The throwaway cluster that `cargo xtask ci` starts is reachable through
//! `DATABASE_URL` and answers queries.
//!
//! Without `DATABASE_URL` the test reports itself skipped, and fails under
//! `CI=true`, where the cluster must be there.

mod common;

use common::database_url;

#[tokio::test]
async fn throwaway_cluster_answers_a_query() {
    let Some(url) = database_url() else { return };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    let driver = tokio::spawn(connection);

    let row = client
        .query_one(
            "SELECT $1::int4 + 1, current_setting('listen_addresses')",
            &[&41i32],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), "127.0.0.1");

    drop(client);
    driver.await.unwrap().expect("connection ends cleanly");
}
