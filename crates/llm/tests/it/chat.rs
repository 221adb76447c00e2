//! Whole and streamed chats over both protocols: answers, default model, option mapping, the
//! bearer key.

use futures_util::StreamExt;
use serde_json::json;
use sutazai_kit::config::Secret;
use sutazai_llm::{CachePolicy, ChatChunk, ChatMessage, ChatRequest, ChatRole, LlmClient, Usage};

use crate::{CHAT_MODEL, PROTOCOLS, Protocol, client, fake_with_models, requests_to, settings, user_request};

#[tokio::test]
async fn a_whole_chat_returns_the_answer_with_usage() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        fake.script_reply("Paris is the capital of France.");
        let client = client(protocol, &fake);

        let outcome =
            client.chat(user_request("what is the capital of france"), CachePolicy::Use).await.unwrap();

        assert!(!outcome.cached, "{protocol:?}");
        let response = outcome.response;
        assert_eq!(response.message.role, ChatRole::Assistant);
        assert_eq!(response.message.content, "Paris is the capital of France.", "{protocol:?}");
        assert_eq!(response.model, CHAT_MODEL);
        assert_eq!(response.finish_reason, "stop");
        assert_eq!(response.usage, Usage { prompt_tokens: 6, completion_tokens: 6 }, "{protocol:?}");
        let chat_request =
            fake.requests().into_iter().find(|request| request.path == protocol.chat_path()).unwrap();
        assert_eq!(chat_request.body["model"], CHAT_MODEL, "the default model is sent");
        assert_eq!(chat_request.body["stream"], false);
    }
}

#[tokio::test]
async fn a_stream_concatenates_to_the_answer_and_keeps_newlines() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let reply = "first line\nsecond line\n\nlast";
        fake.script_reply(reply);
        let client = client(protocol, &fake);

        let stream = client.chat_stream(user_request("three lines please")).await.unwrap();
        let items: Vec<ChatChunk> = stream.map(|item| item.unwrap()).collect().await;

        let (done, deltas) = items.split_last().unwrap();
        let mut text = String::new();
        for delta in deltas {
            let ChatChunk::Delta(piece) = delta else { panic!("only the last item is done: {items:?}") };
            text.push_str(piece);
        }
        assert_eq!(text, reply, "{protocol:?}");
        assert!(
            deltas.iter().any(
                |delta| matches!(delta, ChatChunk::Delta(piece) if piece.starts_with('\n') && piece.len() > 1)
            ),
            "a token carrying a newline arrives intact: {deltas:?}"
        );
        assert_eq!(
            *done,
            ChatChunk::Done {
                usage: Usage { prompt_tokens: 3, completion_tokens: 5 },
                finish_reason: "stop".to_owned()
            },
            "{protocol:?}"
        );
        assert_eq!(requests_to(&fake, protocol.chat_path()), 1);
    }
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        let mut request = user_request("one two three four five");
        request.max_tokens = Some(2);

        let whole = client.chat(request.clone(), CachePolicy::Bypass).await.unwrap().response;
        let streamed: Vec<ChatChunk> =
            client.chat_stream(request).await.unwrap().map(|item| item.unwrap()).collect().await;

        assert_eq!(whole.message.content, "one two", "{protocol:?}");
        assert_eq!(whole.finish_reason, "length");
        assert!(
            matches!(streamed.last(), Some(ChatChunk::Done { finish_reason, .. }) if finish_reason == "length")
        );
    }
}

#[tokio::test]
async fn sampling_options_reach_the_server_under_its_names() {
    let fake = fake_with_models().await;
    let request = ChatRequest {
        model: "Llama3.2:1B".to_owned(),
        messages: vec![ChatMessage::system("be brief"), ChatMessage::user("hi")],
        temperature: Some(0.5),
        top_p: Some(0.25),
        top_k: Some(20),
        max_tokens: Some(64),
        seed: Some(42),
        stop: vec!["\n\n".to_owned()],
    };

    client(Protocol::Ollama, &fake).chat(request.clone(), CachePolicy::Bypass).await.unwrap();
    client(Protocol::OpenAi, &fake).chat(request, CachePolicy::Bypass).await.unwrap();

    let recorded = fake.requests();
    let native = recorded.iter().find(|request| request.path == "/api/chat").unwrap();
    assert_eq!(native.body["model"], "Llama3.2:1B", "a model differing only in case is accepted as is");
    assert_eq!(
        native.body["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(
        native.body["options"],
        json!({"temperature": 0.5, "top_p": 0.25, "top_k": 20, "seed": 42, "num_predict": 64, "stop": ["\n\n"]})
    );
    let openai = recorded.iter().find(|request| request.path == "/v1/chat/completions").unwrap();
    for (field, value) in [
        ("temperature", json!(0.5)),
        ("top_p", json!(0.25)),
        ("max_tokens", json!(64)),
        ("seed", json!(42)),
        ("stop", json!(["\n\n"])),
    ] {
        assert_eq!(openai.body[field], value, "{field}");
    }
}

#[tokio::test]
async fn the_api_key_is_sent_as_a_bearer_token_and_never_shown() {
    let fake = fake_with_models().await;
    let api_key = "sk-integration-test-key-0123456789";
    let mut openai_settings = settings(Protocol::OpenAi, &Protocol::OpenAi.base_url(&fake));
    openai_settings.api_key = Some(Secret::new(api_key));
    let client = LlmClient::from_settings(&openai_settings).unwrap();

    client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap();
    fake.fail_next(1, sutazai_testkit::fake_ollama::StatusCode::UNAUTHORIZED);
    let error = client.chat(user_request("hi again"), CachePolicy::Bypass).await.unwrap_err();

    for request in fake.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {api_key}").as_str()),
            "{}",
            request.path
        );
    }
    assert_eq!(error.code(), sutazai_types::ServiceErrorCode::Unavailable);
    assert!(!error.to_string().contains(api_key));
    assert!(!format!("{error:?} {client:?}").contains(api_key));
}

#[tokio::test]
async fn a_chat_without_messages_is_refused_before_any_request() {
    let fake = fake_with_models().await;
    let client: LlmClient = client(Protocol::Ollama, &fake);

    let error = client.chat(ChatRequest::new(CHAT_MODEL, Vec::new()), CachePolicy::Use).await.unwrap_err();

    assert_eq!(error.code(), sutazai_types::ServiceErrorCode::BadRequest);
    assert!(fake.requests().is_empty());
}
