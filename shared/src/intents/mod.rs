//! `POST /cognigy/intents`: Cognigy's intent results, turn by turn, into CXone.
//!
//! [`turn::read`] and [`body::read`] are the pure parts: whatever a real flow sends, read
//! into one [`Turn`]. [`IntentRouter`] checks the caller, finds the contact (in the turn
//! or in the [`SessionMemory`]), decides, de-duplicates the turn, and acts:
//! - documented profile: the attributes go to the interaction's context;
//! - platform profile: an intent whose route names an `action` sends the contact one
//!   signal (`p1` = the action, `p2` = the attributes as JSON); any other intent is only
//!   answered, because a signal interrupts the Studio script.

pub mod body;
pub mod config;
pub mod session;
pub mod turn;

use std::future::Future;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::cxone::config::Profile;
use crate::cxone::{ContextSink, CxoneError, CxoneSignals};
use crate::error::{ApiError, ErrorCode};
use crate::idempotency::{Claim, IdempotencyStore};
use crate::jobs::{Job, JobKind};
use crate::queue::QueueError;
use crate::secrets::{RefreshGate, SecretSource};

pub use config::{INTENTS_VAR, IntentConfig, IntentRoute, IntentSignal, PreferContact};
pub use session::SessionMemory;
pub use turn::{ContactId, Turn};

/// How long a routed turn's answer is kept for its retries.
pub const DEDUP_TTL: Duration = Duration::from_secs(600);

/// The same, for a turn with no `inputId`, `traceId` or timestamp: nothing tells two
/// genuine turns with the same intent and score apart, so only a retry that comes soon is
/// taken for one (Cognigy's node retries within seconds).
pub const ANONYMOUS_DEDUP_TTL: Duration = Duration::from_secs(60);

/// A turn's idempotency key and the hash it is made of: Cognigy's input id when the turn
/// has one, so that two genuine turns with the same intent are both routed.
pub fn turn_key(turn: &Turn, contact: &str, intent: &str, confidence: f64) -> (String, String) {
    let identity = match &turn.turn_id {
        Some(id) => json!(["turn", id, contact, intent, confidence]),
        None => json!([contact, intent, confidence, turn.timestamp]),
    };
    let hash = hex::encode(Sha256::digest(identity.to_string()));
    (format!("intent#{hash}"), hash)
}

/// What the function saw of a request.
#[derive(Debug, Clone, Copy)]
pub struct IntentRequest<'a> {
    pub content_type: Option<&'a str>,
    pub authorization: Option<&'a [u8]>,
    pub api_key: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Port: what a routed turn does beyond this function.
pub trait IntentSink: Send + Sync {
    /// The CXone client: context updates (documented) and action signals (platform).
    type Cxone: ContextSink;

    fn cxone(&self) -> &Self::Cxone;

    /// Triggers a configured signal definition; its answer (or its error) for the reply.
    fn trigger(
        &self,
        signal: &str,
        idempotency_key: &str,
        body: &Value,
        now_ms: i64,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// Queues the work for a retry after CXone's `Retry-After` or the backoff.
    fn retry_later(
        &self,
        job: &Job,
        retry_after: Option<Duration>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl<C, E, Q> IntentSink for crate::signals::Dispatcher<C, E, Q>
where
    C: CxoneSignals + ContextSink,
    E: crate::signals::store::ExecutionStore,
    Q: crate::queue::MessageQueue,
{
    type Cxone = C;

    fn cxone(&self) -> &C {
        &self.cxone
    }

    async fn trigger(
        &self,
        signal: &str,
        idempotency_key: &str,
        body: &Value,
        now_ms: i64,
    ) -> Result<Value, ApiError> {
        self.submit(
            signal,
            Some(idempotency_key.as_bytes()),
            body.to_string().as_bytes(),
            now_ms,
        )
        .await
        .map(|(_, reply)| reply)
    }

    async fn retry_later(
        &self,
        job: &Job,
        retry_after: Option<Duration>,
    ) -> Result<(), QueueError> {
        let wait = self.retry.delay(1, retry_after, crate::jobs::jitter());
        let delay = i32::try_from(wait.as_secs_f64().ceil() as u64).unwrap_or(900);
        self.enqueue(job, Some(delay)).await
    }
}

/// An answer: its status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

fn ok(body: Value) -> Answer {
    Answer {
        status: StatusCode::OK,
        body,
    }
}

/// The tokens a request presents, by any of Cognigy's auth options: `Authorization:
/// Bearer …`, `Authorization: ApiKey …`, Basic with the token as the password, and
/// `X-API-Key`. Each is checked, so an unrelated `Authorization` header does not hide a
/// good `X-API-Key`.
pub fn credentials(request: &IntentRequest<'_>) -> Vec<String> {
    fn text(v: &[u8]) -> Option<&str> {
        std::str::from_utf8(v).ok().map(str::trim)
    }
    let from_authorization = request.authorization.and_then(text).and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("apikey") {
            Some(rest.to_owned())
        } else if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let pair = String::from_utf8(decoded).ok()?;
            pair.split_once(':')
                .map(|(_, password)| password.to_owned())
        } else {
            None
        }
    });
    let api_key = request.api_key.and_then(text).map(str::to_owned);
    [from_authorization, api_key]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
        .collect()
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "send a Cognigy token as X-API-Key, Authorization: ApiKey …, Authorization: Bearer …, or as a Basic password",
    )
}

/// The attributes a routed turn sets: the defaults, then the intent map's.
pub fn attributes(
    intent: &str,
    confidence: f64,
    route: Option<&IntentRoute>,
    now_ms: i64,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("cognigyDetectedIntent".into(), json!(intent));
    out.insert("cognigyIntentConfidence".into(), json!(confidence));
    out.insert("routedAt".into(), json!(crate::clock::rfc3339(now_ms)));
    if let Some(route) = route {
        for (k, v) in &route.attributes {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// What a turn asks for, before any I/O.
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    NoIntent,
    Negated(String, f64),
    Below(String, f64),
    Route(String, f64),
}

fn decide(turn: &Turn, threshold: f64) -> Decision {
    match (turn.intent.clone(), turn.confidence) {
        (Some(intent), Some(score)) if turn.negated => Decision::Negated(intent, score),
        (Some(intent), Some(score)) if score < threshold => Decision::Below(intent, score),
        (Some(intent), Some(score)) => Decision::Route(intent, score),
        _ => Decision::NoIntent,
    }
}

/// What reaches CXone for a routed turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Context,
    Action,
    Nothing,
}

impl Effect {
    fn name(self) -> Option<&'static str> {
        match self {
            Self::Context => Some("context"),
            Self::Action => Some("action"),
            Self::Nothing => None,
        }
    }
}

/// The router with its ports: the function builds one at cold start.
pub struct IntentRouter<S, I, M, K> {
    pub config: IntentConfig,
    pub profile: Profile,
    pub secrets: S,
    /// Routed turns' answers, for [`DEDUP_TTL`].
    pub dedup: I,
    /// The same for turns nothing identifies, for [`ANONYMOUS_DEDUP_TTL`].
    pub anonymous: I,
    pub sessions: M,
    pub sink: K,
    refresh: RefreshGate,
}

impl<S, I, M, K> IntentRouter<S, I, M, K>
where
    S: SecretSource,
    I: IdempotencyStore,
    M: SessionMemory,
    K: IntentSink,
{
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: IntentConfig,
        profile: Profile,
        secrets: S,
        dedup: I,
        anonymous: I,
        sessions: M,
        sink: K,
        refresh_min_interval: Duration,
    ) -> Self {
        Self {
            config,
            profile,
            secrets,
            dedup,
            anonymous,
            sessions,
            sink,
            refresh: RefreshGate::new(refresh_min_interval),
        }
    }

    /// Checks the token in constant time against `cognigyTokens`. Without a token nothing
    /// is read.
    async fn authenticate(&self, request: &IntentRequest<'_>) -> Result<(), ApiError> {
        let tokens = credentials(request);
        if tokens.is_empty() {
            return Err(unauthorized());
        }
        crate::secrets::check_with_rotation(
            &self.secrets,
            &self.refresh,
            "the Cognigy tokens",
            |secrets| {
                let known = |t: &String| crate::auth::matches_any(t, &secrets.cognigy_tokens);
                // Every candidate is compared, whichever matches.
                if tokens.iter().map(known).fold(false, |any, m| any | m) {
                    Ok(())
                } else {
                    Err(unauthorized())
                }
            },
        )
        .await
    }

    /// `POST /cognigy/intents`. `in_progress_until_ms` is how long a claimed turn stays in
    /// progress (the invocation's deadline).
    pub async fn route(
        &self,
        request: &IntentRequest<'_>,
        now_ms: i64,
        in_progress_until_ms: i64,
    ) -> Result<Answer, ApiError> {
        let started = Instant::now();
        self.authenticate(request).await?;
        let parsed = body::read(request.content_type, request.body)?;
        let turn = turn::read(&parsed, self.config.prefer_contact)?;
        if turn.no_intent_data {
            return Ok(ok(
                json!({"status": "ignored", "reason": "the output carries no intent data"}),
            ));
        }
        let decision = decide(&turn, self.config.threshold);
        let contact = self
            .contact(&turn, matches!(decision, Decision::Route(..)), now_ms)
            .await?;
        let threshold = self.config.threshold;
        let mut answer = match decision {
            Decision::NoIntent => {
                let reason = match &turn.intent {
                    Some(_) => "the intent came without a score",
                    None => "no intent was detected",
                };
                json!({"status": "below_threshold", "reason": reason, "threshold": threshold})
            }
            Decision::Below(intent, confidence) => {
                json!({"status": "below_threshold", "reason": "the score is under the threshold", "intent": intent, "confidence": confidence, "threshold": threshold})
            }
            Decision::Negated(intent, confidence) => {
                json!({"status": "negated", "reason": "Cognigy found the intent negated", "intent": intent, "confidence": confidence})
            }
            Decision::Route(intent, confidence) => {
                let contact =
                    contact.ok_or_else(|| turn::no_contact(turn.session_id.as_deref()))?;
                return self
                    .once(
                        &turn,
                        &contact,
                        &intent,
                        confidence,
                        now_ms,
                        in_progress_until_ms,
                        started,
                    )
                    .await;
            }
        };
        if let Some(c) = contact {
            answer["interactionId"] = json!(c.id);
            answer["contactSource"] = json!(c.source);
        }
        Ok(ok(answer))
    }

    /// The turn's contact: the one it names (recorded for its session), or the one its
    /// session recorded, looked up only when the turn is to be routed (`routable`).
    ///
    /// If the pair cannot be recorded, a turn that is only there to record it (a voice
    /// call's first turn) gets 503, so that Cognigy's retry records it; a routable turn
    /// that names its own contact is routed all the same.
    async fn contact(
        &self,
        turn: &Turn,
        routable: bool,
        now_ms: i64,
    ) -> Result<Option<ContactId>, ApiError> {
        match (&turn.contact, &turn.session_id) {
            (Some(contact), Some(session)) => {
                if let Err(e) = self.sessions.remember(session, contact, now_ms).await {
                    if !routable {
                        return Err(ApiError::unavailable("the session memory", e));
                    }
                    tracing::warn!(error = %e, "could not record the session's contact");
                }
                Ok(Some(contact.clone()))
            }
            (Some(contact), None) => Ok(Some(contact.clone())),
            (None, Some(session)) if routable => self
                .sessions
                .recall(session, now_ms)
                .await
                .map_err(|e| ApiError::unavailable("the session memory", e)),
            (None, _) => Ok(None),
        }
    }

    /// Routes a turn exactly once: a retried HTTP call of the same turn gets the first
    /// answer; a retry while the first is still running gets 503 `in_progress`.
    #[allow(clippy::too_many_arguments)]
    async fn once(
        &self,
        turn: &Turn,
        contact: &ContactId,
        intent: &str,
        confidence: f64,
        now_ms: i64,
        in_progress_until_ms: i64,
        started: Instant,
    ) -> Result<Answer, ApiError> {
        let (key, hash) = turn_key(turn, &contact.id, intent, confidence);
        let store = if turn.turn_id.is_some() || turn.timestamp.is_some() {
            &self.dedup
        } else {
            &self.anonymous
        };
        let claim = store
            .claim(&key, &hash, now_ms, in_progress_until_ms)
            .await
            .map_err(|e| ApiError::unavailable("the de-duplication store", e))?;
        match claim {
            // Turns never record parts done, so a resumed claim is a plain one.
            Claim::Acquired | Claim::Resumed(_) => {}
            Claim::Completed(saved) => {
                let status = saved["status"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK);
                return Ok(Answer {
                    status,
                    body: saved["body"].clone(),
                });
            }
            Claim::InProgress | Claim::Conflict => {
                return Err(ApiError::in_progress(
                    "this turn is being routed now; send it again in a second to get its answer",
                ));
            }
        }
        let outcome = self
            .act(turn, contact, intent, confidence, &hash, now_ms, started)
            .await;
        match &outcome {
            Ok(answer) => {
                let saved = json!({"status": answer.status.as_u16(), "body": answer.body});
                if let Err(e) = store.complete(&key, &hash, &saved, now_ms).await {
                    tracing::warn!(error = %e, "could not record the routed turn");
                }
            }
            // A refused turn may succeed later (the contact may appear): let a resend retry.
            Err(_) => {
                if let Err(e) = store.release(&key, in_progress_until_ms).await {
                    tracing::warn!(error = %e, "could not release the turn");
                }
            }
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        turn: &Turn,
        contact: &ContactId,
        intent: &str,
        confidence: f64,
        hash: &str,
        now_ms: i64,
        started: Instant,
    ) -> Result<Answer, ApiError> {
        let route = self.config.intents.get(intent);
        let attributes = attributes(intent, confidence, route, now_ms);
        let action = route.and_then(|r| r.action.as_deref());
        let effect = match (self.profile, action) {
            (Profile::Documented, _) => Effect::Context,
            (Profile::InContact, Some(_)) => Effect::Action,
            (Profile::InContact, None) => Effect::Nothing,
        };
        let limit = self.config.sync_limit();
        let remaining = limit.saturating_sub(started.elapsed());
        let call = async {
            match (effect, action) {
                (Effect::Context, _) => {
                    self.sink
                        .cxone()
                        .update_context(&contact.id, &attributes)
                        .await
                }
                (Effect::Action, Some(action)) => {
                    self.sink
                        .cxone()
                        .send_action(&contact.id, action, &attributes)
                        .await
                }
                _ => Ok(()),
            }
        };
        let sent = match tokio::time::timeout(remaining, call).await {
            Ok(result) => result,
            Err(_) => Err(CxoneError::Timeout(limit)),
        };
        let mut answer = json!({
            "status": "routed",
            "interactionId": contact.id,
            "contactSource": contact.source,
            "intent": intent,
            "confidence": confidence,
            "attributes": attributes,
            "action": action,
            "sent": effect.name(),
        });
        let mut status = StatusCode::OK;
        match sent {
            Ok(()) => {}
            Err(CxoneError::NotFound(_)) => {
                let code = match self.profile {
                    Profile::Documented => ErrorCode::InteractionNotFound,
                    Profile::InContact => ErrorCode::ContactNotActive,
                };
                return Err(ApiError::new(
                    code,
                    format!("CXone has no active contact {:?}", contact.id),
                ));
            }
            Err(e) if e.is_retryable() => {
                let mut payload = json!({"interactionId": contact.id, "attributes": attributes});
                if effect == Effect::Action {
                    payload["action"] = json!(action);
                }
                let id = format!("intent:{hash}");
                let job = Job::new(JobKind::Context, id.clone(), id, payload, now_ms)
                    .failed(e.to_string(), now_ms);
                self.sink
                    .retry_later(&job, e.retry_after())
                    .await
                    .map_err(|q| ApiError::unavailable("CXone and the job queue", q))?;
                answer["status"] = json!("queued");
                answer["reason"] = json!(match &e {
                    CxoneError::Timeout(_) => e.to_string(),
                    CxoneError::RateLimited { .. } => "CXone's rate limit was reached".to_owned(),
                    _ => "CXone is unavailable".to_owned(),
                });
                status = StatusCode::ACCEPTED;
            }
            Err(e) => {
                let code = if matches!(e, CxoneError::Invalid { .. }) {
                    ErrorCode::CxoneRejected
                } else {
                    ErrorCode::CxoneRefused
                };
                return Err(ApiError::new(code, format!("CXone refused the turn: {e}")));
            }
        }
        // A configured signal definition: the documented profile's way to start a script.
        // On the platform the action is the one signal (the configuration is refused at
        // cold start).
        let signal = route
            .and_then(|r| r.signal.as_ref())
            .filter(|_| self.profile == Profile::Documented);
        if let Some(signal) = signal {
            let field = |name: &str| match name {
                "interactionId" => json!(contact.id),
                "intent" => json!(intent),
                "confidence" => json!(confidence),
                "timestamp" => json!(turn.timestamp),
                _ => Value::Null,
            };
            let data: Map<String, Value> = signal
                .mapping
                .iter()
                .map(|(var, name)| (var.clone(), field(name)))
                .collect();
            let body = json!({"data": data, "metadata": {"contactId": contact.id, "sourceSystem": "cognigy"}});
            let key = format!("intent-{}-{}", &hash[..32], signal.name);
            // Inside the same limit. Cut off, the turn is answered 503: its retry updates the
            // context again (the same attributes) and resends the signal under the same
            // idempotency key, which the dispatcher answers once.
            let remaining = limit.saturating_sub(started.elapsed());
            let triggered = tokio::time::timeout(
                remaining,
                self.sink.trigger(&signal.name, &key, &body, now_ms),
            )
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::DependencyUnavailable,
                    format!(
                        "signal {} did not finish within {} ms; send the turn again",
                        signal.name,
                        limit.as_millis()
                    ),
                )
                .with_retry_after(1)
            })?;
            answer["signal"] = match triggered {
                Ok(reply) => reply,
                Err(err) => json!({"status": "failed", "error": err.body()["error"]}),
            };
        }
        Ok(Answer {
            status,
            body: answer,
        })
    }
}

#[cfg(test)]
mod tests;
