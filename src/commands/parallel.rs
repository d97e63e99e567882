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
//! order (it holds stdout, which cannot move to another thread). Every
//! channel is bounded, so memory stays a few blocks per worker however
//! large the input; a consumer that stops (a closed pipe) ends the workers
//! and then the producer, which both find their channel closed.

use std::collections::BTreeMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, mpsc};

/// How many workers to route with: `--threads`, or one per core.
pub fn workers(threads: Option<NonZeroUsize>) -> usize {
    threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
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
        let (done_tx, done_rx) = mpsc::sync_channel::<(u64, T)>(workers * 2);
        // Owned by the workers alone, so that the last one to stop closes
        // the channel and a producer still sending learns nobody listens.
        let job_rx = Arc::new(Mutex::new(job_rx));
        let producer = scope.spawn(move || {
            let mut seq = 0u64;
            produce(&mut |job| {
                let sent = job_tx.send((seq, job)).is_ok();
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
                    if done_tx.send((seq, work(job))).is_err() {
                        break;
                    }
                }
            });
        }
        drop((done_tx, job_rx));
        // Results arrive in any order; each waits here until its turn.
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut consumed = Ok(());
        for (seq, result) in done_rx.iter() {
            waiting.insert(seq, result);
            while let Some(result) = waiting.remove(&next) {
                next += 1;
                consumed = consume(result);
                if consumed.is_err() {
                    break;
                }
            }
            if consumed.is_err() {
                break;
            }
        }
        // Closing our end stops the workers, whose exit closes the jobs'
        // channel, which stops the producer.
        drop(done_rx);
        let produced = producer.join().expect("the producer does not panic");
        consumed.and(produced)
    })
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
        body.split(|b| *b == b'\n').enumerate().map(|(k, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (self.first + k as u64, line)
        })
    }
}

/// About this many bytes a block: large enough that handing it over costs
/// nothing next to routing it, small enough that two workers get work from
/// a file of a few thousand lines.
pub const BLOCK: usize = 64 << 10;

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
        // Fill to the block size, and on until a line ends in it.
        while !eof && (block.len() < BLOCK || memchr::memrchr(b'\n', &block).is_none()) {
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
