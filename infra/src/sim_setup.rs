//! The documented API's setup endpoints in the simulator: webhook subscriptions, routing
//! rules and integration targets, with list, get, create, update and delete, the rules of
//! [`crate::setup::model`] (422 with field errors, 409 on a duplicate name), and the
//! targets' test, which the simulator runs by really calling the target.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::setup::model::{Kind, check_object};

/// The objects the simulator holds, by kind and id.
#[derive(Debug, Default)]
pub struct SetupStore {
    objects: BTreeMap<Kind, BTreeMap<String, Value>>,
    next: u64,
}

/// What a setup request asks of the simulator.
pub enum SetupAnswer {
    /// Answer this.
    Reply(StatusCode, Value),
    /// Answer 204.
    NoContent,
    /// Run the target's test: call `endpoint` within `timeout_ms`.
    Test {
        id: String,
        name: String,
        endpoint: String,
        timeout_ms: u64,
    },
}

fn failure(status: StatusCode, code: &str, message: &str) -> SetupAnswer {
    SetupAnswer::Reply(status, json!({"error": code, "error_description": message}))
}

fn invalid(problems: Vec<crate::setup::Problem>) -> SetupAnswer {
    SetupAnswer::Reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": "validation_failed", "error_description": "the object is not valid", "fields": problems}),
    )
}

/// The body as an object of `kind` that CXone's rules accept, or the answer refusing it.
fn checked(kind: Kind, body: &[u8]) -> Result<Value, SetupAnswer> {
    let parsed = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be a JSON object",
            )
        })?;
    check_object(kind, &parsed).map_err(invalid)
}

impl SetupStore {
    fn of(&mut self, kind: Kind) -> &mut BTreeMap<String, Value> {
        self.objects.entry(kind).or_default()
    }

    fn name_taken(&mut self, kind: Kind, name: &str, except: Option<&str>) -> Option<String> {
        self.of(kind)
            .iter()
            .find(|(id, v)| Some(id.as_str()) != except && v["name"] == name)
            .map(|(id, _)| id.clone())
    }

    /// Handles `method` on `path` (a setup path: see [`Kind::of_path`]).
    pub fn handle(&mut self, method: &str, path: &str, body: &[u8], now: &str) -> SetupAnswer {
        let Some((kind, id)) = Kind::of_path(path) else {
            return failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        };
        match (method, id) {
            ("GET", None) => {
                let items: Vec<Value> = self.of(kind).values().cloned().collect();
                let total = items.len();
                SetupAnswer::Reply(StatusCode::OK, json!({"items": items, "total": total}))
            }
            ("POST", None) => {
                let object = match checked(kind, body) {
                    Ok(o) => o,
                    Err(answer) => return answer,
                };
                let name = object["name"].as_str().unwrap_or_default().to_owned();
                if let Some(existing) = self.name_taken(kind, &name, None) {
                    return SetupAnswer::Reply(
                        StatusCode::CONFLICT,
                        json!({"error": "conflict", "error_description": format!("a {} named {name:?} exists", kind.label()), "id": existing}),
                    );
                }
                self.next += 1;
                let id = format!("{}-{:04}", kind.short().replace('_', "-"), self.next);
                let mut stored = object;
                stored["id"] = json!(id);
                stored["createdAt"] = json!(now);
                stored["updatedAt"] = json!(now);
                self.of(kind).insert(id, stored.clone());
                SetupAnswer::Reply(StatusCode::CREATED, stored)
            }
            ("POST", Some(rest)) if kind == Kind::IntegrationTarget && rest.ends_with("/test") => {
                let id = rest.trim_end_matches("/test");
                match self.of(kind).get(id) {
                    Some(t) => SetupAnswer::Test {
                        id: id.to_owned(),
                        name: t["name"].as_str().unwrap_or_default().to_owned(),
                        endpoint: t["endpoint"].as_str().unwrap_or_default().to_owned(),
                        timeout_ms: t["retryPolicy"]["timeoutMs"].as_u64().unwrap_or(5000),
                    },
                    None => failure(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no such integration target",
                    ),
                }
            }
            (_, Some(id)) if id.contains('/') => {
                failure(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            }
            ("GET", Some(id)) => match self.of(kind).get(id) {
                Some(v) => SetupAnswer::Reply(StatusCode::OK, v.clone()),
                None => failure(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no such {}", kind.label()),
                ),
            },
            ("PUT", Some(id)) => {
                let Some(created) = self.of(kind).get(id).map(|v| v["createdAt"].clone()) else {
                    return failure(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        &format!("no such {}", kind.label()),
                    );
                };
                let object = match checked(kind, body) {
                    Ok(o) => o,
                    Err(answer) => return answer,
                };
                let name = object["name"].as_str().unwrap_or_default().to_owned();
                if self.name_taken(kind, &name, Some(id)).is_some() {
                    return failure(
                        StatusCode::CONFLICT,
                        "conflict",
                        &format!("another {} is named {name:?}", kind.label()),
                    );
                }
                let mut stored = object;
                stored["id"] = json!(id);
                stored["createdAt"] = created;
                stored["updatedAt"] = json!(now);
                self.of(kind).insert(id.to_owned(), stored.clone());
                SetupAnswer::Reply(StatusCode::OK, stored)
            }
            ("DELETE", Some(id)) => match self.of(kind).remove(id) {
                Some(_) => SetupAnswer::NoContent,
                None => failure(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no such {}", kind.label()),
                ),
            },
            _ => failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            ),
        }
    }

    /// Changes fields of the object named `name` behind everyone's back (a control
    /// endpoint, for drift): `patch`'s members replace the object's.
    pub fn tamper(&mut self, kind_key: &str, name: &str, patch: &Value) -> Result<Value, String> {
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.key() == kind_key)
            .ok_or_else(|| {
                format!("no kind {kind_key:?}; use webhooks, routingRules or integrationTargets")
            })?;
        let Some(patch) = patch.as_object() else {
            return Err("the body must be a JSON object".into());
        };
        let object = self
            .of(kind)
            .values_mut()
            .find(|v| v["name"] == name)
            .ok_or_else(|| format!("no {} named {name:?}", kind.label()))?;
        for (k, v) in patch {
            object[k.as_str()] = v.clone();
        }
        Ok(object.clone())
    }

    pub fn clear(&mut self) {
        self.objects.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(a: SetupAnswer) -> (StatusCode, Value) {
        match a {
            SetupAnswer::Reply(s, v) => (s, v),
            SetupAnswer::NoContent => (StatusCode::NO_CONTENT, Value::Null),
            SetupAnswer::Test { id, .. } => (StatusCode::OK, json!({"test": id})),
        }
    }

    #[test]
    fn create_conflict_update_list_and_delete() {
        let mut s = SetupStore::default();
        let rule = json!({"name": "r", "conditions": [{"attribute": "a", "operator": "exists"}], "targets": [{"queue": "Q", "weight": 100}]});
        let (status, created) = reply(s.handle(
            "POST",
            "/api/v2/routing/rules",
            rule.to_string().as_bytes(),
            "t",
        ));
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["priority"], 100);
        let id = created["id"].as_str().unwrap().to_owned();
        let (status, body) = reply(s.handle(
            "POST",
            "/api/v2/routing/rules",
            rule.to_string().as_bytes(),
            "t",
        ));
        assert_eq!(
            (status, body["id"].as_str()),
            (StatusCode::CONFLICT, Some(id.as_str()))
        );
        let mut changed = rule.clone();
        changed["priority"] = json!(5);
        let path = format!("/api/v2/routing/rules/{id}");
        let (status, body) = reply(s.handle("PUT", &path, changed.to_string().as_bytes(), "u"));
        assert_eq!(
            (status, body["priority"].clone(), body["createdAt"].clone()),
            (StatusCode::OK, json!(5), json!("t"))
        );
        let (_, list) = reply(s.handle("GET", "/api/v2/routing/rules", b"", "u"));
        assert_eq!(list["total"], 1);
        assert_eq!(
            reply(s.handle("DELETE", &path, b"", "u")).0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            reply(s.handle("DELETE", &path, b"", "u")).0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn invalid_objects_get_422_with_every_field() {
        let mut s = SetupStore::default();
        let target = json!({"name": "", "endpoint": "http://crm.example.com", "retryPolicy": {"maxRetries": 11, "timeoutMs": 100}});
        let (status, body) = reply(s.handle(
            "POST",
            "/api/v2/integrations/targets",
            target.to_string().as_bytes(),
            "t",
        ));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields: Vec<&str> = body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "endpoint",
                "retryPolicy.maxRetries",
                "retryPolicy.timeoutMs"
            ]
        );
    }
}
