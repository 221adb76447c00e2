//! What the client adds around a provider's stream: an idle timeout between items, and holding
//! the inference permit until the stream ends (the model is busy until the last token).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;

use crate::error::LlmError;
use crate::slots::InferencePermit;
use crate::types::{ChatChunk, ChatStream};

struct GuardState {
    inner: ChatStream,
    idle_timeout: Duration,
    permit: Option<InferencePermit>,
    finished: bool,
}

/// `inner`, failing with [`LlmError::Timeout`] when no item arrives within `idle_timeout`, and
/// releasing `permit` once the stream has ended (or is dropped).
pub(super) fn guard_stream(
    inner: ChatStream,
    idle_timeout: Duration,
    permit: Option<InferencePermit>,
) -> ChatStream {
    let state = GuardState { inner, idle_timeout, permit, finished: false };
    stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        let item = match tokio::time::timeout(state.idle_timeout, state.inner.next()).await {
            Ok(Some(item)) => item,
            // Every stream must end with `Done` or an error; anything else lost the answer's end.
            Ok(None) => Err(LlmError::internal("the provider's stream ended without completion")),
            Err(_) => Err(LlmError::Timeout {
                timeout_ms: u64::try_from(state.idle_timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        };
        if matches!(item, Err(_) | Ok(ChatChunk::Done { .. })) {
            state.finished = true;
            state.permit = None;
        }
        Some((item, state))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::types::Usage;

    fn done() -> ChatChunk {
        ChatChunk::Done { usage: Usage::default(), finish_reason: "stop".to_owned() }
    }

    #[tokio::test]
    async fn the_permit_is_released_when_done_arrives() {
        let permits = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let inner = stream::iter(vec![Ok(ChatChunk::Delta("a".to_owned())), Ok(done())]).boxed();
        let mut guarded = guard_stream(inner, Duration::from_secs(5), Some(InferencePermit::new(permit)));
        assert_eq!(guarded.next().await.unwrap().unwrap(), ChatChunk::Delta("a".to_owned()));
        assert_eq!(permits.available_permits(), 0);
        assert_eq!(guarded.next().await.unwrap().unwrap(), done());
        assert_eq!(permits.available_permits(), 1);
        assert!(guarded.next().await.is_none());
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        let inner = stream::pending().boxed();
        let mut guarded = guard_stream(inner, Duration::from_millis(20), None);
        assert_eq!(guarded.next().await.unwrap().unwrap_err(), LlmError::Timeout { timeout_ms: 20 });
        assert!(guarded.next().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_ending_without_done_is_an_error() {
        let inner = stream::iter(vec![Ok(ChatChunk::Delta("a".to_owned()))]).boxed();
        let items: Vec<_> = guard_stream(inner, Duration::from_secs(5), None).collect().await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(LlmError::Internal { .. })));
    }
}
