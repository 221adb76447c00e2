//! Streamed response bodies as text lines — the framing of both Ollama's NDJSON and the
//! OpenAI API's server-sent events — and the driver that turns lines into [`ChatChunk`]s with a
//! protocol's [`LineDecoder`].
//!
//! Bytes are split at `\n` before decoding, so a multi-byte character cut between two network
//! chunks is reassembled, and a newline inside a token is safe because both protocols carry it
//! escaped inside JSON.

use std::collections::VecDeque;

use futures_util::StreamExt;
use futures_util::stream;
use reqwest::Response;

use crate::error::LlmError;
use crate::http::transport_error;
use crate::types::{ChatChunk, ChatStream};

/// A line longer than this is a broken or hostile server, not a token.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Splits bytes into lines (without the `\n` and an optional `\r` before it).
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial_line: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes; returns the lines they completed.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<Result<String, LlmError>> {
        let mut lines = Vec::new();
        let mut rest = bytes;
        while let Some(newline_at) = rest.iter().position(|byte| *byte == b'\n') {
            self.partial_line.extend_from_slice(&rest[..newline_at]);
            lines.push(decode_line(std::mem::take(&mut self.partial_line)));
            rest = &rest[newline_at + 1..];
        }
        self.partial_line.extend_from_slice(rest);
        if self.partial_line.len() > MAX_LINE_BYTES {
            self.partial_line.clear();
            lines.push(Err(LlmError::internal(format!("a streamed line exceeds {MAX_LINE_BYTES} bytes"))));
        }
        lines
    }

    /// The last line when the body did not end with a newline.
    pub(crate) fn finish(&mut self) -> Option<Result<String, LlmError>> {
        if self.partial_line.is_empty() {
            return None;
        }
        Some(decode_line(std::mem::take(&mut self.partial_line)))
    }
}

fn decode_line(mut bytes: Vec<u8>) -> Result<String, LlmError> {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|_| LlmError::internal("a streamed line is not utf-8"))
}

/// How one protocol reads its lines.
pub(crate) trait LineDecoder: Send + 'static {
    /// Decodes one line into the chunks it carries; `finished` once the protocol's end marker
    /// was seen (then the rest of the body is not read).
    fn decode_line(&mut self, line: &str) -> Result<Decoded, LlmError>;

    /// Called when the body ends before the end marker; may still finish the stream (an event
    /// that was not followed by a blank line).
    fn decode_end_of_body(&mut self) -> Result<Decoded, LlmError>;
}

/// What one line contributed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) chunks: Vec<ChatChunk>,
    pub(crate) finished: bool,
}

impl Decoded {
    pub(crate) fn nothing() -> Self {
        Self::default()
    }
}

struct LineStreamState<D> {
    response: Response,
    splitter: LineSplitter,
    lines: VecDeque<Result<String, LlmError>>,
    body_finished: bool,
    decoder: D,
    chunks: VecDeque<ChatChunk>,
    stream_finished: bool,
}

/// The chat chunks of a streamed `response`, decoded by `decoder`. The stream ends after the
/// protocol's end marker, or with one error (a transport failure, an error line, or a body
/// that ended without the end marker).
pub(crate) fn decode_chat_stream<D: LineDecoder>(response: Response, decoder: D) -> ChatStream {
    let state = LineStreamState {
        response,
        splitter: LineSplitter::default(),
        lines: VecDeque::new(),
        body_finished: false,
        decoder,
        chunks: VecDeque::new(),
        stream_finished: false,
    };
    stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    })
    .boxed()
}

impl<D: LineDecoder> LineStreamState<D> {
    async fn next_chunk(&mut self) -> Option<Result<ChatChunk, LlmError>> {
        loop {
            if let Some(chunk) = self.chunks.pop_front() {
                return Some(Ok(chunk));
            }
            if self.stream_finished {
                return None;
            }
            let decoded = match self.next_line().await {
                Some(Ok(line)) => self.decoder.decode_line(&line),
                Some(Err(error)) => Err(error),
                None => match self.decoder.decode_end_of_body() {
                    Ok(decoded) if decoded.finished => Ok(decoded),
                    Ok(_) => Err(LlmError::unavailable(
                        "the provider ended the stream before the answer was complete",
                    )),
                    Err(error) => Err(error),
                },
            };
            match decoded {
                Ok(decoded) => {
                    self.chunks.extend(decoded.chunks);
                    self.stream_finished = decoded.finished;
                }
                Err(error) => {
                    self.stream_finished = true;
                    return Some(Err(error));
                }
            }
        }
    }

    async fn next_line(&mut self) -> Option<Result<String, LlmError>> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Some(line);
            }
            if self.body_finished {
                return None;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.lines.extend(self.splitter.push(&bytes)),
                Ok(None) => {
                    self.body_finished = true;
                    self.lines.extend(self.splitter.finish());
                }
                Err(error) => {
                    self.body_finished = true;
                    return Some(Err(transport_error(error)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: Vec<Result<String, LlmError>>) -> Vec<String> {
        lines.into_iter().map(|line| line.unwrap()).collect()
    }

    #[test]
    fn lines_split_across_pushes_are_joined() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"{\"a\":").is_empty());
        assert_eq!(texts(splitter.push(b"1}\n{\"b\":2}\r\n{\"c\"")), ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(texts(splitter.push(b":3}\n\n")), ["{\"c\":3}", ""]);
        assert!(splitter.finish().is_none());
    }

    #[test]
    fn a_character_cut_between_pushes_survives() {
        let text = "héllo\n".as_bytes();
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(&text[..2]).is_empty());
        assert_eq!(texts(splitter.push(&text[2..])), ["héllo"]);
    }

    #[test]
    fn the_last_line_without_newline_is_kept() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"data: [DONE]").is_empty());
        assert_eq!(splitter.finish().unwrap().unwrap(), "data: [DONE]");
    }

    #[test]
    fn invalid_utf8_is_a_protocol_error() {
        let mut splitter = LineSplitter::default();
        let lines = splitter.push(b"\xff\xfe\n");
        assert!(matches!(lines.as_slice(), [Err(LlmError::Internal { .. })]));
    }
}
