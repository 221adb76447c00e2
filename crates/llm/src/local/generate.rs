//! One generation with the embedded chat model: the prompt through the model once (filling the
//! KV cache), then a token at a time with the request's sampling, until an end token,
//! `max_tokens`, the context limit or a stop string; text is handed out as soon as it is
//! known not to be the start of a stop string.

use candle_transformers::generation::{LogitsProcessor, Sampling};

use super::chat_model::{ChatModel, inference_error};
use crate::error::LlmError;
use crate::types::{ChatRequest, Usage};

/// Ollama's defaults, so an unset option samples as it would there.
const DEFAULT_TEMPERATURE: f32 = 0.8;
const DEFAULT_TOP_P: f32 = 0.9;
const DEFAULT_TOP_K: usize = 40;

/// A generation ready to run: the prompt's tokens and the limits and sampling that apply.
#[derive(Debug)]
pub(crate) struct Plan {
    prompt_tokens: Vec<u32>,
    max_new_tokens: usize,
    sampling: Sampling,
    seed: u64,
    stop: Vec<String>,
}

/// How a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finish {
    /// Token counts.
    pub(crate) usage: Usage,
    /// `stop` (end token or stop string), `length` (`max_tokens` or the context).
    pub(crate) reason: &'static str,
}

impl Plan {
    /// Tokenizes the conversation and checks it fits: a prompt that leaves no room for an
    /// answer within `context_tokens` (or the model's own context) is refused.
    pub(crate) fn new(
        model: &ChatModel,
        request: &ChatRequest,
        context_tokens: usize,
        default_max_tokens: u32,
    ) -> Result<Self, LlmError> {
        check_sampling(request)?;
        let prompt_tokens = model.prompt_tokens(&request.messages)?;
        let context = context_tokens.min(model.trained_context());
        if prompt_tokens.len() >= context {
            return Err(LlmError::BadRequest {
                reason: format!(
                    "the conversation is {} tokens long; the local model takes at most {} tokens of prompt and answer together",
                    prompt_tokens.len(),
                    context
                ),
            });
        }
        let requested = request.max_tokens.unwrap_or(default_max_tokens);
        let max_new_tokens =
            usize::try_from(requested).unwrap_or(usize::MAX).min(context - prompt_tokens.len());
        let seed = request.seed.unwrap_or_else(rand::random);
        let stop = request.stop.iter().filter(|stop| !stop.is_empty()).cloned().collect();
        Ok(Self { prompt_tokens, max_new_tokens, sampling: sampling(request), seed, stop })
    }

    /// Runs the generation, handing each new piece of text to `emit`; `emit` answers false, or
    /// `abandoned` true before any token, when nobody wants more (the generation then stops and
    /// reports `cancelled`).
    pub(crate) fn run(
        self,
        model: &ChatModel,
        abandoned: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(String) -> bool,
    ) -> Result<Finish, LlmError> {
        let mut session = model.session();
        let mut sampler = LogitsProcessor::from_sampling(self.seed, self.sampling.clone());
        let mut text = TextTracker::new(self.stop.clone());
        let mut generated: Vec<u32> = Vec::new();
        let prompt_len = self.prompt_tokens.len();
        let mut logits = ChatModel::next_logits(&mut session, &self.prompt_tokens, 0)?;
        let mut reason = "length";
        while generated.len() < self.max_new_tokens {
            if abandoned() {
                reason = "cancelled";
                break;
            }
            let token = sampler.sample(&logits).map_err(|error| inference_error(&error))?;
            if model.is_end(token) {
                reason = "stop";
                break;
            }
            generated.push(token);
            let decoded = model
                .tokenizer()
                .decode(&generated, true)
                .map_err(|error| LlmError::internal(format!("decode generated tokens: {error}")))?;
            let (piece, stopped) = text.advance(&decoded);
            if !piece.is_empty() && !emit(piece) {
                reason = "cancelled";
                break;
            }
            if stopped {
                reason = "stop";
                break;
            }
            if generated.len() == self.max_new_tokens {
                break;
            }
            logits = ChatModel::next_logits(&mut session, &[token], prompt_len + generated.len() - 1)?;
        }
        // Text held back as a possible stop string's start belongs to the answer after all.
        if reason != "cancelled" && text.stopped.is_none() {
            let rest = text.finish();
            if !rest.is_empty() {
                emit(rest);
            }
        }
        let usage = Usage {
            prompt_tokens: u32::try_from(prompt_len).unwrap_or(u32::MAX),
            completion_tokens: u32::try_from(generated.len()).unwrap_or(u32::MAX),
        };
        Ok(Finish { usage, reason })
    }
}

/// Sampling options a library caller could get wrong (the gateway checks them too).
fn check_sampling(request: &ChatRequest) -> Result<(), LlmError> {
    let refuse = |reason: &str| Err(LlmError::BadRequest { reason: reason.to_owned() });
    if request.temperature.is_some_and(|temperature| temperature.is_nan() || temperature < 0.0) {
        return refuse("temperature must be 0 or more");
    }
    if request.top_p.is_some_and(|top_p| top_p.is_nan() || top_p <= 0.0 || top_p > 1.0) {
        return refuse("top_p must be greater than 0 and at most 1");
    }
    Ok(())
}

/// The request's sampling: greedy at temperature 0, otherwise top-k then top-p with Ollama's
/// defaults for what the request leaves out.
fn sampling(request: &ChatRequest) -> Sampling {
    let temperature = f64::from(request.temperature.unwrap_or(DEFAULT_TEMPERATURE));
    if temperature <= 0.0 {
        return Sampling::ArgMax;
    }
    let p = f64::from(request.top_p.unwrap_or(DEFAULT_TOP_P));
    let k = request.top_k.map_or(DEFAULT_TOP_K, |k| usize::try_from(k).unwrap_or(usize::MAX));
    match (k, p >= 1.0) {
        (0, true) => Sampling::All { temperature },
        (0, false) => Sampling::TopP { p, temperature },
        (k, true) => Sampling::TopK { k, temperature },
        (k, false) => Sampling::TopKThenTopP { k, p, temperature },
    }
}

/// Turns the decoded text of all tokens so far into pieces to hand out: holds back an
/// incomplete UTF-8 sequence and any tail that may be the start of a stop string, and cuts the
/// text at the first stop string.
#[derive(Debug)]
struct TextTracker {
    stops: Vec<String>,
    /// Bytes of the decoded text already handed out.
    emitted: usize,
    /// The decoded text as last seen.
    latest: String,
    /// Where a stop string started, once one appeared.
    stopped: Option<usize>,
}

impl TextTracker {
    fn new(stops: Vec<String>) -> Self {
        Self { stops, emitted: 0, latest: String::new(), stopped: None }
    }

    /// The next piece to hand out given the whole decoded text, and whether a stop string
    /// ended it.
    fn advance(&mut self, decoded: &str) -> (String, bool) {
        self.latest = decoded.to_owned();
        // A token that ends inside a multi-byte character decodes to U+FFFD until the rest
        // arrives.
        let settled = decoded.strip_suffix('\u{FFFD}').unwrap_or(decoded);
        let search_from = self.emitted.min(settled.len());
        let found = self
            .stops
            .iter()
            .filter_map(|stop| {
                let from = floor_char_boundary(settled, search_from.saturating_sub(stop.len()));
                settled[from..].find(stop.as_str()).map(|at| from + at)
            })
            .min();
        if let Some(at) = found {
            self.stopped = Some(at);
            let piece = settled.get(self.emitted..at).unwrap_or_default().to_owned();
            self.emitted = at.max(self.emitted);
            return (piece, true);
        }
        let held = self.stops.iter().map(|stop| partial_suffix(settled, stop)).max().unwrap_or(0);
        let safe_end = floor_char_boundary(settled, settled.len() - held).max(self.emitted);
        let piece = settled.get(self.emitted..safe_end).unwrap_or_default().to_owned();
        self.emitted = safe_end;
        (piece, false)
    }

    /// What is left once generation ends without a stop string.
    fn finish(&mut self) -> String {
        let end = self.stopped.unwrap_or(self.latest.len());
        let rest = self.latest.get(self.emitted..end).unwrap_or_default().to_owned();
        self.emitted = end;
        rest
    }
}

/// Length of the longest proper prefix of `stop` that `text` ends with.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .filter(|&length| stop.is_char_boundary(length))
        .find(|&length| text.ends_with(&stop[..length]))
        .unwrap_or(0)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(stops: &[&str], steps: &[&str]) -> (Vec<String>, bool, String) {
        let mut tracker = TextTracker::new(stops.iter().map(|stop| (*stop).to_owned()).collect());
        let mut out = Vec::new();
        let mut stopped = false;
        for step in steps {
            let (piece, hit) = tracker.advance(step);
            out.push(piece);
            if hit {
                stopped = true;
                break;
            }
        }
        let rest = if stopped { String::new() } else { tracker.finish() };
        (out, stopped, rest)
    }

    #[test]
    fn text_is_handed_out_as_it_grows() {
        let (out, stopped, rest) = pieces(&[], &["He", "Hello", "Hello world"]);
        assert_eq!(out, ["He", "llo", " world"]);
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn a_stop_string_cuts_the_text_even_across_tokens() {
        let (out, stopped, _) = pieces(&["END"], &["ok E", "ok EN", "ok END more"]);
        assert_eq!(out.concat(), "ok ");
        assert!(stopped);
        assert_eq!(out, ["ok ", "", ""]);
    }

    #[test]
    fn a_held_back_prefix_is_released_when_it_is_not_a_stop() {
        let (out, stopped, rest) = pieces(&["END"], &["ok E", "ok Ex"]);
        assert_eq!(out, ["ok ", "Ex"]);
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn an_incomplete_character_waits_for_its_last_byte() {
        let (out, _, rest) = pieces(&[], &["caf\u{FFFD}", "café"]);
        assert_eq!(out, ["caf", "é"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn text_held_back_at_the_end_is_returned_by_finish() {
        let (out, stopped, rest) = pieces(&["END"], &["ok EN"]);
        assert_eq!(out, ["ok "]);
        assert!(!stopped);
        assert_eq!(rest, "EN");
    }

    #[test]
    fn temperature_zero_is_greedy_and_options_select_the_sampler() {
        let mut request = ChatRequest { temperature: Some(0.0), ..ChatRequest::default() };
        assert!(matches!(sampling(&request), Sampling::ArgMax));
        request.temperature = Some(0.7);
        request.top_p = Some(1.0);
        request.top_k = Some(0);
        assert!(matches!(sampling(&request), Sampling::All { .. }));
        request.top_k = Some(5);
        assert!(matches!(sampling(&request), Sampling::TopK { k: 5, .. }));
        request.top_p = Some(0.5);
        request.top_k = None;
        assert!(matches!(sampling(&request), Sampling::TopKThenTopP { k: 40, .. }));
    }
}
