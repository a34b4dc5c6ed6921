//! Webhook hot path: signature verification next to the `standardwebhooks` crate on the
//! same bytes, and the whole request path without I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use cxbridge::webhook::config::WebhookConfig;
use cxbridge::webhook::signature::{self, Signed};
use cxbridge::webhook::{Inbound, process};
use secrecy::SecretString;

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
    let mut group = c.benchmark_group("verify");
    for size in [1024, 16 * 1024] {
        let body = chat_event(size);
        group.throughput(Throughput::Bytes(size as u64));

        let sig = signature::sign(SECRET.as_bytes(), now, &body);
        let ts = now.to_string();
        group.bench_with_input(BenchmarkId::new("cxbridge", size), &body, |b, body| {
            b.iter(|| {
                let signed = Signed {
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
    }
    group.finish();
}

fn handler(c: &mut Criterion) {
    let config = WebhookConfig::parse(
        None,
        "https://sqs.example/events",
        "https://sqs.example/jobs",
    )
    .unwrap();
    let secrets = [SecretString::from(SECRET)];
    let now_ms = cxbridge::clock::now_ms();
    let body = chat_event(1024);
    let sig = signature::sign(SECRET.as_bytes(), now_ms / 1000, &body);
    let ts = (now_ms / 1000).to_string();
    c.bench_function("handler/verify+parse+normalise+route/1KiB", |b| {
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
                    &config,
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

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = verify, handler
}
criterion_main!(benches);
