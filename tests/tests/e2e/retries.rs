//! Retries, backoff, the DLQ and redrive, end to end with simulator faults.

use std::time::Duration;

use cxbridge_e2e::{
    TestStack, bin_dir, eventually, options, queue_depth, receive_all, sdk, start, unique,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn order(customer: &str) -> Value {
    json!({
        "data": {"customerId": customer, "orderId": "O-1", "updateType": "shipped", "priority": "low",
                 "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Hull", "zip": "HU1"}},
        "metadata": {"contactId": "contact-1"}
    })
}

async fn post_signal(stack: &TestStack, key: &str, body: &Value) -> (StatusCode, Value) {
    stack.post_signal("order-update", key, body).await
}

async fn wait_status(stack: &TestStack, key: &str, wanted: &[&str]) -> Value {
    eventually(
        &format!("{key} to reach {wanted:?}"),
        Duration::from_secs(60),
        || async {
            let record = stack.execution(key).await.1;
            wanted
                .contains(&record["status"].as_str().unwrap_or_default())
                .then_some(record)
        },
    )
    .await
}

/// The signal requests CXone received: (correlation id, status, receivedAt).
async fn signals(stack: &TestStack) -> Vec<(String, u64, i64)> {
    stack
        .requests(|path| path == "/api/v2/signals/order-update")
        .await
        .iter()
        .filter(|e| e["method"] == "POST")
        .map(|e| {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap_or_default();
            (
                body["metadata"]["correlationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["status"].as_u64().unwrap(),
                e["receivedAt"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_503s_then_success_is_delivered_on_the_third_attempt() {
    let stack = start(cxbridge_e2e::quick_redelivery(options())).await;
    stack
        .fault(json!({"match": "signal", "status": 503, "times": 2}))
        .await;
    let key = unique("r1-");
    let (status, body) = post_signal(&stack, &key, &order("C-1")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    let record = wait_status(&stack, &key, &["dispatched", "completed"]).await;
    assert_eq!(record["attempts"], 3);
    let seen: Vec<u64> = signals(&stack).await.iter().map(|s| s.1).collect();
    assert_eq!(seen, [503, 503, 202]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_waited_out() {
    let stack = start(cxbridge_e2e::quick_redelivery(options())).await;
    stack
        .fault(json!({"match": "signal", "status": 429, "retryAfter": 2, "times": 1}))
        .await;
    let key = unique("r2-");
    assert_eq!(
        post_signal(&stack, &key, &order("C-1")).await.0,
        StatusCode::ACCEPTED
    );
    wait_status(&stack, &key, &["dispatched", "completed"]).await;
    let seen = signals(&stack).await;
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [429, 202]);
    assert!(
        seen[1].2 - seen[0].2 >= 2000,
        "the retry came {} ms later",
        seen[1].2 - seen[0].2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_400_fails_the_job_after_one_attempt_and_it_is_not_retried() {
    let routes = json!({"routes": [{"name": "to-studio", "targets": [{"signal": "order-update", "mapping": {
        "customerId": "customer.identifier", "orderId": "interactionId", "updateType": "eventType",
        "priority": "context.queue", "timestamp": "occurredAt", "address.city": "context.skill", "address.zip": "channel"}}]}]});
    let opts =
        cxbridge_e2e::with_webhook_config(cxbridge_e2e::quick_redelivery(options()), &routes);
    let stack = start(opts).await;
    stack
        .fault(json!({"match": "signal", "status": 400, "body": "{\"error\":\"bad skill\"}"}))
        .await;
    let (_, delivery, request) = stack.sample_webhook("voice");
    assert_eq!(
        request
            .send(&reqwest::Client::new(), &stack.gateway_url)
            .await
            .0,
        StatusCode::ACCEPTED
    );
    let key = format!("{delivery}:order-update");
    let record = wait_status(&stack, &key, &["failed"]).await;
    assert!(
        record["lastError"].as_str().unwrap().contains("bad skill"),
        "{record}"
    );
    assert_eq!(record["attempts"], 1, "{record}");

    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let dead = eventually("the job in the DLQ", Duration::from_secs(20), || async {
        let m = receive_all(&sqs, &stack.resources.queues["dlq"].url).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(dead.len(), 1);
    let reason = dead[0].message_attributes().unwrap()["deadLetterReason"]
        .string_value()
        .unwrap()
        .to_owned();
    assert!(reason.contains("400"), "{reason}");
    assert_eq!(
        dead[0].message_attributes().unwrap()["attempts"].string_value(),
        Some("1")
    );
    assert_eq!(signals(&stack).await.len(), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_persistent_500_dead_letters_after_four_attempts_and_redrive_delivers_it() {
    let stack = start(cxbridge_e2e::quick_redelivery(options())).await;
    stack
        .fault(json!({"match": "signal", "status": 500, "times": 4}))
        .await;
    let key = unique("r4-");
    assert_eq!(
        post_signal(&stack, &key, &order("C-1")).await.1["status"],
        "queued"
    );
    let record = wait_status(&stack, &key, &["dead_lettered"]).await;
    assert_eq!(record["attempts"], 4);
    assert!(
        record["lastError"]
            .as_str()
            .unwrap()
            .contains("gave up after 4 attempts"),
        "{record}"
    );
    assert_eq!(signals(&stack).await.len(), 4);

    let dlq = stack.resources.queues["dlq"].url.clone();
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(bin_dir().join("cxbridge"));
        command.args(args);
        command.output().unwrap()
    };
    let listed = cli(&["dlq", "list", "--dlq", &dlq]);
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.status.success(), "{table}");
    assert!(
        table.contains(&key)
            && table.contains("gave up after 4 attempts")
            && table.contains("1 message(s)"),
        "{table}"
    );
    let dry = cli(&["dlq", "redrive", "--dlq", &dlq, "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("1 message(s) would be redriven"),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(
        stack.execution(&key).await.1["status"],
        "dead_lettered",
        "a dry run changes nothing"
    );

    let redriven = cli(&[
        "dlq",
        "redrive",
        "--dlq",
        &dlq,
        "--to",
        &stack.resources.queues["jobs"].url,
    ]);
    assert!(
        String::from_utf8_lossy(&redriven.stdout).contains("1 message(s) redriven"),
        "{}",
        String::from_utf8_lossy(&redriven.stderr)
    );
    let record = wait_status(&stack, &key, &["completed"]).await;
    assert_eq!(record["attempts"], 5);
    let seen: Vec<u64> = signals(&stack).await.iter().map(|s| s.1).collect();
    assert_eq!(seen, [500, 500, 500, 500, 202]);
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    assert_eq!(queue_depth(&sqs, &dlq).await, 0);
}

/// Processes of this stack's drainer, found by the queue URL in their environment.
fn drainer_pids(jobs_url: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let is_drainer = String::from_utf8_lossy(&cmdline).contains("retry-drainer");
        if is_drainer && String::from_utf8_lossy(&environ).contains(jobs_url) {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_drainer_mid_batch_loses_nothing_and_delivers_nothing_twice() {
    let mut opts = cxbridge_e2e::quick_redelivery(options());
    opts.env_overrides
        .push("retry-drainer:CXBRIDGE_JOB_LEASE_SECS=3".parse().unwrap());
    // Reconcile jobs come due quickly, so that the queues can be seen to drain.
    opts.env_overrides
        .push("*:CXBRIDGE_EXECUTION_DEADLINE_SECS=2".parse().unwrap());
    let stack = start(opts).await;
    // The request's own attempt fails, so the work becomes a job; the drainer's attempt
    // then hangs in CXone long enough to be killed.
    stack
        .fault(json!({"match": "signal", "status": 503, "times": 1}))
        .await;
    let key = unique("r5-");
    assert_eq!(
        post_signal(&stack, &key, &order("C-1")).await.1["status"],
        "queued"
    );
    stack
        .fault(json!({"match": "signal", "status": 200, "delayMs": 5000, "times": 1}))
        .await;

    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let jobs = stack.resources.queues["jobs"].url.clone();
    eventually(
        "the job to be in flight",
        Duration::from_secs(20),
        || async {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&jobs)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                .send()
                .await
                .unwrap();
            let in_flight: i64 = attrs
                .attributes
                .unwrap_or_default()
                .values()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            (in_flight > 0 && stack.execution(&key).await.1["attempts"] == 1).then_some(())
        },
    )
    .await;
    // The drainer has reached CXone once the simulator has taken the delaying fault.
    eventually(
        "the drainer's call to hang in CXone",
        Duration::from_secs(20),
        || async {
            let armed: Vec<Value> = reqwest::get(format!("{}/_sim/faults", stack.cxone_url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            armed.is_empty().then_some(())
        },
    )
    .await;
    let pids = drainer_pids(&jobs);
    assert!(!pids.is_empty());
    for pid in &pids {
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    }

    let record = wait_status(&stack, &key, &["dispatched", "completed"]).await;
    assert!(record["attempts"].as_u64().unwrap() >= 2);
    let delivered: Vec<(String, u64, i64)> = signals(&stack)
        .await
        .into_iter()
        .filter(|s| s.1 == 202)
        .collect();
    assert_eq!(delivered.len(), 1, "delivered once: {delivered:?}");
    eventually("the queues to drain", Duration::from_secs(30), || async {
        (queue_depth(&sqs, &jobs).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_jobs_under_random_503s_are_each_delivered_exactly_once() {
    let mut opts = cxbridge_e2e::quick_redelivery(options());
    opts.env_overrides
        .push("*:CXBRIDGE_JOB_MAX_ATTEMPTS=12".parse().unwrap());
    opts.env_overrides
        .push("*:CXBRIDGE_EXECUTION_DEADLINE_SECS=2".parse().unwrap());
    let stack = std::sync::Arc::new(start(opts).await);
    stack
        .fault(json!({"match": "signal", "status": 503, "times": 100000, "probability": 0.3}))
        .await;
    let keys: Vec<String> = (0..200).map(|i| unique(&format!("bulk{i}-"))).collect();
    for chunk in keys.chunks(20) {
        let mut posts = tokio::task::JoinSet::new();
        for key in chunk {
            let (stack, key) = (stack.clone(), key.clone());
            posts.spawn(async move { post_signal(&stack, &key, &order("C-bulk")).await });
        }
        for (status, body) in posts.join_all().await {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    }
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    eventually(
        "every job to be delivered",
        Duration::from_secs(120),
        || async {
            let delivered = signals(&stack).await.iter().filter(|s| s.1 == 202).count();
            (delivered >= 200).then_some(())
        },
    )
    .await;
    let delivered: Vec<String> = signals(&stack)
        .await
        .into_iter()
        .filter(|s| s.1 == 202)
        .map(|s| s.0)
        .collect();
    let mut unique_keys = delivered.clone();
    unique_keys.sort();
    unique_keys.dedup();
    assert_eq!(delivered.len(), 200, "no duplicates");
    assert_eq!(unique_keys.len(), 200);
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(unique_keys, expected);
    eventually(
        "the queues to end empty",
        Duration::from_secs(30),
        || async {
            let jobs = queue_depth(&sqs, &stack.resources.queues["jobs"].url).await;
            let dlq = queue_depth(&sqs, &stack.resources.queues["dlq"].url).await;
            (jobs == 0 && dlq == 0).then_some(())
        },
    )
    .await;
}
