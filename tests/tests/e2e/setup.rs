//! `cxbridge cxone plan | apply | export` against the local stack's simulator, through the
//! real CLI binary.

use std::path::PathBuf;

use cxbridge_e2e::{TestStack, options, platform_options, project_root, start, unique};
use cxbridge_local::setup::Kind;
use serde_json::{Value, json};

const EXAMPLE: &str = "examples/cxone-setup.json";

/// The journal's calls to the setup endpoints: (method, path, status, receivedAt).
async fn setup_calls(stack: &TestStack) -> Vec<(String, String, u64, i64)> {
    stack
        .journal()
        .await
        .into_iter()
        .filter_map(|e| {
            let path = e["path"].as_str()?.to_owned();
            Kind::of_path(&path)?;
            Some((
                e["method"].as_str()?.to_owned(),
                path,
                e["status"].as_u64()?,
                e["receivedAt"].as_i64()?,
            ))
        })
        .collect()
}

fn writes(calls: &[(String, String, u64, i64)]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| c.0 != "GET")
        .map(|c| (c.0.clone(), c.1.clone()))
        .collect()
}

fn count(calls: &[(String, String)], method: &str, path: &str) -> usize {
    calls
        .iter()
        .filter(|(m, p)| m == method && p == path)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_the_example_then_changes_nothing_restores_drift_exports_and_prunes() {
    let stack = start(options()).await;

    // 1. Everything is created, and each target is tested.
    let first = stack
        .cli(&["cxone", "apply", "-f", EXAMPLE, "--auto-approve"])
        .await;
    first.expect(0);
    assert!(
        first.stdout.contains("2 of 2 target tests passed"),
        "{}",
        first.stdout
    );
    let calls = writes(&setup_calls(&stack).await);
    assert_eq!(count(&calls, "POST", "/api/v2/webhooks"), 2, "{calls:?}");
    assert_eq!(
        count(&calls, "POST", "/api/v2/routing/rules"),
        3,
        "{calls:?}"
    );
    assert_eq!(
        count(&calls, "POST", "/api/v2/integrations/targets"),
        2,
        "{calls:?}"
    );
    let tests: Vec<_> = calls
        .iter()
        .filter(|(m, p)| m == "POST" && p.ends_with("/test"))
        .collect();
    assert_eq!(tests.len(), 2, "{calls:?}");
    assert_eq!(
        calls.len(),
        9,
        "nothing but the creates and tests: {calls:?}"
    );
    // 2. A second apply changes nothing; plan agrees.
    let before = setup_calls(&stack).await.len();
    let second = stack
        .cli(&["cxone", "apply", "-f", EXAMPLE, "--auto-approve"])
        .await;
    second.expect(0);
    assert!(second.stdout.contains("No changes"), "{}", second.stdout);
    let after = setup_calls(&stack).await;
    assert!(
        writes(&after[before..]).is_empty(),
        "{:?}",
        &after[before..]
    );
    let plan = stack.cli(&["cxone", "plan", "-f", EXAMPLE]).await;
    plan.expect(0);
    assert!(
        plan.stdout
            .contains("0 to create, 0 to update, 0 to delete, 7 unchanged"),
        "{}",
        plan.stdout
    );

    // 3. A rule changed behind cxbridge's back is drift, named with its field; apply
    // restores it.
    let changed = reqwest::Client::new()
        .patch(format!(
            "{}/_sim/setup/routingRules/cognigy-billing",
            stack.cxone_url
        ))
        .json(&json!({"priority": 99}))
        .send()
        .await
        .unwrap();
    assert!(changed.status().is_success());
    let plan = stack.cli(&["cxone", "plan", "-f", EXAMPLE]).await;
    plan.expect(2);
    assert!(
        plan.stdout
            .contains("~ update    routing rule \"cognigy-billing\""),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("priority: 99 → 20"), "{}", plan.stdout);
    let before = setup_calls(&stack).await.len();
    let restore = stack
        .cli(&["cxone", "apply", "-f", EXAMPLE, "--auto-approve"])
        .await;
    restore.expect(0);
    let after = setup_calls(&stack).await;
    let restored = writes(&after[before..]);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0].0, "PUT");
    assert!(restored[0].1.starts_with("/api/v2/routing/rules/"));
    assert_eq!(stack.cli(&["cxone", "plan", "-f", EXAMPLE]).await.code, 0);

    // 6. The export: one resource per managed object, each with its path and data.
    let out = std::env::temp_dir().join(format!("{}.tf.json", unique("export-")));
    let export = stack
        .cli(&[
            "cxone",
            "export",
            "--format",
            "terraform-json",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
    export.expect(0);
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_terraform(&document, 7);

    // A target whose test fails is reported with its answer, and apply says so.
    let mut with_broken: Value =
        serde_json::from_str(&std::fs::read_to_string(project_root().join(EXAMPLE)).unwrap())
            .unwrap();
    with_broken["integrationTargets"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"name": "broken", "endpoint": "${CXBRIDGE_URL}/no-such-route",
                     "retryPolicy": {"maxRetries": 0, "timeoutMs": 1000}}),
        );
    let file = write_temp("broken.json", &with_broken);
    let run = stack
        .cli(&[
            "cxone",
            "apply",
            "-f",
            file.to_str().unwrap(),
            "--auto-approve",
        ])
        .await;
    let _ = std::fs::remove_file(&file);
    run.expect(1);
    assert!(
        run.stdout
            .contains("tested integration target \"broken\": FAILED: it answered 404"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("1 created, 0 updated, 0 deleted; 0 of 1 target tests passed"),
        "{}",
        run.stdout
    );

    // Back to the example: the extra target is kept, and is no drift, unless --prune.
    let kept = stack.cli(&["cxone", "plan", "-f", EXAMPLE]).await;
    assert!(
        kept.expect(0)
            .contains("not in the file (kept; --prune deletes it) integration target \"broken\""),
        "{}",
        kept.stdout
    );
    let pruned = stack
        .cli(&["cxone", "plan", "-f", EXAMPLE, "--prune"])
        .await;
    assert!(
        pruned
            .expect(2)
            .contains("- delete    integration target \"broken\""),
        "{}",
        pruned.stdout
    );
    let before = setup_calls(&stack).await.len();
    stack
        .cli(&["cxone", "apply", "-f", EXAMPLE, "--auto-approve", "--prune"])
        .await
        .expect(0);
    let after = setup_calls(&stack).await;
    let deleted = writes(&after[before..]);
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].0, "DELETE");
    assert!(deleted[0].1.starts_with("/api/v2/integrations/targets/"));
    stack
        .cli(&["cxone", "plan", "-f", EXAMPLE, "--prune"])
        .await
        .expect(0);
}

/// A Terraform JSON configuration `terraform validate` accepts: the provider required and
/// configured, and `expected` `restapi_object` blocks, each with a path and JSON data.
fn assert_terraform(document: &Value, expected: usize) {
    assert_eq!(
        document["terraform"]["required_providers"]["restapi"]["source"],
        "Mastercard/restapi"
    );
    assert!(
        document["provider"]["restapi"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
    assert_eq!(
        document["provider"]["restapi"]["write_returns_object"],
        true
    );
    assert_eq!(
        document["provider"]["restapi"]["headers"]["Authorization"],
        "Bearer ${var.cxone_token}"
    );
    assert_eq!(document["variable"]["cxone_token"]["sensitive"], true);
    let top: Vec<&String> = document.as_object().unwrap().keys().collect();
    assert_eq!(
        top,
        ["import", "provider", "resource", "terraform", "variable"]
    );
    let imports = document["import"].as_array().unwrap();
    assert_eq!(imports.len(), expected);
    let resources = document["resource"]["restapi_object"].as_object().unwrap();
    assert_eq!(resources.len(), expected, "{resources:?}");
    let mut names = std::collections::BTreeSet::new();
    for (key, block) in resources {
        assert!(
            key.chars().next().unwrap().is_ascii_lowercase()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{key}"
        );
        let path = block["path"].as_str().unwrap();
        assert!(
            Kind::of_path(path).is_some_and(|(_, id)| id.is_none()),
            "{path}"
        );
        let data: Value = serde_json::from_str(block["data"].as_str().unwrap()).unwrap();
        assert!(data.get("id").is_none(), "{data}");
        assert!(names.insert(data["name"].as_str().unwrap().to_owned()));
        assert_eq!(block["id_attribute"], "id");
        assert_eq!(block.as_object().unwrap().len(), 3, "{block}");
        let import = imports
            .iter()
            .find(|i| i["to"] == format!("restapi_object.{key}"))
            .unwrap_or_else(|| panic!("no import for {key}"));
        assert!(
            import["id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{path}/"))
        );
    }
}

fn write_temp(name: &str, value: &Value) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", unique("setup-")));
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_file_is_refused_with_every_problem_named_before_any_call() {
    let stack = start(options()).await;
    // The functions' own calls at start-up (their token) are not the CLI's.
    let before = stack.journal().await.len();
    let file = write_temp(
        "invalid.json",
        &json!({
            "webhooks": [{"name": "", "url": "https://ok.example.com/x", "events": ["interaction.created"]}],
            "routingRules": [{"name": "r", "conditions": [{"attribute": "cognigyDetectedIntent", "operator": "like", "value": "cancel"}],
                              "targets": [{"queue": "Q", "weight": 100}]}],
            "integrationTargets": [{"name": "t", "endpoint": "http://crm.example.com/in",
                                    "retryPolicy": {"maxRetries": 11, "timeoutMs": 5000}}]
        }),
    );
    let path = file.to_str().unwrap();
    for args in [
        vec!["cxone", "plan", "-f", path],
        vec!["cxone", "apply", "-f", path, "--auto-approve"],
    ] {
        let command = args[1];
        let run = stack.cli(&args).await;
        assert_ne!(run.code, 0, "{command}: {}", run.stdout);
        for named in [
            "webhooks[0].name",
            "routingRules[0].conditions[0].operator: unknown operator \"like\"",
            "integrationTargets[0].endpoint: must be an HTTPS URL",
            "integrationTargets[0].retryPolicy.maxRetries: must be 0 to 10 (got 11)",
            "4 problems",
        ] {
            assert!(
                run.stderr.contains(named),
                "{command}: {named} in {}",
                run.stderr
            );
        }
    }
    let _ = std::fs::remove_file(&file);
    let journal = stack.journal().await;
    assert_eq!(
        journal.len(),
        before,
        "no call at all, not even a token: {:?}",
        &journal[before..]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_waits_out_three_429s_and_calls_nothing_before_their_retry_after() {
    let stack = start(options()).await;
    let fault = json!({"match": "setup", "status": 429, "retryAfter": 2, "times": 3});
    let armed = reqwest::Client::new()
        .post(format!("{}/_sim/faults", stack.cxone_url))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(armed.status().is_success());
    let run = stack
        .cli(&["cxone", "apply", "-f", EXAMPLE, "--auto-approve"])
        .await;
    run.expect(0);
    let calls = setup_calls(&stack).await;
    let limited: Vec<usize> = (0..calls.len()).filter(|&i| calls[i].2 == 429).collect();
    assert_eq!(limited.len(), 3, "{calls:?}");
    for i in limited {
        let next = calls.get(i + 1).expect("a call after each 429");
        assert!(
            next.3 >= calls[i].3 + 2000,
            "a call {} ms after a 429 with Retry-After: 2",
            next.3 - calls[i].3
        );
    }
    assert_eq!(
        writes(&calls).iter().filter(|(m, _)| m == "POST").count(),
        9
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_platform_profile_every_command_refuses_and_calls_nothing() {
    let stack = start(platform_options()).await;
    let before = stack.journal().await.len();
    for args in [
        &["cxone", "plan", "-f", EXAMPLE][..],
        &["cxone", "apply", "-f", EXAMPLE, "--auto-approve"][..],
        &["cxone", "export", "--format", "terraform-json"][..],
    ] {
        let run = stack.cli(args).await;
        assert_ne!(run.code, 0, "{args:?}: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        for said in [
            "needs the documented API",
            "no API for webhook",
            "/webhooks/studio",
            "nothing was sent",
        ] {
            assert!(
                run.stderr.contains(said),
                "{args:?}: {said} in {}",
                run.stderr
            );
        }
    }
    let journal = stack.journal().await;
    assert_eq!(journal.len(), before, "{:?}", &journal[before..]);
}
