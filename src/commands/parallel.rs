//! Routing in bulk on every core, with the output in input order.
//!
//! `rules test -` and `rules replay` route millions of independent
//! messages; routing is pure and takes most of the time. So the input is cut
//! into blocks of whole lines (or of rows), worker threads route the blocks,
//! and the caller's thread takes the results back in input order: the
//! output is the same, byte for byte, whatever the number of workers.
//!
//! Three kinds of thread, so none waits on another in a circle: one
//! produces blocks (reading a file or a database), the workers turn each
//! block into a result, and the calling thread consumes the results in
//! order (it holds stdout, which cannot move to another thread). A block
//! starts only with one of a fixed number of tokens, given back when its
//! result is consumed, so memory stays a few blocks per worker however
//! large the input and however slow one block; a consumer that stops (a
//! closed pipe) ends the workers and then the producer, which both find
//! their channel closed. A worker's panic reaches the consumer in its
//! block's turn, which stops the others and raises it.

use std::collections::BTreeMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

/// How many workers to route with: `--threads` (at most four per core:
/// more only cost memory and switches), or one per core.
pub fn workers(threads: Option<NonZeroUsize>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    threads.map_or(cores, |n| n.get().min(4 * cores))
}

/// Runs `produce` on a thread of its own, handing it a sink for jobs that
/// says `false` once nobody wants more; `work` on `workers` threads; and
/// `consume` on the calling thread, on every result in the order of the
/// jobs. The first error, from `consume` or `produce`, is returned; the
/// results of the jobs before it have been consumed.
pub fn ordered<J, T, E>(
    workers: usize,
    produce: impl FnOnce(&mut dyn FnMut(J) -> bool) -> Result<(), E> + Send,
    work: impl Fn(J) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    J: Send,
    T: Send,
    E: Send,
{
    let workers = workers.max(1);
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, J)>(workers * 2);
        let (done_tx, done_rx) = mpsc::sync_channel::<(u64, Worked<T>)>(workers * 2);
        // A job may start only with a token, given back once its result is
        // consumed: however slow one block is, no more than `window` wait
        // in memory for their turn.
        let window = workers * 4;
        let (token_tx, token_rx) = mpsc::sync_channel::<()>(window);
        for _ in 0..window {
            token_tx.send(()).expect("room for every token");
        }
        // Owned by the workers alone, so that the last one to stop closes
        // the channel and a producer still sending learns nobody listens.
        let job_rx = Arc::new(Mutex::new(job_rx));
        let producer = scope.spawn(move || {
            let mut seq = 0u64;
            produce(&mut |job| {
                let sent = token_rx.recv().is_ok() && job_tx.send((seq, job)).is_ok();
                seq += 1;
                sent
            })
        });
        for _ in 0..workers {
            let (job_rx, done_tx, work) = (Arc::clone(&job_rx), done_tx.clone(), &work);
            scope.spawn(move || {
                loop {
                    // The lock is held only to take a job, never while working.
                    let job = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, job))) = job else { break };
                    // A panic is a bug: it goes to the consumer in the
                    // job's turn, which stops everything and raises it,
                    // rather than leaving a hole the others wait behind.
                    let worked = std::panic::catch_unwind(AssertUnwindSafe(|| work(job)));
                    if done_tx.send((seq, worked)).is_err() {
                        break;
                    }
                }
            });
        }
        drop((done_tx, job_rx));
        // Results arrive in any order; each waits here until its turn.
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut stopped: Option<Result<(), E>> = None;
        let mut panicked = None;
        'receive: for (seq, result) in done_rx.iter() {
            waiting.insert(seq, result);
            while let Some(result) = waiting.remove(&next) {
                next += 1;
                match result {
                    Ok(result) => {
                        if let Err(e) = consume(result) {
                            stopped = Some(Err(e));
                            break 'receive;
                        }
                        // The producer may be gone already: no one to wake.
                        let _ = token_tx.send(());
                    }
                    Err(payload) => {
                        panicked = Some(payload);
                        break 'receive;
                    }
                }
            }
        }
        // Closing our ends stops the workers and the producer, whose
        // channels then find no one listening.
        drop((done_rx, token_tx, waiting));
        let produced = producer.join().expect("the producer does not panic");
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        stopped.unwrap_or(Ok(())).and(produced)
    })
}

/// A job's result, or the panic it raised.
type Worked<T> = std::thread::Result<T>;

/// Decodes one JSON line as a `T` written as an object. serde would also
/// take an array of the fields in their order (`["refund", "dm"]`), which
/// no one means as a message, so the bulk commands would route it; and its
/// error for a bare string quotes the string, a customer's text in an
/// error. Anything but an object is refused here, in these words.
///
/// serde's errors for a string of the wrong kind (`"channel": "…"`) quote
/// the string, which may be a customer's text written in the wrong key:
/// those are said without it.
pub fn object_line<'a, T: serde::Deserialize<'a>>(line: &'a str) -> serde_json::Result<T> {
    if !line.trim_start().starts_with('{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    serde_json::from_str(line).map_err(without_values)
}

/// `e`, without the value it quotes when it quotes one that is more than
/// a plain word (`fax` for a channel is shown; a sentence is not).
fn without_values(e: serde_json::Error) -> serde_json::Error {
    const QUOTING: [&str; 3] = [
        "unknown variant",
        "invalid type: string",
        "invalid value: string",
    ];
    let text = e.to_string();
    let Some(kind) = QUOTING.iter().find(|kind| text.starts_with(**kind)) else {
        return e;
    };
    // What was expected comes last, and quotes only serde's names.
    let Some(at) = text.rfind(", expected ") else {
        return e;
    };
    let quoted = text[kind.len()..at]
        .trim()
        .trim_matches(|c| c == '`' || c == '"');
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if (1..=24).contains(&quoted.len()) && quoted.chars().all(plain) {
        return e;
    }
    serde::de::Error::custom(format!("{kind} (not shown){}", &text[at..]))
}

/// Whole lines of the input, and the number of the first.
#[derive(Debug)]
pub struct Lines {
    /// The bytes: whole lines, each with its `\n` but perhaps the last.
    pub bytes: Vec<u8>,
    /// The 1-based number of the first line in the whole input.
    pub first: u64,
}

impl Lines {
    /// Each line (without its `\n` or `\r\n`) and its number.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let body = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        // memchr's search, not `split`'s byte-at-a-time closure: a
        // tenth of the cost on lines of a few hundred bytes.
        let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
        let mut start = 0;
        ends.enumerate().map(move |(k, end)| {
            let line = &body[start..end];
            start = end + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (self.first + k as u64, line)
        })
    }
}

/// About this many bytes a block: large enough that handing it over costs
/// nothing next to routing it, small enough that two workers get work from
/// a file of a few thousand lines.
pub const BLOCK: usize = 64 << 10;

/// U+FEFF, the byte order mark, in UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `input` in blocks of whole lines of about [`BLOCK`] bytes (a
/// longer line makes a longer block) and hands each to `sink`, with
/// `read` told the bytes read so far; stops early when `sink` says so.
pub fn read_lines(
    mut input: impl Read,
    sink: &mut dyn FnMut(Lines) -> bool,
    mut read: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    let (mut first, mut total) = (1u64, 0u64);
    loop {
        let mut block = std::mem::take(&mut carry);
        let mut eof = false;
        // The carried bytes hold no line end: they follow the last one.
        let mut has_line = false;
        // Fill to the block size, and on until a line ends in it; only the
        // bytes just read are searched, so a long line costs its length.
        while !(eof || has_line && block.len() >= BLOCK) {
            let at = block.len();
            block.resize(at + BLOCK, 0);
            let n = loop {
                match input.read(&mut block[at..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r?,
                }
            };
            block.truncate(at + n);
            total += n as u64;
            eof = n == 0;
            has_line |= memchr::memchr(b'\n', &block[at..]).is_some();
            if has_line && n > 0 && n < BLOCK {
                // A short read: nothing more has come yet (a pipe, a
                // person typing); route what has rather than wait.
                break;
            }
        }
        if first == 1 && block.starts_with(BOM) {
            // Windows' editors save UTF-8 with a byte order mark; it is
            // not part of the first line's JSON.
            block.drain(..BOM.len());
        }
        if block.is_empty() {
            return Ok(());
        }
        if !eof {
            let end = memchr::memrchr(b'\n', &block).expect("filled until a line ends") + 1;
            carry = block.split_off(end);
        }
        let lines = memchr::memchr_iter(b'\n', &block).count() as u64;
        read(total);
        let next = first + lines;
        if !sink(Lines {
            bytes: block,
            first,
        }) {
            return Ok(());
        }
        first = next;
        if eof {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_in_the_wrong_key_is_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Line {
            channel: crate::domain::Channel,
        }
        for line in [
            r#"{"channel": "je veux être remboursé SECRET"}"#,
            r#"{"channel": 5}"#,
        ] {
            let e = super::object_line::<Line>(line).unwrap_err().to_string();
            assert!(!e.contains("SECRET") && e.contains("expected"), "{e}");
        }
        // A plain word is no one's message, and says what was mistyped.
        let e = super::object_line::<Line>(r#"{"channel": "fax"}"#).unwrap_err();
        assert!(e.to_string().contains("`fax`"), "{e}");
    }

    use super::*;

    fn blocks(text: &[u8]) -> Vec<Lines> {
        let mut out = Vec::new();
        read_lines(
            text,
            &mut |l| {
                out.push(l);
                true
            },
            |_| {},
        )
        .unwrap();
        out
    }

    #[test]
    fn blocks_hold_whole_lines_numbered_across_blocks() {
        let mut text = Vec::new();
        for n in 1..=20_000 {
            text.extend_from_slice(format!("line {n}\r\n").as_bytes());
        }
        text.extend_from_slice(b"\nlast, no newline");
        let got = blocks(&text);
        assert!(got.len() > 2, "{} blocks", got.len());
        let lines: Vec<(u64, Vec<u8>)> = got
            .iter()
            .flat_map(|b| b.iter().map(|(n, l)| (n, l.to_vec())))
            .collect();
        assert_eq!(lines.len(), 20_002);
        for (n, l) in &lines[..20_000] {
            assert_eq!(l, format!("line {n}").as_bytes());
        }
        assert_eq!(lines[20_000], (20_001, b"".to_vec()));
        assert_eq!(lines[20_001], (20_002, b"last, no newline".to_vec()));
    }

    #[test]
    fn lines_split_at_each_line_end_as_split_would() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "\n\n",
            "a\n\nb\r\n",
            "\r\n\r",
            "a\r\nb",
        ] {
            let lines = Lines {
                bytes: text.as_bytes().to_vec(),
                first: 7,
            };
            let body = text.strip_suffix('\n').unwrap_or(text);
            let want: Vec<(u64, &[u8])> = body
                .split('\n')
                .enumerate()
                .map(|(k, l)| (7 + k as u64, l.strip_suffix('\r').unwrap_or(l).as_bytes()))
                .collect();
            assert_eq!(lines.iter().collect::<Vec<_>>(), want, "{text:?}");
        }
    }

    #[test]
    fn a_line_longer_than_a_block_stays_whole() {
        let long = vec![b'x'; BLOCK * 3 + 5];
        let mut text = b"a\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\nb\n");
        let lines: Vec<Vec<u8>> = blocks(&text)
            .iter()
            .flat_map(|b| b.iter().map(|(_, l)| l.to_vec()).collect::<Vec<_>>())
            .collect();
        assert_eq!(lines, vec![b"a".to_vec(), long, b"b".to_vec()]);
    }

    #[test]
    fn a_line_that_has_come_is_routed_without_waiting_for_more() {
        // A person typing: the first read brings one line; reading again
        // before it is handed on would wait for them.
        struct Typing<'a>(u32, &'a std::cell::Cell<bool>);
        impl Read for Typing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += 1;
                match self.0 {
                    1 => {
                        buf[..6].copy_from_slice(b"hello\n");
                        Ok(6)
                    }
                    _ if !self.1.get() => Err(std::io::Error::other("waited for more input")),
                    _ => Ok(0),
                }
            }
        }
        let handed = std::cell::Cell::new(false);
        let mut got = Vec::new();
        read_lines(
            Typing(0, &handed),
            &mut |l| {
                handed.set(true);
                got.extend(l.iter().map(|(n, l)| (n, l.to_vec())));
                true
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(got, vec![(1, b"hello".to_vec())]);
    }

    #[test]
    #[should_panic(expected = "block 3 is broken")]
    fn a_panicking_worker_stops_the_run_and_raises_its_panic() {
        let _ = ordered(
            2,
            |sink| {
                // Endless: only the panic stops it.
                let mut n = 0u64;
                while sink(n) {
                    n += 1;
                }
                Ok::<(), ()>(())
            },
            |n| {
                assert!(n != 3, "block 3 is broken");
                n
            },
            |_| Ok(()),
        );
    }

    #[test]
    fn empty_input_makes_no_block() {
        assert!(blocks(b"").is_empty());
    }

    #[test]
    fn results_come_back_in_order_whatever_the_workers() {
        for workers in [1, 2, 7] {
            let mut got = Vec::new();
            ordered(
                workers,
                |sink| {
                    for n in 0..500u64 {
                        if !sink(n) {
                            break;
                        }
                    }
                    Ok::<(), ()>(())
                },
                |n| {
                    // Uneven work, so results arrive out of order.
                    std::thread::sleep(std::time::Duration::from_micros((n * 7919) % 300));
                    n * 2
                },
                |r| {
                    got.push(r);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(got, (0..500).map(|n| n * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_consumer_error_stops_the_producer_and_the_workers() {
        let mut seen = 0;
        let r = ordered(
            2,
            |sink| {
                // Endless, but for the consumer's stop.
                let mut n = 0u64;
                while sink(n) {
                    n += 1;
                }
                Ok(())
            },
            |n| n,
            |n| {
                seen += 1;
                if n == 100 { Err("closed pipe") } else { Ok(()) }
            },
        );
        assert_eq!(r, Err("closed pipe"));
        assert_eq!(seen, 101);
    }

    #[test]
    fn a_producer_error_comes_after_the_results_before_it() {
        let mut got = Vec::new();
        let r = ordered(
            2,
            |sink| {
                for n in 0..10u64 {
                    sink(n);
                }
                Err("disk")
            },
            |n| n,
            |n| {
                got.push(n);
                Ok(())
            },
        );
        assert_eq!(r, Err("disk"));
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }
}
