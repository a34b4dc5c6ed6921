//! What a million webhooks cost on AWS, from what the run measured, for cxbridge and for
//! the Node.js peer doing the same durable work.
//!
//! Prices: AWS's public on-demand prices for us-east-1 (N. Virginia), past any free tier,
//! as of 2026-12-01 (DynamoDB's since its November 2024 reduction); the pages that publish
//! them:
//! - Lambda, <https://aws.amazon.com/lambda/pricing/>: $0.20 per million requests;
//!   $0.0000133334 per GB-second on arm64 (the first 7.5 billion GB-seconds a month);
//! - API Gateway, <https://aws.amazon.com/api-gateway/pricing/>: HTTP APIs $1.00 per million
//!   requests (the first 300 million a month, each request counted per 512 KB);
//! - DynamoDB, <https://aws.amazon.com/dynamodb/pricing/on-demand/>: $0.625 per million
//!   write request units, $0.125 per million read request units. A write takes one unit
//!   per KB of the item (rounded up), twice that in a transaction; a strongly consistent
//!   read one unit per 4 KB (an eventually consistent one half). Stream reads by Lambda are
//!   free;
//! - SQS, <https://aws.amazon.com/sqs/pricing/>: standard queues $0.40 per million
//!   requests, each 64 KB of a request's payload counted as one;
//! - CloudWatch Logs, <https://aws.amazon.com/cloudwatch/pricing/>: $0.50 per GB ingested.

use std::collections::BTreeMap;
use std::time::Duration;

pub const PRICES_READ_ON: &str = "2026-12-01";
const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
const SQS_REQUEST: f64 = 0.40 / 1e6;
const LOGS_PER_GB: f64 = 0.50;
/// What Lambda itself writes to the log for each invocation (its START, END and REPORT
/// lines), about.
pub const PLATFORM_LOG_BYTES: f64 = 300.0;

/// One side's figures for one webhook.
#[derive(Debug, Clone, Default)]
pub struct PerWebhook {
    pub lambda_requests: f64,
    pub gb_seconds: f64,
    pub api_requests: f64,
    pub write_units: f64,
    pub read_units: f64,
    pub sqs_requests: f64,
    pub log_bytes: f64,
}

/// The cost of a million webhooks, by service (in US dollars).
#[derive(Debug, Clone, Default)]
pub struct Cost {
    pub by_service: BTreeMap<&'static str, f64>,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.by_service.values().sum()
    }

    /// One service's share (0 for a service it does not list).
    pub fn of(&self, service: &str) -> f64 {
        self.by_service.get(service).copied().unwrap_or(0.0)
    }
}

/// The services in the order the report and the chart list them.
pub const SERVICES: [&str; 6] = [
    "API Gateway (HTTP API)",
    "Lambda requests",
    "Lambda compute (GB-s)",
    "DynamoDB",
    "SQS",
    "CloudWatch Logs",
];

impl PerWebhook {
    pub fn per_million(&self) -> Cost {
        let m = 1e6;
        let by_service = BTreeMap::from([
            (SERVICES[0], self.api_requests * HTTP_API_REQUEST * m),
            (SERVICES[1], self.lambda_requests * LAMBDA_REQUEST * m),
            (SERVICES[2], self.gb_seconds * LAMBDA_ARM_GB_SECOND * m),
            (
                SERVICES[3],
                (self.write_units * DYNAMODB_WRITE_UNIT + self.read_units * DYNAMODB_READ_UNIT) * m,
            ),
            (SERVICES[4], self.sqs_requests * SQS_REQUEST * m),
            (SERVICES[5], self.log_bytes / 1e9 * LOGS_PER_GB * m),
        ]);
        Cost { by_service }
    }
}

/// What any receiver behind an HTTP API, invoked once per webhook, pays for a million
/// before it does anything (the API request and the invocation), and what storing each
/// webhook durably adds at the least (one write unit).
pub fn floor_per_million() -> (f64, f64) {
    (
        (HTTP_API_REQUEST + LAMBDA_REQUEST) * 1e6,
        DYNAMODB_WRITE_UNIT * 1e6,
    )
}

/// Write units for an item of `bytes` (one per KB, rounded up).
pub fn write_units(bytes: u64) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// GB-seconds of `duration` at `memory_mb`.
pub fn gb_seconds(duration: Duration, memory_mb: u64) -> f64 {
    duration.as_secs_f64() * memory_mb as f64 / 1024.0
}

/// Calls of `operation` (its short name, such as `PutItem`) per webhook.
pub fn per_webhook(calls: &BTreeMap<String, u64>, operation: &str, webhooks: usize) -> f64 {
    calls
        .iter()
        .filter(|(op, _)| op.rsplit('.').next() == Some(operation))
        .map(|(_, n)| *n)
        .sum::<u64>() as f64
        / webhooks.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_receiver_behind_an_http_api_costs_more_than_a_third_of_the_peer() {
        let (floor, one_write) = floor_per_million();
        assert!((floor - 1.2).abs() < 1e-9);
        assert!((one_write - 0.625).abs() < 1e-9);
        // The durable peer as measured: one request and invocation, three plain writes of
        // items under 1 KB, one send, Lambda's own log lines.
        let peer = PerWebhook {
            lambda_requests: 1.0,
            gb_seconds: gb_seconds(Duration::from_millis(25), 128),
            api_requests: 1.0,
            write_units: 3.0,
            read_units: 0.0,
            sqs_requests: 1.0,
            log_bytes: PLATFORM_LOG_BYTES,
        };
        let third = peer.per_million().total() / 3.0;
        assert!(
            floor < third + 0.1,
            "the floor alone is about a third: {floor} vs {third}"
        );
        assert!(
            floor + one_write > third,
            "{floor} + {one_write} vs {third}"
        );
    }

    #[test]
    fn a_million_webhooks_cost_each_service_its_published_price() {
        let one = PerWebhook {
            lambda_requests: 1.0,
            gb_seconds: gb_seconds(Duration::from_millis(10), 256),
            api_requests: 1.0,
            write_units: 2.0 * (write_units(1500) + write_units(200)),
            read_units: 0.0,
            sqs_requests: 1.0,
            log_bytes: 1000.0,
        };
        let cost = one.per_million();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(cost.by_service["API Gateway (HTTP API)"], 1.0));
        assert!(close(cost.by_service["Lambda requests"], 0.2));
        // 0.01 s × 0.25 GB × $0.0000133334 × 10⁶
        assert!(close(cost.by_service["Lambda compute (GB-s)"], 0.033_333_5));
        // a transaction of a 2 KB and a 1 KB item: 6 units
        assert!(close(cost.by_service["DynamoDB"], 6.0 * 0.625));
        assert!(close(cost.by_service["SQS"], 0.4));
        assert!(close(cost.by_service["CloudWatch Logs"], 0.5));
        assert!(close(
            cost.total(),
            1.0 + 0.2 + 0.033_333_5 + 3.75 + 0.4 + 0.5
        ));
    }

    #[test]
    fn calls_are_counted_by_operation_whatever_the_service_prefix() {
        let calls = BTreeMap::from([
            ("DynamoDB_20120810.PutItem".to_owned(), 4),
            ("DynamoDB_20120810.UpdateItem".to_owned(), 2),
            ("AmazonSQS.SendMessageBatch".to_owned(), 2),
        ]);
        assert!((per_webhook(&calls, "PutItem", 2) - 2.0).abs() < 1e-12);
        assert!((per_webhook(&calls, "SendMessageBatch", 2) - 1.0).abs() < 1e-12);
        assert!(per_webhook(&calls, "GetItem", 2).abs() < 1e-12);
    }
}
