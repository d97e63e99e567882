//! Databases of their own for the benchmarks that measure PostgreSQL.

/// A fresh database on PostgreSQL at `base` (a URL ending in a database
/// the bench may connect to), named `prefix_PID_N`: its URL and its name.
pub async fn fresh_postgres(base: &str, prefix: &str) -> (String, String) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base)
        .await
        .expect("PostgreSQL at --postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the bench database");
    if std::env::var_os("HELPDESK_BENCH_PG_LOG").is_some() {
        // Every statement and its duration in the server's log: where a
        // batch's time goes, this database only.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} SET log_min_duration_statement = 0"
        )))
        .execute(&mut conn)
        .await
        .expect("log the bench database's statements");
    }
    if std::env::var_os("HELPDESK_BENCH_PG_EXPLAIN").is_some() {
        // The plan of every statement slower than 0.5 ms, as it ran, with
        // its triggers' times and the statements they run, in the
        // server's log: why a statement is slow.
        for setting in [
            "session_preload_libraries = 'auto_explain'",
            "auto_explain.log_min_duration = 0.5",
            "auto_explain.log_triggers = on",
            "auto_explain.log_nested_statements = on",
            "auto_explain.log_analyze = on",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} SET {setting}"
            )))
            .execute(&mut conn)
            .await
            .expect("explain the bench database's slow statements");
        }
    }
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    (format!("{server}/{name}"), name)
}

/// Drops a database made by [`fresh_postgres`].
pub async fn drop_postgres(base: &str, name: &str) {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base)
        .await
        .expect("PostgreSQL at --postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the bench database");
}
