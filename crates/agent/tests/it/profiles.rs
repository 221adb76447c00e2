//! Each LLM profile against the fake Ollama: what the model was sent (the profile's system prompt
//! and the task's input), and what the task's result holds.

use serde_json::{Value, json};
use sutazai_types::messages::TaskMessage;

use crate::{CODER_PERSONA, MODEL, chat_text, spawn};

#[tokio::test]
async fn coder_sends_the_persona_and_the_spec_and_returns_the_code() {
    let worker = spawn(&["coder"]).await;
    worker.ollama.script_reply("Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nEnjoy.");
    let assigned = worker.assign("coder", json!({"spec": "add two numbers", "language": "python"})).await;

    let result = worker.observer.result(assigned.task_id).await;
    assert_eq!(result["output"], "def add(a, b):\n    return a + b");
    assert_eq!(result["model"], MODEL);
    let chats = worker.chats();
    assert_eq!(chats.len(), 1);
    let sent = &chats[0];
    assert_eq!(sent["model"], MODEL);
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": CODER_PERSONA}));
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(user.starts_with("Write python code for this specification:\nadd two numbers\n"), "{user}");
    assert_eq!(sent["options"]["temperature"].as_f64().map(|value| (value * 10.0).round()), Some(1.0));
    assert_eq!(sent["options"]["num_predict"], 256);
    // The prompt is stored with the task, exactly as sent.
    assert_eq!(result["prompt"], sent["messages"]);
    assert!(result["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{result}");
    assert!(result["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{result}");
    worker.finish().await;
}

#[tokio::test]
async fn reviewer_returns_the_models_findings_parsed() {
    let worker = spawn(&["reviewer"]).await;
    worker.ollama.script_reply(
        "```json\n[{\"severity\": \"major\", \"line\": 2, \"message\": \"division by zero when b is 0\"}]\n```",
    );
    let code = "def div(a, b):\n    return a / b";
    let assigned = worker.assign("reviewer", json!({"code": code, "focus": "errors"})).await;

    let result = worker.observer.result(assigned.task_id).await;
    assert_eq!(
        result["output"],
        json!({"findings": [{"severity": "major", "line": 2, "message": "division by zero when b is 0"}]})
    );
    let sent = chat_text(&worker.chats()[0]);
    assert!(
        sent.starts_with("system: You are REVIEWER-PERSONA.\nuser: Review this code, focusing on errors:"),
        "{sent}"
    );
    assert!(sent.contains(code), "{sent}");
    worker.finish().await;
}

#[tokio::test]
async fn reviewer_keeps_a_prose_answer_raw_and_invents_nothing() {
    let worker = spawn(&["reviewer"]).await;
    worker.ollama.script_reply("Looks good to me, nothing to add.");
    let assigned = worker.assign("reviewer", json!({"diff": "+let x = 1;"})).await;

    let output = worker.observer.result(assigned.task_id).await["output"].clone();
    assert_eq!(output["findings"], json!([]));
    assert_eq!(output["raw"], "Looks good to me, nothing to add.");
    assert!(output["parse_error"].as_str().unwrap().starts_with("the answer is not JSON"), "{output}");
    worker.finish().await;
}

#[tokio::test]
async fn summarizer_summarizes_documents_and_extracts_fields() {
    let worker = spawn(&["summarizer"]).await;
    worker.ollama.script_reply("Two invoices from ACME.");
    let summary = worker
        .assign(
            "summarizer",
            json!({"documents": ["Invoice 1 from ACME", {"title": "second", "text": "Invoice 2 from ACME"}]}),
        )
        .await;
    assert_eq!(worker.observer.result(summary.task_id).await["output"], "Two invoices from ACME.");
    let sent = chat_text(&worker.chats()[0]);
    assert!(sent.contains("system: You are SUMMARIZER-PERSONA."), "{sent}");
    assert!(sent.contains("Document 2 (second):\nInvoice 2 from ACME"), "{sent}");

    worker.ollama.script_reply("{\"number\": \"42\", \"vendor\": \"ACME\", \"note\": \"extra\"}");
    let extraction = worker
        .assign(
            "summarizer",
            json!({"text": "Invoice 42 from ACME, due in May.", "fields": ["number", "vendor", "due"]}),
        )
        .await;
    assert_eq!(
        worker.observer.result(extraction.task_id).await["output"],
        json!({"fields": {"number": "42", "vendor": "ACME", "due": null}})
    );
    let sent = chat_text(&worker.chats()[1]);
    assert!(sent.contains("Fields: \"number\", \"vendor\", \"due\"."), "{sent}");
    worker.finish().await;
}

#[tokio::test]
async fn shell_proposes_commands_and_never_runs_them() {
    let worker = spawn(&["shell"]).await;
    let marker = std::env::temp_dir().join(format!("x-{}", uuid::Uuid::new_v4()));
    let command = format!("touch {}", marker.display());
    // No scripted reply: the fake echoes the request, so the proposal is the command itself.
    let assigned = worker.assign("shell", json!({"goal": format!("run `{command}`"), "os": "Debian"})).await;

    let output = worker.observer.result(assigned.task_id).await["output"].clone();
    assert_eq!(output["executed"], false);
    assert_eq!(output["os"], "Debian");
    assert!(output["commands"].as_str().unwrap().contains(&command), "{output}");
    assert!(!marker.exists(), "the command was not run");
    let sent = chat_text(&worker.chats()[0]);
    assert!(sent.contains("system: You are SHELL-PERSONA."), "{sent}");
    worker.finish().await;
}

#[tokio::test]
async fn planner_returns_a_validated_workflow() {
    let worker = spawn(&["planner"]).await;
    let plan = json!({"name": "cli", "steps": [
        {"id": "write", "type": "coder", "payload": {"spec": "a CLI"}, "depends_on": []},
        {"id": "review", "type": "reviewer", "payload": {"focus": "errors"}, "depends_on": ["write"]},
        {"id": "docs", "type": "summarizer", "depends_on": ["write"]},
        {"id": "ship", "type": "shell", "payload": {"goal": "package it"}, "depends_on": ["review", "docs"]}
    ]});
    worker.ollama.script_reply(format!("Plan:\n```json\n{plan}\n```"));
    let assigned = worker.assign("planner", json!({"goal": "ship a small CLI"})).await;

    let result = worker.observer.result(assigned.task_id).await;
    let workflow = &result["output"]["workflow"];
    assert_eq!(workflow["name"], "cli");
    let ids: Vec<&str> =
        workflow["steps"].as_array().unwrap().iter().map(|step| step["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["write", "review", "docs", "ship"]);
    assert_eq!(workflow["steps"][2]["payload"], json!({}), "a missing payload is an empty object");
    assert_eq!(workflow["steps"][3]["depends_on"], json!(["review", "docs"]));
    let sent = chat_text(&worker.chats()[0]);
    assert!(sent.contains("system: You are PLANNER-PERSONA.\nuser: Goal: ship a small CLI"), "{sent}");
    worker.finish().await;
}

#[tokio::test]
async fn planner_fails_without_retry_when_the_plan_stays_cyclic() {
    let worker = spawn(&["planner"]).await;
    let cyclic = json!({"name": "loop", "steps": [
        {"id": "a", "type": "coder", "depends_on": ["b"]},
        {"id": "b", "type": "reviewer", "depends_on": ["a"]}
    ]})
    .to_string();
    worker.ollama.script_reply(cyclic.as_str());
    worker.ollama.script_reply(cyclic.as_str());
    let assigned = worker.assign("planner", json!({"goal": "go around in circles"})).await;

    let outcome = worker.observer.outcome(assigned.task_id).await;
    let TaskMessage::Failed(failed) = outcome else { panic!("{outcome:?}") };
    assert!(!failed.retryable);
    assert_eq!(
        failed.error,
        "the model's answer is unusable: the workflow is still invalid after a repair turn: \
         the steps `a`, `b` form a cycle (or wait on one)"
    );
    // The model was told what was wrong before it answered a second time.
    let chats = worker.chats();
    assert_eq!(chats.len(), 2);
    let repair: &Value = chats[1]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(repair["role"], "user");
    assert!(
        repair["content"]
            .as_str()
            .unwrap()
            .starts_with("That plan is invalid: the steps `a`, `b` form a cycle"),
        "{repair}"
    );
    worker.finish().await;
}

#[tokio::test]
async fn planner_repairs_an_invalid_plan_in_the_same_attempt() {
    let worker = spawn(&["planner"]).await;
    worker.ollama.script_reply("{\"steps\": [{\"id\": \"a\", \"type\": \"wizard\"}]}");
    worker.ollama.script_reply("{\"name\": \"fixed\", \"steps\": [{\"id\": \"a\", \"type\": \"coder\"}]}");
    let assigned = worker.assign("planner", json!({"goal": "anything"})).await;

    let result = worker.observer.result(assigned.task_id).await;
    assert_eq!(result["output"]["workflow"]["name"], "fixed");
    // The stored prompt is the whole conversation of the last call, repair turn included.
    let prompt = result["prompt"].as_array().unwrap();
    assert_eq!(prompt.len(), 4);
    assert_eq!(prompt[2]["role"], "assistant");
    assert!(prompt[3]["content"].as_str().unwrap().contains("unknown type `wizard`"), "{result}");
    worker.finish().await;
}
