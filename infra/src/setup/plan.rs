//! What it takes to make CXone match a setup file: pure, from the file and what exists.

use serde_json::Value;

use super::model::{Kind, Setup};

/// One field that differs: what CXone has, and what the file says.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(absent)".to_owned(), Value::to_string);
        write!(
            f,
            "{}: {} → {}",
            self.field,
            show(&self.from),
            show(&self.to)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    Update(Vec<FieldChange>),
    Unchanged,
    /// In CXone, not in the file: deleted with `--prune`, otherwise kept.
    Delete {
        prune: bool,
    },
}

/// What happens to one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    /// CXone's id, for an object that exists.
    pub id: Option<String>,
    /// The object as the file declares it (none for a deletion).
    pub desired: Option<Value>,
    pub action: Action,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether CXone differs from the file in a way `apply` would change.
    pub fn drift(&self) -> bool {
        self.changes.iter().any(|c| match c.action {
            Action::Create | Action::Update(_) => true,
            Action::Delete { prune } => prune,
            Action::Unchanged => false,
        })
    }

    /// (create, update, delete, unchanged)
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut n = (0, 0, 0, 0);
        for c in &self.changes {
            match c.action {
                Action::Create => n.0 += 1,
                Action::Update(_) => n.1 += 1,
                Action::Delete { prune: true } => n.2 += 1,
                Action::Delete { prune: false } | Action::Unchanged => n.3 += 1,
            }
        }
        n
    }

    /// The plan as a person reads it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let what = format!("{} {:?}", c.kind.label(), c.name);
            let line = match &c.action {
                Action::Create => format!("+ create    {what}"),
                Action::Update(fields) => {
                    let mut s = format!("~ update    {what}");
                    for f in fields {
                        s.push_str(&format!("\n      {f}"));
                    }
                    s
                }
                Action::Unchanged => format!("  unchanged {what}"),
                Action::Delete { prune: true } => format!("- delete    {what}"),
                Action::Delete { prune: false } => {
                    format!("  not in the file (kept; --prune deletes it) {what}")
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        let (create, update, delete, unchanged) = self.counts();
        out.push_str(&format!(
            "Plan: {create} to create, {update} to update, {delete} to delete, {unchanged} unchanged.\n"
        ));
        out
    }
}

/// Lists whose order means nothing to CXone: compared as sets.
const UNORDERED: [&str; 2] = ["events", "eventFilters"];

/// Whether two leaves are the same: numbers by value (`5` is `5.0`), `null` as absent.
fn same(have: Option<&Value>, want: Option<&Value>) -> bool {
    let have = have.filter(|v| !v.is_null());
    let want = want.filter(|v| !v.is_null());
    match (have, want) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn sorted(list: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(Value::to_string).collect();
    out.sort();
    out
}

/// Every field the file declares where `have` (CXone's) differs from `want` (the file's),
/// by path. Fields only CXone has (its own additions) are not drift.
pub fn diff(path: &str, have: Option<&Value>, want: Option<&Value>, out: &mut Vec<FieldChange>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    let last = path.rsplit('.').next().unwrap_or(path);
    match (have, want) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (key, value) in b {
                diff(&join(key), a.get(key), Some(value), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b)))
            if UNORDERED.contains(&last) && sorted(a) != sorted(b) =>
        {
            out.push(FieldChange {
                field: path.to_owned(),
                from: have.cloned(),
                to: want.cloned(),
            });
        }
        // The same set in another order.
        (Some(Value::Array(_)), Some(Value::Array(_))) if UNORDERED.contains(&last) => {}
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if !same(a, b) => out.push(FieldChange {
            field: path.to_owned(),
            from: a.cloned(),
            to: b.cloned(),
        }),
        _ => {}
    }
}

/// The plan for `setup` against `existing` (per kind, the objects CXone lists).
pub fn plan(setup: &Setup, existing: &[(Kind, Vec<Value>)], prune: bool) -> Plan {
    let listed = |kind: Kind| {
        existing
            .iter()
            .filter(move |(k, _)| *k == kind)
            .flat_map(|(_, items)| items.iter())
    };
    let name_of = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
    let id_of = |v: &Value| v.get("id").and_then(Value::as_str).map(str::to_owned);
    let mut changes = Vec::new();
    let declared_objects = setup.objects();
    for kind in Kind::ALL {
        for (_, name, want) in declared_objects.iter().filter(|(k, _, _)| *k == kind) {
            let found = listed(kind).find(|v| name_of(v).as_deref() == Some(name.as_str()));
            let action = match found {
                None => Action::Create,
                Some(have) => {
                    let mut fields = Vec::new();
                    diff("", Some(have), Some(want), &mut fields);
                    if fields.is_empty() {
                        Action::Unchanged
                    } else {
                        Action::Update(fields)
                    }
                }
            };
            changes.push(Change {
                kind,
                name: name.clone(),
                id: found.and_then(id_of),
                desired: Some(want.clone()),
                action,
            });
        }
        let mut extra: Vec<Change> = listed(kind)
            .filter(|v| {
                let name = name_of(v);
                !declared_objects
                    .iter()
                    .any(|(k, n, _)| *k == kind && Some(n) == name.as_ref())
            })
            .map(|v| Change {
                kind,
                name: name_of(v).unwrap_or_default(),
                id: id_of(v),
                desired: None,
                action: Action::Delete { prune },
            })
            .collect();
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        changes.extend(extra);
    }
    Plan { changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setup() -> Setup {
        serde_json::from_value(json!({
            "webhooks": [{"name": "w", "url": "https://a.example.com/x", "events": ["e.a"]}],
            "routingRules": [{"name": "r", "priority": 10,
                "conditions": [{"attribute": "cognigyDetectedIntent", "operator": "equals", "value": "cancel"}],
                "targets": [{"queue": "Retention", "weight": 100}]}]
        }))
        .unwrap()
    }

    #[test]
    fn nothing_in_cxone_means_everything_is_created() {
        let p = plan(&setup(), &[], false);
        assert_eq!(p.counts(), (2, 0, 0, 0));
        assert!(p.drift());
    }

    #[test]
    fn a_changed_field_is_an_update_naming_the_field_and_extras_are_kept_unless_pruned() {
        let s = setup();
        let mut rule = s.objects()[1].2.clone();
        rule["id"] = json!("rr-1");
        rule["conditions"][0]["value"] = json!("cancelled");
        let webhook = {
            let mut w = s.objects()[0].2.clone();
            w["id"] = json!("wh-1");
            w["createdAt"] = json!("2026-12-01T00:00:00Z");
            w
        };
        let other = json!({"id": "wh-2", "name": "old"});
        let existing = vec![
            (Kind::Webhook, vec![webhook, other]),
            (Kind::RoutingRule, vec![rule]),
        ];
        let p = plan(&s, &existing, false);
        assert_eq!(p.counts(), (0, 1, 0, 2));
        let update = p.changes.iter().find(|c| c.name == "r").unwrap();
        assert_eq!(update.id.as_deref(), Some("rr-1"));
        let Action::Update(fields) = &update.action else {
            panic!("{update:?}")
        };
        assert_eq!(fields.len(), 1);
        assert_eq!(
            fields[0].to_string(),
            "conditions[0].value: \"cancelled\" → \"cancel\""
        );
        assert!(p.drift());
        let pruned = plan(&s, &existing, true);
        assert_eq!(pruned.counts(), (0, 1, 1, 1));
        assert!(pruned.render().contains("- delete    webhook \"old\""));
    }

    #[test]
    fn server_additions_number_forms_reordered_sets_and_nulls_are_not_drift() {
        let want = json!({"name": "t", "retryPolicy": {"maxRetries": 5, "timeoutMs": 5000},
            "eventFilters": ["a", "b"], "events": ["x", "y"], "extra": null});
        let have = json!({"name": "t", "retryPolicy": {"maxRetries": 5.0, "timeoutMs": 5000, "backoff": "exp"},
            "eventFilters": ["b", "a"], "events": ["y", "x"], "lastTestedAt": "2026-12-01T00:00:00Z"});
        let mut out = Vec::new();
        diff("", Some(&have), Some(&want), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let moved = json!({"targets": [{"queue": "B"}, {"queue": "A"}]});
        let wanted = json!({"targets": [{"queue": "A"}, {"queue": "B"}]});
        diff("", Some(&moved), Some(&wanted), &mut out);
        assert_eq!(out.len(), 2, "routing targets keep their order: {out:?}");
    }

    #[test]
    fn a_match_is_no_drift() {
        let s = setup();
        let existing: Vec<(Kind, Vec<Value>)> = s
            .objects()
            .into_iter()
            .map(|(k, _, mut v)| {
                v["id"] = json!("x");
                (k, vec![v])
            })
            .collect();
        let p = plan(&s, &existing, true);
        assert!(!p.drift());
        assert_eq!(p.counts(), (0, 0, 0, 2));
    }
}
