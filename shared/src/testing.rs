//! In-memory fakes of the ports, for the services' unit tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::idempotency::{Claim, IdempotencyStore, ReplayCheck, ReplayGuard, StoreError};
use crate::queue::{MessageQueue, OutboundMessage, QueueError};
use crate::secrets::{SecretError, SecretSource, Secrets};

/// Secrets whose stored value can change, counting forced reads.
pub struct FakeSecrets {
    pub stored: Mutex<Arc<Secrets>>,
    pub cached: Mutex<Arc<Secrets>>,
    pub refreshes: AtomicUsize,
}

impl FakeSecrets {
    pub fn with(secrets: Secrets) -> Self {
        let s = Arc::new(secrets);
        Self {
            stored: Mutex::new(s.clone()),
            cached: Mutex::new(s),
            refreshes: AtomicUsize::new(0),
        }
    }
}

impl SecretSource for FakeSecrets {
    async fn current(&self) -> Result<Arc<Secrets>, SecretError> {
        Ok(self.cached.lock().unwrap().clone())
    }
    async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let fresh = self.stored.lock().unwrap().clone();
        *self.cached.lock().unwrap() = fresh.clone();
        Ok(fresh)
    }
}

/// Idempotency records and the replay guard in maps; `down` makes every call fail.
#[derive(Default)]
pub struct FakeStore {
    pub items: Mutex<HashMap<String, (String, Option<Value>)>>,
    /// Keys given up part-way: the payload hash and the parts done.
    pub partials: Mutex<HashMap<String, (String, Vec<String>)>>,
    pub replays: Mutex<HashMap<String, String>>,
    pub down: AtomicBool,
}

impl FakeStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("down".into()));
        }
        Ok(())
    }
}

impl IdempotencyStore for FakeStore {
    async fn claim(&self, key: &str, hash: &str, _: i64, _: i64) -> Result<Claim, StoreError> {
        self.check()?;
        let mut items = self.items.lock().unwrap();
        if let Some((h, done)) = self.partials.lock().unwrap().remove(key) {
            if h != hash {
                return Ok(Claim::Conflict);
            }
            items.insert(key.into(), (hash.into(), None));
            return Ok(Claim::Resumed(done));
        }
        Ok(match items.get(key) {
            None => {
                items.insert(key.into(), (hash.into(), None));
                Claim::Acquired
            }
            Some((h, _)) if h != hash => Claim::Conflict,
            Some((_, Some(r))) => Claim::Completed(r.clone()),
            Some((_, None)) => Claim::InProgress,
        })
    }
    async fn complete(
        &self,
        key: &str,
        hash: &str,
        response: &Value,
        _: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.items
            .lock()
            .unwrap()
            .insert(key.into(), (hash.into(), Some(response.clone())));
        Ok(())
    }
    async fn partial(
        &self,
        key: &str,
        hash: &str,
        done: &[String],
        _: i64,
        _: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.items.lock().unwrap().remove(key);
        self.partials
            .lock()
            .unwrap()
            .insert(key.into(), (hash.into(), done.to_vec()));
        Ok(())
    }
    async fn release(&self, key: &str, _: i64) -> Result<(), StoreError> {
        self.check()?;
        self.items.lock().unwrap().remove(key);
        Ok(())
    }
}

impl ReplayGuard for FakeStore {
    async fn remember(
        &self,
        sig: &str,
        delivery: &str,
        _: i64,
        _: i64,
    ) -> Result<ReplayCheck, StoreError> {
        self.check()?;
        let mut replays = self.replays.lock().unwrap();
        Ok(match replays.get(sig) {
            None => {
                replays.insert(sig.into(), delivery.into());
                ReplayCheck::Fresh
            }
            Some(d) if d == delivery => ReplayCheck::SameDelivery,
            Some(_) => ReplayCheck::Replayed,
        })
    }
}

/// Queues that keep what they were sent; `down` makes every send fail, and `refusing`
/// names the queues that refuse them.
#[derive(Default)]
pub struct FakeQueue {
    pub sent: Mutex<Vec<(String, OutboundMessage)>>,
    pub down: AtomicBool,
    pub refusing: Mutex<Vec<String>>,
}

impl MessageQueue for FakeQueue {
    async fn send_all(&self, queue: &str, messages: &[OutboundMessage]) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst)
            || self.refusing.lock().unwrap().iter().any(|q| q == queue)
        {
            return Err(QueueError {
                queue: queue.into(),
                detail: "down".into(),
            });
        }
        let mut sent = self.sent.lock().unwrap();
        sent.extend(messages.iter().map(|m| (queue.to_owned(), m.clone())));
        Ok(())
    }
}
