//! The simulator's control API (`/_sim/…`): configuration, faults, the journal, the
//! executions, the target sinks, and sending sample webhooks.

use super::*;

impl Sim {
    pub(super) async fn control(
        &self,
        method: &Method,
        path: &str,
        body: &Bytes,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (method.as_str(), path) {
            ("GET", "/_sim/requests") => {
                // Entries are written when answered; the journal is in arrival order.
                let mut journal = self.journal.lock().map(|j| j.clone()).unwrap_or_default();
                journal.sort_by_key(|e| e["receivedAt"].as_i64().unwrap_or(0));
                reply(StatusCode::OK, Value::Array(journal))
            }
            ("GET", "/_sim/faults") => {
                let armed: Vec<Value> = self
                    .faults
                    .lock()
                    .map(|f| f.iter().map(|f| json!({"match": f.matches, "status": f.status, "times": f.times})).collect())
                    .unwrap_or_default();
                reply(StatusCode::OK, Value::Array(armed))
            }
            ("POST", "/_sim/faults") => match serde_json::from_value::<Fault>(parsed) {
                Ok(fault)
                    if [
                        "token", "signal", "spawn", "context", "setup", "target", "any",
                    ]
                    .contains(&fault.matches.as_str()) =>
                {
                    if let Ok(mut f) = self.faults.lock() {
                        f.push(fault);
                    }
                    reply(StatusCode::CREATED, json!({"status": "armed"}))
                }
                Ok(_) => error(
                    StatusCode::BAD_REQUEST,
                    "bad_fault",
                    "match must be token, signal, spawn, context, setup, target or any",
                ),
                Err(e) => error(StatusCode::BAD_REQUEST, "bad_fault", &e.to_string()),
            },
            ("POST", "/_sim/config") => {
                if let Ok(mut c) = self.config.lock() {
                    if let Some(v) = parsed.get("tokenTtl").and_then(Value::as_u64) {
                        c.token_ttl = v.clamp(1, 86_400);
                    }
                    if let Some(v) = parsed.get("callbackDelayMs").and_then(Value::as_u64) {
                        c.callback_delay_ms = v;
                    }
                    if let Some(v) = parsed.get("callbackStatus").and_then(Value::as_str) {
                        c.callback_status = v.to_owned();
                    }
                }
                match parsed.get("maxUrlLength") {
                    None => {}
                    Some(Value::Null) => {
                        if let Ok(mut c) = self.config.lock() {
                            c.max_url_length = None;
                        }
                    }
                    Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                        Some(n) => {
                            if let Ok(mut c) = self.config.lock() {
                                c.max_url_length = Some(n);
                            }
                        }
                        None => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "bad_config",
                                "maxUrlLength must be a whole number of characters, or null",
                            );
                        }
                    },
                }
                for (key, slot) in [("signalStatus", 0), ("spawnStatus", 1)] {
                    let Some(v) = parsed.get(key) else { continue };
                    let Some(status) = v
                        .as_u64()
                        .and_then(|s| u16::try_from(s).ok())
                        .filter(|s| (200..300).contains(s))
                    else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_config",
                            &format!("{key} must be a 2xx status such as 200, 202 or 204"),
                        );
                    };
                    if let Ok(mut c) = self.config.lock() {
                        if slot == 0 {
                            c.signal_status = status;
                        } else {
                            c.spawn_status = status;
                        }
                    }
                }
                let c = self.config.lock().map(|c| c.clone()).unwrap_or_default();
                reply(StatusCode::OK, c.as_json())
            }
            ("PATCH", p) if p.starts_with("/_sim/setup/") => {
                let Some((kind, name)) = p["/_sim/setup/".len()..].split_once('/') else {
                    return error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "use /_sim/setup/{kind}/{name}",
                    );
                };
                let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
                let changed = self
                    .setup
                    .lock()
                    .map_err(|_| "the setup store is unavailable".to_owned())
                    .and_then(|mut s| s.tamper(kind, &name, &parsed));
                match changed {
                    Ok(object) => reply(StatusCode::OK, object),
                    Err(e) => error(StatusCode::NOT_FOUND, "not_found", &e),
                }
            }
            ("POST", p) if p.starts_with("/_sim/contacts/") && p.ends_with("/end") => {
                let id = p
                    .strip_prefix("/_sim/contacts/")
                    .and_then(|r| r.strip_suffix("/end"))
                    .unwrap_or_default();
                if id.is_empty() || id.contains('/') {
                    return error(StatusCode::NOT_FOUND, "not_found", "no such contact");
                }
                if let Ok(mut ended) = self.ended.lock() {
                    ended.insert(id.to_owned());
                }
                reply(StatusCode::OK, json!({"contactId": id, "state": "ended"}))
            }
            ("POST", "/_sim/reset") => {
                if let Ok(mut j) = self.journal.lock() {
                    j.clear();
                }
                if let Ok(mut s) = self.setup.lock() {
                    s.clear();
                }
                if let Ok(mut f) = self.faults.lock() {
                    f.clear();
                }
                if let Ok(mut c) = self.config.lock() {
                    *c = SimConfig::default();
                }
                if let Ok(mut t) = self.tokens.lock() {
                    t.clear();
                }
                if let Ok(mut e) = self.executions.lock() {
                    e.clear();
                }
                if let Ok(mut e) = self.ended.lock() {
                    e.clear();
                }
                reply(StatusCode::OK, json!({"status": "reset"}))
            }
            ("POST", "/_sim/webhooks") => self.send_webhooks(&parsed).await,
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such control endpoint",
            ),
        }
    }

    pub(super) async fn send_webhooks(&self, request: &Value) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (Some(gateway), Some(secret)) = (
            self.options.gateway.as_deref(),
            self.options.webhook_secret.as_deref(),
        ) else {
            return error(
                StatusCode::CONFLICT,
                "no_gateway",
                "this simulator was started without a gateway to send to",
            );
        };
        let channel = request
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or("voice");
        let count = request
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .min(1000) as usize;
        let run = cxbridge::ids::new_uuid()[..8].to_owned();
        let mut results = Vec::new();
        for n in 1..=count {
            let Some(sample) = samples::webhook(channel, &run, n) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_channel",
                    "channel must be voice, chat, sms or xml",
                );
            };
            let delivery_id = cxbridge::ids::new_uuid();
            let mut post = self
                .http
                .post(format!("{gateway}/webhooks/cxone"))
                .header("content-type", sample.content_type)
                .body(sample.body.clone());
            for (k, v) in samples::signed_headers(
                secret,
                cxbridge::clock::now_secs(),
                &sample.body,
                &delivery_id,
                &sample.event_type,
            ) {
                post = post.header(k, v);
            }
            let status = match post.send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            results.push(json!({"deliveryId": delivery_id, "interactionId": sample.interaction_id, "status": status}));
        }
        reply(StatusCode::OK, json!({"sent": results}))
    }
}
