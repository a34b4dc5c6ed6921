use cxbridge_e2e::{TestStack, options, start};
use reqwest::StatusCode;

async fn slow_echo(client: &reqwest::Client, url: String) -> u32 {
    let response = client
        .post(url)
        .header("x-cxbridge-probe", "echo")
        // Holds the instance busy, so that the other request finds no idle instance.
        .header("x-cxbridge-probe-delay-ms", "1500")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["x-probe-pid"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_requests_at_once_are_served_by_two_instances() {
    let stack = start(options()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/webhooks/cxone", stack.gateway_url);
    let (first, second) = tokio::join!(slow_echo(&client, url.clone()), slow_echo(&client, url));
    assert_ne!(
        first, second,
        "both requests were served by process {first}"
    );
    assert_eq!(
        stack.hosts["webhook-receiver"].instances(),
        2,
        "{}",
        stack.log.lines().join("\n")
    );

    // Once both are idle again, a request reuses a warm instance instead of starting one.
    let third = slow_echo(&client, format!("{}/webhooks/cxone", stack.gateway_url)).await;
    assert!(third == first || third == second);
    assert_eq!(
        stack.hosts["webhook-receiver"].instances(),
        2,
        "{}",
        stack.log.lines().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_never_exceed_the_limit() {
    let mut opts = options();
    opts.max_instances = 2;
    let stack = start(opts).await;
    let client = reqwest::Client::new();
    let url = format!("{}/callbacks/studio", stack.gateway_url);
    let (a, b, c) = tokio::join!(
        slow_echo(&client, url.clone()),
        slow_echo(&client, url.clone()),
        slow_echo(&client, url)
    );
    let mut pids = vec![a, b, c];
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 2, "three requests, a limit of two instances");
    assert_eq!(stack.hosts["callback-verifier"].instances(), 2);
}

/// A signed chat webhook through the gateway; the status it got.
async fn send_webhook(stack: &TestStack, run: &str, n: usize) -> StatusCode {
    let sample = cxbridge_local::samples::webhook("chat", run, n).unwrap();
    cxbridge_e2e::WebhookRequest::signed(
        &stack.resources.secrets.webhook,
        sample.content_type,
        &sample.body,
        &format!("{run}-{n}"),
        &sample.event_type,
    )
    .send(&reqwest::Client::new(), &stack.gateway_url)
    .await
    .0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recycled_function_starts_a_new_process_on_its_next_request() {
    let stack = start(options()).await;
    let host = stack.hosts["webhook-receiver"].clone();
    let run = cxbridge_e2e::unique("rc");
    assert_eq!(send_webhook(&stack, &run, 1).await, StatusCode::ACCEPTED);
    let before = host.pids();
    assert_eq!(before.len(), 1, "one instance serves one request at a time");
    let inits = host.init_durations().len();

    assert!(host.recycle(std::time::Duration::from_secs(10)).await);
    assert!(host.pids().is_empty());
    assert!(
        !std::path::Path::new(&format!("/proc/{}", before[0])).exists() || {
            // A zombie is gone as far as the function is concerned.
            std::fs::read_to_string(format!("/proc/{}/stat", before[0]))
                .map(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
        }
    );

    assert_eq!(send_webhook(&stack, &run, 2).await, StatusCode::ACCEPTED);
    let after = host.pids();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the request was served by a new process");
    assert_eq!(
        host.init_durations().len(),
        inits + 1,
        "the new process's init was recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_counts_each_functions_aws_calls_by_operation() {
    let mut opts = options();
    let app = cxbridge_e2e::unique("app");
    opts.env_overrides.push(cxbridge_local::EnvOverride {
        function: "webhook-receiver".into(),
        key: "AWS_SDK_UA_APP_ID".into(),
        value: app.clone(),
    });
    let stack = start(opts).await;
    let calls = || cxbridge_e2e::aws_calls(&stack.aws_endpoint, &app);
    let at_init = calls().await;
    let run = cxbridge_e2e::unique("calls");
    let sample = cxbridge_local::samples::webhook("chat", &run, 1).unwrap();
    let request = cxbridge_e2e::WebhookRequest::signed(
        &stack.resources.secrets.webhook,
        sample.content_type,
        &sample.body,
        &format!("{run}-1"),
        &sample.event_type,
    );
    let send = || async {
        request
            .send(&reqwest::Client::new(), &stack.gateway_url)
            .await
            .0
    };
    assert_eq!(send().await, StatusCode::ACCEPTED);
    let accepted = calls().await;
    let made = |before: &std::collections::BTreeMap<String, i64>,
                after: &std::collections::BTreeMap<String, i64>| {
        after
            .iter()
            .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect::<Vec<_>>()
    };
    // One call accepts it: the replay entry and the delivery record with its outbox, in
    // one transaction. The queues are event-relay's work.
    assert_eq!(
        made(&at_init, &accepted),
        vec![("DynamoDB_20120810.TransactWriteItems".to_owned(), 1)]
    );
    // CXone's redelivery is the same one call, cancelled.
    assert_eq!(send().await, StatusCode::OK);
    let duplicate = calls().await;
    assert_eq!(
        made(&accepted, &duplicate),
        vec![("DynamoDB_20120810.TransactWriteItems".to_owned(), 1)]
    );
}
