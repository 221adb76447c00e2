//! The `model` of a profile: `<provider>/<model>` as the arbitrator's `llm_slots` pools name it
//! (`ollama/smollm2:135m`), a bare model name, or nothing for the `[llm]` default model.

use std::fmt;

/// Provider prefixes a model reference may start with (the `[llm] provider` values).
const PROVIDERS: [&str; 2] = ["ollama", "openai"];

/// Which model a profile talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The provider the reference names, when it names one; it must be the configured one.
    pub provider: Option<String>,
    /// The model as the provider lists it; empty for the `[llm]` default model.
    pub name: String,
}

impl ModelRef {
    /// Reads `ollama/smollm2:135m`, `smollm2:135m` or an empty text. Only a known provider
    /// prefix is split off: other model names may contain slashes (`hf.co/org/model`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some((prefix, name)) = text.split_once('/')
            && PROVIDERS.contains(&prefix)
        {
            if name.trim().is_empty() {
                return Err(format!("`{text}` names the provider but no model"));
            }
            return Ok(Self { provider: Some(prefix.to_owned()), name: name.trim().to_owned() });
        }
        Ok(Self { provider: None, name: text.to_owned() })
    }

    /// Whether the profile uses the `[llm]` default model.
    pub fn is_default(&self) -> bool {
        self.name.is_empty()
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.provider, self.is_default()) {
            (_, true) => formatter.write_str("the default model"),
            (Some(provider), false) => write!(formatter, "{provider}/{}", self.name),
            (None, false) => formatter.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_provider_prefix_is_split_off() {
        let model = ModelRef::parse("ollama/smollm2:135m").unwrap();
        assert_eq!(model, ModelRef { provider: Some("ollama".into()), name: "smollm2:135m".into() });
        assert_eq!(model.to_string(), "ollama/smollm2:135m");
    }

    #[test]
    fn other_slashes_belong_to_the_model_name() {
        let model = ModelRef::parse("hf.co/org/model:q4").unwrap();
        assert_eq!(model, ModelRef { provider: None, name: "hf.co/org/model:q4".into() });
    }

    #[test]
    fn empty_means_the_default_model() {
        assert!(ModelRef::parse("  ").unwrap().is_default());
        assert!(ModelRef::parse("openai/").is_err());
    }
}
