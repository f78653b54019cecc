//! The `eip` job: gives each selected node one Elastic IP from a tagged
//! pool, an A record in Route 53 and a lease item in DynamoDB, and takes
//! them back when the node goes.
//!
//! Rooms: [`config`] (its variables), [`model`] (pool, items, records,
//! settings), [`observe`] (one round trip), [`plan`] (pure), [`apply`] (the
//! safe order of writes), [`report`].

pub mod apply;
pub mod config;
pub mod model;
pub mod observe;
pub mod plan;
pub mod report;

use crate::aws::sdk::Service;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::dynamodb::BindingStore;
use crate::aws::ec2::{Addresses, Instances, LeavingInstances};
use crate::aws::route53::Route53;
use crate::shared::apply::Engine;
use crate::shared::event::Trigger;
use crate::shared::limiter::WriteLimiter;
use config::Config;
pub use model::{ARecord, Binding, Dns, Instance, PoolAddress, Settings, dns_name};
pub use plan::{Bind, Counts, EipPlan, Keep, LeftAlone, RecordChange, Release, ReleaseReason, Repair, plan};
use report::Report;

/// Why an eip invocation failed: the shared failures and eip's own problem
/// (an exhausted pool).
pub type Error = crate::shared::error::Failure<Problem>;

/// What eip reports as its own failure.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(
        "the address pool is exhausted: {} node(s) without an address ({}); add Elastic IPs tagged EIP_POOL_TAGS; Lambda retries the invocation",
        .0.plan.unbound.len(), .0.plan.unbound.join(", ")
    )]
    PoolExhausted(Box<Report>),
}

impl crate::shared::error::Problem for Problem {
    type Report = Report;
    const READS: &'static str = "the pool, the instances, the records or the bindings";

    fn kind(&self) -> &'static str {
        match self {
            Problem::PoolExhausted(_) => "PoolExhausted",
        }
    }

    fn report(&self) -> Option<&Report> {
        match self {
            Problem::PoolExhausted(report) => Some(report),
        }
    }

    /// An address tagged into the pool, or a node that goes, frees one for
    /// the next invocation.
    fn retryable(&self) -> bool {
        true
    }

    fn incomplete(report: &Report) -> String {
        format!(
            "eip incomplete: {} writes failed, {} not started; Lambda retries the invocation",
            report.totals.failed, report.totals.not_started
        )
    }
}

/// What a reconcile needs.
pub struct Reconciler<'a, E, R, B> {
    pub ec2: &'a E,
    pub route53: &'a R,
    pub bindings: &'a B,
    pub config: &'a Config,
    pub limiter: &'a WriteLimiter,
    /// Route 53's own pace for record changes ([`ROUTE53_WRITE_RATE`]).
    pub dns_limiter: &'a WriteLimiter,
    pub deadline: Option<Instant>,
}

/// The pace of record changes: Route 53 meters `ChangeResourceRecordSets`
/// per account, apart from EC2 (10 requests per second since July 2026),
/// and other tools of the account (external-dns, cert-manager) share it:
/// kube-rtsync takes half.
pub const ROUTE53_WRITE_RATE: crate::shared::config::WriteRate =
    crate::shared::config::WriteRate { per_second: 5.0, burst: 5 };

/// One invocation (through [`crate::shared::job::handle_event`]).
impl<E: Instances + Addresses + LeavingInstances, R: Route53, B: BindingStore> crate::shared::job::Reconcile
    for Reconciler<'_, E, R, B>
{
    type Report = Report;
    type Error = Error;

    fn nothing_to_do(&self, triggers: Vec<Trigger>) -> Report {
        Report::new(triggers, &self.config.vpc_id, self.config.dry_run)
    }

    async fn invoke(&self, triggers: Vec<Trigger>, now: u64) -> Result<Report, Error> {
        self.reconcile(triggers, now).await.and_then(outcome)
    }
}

/// The eip job's clients on the AWS SDK, and Route 53's own pace.
pub struct Clients {
    pub ec2: crate::aws::ec2::AwsEc2,
    pub route53: crate::aws::route53::AwsRoute53,
    pub bindings: crate::aws::dynamodb::AwsBindings,
    pub dns_limiter: WriteLimiter,
}

/// The eip job on the AWS SDK's EC2, Route 53 and DynamoDB clients.
pub struct Eip;

impl crate::shared::job::Job for Eip {
    const NAME: &'static str = "eip";
    type Config = Config;
    type Clients = Clients;
    type Report = Report;
    type Problem = Problem;

    fn starting(config: &Config) {
        info!(job = "eip", vpc_id = %config.vpc_id, nodes = %config.node_tags, pool = %config.pool_tags,
              dns = config.dns.is_some(), table = ?config.table, dry_run = config.dry_run, "kube-rtsync starting");
    }

    fn clients(sdk: &aws_config::SdkConfig, throttles: &crate::shared::job::Throttles) -> Clients {
        use crate::aws::sdk::{dynamodb_client, ec2_client, route53_client};
        // Route 53 meters record changes per account, apart from EC2: its own
        // counter and its own pace.
        let dns = throttles.total.service();
        Clients {
            ec2: crate::aws::ec2::AwsEc2::new(ec2_client(sdk, throttles.ec2.clone())),
            route53: crate::aws::route53::AwsRoute53::new(route53_client(sdk, dns.clone())),
            bindings: crate::aws::dynamodb::AwsBindings::new(dynamodb_client(sdk, throttles.total.service())),
            dns_limiter: WriteLimiter::new(ROUTE53_WRITE_RATE).learning_from(dns),
        }
    }

    fn connections(config: &Config) -> Vec<(Service, usize)> {
        // Addresses, instances and the two leaving reads; the zone's
        // records and the lease table, when set, at once (observe.rs).
        let mut connections = vec![(Service::Ec2, 4)];
        if config.dns.is_some() {
            connections.push((Service::Route53, 1));
        }
        if config.table.is_some() {
            connections.push((Service::DynamoDb, 1));
        }
        connections
    }

    type Reconciler<'a> =
        Reconciler<'a, crate::aws::ec2::AwsEc2, crate::aws::route53::AwsRoute53, crate::aws::dynamodb::AwsBindings>;

    fn reconciler(run: crate::shared::job::Run<'_, Self>) -> Self::Reconciler<'_> {
        let clients = run.clients;
        Reconciler {
            ec2: &clients.ec2,
            route53: &clients.route53,
            bindings: &clients.bindings,
            config: run.config,
            limiter: run.limiter,
            dns_limiter: &clients.dns_limiter,
            deadline: run.deadline,
        }
    }

    fn emf(config: &Config, report: &Report, run: &crate::shared::metrics::Invocation) -> Value {
        report::emf_record(&config.metrics_namespace, report, run)
    }
}

/// An incomplete report is an error, so that Lambda retries.
pub fn outcome(report: Report) -> Result<Report, Error> {
    if report.totals.failed + report.totals.not_started > 0 {
        Err(Error::Incomplete(Box::new(report)))
    } else if report.totals.nodes_without_address > 0 {
        Err(Error::Job(Problem::PoolExhausted(Box::new(report))))
    } else {
        Ok(report)
    }
}

impl<E: Instances + Addresses + LeavingInstances, R: Route53, B: BindingStore> Reconciler<'_, E, R, B> {
    /// Observes (one round trip, plus one describe when a pool address is
    /// held by an instance outside the VPC), plans at `now`, applies.
    pub async fn reconcile(&self, triggers: Vec<Trigger>, now: u64) -> Result<Report, Error> {
        let config = self.config;
        let observe::Observed { instances, pool, others, items, records, warnings } = self.observe().await?;
        let settings = Settings {
            vpc_id: config.vpc_id.clone(),
            nodes: crate::shared::nodes::NodeRule::selector_only(config.node_tags.clone()),
            dns: config.dns.as_ref().map(|d| Dns { suffix: d.suffix.clone(), ttl: d.ttl }),
            table: config.table.is_some(),
        };
        let plan = plan::plan(&instances, &pool, &others, &items, &records, &settings, now);
        if plan.is_empty() {
            info!(keeps = plan.keeps.len(), pool_free = plan.pool_free_after, "no changes");
        } else {
            info!(changes = plan.changes(), "plan:\n{plan}");
        }
        if !plan.unbound.is_empty() {
            warn!(nodes = ?plan.unbound, "the address pool is exhausted");
        }
        if !plan.withheld.is_empty() {
            warn!(
                releases = plan.withheld.len(),
                selector = %config.node_tags,
                "EIP_NODE_TAGS matches no instance of the VPC: its releases are withheld"
            );
        }
        for node in &plan.nodes_left_alone {
            warn!(instance_id = %node.instance_id, why = %node.why, "node left alone");
        }
        let engine = Engine::new(self.limiter, self.deadline, 16);
        let clients = apply::Clients {
            ec2: self.ec2,
            route53: self.route53,
            bindings: self.bindings,
            dns_limiter: self.dns_limiter,
        };
        let writes = apply::apply(&clients, &engine, &plan, config, now).await;
        let mut report = Report::new(triggers, &config.vpc_id, config.dry_run);
        report.plan = plan;
        report.warnings = warnings;
        report.writes = writes;
        report.dns_zone_id = config.dns.as_ref().map(|d| d.zone_id.clone());
        Ok(report.finish())
    }
}
