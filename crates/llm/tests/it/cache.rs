//! The Redis response cache: hits, the whole-request key, bypass, statistics and clearing only
//! the cache's own keys.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sutazai_kit::redis::RedisKeys;
use sutazai_llm::{CachePolicy, CacheStats, ChatMessage, ChatRequest, LlmClient, ResponseCache};
use sutazai_testkit::TestRedis;
use sutazai_testkit::fake_ollama::FakeOllama;

use crate::{PROTOCOLS, Protocol, client, fake_with_models, requests_to, user_request};

/// A client with a response cache under the test's Redis prefix plus the gateway's `gw:`.
async fn cached_client(
    protocol: Protocol,
    fake: &FakeOllama,
    redis: &TestRedis,
) -> (LlmClient, ConnectionManager, RedisKeys) {
    let redis_settings = redis.settings();
    let connection = sutazai_kit::redis::connect(&redis_settings).await.unwrap();
    let keys = RedisKeys::new(&redis_settings, "gw:");
    let cache = ResponseCache::new(connection.clone(), &keys, Duration::from_secs(60));
    (client(protocol, fake).with_response_cache(cache), connection, keys)
}

async fn keys_under(connection: &mut ConnectionManager, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(connection).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn the_same_request_twice_is_answered_once_by_the_provider() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let redis = TestRedis::new();
        let (client, mut connection, keys) = cached_client(protocol, &fake, &redis).await;
        fake.script_reply("first answer");
        fake.script_reply("second answer");

        let first = client.chat(user_request("cache me"), CachePolicy::Use).await.unwrap();
        let second = client.chat(user_request("cache me"), CachePolicy::Use).await.unwrap();

        assert!(!first.cached);
        assert!(second.cached, "{protocol:?}");
        assert_eq!(second.response, first.response);
        assert_eq!(second.response.message.content, "first answer");
        assert_eq!(requests_to(&fake, protocol.chat_path()), 1);
        assert_eq!(client.cache_stats().await.unwrap(), CacheStats { hits: 1, misses: 1, keys: 1 });
        let stored = keys_under(&mut connection, &keys.key("llm:cache:")).await;
        assert_eq!(stored.len(), 1);
        let digest = stored[0].strip_prefix(&keys.key("llm:cache:")).unwrap();
        assert!(
            digest.len() == 64 && digest.chars().all(|character| character.is_ascii_hexdigit()),
            "{digest}"
        );
        let ttl_s: i64 = redis::cmd("TTL").arg(&stored[0]).query_async(&mut connection).await.unwrap();
        assert!((55..=60).contains(&ttl_s), "ttl {ttl_s}");
        redis.cleanup().await;
    }
}

#[tokio::test]
async fn prompts_sharing_a_long_prefix_get_their_own_answers() {
    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, _connection, _keys) = cached_client(Protocol::Ollama, &fake, &redis).await;
    let shared_prefix = "Please summarise the following report carefully. ".repeat(7);
    assert!(shared_prefix.len() >= 300);
    let about_cats = user_request(&format!("{shared_prefix}The report is about cats."));
    let about_dogs = user_request(&format!("{shared_prefix}The report is about dogs."));
    fake.script_reply("answer about cats");
    fake.script_reply("answer about dogs");

    let cats = client.chat(about_cats.clone(), CachePolicy::Use).await.unwrap();
    let dogs = client.chat(about_dogs.clone(), CachePolicy::Use).await.unwrap();
    let cats_again = client.chat(about_cats, CachePolicy::Use).await.unwrap();
    let dogs_again = client.chat(about_dogs, CachePolicy::Use).await.unwrap();

    assert_eq!((cats.cached, dogs.cached), (false, false));
    assert_eq!(cats_again.response.message.content, "answer about cats");
    assert_eq!(dogs_again.response.message.content, "answer about dogs");
    assert!(cats_again.cached && dogs_again.cached);
    assert_eq!(client.cache_stats().await.unwrap().keys, 2);
    redis.cleanup().await;
}

#[tokio::test]
async fn options_and_roles_are_part_of_the_key() {
    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, _connection, _keys) = cached_client(Protocol::Ollama, &fake, &redis).await;
    let base = user_request("same words");
    let warmer = ChatRequest { temperature: Some(1.5), ..base.clone() };
    let as_system = ChatRequest::new("", vec![ChatMessage::system("same words")]);

    for request in [base, warmer, as_system] {
        let outcome = client.chat(request, CachePolicy::Use).await.unwrap();
        assert!(!outcome.cached);
    }

    assert_eq!(requests_to(&fake, "/api/chat"), 3);
    assert_eq!(client.cache_stats().await.unwrap().keys, 3);
    redis.cleanup().await;
}

#[tokio::test]
async fn bypassing_neither_reads_nor_writes_the_cache() {
    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, _connection, _keys) = cached_client(Protocol::OpenAi, &fake, &redis).await;
    client.chat(user_request("cached"), CachePolicy::Use).await.unwrap();

    let bypassed = client.chat(user_request("cached"), CachePolicy::Bypass).await.unwrap();
    let not_stored =
        client.chat(user_request("never stored"), CachePolicy::from_use_cache(false)).await.unwrap();
    let still_not_stored = client.chat(user_request("never stored"), CachePolicy::Use).await.unwrap();

    assert!(!bypassed.cached && !not_stored.cached && !still_not_stored.cached);
    assert_eq!(requests_to(&fake, "/v1/chat/completions"), 4);
    assert_eq!(client.cache_stats().await.unwrap(), CacheStats { hits: 0, misses: 2, keys: 2 });
    redis.cleanup().await;
}

#[tokio::test]
async fn streams_are_never_cached() {
    use futures_util::StreamExt;

    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, _connection, _keys) = cached_client(Protocol::Ollama, &fake, &redis).await;

    let _items: Vec<_> = client.chat_stream(user_request("streamed")).await.unwrap().collect().await;
    let whole = client.chat(user_request("streamed"), CachePolicy::Use).await.unwrap();

    assert!(!whole.cached);
    assert_eq!(requests_to(&fake, "/api/chat"), 2);
    redis.cleanup().await;
}

#[tokio::test]
async fn a_cached_answer_is_served_while_the_provider_is_down() {
    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, _connection, _keys) = cached_client(Protocol::Ollama, &fake, &redis).await;
    let first = client.chat(user_request("remember this"), CachePolicy::Use).await.unwrap();
    fake.shutdown().await;

    let cached = client.chat(user_request("remember this"), CachePolicy::Use).await.unwrap();

    assert!(cached.cached);
    assert_eq!(cached.response, first.response);
    redis.cleanup().await;
}

#[tokio::test]
async fn clearing_deletes_only_the_cache_keys() {
    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, mut connection, keys) = cached_client(Protocol::Ollama, &fake, &redis).await;
    for prompt in ["one", "two", "three"] {
        client.chat(user_request(prompt), CachePolicy::Use).await.unwrap();
    }
    let neighbours =
        [keys.key("ratelimit:user-1"), keys.key("llm:cachex"), format!("{}auth:revoked", redis.key_prefix)];
    for neighbour in &neighbours {
        let () = redis::cmd("SET").arg(neighbour).arg("keep").query_async(&mut connection).await.unwrap();
    }

    let matched_nothing = client.clear_cache(Some("no-such-digest*")).await.unwrap();
    let deleted = client.clear_cache(None).await.unwrap();

    assert_eq!(matched_nothing, 0);
    assert_eq!(deleted, 3);
    assert_eq!(client.cache_stats().await.unwrap().keys, 0);
    let mut expected: Vec<String> = neighbours.to_vec();
    expected.sort();
    assert_eq!(keys_under(&mut connection, &redis.key_prefix).await, expected);
    redis.cleanup().await;
}

#[tokio::test]
async fn clearing_with_a_pattern_stays_inside_the_cache() {
    let fake = fake_with_models().await;
    let redis = TestRedis::new();
    let (client, mut connection, keys) = cached_client(Protocol::Ollama, &fake, &redis).await;
    client.chat(user_request("only entry"), CachePolicy::Use).await.unwrap();
    let outside = keys.key("session:abc");
    let () = redis::cmd("SET").arg(&outside).arg("keep").query_async(&mut connection).await.unwrap();

    // A pattern cannot climb out of the prefix: it is appended after `llm:cache:`.
    let deleted = client.clear_cache(Some("*")).await.unwrap();

    assert_eq!(deleted, 1);
    assert_eq!(keys_under(&mut connection, &redis.key_prefix).await, [outside]);
    redis.cleanup().await;
}

#[tokio::test]
async fn without_a_cache_stats_are_zero_and_clear_deletes_nothing() {
    let fake = fake_with_models().await;
    let client = client(Protocol::Ollama, &fake);
    client.chat(user_request("uncached"), CachePolicy::Use).await.unwrap();

    assert_eq!(client.cache_stats().await.unwrap(), CacheStats { hits: 0, misses: 0, keys: 0 });
    assert_eq!(client.clear_cache(None).await.unwrap(), 0);
}
