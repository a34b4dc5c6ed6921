//! The simulator's profiles: the documented API's signals and the platform's contact
//! signals and spawned scripts, with Studio's typing of variables, the admin calls the
//! setup command makes, and the completion callbacks a script would send.

use super::*;

fn type_ok(kind: &str, value: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "datetime" => value.as_str().is_some_and(is_datetime),
        _ => false,
    }
}

/// RFC 3339 date-time, as Studio's datetime variables take it.
fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
        && (s.ends_with('Z') || s.ends_with('z') || s[19..].contains('+') || s[19..].contains('-'))
}

impl Sim {
    pub(super) fn documented_signal(
        &self,
        id: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let Some(variables) = self.options.definitions.get(id) else {
            return error(
                StatusCode::NOT_FOUND,
                "definition_not_found",
                "no such signal definition",
            );
        };
        let Ok(payload) = serde_json::from_slice::<Value>(body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not JSON",
            );
        };
        let Some(data) = payload.get("data").and_then(Value::as_object) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "data must be an object",
            );
        };
        let mut problems = Vec::new();
        for v in variables {
            match data.get(&v.name) {
                None => problems.push(format!("{} is missing", v.name)),
                Some(value) if !type_ok(&v.kind, value) => {
                    problems.push(format!("{} must be a {}", v.name, v.kind))
                }
                Some(_) => {}
            }
        }
        for key in data.keys() {
            if !variables.iter().any(|v| &v.name == key) {
                problems.push(format!("{key} is not a declared variable"));
            }
        }
        if !problems.is_empty() {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_signal", "errors": problems}),
            );
        }
        let execution_id = cxbridge::ids::new_uuid();
        let metadata = payload.get("metadata").cloned().unwrap_or(Value::Null);
        let execution = json!({
            "signalExecutionId": execution_id, "definitionId": id, "status": "running",
            "data": data, "metadata": metadata, "createdAt": cxbridge::clock::rfc3339(now_ms()),
        });
        if let Ok(mut e) = self.executions.lock() {
            e.insert(execution_id.clone(), execution);
        }
        self.schedule_callback(execution_id.clone(), metadata);
        reply(
            StatusCode::ACCEPTED,
            json!({"signalExecutionId": execution_id}),
        )
    }

    /// The platform's signal call. Parameters may come in the query (as the API spec has
    /// it), in a JSON body (as NICE's SDK sends them), or both (as the Cognigy extension
    /// does); all are accepted.
    pub(super) fn platform_signal(
        &self,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let Some(rest) = path
            .strip_prefix("/inContactAPI/services/v")
            .and_then(|r| r.strip_suffix("/signal"))
        else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        let Some((version, contact)) = rest.split_once("/interactions/") else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        if !version.ends_with(".0") || contact.is_empty() || contact.contains('/') {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        let ended = self.ended.lock().is_ok_and(|e| e.contains(contact));
        if contact.starts_with("unknown") || ended {
            return error(
                StatusCode::NOT_FOUND,
                "contact_not_found",
                "no such active contact",
            );
        }
        let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if !body.is_empty() {
            match serde_json::from_slice::<Map<String, Value>>(body) {
                Ok(map) => params.extend(map.into_iter().map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the body is not a JSON object",
                    );
                }
            }
        }
        let allowed: Vec<String> = (1..=9).map(|i| format!("p{i}")).collect();
        if let Some((bad, _)) = params.iter().find(|(k, _)| !allowed.contains(k)) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &format!("{bad} is not one of p1-p9"),
            );
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        // NICE's Cognigy convention (`p1` = an action such as Escalate, or cxbridge's
        // `updateContext`, `p2` = the attributes as JSON) tells the script what to do; it
        // reports nothing back.
        let action = param("p2")
            .and_then(|p2| serde_json::from_str::<Value>(&p2).ok())
            .is_some_and(|p2| p2.get("cognigyDetectedIntent").is_some());
        let status = self.config.lock().map(|c| c.signal_status).unwrap_or(202);
        if !action {
            self.completes(param("p1"));
        }
        match status {
            200 => reply(StatusCode::OK, json!({})),
            other => empty(StatusCode::from_u16(other).unwrap_or(StatusCode::ACCEPTED)),
        }
    }

    /// The platform's spawn-script call: a JSON body `{"scriptId","skillId","parameters"}`
    /// as NICE's SDK sends it, or `skillId` and `parameters` in the query; the parameters
    /// one pipe-delimited string (an array is taken too).
    pub(super) fn platform_spawn(
        &self,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let Some((version, script)) = path
            .strip_prefix("/inContactAPI/services/v")
            .and_then(|r| r.strip_suffix("/start"))
            .and_then(|r| r.split_once("/scripts/"))
        else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        if !version.ends_with(".0") || script.is_empty() || script.contains('/') {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        if script.starts_with("unknown") {
            return error(StatusCode::NOT_FOUND, "script_not_found", "no such script");
        }
        let mut fields = form(query.as_bytes());
        if !body.is_empty() {
            let Ok(map) = serde_json::from_slice::<Map<String, Value>>(body) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body is not a JSON object",
                );
            };
            // The id may come as a string or a number; either must name the path's script.
            let named = |id: &Value| match id {
                Value::String(s) => s.as_str() == script,
                Value::Number(n) => n.to_string() == script,
                _ => false,
            };
            if map.get("scriptId").is_some_and(|id| !named(id)) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "scriptId in the body is not the script in the path",
                );
            }
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s,
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join("|"),
                    other => other.to_string(),
                };
                fields.insert(k, text);
            }
        }
        if fields.get("skillId").is_none_or(String::is_empty) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "skillId is required",
            );
        }
        let first = fields
            .get("parameters")
            .and_then(|p| p.split('|').next())
            .map(str::to_owned);
        let status = self.config.lock().map(|c| c.spawn_status).unwrap_or(202);
        let contact = self
            .spawned
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.completes(first);
        match status {
            204 => empty(StatusCode::NO_CONTENT),
            other => reply(
                StatusCode::from_u16(other).unwrap_or(StatusCode::ACCEPTED),
                json!({"contactId": contact}),
            ),
        }
    }

    /// A webhook, routing rule or integration target call; a target's test calls the
    /// target with a signed `integration.test` event, as CXone would.
    pub(super) async fn setup_call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        use crate::sim_setup::SetupAnswer;
        let now = cxbridge::clock::rfc3339(now_ms());
        let answer = match self.setup.lock() {
            Ok(mut store) => store.handle(method, path, body, &now),
            Err(_) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the setup store is unavailable",
                );
            }
        };
        let (id, name, endpoint, timeout_ms) = match answer {
            SetupAnswer::Reply(status, value) => return reply(status, value),
            SetupAnswer::NoContent => return empty(StatusCode::NO_CONTENT),
            SetupAnswer::Test {
                id,
                name,
                endpoint,
                timeout_ms,
            } => (id, name, endpoint, timeout_ms),
        };
        let delivery = format!("test-{}", cxbridge::ids::new_uuid());
        let event = json!({"eventType": "integration.test", "data": {"id": delivery, "targetId": id, "targetName": name}}).to_string();
        let mut request = self
            .http
            .post(&endpoint)
            .timeout(Duration::from_millis(timeout_ms))
            .header("content-type", "application/json")
            .body(event.clone());
        if let Some(secret) = &self.options.webhook_secret {
            for (header, value) in crate::samples::signed_headers(
                secret,
                cxbridge::clock::now_secs(),
                event.as_bytes(),
                &delivery,
                "integration.test",
            ) {
                request = request.header(header, value);
            }
        }
        let started = std::time::Instant::now();
        let report = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                json!({
                    "success": (200..300).contains(&status),
                    "statusCode": status,
                    "latencyMs": started.elapsed().as_millis() as u64,
                    "responseBody": text.chars().take(1000).collect::<String>(),
                })
            }
            Err(e) => json!({
                "success": false,
                "latencyMs": started.elapsed().as_millis() as u64,
                "error": format!("cannot reach {endpoint}: {e}"),
            }),
        };
        reply(StatusCode::OK, report)
    }

    /// After an accepted platform signal or spawn whose first parameter is a correlation
    /// id, the script reports back as a Studio REST action would: a token-mode callback.
    pub(super) fn completes(&self, correlation_id: Option<String>) {
        let Some(id) = correlation_id.filter(|c| !c.is_empty()) else {
            return;
        };
        self.schedule_callback(
            format!("platform-{}", cxbridge::ids::new_uuid()),
            json!({"correlationId": id}),
        );
    }

    pub(super) fn schedule_callback(&self, execution_id: String, metadata: Value) {
        let target = self
            .options
            .gateway
            .clone()
            .zip(self.options.callback_secret.clone());
        let config = self.config.lock().map(|c| c.clone()).unwrap_or_default();
        let http = self.http.clone();
        let sim = self.executions_handle();
        let platform = self.options.profile == "incontact";
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(config.callback_delay_ms)).await;
            // The execution ends in the history; a "lost" callback is never sent.
            let ended = if config.callback_status == "lost" {
                "completed"
            } else {
                config.callback_status.as_str()
            };
            if let Ok(mut executions) = sim.lock()
                && let Some(e) = executions.get_mut(&execution_id)
            {
                e["status"] = json!(ended);
                e["outputs"] = json!({"result": "ok"});
            }
            let Some((gateway, secret)) = target.filter(|_| config.callback_status != "lost")
            else {
                return;
            };
            let body = json!({
                "correlationId": metadata.get("correlationId"),
                "signalExecutionId": (!platform).then_some(execution_id),
                "status": config.callback_status,
                "outputs": {"result": "ok"},
            })
            .to_string();
            let post = http
                .post(format!("{gateway}/callbacks/studio"))
                .header("content-type", "application/json");
            // Studio's REST action cannot sign: on the platform the callback brings a token.
            let post = if platform {
                post.header("x-callback-token", secret)
            } else {
                let ts = cxbridge::clock::now_secs();
                let signature =
                    cxbridge::webhook::signature::sign(secret.as_bytes(), ts, body.as_bytes());
                post.header("x-callback-timestamp", ts.to_string())
                    .header("x-callback-signature-256", signature)
            };
            let _ = post.body(body).send().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn datetimes_follow_rfc_3339() {
        assert!(is_datetime("2026-11-22T09:00:00Z"));
        assert!(is_datetime("2026-11-22T09:00:00.123+01:00"));
        assert!(!is_datetime("2026-11-22"));
        assert!(!is_datetime("yesterday at noon, roughly"));
    }
}
