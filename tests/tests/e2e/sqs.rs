use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use cxbridge_e2e::{eventually, options, sdk, start};

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (i64, i64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let get = |name: QueueAttributeName| attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partial_batch_failure_returns_only_the_failed_message() {
    let mut opts = options();
    opts.queue_overrides.visibility_timeout = Some(1);
    opts.queue_overrides.max_receive_count = Some(3);
    let stack = start(opts).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let jobs = stack.resources.queues["jobs"].url.clone();
    let dlq = stack.resources.queues["dlq"].url.clone();

    let bodies = [
        ("ok-1", r#"{"probe":"ok","n":1}"#),
        ("fail", r#"{"probe":"fail","n":2}"#),
        ("ok-2", r#"{"probe":"ok","n":3}"#),
    ];
    let sent = sqs
        .send_message_batch()
        .queue_url(&jobs)
        .set_entries(Some(
            bodies
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(*id)
                        .message_body(*body)
                        .build()
                        .unwrap()
                })
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    let ids: HashMap<String, String> = sent
        .successful
        .iter()
        .map(|s| (s.id.clone(), s.message_id.clone()))
        .collect();
    assert_eq!(ids.len(), 3);

    // The failed message keeps coming back until its receive count is spent, then the
    // queue's redrive policy moves it to the DLQ. The successes were deleted.
    let dead = eventually(
        "the failed message to reach the DLQ",
        Duration::from_secs(60),
        || async {
            let out = sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            (!messages.is_empty()).then_some(messages)
        },
    )
    .await;
    assert_eq!(dead.len(), 1, "only the failure is dead-lettered");
    assert_eq!(dead[0].body(), Some(bodies[1].1));
    assert_eq!(dead[0].message_id(), Some(ids["fail"].as_str()));

    assert_eq!(
        depth(&sqs, &jobs).await,
        (0, 0),
        "nothing is left on the jobs queue"
    );

    // What the drainer saw: the failure on every delivery, the successes never as failures.
    let logs = stack.log.lines();
    let failed_deliveries = logs
        .iter()
        .filter(|l| {
            l.starts_with("retry-drainer#")
                && l.contains(&ids["fail"])
                && l.contains("will be retried")
        })
        .count();
    assert_eq!(
        failed_deliveries,
        3,
        "maxReceiveCount deliveries of the failure:\n{}",
        logs.join("\n")
    );
    for ok in ["ok-1", "ok-2"] {
        let deliveries = logs
            .iter()
            .filter(|l| {
                l.starts_with("retry-drainer#")
                    && l.contains("\"succeeded\"")
                    && l.contains(&ids[ok])
            })
            .count();
        assert_eq!(
            deliveries,
            1,
            "{ok} is processed once and deleted:\n{}",
            logs.join("\n")
        );
        assert!(
            !logs
                .iter()
                .any(|l| l.contains(&ids[ok]) && l.contains("will be retried")),
            "{ok} was reported as failed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_the_drainer_cannot_run_yet_is_kept_in_the_dlq_not_dropped() {
    let mut opts = options();
    opts.queue_overrides.visibility_timeout = Some(1);
    opts.queue_overrides.max_receive_count = Some(2);
    let stack = start(opts).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let body = r#"{"id":"j-1","kind":"signal","correlationId":"c-1","attempt":1,"payload":{}}"#;
    sqs.send_message()
        .queue_url(&stack.resources.queues["jobs"].url)
        .message_body(body)
        .send()
        .await
        .unwrap();
    let dlq = stack.resources.queues["dlq"].url.clone();
    let dead = eventually(
        "the job to reach the DLQ",
        Duration::from_secs(60),
        || async {
            let out = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
            out.messages.unwrap_or_default().into_iter().next()
        },
    )
    .await;
    assert_eq!(dead.body(), Some(body));
}
