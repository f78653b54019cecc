//! `make demo`: kube-rtsync end to end on a local EC2 emulator.
//!
//! Starts the emulator, seeds a sample kubenet VPC (a cluster table with
//! node routes, three out-of-sync private tables, a public table, a table in
//! another VPC), prints the tables, runs the compiled `kube-rtsync` binary
//! once through the Lambda Runtime API with `events/sns-launch.json`, prints
//! its report, its logs and the tables after. Then the egress job: a
//! zone's NAT stops and its tables fail over; and the targets job: two
//! empty target groups are filled with the running nodes; and the eip
//! job: two nodes get an address, a DNS name and a lease item. After each
//! job, the change events it published, as an operator's rule on the
//! default bus delivers them to an SQS queue. Then it stops everything.
//!
//! Usage: demo <path to the kube-rtsync binary>

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use support::emulator::Emulator;
use support::runtime_api::{Answer, RuntimeApi};
use support::seed::{self, CLUSTER, ClusterTag, RouteRow};

use std::io::IsTerminal;

/// (bold, green, red, dim, reset): ANSI codes on a terminal, nothing elsewhere.
fn styles() -> (&'static str, &'static str, &'static str, &'static str, &'static str) {
    if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[32m", "\x1b[31m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "", "", "")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (bold, green, red, dim, reset) = styles();
    let binary: PathBuf =
        std::env::args_os().nth(1).map(Into::into).unwrap_or_else(|| "target/debug/kube-rtsync".into());
    assert!(binary.exists(), "{} does not exist: build it first (make demo does)", binary.display());

    println!("{bold}Starting the local EC2 emulator and seeding a sample VPC...{reset}");
    let emulator = Emulator::start();
    let client = emulator.client();
    // An operator's rule: every kube-rtsync change event to a queue, read after
    // each job.
    let changes = support::events::EventsQueue::create(&emulator, "kube-rtsync-changes").await;
    let vpc = seed::seed(&client, ClusterTag::Legacy).await;
    let names = vpc.names();
    let vpcs = [vpc.vpc_id.as_str(), vpc.other_vpc_id.as_str()];
    let before = seed::snapshot(&client, &vpcs).await;
    println!("VPC {} (cluster {CLUSTER}), other VPC {}\n", vpc.vpc_id, vpc.other_vpc_id);
    println!("{bold}Route tables before:{reset}");
    print_tables(&names, &before, None);

    // The sample launch event, naming a seeded node (whose route the
    // cluster's table already has, so there is nothing to wait for).
    let event = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/events/sns-launch.json"))
        .expect("events/sns-launch.json")
        .replace(support::SAMPLE_INSTANCE, &vpc.nodes[0].instance_id);
    println!("{bold}What an operator sees first: kube-rtsync plan (changes nothing){reset}");
    println!("{dim}  $ VPC_ID={} KUBE_CLUSTER_NAME={CLUSTER} kube-rtsync plan{reset}", vpc.vpc_id);
    let plan = std::process::Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(emulator.env())
        .env("VPC_ID", &vpc.vpc_id)
        .env("KUBE_CLUSTER_NAME", CLUSTER)
        .arg("plan")
        .output()
        .expect("run kube-rtsync plan");
    for line in String::from_utf8_lossy(&plan.stdout).lines().chain(String::from_utf8_lossy(&plan.stderr).lines()) {
        println!("  {line}");
    }
    println!();

    let api = RuntimeApi::start(vec![event]);
    let log_path = std::env::temp_dir().join(format!("kube-rtsync-demo-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).expect("a log file");
    let mut env = emulator.env();
    env.push(("VPC_ID", vpc.vpc_id.clone()));
    env.push(("KUBE_CLUSTER_NAME", CLUSTER.to_owned()));
    env.push(("RUST_LOG", "info".to_owned()));
    println!("{bold}Invoking kube-rtsync through the Lambda Runtime API with events/sns-launch.json...{reset}");
    println!(
        "{dim}  VPC_ID={} KUBE_CLUSTER_NAME={CLUSTER} (defaults: KUBE_ROUTE_CIDRS=100.96.0.0/11, PRIVATE_RT_FILTERS=tag:Name=private_*){reset}\n",
        vpc.vpc_id
    );
    let lambda = support::LambdaProcess::spawn(&binary, &api.address, &env, log.into());
    let (request_id, answer) = api.answer(Duration::from_secs(120));
    drop(lambda);

    println!("{bold}Function logs:{reset}");
    for line in std::fs::read_to_string(&log_path).unwrap_or_default().lines() {
        println!("  {dim}{line}{reset}");
    }
    let _ = std::fs::remove_file(&log_path);
    println!();
    let ok = match &answer {
        Answer::Response(report) => {
            println!("{bold}Report (request {request_id}):{reset}");
            println!("{}\n", serde_json::to_string_pretty(report).unwrap());
            true
        }
        other => {
            println!("{red}The function failed: {other:?}{reset}\n");
            false
        }
    };

    let after = seed::snapshot(&client, &vpcs).await;
    println!("{bold}Route tables after ({green}+ added{reset}{bold}, {red}- removed{reset}{bold}):{reset}");
    print_tables(&names, &after, Some(&before));
    let ok = ok & print_changes(&changes, "routes");

    let ok = ok
        && egress(&binary, &emulator).await
        && print_changes(&changes, "egress")
        && targets(&binary, &emulator).await
        && print_changes(&changes, "targets")
        && eip(&binary, &emulator).await
        && print_changes(&changes, "eip");
    drop(emulator);
    println!("Emulator stopped.");
    if !ok {
        std::process::exit(1);
    }
}

/// The change events delivered since the last call, one line each; false
/// when the job published none.
fn print_changes(queue: &support::events::EventsQueue, job: &str) -> bool {
    let (bold, _, red, dim, reset) = styles();
    let events = queue.receive();
    println!("{bold}Change events the {job} job published (a rule on the default bus -> an SQS queue):{reset}");
    for event in &events {
        let d = &event["detail"];
        println!(
            "  {} {}: {}",
            event["detail-type"].as_str().unwrap_or("-"),
            d["resource"].as_str().unwrap_or("-"),
            d["change"].as_str().unwrap_or("-")
        );
        println!("    {dim}from {} to {}; {}{reset}", d["from"], d["to"], d["reason"].as_str().unwrap_or("-"));
    }
    if events.is_empty() {
        println!("  {red}none{reset}");
    }
    println!();
    !events.is_empty()
}

/// Runs the command line against the emulator; prints what it printed.
fn run_cli(binary: &std::path::Path, emulator: &Emulator, env: &[(&str, &str)], args: &[&str]) -> bool {
    let (_, _, _, dim, reset) = styles();
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{dim}  $ {} kube-rtsync {}{reset}", shown.join(" "), args.join(" "));
    let out = std::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(emulator.env())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run kube-rtsync");
    for line in String::from_utf8_lossy(&out.stdout).lines().chain(String::from_utf8_lossy(&out.stderr).lines()) {
        println!("  {line}");
    }
    println!();
    out.status.success()
}

/// The egress job: two zones' tables on their zone's NAT instance; zone
/// a's NAT stops, and its tables move to zone b's.
async fn egress(binary: &std::path::Path, emulator: &Emulator) -> bool {
    let (bold, green, _, _, reset) = styles();
    let client = emulator.client();
    println!("{bold}The egress job: each private table's default route on a healthy NAT{reset}");
    let vpc = seed::egress_vpc(&client, 6, &[("us-east-1a", 2), ("us-east-1b", 1)]).await;
    let ids: Vec<String> = vpc.tables.iter().map(|(_, id, _)| id.clone()).collect();
    let env = [("VPC_ID", vpc.vpc_id.as_str())];
    // A first sync turns the NATs' source/destination check off (a NAT cannot
    // forward with it on).
    let mut ok = run_cli(binary, emulator, &env, &["egress", "sync"]);
    let before = seed::default_routes(&client, &ids).await;
    println!("{bold}Zone us-east-1a's NAT ({}) stops.{reset}", vpc.nats[0].1);
    client.stop_instances().instance_ids(&vpc.nats[0].1).send().await.expect("StopInstances");
    ok &= run_cli(binary, emulator, &env, &["egress", "sync"]);
    let after = seed::default_routes(&client, &ids).await;
    let nat_of = |eni: &str| {
        vpc.nats.iter().find(|(_, _, e)| e == eni).map(|(zone, i, _)| format!("{i} ({zone})")).unwrap_or("-".into())
    };
    println!("{bold}Default routes before -> after:{reset}");
    for (zone, id, name) in &vpc.tables {
        let (was, now) = (&before[id], &after[id]);
        let mark = if was == now { " " } else { "~" };
        println!("  {green}{mark}{reset} {id} {name} ({zone}): {} -> {}", nat_of(was), nat_of(now));
    }
    println!();
    ok
}

/// The targets job: two empty target groups; a sync registers every node.
async fn targets(binary: &std::path::Path, emulator: &Emulator) -> bool {
    let (bold, green, _, _, reset) = styles();
    let (client, elb) = (emulator.client(), emulator.elbv2_client());
    println!("{bold}The targets job: NLB target groups holding exactly the running nodes{reset}");
    let vpc = seed::targets_vpc(&client, &elb, 7, 3, &[30080, 30443]).await;
    // One node is stopped: it must not be registered.
    client.stop_instances().instance_ids(&vpc.nodes[2]).send().await.expect("StopInstances");
    let arns = vpc.arns.join(",");
    let env =
        [("VPC_ID", vpc.vpc_id.as_str()), ("TARGET_GROUP_ARNS", arns.as_str()), ("TARGET_NODE_TAGS", "role=node")];
    let mut before = Vec::new();
    for arn in &vpc.arns {
        before.push(seed::registered(&elb, arn).await);
    }
    let ok = run_cli(binary, emulator, &env, &["targets", "sync"]);
    println!("{bold}Registered targets before -> after (node {} is stopped):{reset}", vpc.nodes[2]);
    for (arn, was) in vpc.arns.iter().zip(before) {
        let now = seed::registered(&elb, arn).await;
        let name = arn.split('/').nth(1).unwrap_or(arn);
        println!("  {name}: [{}] -> {green}[{}]{reset}", was.join(", "), now.join(", "));
    }
    println!();
    ok
}

/// The eip job: two edge nodes, three pool addresses, a hosted zone and
/// the binding table; a sync binds both nodes.
async fn eip(binary: &std::path::Path, emulator: &Emulator) -> bool {
    let (bold, green, _, _, reset) = styles();
    let (client, route53, dynamodb) = (emulator.client(), emulator.route53_client(), emulator.dynamodb_client());
    println!("{bold}The eip job: an Elastic IP, a DNS name and a lease record per node{reset}");
    let vpc = seed::eip_vpc(&client, &route53, &dynamodb, 11, 2, 3).await;
    let show = |held: &BTreeMap<String, String>, records: &BTreeMap<String, String>, items: &[String]| {
        println!("  addresses held: {held:?}");
        println!("  A records: {records:?}");
        println!("  binding items:");
        for item in items {
            println!("    {item}");
        }
    };
    println!("{bold}Before:{reset}");
    show(
        &seed::held_addresses(&client).await,
        &seed::a_records(&route53, &vpc.zone_id).await,
        &seed::binding_items(&dynamodb).await,
    );
    println!();
    let env = [
        ("VPC_ID", vpc.vpc_id.as_str()),
        ("EIP_NODE_TAGS", "role=edge"),
        ("EIP_POOL_TAGS", "pool=edge"),
        ("DNS_ZONE_ID", vpc.zone_id.as_str()),
        ("DNS_SUFFIX", seed::EIP_SUFFIX),
        ("BINDING_TABLE", seed::EIP_TABLE),
    ];
    let ok = run_cli(binary, emulator, &env, &["eip", "sync"]);
    println!("{bold}After ({green}both nodes bound{reset}{bold}):{reset}");
    show(
        &seed::held_addresses(&client).await,
        &seed::a_records(&route53, &vpc.zone_id).await,
        &seed::binding_items(&dynamodb).await,
    );
    println!();
    ok
}

fn print_tables(
    names: &BTreeMap<String, String>,
    tables: &BTreeMap<String, std::collections::BTreeSet<RouteRow>>,
    before: Option<&BTreeMap<String, std::collections::BTreeSet<RouteRow>>>,
) {
    let (bold, green, red, dim, reset) = styles();
    let order = |id: &String| names.get(id).cloned().unwrap_or_else(|| format!("~{id}"));
    let mut ids: Vec<&String> = tables.keys().collect();
    ids.sort_by_key(|id| order(id));
    for id in ids {
        let name = names.get(id).map(String::as_str).unwrap_or("main table");
        println!("  {bold}{id}{reset}  {name}");
        let old = before.and_then(|b| b.get(id));
        let mut rows: Vec<(&RouteRow, &str)> =
            tables[id].iter().map(|r| (r, if old.is_some_and(|o| !o.contains(r)) { "+" } else { " " })).collect();
        if let Some(old) = old {
            rows.extend(old.iter().filter(|r| !tables[id].contains(r)).map(|r| (r, "-")));
        }
        rows.sort_by(|a, b| a.0.0.cmp(&b.0.0).then(b.1.cmp(a.1)));
        for (row, mark) in rows {
            let colour = match mark {
                "+" => green,
                "-" => red,
                _ => "",
            };
            println!("    {colour}{mark} {:<18} -> {:<24} {dim}{}{reset}", row.0, row.1, row.2);
        }
        println!();
    }
}
