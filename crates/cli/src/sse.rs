//! A server-sent events decoder small enough for the CLI's one stream (`sutazai chat`): bytes in,
//! complete events out. It follows the parts of the WHATWG rules a SutazAI gateway uses: `event:`
//! and `data:` fields (one optional space after the colon), several `data:` lines joined by a
//! newline, comments (`:` lines, the keep-alives) ignored, an event dispatched at a blank line,
//! and lines ending in `\n` or `\r\n`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` name; `None` for the default `message` event.
    pub(crate) name: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub(crate) data: String,
}

/// Accumulates bytes across reads: a chunk may end anywhere, even inside a UTF-8 character.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// Bytes after the last complete line.
    pending: Vec<u8>,
    name: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds `bytes`; returns the events they complete, in order.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        // A newline byte never occurs inside a multi-byte UTF-8 character, so complete lines
        // can be decoded on their own.
        while let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if let Some(event) = self.line(line) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.name = None;
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent { name: self.name.take(), data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            // `id` and `retry` matter to a reconnecting browser, not to a one-shot CLI.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent { name: name.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = "event: passages\ndata: {\"passages\":[]}\n\n: keep-alive\n\ndata: {\"delta\":\"caf\u{e9}\"}\r\n\r\ndata: a\ndata: b\n\nevent: done\ndata: {}\n\n";
        let expected = vec![
            event(Some("passages"), "{\"passages\":[]}"),
            event(None, "{\"delta\":\"caf\u{e9}\"}"),
            event(None, "a\nb"),
            event(Some("done"), "{}"),
        ];
        // Every split point, including inside the two-byte `é`.
        for split in 0..=stream.len() {
            let mut decoder = SseDecoder::default();
            let mut events = decoder.push(&stream.as_bytes()[..split]);
            events.extend(decoder.push(&stream.as_bytes()[split..]));
            assert_eq!(events, expected, "split at {split}");
        }
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"event: done\ndata: {}\n").is_empty());
        assert_eq!(decoder.push(b"\n"), vec![event(Some("done"), "{}")]);
        assert_eq!(decoder.push(b"data:no-space\n\n"), vec![event(None, "no-space")]);
    }
}
