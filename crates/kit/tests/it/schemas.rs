//! Each service migrates its own schema; two services in one database do not see each other's
//! tables or migration history.

use sutazai_testkit::TestDatabase;

#[tokio::test]
async fn each_schema_has_its_own_tables_and_history() {
    let database = TestDatabase::create().await;
    let settings = database.settings();
    let first = sutazai_kit::postgres::connect_and_migrate(
        &settings,
        "first_svc",
        vec![sqlx::migrate!("tests/it/migrations")],
    )
    .await
    .unwrap();
    let second = sutazai_kit::postgres::connect_and_migrate(
        &settings,
        "second_svc",
        vec![sqlx::migrate!("tests/it/migrations")],
    )
    .await
    .unwrap();

    sqlx::query("INSERT INTO widgets (name) VALUES ('gear')").execute(&first).await.unwrap();
    let in_second: i64 = sqlx::query_scalar("SELECT count(*) FROM widgets").fetch_one(&second).await.unwrap();
    assert_eq!(in_second, 0, "the second schema has its own widgets table");

    let schema_of_history: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&first)
    .await
    .unwrap();
    assert_eq!(schema_of_history, ["first_svc", "second_svc"]);

    // Running the migrations again is a no-op.
    sutazai_kit::postgres::connect_and_migrate(
        &settings,
        "first_svc",
        vec![sqlx::migrate!("tests/it/migrations")],
    )
    .await
    .unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM widgets").fetch_one(&first).await.unwrap();
    assert_eq!(kept, 1);

    first.close().await;
    second.close().await;
    database.drop_database().await;
}

#[tokio::test]
async fn invalid_schema_names_are_refused() {
    let database = TestDatabase::create().await;
    let error = sutazai_kit::postgres::connect_and_migrate(&database.settings(), "x\"; DROP", vec![])
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "invalid schema name `x\"; DROP`");
    database.drop_database().await;
}
