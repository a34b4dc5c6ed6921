//! The port for sending messages to queues, and the limits SQS sets on them; the SQS
//! adapter is `adapters::sqs`.

use std::future::Future;

/// The largest message the queues take, body and attributes together: SQS's default
/// `MaximumMessageSize`, which template.yaml states for every queue and the local stack
/// applies too.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// `value` as JSON text that SQS accepts. SQS refuses characters outside XML's set; JSON
/// already escapes the control characters, and the two left in a Rust string, U+FFFE and
/// U+FFFF, are written as `\ufffe` and `\uffff`: the same text to any JSON reader.
pub fn sqs_json(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    // One byte search for each (the pattern of a two-character set is matched a character at
    // a time, several times slower on a large body).
    if !text.contains('\u{fffe}') && !text.contains('\u{ffff}') {
        return text;
    }
    text.replace('\u{fffe}', "\\ufffe")
        .replace('\u{ffff}', "\\uffff")
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub body: String,
    /// String message attributes, for consumers' filtering.
    pub attributes: Vec<(String, String)>,
    /// Deduplication id, used on FIFO queues.
    pub dedup_id: String,
    /// Message group, used on FIFO queues.
    pub group_id: String,
    /// Seconds before the message becomes visible (at most 900).
    pub delay_seconds: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not send to {queue}: {detail}")]
pub struct QueueError {
    pub queue: String,
    pub detail: String,
}

/// Which of the messages given to [`MessageQueue::send_each`] were sent.
#[derive(Debug)]
pub struct Sent {
    /// `sent[i]` for the `i`th message.
    pub sent: Vec<bool>,
    /// Why some were not, if any were not.
    pub error: Option<QueueError>,
}

/// Port: durable queues.
pub trait MessageQueue: Send + Sync {
    /// Sends every message or fails; on failure some may have been sent.
    fn send_all(
        &self,
        queue_url: &str,
        messages: &[OutboundMessage],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sends each message, as many to a request as SQS takes, and tells which were sent.
    /// A request that fails leaves its messages and every later one unsent.
    fn send_each(
        &self,
        queue_url: &str,
        messages: &[OutboundMessage],
    ) -> impl Future<Output = Sent> + Send;
}

/// SQS takes at most ten entries and 256 KiB in one batch.
const MAX_BATCH_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

impl OutboundMessage {
    /// The size SQS counts against [`MAX_MESSAGE_BYTES`]: the body, and each attribute's
    /// name, type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum::<usize>()
    }
}

/// Splits messages into batches SQS accepts.
pub(crate) fn batches(messages: &[OutboundMessage]) -> Vec<&[OutboundMessage]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let full =
            i - start == MAX_BATCH_ENTRIES || (i > start && bytes + m.size() > MAX_BATCH_BYTES);
        if full {
            out.push(&messages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += m.size();
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> OutboundMessage {
        OutboundMessage {
            body: "x".repeat(len),
            attributes: Vec::new(),
            dedup_id: String::new(),
            group_id: String::new(),
            delay_seconds: None,
        }
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_256_kib() {
        let small: Vec<_> = (0..23).map(|_| message(10)).collect();
        assert_eq!(
            batches(&small).iter().map(|b| b.len()).collect::<Vec<_>>(),
            [10, 10, 3]
        );
        let large: Vec<_> = (0..3).map(|_| message(100 * 1024)).collect();
        assert_eq!(
            batches(&large).iter().map(|b| b.len()).collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(batches(&[]).is_empty());
    }

    /// The characters SQS accepts (XML's): tab, LF, CR, and U+0020 upwards, less the
    /// surrogates, U+FFFE and U+FFFF.
    fn sqs_accepts(text: &str) -> bool {
        text.chars().all(|c| {
            matches!(c, '\t' | '\n' | '\r')
                || ('\u{20}'..='\u{d7ff}').contains(&c)
                || ('\u{e000}'..='\u{fffd}').contains(&c)
                || c >= '\u{10000}'
        })
    }

    #[test]
    fn message_bodies_carry_every_character_in_a_form_sqs_accepts() {
        let value = serde_json::json!({"text": "a\u{0}\u{1}\u{7f}\u{fffe}\u{ffff}é😀\"\\", "n": 1});
        let body = sqs_json(&value);
        assert!(sqs_accepts(&body), "{body:?}");
        assert!(!sqs_accepts(&value.to_string()), "plain JSON keeps U+FFFF");
        let back: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back, value, "the same value to a JSON reader");
        assert_eq!(sqs_json(&serde_json::json!("plain")), r#""plain""#);
    }
}
