//! Inference slots: how many inference calls (chat, stream, embedding) may run on the LLM at
//! once. A client holds one slot per call — a stream until its last token — and waits for one
//! when none is free, so requests queue instead of flooding a server that runs one at a time
//! (Ollama with `NUM_PARALLEL=1`) or thrashing the cores of an in-process model.
//!
//! Slots come from a [`LocalSlots`] semaphore (one process) or from anything else implementing
//! [`InferenceSlots`], such as leases of the arbitrator's `llm_slots` pools, which bound every
//! process of a deployment together.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use crate::error::LlmError;

/// A held slot; dropping it gives the slot back.
pub struct InferencePermit {
    _guard: Box<dyn Any + Send + Sync>,
}

impl InferencePermit {
    /// A permit whose slot returns when `guard` is dropped.
    pub fn new<Guard: Send + Sync + 'static>(guard: Guard) -> Self {
        Self { _guard: Box::new(guard) }
    }
}

impl fmt::Debug for InferencePermit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("InferencePermit")
    }
}

/// Where inference slots come from.
pub trait InferenceSlots: Send + Sync + fmt::Debug {
    /// Waits for a slot for one call to `model` of `provider`; an error means the call must not
    /// run (for example: every slot stayed busy past a deadline).
    fn acquire<'a>(
        &'a self,
        provider: &'a str,
        model: &'a str,
    ) -> BoxFuture<'a, Result<InferencePermit, LlmError>>;
}

/// Slots of one process: a semaphore shared by every call, whatever the model.
#[derive(Debug, Clone)]
pub struct LocalSlots {
    semaphore: Arc<Semaphore>,
}

impl LocalSlots {
    /// `slots` calls at once.
    pub fn new(slots: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(slots)) }
    }

    /// Slots taken from `semaphore`, shared with whoever else holds it.
    pub fn shared(semaphore: Arc<Semaphore>) -> Self {
        Self { semaphore }
    }
}

impl InferenceSlots for LocalSlots {
    fn acquire<'a>(
        &'a self,
        _provider: &'a str,
        _model: &'a str,
    ) -> BoxFuture<'a, Result<InferencePermit, LlmError>> {
        Box::pin(async move {
            let permit = Arc::clone(&self.semaphore)
                .acquire_owned()
                .await
                .map_err(|_| LlmError::unavailable("the inference slot pool is closed"))?;
            Ok(InferencePermit::new(permit))
        })
    }
}
