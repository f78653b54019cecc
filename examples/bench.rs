//! `make bench`: kube-rtsync end to end against the EC2 emulator behind a
//! proxy that adds 40 ms to every call (a region's round trip), through the
//! Lambda Runtime API, with the release binary.
//!
//! Reports, per scenario: describes and writes per sync against the minimal
//! plan, wall time against the ideal of round trips, the init time, and the
//! peak RSS. Also runs the 25 x 45 resync with one write in flight (the
//! original tool's sequential algorithm) for comparison.
//!
//! Usage: bench <path to the kube-rtsync binary>

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use support::emulator::Emulator;
use support::proxy::{Behaviour, Proxy};
use support::runtime_api::{Answer, RuntimeApi};
use support::seed::{self, To};

/// The added round trip, 40 ms unless BENCH_RTT_MS says otherwise.
fn rtt() -> Duration {
    Duration::from_millis(std::env::var("BENCH_RTT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(40))
}
const CLUSTER: &str = "bench.example.com";

struct Vpc {
    id: String,
    source: String,
    targets: Vec<String>,
    nodes: Vec<String>,
}

async fn table(client: &Client, vpc: &str, name: &str, extra: Option<(&str, &str)>) -> String {
    let mut spec = TagSpecification::builder()
        .resource_type(ResourceType::RouteTable)
        .tags(Tag::builder().key("Name").value(name).build());
    if let Some((k, v)) = extra {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    let out = client.create_route_table().vpc_id(vpc).tag_specifications(spec.build()).send().await.unwrap();
    out.route_table().and_then(|t| t.route_table_id()).unwrap().to_owned()
}

/// A VPC with `tables` private tables and `routes` node routes in the
/// cluster's table; the first `mirrored` routes are already in every target.
async fn seed_vpc(client: &Client, tables: usize, routes: usize, mirrored: usize) -> Vpc {
    let vpc = client.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let subnet = client.create_subnet().vpc_id(&id).cidr_block("10.0.0.0/20").send().await.unwrap();
    let subnet = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned();
    let run = client
        .run_instances()
        .image_id("ami-0abcdef1234567890")
        .min_count(routes as i32)
        .max_count(routes as i32)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    let nodes: Vec<String> = run.instances().iter().map(|i| i.instance_id().unwrap().to_owned()).collect();
    let source = table(client, &id, "cluster", Some(("KubernetesCluster", CLUSTER))).await;
    for (n, node) in nodes.iter().enumerate() {
        seed::route(client, &source, &pod_cidr(n), To::Instance(node)).await;
    }
    let mut targets = Vec::new();
    for t in 0..tables {
        let target = table(client, &id, &format!("private_{t}"), None).await;
        for (n, node) in nodes.iter().enumerate().take(mirrored) {
            seed::route(client, &target, &pod_cidr(n), To::Instance(node)).await;
        }
        targets.push(target);
    }
    Vpc { id, source, targets, nodes }
}

fn pod_cidr(n: usize) -> String {
    format!("100.96.{n}.0/24")
}

struct Run {
    init: Duration,
    invocations: Vec<(Duration, serde_json::Value)>,
    peak_rss_kib: Option<u64>,
    describes: usize,
    writes: usize,
}

/// Runs the binary once per event, through the Runtime API stand-in, with
/// EC2 behind the latency proxy.
fn run(binary: &Path, emulator: &Emulator, vpc: &Vpc, events: Vec<String>, extra: &[(&str, &str)]) -> Run {
    run_at(rtt(), binary, emulator, vpc, events, extra)
}

fn run_at(
    latency: Duration,
    binary: &Path,
    emulator: &Emulator,
    vpc: &Vpc,
    events: Vec<String>,
    extra: &[(&str, &str)],
) -> Run {
    let proxy = Proxy::start(&emulator.endpoint(), Behaviour { latency, ..Behaviour::default() });
    let count = events.len();
    let api = RuntimeApi::start(events);
    let mut env = emulator.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    env.push(("VPC_ID", vpc.id.clone()));
    env.push(("KUBE_CLUSTER_NAME", CLUSTER.to_owned()));
    env.push(("ROUTE_WAIT_SECONDS", "0".to_owned()));
    env.push(("RUST_LOG", "warn".to_owned()));
    for (k, v) in extra {
        env.push((k, v.to_string()));
    }
    let spawned = Instant::now();
    let lambda = support::LambdaProcess::spawn(binary, &api.address, &env, std::process::Stdio::null());
    let mut invocations = Vec::new();
    for _ in 0..count {
        let (id, answer) = api.answer(Duration::from_secs(600));
        let report = match answer {
            Answer::Response(report) => report,
            other => panic!("the function failed: {other:?}"),
        };
        invocations.push((api.duration(&id).unwrap(), report));
    }
    let init = api.first_poll().unwrap().duration_since(spawned);
    let peak_rss_kib = lambda.peak_rss_kib();
    drop(lambda);
    let (writes, _, describes) = proxy.counts();
    Run { init, invocations, peak_rss_kib, describes, writes }
}

fn launch_event(instance: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/sns-launch.json"))
        .unwrap()
        .replace(support::SAMPLE_INSTANCE, instance)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let binary: PathBuf =
        std::env::args_os().nth(1).map(Into::into).unwrap_or_else(|| "target/release/kube-rtsync".into());
    assert!(binary.exists(), "{} does not exist: build it first (make bench does)", binary.display());
    println!(
        "kube-rtsync end-to-end benchmark: {} against the EC2 emulator + {} per call",
        binary.display(),
        ms(rtt())
    );
    println!("machine: {} cores, {}", num_cores(), cpu_model());
    println!();

    // 1. One node joins a VPC with 12 private tables (10 nodes mirrored
    // already), the same event comes again, then a second node joins: the
    // first and third invocations do the same work, cold and warm.
    let emulator = Emulator::start();
    let client = emulator.client();
    let vpc = seed_vpc(&client, 12, 12, 10).await;
    let (joiner, next) = (vpc.nodes[10].clone(), vpc.nodes[11].clone());
    let events = vec![launch_event(&joiner), launch_event(&joiner), launch_event(&next)];
    let r = run(&binary, &emulator, &vpc, events, &[]);
    let (join, first) = &r.invocations[0];
    let (dup, second) = &r.invocations[1];
    let (warm, third) = &r.invocations[2];
    let ideal = 2 * rtt();
    println!("1. One node joins, 12 private tables (writes to make: 12)");
    println!(
        "   first invocation (cold): {} = {:.2} x the ideal of two round trips ({}); created {}",
        ms(*join),
        join.as_secs_f64() / ideal.as_secs_f64(),
        ms(ideal),
        first["totals"]["created"]
    );
    println!(
        "   duplicate event:         {} = {:.2} x one round trip; created {}",
        ms(*dup),
        dup.as_secs_f64() / rtt().as_secs_f64(),
        second["totals"]["created"]
    );
    println!(
        "   next node joins (warm):  {} = {:.2} x the ideal; created {}",
        ms(*warm),
        warm.as_secs_f64() / ideal.as_secs_f64(),
        third["totals"]["created"]
    );
    println!(
        "   EC2 calls over the three: {} describes (2 per sync), {} writes (minimal plan: 12 + 0 + 12)",
        r.describes, r.writes
    );
    println!("   init (process start -> first poll of the Runtime API): {}", ms(r.init));
    if let Some(kib) = r.peak_rss_kib {
        println!("   peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    drop(emulator);
    // The same join with nothing added: what is left is the emulator's own
    // service time (it answers one request at a time) and kube-rtsync's.
    let emulator = Emulator::start();
    let vpc = seed_vpc(&emulator.client(), 12, 12, 10).await;
    let r0 = run_at(Duration::ZERO, &binary, &emulator, &vpc, vec![launch_event(&vpc.nodes[10])], &[]);
    let (join0, _) = &r0.invocations[0];
    println!(
        "   the same cold join with 0 ms added: {}; the round trips' share ({} - {}) = {:.2} x the ideal",
        ms(*join0),
        ms(*join),
        ms(*join0),
        join.saturating_sub(*join0).as_secs_f64() / ideal.as_secs_f64()
    );
    drop(emulator);

    // 2. A full resync: 25 private tables, 45 node routes each, nothing mirrored.
    let mut times = Vec::new();
    for (label, extra) in [
        ("kube-rtsync (16 writes in flight)", &[("MAX_WRITES_PER_SECOND", "0")][..]),
        ("sequential (1 write in flight)", &[("MAX_WRITES_PER_SECOND", "0"), ("APPLY_CONCURRENCY", "1")][..]),
    ] {
        let emulator = Emulator::start();
        let client = emulator.client();
        let vpc = seed_vpc(&client, 25, 45, 0).await;
        let r = run(&binary, &emulator, &vpc, vec![launch_event(&vpc.nodes[0])], extra);
        let (took, report) = &r.invocations[0];
        println!();
        println!("2. Full resync, 25 tables x 45 routes (writes to make: 1125), limiter off: {label}");
        println!(
            "   {}: created {}, {} describes, {} writes; peak RSS {:.1} MiB",
            ms(*took),
            report["totals"]["created"],
            r.describes,
            r.writes,
            r.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
        );
        assert_eq!(vpc.targets.len(), 25);
        let _ = &vpc.source;
        times.push(*took);
    }
    println!();
    println!(
        "   kube-rtsync takes {:.3} x the sequential time ({} vs {})",
        times[0].as_secs_f64() / times[1].as_secs_f64(),
        ms(times[0]),
        ms(times[1])
    );
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
