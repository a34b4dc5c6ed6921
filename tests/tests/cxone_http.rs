//! Adapter tests: the CXone HTTP clients (`adapters::cxone`) against the simulator, in both
//! profiles. Run with `make test`, which starts the AWS emulator the shared-token tests use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use cxbridge::adapters::cxone::{HttpCxoneClient, TokenFetcher, http_client};
use cxbridge::adapters::dynamodb::DynamoDbRateBudget;
use cxbridge::adapters::dynamodb::DynamoDbTokenStore;
use cxbridge::cxone::api::Spawn;
use cxbridge::cxone::config::{ClientAuth, CxoneConfig, Profile, SignalBody, SpawnParams};
use cxbridge::cxone::rate::{RateBudget, Unlimited};
use cxbridge::cxone::token::{NoSharing, SharedTokenSource, TokenStore};
use cxbridge::cxone::{ContextSink, CxoneError, CxoneSignals, SignalRequest};
use cxbridge::secrets::CxoneCredentials;
use cxbridge_e2e::{sdk, unique};
use cxbridge_local::simulator::{SimCredentials, SimOptions, Simulator, default_definitions};
use serde_json::{Map, Value, json};

const PROFILES: [&str; 2] = ["documented", "incontact"];

/// What an injected fault must turn into.
type Expectation = Box<dyn Fn(&CxoneError) -> bool>;

struct Sim {
    sim: Simulator,
    config: Arc<CxoneConfig>,
    credentials: CxoneCredentials,
    http: reqwest::Client,
}

async fn simulator(profile: &str) -> Sim {
    let creds = SimCredentials {
        client_id: "client-1".into(),
        client_secret: "s3cret/with+chars=".into(),
        access_key_id: "AKIDLOCAL".into(),
        access_key_secret: "key+with/slashes=and==".into(),
    };
    let sim = Simulator::start(SimOptions {
        profile: profile.into(),
        credentials: creds.clone(),
        definitions: default_definitions(),
        gateway: None,
        callback_secret: None,
        webhook_secret: None,
    })
    .await
    .unwrap();
    let config = CxoneConfig {
        profile: if profile == "documented" {
            Profile::Documented
        } else {
            Profile::InContact
        },
        token_url: Some(format!("{}/api/v2/oauth/token", sim.url)),
        issuer: sim.url.clone(),
        api_base: (profile == "documented").then(|| sim.url.clone()),
        client_auth: ClientAuth::Basic,
        scope: None,
        api_version: "30.0".into(),
        signal_body: SignalBody::Query,
        spawn_params: SpawnParams::Json,
        tenant: unique("tenant-"),
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_millis(800),
        rate_per_second: 80,
    };
    let credentials: CxoneCredentials = serde_json::from_value(json!({
        "clientId": creds.client_id, "clientSecret": creds.client_secret,
        "accessKeyId": creds.access_key_id, "accessKeySecret": creds.access_key_secret,
    }))
    .unwrap();
    let http = http_client(&config).unwrap();
    Sim {
        sim,
        config: Arc::new(config),
        credentials,
        http,
    }
}

impl Sim {
    fn tokens<S: TokenStore>(&self, store: S) -> SharedTokenSource<S, TokenFetcher> {
        SharedTokenSource::new(
            TokenFetcher::new(
                self.http.clone(),
                self.config.clone(),
                self.credentials.clone(),
            ),
            store,
        )
    }

    fn client<R: RateBudget>(
        &self,
        budget: R,
    ) -> HttpCxoneClient<SharedTokenSource<NoSharing, TokenFetcher>, R> {
        HttpCxoneClient::new(
            self.http.clone(),
            self.config.clone(),
            self.tokens(NoSharing),
            budget,
        )
    }

    async fn fault(&self, fault: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sim/faults", self.sim.url))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    async fn config(&self, config: Value) {
        reqwest::Client::new()
            .post(format!("{}/_sim/config", self.sim.url))
            .json(&config)
            .send()
            .await
            .unwrap();
    }

    async fn journal(&self) -> Vec<Value> {
        reqwest::get(format!("{}/_sim/requests", self.sim.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn count(&self, path_suffix: &str) -> usize {
        self.journal()
            .await
            .iter()
            .filter(|e| e["path"].as_str().unwrap().ends_with(path_suffix))
            .count()
    }
}

fn order_update(contact: &str) -> SignalRequest {
    SignalRequest {
        definition_id: "order-update".into(),
        contact_id: Some(contact.into()),
        spawn: None,
        data: vec![
            ("customerId".into(), json!("C-1")),
            ("orderId".into(), json!("O-9")),
            ("updateType".into(), json!("shipped")),
            ("priority".into(), json!("high")),
            ("timestamp".into(), json!("2026-11-22T09:00:00Z")),
            ("address.city".into(), json!("Leeds & York")),
            ("address.zip".into(), json!("LS1 4AP")),
        ],
        metadata: json!({"correlationId": "corr-1", "sourceSystem": "test"}),
        idempotency_key: Some("corr-1".into()),
    }
}

fn token_path(profile: &str) -> &'static str {
    if profile == "documented" {
        "/api/v2/oauth/token"
    } else {
        "/auth/token"
    }
}

fn signal_path(profile: &str) -> &'static str {
    if profile == "documented" {
        "/api/v2/signals/order-update"
    } else {
        "/signal"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_and_context_updates_succeed_in_both_profiles() {
    for profile in PROFILES {
        let s = simulator(profile).await;
        let client = s.client(Unlimited);
        let accepted = client.signal(&order_update("contact-1")).await.unwrap();
        assert_eq!(
            accepted.signal_execution_id.is_some(),
            profile == "documented",
            "{profile}"
        );
        let attributes: Map<String, Value> =
            serde_json::from_value(json!({"intent": "billing", "score": 0.92})).unwrap();
        client
            .update_context("contact-1", &attributes)
            .await
            .unwrap();

        let journal = s.journal().await;
        for entry in &journal {
            assert_eq!(
                entry["headers"]["accept"], "application/json",
                "{profile}: {entry}"
            );
        }
        let signal = journal
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(signal_path(profile)))
            .unwrap();
        if profile == "incontact" {
            assert_eq!(
                signal["path"],
                "/inContactAPI/services/v30.0/interactions/contact-1/signal"
            );
            let query: Vec<(String, String)> =
                form_urlencoded::parse(signal["query"].as_str().unwrap().as_bytes())
                    .into_owned()
                    .collect();
            let names: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
            assert_eq!(query[5].1, "Leeds & York", "values survive encoding");
            assert_eq!(signal["body"], "");
            let context = journal
                .iter()
                .filter(|e| e["path"].as_str().unwrap().ends_with("/signal"))
                .nth(1)
                .unwrap();
            let q: Vec<(String, String)> =
                form_urlencoded::parse(context["query"].as_str().unwrap().as_bytes())
                    .into_owned()
                    .collect();
            assert_eq!(q[0], ("p1".into(), "updateContext".into()));
            assert_eq!(
                serde_json::from_str::<Value>(&q[1].1).unwrap(),
                json!({"intent": "billing", "score": 0.92})
            );
            // The platform flow: discovery, password grant, tenant configuration, once each.
            assert_eq!(s.count("/.well-known/openid-configuration").await, 1);
            assert_eq!(s.count("/.well-known/cxone-configuration").await, 1);
            let token = journal.iter().find(|e| e["path"] == "/auth/token").unwrap();
            assert!(
                token["headers"]["authorization"]
                    .as_str()
                    .unwrap()
                    .starts_with("Basic ")
            );
            assert!(
                token["body"]
                    .as_str()
                    .unwrap()
                    .contains("grant_type=password")
            );
        } else {
            let body: Value = serde_json::from_str(signal["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["data"]["address.city"], "Leeds & York");
            assert_eq!(body["metadata"]["correlationId"], "corr-1");
        }
        assert_eq!(
            s.count(token_path(profile)).await,
            1,
            "{profile}: one token for both calls"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_typed_and_marked_retryable_or_permanent() {
    for profile in PROFILES {
        let s = simulator(profile).await;
        let client = s.client(Unlimited);
        // Warm the token so faults on "signal" hit the call itself.
        client.signal(&order_update("contact-1")).await.unwrap();
        let cases: Vec<(Value, Expectation)> = vec![
            (
                json!({"match": "signal", "status": 400}),
                Box::new(|e| {
                    matches!(
                        e,
                        CxoneError::Invalid {
                            status: Some(400),
                            ..
                        }
                    )
                }),
            ),
            (
                json!({"match": "signal", "status": 401, "times": 2}),
                Box::new(|e| matches!(e, CxoneError::Unauthorized(_))),
            ),
            (
                json!({"match": "signal", "status": 403}),
                Box::new(|e| matches!(e, CxoneError::Forbidden(_))),
            ),
            (
                json!({"match": "signal", "status": 404}),
                Box::new(|e| matches!(e, CxoneError::NotFound(_))),
            ),
            (
                json!({"match": "signal", "status": 429, "retryAfter": 7}),
                Box::new(|e| {
                    *e == CxoneError::RateLimited {
                        retry_after: Some(Duration::from_secs(7)),
                        local: false,
                    }
                }),
            ),
            (
                json!({"match": "signal", "status": 429}),
                Box::new(|e| {
                    *e == CxoneError::RateLimited {
                        retry_after: None,
                        local: false,
                    }
                }),
            ),
            (
                json!({"match": "signal", "status": 500}),
                Box::new(|e| matches!(e, CxoneError::Unavailable(_))),
            ),
            (
                json!({"match": "signal", "status": 200, "delayMs": 1500}),
                Box::new(|e| matches!(e, CxoneError::Timeout(_))),
            ),
        ];
        for (fault, expected) in cases {
            s.fault(fault.clone()).await;
            let err = client.signal(&order_update("contact-1")).await.unwrap_err();
            assert!(expected(&err), "{profile} {fault}: got {err:?}");
            let retryable = matches!(
                err,
                CxoneError::RateLimited { .. }
                    | CxoneError::Unavailable(_)
                    | CxoneError::Timeout(_)
            );
            assert_eq!(err.is_retryable(), retryable, "{profile} {fault}");
        }
        // Unknown targets are 404s from the simulator itself.
        let mut unknown = order_update("unknown-contact");
        unknown.definition_id = "no-such-definition".into();
        assert!(
            matches!(
                client.signal(&unknown).await.unwrap_err(),
                CxoneError::NotFound(_)
            ),
            "{profile}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_dropped_and_the_call_retried_once() {
    for profile in PROFILES {
        let s = simulator(profile).await;
        let client = s.client(Unlimited);
        client.signal(&order_update("contact-1")).await.unwrap();
        s.fault(json!({"match": "signal", "status": 401, "times": 1}))
            .await;
        client.signal(&order_update("contact-1")).await.unwrap();
        assert_eq!(
            s.count(token_path(profile)).await,
            2,
            "{profile}: a new token after the 401"
        );
        assert_eq!(
            s.count(signal_path(profile)).await,
            3,
            "{profile}: one retry"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_server_answers_are_bad_responses() {
    // A signal CXone accepted stays accepted even when its answer is unusable.
    let s = simulator("documented").await;
    let client = s.client(Unlimited);
    client.signal(&order_update("c")).await.unwrap();
    s.fault(json!({"match": "signal", "status": 202, "body": "<html>not json</html>"}))
        .await;
    assert_eq!(
        client
            .signal(&order_update("c"))
            .await
            .unwrap()
            .signal_execution_id,
        None
    );
    s.fault(json!({"match": "signal", "status": 202, "body": "{\"other\": 1}"}))
        .await;
    assert_eq!(
        client
            .signal(&order_update("c"))
            .await
            .unwrap()
            .signal_execution_id,
        None
    );

    for profile in PROFILES {
        let s = simulator(profile).await;
        s.fault(json!({"match": "token", "status": 200, "body": "{\"access_token\": \"t\", \"token_type\": \"mac\"}"})).await;
        let err = s
            .client(Unlimited)
            .signal(&order_update("c"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CxoneError::BadResponse(m) if m.contains("not bearer")),
            "{profile}: {err}"
        );
        s.fault(json!({"match": "token", "status": 200, "body": "garbage"}))
            .await;
        assert!(matches!(
            s.client(Unlimited)
                .signal(&order_update("c"))
                .await
                .unwrap_err(),
            CxoneError::BadResponse(_)
        ));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn studio_typing_and_the_nine_parameter_limit_are_enforced() {
    let s = simulator("documented").await;
    let mut wrong = order_update("c");
    wrong.data[4].1 = json!("yesterday");
    let err = s.client(Unlimited).signal(&wrong).await.unwrap_err();
    assert!(
        matches!(&err, CxoneError::Invalid { status: Some(400), detail } if detail.contains("timestamp must be a datetime")),
        "{err}"
    );

    let s = simulator("incontact").await;
    let mut ten = order_update("c");
    ten.data
        .extend((0..3).map(|i| (format!("extra{i}"), json!(i))));
    let err = s.client(Unlimited).signal(&ten).await.unwrap_err();
    assert_eq!(
        err,
        CxoneError::Invalid {
            status: None,
            detail: "a platform signal carries at most 9 parameters (p1-p9), not 10".into()
        }
    );
    assert_eq!(s.count("/signal").await, 0, "nothing was sent");
}

async fn table() -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let name = unique("cxone-");
    cxbridge_e2e::create_table(&client, &name).await;
    (client, name)
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_callers_in_four_instances_make_one_token_request() {
    for profile in PROFILES {
        let s = simulator(profile).await;
        let (dynamodb, table) = table().await;
        let instances: Vec<Arc<_>> = (0..4)
            .map(|_| {
                let store =
                    DynamoDbTokenStore::new(dynamodb.clone(), table.clone(), &s.config.tenant);
                Arc::new(HttpCxoneClient::new(
                    s.http.clone(),
                    s.config.clone(),
                    s.tokens(store),
                    Unlimited,
                ))
            })
            .collect();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..50 {
            let client = instances[i % 4].clone();
            calls.spawn(async move { client.signal(&order_update(&format!("contact-{i}"))).await });
        }
        for result in calls.join_all().await {
            result.unwrap();
        }
        assert_eq!(
            s.count(token_path(profile)).await,
            1,
            "{profile}: exactly one token request"
        );
        assert_eq!(s.count(signal_path(profile)).await, 50);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_token_read_at_init_serves_the_first_call_unless_it_is_due() {
    let s = simulator("documented").await;
    let (dynamodb, table) = table().await;
    let store = || DynamoDbTokenStore::new(dynamodb.clone(), table.clone(), &s.config.tenant);
    // One instance fetches a token and publishes it to the table.
    let first = HttpCxoneClient::new(
        s.http.clone(),
        s.config.clone(),
        s.tokens(store()),
        Unlimited,
    );
    first.signal(&order_update("contact-1")).await.unwrap();
    assert_eq!(s.count("/api/v2/oauth/token").await, 1);

    // A new instance that read it at init calls CXone without a token request of its own.
    let shared = store().load().await.unwrap();
    assert!(shared.is_some(), "the first instance published its token");
    let tokens = s.tokens(NoSharing);
    tokens.preload(shared.clone());
    let second = HttpCxoneClient::new(s.http.clone(), s.config.clone(), tokens, Unlimited);
    second.signal(&order_update("contact-2")).await.unwrap();
    assert_eq!(s.count("/api/v2/oauth/token").await, 1);

    // One due for refresh is not taken: the instance fetches its own.
    let mut due = shared.unwrap();
    due.refresh_at_ms = 0;
    let tokens = s.tokens(NoSharing);
    tokens.preload(Some(due));
    let third = HttpCxoneClient::new(s.http.clone(), s.config.clone(), tokens, Unlimited);
    third.signal(&order_update("contact-3")).await.unwrap();
    assert_eq!(s.count("/api/v2/oauth/token").await, 2);
    assert_eq!(s.count("/api/v2/signals/order-update").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_five_second_token_is_refreshed_before_it_expires() {
    let s = simulator("documented").await;
    s.config(json!({"tokenTtl": 5})).await;
    let client = s.client(Unlimited);
    let until = std::time::Instant::now() + Duration::from_secs(8);
    let mut calls = 0;
    while std::time::Instant::now() < until {
        client.signal(&order_update("c")).await.unwrap();
        calls += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let journal = s.journal().await;
    assert!(
        journal.iter().all(|e| e["status"] != 401),
        "no call met a 401"
    );
    assert!(
        s.count("/api/v2/oauth/token").await >= 3,
        "refreshed at half-life over 8 s"
    );
    assert_eq!(s.count("/api/v2/signals/order-update").await, calls);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_budget_holds_every_second_and_every_call_arrives() {
    let s = simulator("documented").await;
    let (dynamodb, table) = table().await;
    let budget = || DynamoDbRateBudget::new(dynamodb.clone(), table.clone(), &s.config.tenant, 20);
    // Two instances share the budget, as Lambda instances would.
    let clients = [Arc::new(s.client(budget())), Arc::new(s.client(budget()))];
    let attributes: Arc<Map<String, Value>> =
        Arc::new(serde_json::from_value(json!({"n": 1})).unwrap());
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = clients[i % 2].clone();
        let attributes = attributes.clone();
        calls.spawn(async move {
            // Deferred work is retried after the wait the budget names: nothing is dropped.
            loop {
                match client.update_context(&format!("i-{i}"), &attributes).await {
                    Ok(()) => return,
                    Err(CxoneError::RateLimited {
                        retry_after,
                        local: true,
                    }) => {
                        tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(50))).await;
                    }
                    Err(other) => panic!("call {i}: {other}"),
                }
            }
        });
    }
    calls.join_all().await;
    let mut arrivals: Vec<i64> = s
        .journal()
        .await
        .iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with("/context"))
        .map(|e| e["receivedAt"].as_i64().unwrap())
        .collect();
    assert_eq!(arrivals.len(), 300, "every call arrived");
    arrivals.sort_unstable();
    let busiest = arrivals
        .iter()
        .enumerate()
        .map(|(i, start)| {
            arrivals[i..]
                .iter()
                .take_while(|t| **t < start + 1000)
                .count()
        })
        .max()
        .unwrap();
    assert!(busiest <= 20, "{busiest} calls in one second");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_budget_whose_store_fails_says_so_and_never_claims_the_budget_is_spent() {
    let s = simulator("documented").await;
    let (dynamodb, _) = table().await;
    // A table that does not exist: every read and write of the budget fails.
    let missing = format!("missing-{}", cxbridge::ids::new_uuid());
    let client = s.client(DynamoDbRateBudget::new(
        dynamodb,
        missing,
        &s.config.tenant,
        20,
    ));
    let attributes: Map<String, Value> = serde_json::from_value(json!({"n": 1})).unwrap();
    let err = client.update_context("i-1", &attributes).await.unwrap_err();
    assert!(
        matches!(&err, CxoneError::Store(detail) if detail.contains("rate budget")),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(s.count("/context").await, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stack_runs_against_the_real_platform_profile_of_the_simulator() {
    let mut opts = cxbridge_e2e::options();
    opts.profile = "incontact".into();
    let stack = cxbridge_e2e::start(opts).await;
    let health = reqwest::get(format!("{}/health", stack.gateway_url))
        .await
        .unwrap();
    let status = health.status();
    assert_eq!(status, 200, "{}", health.text().await.unwrap());
    let state = stack.state();
    assert_eq!(state["profile"], "incontact");
    assert_eq!(state["cxone"], stack.cxone_url.as_str());

    let discovery: Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        stack.cxone_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/auth/token", stack.cxone_url)
    );
    let documented = reqwest::Client::new()
        .post(format!("{}/api/v2/oauth/token", stack.cxone_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        documented.status(),
        404,
        "the documented API is not part of the platform profile"
    );

    // The simulator's webhook emission goes through the gateway to the receiver.
    let sent: Value = reqwest::Client::new()
        .post(format!("{}/_sim/webhooks", stack.cxone_url))
        .json(&json!({"channel": "chat", "count": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u64> = sent["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 202]);
    stack.relayed().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    assert_eq!(
        cxbridge_e2e::receive_all(&sqs, &stack.resources.queues["events"].url)
            .await
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_journal_faults_config_and_reset_work_as_documented() {
    let s = simulator("documented").await;
    let http = reqwest::Client::new();
    let bad = http
        .post(format!("{}/_sim/faults", s.sim.url))
        .json(&json!({"match": "everything", "status": 500}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let config: Value = http
        .post(format!("{}/_sim/config", s.sim.url))
        .json(&json!({"tokenTtl": 42, "callbackDelayMs": 10, "callbackStatus": "failed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config,
        json!({"tokenTtl": 42, "callbackDelayMs": 10, "callbackStatus": "failed",
               "signalStatus": 202, "spawnStatus": 202, "maxUrlLength": null})
    );
    let bad = http
        .post(format!("{}/_sim/config", s.sim.url))
        .json(&json!({"signalStatus": 302}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "only a 2xx can be chosen as success");
    s.fault(json!({"match": "any", "status": 503, "times": 1}))
        .await;
    let err = s
        .client(Unlimited)
        .signal(&order_update("c"))
        .await
        .unwrap_err();
    assert!(matches!(err, CxoneError::Unavailable(_)), "{err}");
    let journal = s.journal().await;
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["status"], 503);
    assert_eq!(journal[0]["method"], "POST");
    assert!(journal[0]["receivedAt"].as_i64().unwrap() > 0);
    // An unknown token is refused.
    let refused = http
        .post(format!("{}/api/v2/signals/order-update", s.sim.url))
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let reset = http
        .post(format!("{}/_sim/reset", s.sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert!(s.journal().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn context_updates_report_errors_the_same_way_in_both_profiles() {
    for profile in PROFILES {
        let s = simulator(profile).await;
        let client = s.client(Unlimited);
        let attributes: Map<String, Value> =
            serde_json::from_value(json!({"intent": "billing"})).unwrap();
        let err = client
            .update_context("unknown-interaction", &attributes)
            .await
            .unwrap_err();
        assert!(matches!(err, CxoneError::NotFound(_)), "{profile}: {err}");
        let matches = if profile == "documented" {
            "context"
        } else {
            "signal"
        };
        s.fault(json!({"match": matches, "status": 429, "retryAfter": 3}))
            .await;
        let err = client.update_context("i-1", &attributes).await.unwrap_err();
        assert_eq!(
            err,
            CxoneError::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
                local: false
            },
            "{profile}"
        );
        s.fault(json!({"match": matches, "status": 401})).await;
        client.update_context("i-1", &attributes).await.unwrap();
        assert_eq!(
            s.count(token_path(profile)).await,
            2,
            "{profile}: the refused token was replaced"
        );
    }
}

impl Sim {
    /// A client over a changed copy of this simulator's configuration.
    fn client_with(
        &self,
        change: impl FnOnce(&mut CxoneConfig),
    ) -> HttpCxoneClient<SharedTokenSource<NoSharing, TokenFetcher>, Unlimited> {
        let mut config = (*self.config).clone();
        change(&mut config);
        let config = Arc::new(config);
        let tokens = SharedTokenSource::new(
            TokenFetcher::new(self.http.clone(), config.clone(), self.credentials.clone()),
            NoSharing,
        );
        HttpCxoneClient::new(self.http.clone(), config, tokens, Unlimited)
    }

    async fn sent(&self, path_suffix: &str) -> Vec<Value> {
        self.journal()
            .await
            .into_iter()
            .filter(|e| e["path"].as_str().unwrap().ends_with(path_suffix))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_signal_too_long_for_a_url_goes_as_a_json_body_and_is_never_refused() {
    let s = simulator("incontact").await;
    let mut long = order_update("contact-1");
    long.data[0].1 = json!("x".repeat(3000));
    // Asked for the query form, the long signal still goes, in the body.
    s.client(Unlimited).signal(&long).await.unwrap();
    // The JSON body is the default form, short or long.
    let json_client = s.client_with(|c| c.signal_body = SignalBody::Json);
    json_client
        .signal(&order_update("contact-2"))
        .await
        .unwrap();

    let sent = s.sent("/signal").await;
    assert_eq!(sent.len(), 2);
    for entry in &sent {
        assert_eq!(entry["query"], "", "{entry}");
        assert_eq!(entry["headers"]["content-type"], "application/json");
    }
    let long_body: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(long_body["p1"].as_str().unwrap().len(), 3000);
    assert_eq!(long_body["p7"], "LS1 4AP");
    let short_body: Value = serde_json::from_str(sent[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(short_body["p1"], "C-1");
    assert_eq!(short_body["p6"], "Leeds & York");
    assert_eq!(
        sent[1]["path"],
        "/inContactAPI/services/v30.0/interactions/contact-2/signal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_414_to_the_query_form_is_sent_again_as_the_body() {
    // The platform's URL limit is not documented: here it is far below 2,048 characters.
    let s = simulator("incontact").await;
    s.config(json!({"maxUrlLength": 120})).await;
    let query_client = s.client(Unlimited);
    query_client
        .signal(&order_update("contact-1"))
        .await
        .unwrap();
    let spawn_client = s.client_with(|c| c.spawn_params = SpawnParams::Query);
    spawn_client.signal(&order_created()).await.unwrap();

    let answered: Vec<(u64, bool)> = s
        .journal()
        .await
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with("/inContactAPI/"))
        .map(|e| (e["status"].as_u64().unwrap(), e["query"] == ""))
        .collect();
    assert_eq!(
        answered,
        [(414, false), (202, true), (414, false), (202, true)],
        "each call: refused with its query, then accepted with the body"
    );
    let signal = s.sent("/signal").await;
    assert_eq!(signal_p(&signal[1], "p6"), "Leeds & York");
}

fn signal_p(entry: &Value, name: &str) -> String {
    cxbridge_e2e::signal_parameters(entry)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn order_created() -> SignalRequest {
    SignalRequest {
        definition_id: "order-created".into(),
        contact_id: None,
        spawn: Some(Spawn {
            script_id: "4100101".into(),
            skill_id: "4200202".into(),
        }),
        data: vec![
            ("correlationId".into(), json!("corr-7")),
            ("customerId".into(), json!("C-1")),
            ("orderId".into(), json!("O 9&1")),
            ("priority".into(), json!("high")),
        ],
        metadata: json!({"correlationId": "corr-7"}),
        idempotency_key: Some("corr-7".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spawned_script_gets_its_skill_and_pipe_delimited_parameters_in_either_form() {
    let s = simulator("incontact").await;
    s.client(Unlimited).signal(&order_created()).await.unwrap();
    let query_client = s.client_with(|c| c.spawn_params = SpawnParams::Query);
    query_client.signal(&order_created()).await.unwrap();

    let sent = s.sent("/start").await;
    assert_eq!(sent.len(), 2);
    for entry in &sent {
        assert_eq!(
            entry["path"],
            "/inContactAPI/services/v30.0/scripts/4100101/start"
        );
        assert_eq!(entry["status"], 202);
    }
    let body: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"scriptId": "4100101", "skillId": "4200202", "parameters": "corr-7|C-1|O 9&1|high"})
    );
    assert_eq!(sent[0]["query"], "");
    let query = cxbridge_e2e::form_fields(sent[1]["query"].as_str().unwrap());
    assert_eq!(query["skillId"], "4200202");
    assert_eq!(query["parameters"], "corr-7|C-1|O 9&1|high");
    assert_eq!(sent[1]["body"], "");

    // A value holding the separator would shift every later parameter: never sent.
    let mut split = order_created();
    split.data[2].1 = json!("O|9");
    let err = s.client(Unlimited).signal(&split).await.unwrap_err();
    assert!(
        matches!(&err, CxoneError::Invalid { status: None, .. }),
        "{err}"
    );
    assert_eq!(s.sent("/start").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_2xx_the_platform_may_answer_counts_as_accepted() {
    let s = simulator("incontact").await;
    let client = s.client(Unlimited);
    for status in [200, 202, 204] {
        s.config(json!({"signalStatus": status, "spawnStatus": status}))
            .await;
        client.signal(&order_update("contact-1")).await.unwrap();
        client.signal(&order_created()).await.unwrap();
    }
    let answered: Vec<u64> = s
        .journal()
        .await
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with("/inContactAPI/"))
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(answered, [200, 200, 202, 202, 204, 204]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_token_request_authenticates_the_client_by_basic_or_in_the_form() {
    for auth in [ClientAuth::Basic, ClientAuth::Post] {
        let s = simulator("incontact").await;
        s.client_with(|c| c.client_auth = auth)
            .signal(&order_update("contact-1"))
            .await
            .unwrap();
        let token = s.sent("/auth/token").await;
        assert_eq!(token.len(), 1);
        let form = cxbridge_e2e::form_fields(token[0]["body"].as_str().unwrap());
        assert_eq!(form["grant_type"], "password");
        assert_eq!(form["username"], "AKIDLOCAL");
        assert_eq!(form["password"], "key+with/slashes=and==");
        match auth {
            ClientAuth::Basic => {
                assert!(!form.contains_key("client_id") && !form.contains_key("client_secret"));
                // RFC 6749 §2.3.1: each part form-urlencoded, then base64.
                let header = token[0]["headers"]["authorization"].as_str().unwrap();
                let decoded = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    header.strip_prefix("Basic ").unwrap(),
                )
                .unwrap();
                assert_eq!(
                    String::from_utf8(decoded).unwrap(),
                    "client-1:s3cret%2Fwith%2Bchars%3D"
                );
            }
            ClientAuth::Post => {
                assert_eq!(token[0]["headers"].get("authorization"), None);
                assert_eq!(form["client_id"], "client-1");
                assert_eq!(form["client_secret"], "s3cret/with+chars=");
            }
        }
        // The tenant for the API base came from the tenantId claim, not the tenant name.
        let configuration = s.sent("/.well-known/cxone-configuration").await;
        assert_eq!(configuration.len(), 1);
        assert_eq!(
            configuration[0]["query"],
            "tenantId=11ee0000-0000-4000-8000-00000000c0de"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_serves_the_platform_documents_as_the_platform_does() {
    let s = simulator("incontact").await;
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", s.sim.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let configuration: Value = reqwest::get(format!(
        "{}/.well-known/cxone-configuration?tenantId=11ee0000-0000-4000-8000-00000000c0de",
        s.sim.url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    for field in [
        "private",
        "area",
        "cluster",
        "domain",
        "acdDomain",
        "uhDomain",
        "api_endpoint",
        "ui_endpoint",
        "auth_endpoint",
        "tenantId",
    ] {
        assert!(
            configuration.get(field).is_some(),
            "{field}: {configuration}"
        );
    }
    // Tokens carry the tenant's id and, separately, its name.
    let token: Value = reqwest::Client::new()
        .post(format!("{}/auth/token", s.sim.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("grant_type", "password"),
                    ("username", "AKIDLOCAL"),
                    ("password", "key+with/slashes=and=="),
                    ("client_id", "client-1"),
                    ("client_secret", "s3cret/with+chars="),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for jwt in [&token["access_token"], &token["id_token"]] {
        let claims = jwt.as_str().unwrap().split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["tenantId"], "11ee0000-0000-4000-8000-00000000c0de");
        assert_eq!(claims["tenant"], "perm_cxbridge_local");
    }
    // A contact marked as ended no longer takes signals.
    let client = s.client(Unlimited);
    client.signal(&order_update("contact-5")).await.unwrap();
    let ended = reqwest::Client::new()
        .post(format!("{}/_sim/contacts/contact-5/end", s.sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    let err = client.signal(&order_update("contact-5")).await.unwrap_err();
    assert!(matches!(err, CxoneError::NotFound(_)), "{err}");
    assert!(!err.is_retryable());
}
