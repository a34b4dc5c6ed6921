//! The operator commands for named targets and the delivery log: `cxbridge config check`,
//! `cxbridge targets list|test|pause|resume` and `cxbridge deliveries list`.
//!
//! They find their table, secret and targets in the flags, else in the local stack's state
//! file; AWS comes from the environment (`AWS_ENDPOINT_URL` and the usual chain), else the
//! state file's emulator.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cxbridge::adapters::delivery::LiveSender;
use cxbridge::adapters::dynamodb::DynamoDbTargetStore;
use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::targets::deliver::{LogEntry, TargetSender, TargetStore};
use cxbridge::targets::{TargetSpec, Targets};
use cxbridge::webhook::config::WebhookConfig;
use serde_json::{Value, json};

/// Where the commands act, and on which targets.
pub struct Place {
    pub targets: Targets,
    pub table: String,
    pub secret_id: String,
    pub sdk: aws_config::SdkConfig,
}

/// The flags every target command takes.
pub struct PlaceArgs<'a> {
    pub config: Option<&'a Path>,
    pub table: Option<String>,
    pub secret_id: Option<String>,
    pub state: &'a Path,
}

fn read_state(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

impl Place {
    pub async fn find(args: PlaceArgs<'_>) -> Result<Self> {
        let state = read_state(args.state);
        let from_state = |key: &str| {
            state
                .as_ref()
                .and_then(|s| s[key].as_str().map(str::to_owned))
        };
        let document = match args.config {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            None => match state.as_ref().map(|s| &s["webhookConfig"]) {
                Some(v) if v.is_object() => v.to_string(),
                _ => bail!(
                    "no webhook configuration: pass --config FILE (the CXBRIDGE_WEBHOOK_CONFIG document), or run `make run` for the local one"
                ),
            },
        };
        let problems = WebhookConfig::check(&document);
        if !problems.is_empty() {
            bail!(
                "the webhook configuration has problems:\n  {}",
                problems.join("\n  ")
            );
        }
        let targets = WebhookConfig::parse(
            Some(&document),
            "https://sqs.local/events",
            "https://sqs.local/jobs",
        )?
        .targets;
        let table = args
            .table
            .or_else(|| std::env::var(cxbridge::config::vars::TABLE).ok())
            .or_else(|| from_state("table"))
            .context("no table: pass --table (or set CXBRIDGE_TABLE)")?;
        let secret_id = args
            .secret_id
            .or_else(|| std::env::var(cxbridge::config::vars::SECRET_ID).ok())
            .or_else(|| from_state("secretId"))
            .unwrap_or_default();
        let sdk = match (std::env::var("AWS_ENDPOINT_URL").ok(), from_state("aws")) {
            (None, Some(emulator)) => crate::stack::emulator_config(&emulator).await,
            _ => cxbridge::aws::load_sdk_config(&cxbridge::aws::AwsSettings::from_env()?).await,
        };
        Ok(Self {
            targets,
            table,
            secret_id,
            sdk,
        })
    }

    fn store(&self) -> DynamoDbTargetStore {
        DynamoDbTargetStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.table.clone(),
            Duration::from_secs(86_400),
        )
    }

    fn target(&self, name: &str) -> Result<&TargetSpec> {
        self.targets.get(name).with_context(|| {
            let known: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
            format!(
                "no target {name:?} (the configuration declares: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })
    }
}

/// `cxbridge config check FILE [--secret-file FILE]`: every problem, one a line.
pub fn config_check(file: &Path, secret_file: Option<&Path>) -> Result<Vec<String>> {
    let document =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut problems = WebhookConfig::check(&document);
    if let (true, Some(path)) = (problems.is_empty(), secret_file) {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let secrets = cxbridge::secrets::parse_secrets(&path.display().to_string(), &text)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let config = WebhookConfig::parse(
            Some(&document),
            "https://sqs.local/events",
            "https://sqs.local/jobs",
        )?;
        problems.extend(cxbridge::targets::missing_credentials(
            &config.targets,
            &secrets,
        ));
    }
    Ok(problems)
}

/// Milliseconds in `1h`, `30m`, `2d`, `45s`.
pub fn parse_since(text: &str) -> Result<i64> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: expected a number and s, m, h or d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {text:?}: expected a number and s, m, h or d"),
    };
    Ok(n.saturating_mul(unit_ms))
}

/// `cxbridge targets list`.
pub async fn targets_list(place: &Place, format: &str) -> Result<String> {
    let store = place.store();
    let now = cxbridge::clock::now_ms();
    let mut rows = Vec::new();
    for spec in place.targets.iter() {
        let state = store.state(&spec.name).await.map_err(anyhow::Error::msg)?;
        let day = store
            .history(&spec.name, now - 86_400_000, now)
            .await
            .map_err(anyhow::Error::msg)?;
        let count = |since: i64, status: &str| {
            day.iter()
                .filter(|e| e.at_ms >= since && e.status == status)
                .count()
        };
        rows.push(json!({
            "name": spec.name,
            "type": spec.type_name(),
            "state": if state.manual { "paused (by hand)".to_owned() } else { state.state.clone() },
            "consecutiveFailures": state.consecutive_failures,
            "lastError": state.last_error,
            "deliveredLastHour": count(now - 3_600_000, "delivered"),
            "failedLastHour": count(now - 3_600_000, "failed"),
            "deliveredLastDay": count(0, "delivered"),
            "failedLastDay": count(0, "failed"),
        }));
    }
    if format == "json" {
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:<18} {:>8} {:>12} {:>12}  LAST ERROR",
        "TARGET", "TYPE", "STATE", "FAILURES", "1H OK/FAIL", "1D OK/FAIL"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<18} {:>8} {:>12} {:>12}  {}",
            r["name"].as_str().unwrap_or_default(),
            r["type"].as_str().unwrap_or_default(),
            r["state"].as_str().unwrap_or_default(),
            r["consecutiveFailures"],
            format!("{}/{}", r["deliveredLastHour"], r["failedLastHour"]),
            format!("{}/{}", r["deliveredLastDay"], r["failedLastDay"]),
            r["lastError"].as_str().unwrap_or("-"),
        );
    }
    Ok(out)
}

/// `cxbridge targets pause|resume NAME`.
pub async fn set_paused(place: &Place, name: &str, paused: bool) -> Result<String> {
    place.target(name)?;
    place
        .store()
        .set_paused(name, paused, cxbridge::clock::now_ms())
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(if paused {
        format!(
            "target {name} paused: its deliveries are parked until `cxbridge targets resume {name}`"
        )
    } else {
        format!("target {name} resumed: parked deliveries go out as they come back")
    })
}

/// `cxbridge targets test NAME`: a signed synthetic `integration.test` event, sent now
/// through the same sender the drainer uses.
pub async fn targets_test(place: &Place, name: &str) -> Result<(bool, String)> {
    let spec = place.target(name)?;
    if spec.type_name() == "sqs" {
        bail!("target {name} is an SQS queue: its events are enqueued when a webhook is accepted");
    }
    if place.secret_id.is_empty() {
        bail!("no secret: pass --secret-id (or set CXBRIDGE_SECRET_ID)");
    }
    let secrets = Arc::new(SecretsManagerSource::new(
        aws_sdk_secretsmanager::Client::new(&place.sdk),
        place.secret_id.clone(),
        Duration::from_secs(60),
    ));
    let sender = LiveSender::new(aws_sdk_eventbridge::Client::new(&place.sdk), secrets);
    // The latency printed is the target's, not the client's TLS setup.
    sender.ready().await.map_err(anyhow::Error::msg)?;
    let now = cxbridge::clock::now_ms();
    let id = cxbridge::ids::new_uuid();
    let event = json!({
        "deliveryId": format!("test-{id}"),
        "eventType": "integration.test",
        "occurredAt": cxbridge::clock::rfc3339(now),
        "source": "cxbridge targets test",
    });
    let started = Instant::now();
    let sent = sender
        .send(spec, &cxbridge::targets::sign::message_id(&id), &event, now)
        .await;
    let ms = started.elapsed().as_millis();
    Ok(match sent {
        Ok(answer) => (
            true,
            format!(
                "target {name}: ok{} in {ms} ms\n{}",
                answer
                    .http_status
                    .map(|s| format!(", HTTP {s}"))
                    .unwrap_or_default(),
                answer.excerpt
            ),
        ),
        Err(e) => (
            false,
            format!(
                "target {name}: failed after {ms} ms ({}): {}",
                if e.retryable {
                    "a delivery would be retried"
                } else {
                    "a delivery would not be retried"
                },
                e.reason
            ),
        ),
    })
}

/// `cxbridge deliveries list`.
pub async fn deliveries_list(
    place: &Place,
    since: &str,
    target: Option<&str>,
    status: Option<&str>,
    format: &str,
) -> Result<String> {
    let now = cxbridge::clock::now_ms();
    let since_ms = now - parse_since(since)?;
    let store = place.store();
    let names: Vec<String> = match target {
        Some(name) => vec![place.target(name)?.name.clone()],
        None => place
            .targets
            .iter()
            .filter(|t| t.is_delivered_by_job())
            .map(|t| t.name.clone())
            .collect(),
    };
    let mut entries: Vec<LogEntry> = Vec::new();
    for name in &names {
        entries.extend(
            store
                .history(name, since_ms, now)
                .await
                .map_err(anyhow::Error::msg)?,
        );
    }
    entries.retain(|e| status.is_none_or(|s| e.status == s));
    entries.sort_by_key(|e| e.at_ms);
    Ok(render(&entries, format))
}

fn render(entries: &[LogEntry], format: &str) -> String {
    let mut out = String::new();
    match format {
        "json" => {
            let rows: Vec<Value> = entries
                .iter()
                .map(|e| {
                    json!({
                        "at": cxbridge::clock::rfc3339(e.at_ms), "deliveryId": e.delivery_id,
                        "target": e.target, "attempt": e.attempt, "status": e.status,
                        "httpStatus": e.http_status, "latencyMs": e.latency_ms, "error": e.error,
                    })
                })
                .collect();
            out = serde_json::to_string_pretty(&rows).unwrap_or_default();
        }
        "csv" => {
            out.push_str("at,delivery_id,target,attempt,status,http_status,latency_ms,error\n");
            for e in entries {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    cxbridge::clock::rfc3339(e.at_ms),
                    csv(&e.delivery_id),
                    csv(&e.target),
                    e.attempt,
                    e.status,
                    e.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    e.latency_ms,
                    csv(e.error.as_deref().unwrap_or_default()),
                );
            }
        }
        _ => {
            let _ = writeln!(
                out,
                "{:<24} {:<36} {:<16} {:>7} {:<10} {:>5} {:>8}  ERROR",
                "AT", "DELIVERY", "TARGET", "ATTEMPT", "STATUS", "HTTP", "MS"
            );
            for e in entries {
                let _ = writeln!(
                    out,
                    "{:<24} {:<36} {:<16} {:>7} {:<10} {:>5} {:>8}  {}",
                    cxbridge::clock::rfc3339(e.at_ms),
                    e.delivery_id,
                    e.target,
                    e.attempt,
                    e.status,
                    e.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    e.latency_ms,
                    e.error.as_deref().unwrap_or("-"),
                );
            }
            let _ = writeln!(out, "{} attempt(s)", entries.len());
        }
    }
    out
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_seconds_minutes_hours_and_days() {
        assert_eq!(parse_since("45s").unwrap(), 45_000);
        assert_eq!(parse_since("30m").unwrap(), 1_800_000);
        assert_eq!(parse_since("1h").unwrap(), 3_600_000);
        assert_eq!(parse_since("2d").unwrap(), 172_800_000);
        assert!(parse_since("1w").is_err());
        assert!(parse_since("h").is_err());
    }

    #[test]
    fn csv_quotes_what_it_must() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
