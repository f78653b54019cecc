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

#[path = "../tests/it/support/mod.rs"]
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
/// Runs of the join scenario; its figures are medians.
const JOIN_RUNS: usize = 5;

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

/// A VPC with `tables` private tables and `nodes` instances, the first
/// `routed` of which have a route in the cluster's table; the first
/// `mirrored` routes are already in every target.
async fn seed_vpc(client: &Client, tables: usize, nodes: usize, routed: usize, mirrored: usize) -> Vpc {
    let vpc = client.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_owned();
    let subnet = client.create_subnet().vpc_id(&id).cidr_block("10.0.0.0/20").send().await.unwrap();
    let subnet = subnet.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned();
    let run = client
        .run_instances()
        .image_id("ami-0abcdef1234567890")
        .min_count(nodes as i32)
        .max_count(nodes as i32)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    let nodes: Vec<String> = run.instances().iter().map(|i| i.instance_id().unwrap().to_owned()).collect();
    let source = table(client, &id, "cluster", Some(("KubernetesCluster", CLUSTER))).await;
    for (n, node) in nodes.iter().enumerate().take(routed) {
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

/// What one run of the binary measured.
struct Run {
    init: Duration,
    /// The first invocation of the process (its connections opened cold).
    first_invocation: Option<Duration>,
    peak_rss_kib: Option<u64>,
    describes: usize,
    writes: usize,
    connections: usize,
}

/// The binary, serving events through the Runtime API stand-in, with EC2
/// behind the latency proxy.
struct Session {
    proxy: Proxy,
    api: RuntimeApi,
    lambda: support::LambdaProcess,
    spawned: Instant,
    first_invocation: std::cell::Cell<Option<Duration>>,
}

impl Session {
    fn start(latency: Duration, binary: &Path, emulator: &Emulator, vpc: &Vpc, extra: &[(&str, &str)]) -> Session {
        let proxy = Proxy::start(&emulator.endpoint(), Behaviour { latency, ..Behaviour::default() });
        let api = RuntimeApi::start(Vec::new());
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
        // Init is over when the function first asks for an event.
        while api.first_poll().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Session { proxy, api, lambda, spawned, first_invocation: std::cell::Cell::new(None) }
    }

    /// CPU time the process has used so far, all threads (Linux schedstat,
    /// in nanoseconds).
    fn cpu(&self) -> Duration {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.lambda.pid())).expect("the process's threads");
        let ns: u64 = tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(ns)
    }

    /// One invocation: how long the function took over it, and its report.
    fn invoke(&self, event: String) -> (Duration, serde_json::Value) {
        self.api.push(event);
        let (id, answer) = self.api.answer(Duration::from_secs(600));
        match answer {
            Answer::Response(report) => {
                let took = self.api.duration(&id).unwrap();
                if self.first_invocation.get().is_none() {
                    self.first_invocation.set(Some(took));
                }
                (took, report)
            }
            other => panic!("the function failed: {other:?}"),
        }
    }

    fn finish(self) -> Run {
        let init = self.api.first_poll().unwrap().duration_since(self.spawned);
        let peak_rss_kib = self.lambda.peak_rss_kib();
        drop(self.lambda);
        let (writes, _, describes) = self.proxy.counts();
        let first_invocation = self.first_invocation.get();
        Run { init, first_invocation, peak_rss_kib, describes, writes, connections: self.proxy.connections() }
    }
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
    init_per_job(&binary);

    // 1. One node joins a VPC with 12 private tables (10 nodes mirrored
    // already); the same event comes again; then the route controller
    // writes a twelfth node's route and, once the write limiter's bucket has
    // refilled (as when nodes join seconds apart), that node's event comes:
    // the first and the third invocations do the same work, cold and warm.
    // Then the same cold join with nothing added: what is left is the
    // emulator's own service time (it answers one request at a time) and
    // kube-rtsync's. Medians of JOIN_RUNS fresh processes.
    let ideal = 2 * rtt();
    // BENCH_JOBS=1 runs only the scenarios of the other jobs (3 to 5),
    // BENCH_PACING=1 only the pacing comparison (6).
    if std::env::var_os("BENCH_JOBS").is_some() {
        return jobs(&binary, ideal).await;
    }
    if std::env::var_os("BENCH_PACING").is_some() {
        return pacing().await;
    }
    if std::env::var_os("BENCH_COLD").is_some() {
        return cold_start(&binary).await;
    }
    let mut runs = Vec::new();
    for _ in 0..JOIN_RUNS {
        let emulator = Emulator::start();
        let client = emulator.client();
        let vpc = seed_vpc(&client, 12, 12, 11, 10).await;
        let (joiner, next) = (&vpc.nodes[10], &vpc.nodes[11]);
        let session = Session::start(rtt(), &binary, &emulator, &vpc, &[]);
        let c0 = session.cpu();
        let (join, first) = session.invoke(launch_event(joiner));
        let c1 = session.cpu();
        let (dup, second) = session.invoke(launch_event(joiner));
        seed::route(&client, &vpc.source, &pod_cidr(11), To::Instance(next)).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let c2 = session.cpu();
        let (warm, third) = session.invoke(launch_event(next));
        let c3 = session.cpu();
        let cpu = [c0, c1.saturating_sub(c0), c3.saturating_sub(c2)];
        let r = session.finish();
        let created = [&first, &second, &third].map(|report| report["totals"]["created"].as_u64().unwrap());
        assert_eq!(created, [12, 0, 12], "each invocation makes the minimal plan");
        drop(emulator);

        let emulator = Emulator::start();
        let vpc = seed_vpc(&emulator.client(), 12, 11, 11, 10).await;
        let session = Session::start(Duration::ZERO, &binary, &emulator, &vpc, &[]);
        let (join0, baseline) = session.invoke(launch_event(&vpc.nodes[10]));
        session.finish();
        assert_eq!(baseline["totals"]["created"], 12, "the baseline makes the same writes");
        runs.push((join, dup, warm, join0, r, cpu));
    }
    type Figures = (Duration, Duration, Duration, Duration, Run, [Duration; 3]);
    let med = |f: fn(&Figures) -> Duration| {
        let mut v: Vec<Duration> = runs.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (join, dup, warm, join0) = (med(|r| r.0), med(|r| r.1), med(|r| r.2), med(|r| r.3));
    let init = med(|r| r.4.init);
    let cpu = [med(|r| r.5[0]), med(|r| r.5[1]), med(|r| r.5[2])].map(|d| d.as_secs_f64() * 1000.0);
    let r = &runs[0].4;
    println!("1. One node joins, 12 private tables (writes to make: 12); medians of {JOIN_RUNS} runs");
    println!(
        "   first invocation (cold): {} = {:.2} x the ideal of two round trips ({})",
        ms(join),
        join.as_secs_f64() / ideal.as_secs_f64(),
        ms(ideal),
    );
    println!(
        "   duplicate event:         {} = {:.2} x one round trip",
        ms(dup),
        dup.as_secs_f64() / rtt().as_secs_f64()
    );
    println!("   next node joins (warm):  {} = {:.2} x the ideal", ms(warm), warm.as_secs_f64() / ideal.as_secs_f64());
    println!(
        "   the same cold join with 0 ms added: {}; the round trips' share ({} - {}) = {:.2} x the ideal",
        ms(join0),
        ms(join),
        ms(join0),
        join.saturating_sub(join0).as_secs_f64() / ideal.as_secs_f64()
    );
    println!(
        "   kube-rtsync's own CPU time: init {:.1} ms, cold join {:.1} ms, warm join {:.1} ms; the rest is waiting",
        cpu[0], cpu[1], cpu[2]
    );
    println!(
        "   EC2 calls over the three: {} describes (2 per sync), {} writes (minimal plan: 12 + 0 + 12), over {} connections",
        r.describes, r.writes, r.connections
    );
    println!("   init (process start -> first poll of the Runtime API): {}", ms(init));
    if let Some(kib) = runs.iter().filter_map(|r| r.4.peak_rss_kib).max() {
        println!("   peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }

    // 2. A full resync: 25 private tables, 45 node routes each, nothing
    //    mirrored.
    let mut times = Vec::new();
    for (label, extra) in [
        ("kube-rtsync (16 writes in flight)", &[("MAX_WRITES_PER_SECOND", "0")][..]),
        ("sequential (1 write in flight)", &[("MAX_WRITES_PER_SECOND", "0"), ("APPLY_CONCURRENCY", "1")][..]),
    ] {
        let emulator = Emulator::start();
        let client = emulator.client();
        let vpc = seed_vpc(&client, 25, 45, 45, 0).await;
        let session = Session::start(rtt(), &binary, &emulator, &vpc, extra);
        let (took, report) = session.invoke(launch_event(&vpc.nodes[0]));
        let r = session.finish();
        println!();
        println!("2. Full resync, 25 tables x 45 routes (writes to make: 1125), limiter off: {label}");
        println!(
            "   {}: created {}, {} describes, {} writes over {} connections; peak RSS {:.1} MiB",
            ms(took),
            report["totals"]["created"],
            r.describes,
            r.writes,
            r.connections,
            r.peak_rss_kib.unwrap_or(0) as f64 / 1024.0
        );
        assert_eq!(vpc.targets.len(), 25);
        let _ = &vpc.source;
        times.push(took);
    }
    println!();
    println!(
        "   kube-rtsync takes {:.3} x the sequential time ({} vs {})",
        times[0].as_secs_f64() / times[1].as_secs_f64(),
        ms(times[0]),
        ms(times[1])
    );

    jobs(&binary, ideal).await;
    pacing().await;
    cold_start(&binary).await;
}

/// Processes per variant of the cold-start scenario.
const COLD_RUNS: usize = 7;

/// A 128 MB function's share of a vCPU (128 / 1769 MB per vCPU): the CFS
/// quota of the cold-start scenario's cgroup, per 100 ms period.
const QUOTA_US_PER_100_MS: u64 = 7_236;

/// A cgroup (v1 `cpu` controller) whose processes get a 128 MB function's
/// CPU; removed when dropped. None where no such cgroup can be made
/// (cgroup v2 only, or not root).
struct CpuCap(PathBuf);

impl CpuCap {
    fn new() -> Option<CpuCap> {
        let dir = PathBuf::from(format!("/sys/fs/cgroup/cpu/kube-rtsync-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cap = CpuCap(dir);
        std::fs::write(cap.0.join("cpu.cfs_period_us"), "100000").ok()?;
        std::fs::write(cap.0.join("cpu.cfs_quota_us"), QUOTA_US_PER_100_MS.to_string()).ok()?;
        Some(cap)
    }

    /// Moves every thread of `pid` under the cap.
    fn take(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).expect("the process moves into the cgroup");
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        // Its processes are gone by now; a cgroup with none can be removed.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Scenario 8, cold starts at a 128 MB function's CPU: a fresh process per run,
/// its init at full speed (as Lambda gives it), then moved under the cap before
/// its first event, a steady-state reconcile (the first round trip and nothing
/// to write). The endpoint is TLS (the test CA, kept-alive connections) in
/// front of the emulator with the added latency per call: it notes when the
/// first request of the invocation reached it, decrypted; a relay in front of
/// it counts the connections opened. With the warm-up (`WARM_UP_MS`, default)
/// and without (`WARM_UP_MS=0`).
async fn cold_start(binary: &Path) {
    use support::relay::Relay;
    use support::tls_front::TlsFront;

    println!();
    let Some(cap) = CpuCap::new() else {
        println!("8. Cold starts at a 128 MB function's CPU: skipped (no writable cgroup v1 cpu controller here)");
        return;
    };
    println!(
        "8. Cold starts, steady-state reconcile, first invocation under a CFS quota of {QUOTA_US_PER_100_MS} us per 100 ms \
         (cgroup v1 cpu controller: 128 MB of 1769 MB per vCPU), init at full speed; TLS endpoint, {} per call; medians of {COLD_RUNS} processes",
        ms(rtt())
    );
    let emulator = Emulator::start();
    let client = emulator.client();
    let routes_vpc = seed_vpc(&client, 12, 12, 12, 12).await;
    let egress = seed::egress_vpc(&client, 4, &[("us-east-1a", 12), ("us-east-1b", 0)]).await;
    let proxy = Proxy::start(&emulator.endpoint(), Behaviour { latency: rtt(), ..Behaviour::default() });
    let front = TlsFront::start(&proxy.endpoint);
    let routes_env = vec![
        ("VPC_ID", routes_vpc.id.clone()),
        ("KUBE_CLUSTER_NAME", CLUSTER.to_owned()),
        ("ROUTE_WAIT_SECONDS", "0".to_owned()),
    ];
    let egress_env = vec![("VPC_ID", egress.vpc_id.clone()), ("_HANDLER", "egress".to_owned())];
    for (job, job_env) in [("routes", routes_env), ("egress", egress_env)] {
        for (label, warm_up) in [("with the warm-up", None), ("without (WARM_UP_MS=0)", Some("0"))] {
            let mut runs = Vec::new();
            // One uncapped run first, which also turns egress's
            // source/destination checks off, so that every measured run
            // finds nothing to write.
            for n in 0..=COLD_RUNS {
                let relay = Relay::start(&front.address);
                let port = relay.address.rsplit(':').next().unwrap().to_owned();
                let mut env = emulator.env();
                env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
                env.extend(job_env.iter().cloned());
                env.extend([
                    ("AWS_ENDPOINT_URL", format!("https://localhost:{port}")),
                    ("AWS_CA_BUNDLE", support::emulator::TEST_CA.to_owned()),
                    ("EVENT_BUS_NAME", "none".to_owned()),
                    ("RUST_LOG", "warn".to_owned()),
                ]);
                if let Some(value) = warm_up {
                    env.push(("WARM_UP_MS", value.to_owned()));
                }
                let api = RuntimeApi::start(Vec::new());
                let spawned = Instant::now();
                let lambda = support::LambdaProcess::spawn(binary, &api.address, &env, std::process::Stdio::null());
                while api.first_poll().is_none() {
                    std::thread::sleep(Duration::from_micros(200));
                }
                let init = api.first_poll().unwrap().duration_since(spawned);
                if n > 0 {
                    cap.take(lambda.pid());
                }
                api.push(scheduled_event());
                let (id, answer) = api.answer(Duration::from_secs(120));
                let Answer::Response(report) = answer else { panic!("{job}: the function failed: {answer:?}") };
                drop(lambda);
                if n == 0 {
                    continue;
                }
                assert_eq!(report["outcome"], "in_sync", "{job}: {report}");
                let served = api.served_at(&id).unwrap();
                let took = api.duration(&id).unwrap();
                let on_the_wire = front.first_request_after(served).expect("the invocation sent a request");
                let opened = relay.accepted().iter().filter(|t| **t >= served).count();
                runs.push((init, took, on_the_wire.duration_since(served), opened));
            }
            let median = |f: fn(&(Duration, Duration, Duration, usize)) -> Duration| {
                let mut v: Vec<Duration> = runs.iter().map(f).collect();
                v.sort();
                v[v.len() / 2]
            };
            let (init, took, wire) = (median(|r| r.0), median(|r| r.1), median(|r| r.2));
            let mut opened: Vec<usize> = runs.iter().map(|r| r.3).collect();
            opened.sort();
            println!(
                "   {job}, {label}: init {}, first invocation {}, of which {} ({:.0}%) before the first request was on the wire; connections opened during it: {}",
                ms_fine(init),
                ms_fine(took),
                ms_fine(wire),
                100.0 * wire.as_secs_f64() / took.as_secs_f64(),
                opened[opened.len() / 2]
            );
        }
    }
}

/// Scenario 6: how to slow down when EC2's bucket is shared. A resync of
/// about 130 route writes through a model of EC2's bucket (50, refilled at
/// 5/s, of which the cluster's route controller takes 1.5/s; up to 50 ms of
/// jitter per write), the client told 5/s with a burst of 50. Compared: the
/// project's pace that learns (halve on a throttle, win back a fiftieth per
/// write) with the SDK's standard retries, against the SDK's adaptive retry
/// mode (its own client-side rate limiter, which also learns from
/// throttles) with the project's limiter off, and both together. Invocations
/// follow each other at once, so the bucket has no time to refill between
/// them that a real Lambda retry would give it.
async fn pacing() {
    use aws_sdk_ec2::config::retry::RetryConfig;
    use kube_rtsync::aws::ec2::AwsEc2;
    use kube_rtsync::aws::error::ThrottleCounter;
    use kube_rtsync::jobs::routes::{Error, Reconciler, config::Config};
    use kube_rtsync::shared::job::handle_event;
    use kube_rtsync::shared::limiter::WriteLimiter;
    use support::proxy::WriteBucket;

    println!();
    println!("6. Pacing against a shared EC2 bucket (50, 5/s, 1.5/s taken by the route controller; ~130 writes)");
    let variants = [
        ("the project's pace that learns, SDK standard retries", false, "5"),
        ("SDK adaptive retry mode, the project's limiter off", true, "0"),
        ("SDK adaptive retry mode and the project's pace that learns", true, "5"),
    ];
    for (label, adaptive, pace) in variants {
        let emulator = Emulator::start();
        let client = emulator.client();
        let vpc = seed::seed(&client, seed::ClusterTag::Legacy).await;
        for n in 0..40 {
            let node = &vpc.nodes[n % vpc.nodes.len()].instance_id;
            seed::route(&client, &vpc.source, &format!("100.97.{n}.0/24"), To::Instance(node)).await;
        }
        let bucket =
            WriteBucket { capacity: 50.0, per_second: 5.0, others_per_second: 1.5, jitter: Duration::from_millis(50) };
        let proxy = Proxy::start(&emulator.endpoint(), Behaviour { bucket: Some(bucket), ..Behaviour::default() });
        let retries = if adaptive { RetryConfig::adaptive() } else { RetryConfig::standard() };
        let throttled = ThrottleCounter::default();
        let builder = support::emulator::client_config(&proxy.endpoint)
            .retry_config(retries.with_max_attempts(4).with_max_backoff(Duration::from_secs(4)))
            .interceptor(throttled.clone());
        let ec2 = AwsEc2::new(Client::from_conf(kube_rtsync::aws::sdk::ec2_rules(builder).build()));
        let vars = [
            ("VPC_ID", vpc.vpc_id.clone()),
            ("KUBE_CLUSTER_NAME", seed::CLUSTER.to_owned()),
            ("MAX_WRITES_PER_SECOND", pace.to_owned()),
            ("WRITE_BURST", "50".to_owned()),
            ("ROUTE_WAIT_SECONDS", "0".to_owned()),
        ];
        let config = Config::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())).unwrap();
        let limiter = WriteLimiter::new(config.write_rate).learning_from(throttled.clone());
        let reconciler = Reconciler { ec2: &ec2, config: &config, limiter: &limiter, deadline: None };
        let event: serde_json::Value = serde_json::from_str(&scheduled_event()).unwrap();
        let started = Instant::now();
        let mut invocations = 0;
        let converged = loop {
            invocations += 1;
            match handle_event(&reconciler, &event).await {
                Ok(_) => break true,
                Err(Error::Incomplete(_)) if invocations < 6 => continue,
                Err(_) => break false,
            }
        };
        let elapsed = started.elapsed();
        let (writes, refused, _) = proxy.counts();
        println!(
            "   {label}: {} writes made, {refused} refused ({:.1} per 120), {invocations} invocation(s){}, {:.1} s",
            writes - refused,
            refused as f64 * 120.0 / (writes - refused).max(1) as f64,
            if converged { "" } else { ", not converged" },
            elapsed.as_secs_f64()
        );
    }
}

/// Scenarios 3 and 4: the egress and targets jobs.
async fn jobs(binary: &Path, ideal: Duration) {
    let binary = binary.to_path_buf();
    let (failover, steady, calls) = egress_failover(&binary, rtt(), &[]).await;
    let (failover0, _, _) = egress_failover(&binary, Duration::ZERO, &[]).await;
    let quiet = [("EVENT_BUS_NAME", "none")];
    let (failover_quiet, _, calls_quiet) = egress_failover(&binary, rtt(), &quiet).await;
    let (failover_quiet0, _, _) = egress_failover(&binary, Duration::ZERO, &quiet).await;
    println!();
    println!("3. Egress: zone a's NAT stops, 12 tables fail over to zone b's (warm process)");
    print_share("with the change events", failover, failover0, ideal, "the ideal of two round trips");
    print_share(
        "without (EVENT_BUS_NAME=none)",
        failover_quiet,
        failover_quiet0,
        ideal,
        "the ideal of two round trips",
    );
    println!("   calls, failover: {calls}");
    println!("   calls, failover without the change events: {calls_quiet}");
    println!("   calls, steady-state reconcile: {steady}");

    let (fill, warm, calls, steady) = targets_fill(&binary, rtt(), &[]).await;
    let (fill0, warm0, _, _) = targets_fill(&binary, Duration::ZERO, &[]).await;
    let (_, warm_quiet, _, _) = targets_fill(&binary, rtt(), &quiet).await;
    let (_, warm_quiet0, _, _) = targets_fill(&binary, Duration::ZERO, &quiet).await;
    println!();
    println!("4. Targets: 4 groups x 50 new nodes (200 registrations)");
    print_share("warm process", warm, warm0, ideal, "the ideal of two round trips");
    print_share("cold process", fill, fill0, ideal, "the ideal of two round trips");
    print_share("warm, without the change events", warm_quiet, warm_quiet0, ideal, "the ideal of two round trips");
    println!("   calls: {calls}");
    println!("   calls, steady-state reconcile: {steady}");

    let four = 4 * rtt();
    println!();
    println!(
        "5. Eip: one new node is bound (claim, associate, then record and item at once) beside 50 bound nodes (warm process)"
    );
    for (label, extra) in
        [("with the change events", &[][..]), ("without (EVENT_BUS_NAME=none)", &[("EVENT_BUS_NAME", "none")][..])]
    {
        let (bind, calls, steady, round_trips) = eip_bind(&binary, rtt(), extra).await;
        let (bind0, _, _, _) = eip_bind(&binary, Duration::ZERO, extra).await;
        print_share(label, bind, bind0, four, "four round trips (observe, claim, associate, record and item)");
        println!(
            "   round trips one after the other (the longest chain of calls each sent after the last answered): {round_trips}"
        );
        println!("   calls: {calls}");
        println!("   calls, steady-state reconcile of 50 bound nodes: {steady}");
    }
    print_processes();
}

/// Processes started per job and trust-store variant for the init figures.
const INIT_RUNS: usize = 15;

/// Scenario 0, init per job without the warm-up: process start to the
/// first poll of the Runtime API, median of [`INIT_RUNS`] fresh processes,
/// with the system's roots (read from the platform's bundle file), and with
/// no system roots at all (`SSL_CERT_DIR` naming no directory): what the
/// trust store costs.
fn init_per_job(binary: &Path) {
    let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nodes/0123456789abcdef";
    let jobs: [(&str, Vec<(&str, &str)>); 4] = [
        ("routes", vec![("KUBE_CLUSTER_NAME", CLUSTER)]),
        ("egress", vec![("_HANDLER", "egress")]),
        ("targets", vec![("_HANDLER", "targets"), ("TARGET_GROUP_ARNS", arn), ("TARGET_NODE_TAGS", "role=node")]),
        ("eip", vec![("_HANDLER", "eip"), ("EIP_NODE_TAGS", "role=edge"), ("EIP_POOL_TAGS", "pool=edge")]),
    ];
    let none = "/nonexistent";
    println!(
        "0. Init without the warm-up (process start -> first poll of the Runtime API), median of {INIT_RUNS} processes"
    );
    for (job, extra) in jobs {
        let mut line = format!("   {job}:");
        for (label, trust) in [("system roots", None), ("no system roots (SSL_CERT_DIR=/nonexistent)", Some(none))] {
            let mut inits: Vec<Duration> = (0..INIT_RUNS)
                .map(|_| {
                    let api = RuntimeApi::start(Vec::new());
                    let mut env: Vec<(&str, String)> = vec![
                        ("VPC_ID", "vpc-0123456789abcdef0".into()),
                        ("AWS_REGION", "us-east-1".into()),
                        ("AWS_ACCESS_KEY_ID", "test".into()),
                        ("AWS_SECRET_ACCESS_KEY", "test".into()),
                        ("AWS_EC2_METADATA_DISABLED", "true".into()),
                        ("RUST_LOG", "warn".into()),
                        // Init without the warm-up (scenario 8 has it), and
                        // an endpoint on loopback all the same.
                        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()),
                        ("WARM_UP_MS", "0".into()),
                    ];
                    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
                    if let Some(dir) = trust {
                        env.push(("SSL_CERT_DIR", dir.to_owned()));
                    }
                    let spawned = Instant::now();
                    let lambda = support::LambdaProcess::spawn(binary, &api.address, &env, std::process::Stdio::null());
                    while api.first_poll().is_none() {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let init = api.first_poll().unwrap().duration_since(spawned);
                    drop(lambda);
                    init
                })
                .collect();
            inits.sort();
            line.push_str(&format!(" {label} {};", ms_fine(inits[INIT_RUNS / 2])));
        }
        println!("{}", line.trim_end_matches(';'));
    }
    println!();
}

/// The processes the job scenarios ran, by job: what `make bench` reports per
/// job.
static PROCESSES: std::sync::Mutex<Vec<Process>> = std::sync::Mutex::new(Vec::new());

/// A job's process: the job, its init, its first invocation, its peak RSS
/// (KiB).
type Process = (&'static str, Duration, Duration, Option<u64>);

/// Notes a job's process of a run with the added latency.
fn note_process(job: &'static str, latency: Duration, run: Run) {
    if let (false, Some(first)) = (latency.is_zero(), run.first_invocation) {
        PROCESSES.lock().unwrap().push((job, run.init, first, run.peak_rss_kib));
    }
}

/// Per job: the median init, the median first invocation (with the added
/// latency: all of a job's runs here) and the largest peak RSS.
fn print_processes() {
    let processes = PROCESSES.lock().unwrap();
    println!();
    println!("Per job process (release binary; init = process start -> first poll of the Runtime API):");
    for job in ["egress", "targets", "eip"] {
        let runs: Vec<_> = processes.iter().filter(|p| p.0 == job).collect();
        if runs.is_empty() {
            continue;
        }
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let init = median(runs.iter().map(|r| r.1).collect());
        let first = median(runs.iter().map(|r| r.2).collect());
        let rss = runs.iter().filter_map(|r| r.3).max().unwrap_or(0);
        println!(
            "   {job}: init {} (median of {}), first invocation {}, peak RSS {:.1} MiB",
            ms_fine(init),
            runs.len(),
            ms(first),
            rss as f64 / 1024.0
        );
    }
}

fn ms_fine(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One line: the time with the added latency, without it, and the
/// difference (the round trips' share) as a multiple of `unit`.
fn print_share(label: &str, with: Duration, without: Duration, unit: Duration, unit_name: &str) {
    println!(
        "   {label}: {} with {} per call, {} with none; the round trips' share = {:.2} x {unit_name} ({})",
        ms(with),
        ms(rtt()),
        ms(without),
        with.saturating_sub(without).as_secs_f64() / unit.as_secs_f64(),
        ms(unit)
    );
}

fn scheduled_event() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/eventbridge-scheduled.json")).unwrap()
}

/// Calls made between two readings of the proxy's counts, by action.
fn calls_since(
    before: &std::collections::BTreeMap<String, usize>,
    after: &std::collections::BTreeMap<String, usize>,
) -> String {
    let parts: Vec<String> = after
        .iter()
        .filter_map(|(action, n)| {
            let d = n - before.get(action).copied().unwrap_or(0);
            (d > 0).then(|| format!("{d} {action}"))
        })
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

/// Scenario 3, egress: 12 enrolled tables of zone a on zone a's NAT instance, a
/// second NAT in zone b. Zone a's NAT stops: all 12 tables fail over.
async fn egress_failover(binary: &Path, latency: Duration, extra: &[(&str, &str)]) -> (Duration, String, String) {
    let emulator = Emulator::start();
    let client = emulator.client();
    let egress = seed::egress_vpc(&client, 4, &[("us-east-1a", 12), ("us-east-1b", 0)]).await;
    let vpc = Vpc { id: egress.vpc_id.clone(), source: String::new(), targets: Vec::new(), nodes: Vec::new() };
    let env: Vec<(&str, &str)> = [("_HANDLER", "egress")].into_iter().chain(extra.iter().copied()).collect();
    let session = Session::start(latency, binary, &emulator, &vpc, &env);
    // The first run turns the NATs' source/destination check off.
    session.invoke(scheduled_event());
    let before = session.proxy.actions();
    let (_, steady) = session.invoke(scheduled_event());
    assert_eq!(steady["outcome"], "in_sync");
    let middle = session.proxy.actions();
    client.stop_instances().instance_ids(&egress.nats[0].1).send().await.unwrap();
    let (took, report) = session.invoke(scheduled_event());
    assert_eq!(report["totals"]["tables_failed_over"], 12, "{report}");
    let after = session.proxy.actions();
    note_process("egress", latency, session.finish());
    (took, calls_since(&before, &middle), calls_since(&middle, &after))
}

/// Scenario 4, targets: 4 instance target groups, 50 running nodes
/// registered in none of them: 200 registrations. Measured in a cold
/// process, and in a warm one (the 50 nodes start after a first reconcile
/// found them all stopped).
async fn targets_fill(
    binary: &Path,
    latency: Duration,
    extra: &[(&str, &str)],
) -> (Duration, Duration, String, String) {
    let emulator = Emulator::start();
    let client = emulator.client();
    let tv = seed::targets_vpc(&client, &emulator.elbv2_client(), 5, 50, &[30001, 30002, 30003, 30004]).await;
    let vpc = Vpc { id: tv.vpc_id.clone(), source: String::new(), targets: Vec::new(), nodes: Vec::new() };
    let arns = tv.arns.join(",");
    let env = [
        ("_HANDLER", "targets"),
        ("TARGET_GROUP_ARNS", arns.as_str()),
        ("TARGET_NODE_TAGS", "role=node"),
        ("KUBE_CLUSTER_NAME", ""),
    ];
    let env: Vec<(&str, &str)> = env.into_iter().chain(extra.iter().copied()).collect();
    let session = Session::start(latency, binary, &emulator, &vpc, &env);
    let (cold, report) = session.invoke(scheduled_event());
    assert_eq!(report["totals"]["registered"], 200, "{report}");
    let first = session.proxy.actions();
    let (_, steady) = session.invoke(scheduled_event());
    assert_eq!(steady["outcome"], "in_sync");
    let second = session.proxy.actions();
    note_process("targets", latency, session.finish());

    let emulator = Emulator::start();
    let client = emulator.client();
    let tv = seed::targets_vpc(&client, &emulator.elbv2_client(), 5, 50, &[30001, 30002, 30003, 30004]).await;
    let arns = tv.arns.join(",");
    let env = [
        ("_HANDLER", "targets"),
        ("TARGET_GROUP_ARNS", arns.as_str()),
        ("TARGET_NODE_TAGS", "role=node"),
        ("KUBE_CLUSTER_NAME", ""),
    ];
    let env: Vec<(&str, &str)> = env.into_iter().chain(extra.iter().copied()).collect();
    let vpc = Vpc { id: tv.vpc_id.clone(), source: String::new(), targets: Vec::new(), nodes: Vec::new() };
    client.stop_instances().set_instance_ids(Some(tv.nodes.clone())).send().await.unwrap();
    let session = Session::start(latency, binary, &emulator, &vpc, &env);
    let (_, none) = session.invoke(scheduled_event());
    assert_eq!(none["totals"]["registered"], 0, "{none}");
    client.start_instances().set_instance_ids(Some(tv.nodes.clone())).send().await.unwrap();
    let (warm, report) = session.invoke(scheduled_event());
    assert_eq!(report["totals"]["registered"], 200, "{report}");
    note_process("targets", latency, session.finish());
    (cold, warm, calls_since(&Default::default(), &first), calls_since(&first, &second))
}

/// Scenario 5, eip: 50 edge nodes bound (a steady-state reconcile), then
/// one more node launches and is bound, in a warm process.
async fn eip_bind(binary: &Path, latency: Duration, extra: &[(&str, &str)]) -> (Duration, String, String, usize) {
    let emulator = Emulator::start();
    let (client, route53, dynamodb) = (emulator.client(), emulator.route53_client(), emulator.dynamodb_client());
    let ev = seed::eip_vpc(&client, &route53, &dynamodb, 10, 50, 51).await;
    let vpc = Vpc { id: ev.vpc_id.clone(), source: String::new(), targets: Vec::new(), nodes: Vec::new() };
    let env = [
        ("_HANDLER", "eip"),
        ("EIP_NODE_TAGS", "role=edge"),
        ("EIP_POOL_TAGS", "pool=edge"),
        ("DNS_ZONE_ID", ev.zone_id.as_str()),
        ("DNS_SUFFIX", seed::EIP_SUFFIX),
        ("BINDING_TABLE", seed::EIP_TABLE),
        ("MAX_WRITES_PER_SECOND", "0"),
    ];
    let env: Vec<(&str, &str)> = env.into_iter().chain(extra.iter().copied()).collect();
    let session = Session::start(latency, binary, &emulator, &vpc, &env);
    let (_, first) = session.invoke(scheduled_event());
    assert_eq!(first["totals"]["bound"], 50, "{first}");
    let before = session.proxy.actions();
    let (_, steady) = session.invoke(scheduled_event());
    assert_eq!(steady["outcome"], "in_sync", "{steady}");
    let middle = session.proxy.actions();
    seed::edge_node(&client, &ev.subnet).await;
    let since = Instant::now();
    let (took, report) = session.invoke(scheduled_event());
    assert_eq!(report["totals"]["bound"], 1, "{report}");
    let after = session.proxy.actions();
    let round_trips = session.proxy.round_trips_since(since);
    note_process("eip", latency, session.finish());
    (took, calls_since(&middle, &after), calls_since(&before, &middle), round_trips)
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
