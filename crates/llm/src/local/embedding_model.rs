//! The embedded sentence-embedding model: a BERT-family sentence-transformers model
//! (all-MiniLM-L6-v2) from `config.json`, `tokenizer.json` and `model.safetensors`, with mean
//! pooling over the real tokens and L2 normalisation, as sentence-transformers computes it.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::settings::missing_file;
use crate::error::LlmError;

/// Longest input in tokens; longer texts are truncated (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2).
const MAX_TOKENS: usize = 256;

/// Texts run through the model together; sorted by length first, so padding stays small.
const CHUNK: usize = 32;

/// A loaded sentence-embedding model.
pub(crate) struct EmbeddingModel {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("EmbeddingModel").finish_non_exhaustive()
    }
}

impl EmbeddingModel {
    /// Reads the model in `directory` (blocking: run it off the async runtime).
    pub(crate) fn load(directory: &Path) -> Result<Self, LlmError> {
        let read = |name: &str| {
            let path = directory.join(name);
            std::fs::read(&path).map_err(|error| {
                if error.kind() == std::io::ErrorKind::NotFound {
                    missing_file(&path)
                } else {
                    LlmError::internal(format!("read {}: {error}", path.display()))
                }
            })
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|error| LlmError::internal(format!("{}/config.json: {error}", directory.display())))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|error| {
            LlmError::internal(format!("{}/tokenizer.json: {error}", directory.display()))
        })?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|error| LlmError::internal(format!("tokenizer truncation: {error}")))?;
        let pad_token =
            tokenizer.id_to_token(u32::try_from(config.pad_token_id).unwrap_or(0)).unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: u32::try_from(config.pad_token_id).unwrap_or(0),
            pad_token,
            ..PaddingParams::default()
        }));
        let weights = read("model.safetensors")?;
        let variables =
            VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).map_err(|error| {
                LlmError::internal(format!("{}/model.safetensors: {error}", directory.display()))
            })?;
        let model = BertModel::load(variables, &config)
            .map_err(|error| LlmError::internal(format!("{}: {error}", directory.display())))?;
        Ok(Self { model, tokenizer })
    }

    /// One unit-length embedding per text, in input order.
    pub(crate) fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&index| texts[index].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(CHUNK) {
            let batch: Vec<&str> = chunk.iter().map(|&index| texts[index].as_str()).collect();
            for (&index, vector) in chunk.iter().zip(self.embed_batch(&batch)?) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| LlmError::internal(format!("tokenize for embedding: {error}")))?;
        let rows = encodings.len();
        let columns = encodings.first().map_or(0, tokenizers::Encoding::len);
        let ids: Vec<u32> = encodings.iter().flat_map(|encoding| encoding.get_ids().to_vec()).collect();
        let mask: Vec<u32> =
            encodings.iter().flat_map(|encoding| encoding.get_attention_mask().to_vec()).collect();
        let pooled = (|| {
            let device = Device::Cpu;
            let ids = Tensor::from_vec(ids, (rows, columns), &device)?;
            let mask = Tensor::from_vec(mask, (rows, columns), &device)?;
            let token_types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
            // Mean over the real tokens only, then unit length.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        })();
        pooled.map_err(|error: candle_core::Error| {
            LlmError::internal(format!("local embedding failed: {error}"))
        })
    }
}
