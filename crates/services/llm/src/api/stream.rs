//! Streaming replies: events moved from the provider to the client, and
//! what they are estimated to cost when the provider reports no usage.

use super::*;

/// Bytes of generated text in a whole reply (for estimates).
pub(super) fn content_bytes(reply: &Value) -> usize {
    reply["choices"]
        .as_array()
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    c["message"]["content"].as_str().map_or(0, str::len)
                        + c["message"]["tool_calls"].to_string().len()
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes of generated text in one chunk (for estimates).
pub(super) fn chunk_content_bytes(chunk: &str) -> usize {
    serde_json::from_str::<Value>(chunk).map_or(0, |v| {
        v["choices"].as_array().map_or(0, |choices| {
            choices
                .iter()
                .map(|c| {
                    c["delta"]["content"].as_str().map_or(0, str::len)
                        + c["delta"]["tool_calls"].as_array().map_or(0, |t| {
                            t.iter()
                                .map(|t| t["function"]["arguments"].as_str().map_or(0, str::len))
                                .sum()
                        })
                })
                .sum()
        })
    })
}

/// Moves a stream from the provider to the client event by event, until
/// the provider is done, the client leaves (the upstream request is then
/// dropped, which closes it), or the total timeout; then settles the call.
pub(super) async fn pump(
    first: Vec<Piece>,
    mut source: Source,
    tx: mpsc::Sender<Bytes>,
    ledger: Ledger,
    target: Arc<Target>,
    wants_usage: bool,
    deadline: Instant,
) {
    let mut tokens = None;
    let mut output_bytes = 0;
    let mut outcome = Outcome::Error;
    let mut error: Option<LlmError> = None;
    let mut pieces = first;
    'stream: loop {
        for piece in pieces.drain(..) {
            match piece {
                Piece::Chunk {
                    data,
                    usage,
                    usage_only,
                } => {
                    if usage.is_some() {
                        tokens = usage;
                        if usage_only && !wants_usage {
                            continue;
                        }
                    } else if tokens.is_none() {
                        output_bytes += chunk_content_bytes(&data);
                    }
                    if tx
                        .send(Bytes::from(format!("data: {data}\n\n")))
                        .await
                        .is_err()
                    {
                        outcome = Outcome::Cancelled;
                        break 'stream;
                    }
                }
                Piece::Done => {
                    outcome = if tx
                        .send(Bytes::from_static(b"data: [DONE]\n\n"))
                        .await
                        .is_ok()
                    {
                        Outcome::Ok
                    } else {
                        Outcome::Cancelled
                    };
                    break 'stream;
                }
            }
        }
        tokio::select! {
            _ = tx.closed() => {
                outcome = Outcome::Cancelled;
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                error = Some(LlmError::timeout("the stream did not finish in time"));
                break;
            }
            next = source.next() => match next {
                Some(Ok(next)) => pieces = next,
                Some(Err(e)) => {
                    error = Some(LlmError::upstream(e));
                    break;
                }
                None => {
                    error = Some(LlmError::upstream(format!("{} closed the stream before it was done", target.name)));
                    break;
                }
            },
        }
    }
    drop(source);
    if let Some(e) = &error {
        tracing::warn!(deployment = %target.name, error = %e, "stream failed midway");
        let _ = tx
            .send(Bytes::from(format!("data: {}\n\n", e.body())))
            .await;
    }
    if outcome == Outcome::Cancelled {
        metrics::counter!("llm_streams_cancelled_total").increment(1);
    }
    ledger
        .close(Ending {
            target: Some(&target.name),
            tokens,
            output_bytes,
            outcome,
            error: error
                .as_ref()
                .map(|e| e.code)
                .or((outcome == Outcome::Cancelled).then_some("client_disconnected")),
            cached: false,
        })
        .await;
}
