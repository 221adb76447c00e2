//! An unreachable, failing, throttling, slow or crashing provider, and queueing for inference
//! slots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sutazai_llm::{CachePolicy, ChatChunk, LlmClient, LlmError, LocalSlots};
use sutazai_testkit::fake_ollama::{ScriptedReply, StatusCode};
use sutazai_types::ServiceErrorCode;
use tokio::sync::Semaphore;

use crate::{
    PROTOCOLS, Protocol, client, closed_port_url, fake_with_models, requests_to, settings, user_request,
};

#[tokio::test]
async fn a_stopped_provider_is_unavailable() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        client.list_models().await.unwrap();
        fake.shutdown().await;

        let error = client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap_err();
        let stream_error = client.chat_stream(user_request("hi")).await.err().unwrap();

        for error in [error, stream_error] {
            assert!(matches!(error, LlmError::Unavailable { .. }), "{protocol:?}: {error:?}");
            assert_eq!(error.code(), ServiceErrorCode::Unavailable);
        }
    }
}

#[tokio::test]
async fn a_closed_port_is_unavailable_and_says_why() {
    for protocol in PROTOCOLS {
        let base_url = closed_port_url().await;
        let client = LlmClient::from_settings(&settings(protocol, &base_url)).unwrap();

        let error = client.chat(user_request("hi"), CachePolicy::Use).await.unwrap_err();

        let LlmError::Unavailable { reason } = &error else { panic!("{protocol:?}: {error:?}") };
        assert!(reason.to_lowercase().contains("connect"), "{reason}");
        assert!(!reason.contains(&base_url), "no url in the error: {reason}");
        assert!(client.probe().await.is_err());
    }
}

#[tokio::test]
async fn a_503_is_retried_and_then_succeeds() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        client.list_models().await.unwrap();
        fake.fail_next(1, StatusCode::SERVICE_UNAVAILABLE);
        fake.script_reply("after the retry");

        let outcome = client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap();

        assert_eq!(outcome.response.message.content, "after the retry", "{protocol:?}");
        assert_eq!(requests_to(&fake, protocol.chat_path()), 2);
    }
}

#[tokio::test]
async fn persistent_5xx_ends_unavailable_after_the_configured_retries() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        client.list_models().await.unwrap();
        fake.fail_next(5, StatusCode::INTERNAL_SERVER_ERROR);

        let error = client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap_err();

        assert_eq!(
            error,
            LlmError::Unavailable {
                reason: "http 500 from the provider: llama runner process has terminated: exit status 2"
                    .to_owned()
            },
            "{protocol:?}"
        );
        assert_eq!(requests_to(&fake, protocol.chat_path()), 3, "one attempt and two retries");
    }
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        client.list_models().await.unwrap();
        fake.throttle_next(1, Duration::from_secs(1));
        let started_at = Instant::now();

        let stream = client.chat_stream(user_request("hello")).await.unwrap();
        let items: Vec<ChatChunk> = stream.map(|item| item.unwrap()).collect().await;

        let throttled_at =
            fake.requests().iter().filter(|request| request.path == protocol.chat_path()).count();
        assert_eq!(throttled_at, 2, "{protocol:?}");
        assert!(started_at.elapsed() >= Duration::from_secs(1), "waited {:?}", started_at.elapsed());
        assert_eq!(items[0], ChatChunk::Delta("hello".to_owned()));
    }
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once_with_the_delay() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        client.list_models().await.unwrap();
        fake.throttle_next(1, Duration::from_secs(30));
        let started_at = Instant::now();

        let error = client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap_err();

        assert_eq!(error, LlmError::RateLimited { retry_after_s: Some(30) }, "{protocol:?}");
        assert_eq!(error.code(), ServiceErrorCode::TooManyRequests);
        assert!(started_at.elapsed() < Duration::from_secs(1));
        assert_eq!(requests_to(&fake, protocol.chat_path()), 1);
    }
}

#[tokio::test]
async fn a_slow_provider_times_out_without_retry() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let mut slow_settings = settings(protocol, &protocol.base_url(&fake));
        slow_settings.request_timeout_ms = 200;
        let client = LlmClient::from_settings(&slow_settings).unwrap();
        client.list_models().await.unwrap();
        fake.set_latency(Duration::from_millis(1_000));

        let error = client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap_err();

        assert_eq!(error, LlmError::Timeout { timeout_ms: 200 }, "{protocol:?}");
        assert_eq!(error.code(), ServiceErrorCode::Timeout);
        assert_eq!(requests_to(&fake, protocol.chat_path()), 1);
    }
}

#[tokio::test]
async fn a_stalled_stream_times_out_between_tokens() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let mut slow_settings = settings(protocol, &protocol.base_url(&fake));
        slow_settings.request_timeout_ms = 300;
        let client = LlmClient::from_settings(&slow_settings).unwrap();
        fake.set_chunk_delay(Duration::from_millis(2_000));

        let mut stream = client.chat_stream(user_request("two words")).await.unwrap();

        assert_eq!(stream.next().await.unwrap().unwrap(), ChatChunk::Delta("two".to_owned()), "{protocol:?}");
        assert_eq!(stream.next().await.unwrap().unwrap_err(), LlmError::Timeout { timeout_ms: 300 });
        assert!(stream.next().await.is_none());
    }
}

#[tokio::test]
async fn a_crash_during_streaming_ends_the_stream_with_unavailable() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        fake.script_reply(
            ScriptedReply::text("partial answer here").with_stream_error_after(1, "runner crashed"),
        );
        let client = client(protocol, &fake);

        let items: Vec<_> = client.chat_stream(user_request("hi")).await.unwrap().collect().await;

        assert_eq!(items.len(), 2, "{protocol:?}: {items:?}");
        assert_eq!(items[0], Ok(ChatChunk::Delta("partial".to_owned())));
        assert_eq!(
            items[1],
            Err(LlmError::Unavailable {
                reason: "the model failed during generation: runner crashed".to_owned()
            }),
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn inference_calls_queue_for_a_free_slot() {
    let fake = fake_with_models().await;
    let permits = Arc::new(Semaphore::new(1));
    let client = client(Protocol::Ollama, &fake)
        .with_inference_slots(Arc::new(LocalSlots::shared(Arc::clone(&permits))));
    client.list_models().await.unwrap();
    fake.set_latency(Duration::from_millis(300));
    let started_at = Instant::now();

    let (first, second) = tokio::join!(
        client.chat(user_request("one"), CachePolicy::Bypass),
        client.chat(user_request("two"), CachePolicy::Bypass)
    );

    first.unwrap();
    second.unwrap();
    assert!(
        started_at.elapsed() >= Duration::from_millis(600),
        "ran one after the other: {:?}",
        started_at.elapsed()
    );
    assert_eq!(permits.available_permits(), 1);

    let mut stream = client.chat_stream(user_request("streaming holds the slot")).await.unwrap();
    assert_eq!(permits.available_permits(), 0, "a stream holds its slot until it ends");
    while stream.next().await.is_some() {}
    assert_eq!(permits.available_permits(), 1);
}
