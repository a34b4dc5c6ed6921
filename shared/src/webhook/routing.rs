//! Routing: which targets an event goes to, from the configured rules.

use serde_json::Value;

use super::config::{Condition, Route, Target};
use super::normalise::event_field;

fn holds(condition: &Condition, event: &Value) -> bool {
    match condition {
        Condition::Equals(field, expected) => event_field(event, field) == Some(expected),
        Condition::Contains(field, needle) => match event_field(event, field) {
            Some(Value::String(s)) => s.contains(needle.as_str()),
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(needle.as_str())),
            _ => false,
        },
        Condition::Regex(field, regex) => event_field(event, field)
            .and_then(Value::as_str)
            .is_some_and(|s| regex.is_match(s)),
        Condition::Exists(field, wanted) => event_field(event, field).is_some() == *wanted,
    }
}

/// The targets of every matching route, in priority order, each target once.
pub fn route<'a>(routes: &'a [Route], event: &Value) -> Vec<(&'a str, &'a Target)> {
    let mut targets: Vec<(&str, &Target)> = Vec::new();
    for route in routes {
        if !route.when.iter().all(|c| holds(c, event)) {
            continue;
        }
        for target in &route.targets {
            if !targets.iter().any(|(_, t)| *t == target) {
                targets.push((route.name.as_str(), target));
            }
        }
        if route.stop {
            break;
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::config::WebhookConfig;
    use serde_json::json;

    fn routes(doc: &str) -> Vec<Route> {
        WebhookConfig::parse(Some(doc), "http://q/events", "http://q/jobs")
            .unwrap()
            .routes
    }

    fn event() -> Value {
        json!({"channel": "chat", "eventType": "interaction.created",
               "customer": {"identifier": "a@example.com", "type": "email"},
               "context": {"queue": "VIP Sales", "tags": ["gold"], "skill": null}})
    }

    fn names(routes: &[Route], event: &Value) -> Vec<String> {
        route(routes, event)
            .into_iter()
            .map(|(n, _)| n.to_owned())
            .collect()
    }

    #[test]
    fn each_condition_kind_matches_as_documented() {
        let r = routes(
            r#"{"routes": [
            {"name": "eq", "when": [{"field": "channel", "equals": "chat"}], "targets": [{"queue": "http://q/1"}]},
            {"name": "eq-miss", "when": [{"field": "channel", "equals": "voice"}], "targets": [{"queue": "http://q/2"}]},
            {"name": "contains", "when": [{"field": "context.queue", "contains": "VIP"}], "targets": [{"queue": "http://q/3"}]},
            {"name": "contains-array", "when": [{"field": "context.tags", "contains": "gold"}], "targets": [{"queue": "http://q/4"}]},
            {"name": "regex", "when": [{"field": "customer.identifier", "regex": "@example\\.com$"}], "targets": [{"queue": "http://q/5"}]},
            {"name": "exists", "when": [{"field": "customer.type", "exists": true}], "targets": [{"queue": "http://q/6"}]},
            {"name": "null-is-absent", "when": [{"field": "context.skill", "exists": true}], "targets": [{"queue": "http://q/7"}]},
            {"name": "absent", "when": [{"field": "context.nothing", "exists": false}], "targets": [{"queue": "http://q/8"}]},
            {"name": "regex-on-missing", "when": [{"field": "missing", "regex": ".*"}], "targets": [{"queue": "http://q/9"}]}
        ]}"#,
        );
        assert_eq!(
            names(&r, &event()),
            [
                "eq",
                "contains",
                "contains-array",
                "regex",
                "exists",
                "absent"
            ]
        );
    }

    #[test]
    fn all_conditions_of_a_route_must_hold() {
        let r = routes(
            r#"{"routes": [{"name": "both", "when": [
            {"field": "channel", "equals": "chat"}, {"field": "context.queue", "contains": "Support"}],
            "targets": [{"queue": "events"}]}]}"#,
        );
        assert!(names(&r, &event()).is_empty());
    }

    #[test]
    fn priority_orders_routes_and_stop_ends_evaluation() {
        let r = routes(
            r#"{"routes": [
            {"name": "last", "priority": 30, "targets": [{"queue": "events"}]},
            {"name": "first", "priority": 10, "targets": [{"signal": "order-update"}]},
            {"name": "stopper", "priority": 20, "stop": true, "targets": [{"queue": "http://q/x"}]}
        ]}"#,
        );
        assert_eq!(names(&r, &event()), ["first", "stopper"]);
    }

    #[test]
    fn a_target_named_by_two_routes_is_sent_once() {
        let r = routes(
            r#"{"routes": [
            {"name": "a", "priority": 1, "targets": [{"queue": "events"}]},
            {"name": "b", "priority": 2, "targets": [{"queue": "events"}]}
        ]}"#,
        );
        assert_eq!(route(&r, &event()).len(), 1);
    }
}
