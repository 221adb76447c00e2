//! Server-sent events: a producer task feeds frames into a channel and the response streams them,
//! so a slow client applies back-pressure and a gone client stops the producer (its send fails).
//! Frames carry JSON, which keeps newlines inside a token intact.

use std::convert::Infallible;
use std::future::Future;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// An SSE frame whose data is `data` as JSON, named `name` when given.
pub(crate) fn json_event(name: Option<&str>, data: &Value) -> Event {
    // The event name goes first: axum writes fields in the order they are set, and clients
    // reading line by line should know the event before its data.
    let event = match name {
        Some(name) => Event::default().event(name),
        None => Event::default(),
    };
    event.data(data.to_string())
}

/// Runs `producer` with the sending half of a channel and answers with the frames it sends.
pub(crate) fn sse_from<F, Fut>(producer: F) -> Response
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(32);
    tokio::spawn(producer(sender));
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(frames).keep_alive(KeepAlive::default()).into_response()
}
