//! Reading a model's answer: small models wrap code and JSON in Markdown fences and chat around
//! it, so the parts asked for are looked for tolerantly — but never made up: what cannot be found
//! is reported as such, with the raw answer.

use serde_json::Value;

/// The content of the first fenced code block (```` ``` ```` or `~~~`, any info string), if the
/// text has a closed one.
pub(crate) fn fenced_block(text: &str) -> Option<&str> {
    let mut offset = 0;
    let mut opening: Option<(String, usize)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        match &opening {
            None => {
                if let Some(fence) = fence_of(trimmed) {
                    opening = Some((fence, offset));
                }
            }
            Some((fence, content_start)) => {
                let closing = trimmed.trim_end();
                if closing.starts_with(fence.as_str())
                    && closing.chars().all(|character| character == fence_char(fence))
                {
                    return Some(&text[*content_start..start]);
                }
            }
        }
    }
    None
}

/// The fence a line opens with: three or more backticks or tildes.
fn fence_of(line: &str) -> Option<String> {
    let first = line.chars().next()?;
    if first != '`' && first != '~' {
        return None;
    }
    let length = line.chars().take_while(|character| *character == first).count();
    (length >= 3).then(|| first.to_string().repeat(length))
}

fn fence_char(fence: &str) -> char {
    fence.chars().next().unwrap_or('`')
}

/// The first fenced block without its trailing newline, or the whole answer trimmed when it has
/// no block (a model that answered with bare code).
pub(crate) fn code_or_text(answer: &str) -> String {
    match fenced_block(answer) {
        Some(block) => block.trim_end_matches(['\n', '\r']).to_owned(),
        None => answer.trim().to_owned(),
    }
}

/// A Markdown fence for `content`: longer than any run of backticks inside it.
pub(crate) fn fence_for(content: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for character in content.chars() {
        run = if character == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// The JSON value in a model's answer: the whole answer, else the first fenced block, else the
/// span from the first `{` or `[` to the last matching closer. The error is the parser's message
/// for the whole answer.
pub(crate) fn extract_json(answer: &str) -> Result<Value, String> {
    let trimmed = answer.trim();
    let whole_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => return Ok(value),
        Err(error) => error.to_string(),
    };
    if let Some(block) = fenced_block(trimmed)
        && let Ok(value) = serde_json::from_str::<Value>(block.trim())
    {
        return Ok(value);
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(start), Some(end)) = (trimmed.find(open), trimmed.rfind(close))
            && start < end
            && let Ok(value) = serde_json::from_str::<Value>(&trimmed[start..=end])
        {
            return Ok(value);
        }
    }
    Err(format!("the answer is not JSON: {whole_error}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_first_closed_block_is_taken() {
        let answer = "Here:\n```rust\nfn main() {}\n```\nand\n```\nother\n```\n";
        assert_eq!(fenced_block(answer), Some("fn main() {}\n"));
        assert_eq!(code_or_text(answer), "fn main() {}");
        assert_eq!(fenced_block("```\nnever closed"), None);
        assert_eq!(code_or_text("  print(1)  "), "print(1)");
        assert_eq!(fenced_block("~~~~\na ``` b\n~~~~\n"), Some("a ``` b\n"));
    }

    #[test]
    fn fences_outgrow_the_backticks_inside() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }

    #[test]
    fn json_is_found_inside_chatter_and_fences() {
        assert_eq!(extract_json(" [1, 2] ").unwrap(), json!([1, 2]));
        assert_eq!(extract_json("Sure!\n```json\n{\"a\": 1}\n```").unwrap(), json!({"a": 1}));
        assert_eq!(extract_json("The result is {\"a\": [1]} as asked.").unwrap(), json!({"a": [1]}));
        assert_eq!(extract_json("findings: [] none").unwrap(), json!([]));
        let error = extract_json("I found no problems.").unwrap_err();
        assert!(error.starts_with("the answer is not JSON: expected value"), "{error}");
    }
}
