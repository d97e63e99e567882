//! Server-sent events, as the WHATWG spec frames them: just enough to read
//! Mastodon's streaming API.
//!
//! The parser is fed the body in whatever chunks the network delivers; a
//! line or an event split across two chunks comes out whole. Comment lines
//! (`:` first) are the server's heartbeats: they carry nothing, but the
//! caller learns the stream is alive because bytes arrived.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the server sent none.
    pub event: String,
    /// The `data:` lines, joined by line breaks.
    pub data: String,
}

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds the next bytes of the body; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(e) = self.line(&String::from_utf8_lossy(&line)) {
                out.push(e);
            }
        }
        self.partial.extend_from_slice(rest);
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            // A blank line dispatches what was gathered (nothing if only
            // comments came).
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| SseEvent {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // `id` and `retry` matter to browsers' reconnection; the bot
            // reconnects on its own terms and catches up by polling.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_chunks() {
        let body = ":)\nevent: notification\ndata: {\"id\":\"14\"}\n\n:thump\n\nevent: delete\r\ndata: 1\r\n\r\ndata: a\ndata: b\n\n";
        // Whole, and one byte at a time: the same events.
        let whole = SseParser::default().feed(body.as_bytes());
        let mut p = SseParser::default();
        let bytewise: Vec<SseEvent> = body.as_bytes().iter().flat_map(|b| p.feed(&[*b])).collect();
        assert_eq!(whole, bytewise);
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: "notification".into(),
                    data: "{\"id\":\"14\"}".into()
                },
                SseEvent {
                    event: "delete".into(),
                    data: "1".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "a\nb".into()
                },
            ]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: notification\ndata: {}").is_empty());
        assert!(p.feed(b"\n").is_empty());
        assert_eq!(p.feed(b"\n").len(), 1);
    }
}
