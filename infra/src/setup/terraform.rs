//! `cxbridge cxone export --format terraform-json`: the managed objects as a Terraform JSON
//! configuration, one `restapi_object` (the generic REST provider `Mastercard/restapi`) per
//! object, so that a team can commit it and let a pipeline detect drift.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::model::Kind;

/// A Terraform name: letters, digits and `_`, starting with a letter, unique in `taken`.
fn resource_name(kind: Kind, name: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    base = base.trim_matches('_').to_owned();
    let base = format!(
        "{}_{}",
        kind.short(),
        if base.is_empty() { "object" } else { &base }
    );
    let mut candidate = base.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

/// The fields a file declares: CXone's own (`id`, timestamps) left out.
fn declared(object: &Value) -> Value {
    match object {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !["id", "createdAt", "updatedAt"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A literal string in Terraform JSON, where every string is a template: `${` and `%{`
/// are escaped as `$${` and `%%{`.
fn literal(text: &str) -> String {
    text.replace("${", "$${").replace("%{", "%%{")
}

/// The configuration for `objects` (kind, the object as CXone lists it) at `api_base`.
/// Each object CXone gave an id is adopted by an `import` block (Terraform 1.5 or later),
/// so that a first `terraform plan` reports drift rather than creating copies.
pub fn export(api_base: &str, objects: &[(Kind, Value)]) -> Value {
    let mut taken = BTreeSet::new();
    let mut resources = Map::new();
    let mut imports = Vec::new();
    for (kind, object) in objects {
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = resource_name(*kind, name, &mut taken);
        if let Some(id) = object.get("id").and_then(Value::as_str) {
            imports.push(json!({
                "to": format!("restapi_object.{key}"),
                "id": literal(&format!("{}/{id}", kind.path())),
            }));
        }
        resources.insert(
            key,
            json!({
                "path": kind.path(),
                "id_attribute": "id",
                "data": literal(&declared(object).to_string()),
            }),
        );
    }
    let mut document = json!({
        "terraform": {
            "required_providers": {
                "restapi": {"source": "Mastercard/restapi", "version": "~> 1.19"}
            }
        },
        "variable": {
            "cxone_token": {
                "type": "string",
                "sensitive": true,
                "description": "A CXone access token for the documented API"
            }
        },
        "provider": {
            "restapi": {
                "uri": literal(api_base),
                "write_returns_object": true,
                "headers": {"Authorization": "Bearer ${var.cxone_token}"}
            }
        },
        "resource": {"restapi_object": resources}
    });
    if !imports.is_empty() {
        document["import"] = Value::Array(imports);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_sequences_in_values_are_escaped_and_ids_are_imported() {
        let objects = vec![
            (
                Kind::Webhook,
                json!({"name": "w", "url": "https://a/${x}/%{y}"}),
            ),
            (Kind::RoutingRule, json!({"id": "rr-1", "name": "r"})),
        ];
        let doc = export("https://api.example.com", &objects);
        let data = doc["resource"]["restapi_object"]["webhook_w"]["data"]
            .as_str()
            .unwrap();
        assert!(data.contains("$${x}") && data.contains("%%{y}"), "{data}");
        assert_eq!(
            doc["import"],
            json!([{"to": "restapi_object.routing_rule_r", "id": "/api/v2/routing/rules/rr-1"}])
        );
    }

    #[test]
    fn one_resource_per_object_with_unique_names_and_no_server_fields() {
        let objects = vec![
            (
                Kind::Webhook,
                json!({"id": "wh-1", "name": "cxbridge interactions", "url": "https://a/x"}),
            ),
            (
                Kind::Webhook,
                json!({"id": "wh-2", "name": "cxbridge-interactions", "url": "https://a/y"}),
            ),
            (
                Kind::RoutingRule,
                json!({"id": "rr-1", "name": "99", "priority": 10}),
            ),
        ];
        let doc = export("https://api.example.com", &objects);
        let resources = doc["resource"]["restapi_object"].as_object().unwrap();
        let names: Vec<&String> = resources.keys().collect();
        assert_eq!(
            names,
            [
                "routing_rule_99",
                "webhook_cxbridge_interactions",
                "webhook_cxbridge_interactions_2"
            ]
        );
        let data: Value =
            serde_json::from_str(resources["routing_rule_99"]["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, json!({"name": "99", "priority": 10}));
        assert_eq!(
            resources["routing_rule_99"]["path"],
            "/api/v2/routing/rules"
        );
        assert_eq!(doc["provider"]["restapi"]["uri"], "https://api.example.com");
    }
}
