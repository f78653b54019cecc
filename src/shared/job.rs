//! The one shape of every job, as a type: its configuration, the AWS
//! clients it needs, one invocation (decode -> observe -> pure plan ->
//! apply -> report) and its EMF record. The Lambda loop (`lambda.rs`) and
//! the command line (`cli.rs`) each run any [`Job`] the same way, so a
//! fifth job is one implementation of this trait in one folder.

use std::future::Future;
use std::ops::DerefMut;

use serde_json::Value;
use tokio::time::Instant;
use tracing::info;

use crate::aws::error::ThrottleCounter;
use crate::aws::events::EventBus;
use crate::aws::sdk::Service;
use crate::shared::changes::{Arns, Published, Publisher};
use crate::shared::config::{ConfigError, FromLookup, SharedConfig};
use crate::shared::error::{Failure, Problem};
use crate::shared::event::{self, EventError, Trigger};
use crate::shared::limiter::WriteLimiter;
use crate::shared::metrics::Invocation;
use crate::shared::report::JobReport;

/// Where an invocation's change events go: the bus client, the ARNs'
/// partition, Region and account, and the invocation's id.
pub struct EventsTo<'a, B> {
    pub bus: &'a B,
    pub arns: &'a Arns,
    pub invocation_id: &'a str,
}

/// The runner's step after the writes: one change event per change the
/// report made, on the configured bus (none in a dry run, with
/// `EVENT_BUS_NAME=none`, or without a report). Never fails: what could
/// not be published is counted.
pub async fn publish_changes<R: JobReport, B: EventBus>(
    job: &'static str,
    config: &SharedConfig,
    report: Option<&R>,
    to: Option<&EventsTo<'_, B>>,
    deadline: Option<Instant>,
) -> Published {
    let (Some(report), Some(to), Some(bus_name)) = (report, to, config.event_bus.as_deref()) else {
        return Published::default();
    };
    if config.dry_run {
        return Published::default();
    }
    let changes = report.changes_made(to.arns);
    let publisher =
        Publisher { bus: to.bus, bus_name, job, vpc_id: &config.vpc_id, invocation_id: to.invocation_id, deadline };
    publisher.publish(&changes).await
}

/// A job of this build.
pub trait Job: Send + Sync + Sized + 'static {
    /// Its handler name, command and policy file name.
    const NAME: &'static str;
    type Config: DerefMut<Target = SharedConfig> + FromLookup + Send + Sync;
    /// The AWS clients it reads and writes through, built once per
    /// execution environment (or command).
    type Clients: Send + Sync;
    type Report: JobReport + std::fmt::Debug + Send + Sync + 'static;
    /// Its own reasons to stop; its error is the shared [`Failure`] of them.
    type Problem: Problem<Report = Self::Report>;

    /// Reads the configuration; an error names the variable.
    fn config(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self::Config, ConfigError> {
        Self::Config::from_lookup(lookup)
    }

    /// The one log line of a start: what this environment will work on.
    fn starting(config: &Self::Config);

    /// A person runs the job from a terminal: nothing to wait for.
    fn for_a_person(_config: &mut Self::Config) {}

    fn clients(sdk: &aws_config::SdkConfig, throttles: &Throttles) -> Self::Clients;

    /// The services its first round trip calls, each with how many calls
    /// it makes to it at once: the connections a Lambda's init opens
    /// (change events add their own).
    fn connections(config: &Self::Config) -> Vec<(Service, usize)>;

    /// The job's invocation on its SDK clients: the same [`Reconcile`] the
    /// tests run on the in-memory fakes.
    type Reconciler<'a>: Reconcile<Report = Self::Report, Error = Failure<Self::Problem>>;

    fn reconciler(run: Run<'_, Self>) -> Self::Reconciler<'_>;

    /// The invocation's EMF record.
    fn emf(config: &Self::Config, report: &Self::Report, run: &Invocation) -> Value;
}

/// What one invocation runs with.
pub struct Run<'a, J: Job> {
    pub clients: &'a J::Clients,
    pub config: &'a J::Config,
    pub limiter: &'a WriteLimiter,
    pub deadline: Option<Instant>,
}

/// The throttle counters of one execution environment: the total (the
/// `ThrottledRetries` metric) and EC2's own, which the shared write pace
/// learns from. Another service's client takes a counter of its own
/// ([`ThrottleCounter::service`]) that adds to the total only.
#[derive(Clone, Debug, Default)]
pub struct Throttles {
    pub total: ThrottleCounter,
    pub ec2: ThrottleCounter,
}

impl Throttles {
    pub fn new() -> Self {
        let total = ThrottleCounter::default();
        let ec2 = total.service();
        Throttles { total, ec2 }
    }

    /// EC2's pace, learning from EC2's throttling.
    pub fn ec2_limiter(&self, config: &SharedConfig) -> WriteLimiter {
        WriteLimiter::new(config.write_rate).learning_from(self.ec2.clone())
    }
}

/// One job's invocation on its ports, the AWS SDK's clients or the
/// in-memory fakes alike: what [`handle_event`] runs once the event is
/// decoded.
pub trait Reconcile: Sync {
    type Report;
    type Error: From<EventError>;

    /// The report of an event that asks for no reconcile (a test notification).
    fn nothing_to_do(&self, triggers: Vec<Trigger>) -> Self::Report;

    /// Observes, plans at `now` (epoch seconds), applies and follows up; an
    /// error when the report means that a retry can help (or when nothing
    /// could be done).
    fn invoke(
        &self,
        triggers: Vec<Trigger>,
        now: u64,
    ) -> impl Future<Output = Result<Self::Report, Self::Error>> + Send;
}

/// One invocation of `J` for an event, on its SDK clients.
pub async fn handle<J: Job>(run: Run<'_, J>, event: &Value) -> Result<J::Report, Failure<J::Problem>> {
    handle_event(&J::reconciler(run), event).await
}

/// One invocation for an event: decode; a test notification ends here;
/// else reconcile at the clock's now. The Lambda loop and the tests on the
/// in-memory services go through here alike, so that decoding, the test
/// notification and the clock are the same everywhere.
pub async fn handle_event<R: Reconcile>(reconciler: &R, event: &Value) -> Result<R::Report, R::Error> {
    let triggers = event::decode(event)?;
    if !triggers.iter().any(Trigger::wants_reconcile) {
        info!(triggers = ?triggers, "nothing to do");
        return Ok(reconciler.nothing_to_do(triggers));
    }
    reconciler.invoke(triggers, crate::shared::clock::now_secs()).await
}
