//! Model listing, validation of the requested model, and embeddings.

use sutazai_llm::{CachePolicy, ChatMessage, ChatRequest, LlmError};
use sutazai_testkit::fake_ollama::{DEFAULT_EMBEDDING_DIMENSION, fake_embedding};
use sutazai_types::ServiceErrorCode;

use crate::{CHAT_MODEL, EMBEDDING_MODEL, PROTOCOLS, client, fake_with_models, requests_to, user_request};

#[tokio::test]
async fn models_are_listed_with_what_the_provider_tells() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;

        let models = client(protocol, &fake).list_models().await.unwrap();

        let names: Vec<&str> = models.iter().map(|model| model.name.as_str()).collect();
        assert_eq!(names, [EMBEDDING_MODEL, CHAT_MODEL], "{protocol:?}");
        if protocol == crate::Protocol::Ollama {
            assert_eq!(models[1].size_bytes, Some(600_000_000));
            assert_eq!(models[1].family.as_deref(), Some("llama"));
        } else {
            assert_eq!(models[1].size_bytes, None);
        }
    }
}

#[tokio::test]
async fn an_unknown_model_is_refused_with_the_available_ones() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);

        let error = client
            .chat(ChatRequest::new("mistral", vec![ChatMessage::user("hi")]), CachePolicy::Use)
            .await
            .unwrap_err();

        assert_eq!(
            error,
            LlmError::UnknownModel {
                model: "mistral".to_owned(),
                available: vec![EMBEDDING_MODEL.to_owned(), CHAT_MODEL.to_owned()],
            },
            "{protocol:?}"
        );
        assert_eq!(error.code(), ServiceErrorCode::BadRequest);
        assert_eq!(
            error.to_string(),
            "unknown model `mistral`; available models: all-minilm:latest, llama3.2:1b"
        );
        assert_eq!(requests_to(&fake, protocol.chat_path()), 0, "never sent to the provider");
    }
}

#[tokio::test]
async fn the_model_list_is_fetched_once_for_many_calls() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);

        for _ in 0..3 {
            client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap();
        }
        client.list_models().await.unwrap();

        assert_eq!(requests_to(&fake, protocol.models_path()), 1, "{protocol:?}");
        assert_eq!(requests_to(&fake, protocol.chat_path()), 3);
    }
}

#[tokio::test]
async fn a_model_removed_after_listing_is_reported_with_the_fresh_list() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        client.list_models().await.unwrap();
        fake.remove_model(CHAT_MODEL);

        let error = client.chat(user_request("hi"), CachePolicy::Bypass).await.unwrap_err();

        assert_eq!(
            error,
            LlmError::UnknownModel {
                model: CHAT_MODEL.to_owned(),
                available: vec![EMBEDDING_MODEL.to_owned()]
            },
            "{protocol:?}"
        );
        assert_eq!(requests_to(&fake, protocol.chat_path()), 1, "a 404 is not retried");
    }
}

#[tokio::test]
async fn embeddings_come_back_one_per_input_in_order() {
    for protocol in PROTOCOLS {
        let fake = fake_with_models().await;
        let client = client(protocol, &fake);
        let inputs = vec!["A man is eating food.".to_owned(), "The new movie is awesome.".to_owned()];

        let vectors = client.embed("all-minilm", inputs.clone()).await.unwrap();

        assert_eq!(vectors.len(), 2, "{protocol:?}");
        for (vector, input) in vectors.iter().zip(&inputs) {
            assert_eq!(*vector, fake_embedding(input, DEFAULT_EMBEDDING_DIMENSION), "{protocol:?}");
        }
        assert!(client.embed(EMBEDDING_MODEL, Vec::new()).await.unwrap().is_empty());
        let unknown = client.embed("nomic-embed-text", inputs).await.unwrap_err();
        assert!(matches!(unknown, LlmError::UnknownModel { .. }), "{unknown:?}");
    }
}
