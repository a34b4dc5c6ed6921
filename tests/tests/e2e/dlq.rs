//! `cxbridge dlq` on a queue whose read outlasts the time it hides messages: every message
//! listed once, found by `show`, and moved once by `redrive`. The emulator's receive slows
//! with the queue's length (about a second per receive at 1,000 messages), so the read is
//! made to outlast a 2 s hold instead of a real queue's 15 minutes; what is exercised,
//! messages seen again during a read, is the same.

use std::collections::HashSet;

use cxbridge_e2e::{bin_dir, queue_depth, receive_all, sdk, unique};

/// How many messages the queue holds: `CXBRIDGE_DLQ_TEST_SIZE`, 300 unless told.
fn size() -> usize {
    std::env::var("CXBRIDGE_DLQ_TEST_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// How long a read hides what it has seen: far shorter than the read.
const HOLD: &str = "2";

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(bin_dir().join("cxbridge"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn job(n: usize) -> String {
    serde_json::json!({
        "version": 1, "id": format!("job-{n}"), "kind": "signal", "correlationId": format!("c-{n}"),
        "attempt": 8, "firstAttemptAt": "2026-12-01T00:00:00Z", "payload": {"signal": "order-update"},
        "lastError": "gave up after 8 attempts"
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_that_outlasts_its_hold_lists_shows_and_redrives_each_message_once() {
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let create = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let dlq = create(unique("dlq-")).await;
    let target = create(unique("back-")).await;
    let total = size();
    let mut sends = tokio::task::JoinSet::new();
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let (sqs, dlq, chunk) = (sqs.clone(), dlq.clone(), chunk.to_vec());
        sends.spawn(async move {
            for batch in chunk.chunks(10) {
                let entries = batch
                    .iter()
                    .map(|n| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(n.to_string())
                            .message_body(job(*n))
                            .build()
                            .unwrap()
                    })
                    .collect();
                let out = sqs
                    .send_message_batch()
                    .queue_url(&dlq)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .unwrap();
                assert!(out.failed.is_empty());
            }
        });
    }
    sends.join_all().await;
    assert_eq!(queue_depth(&sqs, &dlq).await, total as i64);

    let (ok, table, err) = cli(&["dlq", "list", "--dlq", &dlq, "--hold-secs", HOLD]);
    assert!(ok, "{err}");
    let ids: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| l.contains("c-"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        total,
        "every message listed; the read said:\n{err}"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), total, "each once");
    assert!(table.contains(&format!("{total} message(s)")), "{table}");

    let (ok, shown, err) = cli(&[
        "dlq",
        "show",
        "--dlq",
        &dlq,
        "--hold-secs",
        HOLD,
        ids[total / 2],
    ]);
    assert!(ok, "{err}");
    assert!(shown.contains(ids[total / 2]), "{shown}");

    let (ok, out, err) = cli(&["dlq", "redrive", "--dlq", &dlq, "--to", &target]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{total} message(s) redriven")),
        "{out}\n{err}"
    );
    assert_eq!(queue_depth(&sqs, &dlq).await, 0);
    let back = receive_all(&sqs, &target).await;
    let correlations: HashSet<String> = back
        .iter()
        .map(|m| {
            let job: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(job["attempt"], 0);
            assert_eq!(job["redriven"], true);
            job["correlationId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(back.len(), total, "each message moved once");
    assert_eq!(correlations.len(), total);
}
