//! What differs between SQLite and PostgreSQL, in one place: how a
//! multi-row VALUES list is written and how a row is locked for update.
//! Every statement is otherwise written once, in the portable subset
//! (`$n` parameters, `ON CONFLICT`, `RETURNING`).

use super::Backend;

/// `($1, …, $n), ($n+1, …)`: the VALUES of a multi-row statement whose
/// rows each take `per_row` parameters, starting after `offset`.
/// `anonymous` writes `?` instead (SQLite binds those without looking each
/// parameter's name up, which costs 5 % of a batch); only for rows that use
/// each parameter once, in order.
pub fn values_list(
    rows: usize,
    per_row: usize,
    offset: usize,
    anonymous: bool,
    row: impl Fn(&[String]) -> String,
) -> String {
    let mut out = String::new();
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        let params: Vec<String> = (1..=per_row)
            .map(|k| {
                if anonymous {
                    "?".to_owned()
                } else {
                    format!("${}", offset + r * per_row + k)
                }
            })
            .collect();
        out.push_str(&row(&params));
    }
    out
}

/// Whether a statement may use anonymous `?` parameters (see [`values_list`]).
pub fn anonymous_parameters(backend: Backend) -> bool {
    backend == Backend::Sqlite
}

/// The clause that locks the rows a SELECT reads until the transaction
/// ends: `FOR UPDATE` on PostgreSQL; nothing on SQLite, where the
/// transaction (`BEGIN IMMEDIATE`) already holds the write lock.
pub fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_after_the_offset_or_anonymous() {
        let v = values_list(2, 2, 3, false, |p| format!("({})", p.join(", ")));
        assert_eq!(v, "($4, $5), ($6, $7)");
        let v = values_list(2, 2, 0, true, |p| format!("({})", p.join(", ")));
        assert_eq!(v, "(?, ?), (?, ?)");
    }
}
