use cxbridge_e2e::{options, start};
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
