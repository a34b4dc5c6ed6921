//! Named targets on the local stack's default configuration: every accepted event goes to
//! `events`, to the HTTPS target `audit` (the simulator's sink), and to the bus, whose rule
//! forwards it to `bus-events`; each exactly once, the HTTPS delivery signed.

use std::time::Duration;

use cxbridge_e2e::{
    TestStack, WebhookRequest, eventually, options, queue_depth, receive_all, sdk, start, unique,
    with_local_targets,
};
use cxbridge_local::samples;
use reqwest::StatusCode;
use serde_json::Value;

const SINK: &str = "/_sim/targets/audit";

fn signed(secret: &str, delivery_id: &str) -> WebhookRequest {
    let s = samples::webhook("chat", &unique("r"), 1).unwrap();
    WebhookRequest::signed(secret, s.content_type, &s.body, delivery_id, &s.event_type)
}

/// The sink's deliveries that answered `status`.
async fn at_sink(stack: &TestStack, status: u64) -> Vec<Value> {
    stack
        .requests_under(SINK)
        .await
        .into_iter()
        .filter(|e| e["status"] == status)
        .collect()
}

/// Waits until `url` holds `n` messages, and returns them (none deleted).
async fn on_queue(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<Value> {
    eventually(
        &format!("{n} message(s) on {url}"),
        Duration::from_secs(60),
        || async {
            let all = receive_all(sqs, url).await;
            (all.len() >= n).then(|| {
                all.iter()
                    .map(|m| serde_json::from_str(m.body().unwrap_or_default()).unwrap())
                    .collect()
            })
        },
    )
    .await
}

/// Waits until the jobs queue holds nothing, visible, in flight or delayed: no delivery is
/// left to run, so what the targets have is all they will get.
async fn drained(stack: &TestStack, sqs: &aws_sdk_sqs::Client) {
    let jobs = &stack.resources.queues["jobs"].url;
    eventually(
        "the jobs queue to drain",
        Duration::from_secs(60),
        || async { (queue_depth(sqs, jobs).await == 0).then_some(()) },
    )
    .await;
}

fn verify(secret: &str, delivery: &Value) -> Result<(), String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = delivery["headers"][name].as_str().unwrap_or_default();
        headers.insert(name, value.parse().map_err(|e| format!("{name}: {e}"))?);
    }
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
    webhook
        .verify(
            delivery["body"].as_str().unwrap_or_default().as_bytes(),
            &headers,
        )
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_webhook_reaches_events_the_signed_https_target_and_the_bus_once_each() {
    let stack = start(with_local_targets(options())).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let delivery = unique("d-");
    let request = signed(&stack.resources.secrets.webhook, &delivery);
    let (status, body) = request.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The sender's retry is a duplicate, and reaches no target again.
    let (status, _) = request.send(&client, &stack.gateway_url).await;
    assert_eq!(status, StatusCode::OK);

    eventually("the audit delivery", Duration::from_secs(60), || async {
        (!at_sink(&stack, 200).await.is_empty()).then_some(())
    })
    .await;
    drained(&stack, &sqs).await;
    let sink = at_sink(&stack, 200).await;
    let events = on_queue(&sqs, &stack.resources.queues["events"].url, 1).await;
    let bus = on_queue(&sqs, &stack.resources.queues["bus-events"].url, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(bus.len(), 1, "{bus:?}");
    assert_eq!(sink.len(), 1, "{sink:?}");

    assert_eq!(events[0]["deliveryId"], delivery.as_str());
    // The bus has the normalised event as its detail.
    assert_eq!(bus[0]["source"], "cxbridge");
    assert_eq!(bus[0]["detail-type"], "CXone event");
    assert_eq!(bus[0]["detail"], events[0]);
    // The HTTPS target has it as its body, signed the Standard Webhooks way.
    let sent: Value = serde_json::from_str(sink[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, events[0]);
    let secret = &stack.resources.secrets.targets["audit"];
    verify(secret, &sink[0]).unwrap();
    assert!(
        verify("whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", &sink[0]).is_err(),
        "another secret does not verify"
    );
    assert_eq!(sink[0]["headers"]["content-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_waits_for_no_target_its_deliveries_wait_on_jobs_until_the_drainer_runs() {
    let stack = start(with_local_targets(options())).await;
    assert!(stack.set_mapping_enabled("jobs", false));
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let delivery = unique("d-");
    let (status, body) = signed(&stack.resources.secrets.webhook, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Answered with nothing at either target: the event is on `events`, and one delivery
    // job per named target waits on `jobs`.
    let events = on_queue(&sqs, &stack.resources.queues["events"].url, 1).await;
    assert_eq!(events[0]["deliveryId"], delivery.as_str());
    assert!(at_sink(&stack, 200).await.is_empty());
    assert_eq!(
        queue_depth(&sqs, &stack.resources.queues["bus-events"].url).await,
        0
    );
    let jobs_url = &stack.resources.queues["jobs"].url;
    stack.relayed().await;
    let waiting = receive_all(&sqs, jobs_url).await;
    let mut targets: Vec<String> = Vec::new();
    for message in &waiting {
        let job: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap();
        if job["kind"] == "delivery" {
            assert_eq!(job["payload"]["deliveryId"], delivery.as_str());
            targets.push(job["payload"]["target"].as_str().unwrap().to_owned());
        }
        // Visible again at once, for the drainer.
        sqs.change_message_visibility()
            .queue_url(jobs_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    targets.sort();
    assert_eq!(targets, ["audit", "bus"]);

    assert!(stack.set_mapping_enabled("jobs", true));
    eventually("the audit delivery", Duration::from_secs(60), || async {
        (!at_sink(&stack, 200).await.is_empty()).then_some(())
    })
    .await;
    drained(&stack, &sqs).await;
    assert_eq!(at_sink(&stack, 200).await.len(), 1);
    let bus = on_queue(&sqs, &stack.resources.queues["bus-events"].url, 1).await;
    assert_eq!(bus.len(), 1);
    assert_eq!(bus[0]["detail"], events[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_failing_twice_gets_the_event_on_the_third_attempt_and_the_others_once() {
    let stack = start(with_local_targets(options())).await;
    stack
        .fault(serde_json::json!({"match": "target", "status": 500, "times": 2}))
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let delivery = unique("d-");
    let (status, body) = signed(&stack.resources.secrets.webhook, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    eventually("the audit delivery", Duration::from_secs(60), || async {
        (!at_sink(&stack, 200).await.is_empty()).then_some(())
    })
    .await;
    drained(&stack, &sqs).await;
    let ok = at_sink(&stack, 200).await;
    assert_eq!(ok.len(), 1);
    let failed = at_sink(&stack, 500).await;
    assert_eq!(failed.len(), 2, "two failures before it");
    // Every attempt carried the same message id, so a receiver can drop repeats.
    let ids: std::collections::BTreeSet<&str> = failed
        .iter()
        .chain(&ok)
        .map(|d| d["headers"]["webhook-id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    let events = on_queue(&sqs, &stack.resources.queues["events"].url, 1).await;
    let bus = on_queue(&sqs, &stack.resources.queues["bus-events"].url, 1).await;
    assert_eq!((events.len(), bus.len()), (1, 1));
}

/// The local configuration with the `audit` target's retry and breaker settings replaced.
fn audit_config(retry: Value, breaker: Value) -> String {
    serde_json::json!({
        "targets": [
            {"name": "audit", "type": "https", "url": "{simulator}/_sim/targets/audit",
             "timeoutMs": 5000, "retry": retry, "breaker": breaker},
            {"name": "bus", "type": "eventbridge", "bus": "{bus}"}
        ],
        "routes": [{"name": "all-events", "priority": 1000,
                    "targets": [{"queue": "events"}, {"target": "audit"}, {"target": "bus"}]}]
    })
    .to_string()
}

/// A stack whose `audit` target has these retry and breaker settings, and whose sink
/// answers its next two deliveries with 500.
async fn failing_audit(retry: Value, breaker: Value) -> TestStack {
    let mut opts = options();
    opts.webhook_config = Some(audit_config(retry, breaker));
    let stack = start(opts).await;
    stack
        .fault(serde_json::json!({"match": "target", "status": 500, "times": 2}))
        .await;
    stack
}

/// The delivery log as `cxbridge deliveries list --format json` prints it.
async fn delivery_log(stack: &TestStack) -> Vec<Value> {
    let run = stack
        .cli(&["deliveries", "list", "--since", "1h", "--format", "json"])
        .await;
    serde_json::from_str(run.expect(0)).unwrap()
}

/// The sink's 2xx deliveries, by the delivery id in their body.
async fn delivered_ids(stack: &TestStack) -> Vec<String> {
    at_sink(stack, 200)
        .await
        .iter()
        .map(|d| {
            let body: Value = serde_json::from_str(d["body"].as_str().unwrap()).unwrap();
            body["deliveryId"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_failing_past_its_threshold_is_paused_and_its_parked_deliveries_arrive_once_after_resume()
 {
    let stack = failing_audit(
        serde_json::json!({"maxRetries": 5, "backoff": "fixed", "delayMs": 100}),
        serde_json::json!({"failures": 2, "cooldownSecs": 3600}),
    )
    .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let secret = &stack.resources.secrets.webhook;

    let first = unique("d-");
    let (status, _) = signed(secret, &first)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let listed = eventually("audit to be paused", Duration::from_secs(60), || async {
        let run = stack.cli(&["targets", "list"]).await;
        let text = run.expect(0).to_owned();
        text.lines()
            .any(|l| l.starts_with("audit ") && l.contains(" paused "))
            .then_some(text)
    })
    .await;
    assert!(
        listed.contains("HTTP 500"),
        "the last error is shown: {listed}"
    );

    let later: Vec<String> = (0..2).map(|_| unique("d-")).collect();
    for id in &later {
        let (status, _) = signed(secret, id).send(&client, &stack.gateway_url).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    // Every delivery is parked: none reaches the sink while the target is paused.
    eventually("all three parked", Duration::from_secs(60), || async {
        let log = delivery_log(&stack).await;
        let parked = |id: &str| {
            log.iter()
                .any(|e| e["deliveryId"] == id && e["status"] == "parked")
        };
        (parked(&first) && later.iter().all(|id| parked(id))).then_some(())
    })
    .await;
    assert_eq!(
        stack.requests_under(SINK).await.len(),
        2,
        "only the two failures"
    );

    let resumed = stack.cli(&["targets", "resume", "audit"]).await;
    assert!(resumed.expect(0).contains("target audit resumed"));
    eventually("the parked deliveries", Duration::from_secs(60), || async {
        (delivered_ids(&stack).await.len() >= 3).then_some(())
    })
    .await;
    drained(&stack, &sqs).await;
    let mut ids = delivered_ids(&stack).await;
    ids.sort();
    let mut expected: Vec<String> = later.iter().cloned().chain([first.clone()]).collect();
    expected.sort();
    assert_eq!(ids, expected, "each delivered exactly once");

    // The wait did not count: the first delivery succeeded on its third attempt (two
    // failures), the later ones on their first.
    let log = delivery_log(&stack).await;
    let delivered_at = |id: &str| {
        log.iter()
            .find(|e| e["deliveryId"] == id && e["target"] == "audit" && e["status"] == "delivered")
            .map(|e| e["attempt"].as_u64().unwrap())
    };
    assert_eq!(delivered_at(&first), Some(3), "{log:?}");
    for id in &later {
        assert_eq!(delivered_at(id), Some(1), "{log:?}");
    }
    let events = on_queue(&sqs, &stack.resources.queues["events"].url, 3).await;
    let bus = on_queue(&sqs, &stack.resources.queues["bus-events"].url, 3).await;
    assert_eq!((events.len(), bus.len()), (3, 3));
    let listed = stack.cli(&["targets", "list"]).await;
    assert!(
        listed
            .expect(0)
            .lines()
            .any(|l| l.starts_with("audit ") && l.contains(" active ")),
        "{}",
        listed.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_out_of_retries_is_dead_lettered_with_its_target_and_redriven_to_it_alone() {
    let stack = failing_audit(
        serde_json::json!({"maxRetries": 1, "backoff": "fixed", "delayMs": 100}),
        serde_json::json!({"failures": 10, "cooldownSecs": 60}),
    )
    .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let client = reqwest::Client::new();
    let delivery = unique("d-");
    let (status, _) = signed(&stack.resources.secrets.webhook, &delivery)
        .send(&client, &stack.gateway_url)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let dlq = stack.resources.queues["dlq"].url.clone();
    eventually(
        "the dead-lettered delivery",
        Duration::from_secs(60),
        || async { (queue_depth(&sqs, &dlq).await == 1).then_some(()) },
    )
    .await;
    drained(&stack, &sqs).await;
    let dead = receive_all(&sqs, &dlq).await;
    assert_eq!(dead.len(), 1);
    let attrs = dead[0].message_attributes().unwrap();
    assert_eq!(attrs["target"].string_value(), Some("audit"));
    let reason = attrs["deadLetterReason"].string_value().unwrap();
    assert!(
        reason.contains("gave up after 2 attempts") && reason.contains("target audit: HTTP 500"),
        "{reason}"
    );
    // Make it visible again for the redrive.
    sqs.change_message_visibility()
        .queue_url(&dlq)
        .receipt_handle(dead[0].receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let jobs = stack.resources.queues["jobs"].url.clone();
    let redriven = stack
        .cli(&["dlq", "redrive", "--dlq", &dlq, "--to", &jobs])
        .await;
    assert!(redriven.expect(0).contains("1 message(s) redriven"));
    eventually("the redriven delivery", Duration::from_secs(60), || async {
        (!delivered_ids(&stack).await.is_empty()).then_some(())
    })
    .await;
    drained(&stack, &sqs).await;
    assert_eq!(delivered_ids(&stack).await, std::slice::from_ref(&delivery));
    let events = on_queue(&sqs, &stack.resources.queues["events"].url, 1).await;
    let bus = on_queue(&sqs, &stack.resources.queues["bus-events"].url, 1).await;
    assert_eq!(
        (events.len(), bus.len()),
        (1, 1),
        "only the target was redriven"
    );

    // The delivery log has every attempt, with status and latency.
    let run = stack
        .cli(&["deliveries", "list", "--since", "1h", "--format", "csv"])
        .await;
    let csv = run.expect(0);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("at,delivery_id,target,attempt,status,http_status,latency_ms,error")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.splitn(8, ',').collect()).collect();
    let summary: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .filter(|r| r[1] == delivery && r[2] == "audit")
        .map(|r| (r[3], r[4], r[5], r[6]))
        .map(|(a, s, h, l)| {
            assert!(l.parse::<u64>().is_ok(), "latency: {l}");
            (a, s, h, "")
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("1", "failed", "500", ""),
            ("2", "failed", "500", ""),
            ("1", "delivered", "200", "")
        ],
        "{csv}"
    );
    let failed = stack
        .cli(&[
            "deliveries",
            "list",
            "--status",
            "failed",
            "--target",
            "audit",
        ])
        .await;
    assert!(
        failed.expect(0).contains("2 attempt(s)"),
        "{}",
        failed.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_test_sends_a_signed_synthetic_event_and_reports_the_answer() {
    let stack = start(with_local_targets(options())).await;
    let run = stack.cli(&["targets", "test", "audit"]).await;
    let out = run.expect(0);
    assert!(out.starts_with("target audit: ok, HTTP 200 in "), "{out}");
    assert!(
        out.contains("\"received\":true"),
        "the answer's first bytes: {out}"
    );
    let sink = at_sink(&stack, 200).await;
    assert_eq!(sink.len(), 1);
    let body: Value = serde_json::from_str(sink[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["eventType"], "integration.test");
    verify(&stack.resources.secrets.targets["audit"], &sink[0]).unwrap();

    stack
        .fault(serde_json::json!({"match": "target", "status": 503, "times": 1}))
        .await;
    let run = stack.cli(&["targets", "test", "audit"]).await;
    let out = run.expect(1);
    assert!(
        out.contains("failed") && out.contains("HTTP 503") && out.contains("would be retried"),
        "{out}"
    );
    let unknown = stack.cli(&["targets", "test", "crm"]).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no target \"crm\"") && unknown.stderr.contains("audit, bus"),
        "{}",
        unknown.stderr
    );
}

/// Target declarations, each wrong in its own way, and what the refusal must say.
fn bad_targets() -> Vec<(Value, &'static str)> {
    use serde_json::json;
    vec![
        (
            json!({"name": "t1", "type": "https", "url": "http://audit.example.com/"}),
            "targets[0] (t1).url must be https://",
        ),
        (
            json!({"name": "t2", "type": "https", "url": "https://x/", "timeoutMs": 500}),
            "targets[1] (t2).timeoutMs is 500; it must be 1000–30000",
        ),
        (
            json!({"name": "t3", "type": "https", "url": "https://x/", "retry": {"maxRetries": 11}}),
            "targets[2] (t3).retry.maxRetries is 11; it must be 0–10",
        ),
        (
            json!({"name": "t4", "type": "https", "url": "https://x/", "retry": {"backoff": "random"}}),
            "targets[3] (t4).retry.backoff \"random\"",
        ),
        (
            json!({"name": "t5", "type": "https", "url": "https://x/", "auth": {"type": "digest"}}),
            "targets[4] (t5).auth.type \"digest\"",
        ),
        (
            json!({"name": "t6", "type": "https", "url": "https://x/", "auth": {"type": "apiKey"}}),
            "targets[5] (t6).auth of type apiKey needs header",
        ),
        (
            json!({"name": "t7", "type": "https", "url": "https://x/", "headers": {"Authorization": "x"}}),
            "targets[6] (t7).headers: Authorization is set by cxbridge",
        ),
        (
            json!({"name": "t8", "type": "eventbridge"}),
            "targets[7] (t8) needs bus",
        ),
        (
            json!({"name": "t9", "type": "eventbridge", "bus": "b", "source": "aws.events"}),
            "targets[8] (t9).source must be 1–256 characters and must not start with aws.",
        ),
        (
            json!({"name": "t10", "type": "sqs", "queueUrl": "crm"}),
            "targets[9] (t10).queueUrl \"crm\" is not a queue URL",
        ),
        (
            json!({"name": "t11", "type": "smtp"}),
            "targets[10] (t11).type \"smtp\" is not one of https, eventbridge or sqs",
        ),
        (
            json!({"name": "bad name", "type": "sqs", "queueUrl": "https://q/1/a"}),
            "targets[11] (bad name).name must be 1–64 characters",
        ),
        (
            json!({"name": "t13", "type": "sqs", "queueUrl": "https://q/1/a", "breaker": {"failures": 0}}),
            "targets[12] (t13).breaker.failures is 0",
        ),
        (
            json!({"name": "t13", "type": "sqs", "queueUrl": "https://q/1/b"}),
            "targets[13] (t13): the name \"t13\" is used twice",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_target_configurations_are_refused_at_cold_start_and_by_config_check_each_named() {
    let cases = bad_targets();
    let document = serde_json::json!({
        "targets": cases.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(),
        "routes": [{"name": "r", "targets": [{"queue": "events"}, {"target": "nowhere"}]}]
    })
    .to_string();
    let mut expected: Vec<&str> = cases.iter().map(|(_, e)| *e).collect();
    // With the targets wrong, their names are not known yet; once they are right, a route
    // naming an undeclared one is refused too (checked below).
    let file = std::env::temp_dir().join(format!("{}.json", unique("webhook-config-")));
    std::fs::write(&file, &document).unwrap();

    let mut opts = options();
    opts.webhook_config = Some(document.clone());
    let stack = start(opts).await;
    let health: Value = reqwest::get(format!("{}/health", stack.gateway_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for function in ["webhook-receiver", "retry-drainer"] {
        assert_eq!(health["functions"][function], "init_failed", "{health}");
        let cause = health["errors"][function].as_str().unwrap();
        assert!(cause.contains("CXBRIDGE_WEBHOOK_CONFIG"), "{cause}");
        for e in &expected {
            assert!(cause.contains(e), "{function} does not name {e:?}: {cause}");
        }
    }
    let run = stack
        .cli(&["config", "check", file.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    for e in &expected {
        assert!(
            run.stderr.contains(e),
            "config check does not name {e:?}: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains(&format!("{} problem(s)", cases.len())),
        "{}",
        run.stderr
    );

    // Right targets, a route naming an undeclared one, and an HTTPS target whose
    // credentials the secret lacks.
    let document = serde_json::json!({
        "targets": [{"name": "crm", "type": "https", "url": "https://crm.example.com/hooks", "auth": {"type": "bearer"}}],
        "routes": [{"name": "r", "targets": [{"target": "crm"}, {"target": "nowhere"}]}]
    })
    .to_string();
    std::fs::write(&file, &document).unwrap();
    let run = stack
        .cli(&["config", "check", file.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 1);
    expected =
        vec!["routes[0].targets[1] names the target \"nowhere\", which targets does not declare"];
    assert!(run.stderr.contains(expected[0]), "{}", run.stderr);

    let document = serde_json::json!({
        "targets": [{"name": "crm", "type": "https", "url": "https://crm.example.com/hooks", "auth": {"type": "bearer"}}],
        "routes": [{"name": "r", "targets": [{"target": "crm"}]}]
    })
    .to_string();
    std::fs::write(&file, &document).unwrap();
    let secret = std::env::temp_dir().join(format!("{}.json", unique("secret-")));
    std::fs::write(
        &secret,
        r#"{"targets": {"crm": {"signingSecrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}}}"#,
    )
    .unwrap();
    let run = stack
        .cli(&[
            "config",
            "check",
            file.to_str().unwrap(),
            "--secret-file",
            secret.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("target crm: its auth needs targets.crm.token in the secret"),
        "{}",
        run.stderr
    );
    let ok = stack
        .cli(&["config", "check", file.to_str().unwrap()])
        .await;
    assert!(ok.expect(0).contains(": ok"));

    let mut opts = options();
    opts.webhook_config = Some(document);
    let missing = start(opts).await;
    let health: Value = reqwest::get(format!("{}/health", missing.gateway_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cause = health["errors"]["webhook-receiver"]
        .as_str()
        .unwrap_or_default();
    assert!(
        cause.contains("target crm: the secret has no targets.crm"),
        "{health}"
    );
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&secret);
}
