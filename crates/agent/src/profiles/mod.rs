//! Agent profiles: what one worker process can run, read from a YAML file (the built-in
//! `profiles.default.yaml` documents the schema). Each profile is checked field by field, and
//! every problem names the profile and the field, so an operator's typo stops the worker with a
//! message that says where it is.

mod model;

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

pub use model::ModelRef;

/// The profiles file compiled into the worker, used when `agent.profiles_file` is empty.
pub const BUILTIN_PROFILES_YAML: &str = include_str!("../../profiles.default.yaml");

/// Most tasks one profile runs at once.
const MAX_CONCURRENCY: u32 = 1024;
/// Longest attempt a profile may allow (a day).
const MAX_TIMEOUT_S: u64 = 86_400;
/// Longest profile name, capability or task type.
const MAX_NAME_CHARS: usize = 64;

/// What a profile does with a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// Writes or changes code from a spec.
    Coder,
    /// Reviews code or a diff and returns findings as JSON.
    Reviewer,
    /// Summarizes texts or extracts fields from them.
    Summarizer,
    /// Proposes shell commands as text; never runs them.
    Shell,
    /// Turns a goal into a validated workflow DAG.
    Planner,
    /// Chats with a long-term memory kept in the vector service.
    MemoryChat,
    /// Echoes the payload without calling anything (benchmarks).
    Noop,
}

impl AgentKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [AgentKind; 7] = [
        Self::Coder,
        Self::Reviewer,
        Self::Summarizer,
        Self::Shell,
        Self::Planner,
        Self::MemoryChat,
        Self::Noop,
    ];

    /// The name used in profiles files and as a workflow step type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coder => "coder",
            Self::Reviewer => "reviewer",
            Self::Summarizer => "summarizer",
            Self::Shell => "shell",
            Self::Planner => "planner",
            Self::MemoryChat => "memory-chat",
            Self::Noop => "noop",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether its tasks call the LLM.
    pub fn uses_llm(self) -> bool {
        self != Self::Noop
    }
}

/// A capability a profile is given beyond the LLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// Search and store past exchanges in the vector service (`memory-chat` only).
    VectorMemory,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 1] = [Self::VectorMemory];

    /// The name used in profiles files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VectorMemory => "vector_memory",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.as_str() == name)
    }
}

/// One profile as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    name: String,
    kind: AgentKind,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    task_types: Vec<String>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    system_prompt: String,
    #[serde(default = "default_concurrency")]
    concurrency: u32,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default = "default_timeout_s")]
    timeout_s: u64,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

fn default_concurrency() -> u32 {
    1
}

fn default_timeout_s() -> u64 {
    300
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesDocument {
    profiles: Vec<serde_norway::Value>,
}

/// A checked profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Unique in the file; the agent's registered name.
    pub name: String,
    /// What it does.
    pub kind: AgentKind,
    /// Advertised to the coordinator, which only assigns tasks whose capabilities it has.
    pub capabilities: Vec<String>,
    /// Task types it accepts; empty accepts any.
    pub task_types: Vec<String>,
    /// The model its LLM calls use.
    pub model: ModelRef,
    /// The system message of every conversation.
    pub system_prompt: String,
    /// Tasks it runs at once (its slots).
    pub concurrency: u32,
    /// Extra capabilities beyond the LLM.
    pub tools: Vec<Tool>,
    /// Longest one attempt may run (the task's deadline may cut it shorter).
    pub timeout: Duration,
    /// Sampling temperature; the provider's default when unset.
    pub temperature: Option<f32>,
    /// Longest answer in tokens; the provider's default when unset.
    pub max_tokens: Option<u32>,
}

impl Profile {
    /// Whether it accepts tasks of `task_type`.
    pub fn accepts(&self, task_type: &str) -> bool {
        self.task_types.is_empty() || self.task_types.iter().any(|accepted| accepted == task_type)
    }

    /// Whether it may use `tool`.
    pub fn has_tool(&self, tool: Tool) -> bool {
        self.tools.contains(&tool)
    }
}

/// Everything wrong with a profiles file, each problem naming the profile and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct ProfileError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl ProfileError {
    fn one(problem: impl Into<String>) -> Self {
        Self { problems: vec![problem.into()] }
    }
}

/// The checked profiles of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSet {
    profiles: Vec<Profile>,
}

impl ProfileSet {
    /// The built-in profiles.
    pub fn builtin() -> Result<Self, ProfileError> {
        Self::parse(BUILTIN_PROFILES_YAML)
    }

    /// Reads and checks a profiles file's text.
    pub fn parse(yaml: &str) -> Result<Self, ProfileError> {
        let document: ProfilesDocument = serde_norway::from_str(yaml)
            .map_err(|error| ProfileError::one(format!("profiles file: {error}")))?;
        let mut problems = Vec::new();
        let mut profiles = Vec::with_capacity(document.profiles.len());
        let mut names = BTreeSet::new();
        for (index, value) in document.profiles.into_iter().enumerate() {
            let label = match value.get("name").and_then(serde_norway::Value::as_str) {
                Some(name) => format!("profile `{name}`"),
                None => format!("profile #{}", index + 1),
            };
            let spec: ProfileSpec = match serde_norway::from_value(value) {
                Ok(spec) => spec,
                Err(error) => {
                    problems.push(format!("{label}: {error}"));
                    continue;
                }
            };
            if !names.insert(spec.name.clone()) {
                problems.push(format!("{label}: `name` is used by an earlier profile"));
            }
            match check_profile(spec) {
                Ok(profile) => profiles.push(profile),
                Err(field_problems) => {
                    problems.extend(field_problems.into_iter().map(|problem| format!("{label}: {problem}")));
                }
            }
        }
        if profiles.is_empty() && problems.is_empty() {
            problems.push("profiles file: `profiles` lists no profile".to_owned());
        }
        if problems.is_empty() { Ok(Self { profiles }) } else { Err(ProfileError { problems }) }
    }

    /// Every profile, in file order.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// The profiles to run: those named (in the given order), or, when none are named, every
    /// profile except the `noop` kind — a benchmark worker asks for noop by name, and an
    /// ordinary worker must not answer real tasks with an echo.
    pub fn select(&self, names: &[String]) -> Result<Vec<Profile>, ProfileError> {
        if names.is_empty() {
            let selected: Vec<Profile> =
                self.profiles.iter().filter(|profile| profile.kind != AgentKind::Noop).cloned().collect();
            if selected.is_empty() {
                return Err(ProfileError::one(
                    "the profiles file has only noop profiles; name them to run them",
                ));
            }
            return Ok(selected);
        }
        let mut problems = Vec::new();
        let mut selected = Vec::with_capacity(names.len());
        let mut seen = BTreeSet::new();
        for name in names {
            if !seen.insert(name.as_str()) {
                problems.push(format!("`{name}` is listed twice"));
                continue;
            }
            match self.profiles.iter().find(|profile| &profile.name == name) {
                Some(profile) => selected.push(profile.clone()),
                None => problems.push(format!("unknown profile `{name}`; the file defines {}", self.names())),
            }
        }
        if problems.is_empty() { Ok(selected) } else { Err(ProfileError { problems }) }
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.profiles.iter().map(|profile| profile.name.as_str()).collect();
        names.join(", ")
    }
}

/// A name, capability or task type: lower-case letters, digits, `-`, `_`, `.` and `:`.
fn check_word(field: &str, word: &str, problems: &mut Vec<String>) {
    let valid = !word.is_empty()
        && word.chars().count() <= MAX_NAME_CHARS
        && word.chars().all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || "-_.:".contains(character)
        });
    if !valid {
        problems.push(format!(
            "`{field}`: `{word}` must be 1 to {MAX_NAME_CHARS} lower-case letters, digits, `-`, `_`, `.` or `:`"
        ));
    }
}

fn check_words(field: &str, words: &[String], problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for word in words {
        check_word(field, word, problems);
        if !seen.insert(word.as_str()) {
            problems.push(format!("`{field}`: `{word}` is listed twice"));
        }
    }
}

fn check_profile(spec: ProfileSpec) -> Result<Profile, Vec<String>> {
    let mut problems = Vec::new();
    check_word("name", &spec.name, &mut problems);
    check_words("capabilities", &spec.capabilities, &mut problems);
    check_words("task_types", &spec.task_types, &mut problems);
    let model = ModelRef::parse(&spec.model).unwrap_or_else(|problem| {
        problems.push(format!("`model`: {problem}"));
        ModelRef { provider: None, name: String::new() }
    });
    if spec.kind.uses_llm() && spec.system_prompt.trim().is_empty() {
        problems.push(format!("`system_prompt`: a {} profile needs one", spec.kind.as_str()));
    }
    if !(1..=MAX_CONCURRENCY).contains(&spec.concurrency) {
        problems.push(format!("`concurrency`: must be between 1 and {MAX_CONCURRENCY}"));
    }
    if !(1..=MAX_TIMEOUT_S).contains(&spec.timeout_s) {
        problems.push(format!("`timeout_s`: must be between 1 and {MAX_TIMEOUT_S}"));
    }
    if let Some(temperature) = spec.temperature
        && !(0.0..=2.0).contains(&temperature)
    {
        problems.push("`temperature`: must be between 0 and 2".to_owned());
    }
    if spec.max_tokens == Some(0) {
        problems.push("`max_tokens`: must be at least 1".to_owned());
    }
    let tools = check_tools(spec.kind, &spec.tools, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Profile {
        name: spec.name,
        kind: spec.kind,
        capabilities: spec.capabilities,
        task_types: spec.task_types,
        model,
        system_prompt: spec.system_prompt,
        concurrency: spec.concurrency,
        tools,
        timeout: Duration::from_secs(spec.timeout_s),
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
    })
}

/// Tools are declared, not implied: `memory-chat` must list `vector_memory` (so a reader of the
/// file sees what reaches the vector service), and no other kind may.
fn check_tools(kind: AgentKind, names: &[String], problems: &mut Vec<String>) -> Vec<Tool> {
    let mut tools = Vec::with_capacity(names.len());
    for name in names {
        match Tool::from_name(name) {
            Some(tool) if tools.contains(&tool) => {
                problems.push(format!("`tools`: `{name}` is listed twice"))
            }
            Some(tool) => tools.push(tool),
            None => {
                let known: Vec<&str> = Tool::ALL.iter().map(|tool| tool.as_str()).collect();
                problems.push(format!("`tools`: unknown tool `{name}`; known tools: {}", known.join(", ")));
            }
        }
    }
    let has_memory = tools.contains(&Tool::VectorMemory);
    if kind == AgentKind::MemoryChat && !has_memory {
        problems.push("`tools`: a memory-chat profile needs `vector_memory`".to_owned());
    }
    if kind != AgentKind::MemoryChat && has_memory {
        problems.push(format!("`tools`: `vector_memory` is only for memory-chat, not {}", kind.as_str()));
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "profiles:\n  - name: rev\n    kind: reviewer\n    system_prompt: Review.\n";

    #[test]
    fn the_builtin_file_defines_every_kind() {
        let set = ProfileSet::builtin().unwrap();
        for kind in AgentKind::ALL {
            assert!(set.profiles().iter().any(|profile| profile.kind == kind), "{kind:?} missing");
        }
        let default_selection = set.select(&[]).unwrap();
        assert!(default_selection.iter().all(|profile| profile.kind != AgentKind::Noop));
        assert_eq!(default_selection.len(), set.profiles().len() - 1);
        let noop = set.select(&["noop".to_owned()]).unwrap();
        assert_eq!(noop[0].kind, AgentKind::Noop);
    }

    #[test]
    fn defaults_fill_the_optional_fields() {
        let profile = ProfileSet::parse(ONE).unwrap().profiles()[0].clone();
        assert_eq!(profile.concurrency, 1);
        assert_eq!(profile.timeout, Duration::from_secs(300));
        assert!(profile.model.is_default());
        assert!(profile.accepts("anything"));
        assert_eq!(profile.temperature, None);
    }

    #[test]
    fn an_unknown_field_names_the_profile_and_the_field() {
        let yaml = format!("{ONE}    temprature: 0.2\n");
        let error = ProfileSet::parse(&yaml).unwrap_err().to_string();
        assert!(error.starts_with("profile `rev`: unknown field `temprature`"), "{error}");
    }

    #[test]
    fn broken_fields_are_each_reported() {
        let yaml = "profiles:
  - name: Bad Name
    kind: planner
    concurrency: 0
    timeout_s: 0
    temperature: 3
    tools: [vector_memory, shell]
  - name: chat
    kind: memory-chat
    system_prompt: Hi.
  - name: chat
    kind: noop
  - kind: wizard
";
        let problems = ProfileSet::parse(yaml).unwrap_err().problems;
        let text = problems.join("\n");
        for expected in [
            "profile `Bad Name`: `name`: `Bad Name` must be",
            "profile `Bad Name`: `system_prompt`: a planner profile needs one",
            "profile `Bad Name`: `concurrency`: must be between 1 and 1024",
            "profile `Bad Name`: `timeout_s`: must be between 1 and 86400",
            "profile `Bad Name`: `temperature`: must be between 0 and 2",
            "profile `Bad Name`: `tools`: unknown tool `shell`",
            "profile `Bad Name`: `tools`: `vector_memory` is only for memory-chat, not planner",
            "profile `chat`: `tools`: a memory-chat profile needs `vector_memory`",
            "profile `chat`: `name` is used by an earlier profile",
            "profile #4: unknown variant `wizard`",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
    }

    #[test]
    fn selection_names_unknown_and_repeated_profiles() {
        let set = ProfileSet::parse(ONE).unwrap();
        let error = set.select(&["rev".to_owned(), "rev".to_owned(), "ghost".to_owned()]).unwrap_err();
        assert_eq!(
            error.problems,
            ["`rev` is listed twice", "unknown profile `ghost`; the file defines rev"]
        );
        let only_noop = ProfileSet::parse("profiles:\n  - {name: n, kind: noop}\n").unwrap();
        assert!(only_noop.select(&[]).is_err());
    }

    #[test]
    fn a_file_without_profiles_is_refused() {
        assert!(ProfileSet::parse("profiles: []\n").is_err());
        let error = ProfileSet::parse("agents: []\n").unwrap_err().to_string();
        assert!(error.contains("unknown field `agents`"), "{error}");
    }
}
