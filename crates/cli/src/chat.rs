//! `sutazai chat "question"`: asks the gateway's `POST /api/v1/chat/stream` and writes the answer
//! to stdout as its tokens arrive. With `--rag-collection` the gateway answers from that
//! collection's documents, and the passages it used (ids and scores) are listed on stderr after
//! the answer. A failure (an error response, or `event: error` in the stream) exits 1 with the
//! problem's detail on stderr.
//!
//! The caller is a user: a token from `--token` (SUTAZAI_TOKEN), or one obtained by logging in
//! with `--username` and `--password` at the auth service (`--auth-url`; through Kong, the same
//! URL as `--url`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::sse::{SseDecoder, SseEvent};

/// How long connecting to the gateway or the auth service may take; the answer itself may stream
/// for as long as the model generates.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `sutazai chat` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ChatArgs {
    /// The question, sent as one user message.
    message: String,
    /// The gateway (or Kong) base URL; http only.
    #[arg(long, env = "SUTAZAI_URL", default_value = "http://127.0.0.1:10010")]
    url: String,
    /// An access token; without it, --username and --password log in first.
    #[arg(long, env = "SUTAZAI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Log in as this user (username or email).
    #[arg(long, env = "SUTAZAI_USERNAME")]
    username: Option<String>,
    /// The password of --username.
    #[arg(long, env = "SUTAZAI_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Where to log in: the auth service (or Kong, which routes /api/v1/auth/ there).
    #[arg(long, env = "SUTAZAI_AUTH_URL", default_value = "http://127.0.0.1:10054")]
    auth_url: String,
    /// The model; the gateway's default when absent.
    #[arg(long)]
    model: Option<String>,
    /// A system message before the question.
    #[arg(long)]
    system: Option<String>,
    /// Sampling temperature, 0 to 2.
    #[arg(long)]
    temperature: Option<f32>,
    /// Longest answer, in tokens.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Sampling seed, for a reproducible answer.
    #[arg(long)]
    seed: Option<u64>,
    /// Answer from the documents of this vector collection.
    #[arg(long)]
    rag_collection: Option<String>,
    /// Passages to retrieve with --rag-collection, 1 to 20 (the gateway's default: 4).
    #[arg(long, requires = "rag_collection")]
    rag_top_k: Option<u32>,
}

/// Runs the chat; exit 0 once the answer is complete.
pub(crate) fn run(args: ChatArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sutazai: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chat(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sutazai: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn chat(args: &ChatArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build()?;
    let token = match (&args.token, &args.username, &args.password) {
        (Some(token), _, _) => token.trim().to_owned(),
        (None, Some(username), Some(password)) => login(&client, &args.auth_url, username, password).await?,
        _ => bail!("give --token (or SUTAZAI_TOKEN), or --username and --password"),
    };
    let url = format!("{}/api/v1/chat/stream", args.url.trim_end_matches('/'));
    let mut response = client
        .post(&url)
        .bearer_auth(&token)
        .json(&request_body(args))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    if !response.status().is_success() {
        bail!("{}", problem_detail(response).await);
    }
    let mut decoder = SseDecoder::default();
    let mut answer = Answer::default();
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await.context("reading the answer stream")? {
        for event in decoder.push(&chunk) {
            if answer.apply(event, &mut stdout)? == Progress::Done {
                writeln!(stdout).context("writing the answer")?;
                stdout.flush().context("writing the answer")?;
                if let Some(passages) = &answer.passages {
                    eprint!("{}", passages_report(passages));
                }
                return Ok(());
            }
        }
    }
    bail!("the answer stream ended before its `done` event")
}

/// The JSON body of the request.
fn request_body(args: &ChatArgs) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": args.message}));
    let mut body = Map::new();
    body.insert("messages".to_owned(), Value::Array(messages));
    if let Some(model) = &args.model {
        body.insert("model".to_owned(), json!(model));
    }
    if let Some(temperature) = args.temperature {
        body.insert("temperature".to_owned(), json!(temperature));
    }
    if let Some(max_tokens) = args.max_tokens {
        body.insert("max_tokens".to_owned(), json!(max_tokens));
    }
    if let Some(seed) = args.seed {
        body.insert("seed".to_owned(), json!(seed));
    }
    if let Some(collection) = &args.rag_collection {
        let mut rag = Map::new();
        rag.insert("collection".to_owned(), json!(collection));
        if let Some(top_k) = args.rag_top_k {
            rag.insert("top_k".to_owned(), json!(top_k));
        }
        body.insert("rag".to_owned(), Value::Object(rag));
    }
    Value::Object(body)
}

/// Logs in at the auth service; returns the access token.
async fn login(
    client: &reqwest::Client,
    auth_url: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let url = format!("{}/api/v1/auth/login", auth_url.trim_end_matches('/'));
    let response = client
        .post(&url)
        .json(&json!({"username_or_email": username, "password": password}))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    if !response.status().is_success() {
        bail!("logging in as `{username}`: {}", problem_detail(response).await);
    }
    let body: Value = response.json().await.context("reading the login answer")?;
    match body.get("access_token").and_then(Value::as_str) {
        Some(token) => Ok(token.to_owned()),
        None => bail!("the login answer has no `access_token`"),
    }
}

/// What an error response says: the problem's detail, or the status and body when it is not a
/// problem document.
async fn problem_detail(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|problem| problem.get("detail").and_then(Value::as_str).map(str::to_owned));
    match detail {
        Some(detail) => format!("{detail} ({status})"),
        None => format!("{status}: {}", text.trim()),
    }
}

/// Whether the stream is over.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Streaming,
    Done,
}

/// The state of one streamed answer.
#[derive(Debug, Default)]
struct Answer {
    /// The passages of a `passages` event, when rag was used.
    passages: Option<Vec<Value>>,
}

impl Answer {
    /// Applies one event: a delta is written to `out` at once; `error` is the command's error.
    fn apply(&mut self, event: SseEvent, out: &mut impl Write) -> anyhow::Result<Progress> {
        let data: Value = serde_json::from_str(&event.data)
            .with_context(|| format!("an event that is not JSON: {}", event.data))?;
        match event.name.as_deref() {
            None => {
                let Some(delta) = data.get("delta").and_then(Value::as_str) else {
                    bail!("a frame without `delta`: {data}");
                };
                out.write_all(delta.as_bytes()).context("writing the answer")?;
                out.flush().context("writing the answer")?;
            }
            Some("passages") => {
                let passages = data.get("passages").and_then(Value::as_array).cloned().unwrap_or_default();
                self.passages = Some(passages);
            }
            Some("done") => return Ok(Progress::Done),
            Some("error") => {
                let detail = data.get("detail").and_then(Value::as_str).unwrap_or("the model failed");
                bail!("{detail}");
            }
            // Events this version does not know are skipped, so the gateway may add some.
            Some(_) => {}
        }
        Ok(Progress::Streaming)
    }
}

/// The passages as listed on stderr: one line each, in the order the gateway used them.
fn passages_report(passages: &[Value]) -> String {
    if passages.is_empty() {
        return "passages: none found\n".to_owned();
    }
    let mut report = String::from("passages:\n");
    for (index, passage) in passages.iter().enumerate() {
        let id = match &passage["id"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let score = passage["score"].as_f64().unwrap_or(f64::NAN);
        report.push_str(&format!("  [{}] {id}  score {score:.4}\n", index + 1));
    }
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step fails the test loudly")]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: ChatArgs,
    }

    fn parse(arguments: &[&str]) -> ChatArgs {
        Command::try_parse_from(std::iter::once("chat").chain(arguments.iter().copied())).unwrap().args
    }

    fn event(name: Option<&str>, data: Value) -> SseEvent {
        SseEvent { name: name.map(str::to_owned), data: data.to_string() }
    }

    #[test]
    fn the_body_carries_only_what_was_given() {
        let plain = parse(&["hello"]);
        assert_eq!(request_body(&plain), json!({"messages": [{"role": "user", "content": "hello"}]}));
        let full = parse(&[
            "hello",
            "--system",
            "be brief",
            "--model",
            "m",
            "--temperature",
            "0.5",
            "--max-tokens",
            "64",
            "--seed",
            "7",
            "--rag-collection",
            "docs",
            "--rag-top-k",
            "3",
        ]);
        assert_eq!(
            request_body(&full),
            json!({
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
                "model": "m", "temperature": 0.5, "max_tokens": 64, "seed": 7,
                "rag": {"collection": "docs", "top_k": 3},
            })
        );
        assert!(
            Command::try_parse_from(["chat", "hello", "--rag-top-k", "3"]).is_err(),
            "top-k needs a collection"
        );
    }

    #[test]
    fn deltas_stream_and_errors_fail() {
        let mut answer = Answer::default();
        let mut out = Vec::new();
        let passages = json!({"passages": [{"id": "doc-1", "score": 0.91234, "text": "t"}, {"id": 7, "score": 0.5, "text": "u"}]});
        assert_eq!(answer.apply(event(Some("passages"), passages), &mut out).unwrap(), Progress::Streaming);
        for delta in ["Hello", ",\nworld"] {
            answer.apply(event(None, json!({"delta": delta})), &mut out).unwrap();
        }
        assert_eq!(String::from_utf8(out.clone()).unwrap(), "Hello,\nworld");
        assert_eq!(
            answer.apply(event(Some("done"), json!({"usage": {}})), &mut out).unwrap(),
            Progress::Done
        );
        assert_eq!(
            passages_report(answer.passages.as_ref().unwrap()),
            "passages:\n  [1] doc-1  score 0.9123\n  [2] 7  score 0.5000\n"
        );
        let problem = json!({"code": "unavailable", "detail": "ollama unavailable"});
        let error = answer.apply(event(Some("error"), problem), &mut out).unwrap_err();
        assert_eq!(error.to_string(), "ollama unavailable");
    }
}
