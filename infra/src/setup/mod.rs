//! Declarative CXone-side setup on the documented API: webhook subscriptions, routing rules
//! and integration targets from one file, with `plan`, `apply` and `export`
//! (`cxbridge cxone …`). The real platform has none of these APIs.

pub mod api;
pub mod model;
pub mod plan;
pub mod run;
pub mod terraform;

use std::path::Path;

use serde_json::Value;

pub use model::{Kind, Problem, Setup};

/// Replaces each `${NAME}` in the file's strings with `vars(NAME)`; a name with no value is
/// a problem at its place.
fn substitute(
    value: &mut Value,
    path: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    problems.push(Problem {
                        field: path.to_owned(),
                        problem: "an unclosed ${".into(),
                    });
                    return;
                };
                let name = &after[..end];
                match vars(name) {
                    Some(v) => out.push_str(&v),
                    None => problems.push(Problem {
                        field: path.to_owned(),
                        problem: format!("uses ${{{name}}}, which is not set"),
                    }),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), vars, problems);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                substitute(v, &field, vars, problems);
            }
        }
        _ => {}
    }
}

/// Parses a setup file's text (JSON, or YAML), fills in `${NAME}`s and checks it: the setup,
/// or every problem found.
pub fn parse(
    text: &str,
    yaml: bool,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Setup, Vec<Problem>> {
    let whole = |problem: String| {
        vec![Problem {
            field: "(file)".into(),
            problem,
        }]
    };
    let mut value: Value = if yaml {
        serde_norway::from_str(text).map_err(|e| whole(format!("not valid YAML: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| whole(format!("not valid JSON: {e}")))?
    };
    let mut problems = Vec::new();
    substitute(&mut value, "", vars, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Setup::from_value(&value)
}

/// Reads and checks a setup file; `.yaml` and `.yml` files are YAML, others JSON.
pub fn load(path: &Path, vars: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Setup> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    parse(&text, yaml, vars).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!(
            "{} is not valid ({} problem{}):\n{}",
            path.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            list.join("\n")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_filled_in_and_a_missing_one_is_named() {
        let vars =
            |name: &str| (name == "CXBRIDGE_URL").then(|| "https://api.example.com".to_owned());
        let text = r#"{"webhooks": [{"name": "w", "url": "${CXBRIDGE_URL}/webhooks/cxone", "events": ["e.a"]}]}"#;
        let s = parse(text, false, &vars).unwrap();
        assert_eq!(s.webhooks[0].url, "https://api.example.com/webhooks/cxone");
        let text = r#"{"webhooks": [{"name": "w", "url": "${NOPE}/x", "events": ["e.a"]}]}"#;
        let err = parse(text, false, &vars).unwrap_err();
        assert_eq!(err[0].field, "webhooks[0].url");
        assert!(err[0].problem.contains("${NOPE}"));
    }

    #[test]
    fn shape_errors_are_named_at_their_place_beside_rule_errors() {
        let text = r#"{"webhooks": [{"name": "w", "url": "https://a.example.com", "events": ["e"], "colour": "red"}],
            "routingRules": [{"name": "", "conditions": [{"attribute": "a", "operator": "exists"}], "targets": [{"queue": "Q", "weight": 100}]}],
            "integrationTargets": [{"name": "t", "endpoint": "https://a.example.com", "retryPolicy": {"maxRetries": -1, "timeoutMs": 1000}}],
            "extra": 1}"#;
        let err = parse(text, false, &|_| None).unwrap_err();
        let fields: Vec<&str> = err.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "extra",
                "webhooks[0]",
                "routingRules[0].name",
                "integrationTargets[0]"
            ]
        );
        assert!(err[1].problem.contains("colour"), "{}", err[1].problem);
    }

    #[test]
    fn yaml_reads_as_json_does() {
        let yaml = "webhooks:\n  - name: w\n    url: https://a.example.com/x\n    events: [e.a]\n";
        let s = parse(yaml, true, &|_| None).unwrap();
        assert_eq!(s.webhooks[0].name, "w");
        assert!(s.webhooks[0].enabled);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cxone-setup.json");
        let s = load(&path, &|_| Some("http://127.0.0.1:3000".into())).unwrap();
        assert_eq!(
            (
                s.webhooks.len(),
                s.routing_rules.len(),
                s.integration_targets.len()
            ),
            (2, 3, 2)
        );
    }
}
