//! What differs between SQLite and PostgreSQL, in one place: how a
//! multi-row VALUES list is written, how a row is locked, and which index
//! SQLite is told to use.
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

/// The most bytes one multi-row statement should carry: its parameters and
/// its text (on a statement-cache miss the text goes in the same write).
///
/// On PostgreSQL, sqlx 0.9.0 writes to its TCP socket with Nagle's
/// algorithm on and the kernel's default send buffer (16 KiB): a statement
/// larger than that is sent in two writes, and the second waits for the
/// server's delayed ACK, 40 ms on Linux, even on 127.0.0.1 (measured: a
/// 100-row outbox insert took 45 ms, a 50-row one 2 ms; BENCHMARKS.md). A
/// second statement costs a round trip, a fraction of a millisecond, so a
/// batch's rows are cut at 12 KiB, text included: the chunks' lengths vary
/// with the messages, so a statement's text is often new to sqlx's cache
/// and sent whole. (sqlx's fix, TCP_NODELAY, is merged but not released;
/// this limit can go once it is.) SQLite has no socket.
pub fn statement_bytes(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 12 * 1024,
        Backend::Sqlite => usize::MAX,
    }
}

/// What a row's `($n, …)` adds to a statement's text, per parameter.
const SQL_BYTES_PER_PARAMETER: usize = 7;

/// `rows` cut into statements of at most `max_rows` rows and `max_bytes`
/// of parameters (as `size` estimates a row's) and text (`parameters` a
/// row), in order; a row larger than that goes alone.
pub fn chunks<T>(
    rows: &[T],
    max_rows: usize,
    max_bytes: usize,
    parameters: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let n = size(row) + parameters * SQL_BYTES_PER_PARAMETER;
        if i > start && (i - start == max_rows || bytes + n > max_bytes) {
            out.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// What a text parameter weighs in a statement: its bytes and its length
/// prefix.
pub fn text_bytes(s: &str) -> usize {
    s.len() + 4
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

/// The clause that keeps the rows a SELECT reads from changing until the
/// statement's transaction ends, without stopping other readers: `FOR
/// SHARE` on PostgreSQL; nothing on SQLite, whose writers take turns.
pub fn for_share(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    }
}

/// After a table's name in a FROM: the index SQLite must use, where its
/// planner, without statistics on how many rows a status holds, would
/// rather read a few rows by status and sort them (measured: 25–90 ms for
/// the inbox at 100 000 tickets, 1 ms through the inbox's own index).
/// Nothing on PostgreSQL, whose planner has the statistics. SQLite refuses
/// a statement whose index is gone, so a migration cannot drop one
/// unnoticed.
pub fn indexed_by(backend: Backend, index: &'static str) -> String {
    match backend {
        Backend::Sqlite => format!(" INDEXED BY {index}"),
        Backend::Postgres => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_the_order_and_both_limits() {
        let rows = [3, 3, 3, 9, 1, 1, 1];
        let cut = chunks(&rows, 2, 7, 0, |r| *r);
        assert_eq!(
            cut,
            vec![&[3, 3][..], &[3][..], &[9][..], &[1, 1][..], &[1][..]]
        );
        assert!(chunks(&[0u8; 0], 2, 7, 0, |_| 1).is_empty());
        assert_eq!(chunks(&rows, 100, usize::MAX, 0, |r| *r), vec![&rows[..]]);
        // The text counts: 7 bytes a parameter.
        assert_eq!(chunks(&rows, 100, 20, 1, |r| *r).len(), 5);
    }

    #[test]
    fn values_are_numbered_after_the_offset_or_anonymous() {
        let v = values_list(2, 2, 3, false, |p| format!("({})", p.join(", ")));
        assert_eq!(v, "($4, $5), ($6, $7)");
        let v = values_list(2, 2, 0, true, |p| format!("({})", p.join(", ")));
        assert_eq!(v, "(?, ?), (?, ?)");
    }
}
