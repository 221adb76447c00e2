//! Tests of the fake over real HTTP, a hyper client against a running server, grouped by what
//! they exercise; this file holds the client helpers they share.

mod completion;
mod embed;
mod openai;
mod server;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::FakeOllama;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send_raw(fake: &FakeOllama, method: Method, path: &str, body: &str) -> hyper::Response<Incoming> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{}", fake.base_url(), path))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid request");
    http_client().request(request).await.expect("fake ollama answers")
}

struct TextResponse {
    status: StatusCode,
    content_type: String,
    retry_after: Option<String>,
    body: String,
}

impl TextResponse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("json body")
    }

    fn ndjson_lines(&self) -> Vec<Value> {
        assert!(self.body.ends_with('\n'), "ndjson ends with a newline: {:?}", self.body);
        self.body.lines().map(|line| serde_json::from_str(line).expect("each line is json")).collect()
    }
}

async fn send(fake: &FakeOllama, method: Method, path: &str, body: &str) -> TextResponse {
    let response = send_raw(fake, method, path, body).await;
    let status = response.status();
    let header_text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .map(|value: &HeaderValue| value.to_str().expect("ascii header").to_owned())
    };
    let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = header_text(header::RETRY_AFTER);
    let bytes = response.into_body().collect().await.expect("whole body").to_bytes();
    TextResponse {
        status,
        content_type,
        retry_after,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
    }
}

async fn post_json(fake: &FakeOllama, path: &str, body: Value) -> TextResponse {
    send(fake, Method::POST, path, &body.to_string()).await
}

async fn started_with_model(model: &str) -> FakeOllama {
    let fake = FakeOllama::start().await;
    fake.add_model(model);
    fake
}

fn concatenated_chat_content(lines: &[Value]) -> String {
    lines.iter().map(|line| line["message"]["content"].as_str().expect("content is a string")).collect()
}
