//! The outbox of an accepted webhook (ARCHITECTURE.md, Outbox): the messages its routes
//! make, recorded on the delivery record in the same write that accepts it, and sent to the
//! queues by `event-relay` from the table's stream.
//!
//! The event's text is stored once, in the record's `event` attribute; the outbox names,
//! queue by queue, what each message's body is made of: the event itself, a delivery job
//! with an `"event":null` slot the event's text goes into, or a text of its own (a signal
//! job). So a route to several targets stores the event once, and the record stays within
//! DynamoDB's item limit whatever the route.

use serde::{Deserialize, Serialize};

use crate::queue::OutboundMessage;

/// A message's body, before the event's text is put in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Body {
    /// The event's text.
    Event,
    /// A serialised delivery job whose `"event":null` takes the event's text.
    Job(String),
    /// A text of its own.
    Text(String),
}

/// One message of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub body: Body,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dedup_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_id: String,
}

/// The messages for one queue, in the order the routes named them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub queue: String,
    pub messages: Vec<Message>,
}

/// Every message an accepted webhook makes, by queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Outbox(pub Vec<Batch>);

/// An outbox that cannot be turned into messages: recorded by another version, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("the outbox cannot be read: {0}")]
pub struct OutboxError(pub String);

const SLOT: &str = "\"event\":null";

/// `job` (a serialised delivery job) with `event` (JSON text) in place of its
/// `"event":null`: the event goes in as the text already serialised for the queues,
/// neither parsed nor serialised again. Inside a JSON string every `"` is escaped, so the
/// first `"event":null` is the payload's own field (its key follows `route`'s value).
pub fn with_event(job: &str, event: &str) -> Result<String, OutboxError> {
    let at = job
        .find(SLOT)
        .ok_or_else(|| OutboxError("a delivery job without its event slot".to_owned()))?;
    let mut out = String::with_capacity(job.len() + event.len());
    out.push_str(&job[..at]);
    out.push_str("\"event\":");
    out.push_str(event);
    out.push_str(&job[at + SLOT.len()..]);
    Ok(out)
}

impl Message {
    /// The size SQS will count for this message once `event_len` bytes of event are in it
    /// (as [`OutboundMessage::size`]), without building it.
    pub fn size(&self, event_len: usize) -> usize {
        let body = match &self.body {
            Body::Event => event_len,
            Body::Job(job) => (job.len() + event_len).saturating_sub("null".len()),
            Body::Text(text) => text.len(),
        };
        body + self
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum::<usize>()
    }

    fn build(&self, event: &str) -> Result<OutboundMessage, OutboxError> {
        Ok(OutboundMessage {
            body: match &self.body {
                Body::Event => event.to_owned(),
                Body::Job(job) => with_event(job, event)?,
                Body::Text(text) => text.clone(),
            },
            attributes: self.attributes.clone(),
            dedup_id: self.dedup_id.clone(),
            group_id: self.group_id.clone(),
            delay_seconds: None,
        })
    }
}

impl Outbox {
    /// The outbox as the record stores it.
    pub fn to_text(&self) -> String {
        crate::queue::sqs_json(self)
    }

    pub fn parse(text: &str) -> Result<Self, OutboxError> {
        serde_json::from_str(text).map_err(|e| OutboxError(e.to_string()))
    }

    /// The largest message, in the bytes SQS counts.
    pub fn largest(&self, event_len: usize) -> usize {
        self.0
            .iter()
            .flat_map(|b| &b.messages)
            .map(|m| m.size(event_len))
            .max()
            .unwrap_or_default()
    }

    /// The messages to send, by queue, with `event`'s text in place.
    pub fn messages(
        &self,
        event: &str,
    ) -> Result<Vec<(String, Vec<OutboundMessage>)>, OutboxError> {
        self.0
            .iter()
            .map(|batch| {
                let messages = batch
                    .messages
                    .iter()
                    .map(|m| m.build(event))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((batch.queue.clone(), messages))
            })
            .collect()
    }

    /// Adds `message` to `queue`'s batch, the queues staying in the order first named.
    pub fn push(&mut self, queue: String, message: Message) {
        match self.0.iter_mut().find(|b| b.queue == queue) {
            Some(batch) => batch.messages.push(message),
            None => self.0.push(Batch {
                queue,
                messages: vec![message],
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: Body) -> Message {
        Message {
            body,
            attributes: vec![("deliveryId".into(), "d-1".into())],
            dedup_id: String::new(),
            group_id: String::new(),
        }
    }

    #[test]
    fn an_outbox_reads_back_as_written_and_builds_each_body_with_the_event_in_place() {
        let mut outbox = Outbox::default();
        outbox.push("q/events".into(), message(Body::Event));
        outbox.push(
            "q/jobs".into(),
            message(Body::Job(
                r#"{"kind":"delivery","payload":{"route":"r","event":null}}"#.into(),
            )),
        );
        outbox.push(
            "q/jobs".into(),
            message(Body::Text(r#"{"kind":"signal"}"#.into())),
        );
        let read = Outbox::parse(&outbox.to_text()).unwrap();
        assert_eq!(read, outbox);

        let event = r#"{"interactionId":"c-1","text":"say \"hi\""}"#;
        let built = read.messages(event).unwrap();
        assert_eq!(built.len(), 2, "two queues, in the order first named");
        assert_eq!(built[0].0, "q/events");
        assert_eq!(built[0].1[0].body, event);
        assert_eq!(
            built[1].1[0].body,
            format!(r#"{{"kind":"delivery","payload":{{"route":"r","event":{event}}}}}"#)
        );
        assert_eq!(built[1].1[1].body, r#"{"kind":"signal"}"#);
        for (i, m) in read.0.iter().flat_map(|b| &b.messages).enumerate() {
            let sent = &built.iter().flat_map(|(_, l)| l).nth(i).unwrap();
            assert_eq!(m.size(event.len()), sent.size(), "size without building");
        }
    }

    #[test]
    fn a_damaged_outbox_or_a_job_without_its_slot_is_an_error_not_a_panic() {
        assert!(Outbox::parse("{").is_err());
        assert!(Outbox::parse(r#"[{"queue":"q","messages":[{"body":"nope"}]}]"#).is_err());
        let mut outbox = Outbox::default();
        outbox.push("q".into(), message(Body::Job("{}".into())));
        assert!(outbox.messages("{}").is_err());
    }
}
