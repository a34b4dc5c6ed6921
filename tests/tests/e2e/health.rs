use cxbridge::secrets::parse_secrets;
use cxbridge_e2e::{options, sdk, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_every_function_ready_and_the_resources_exist() {
    let stack = start(options()).await;
    let response = reqwest::get(format!("{}/health", stack.gateway_url))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"functions": {
            "callback-verifier": "ready",
            "event-relay": "ready",
            "intent-router": "ready",
            "retry-drainer": "ready",
            "signal-dispatcher": "ready",
            "webhook-receiver": "ready",
        }})
    );

    let sdk = sdk().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = dynamodb
        .describe_table()
        .table_name(&stack.resources.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let key = &table.key_schema()[0];
    assert_eq!(key.attribute_name(), "pk");
    let stream = table
        .stream_specification()
        .expect("the table has a stream");
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        Some("NEW_IMAGE"),
        "event-relay reads new images"
    );
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&stack.resources.table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some("expiresAt"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let jobs = sqs
        .get_queue_attributes()
        .queue_url(&stack.resources.queues["jobs"].url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let redrive: Value =
        serde_json::from_str(&jobs[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy])
            .unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"],
        stack.resources.queues["dlq"].arn.as_str()
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "10"
    );
    for name in ["dlq", "events"] {
        sqs.get_queue_url()
            .queue_name(&stack.resources.queues[name].name)
            .send()
            .await
            .unwrap();
    }

    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .get_secret_value()
        .secret_id(&stack.resources.secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let document: Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    assert_eq!(
        document["webhookSecrets"],
        json!([
            stack.resources.secrets.webhook,
            stack.resources.secrets.webhook_previous
        ])
    );
    assert_eq!(
        document["callbackSecrets"],
        json!([stack.resources.secrets.callback])
    );
    assert_eq!(
        document["cognigyTokens"],
        json!([stack.resources.secrets.cognigy])
    );
    assert_eq!(
        document["apiKeys"],
        json!([stack.resources.secrets.api_key])
    );
    for field in ["clientId", "clientSecret", "accessKeyId", "accessKeySecret"] {
        assert!(
            document["cxone"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "cxone.{field}"
        );
    }
    let parsed = parse_secrets("local", secret.secret_string().unwrap()).unwrap();
    assert_eq!(parsed.webhook_secrets.len(), 2);

    let state = stack.state();
    assert_eq!(state["gateway"], stack.gateway_url.as_str());
    assert_eq!(
        state["queues"]["jobs"],
        stack.resources.queues["jobs"].url.as_str()
    );
    assert_eq!(
        state["secrets"]["webhookPrevious"],
        stack.resources.secrets.webhook_previous.as_str()
    );
    assert_eq!(state["profile"], "documented");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_whose_init_fails_is_reported_with_its_cause() {
    let mut opts = options();
    opts.env_overrides.push(cxbridge_e2e::setting(
        "intent-router:CXBRIDGE_SECRET_CACHE_TTL_SECS=soon",
    ));
    let stack = start(opts).await;

    let response = reqwest::get(format!("{}/health", stack.gateway_url))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["functions"]["intent-router"], "init_failed");
    assert_eq!(body["functions"]["webhook-receiver"], "ready");
    let cause = body["errors"]["intent-router"].as_str().unwrap();
    assert!(
        cause.contains("CXBRIDGE_SECRET_CACHE_TTL_SECS")
            && cause.contains("expected a whole number of seconds"),
        "{cause}"
    );
    assert!(body["errors"].get("webhook-receiver").is_none());

    let logs = stack.log.lines().join("\n");
    assert!(
        logs.contains("intent-router#1 failed to initialise")
            && logs.contains("CXBRIDGE_SECRET_CACHE_TTL_SECS is invalid"),
        "{logs}"
    );

    // Its route fails as API Gateway fails an integration that cannot start; the others work.
    let client = reqwest::Client::new();
    let failed = client
        .post(format!("{}/cognigy/intents", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.json::<Value>().await.unwrap(),
        json!({"message": "Internal Server Error"})
    );
    let other = client
        .post(format!("{}/callbacks/studio", stack.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::UNAUTHORIZED,
        "callback-verifier answers for itself"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_fails_init_with_the_secret_named() {
    let mut opts = options();
    opts.env_overrides
        .push(cxbridge_e2e::setting("*:CXBRIDGE_SECRET_ID=does-not-exist"));
    let stack = start(opts).await;
    let body: Value = reqwest::get(format!("{}/health", stack.gateway_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for name in ["webhook-receiver", "retry-drainer"] {
        assert_eq!(body["functions"][name], "init_failed");
        let cause = body["errors"][name].as_str().unwrap();
        assert!(
            cause.contains("secret does-not-exist does not exist"),
            "{cause}"
        );
    }
}
