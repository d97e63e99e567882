//! The `x_spend_days` and `x_spend` tables: what the bot spends on X's
//! pay-per-use API. `x_spend_days` is the day's budget (what was spent,
//! and what calls in flight reserved), reserved from under its row's lock;
//! `x_spend` is what X's answers were charged, per endpoint and unit, for
//! the report. Both are written only here, and always together.

use async_trait::async_trait;
use sqlx::{AnyConnection, Row};

use super::{Store, StoreError, dialect};
use crate::domain::clock::Millis;
use crate::domain::money::{Ask, Day, DaySpend, Grant, Usd, day_name, grant, utc_day};
use crate::platforms::x::cost::{Charge, LedgerError, SpendLedger};

/// Reserves, on the UTC day of `now`, as many units of `ask` as `cap`
/// allows: the day's row is locked (`FOR UPDATE` on PostgreSQL; the write
/// transaction on SQLite), the pure [`grant`] decides, and the reservation
/// is added before the lock is released. Returns the grant and the day
/// after it.
pub async fn reserve(
    store: &Store,
    ask: Ask,
    cap: Usd,
    now: Millis,
) -> Result<(Grant, DaySpend), StoreError> {
    let day = utc_day(now);
    let mut tx = store.begin().await?;
    let spent = lock_day(&mut tx, store, day).await?;
    let decision = grant(spent, ask, cap, now);
    let after = match decision {
        Grant::Units(n) => {
            move_day(&mut tx, day, Usd::ZERO, (ask.each.times(n), Usd::ZERO)).await?
        }
        Grant::NotUntil(_) => spent,
    };
    tx.commit().await?;
    Ok((decision, after))
}

/// Records what a call cost on `day` (each charge added to its endpoint
/// and unit, and to the day) and gives back what was `reserved` for it,
/// in one transaction. Returns the day after.
pub async fn settle(
    store: &Store,
    day: Day,
    reserved: Usd,
    charges: &[Charge],
) -> Result<DaySpend, StoreError> {
    let mut tx = store.begin().await?;
    lock_day(&mut tx, store, day).await?;
    let cost = charges.iter().fold(Usd::ZERO, |a, c| a.plus(c.usd));
    let after = move_day(&mut tx, day, cost, (Usd::ZERO, reserved)).await?;
    for c in charges {
        sqlx::query(
            "INSERT INTO x_spend (day, endpoint, unit, units, usd_micros) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (day, endpoint, unit) DO UPDATE SET \
             units = x_spend.units + excluded.units, usd_micros = x_spend.usd_micros + excluded.usd_micros",
        )
        .bind(day_name(day))
        .bind(c.endpoint)
        .bind(c.unit.as_str())
        .bind(c.units as i64)
        .bind(c.usd.micros() as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// The day's row, created if needed, locked until the transaction ends.
async fn lock_day(
    conn: &mut AnyConnection,
    store: &Store,
    day: Day,
) -> Result<DaySpend, StoreError> {
    sqlx::query("INSERT INTO x_spend_days (day, spent, reserved) VALUES ($1, 0, 0) ON CONFLICT (day) DO NOTHING")
        .bind(day_name(day))
        .execute(&mut *conn)
        .await?;
    let sql = format!(
        "SELECT spent, reserved FROM x_spend_days WHERE day = $1{}",
        dialect::for_update(store.backend())
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(day_name(day))
        .fetch_one(&mut *conn)
        .await?;
    day_of(day, &row)
}

fn day_of(day: Day, row: &sqlx::any::AnyRow) -> Result<DaySpend, StoreError> {
    let usd = |i: usize| -> Result<Usd, StoreError> {
        Ok(Usd::from_micros(row.try_get::<i64, _>(i)?.max(0) as u64))
    };
    Ok(DaySpend {
        day,
        spent: usd(0)?,
        reserved: usd(1)?,
    })
}

/// Adds `cost` to what the day spent and moves its reservations by
/// `(add, give_back)` (never below zero).
async fn move_day(
    conn: &mut AnyConnection,
    day: Day,
    cost: Usd,
    (add, give_back): (Usd, Usd),
) -> Result<DaySpend, StoreError> {
    let row = sqlx::query(
        "UPDATE x_spend_days SET spent = spent + $2, reserved = CASE WHEN reserved + $3 - $4 < 0 \
         THEN 0 ELSE reserved + $3 - $4 END WHERE day = $1 RETURNING spent, reserved",
    )
    .bind(day_name(day))
    .bind(cost.micros() as i64)
    .bind(add.micros() as i64)
    .bind(give_back.micros() as i64)
    .fetch_one(&mut *conn)
    .await?;
    day_of(day, &row)
}

/// What UTC `day` holds (spent, and reserved by calls in flight).
pub async fn day(store: &Store, day: Day) -> Result<DaySpend, StoreError> {
    let row = sqlx::query("SELECT spent, reserved FROM x_spend_days WHERE day = $1")
        .bind(day_name(day))
        .fetch_optional(store.pool())
        .await?;
    match row {
        Some(r) => day_of(day, &r),
        None => Ok(DaySpend::none(day)),
    }
}

/// What X charged, per endpoint and unit, on the UTC days from `since`
/// on: (endpoint, unit, units, cost), in that order.
pub async fn breakdown(
    store: &Store,
    since: Day,
) -> Result<Vec<(String, String, i64, Usd)>, StoreError> {
    let rows = sqlx::query(
        "SELECT endpoint, unit, CAST(SUM(units) AS BIGINT), CAST(SUM(usd_micros) AS BIGINT) \
         FROM x_spend WHERE day >= $1 \
         GROUP BY endpoint, unit ORDER BY endpoint, unit",
    )
    .bind(day_name(since))
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let micros: i64 = r.try_get(3)?;
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                Usd::from_micros(micros.max(0) as u64),
            ))
        })
        .collect()
}

/// The ledger X's client keeps its spend in: these tables, shared by
/// every instance on the database.
#[derive(Debug, Clone)]
pub struct XSpend {
    store: Store,
}

impl XSpend {
    /// The ledger on `store`.
    pub fn new(store: Store) -> XSpend {
        XSpend { store }
    }
}

fn ledger_error(e: StoreError) -> LedgerError {
    LedgerError(e.to_string())
}

#[async_trait]
impl SpendLedger for XSpend {
    async fn reserve(
        &self,
        ask: Ask,
        cap: Usd,
        now: Millis,
    ) -> Result<(Grant, DaySpend), LedgerError> {
        reserve(&self.store, ask, cap, now)
            .await
            .map_err(ledger_error)
    }

    async fn settle(
        &self,
        day: Day,
        reserved: Usd,
        charges: &[Charge],
    ) -> Result<DaySpend, LedgerError> {
        settle(&self.store, day, reserved, charges)
            .await
            .map_err(ledger_error)
    }
}
