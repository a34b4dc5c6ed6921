//! Micro benchmarks: webhook signature verification next to the `standardwebhooks` and
//! `svix` crates and raw HMAC-SHA256 (the floor) on the same bytes, the whole webhook
//! request path without I/O, and signal payload validation with flattening.
//!
//! `cxbridge-bench` reads the results from `target/criterion/*/new/estimates.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cxbridge::cxone::Profile;
use cxbridge::signals::definitions::{DEFAULT_SIGNALS, parse};
use cxbridge::signals::validate::validate;
use cxbridge::webhook::config::WebhookConfig;
use cxbridge::webhook::signature::{self, Signed};
use cxbridge::webhook::{Inbound, process};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use sha2::Sha256;

const SECRET: &str = "4f6c6f63616c2d62656e63682d7365637265742d76616c75652d303132333435";

/// A chat interaction event padded to `size` bytes with message text.
fn chat_event(size: usize) -> Vec<u8> {
    let head = r#"{"webhookId":"wh-1","eventType":"interaction.message","timestamp":"2026-11-22T09:00:00Z","data":{"id":"chat-1","channelType":"chat","direction":"inbound","customer":{"email":"customer@example.com"},"queue":{"name":"VIP Chat"},"skill":{"name":"Sales"},"message":{"body":""#;
    let tail = r#""}}}"#;
    let filler = size.saturating_sub(head.len() + tail.len());
    let mut body = String::with_capacity(size);
    body.push_str(head);
    body.extend(std::iter::repeat_n('x', filler));
    body.push_str(tail);
    body.into_bytes()
}

fn verify(c: &mut Criterion) {
    let now = cxbridge::clock::now_secs();
    let secrets = [SecretString::from(SECRET)];
    let peer = standardwebhooks::Webhook::from_bytes(SECRET.as_bytes().to_vec()).unwrap();
    let svix = svix::webhooks::Webhook::from_bytes(SECRET.as_bytes().to_vec()).unwrap();
    let mut group = c.benchmark_group("verify");
    for size in [1024, 16 * 1024] {
        let body = chat_event(size);
        group.throughput(Throughput::Bytes(size as u64));

        let sig = signature::sign(SECRET.as_bytes(), now, &body);
        let ts = now.to_string();
        group.bench_with_input(BenchmarkId::new("cxbridge", size), &body, |b, body| {
            b.iter(|| {
                let signed = Signed {
                    headers: signature::WEBHOOK_HEADERS,
                    signature: Some(&sig),
                    timestamp: Some(&ts),
                    body,
                };
                black_box(signature::verify(black_box(&signed), &secrets, now, 300).unwrap())
            })
        });

        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert(
            "webhook-signature",
            peer.sign("msg_1", now, &body).unwrap().parse().unwrap(),
        );
        group.bench_with_input(
            BenchmarkId::new("standardwebhooks", size),
            &body,
            |b, body| b.iter(|| peer.verify(black_box(body), &headers).unwrap()),
        );

        let mut svix_headers = http::HeaderMap::new();
        svix_headers.insert("svix-id", "msg_1".parse().unwrap());
        svix_headers.insert("svix-timestamp", now.to_string().parse().unwrap());
        svix_headers.insert(
            "svix-signature",
            svix.sign("msg_1", now, &body).unwrap().parse().unwrap(),
        );
        group.bench_with_input(BenchmarkId::new("svix", size), &body, |b, body| {
            b.iter(|| svix.verify(black_box(body), &svix_headers).unwrap())
        });

        // The floor: one HMAC-SHA256 over the same signed content, compared in constant
        // time, with no header parsing or encoding.
        let key = SECRET.as_bytes();
        let expected = {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(&body);
            mac.finalize().into_bytes()
        };
        group.bench_with_input(BenchmarkId::new("hmac-sha256", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
                mac.update(ts.as_bytes());
                mac.update(b".");
                mac.update(black_box(body));
                mac.verify_slice(&expected).unwrap()
            })
        });
    }
    group.finish();
}

fn handler(c: &mut Criterion) {
    let events_only = WebhookConfig::parse(
        None,
        "https://sqs.example/events",
        "https://sqs.example/jobs",
    )
    .unwrap();
    // The local stack's default: `events`, the HTTPS target `audit` and the bus.
    let local = cxbridge_local::bootstrap::local_webhook_config(
        "http://127.0.0.1:9",
        "arn:aws:events:us-east-1:000000000000:event-bus/bench",
    );
    let with_targets = WebhookConfig::parse(
        Some(&local),
        "https://sqs.example/events",
        "https://sqs.example/jobs",
    )
    .unwrap();
    for (id, config) in [
        ("handler/verify+parse+normalise+route/1KiB", &events_only),
        (
            "handler/verify+parse+normalise+route/1KiB+targets",
            &with_targets,
        ),
    ] {
        handler_with(c, id, config);
    }
}

fn handler_with(c: &mut Criterion, id: &str, config: &WebhookConfig) {
    let secrets = [SecretString::from(SECRET)];
    let now_ms = cxbridge::clock::now_ms();
    let body = chat_event(1024);
    let sig = signature::sign(SECRET.as_bytes(), now_ms / 1000, &body);
    let ts = (now_ms / 1000).to_string();
    c.bench_function(id, |b| {
        b.iter(|| {
            let inbound = Inbound {
                content_type: Some("application/json"),
                signature: Some(&sig),
                timestamp: Some(&ts),
                event_type: Some("interaction.message"),
                delivery_id: Some("d-1"),
                body: &body,
            };
            black_box(
                process(
                    config,
                    black_box(&inbound),
                    &secrets,
                    now_ms,
                    Duration::from_secs(300),
                )
                .unwrap(),
            )
        })
    });
}

/// The default `order-update` signal: validate the request's data against its definition
/// and flatten the nested address, as signal-dispatcher does before calling CXone.
fn signals(c: &mut Criterion) {
    let definitions = parse(DEFAULT_SIGNALS, Profile::Documented).unwrap();
    let definition = definitions.get("order-update").unwrap();
    let data = serde_json::json!({
        "customerId": "C-1042", "orderId": "O-77", "updateType": "shipped", "priority": "high",
        "timestamp": "2026-11-22T09:00:00Z", "address": {"city": "Leeds", "zip": "LS1 4AP"}
    });
    assert_eq!(validate(definition, &data).unwrap().len(), 7);
    c.bench_function("signals/validate+flatten/order-update", |b| {
        b.iter(|| black_box(validate(definition, black_box(&data)).unwrap()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = verify, handler, signals
}
criterion_main!(benches);
