//! BENCHMARKS.md, from the numbers of one run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::coldstart::{FunctionRun, median};
use crate::load::{DuplicateRun, LoadRun, TargetsRun, percentile};
use crate::peer::PeerRun;
use crate::{charts, cost};

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub node: String,
    pub moto: String,
}

async fn command(program: &Path, args: &[&str]) -> String {
    match tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

impl Machine {
    pub async fn read(root: &Path, node: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().strip_suffix("kB"))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .map_or_else(
                || "unknown".to_owned(),
                |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
        let python = root.join(".venv/moto/bin/python");
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel,
            rustc: command(Path::new("rustc"), &["--version"]).await,
            node: command(node, &["--version"]).await,
            moto: command(&python, &["-c", "import moto; print(moto.__version__)"]).await,
        }
    }
}

pub struct Report {
    pub machine: Machine,
    /// Criterion medians in ns, by full id.
    pub micro: BTreeMap<String, f64>,
    pub zips: BTreeMap<String, Option<u64>>,
    pub functions: Vec<FunctionRun>,
    pub loads: Vec<LoadRun>,
    pub duplicates: DuplicateRun,
    pub targets: TargetsRun,
    /// The peer as the guides write it: everything in memory.
    pub peer: PeerRun,
    /// The same peer doing cxbridge's durable work through the same emulator.
    pub durable_peer: PeerRun,
    pub cold_starts: usize,
    pub elapsed: Duration,
    /// Each function's `MemorySize` in the template.
    pub memory_mb: BTreeMap<String, u64>,
}

/// The charts `make bench` writes next to BENCHMARKS.md, and their titles.
pub const CHARTS: [(&str, &str); 3] = [
    (
        "BENCHMARKS-cold-starts.svg",
        "cold start per function, against the peer",
    ),
    (
        "BENCHMARKS-latency.svg",
        "latency percentiles against the offered rate",
    ),
    (
        "BENCHMARKS-cost.svg",
        "cost per million webhooks, by service",
    ),
];

/// The load run costs are figured at: 200/s, else the first.
fn cost_load(r: &Report) -> Option<&LoadRun> {
    r.loads
        .iter()
        .find(|l| l.rate == 200)
        .or_else(|| r.loads.first())
}

/// One webhook's use of each priced service, for cxbridge and for the durable peer.
pub fn usage(r: &Report) -> Option<(cost::PerWebhook, cost::PerWebhook)> {
    let rx = r.functions.iter().find(|f| f.name == "webhook-receiver")?;
    let relay = r.functions.iter().find(|f| f.name == "event-relay")?;
    let load = cost_load(r)?;
    let memory = |name: &str| r.memory_mb.get(name).copied().unwrap_or(256);
    // event-relay's invocations (one GetItem each) and sends per webhook at that rate.
    let invocations = cost::per_webhook(&load.relay_calls, "GetItem", load.accepted);
    let sends = cost::per_webhook(&load.relay_calls, "SendMessageBatch", load.accepted);
    let d = &r.duplicates;
    let ours = cost::PerWebhook {
        lambda_requests: 1.0 + invocations,
        gb_seconds: cost::gb_seconds(rx.wall_per_request, memory("webhook-receiver"))
            + invocations * cost::gb_seconds(relay.wall_per_request, memory("event-relay")),
        api_requests: 1.0,
        write_units: 2.0 * (cost::write_units(d.record_bytes) + cost::write_units(d.replay_bytes)),
        read_units: invocations,
        sqs_requests: sends,
        log_bytes: rx.log_bytes_per_request
            + invocations * relay.log_bytes_per_request
            + (1.0 + invocations) * cost::PLATFORM_LOG_BYTES,
    };
    let dp = &r.durable_peer;
    let count = rx.requests;
    let peer = cost::PerWebhook {
        lambda_requests: 1.0,
        gb_seconds: cost::gb_seconds(dp.wall_per_request, memory("webhook-receiver")),
        api_requests: 1.0,
        write_units: cost::per_webhook(&dp.calls, "PutItem", count)
            + cost::per_webhook(&dp.calls, "UpdateItem", count),
        read_units: 0.0,
        sqs_requests: cost::per_webhook(&dp.calls, "SendMessageBatch", count)
            + cost::per_webhook(&dp.calls, "SendMessage", count),
        log_bytes: cost::PLATFORM_LOG_BYTES,
    };
    Some((ours, peer))
}

/// Writes the charts of [`CHARTS`] into `dir`.
pub fn write_charts(r: &Report, dir: &Path) -> anyhow::Result<()> {
    let functions: Vec<(String, f64)> = r
        .functions
        .iter()
        .map(|f| (f.name.clone(), median(&f.exec_to_next).as_secs_f64() * 1e3))
        .collect();
    charts::cold_starts(
        &dir.join(CHARTS[0].0),
        &functions,
        median(&r.peer.exec_to_ready).as_secs_f64() * 1e3,
    )?;
    let mut points: Vec<(u32, [f64; 3])> = r
        .loads
        .iter()
        .chain(std::iter::once(&r.targets.events_only))
        .map(|l| {
            let p = |q: f64| l.percentile(q).as_secs_f64() * 1e3;
            (l.rate, [p(50.0), p(90.0), p(99.0)])
        })
        .collect();
    points.sort_by_key(|(rate, _)| *rate);
    charts::latencies(&dir.join(CHARTS[1].0), &points)?;
    if let Some((ours, peer)) = usage(r) {
        let layers = |c: &cost::Cost| -> Vec<(&str, f64)> {
            cost::SERVICES.iter().map(|s| (*s, c.of(s))).collect()
        };
        charts::costs(
            &dir.join(CHARTS[2].0),
            &[
                ("cxbridge", layers(&ours.per_million())),
                ("Node.js peer", layers(&peer.per_million())),
            ],
        )?;
    }
    Ok(())
}

/// Criterion's id of the handler routed to the local named targets.
const HANDLER_TARGETS: &str = "handler/verify+parse+normalise+route/1KiB+targets";

fn ns(v: f64) -> String {
    if v < 1_000.0 {
        format!("{v:.0} ns")
    } else if v < 1_000_000.0 {
        format!("{:.2} µs", v / 1_000.0)
    } else {
        format!("{:.2} ms", v / 1_000_000.0)
    }
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Decimal megabytes (10^6 bytes).
fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn kib_bytes(kib: u64) -> u64 {
    kib * 1024
}

fn ratio(peer: f64, ours: f64) -> String {
    if ours <= 0.0 || peer <= 0.0 {
        "n/a".to_owned()
    } else {
        format!("{:.1}×", peer / ours)
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

struct Check {
    target: String,
    measured: String,
    ok: bool,
}

pub fn render(r: &Report) -> String {
    let m = |id: &str| r.micro.get(id).copied();
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `make bench` ({:.0} min for the measurements after the builds). Every \
         number here comes from that run; none is typed by hand. Run `make bench` to reproduce \
         it: it builds the release binaries and the arm64 zips, runs criterion, then \
         `target/release/cxbridge-bench`, which measures the rest and writes this file.\n",
        r.elapsed.as_secs_f64() / 60.0
    );
    let mc = &r.machine;
    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(
        w,
        "- CPU: {} ({} cores)\n- Memory: {}\n- Linux {}\n- {}\n- Node.js {} (the peer)\n- moto {} (the AWS emulator)\n",
        mc.cpu, mc.cores, mc.memory, mc.kernel, mc.rustc, mc.node, mc.moto
    );

    let receiver = r.functions.iter().find(|f| f.name == "webhook-receiver");
    let p = &r.peer;
    let _ = writeln!(w, "## Summary\n");
    let _ = writeln!(
        w,
        "| metric | cxbridge | peer | ratio (peer ÷ cxbridge) | how it was measured |\n|---|---|---|---|---|"
    );
    for size in ["1024", "16384"] {
        let label = if size == "1024" { "1 KiB" } else { "16 KiB" };
        let ours = m(&format!("verify/cxbridge/{size}")).unwrap_or(0.0);
        for (peer, name) in [
            ("standardwebhooks", "`standardwebhooks` crate"),
            ("svix", "`svix` crate"),
            ("hmac-sha256", "raw HMAC-SHA256 (the floor)"),
        ] {
            let theirs = m(&format!("verify/{peer}/{size}")).unwrap_or(0.0);
            let _ = writeln!(
                w,
                "| signature verification, {label} | {} | {} ({name}) | {} | criterion median, same bytes and key |",
                ns(ours),
                ns(theirs),
                ratio(theirs, ours)
            );
        }
    }
    if let Some(rx) = receiver {
        let cx_next = median(&rx.exec_to_next);
        let peer_ready = median(&p.exec_to_ready);
        let _ = writeln!(
            w,
            "| cold start: exec to ready | {} | {} | {} | median of {}; webhook-receiver: exec to its first `GET /invocation/next` (init done: secrets read, clients built, connections opened); peer: exec to listening |",
            ms(cx_next),
            ms(peer_ready),
            ratio(peer_ready.as_secs_f64(), cx_next.as_secs_f64()),
            r.cold_starts
        );
        let cx_first = median(&rx.first_answer);
        let peer_first = median(&p.first_answer);
        let _ = writeln!(
            w,
            "| cold start: first answered webhook | {} | {} | {} | median of {}; cxbridge: request sent to a function with no instance, through the gateway, until its 202; peer: exec until the 202 of its first request |",
            ms(cx_first),
            ms(peer_first),
            ratio(peer_first.as_secs_f64(), cx_first.as_secs_f64()),
            r.cold_starts
        );
        let _ = writeln!(
            w,
            "| peak RSS | {} | {} | {} | `VmHWM` of the one process after the {} accepted and {} refused webhooks in a row that follow its last cold start |",
            mb(kib_bytes(rx.peak_rss_kib)),
            mb(kib_bytes(p.peak_rss_kib)),
            ratio(p.peak_rss_kib as f64, rx.peak_rss_kib as f64),
            rx.requests,
            rx.requests
        );
        let _ = writeln!(
            w,
            "| CPU per webhook | {} | {} | {} | user + system time of the process over the {} accepted webhooks, divided by their number; cxbridge's includes its one DynamoDB call (below), over a kept-alive connection to the emulator, while this peer keeps everything in memory |",
            us(rx.cpu_per_request),
            us(p.cpu_per_request),
            ratio(
                p.cpu_per_request.as_secs_f64(),
                rx.cpu_per_request.as_secs_f64()
            ),
            rx.requests
        );
        let dp = &r.durable_peer;
        let _ = writeln!(
            w,
            "| CPU per webhook, against the peer doing the same durable work | {} | {} | {} | the same, with the peer writing what cxbridge writes to the same moto with the AWS SDK for JavaScript v3; AWS calls per webhook: cxbridge {:.2} ({}), peer {:.2} ({}) |",
            us(rx.cpu_per_request),
            us(dp.cpu_per_request),
            ratio(
                dp.cpu_per_request.as_secs_f64(),
                rx.cpu_per_request.as_secs_f64()
            ),
            per_request(&rx.calls, rx.requests),
            by_operation(&rx.calls, rx.requests),
            per_request(&dp.calls, rx.requests),
            by_operation(&dp.calls, rx.requests)
        );
        if let Some(rej) = &rx.rejected {
            let _ = writeln!(
                w,
                "| CPU per webhook refused for its signature (401) | {} | {} | {} | then as many webhooks signed with the wrong secret: verification and the error answer, without the AWS calls (cxbridge made {} meanwhile: a mismatch may refresh the cached secret, at most once per interval) |",
                us(rej.cpu_per_request),
                us(p.rejected_cpu_per_request),
                ratio(
                    p.rejected_cpu_per_request.as_secs_f64(),
                    rej.cpu_per_request.as_secs_f64()
                ),
                match rej.calls.values().sum::<u64>() {
                    1 => "1 AWS call".to_owned(),
                    n => format!("{n} AWS calls"),
                }
            );
        }
    }
    if let Some(v) = m("handler/verify+parse+normalise+route/1KiB") {
        let _ = writeln!(
            w,
            "| webhook handler without I/O, 1 KiB | {} | – | – | criterion median: verify, parse, normalise, route and plan the messages of a 1 KiB chat event |",
            ns(v)
        );
    }
    if let Some(v) = m(HANDLER_TARGETS) {
        let _ = writeln!(
            w,
            "| webhook handler without I/O, 1 KiB, with the local named targets | {} | – | – | the same, routed as the local stack routes: to `events`, the HTTPS target `audit` and the bus (three messages, two of them delivery jobs) |",
            ns(v)
        );
    }
    if let Some(v) = m("signals/validate+flatten/order-update") {
        let _ = writeln!(
            w,
            "| signal validation + flattening | {} | – | – | criterion median: the default `order-update` payload, 7 variables with a nested address |",
            ns(v)
        );
    }
    let _ = writeln!(w);

    // Targets.
    let mut checks = Vec::new();
    for size in ["1024", "16384"] {
        let ours = m(&format!("verify/cxbridge/{size}")).unwrap_or(f64::INFINITY);
        let floor = m(&format!("verify/hmac-sha256/{size}")).unwrap_or(0.0);
        checks.push(Check {
            target: format!("verification at {size} B within 1.5× of raw HMAC"),
            measured: format!("{:.2}×", ours / floor),
            ok: ours <= 1.5 * floor,
        });
        for peer in ["standardwebhooks", "svix"] {
            let theirs = m(&format!("verify/{peer}/{size}")).unwrap_or(0.0);
            checks.push(Check {
                target: format!("verification at {size} B no slower than `{peer}`"),
                measured: format!("{} vs {}", ns(ours), ns(theirs)),
                ok: ours <= theirs,
            });
        }
    }
    let handler = m("handler/verify+parse+normalise+route/1KiB").unwrap_or(f64::INFINITY);
    checks.push(Check {
        target: "whole handler at 1 KiB ≤ 20 µs".into(),
        measured: ns(handler),
        ok: handler <= 20_000.0,
    });
    for f in &r.functions {
        let next = median(&f.exec_to_next);
        checks.push(Check {
            target: format!("{}: cold start to first `/next` ≤ 20 ms", f.name),
            measured: ms(next),
            ok: next <= Duration::from_millis(20),
        });
        let rss = kib_bytes(f.peak_rss_kib);
        checks.push(Check {
            target: format!("{}: RSS ≤ 30 MB", f.name),
            measured: mb(rss),
            ok: rss <= 30_000_000,
        });
        let zip = r.zips.get(&f.name).copied().flatten();
        checks.push(Check {
            target: format!("{}: zip ≤ 8 MB", f.name),
            measured: zip.map_or_else(|| "not built".to_owned(), mb),
            ok: zip.is_some_and(|z| z <= 8_000_000),
        });
    }
    if let Some(rx) = receiver {
        let cpu = r.durable_peer.cpu_per_request.as_secs_f64()
            / rx.cpu_per_request.as_secs_f64().max(1e-9);
        checks.push(Check {
            target: "≥ 5× less CPU per webhook than the Node peer doing the same durable work"
                .into(),
            measured: format!("{cpu:.1}×"),
            ok: cpu >= 5.0,
        });
        let ready = median(&p.exec_to_ready).as_secs_f64()
            / median(&rx.exec_to_next).as_secs_f64().max(1e-9);
        checks.push(Check {
            target: "≥ 5× faster cold start than the Node peer (exec to ready)".into(),
            measured: format!("{ready:.1}×"),
            ok: ready >= 5.0,
        });
        let first = median(&p.first_answer).as_secs_f64()
            / median(&rx.first_answer).as_secs_f64().max(1e-9);
        checks.push(Check {
            target: "≥ 5× faster cold start than the Node peer (first answered webhook)".into(),
            measured: format!("{first:.1}×"),
            ok: first >= 5.0,
        });
    }
    let d = &r.duplicates;
    for (what, calls, limit) in [
        ("accepted webhook", &d.accepted, 2.0),
        ("duplicate", &d.duplicate, 1.0),
    ] {
        // The cached secret's periodic re-read (once a minute at most) is not the request
        // path's; it is shown beside.
        let path: BTreeMap<String, u64> = calls
            .iter()
            .filter(|(op, _)| !op.ends_with("GetSecretValue"))
            .map(|(op, n)| (op.clone(), *n))
            .collect();
        let per = per_request(&path, d.count);
        checks.push(Check {
            target: format!(
                "AWS calls per {what} on the request path (webhook-receiver) ≤ {limit:.0}"
            ),
            measured: format!("{per:.2} (all calls: {})", by_operation(calls, d.count)),
            ok: d.count > 0 && per <= limit,
        });
    }
    for l in &r.loads {
        checks.push(Check {
            target: format!("{}/s: events enqueued = webhooks accepted", l.rate),
            measured: format!("{} = {}", l.enqueued, l.accepted),
            ok: l.enqueued == l.accepted as i64,
        });
        if l.rate == 200 {
            let share = l.accepted as f64 / l.sent.max(1) as f64;
            checks.push(Check {
                target: "200/s for 30 s: at least 99 % of the webhooks sent are accepted".into(),
                measured: format!("{:.1} % ({} of {})", share * 100.0, l.accepted, l.sent),
                ok: l.sent > 0 && share >= 0.99,
            });
        }
        if l.rate == 100 {
            let p99 = l.percentile(99.0);
            checks.push(Check {
                target: "100/s: p99 ≤ 100 ms, every request answered".into(),
                measured: format!("{}, {} unanswered", ms(p99), l.error_count()),
                ok: !l.latencies.is_empty()
                    && l.error_count() == 0
                    && p99 <= Duration::from_millis(100),
            });
        }
    }
    let t = &r.targets;
    let held = &t.held;
    if let Some(v) = m(HANDLER_TARGETS) {
        checks.push(Check {
            target: "whole handler at 1 KiB with the local named targets ≤ 20 µs".into(),
            measured: ns(v),
            ok: v <= 20_000.0,
        });
    }
    let ab = &t.interleaved;
    let (p50, p50_base) = (
        percentile(&ab.with_targets, 50.0),
        percentile(&ab.events_only, 50.0),
    );
    let added = ab.added_p50();
    checks.push(Check {
        target: format!(
            "{}/s, the two routes interleaved: the named targets add to the acknowledgement's p50 no more than the emulator takes for their concurrent `SendMessageBatch`",
            ab.run.rate
        ),
        measured: format!(
            "{} − {} = {} vs {}",
            ms(p50),
            ms(p50_base),
            ms(added),
            ms(t.sends.added())
        ),
        ok: !ab.with_targets.is_empty() && !ab.events_only.is_empty() && added <= t.sends.added(),
    });
    let f = &t.fanout;
    let accepted = held.accepted + t.delivering.accepted;
    let enqueued = held.enqueued + t.delivering.enqueued;
    checks.push(Check {
        target: format!(
            "{}/s with the named targets: each accepted webhook once on `events`, at `audit` and on the bus",
            held.rate
        ),
        measured: format!(
            "{accepted} accepted; {enqueued} / {} / {}, {} repeated",
            f.audit, f.bus, f.audit_repeats
        ),
        ok: accepted > 0
            && enqueued == accepted as i64
            && f.audit == accepted
            && f.bus == accepted as i64
            && f.audit_repeats == 0,
    });
    let usage = usage(r);
    if let Some((ours, peer)) = &usage {
        let (ours, peer) = (ours.per_million().total(), peer.per_million().total());
        checks.push(Check {
            target: "cost per million webhooks at most a third of the durable peer's".into(),
            measured: format!("${ours:.2} vs ${peer:.2} ({:.2}×)", ours / peer.max(1e-9)),
            ok: ours * 3.0 <= peer,
        });
    }
    let _ = writeln!(w, "## Targets\n");
    let _ = writeln!(w, "| target | measured | |\n|---|---|---|");
    for c in &checks {
        let _ = writeln!(w, "| {} | {} | {} |", c.target, c.measured, mark(c.ok));
    }
    let missed = checks.iter().filter(|c| !c.ok).count();
    let _ = writeln!(
        w,
        "\n{} of {} targets met in this run.\n",
        checks.len() - missed,
        checks.len()
    );

    let _ = writeln!(w, "## Charts\n");
    for (file, title) in CHARTS {
        let _ = writeln!(w, "![{title}]({file})\n");
    }
    if let Some((ours, peer)) = &usage {
        cost_section(w, r, ours, peer);
    }

    peers(w, r);

    // Micro.
    let _ = writeln!(w, "## Micro benchmarks (criterion)\n");
    let _ = writeln!(w, "| benchmark | median |\n|---|---|");
    for (id, v) in &r.micro {
        let _ = writeln!(w, "| `{id}` | {} |", ns(*v));
    }
    let _ = writeln!(
        w,
        "\nEach runs 3 s after a 1 s warm-up (`bench/benches/micro.rs`). `verify/*` check one \
         signature over the same chat event padded to the size: cxbridge's X-Nexus check \
         (`sha256=` hex of `timestamp.body`, constant-time compare, timestamp window), the \
         crates' own Standard Webhooks check (base64 of `id.timestamp.body`), and the floor, \
         one HMAC-SHA256 over the same bytes and a constant-time compare.\n"
    );

    // Functions.
    let _ = writeln!(w, "## Each function\n");
    let _ = writeln!(
        w,
        "| function | exec → first `/next` (median) | min – max | first answered request (median) | peak RSS | CPU per request ({} in a row) | AWS calls per request (the same requests) | release arm64 zip |\n|---|---|---|---|---|---|---|---|",
        r.functions.first().map_or(0, |f| f.requests)
    );
    for f in &r.functions {
        let min = f.exec_to_next.iter().min().copied().unwrap_or_default();
        let max = f.exec_to_next.iter().max().copied().unwrap_or_default();
        let zip = r.zips.get(&f.name).copied().flatten();
        let _ = writeln!(
            w,
            "| {} | {} | {} – {} | {} | {} | {} | {:.2} ({}) | {} |",
            f.name,
            ms(median(&f.exec_to_next)),
            ms(min),
            ms(max),
            ms(median(&f.first_answer)),
            mb(kib_bytes(f.peak_rss_kib)),
            us(f.cpu_per_request),
            per_request(&f.calls, f.requests),
            by_operation(&f.calls, f.requests),
            zip.map_or_else(|| "not built".to_owned(), mb)
        );
    }
    let _ = writeln!(
        w,
        "\nThe release x86_64 binaries run under `cxbridge-local`'s Lambda Runtime API host, \
         with the stack's environment, against moto and the CXone simulator on this machine. \
         Before each of the {} cold starts the host stops every instance of the function, \
         then one real request starts a new process: a signed webhook, a Cognigy intent \
         result, an `order-update` signal, a signed Studio callback for that execution, and \
         an SQS batch with its `reconcile` job. Init reads the secret while it opens the \
         DynamoDB and SQS connections, so it waits for moto's answers; intent-router, \
         signal-dispatcher and retry-drainer also load the shared CXone token from the table \
         (fetching one from the simulator if there is none). The AWS clients trust Amazon \
         Trust Services' five roots rather than loading the system's certificate store; the \
         CXone client loads the system store on a blocking thread meanwhile. After the last cold \
         start the one process takes the requests in a row whose CPU is shown; \
         webhook-receiver then takes as many signed with the wrong secret, and peak RSS \
         (`VmHWM`) is read last. The AWS calls are those each function made over its \
         requests in a row, counted by the emulator by the function's SDK app id; calls to \
         CXone are not among them. The zips are `make package`'s \
         (`cargo lambda build --release --arm64`).\n",
        r.cold_starts
    );

    // End to end.
    let _ = writeln!(w, "## End to end\n");
    let _ = writeln!(
        w,
        "| rate | duration | sent | accepted (202) | errors | p50 | p99 | max | events enqueued | AWS calls per accepted |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for l in &r.loads {
        let total: u64 = l.calls.values().sum();
        let errors = if l.errors.is_empty() {
            "0".to_owned()
        } else {
            let detail: Vec<String> = l.errors.iter().map(|(k, v)| format!("{v} {k}")).collect();
            format!("{} ({})", l.error_count(), detail.join(", "))
        };
        let _ = writeln!(
            w,
            "| {}/s | {} s | {} | {} | {} | {} | {} | {} | {} | {:.2} |",
            l.rate,
            l.duration.as_secs(),
            l.sent,
            l.accepted,
            errors,
            ms(l.percentile(50.0)),
            ms(l.percentile(99.0)),
            ms(l.latencies.last().copied().unwrap_or_default()),
            l.enqueued,
            total as f64 / (l.accepted.max(1)) as f64
        );
    }
    targets_section(w, &r.targets);
    let d = &r.duplicates;
    let per = |calls: &BTreeMap<String, u64>| {
        let total: u64 = calls.values().sum();
        let detail: Vec<String> = calls
            .iter()
            .map(|(op, n)| format!("{} {:.2}", short(op), *n as f64 / d.count.max(1) as f64))
            .collect();
        format!(
            "{:.2} ({})",
            total as f64 / d.count.max(1) as f64,
            detail.join(", ")
        )
    };
    let _ = writeln!(
        w,
        "\nAWS calls per webhook, from {} deliveries each sent twice:\n\n| | calls per webhook (by operation) |\n|---|---|\n| accepted (first sending) | {} |\n| duplicate (the same request again) | {} |\n\nThe receiver's one call records the delivery with its outbox (ARCHITECTURE.md, Outbox); event-relay then sends it from the table's stream, with calls of its own that are not on the request path: {}.\n",
        d.count,
        per(&d.accepted),
        per(&d.duplicate),
        r.functions
            .iter()
            .find(|f| f.name == "event-relay")
            .map_or_else(
                || "not measured".to_owned(),
                |f| format!(
                    "{:.2} per batch of one record ({}), in the cold-start phase's {} batches",
                    per_request(&f.calls, f.requests),
                    by_operation(&f.calls, f.requests),
                    f.requests
                )
            )
    );
    let _ = writeln!(
        w,
        "The load is an open loop: a new signed chat webhook (a new delivery id each) leaves \
         on schedule whatever the answers, and each latency counts from its scheduled time, \
         through the local gateway and runtime host (up to 4 instances) to the answer. \
         The stack routes every accepted event to `events` alone (the deployed default). \
         \"Events enqueued\" is the growth of the events queue over the run (nothing consumes \
         it); every accepted webhook must have put exactly one event there. The emulator \
         counts the calls each function makes (by its SDK app id); pollers and other \
         functions are not counted. moto is a single Python process sharing the 2 cores with \
         the gateway, the functions and the load generator, so the latencies here are the \
         emulator's far more than cxbridge's: on AWS, DynamoDB and SQS answer in a few \
         milliseconds. Past the rate the emulator can serve, requests queue behind the four busy \
         instances; one still waiting for an instance after 20 s (twice the function's \
         timeout plus the init limit) is refused, and the gateway answers 500, as API Gateway \
         does for a throttled Lambda: no function saw it, nothing was recorded or enqueued, \
         and CXone sends it again. A request an instance has taken always gets that \
         instance's answer."
    );
    out
}

/// The cost of a million webhooks on AWS, by service, from this run's figures.
fn cost_section(w: &mut String, r: &Report, ours: &cost::PerWebhook, peer: &cost::PerWebhook) {
    let (a, b) = (ours.per_million(), peer.per_million());
    let _ = writeln!(
        w,
        "## Cost per million webhooks\n\nOn AWS in us-east-1 at the on-demand prices of {} (the sources are in `bench/src/cost.rs`), from what this run measured; the peer is the durable Node.js peer, deployed the same way (a Lambda function behind an HTTP API, with the same memory).\n\n| service | cxbridge | peer | what counts |\n|---|---:|---:|---|",
        cost::PRICES_READ_ON
    );
    let why = [
        "one request per webhook",
        "cxbridge: the receiver's invocation and event-relay's per webhook at the rate below; the peer: one",
        "each function's measured time per request × its `MemorySize` in the template",
        "cxbridge: one transaction of the delivery record and the replay entry (two units per KB of each item, rounded up), and event-relay's strongly consistent read of its progress per invocation; the peer: one unit per write (its items are under 1 KB)",
        "cxbridge: event-relay's `SendMessageBatch` per webhook; the peer: its send per webhook",
        "the functions' own log lines per request, and about 300 bytes of Lambda's START, END and REPORT lines per invocation",
    ];
    for (service, why) in cost::SERVICES.iter().zip(why) {
        let _ = writeln!(
            w,
            "| {service} | ${:.3} | ${:.3} | {why} |",
            a.of(service),
            b.of(service)
        );
    }
    let _ = writeln!(
        w,
        "| **total** | **${:.2}** | **${:.2}** | cxbridge costs {:.2}× the peer's |\n",
        a.total(),
        b.total(),
        a.total() / b.total().max(1e-9)
    );
    let rx = r.functions.iter().find(|f| f.name == "webhook-receiver");
    let relay = r.functions.iter().find(|f| f.name == "event-relay");
    let load = cost_load(r);
    let _ = writeln!(
        w,
        "Per webhook: cxbridge {:.2} Lambda requests, {:.4} GB-s, {:.1} write and {:.2} read units, {:.2} SQS requests, {:.0} log bytes; the peer {:.2}, {:.4} GB-s, {:.1} write units, {:.2} SQS requests, {:.0} log bytes. The delivery record is {} bytes and the replay entry {} (the first delivery of the duplicates run). webhook-receiver took {} per request and event-relay {} per batch of one record, the durable peer {} (1000 in a row each, through the local gateway to moto: on AWS, DynamoDB and SQS answer faster, so both durations are high, the peer's calls more than cxbridge's one). event-relay's invocations and sends per webhook are its calls during the {}/s run, where the stream hands it several records a batch.\n",
        ours.lambda_requests,
        ours.gb_seconds,
        ours.write_units,
        ours.read_units,
        ours.sqs_requests,
        ours.log_bytes,
        peer.lambda_requests,
        peer.gb_seconds,
        peer.write_units,
        peer.sqs_requests,
        peer.log_bytes,
        r.duplicates.record_bytes,
        r.duplicates.replay_bytes,
        rx.map_or_else(|| "-".to_owned(), |f| ms(f.wall_per_request)),
        relay.map_or_else(|| "-".to_owned(), |f| ms(f.wall_per_request)),
        ms(r.durable_peer.wall_per_request),
        load.map_or(0, |l| l.rate)
    );
    floor_paragraph(w, ours, peer);
}

/// What any receiver deployed this way pays before it does anything, against a third of the
/// peer's cost: when the first is higher, no design meets that target as stated.
fn floor_paragraph(w: &mut String, ours: &cost::PerWebhook, peer: &cost::PerWebhook) {
    let (a, b) = (ours.per_million(), peer.per_million());
    let (floor, one_write) = cost::floor_per_million();
    let third = b.total() / 3.0;
    let verdict = if floor + one_write > third {
        "so no receiver deployed this way that stores what it accepts reaches a third of the peer's cost"
    } else {
        "so a third of the peer's cost is within reach of a receiver deployed this way"
    };
    let (ours_bare, peer_bare) = (
        a.total() - a.of(cost::SERVICES[0]),
        b.total() - b.of(cost::SERVICES[0]),
    );
    let _ = writeln!(
        w,
        "A third of the peer's cost is ${third:.2} per million. One HTTP API request and one Lambda invocation per webhook cost ${floor:.2} on either side, and storing the webhook durably before answering at least one write unit, ${one_write:.2}: ${:.2} in all, {verdict}. cxbridge's one write is a transaction of the replay entry and the delivery record, {:.1} units (${:.2}), where the peer's separate writes take {:.1} (${:.2}): the price of both being written, or neither. Without the API Gateway line (behind Lambda function URLs, which are free), cxbridge would cost ${ours_bare:.2} and the peer ${peer_bare:.2} ({:.2}×).\n",
        floor + one_write,
        ours.write_units,
        ours.write_units * one_write,
        peer.write_units,
        peer.write_units * one_write,
        ours_bare / peer_bare.max(1e-9),
    );
}

/// The acknowledgement without and with the local named targets, and what they received.
fn targets_section(w: &mut String, t: &TargetsRun) {
    let _ = writeln!(
        w,
        "\nWith the named targets, at {}/s for {} s each:\n\n| routes | the drainer | sent | accepted (202) | p50 | p99 | max | on `events` | AWS calls per accepted |\n|---|---|---|---|---|---|---|---|---|",
        t.held.rate,
        t.held.duration.as_secs()
    );
    for (routes, drainer, l) in [
        ("`events` alone", "–", &t.events_only),
        ("`events`, `audit` and the bus", "mapping disabled", &t.held),
        ("`events`, `audit` and the bus", "delivering", &t.delivering),
    ] {
        let _ = writeln!(
            w,
            "| {routes} | {drainer} | {} | {} | {} | {} | {} | {} | {:.2} ({}) |",
            l.sent,
            l.accepted,
            ms(l.percentile(50.0)),
            ms(l.percentile(99.0)),
            ms(l.latencies.last().copied().unwrap_or_default()),
            l.enqueued,
            per_request(&l.calls, l.accepted),
            by_operation(&l.calls, l.accepted),
        );
    }
    let ab = &t.interleaved;
    let _ = writeln!(
        w,
        "| `events` alone, interleaved | mapping disabled | {} | {} | {} | {} | {} | – | – |\n\
         | `events`, `audit` and the bus, interleaved | mapping disabled | {} | {} | {} | {} | {} | – | – |",
        ab.run.sent.div_ceil(2),
        ab.events_only.len(),
        ms(percentile(&ab.events_only, 50.0)),
        ms(percentile(&ab.events_only, 99.0)),
        ms(ab.events_only.last().copied().unwrap_or_default()),
        ab.run.sent / 2,
        ab.with_targets.len(),
        ms(percentile(&ab.with_targets, 50.0)),
        ms(percentile(&ab.with_targets, 99.0)),
        ms(ab.with_targets.last().copied().unwrap_or_default()),
    );
    let f = &t.fanout;
    let _ = writeln!(
        w,
        "\nThe first row is measured on the stack above, before its other rates. The others run \
         on a new stack with the local default configuration, where every accepted event also \
         becomes one delivery job for the HTTPS target `audit` (the simulator's sink) and one \
         for the EventBridge bus, whose rule forwards to `bus-events`. The webhook's answer \
         waits only for the two queues, sent at once, never for a target. In the second row \
         the drainer's event source mapping is disabled for the run, so the emulator serves \
         the webhook route alone, as in the first: the difference is what the targets add to \
         the request path, one more `SendMessageBatch` (of the two delivery jobs), sent at once \
         with the events queue's. The emulator, one Python process, does not serve the two side \
         by side as AWS does: from the bench to the idle emulator, the events queue's batch \
         alone takes {} and the two sent at once {} (medians of 200, each call over a new \
         connection as the functions' are), so the second batch costs {} here. In the third the drainer delivers meanwhile, through the same \
         single-process emulator, so its calls queue with the webhooks' (on AWS they do not \
         share a server). Once every delivery job had run ({:.1} s after the last answer), \
         the targets held, for the {} webhooks accepted in the two runs: {} distinct \
         deliveries answered 2xx at the sink ({} repeated) and {} events on `bus-events`. \
         The last two rows are one run of {} s at {}/s on the same stack, the drainer's mapping \
         disabled, whose requests alternate between a route to `events` alone and the route to \
         `events`, `audit` and the bus: the two acknowledgements meet the same emulator at the \
         same time, so their p50s differ by what the targets add and not by the run or the \
         stack. That difference is the one the target compares with the second batch's cost, \
         measured just before the run.\n",
        ms(t.sends.alone),
        ms(t.sends.paired),
        ms(t.sends.added()),
        f.settled_after.as_secs_f64(),
        t.held.accepted + t.delivering.accepted,
        f.audit,
        f.audit_repeats,
        f.bus,
        ab.run.duration.as_secs(),
        ab.run.rate,
    );
}

fn per_request(calls: &BTreeMap<String, u64>, requests: usize) -> f64 {
    calls.values().sum::<u64>() as f64 / requests.max(1) as f64
}

fn by_operation(calls: &BTreeMap<String, u64>, requests: usize) -> String {
    let parts: Vec<String> = calls
        .iter()
        .map(|(op, n)| format!("{} {:.2}", short(op), *n as f64 / requests.max(1) as f64))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Both variants of the Node.js peer side by side.
fn peers(w: &mut String, r: &Report) {
    let (p, dp) = (&r.peer, &r.durable_peer);
    let requests = r.functions.first().map_or(0, |f| f.requests);
    let _ = writeln!(w, "## The Node.js peer\n");
    let _ = writeln!(
        w,
        "| | in memory (the guides' receiver) | with DynamoDB and SQS |\n|---|---|---|"
    );
    let rows: [(&str, String, String); 6] = [
        (
            "exec to listening (median)",
            ms(median(&p.exec_to_ready)),
            ms(median(&dp.exec_to_ready)),
        ),
        (
            "exec to its first 202 (median)",
            ms(median(&p.first_answer)),
            ms(median(&dp.first_answer)),
        ),
        (
            "CPU per accepted webhook",
            us(p.cpu_per_request),
            us(dp.cpu_per_request),
        ),
        (
            "CPU per webhook refused for its signature",
            us(p.rejected_cpu_per_request),
            us(dp.rejected_cpu_per_request),
        ),
        (
            "AWS calls per accepted webhook",
            "none".to_owned(),
            format!(
                "{:.2} ({})",
                per_request(&dp.calls, requests),
                by_operation(&dp.calls, requests)
            ),
        ),
        (
            "peak RSS",
            mb(kib_bytes(p.peak_rss_kib)),
            mb(kib_bytes(dp.peak_rss_kib)),
        ),
    ];
    for (label, a, b) in rows {
        let _ = writeln!(w, "| {label} | {a} | {b} |");
    }
    let _ = writeln!(
        w,
        "\n`bench/peer-node/server.js`, Express 4 on Node.js, started {} times per variant. \
         After its last start it takes {requests} signed webhooks in a row, then {requests} \
         signed with the wrong secret; CPU is the process's user + system time over each \
         series. The in-memory variant is the receiver the integration guides describe: HMAC \
         check, a `Map` of delivery ids, JSONPath normalisation. With `PEER_STORE=aws` it \
         writes what cxbridge's webhook-receiver writes, to the same moto: a conditional \
         `PutItem` against signature replays, a conditional `UpdateItem` claiming the delivery, \
         `SendMessageBatch` of the event and a `PutItem` completing the delivery (its SQS \
         client also checks the MD5 of each message it sent, as it does by default). The \
         durable variant runs while the cold-start stack is up, for its moto; the in-memory \
         one after that stack has stopped.\n",
        r.cold_starts
    );
}

/// `DynamoDB_20120810.PutItem` → `PutItem`.
fn short(op: &str) -> &str {
    op.rsplit_once('.').map_or(op, |(_, name)| name)
}
