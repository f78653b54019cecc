//! Builders shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;

use kube_rtsync::aws::ec2::model::{Destination, Route, RouteOrigin, RouteState, RouteTable, Target};
use kube_rtsync::jobs::routes::config::Config;

pub const VPC: &str = "vpc-0a00000000000001";
pub const OTHER_VPC: &str = "vpc-0b00000000000002";
pub const CLUSTER: &str = "k8s.example.com";

pub const LAUNCH: &str = include_str!("../../../events/sns-launch.json");
pub const TERMINATE: &str = include_str!("../../../events/sns-terminate.json");
pub const TEST_NOTIFICATION: &str = include_str!("../../../events/sns-test-notification.json");
pub const RUNNING: &str = include_str!("../../../events/eventbridge-instance-running.json");
pub const TERMINATED: &str = include_str!("../../../events/eventbridge-instance-terminated.json");
pub const SCHEDULED: &str = include_str!("../../../events/eventbridge-scheduled.json");
/// The instance the launch and running samples name.
pub const SAMPLE_INSTANCE: &str = "i-0b7f3c2a9d4e5f601";

pub fn event(json: &str) -> serde_json::Value {
    serde_json::from_str(json).expect("sample event is JSON")
}

pub fn cidr(s: &str) -> Destination {
    Destination::Cidr(s.parse().expect("test CIDR"))
}

pub fn i(id: &str) -> Target {
    Target::Instance(id.into())
}

pub fn eni(id: &str) -> Target {
    Target::NetworkInterface(id.into())
}

pub fn route(dest: &str, target: Target) -> Route {
    Route::active(cidr(dest), target)
}

pub fn blackhole(dest: &str, target: Target) -> Route {
    Route { state: RouteState::Blackhole, ..route(dest, target) }
}

pub fn local(vpc_cidr: &str) -> Route {
    Route { origin: RouteOrigin::CreateRouteTable, ..route(vpc_cidr, Target::Gateway("local".into())) }
}

pub fn propagated(dest: &str, vgw: &str) -> Route {
    Route { origin: RouteOrigin::EnableVgwRoutePropagation, ..route(dest, Target::Gateway(vgw.into())) }
}

pub fn table(id: &str, name: &str, routes: Vec<Route>) -> RouteTable {
    RouteTable { routes, ..RouteTable::new(id, VPC).with_tag("Name", name) }
}

/// Configuration from the given variables on top of a minimal valid set.
/// The wait for a new node's route is off unless a test turns it on.
pub fn config(extra: &[(&str, &str)]) -> Config {
    config_of(&[("VPC_ID", VPC), ("KUBE_CLUSTER_NAME", CLUSTER), ("ROUTE_WAIT_SECONDS", "0")], extra)
}

/// Any job's configuration from `base` variables, with `extra` on top (a
/// variable in both takes `extra`'s value).
pub fn config_of<C: kube_rtsync::shared::config::FromLookup>(base: &[(&str, &str)], extra: &[(&str, &str)]) -> C {
    let vars: HashMap<String, String> = base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    C::from_lookup(&|name| vars.get(name).cloned()).expect("valid test configuration")
}

/// The routes every private table has and kube-rtsync must never touch.
pub fn untouchable(nat: &str) -> Vec<Route> {
    vec![
        local("10.0.0.0/16"),
        route("0.0.0.0/0", Target::NatGateway(nat.into())),
        propagated("192.168.0.0/16", "vgw-0a1"),
        route("172.16.0.0/12", Target::VpcPeeringConnection("pcx-0a1".into())),
        Route::active(Destination::PrefixList("pl-0a1".into()), Target::Gateway("vgw-0a1".into())),
        route("fd00:ec2::/64", Target::EgressOnlyInternetGateway("eigw-0a1".into())),
    ]
}

/// The pod routes the cluster's table holds (by instance and by ENI).
pub fn pod_routes() -> Vec<Route> {
    vec![
        route("100.96.1.0/24", i("i-0100000000000001")),
        route("100.96.2.0/24", eni("eni-0200000000000002")),
        route("100.96.3.0/24", i("i-0300000000000003")),
    ]
}

/// A VPC out of sync: a cluster table, three private tables (one with a
/// stale and a wrong route, one empty, one half done), a public table,
/// and a private-looking table in another VPC.
pub fn vpc() -> Vec<RouteTable> {
    let mut source = vec![local("10.0.0.0/16"), route("0.0.0.0/0", Target::Gateway("igw-0a1".into()))];
    source.extend(pod_routes());
    let mut a = untouchable("nat-0a");
    a.extend([route("100.96.2.0/24", i("i-0old0000000000002")), route("100.96.9.0/24", i("i-0900000000000009"))]);
    let b = untouchable("nat-0b");
    let mut c = untouchable("nat-0c");
    c.push(route("100.96.1.0/24", i("i-0100000000000001")));
    vec![
        table("rtb-0c0000000000000c", "cluster", source).with_tag("KubernetesCluster", CLUSTER),
        table("rtb-0a0000000000000a", "private_us-east-1a", a),
        table("rtb-0b0000000000000b", "private_us-east-1b", b),
        table("rtb-0d0000000000000d", "private_us-east-1c", c),
        table(
            "rtb-0e0000000000000e",
            "public",
            vec![local("10.0.0.0/16"), route("0.0.0.0/0", Target::Gateway("igw-0a1".into()))],
        ),
        RouteTable {
            routes: vec![route("100.96.7.0/24", i("i-0700000000000007"))],
            ..RouteTable::new("rtb-0f0000000000000f", OTHER_VPC).with_tag("Name", "private_other")
        },
    ]
}

pub const PRIVATE: [&str; 3] = ["rtb-0a0000000000000a", "rtb-0b0000000000000b", "rtb-0d0000000000000d"];

pub mod emulator;
pub mod events;
pub mod golden;
pub mod proxy;
pub mod relay;
pub mod runtime_api;
pub mod seed;
pub mod tls_front;

/// The compiled `kube-rtsync` binary, run as Lambda runs it: against a
/// Runtime API at `runtime_api`, with the function's environment.
pub struct LambdaProcess {
    child: std::process::Child,
}

impl LambdaProcess {
    pub fn spawn(
        binary: &std::path::Path,
        runtime_api: &str,
        env: &[(&str, String)],
        log: std::process::Stdio,
    ) -> LambdaProcess {
        let child = std::process::Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "kube-rtsync")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/kube-rtsync")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]0123456789abcdef")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        LambdaProcess { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident set size (VmHWM), in KiB, on Linux.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Runs `binary` as Lambda would, with `env`, and expects its init to
/// fail: returns what it logged.
pub fn failed_init_log(binary: &std::path::Path, name: &str, env: &[(&str, String)]) -> String {
    let api = runtime_api::RuntimeApi::start(vec![LAUNCH.to_owned()]);
    let log_path = std::env::temp_dir().join(format!("kube-rtsync-init-{name}-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut lambda = LambdaProcess::spawn(binary, &api.address, env, log.into());
    let start = std::time::Instant::now();
    while lambda.exited().is_none() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!lambda.exited().expect("init must fail and exit").success(), "{name}: init succeeded");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    log
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The routes job's EC2 ports
/// ([`RouteTables`](kube_rtsync::aws::ec2::RouteTables) and
/// [`Instances`](kube_rtsync::aws::ec2::Instances)), counting the calls passing
/// through to another implementation.
pub struct Counting<E> {
    pub inner: E,
    pub describes: std::sync::atomic::AtomicUsize,
    pub writes: std::sync::atomic::AtomicUsize,
}

impl<E> Counting<E> {
    pub fn new(inner: E) -> Self {
        Counting { inner, describes: Default::default(), writes: Default::default() }
    }

    pub fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.describes.load(SeqCst), self.writes.load(SeqCst))
    }
}

impl<E: kube_rtsync::aws::ec2::RouteTables> kube_rtsync::aws::ec2::RouteTables for Counting<E> {
    async fn describe_route_tables(
        &self,
        filters: &[kube_rtsync::aws::ec2::model::Filter],
        next_token: Option<String>,
    ) -> Result<kube_rtsync::aws::ec2::RouteTablePage, kube_rtsync::aws::ec2::AwsError> {
        self.describes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.describe_route_tables(filters, next_token).await
    }

    async fn create_route(
        &self,
        table: &str,
        destination: &Destination,
        target: &Target,
    ) -> Result<(), kube_rtsync::aws::ec2::AwsError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.create_route(table, destination, target).await
    }

    async fn replace_route(
        &self,
        table: &str,
        destination: &Destination,
        target: &Target,
    ) -> Result<(), kube_rtsync::aws::ec2::AwsError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.replace_route(table, destination, target).await
    }

    async fn delete_route(
        &self,
        table: &str,
        destination: &Destination,
    ) -> Result<(), kube_rtsync::aws::ec2::AwsError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.delete_route(table, destination).await
    }
}

/// Instance reads pass through uncounted: the counts are of route-table
/// describes and route writes.
impl<E: kube_rtsync::aws::ec2::Instances> kube_rtsync::aws::ec2::Instances for Counting<E> {
    async fn describe_instances(
        &self,
        filters: &[kube_rtsync::aws::ec2::model::Filter],
        next_token: Option<String>,
    ) -> Result<
        kube_rtsync::aws::ec2::model::Page<kube_rtsync::aws::ec2::model::Instance>,
        kube_rtsync::aws::ec2::AwsError,
    > {
        self.inner.describe_instances(filters, next_token).await
    }
}

pub const SPOT_INTERRUPTION: &str = include_str!("../../../events/eventbridge-spot-interruption.json");

/// The account and Region the change-event tests' ARNs name.
pub fn arns() -> kube_rtsync::shared::changes::Arns {
    kube_rtsync::shared::changes::Arns::in_region("us-east-1", Some("123456789012".into()))
}

/// What the runner does after a reconcile: publish the report's changes on
/// the configured bus (here an in-memory one), as invocation `inv-1`.
pub async fn publish<R: kube_rtsync::shared::report::JobReport>(
    job: &'static str,
    config: &kube_rtsync::shared::config::SharedConfig,
    report: Option<&R>,
    bus: &kube_rtsync::fake::events::FakeEventBridge,
) -> kube_rtsync::shared::changes::Published {
    let arns = arns();
    let to = kube_rtsync::shared::job::EventsTo { bus, arns: &arns, invocation_id: "inv-1" };
    kube_rtsync::shared::job::publish_changes(job, config, report, Some(&to), None).await
}
