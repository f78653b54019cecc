//! What the routes job reads: the source table (picked by its tags or its
//! id) and the target tables, and, after a launch, the source again until
//! the new node's route appears.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::config::SourceSelector;
use super::report::RouteWait;
use super::{Error, Observed, Problem, Reconciler, Result};
use crate::aws::ec2::model::{Filter, RouteTable};
use crate::aws::ec2::{Instances, RouteTables, all_pages, describe_all};
use crate::shared::apply::DEADLINE_MARGIN;
use crate::shared::tags::{CLUSTER_TAG_KEYS, is_cluster_member};

impl<E: RouteTables> Reconciler<'_, E> {
    /// Reads the source and the target tables: two `DescribeRouteTables`
    /// (each paginated), concurrently, both restricted to `VPC_ID`.
    ///
    /// The source is picked from the VPC's tables by its tags here rather
    /// than by a two-valued `tag-key` filter: such a filter is an OR on EC2
    /// but not on every EC2-compatible API, and a VPC holds few tables.
    pub async fn observe(&self) -> Result<Observed> {
        let config = self.config;
        let mut target_filters = vec![Filter::new("vpc-id", [config.vpc_id.as_str()])];
        target_filters.extend(config.target_filters.iter().cloned());

        let source_filters = self.source_filters();
        let (sources, targets) =
            futures::try_join!(describe_all(self.ec2, &source_filters), describe_all(self.ec2, &target_filters),)
                .map_err(Error::Describe)?;

        let source = self.pick_source(sources)?;
        // The filter already says so; checking again costs nothing and keeps
        // a table of another VPC out even if a filter were ignored.
        let targets = targets.into_iter().filter(|t| t.vpc_id == config.vpc_id && t.id != source.id).collect();
        Ok(Observed { source, targets })
    }

    /// Kubernetes writes a node's pod route only once the node registers,
    /// which is after its launch notification. Re-reads the source, with
    /// backoff (2 s doubling to 15 s), until the instance has a route,
    /// `ROUTE_WAIT_SECONDS` have passed, or the deadline draws near. The
    /// schedule, if enabled, is the backstop for a route that comes later.
    pub async fn wait_for_route(&self, instance_id: &str) -> Result<RouteWait> {
        const FIRST: Duration = Duration::from_secs(2);
        const MAX: Duration = Duration::from_secs(15);
        // Room kept after the wait for the second reconcile.
        const RECONCILE_ROOM: Duration = Duration::from_secs(10);
        let start = Instant::now();
        let budget_end = start + self.config.route_wait;
        let mut delay = FIRST;
        let mut checks = 0;
        info!(
            instance_id,
            wait_s = self.config.route_wait.as_secs(),
            "the new node has no route in the source yet; waiting for it"
        );
        loop {
            let mut wake = (Instant::now() + delay).min(budget_end);
            if let Some(deadline) = self.deadline {
                wake = wake.min(deadline.checked_sub(DEADLINE_MARGIN + RECONCILE_ROOM).unwrap_or(start));
            }
            if wake <= Instant::now() {
                break;
            }
            tokio::time::sleep_until(wake).await;
            checks += 1;
            let source = self.observe_source().await?;
            if source.routes.iter().any(|r| r.reaches_instance(instance_id)) {
                let waited_ms = start.elapsed().as_millis() as u64;
                info!(instance_id, checks, waited_ms, "the new node's route appeared in the source");
                return Ok(RouteWait { instance_id: instance_id.to_owned(), checks, found: true, waited_ms });
            }
            delay = (delay * 2).min(MAX);
        }
        let waited_ms = start.elapsed().as_millis() as u64;
        warn!(
            instance_id,
            checks,
            waited_ms,
            "the new node's route did not appear in the source; a later event or the schedule will mirror it"
        );
        Ok(RouteWait { instance_id: instance_id.to_owned(), checks, found: false, waited_ms })
    }

    /// The source table alone: one describe (paginated).
    async fn observe_source(&self) -> Result<RouteTable> {
        let filters = self.source_filters();
        let tables = describe_all(self.ec2, &filters).await.map_err(Error::Describe)?;
        self.pick_source(tables)
    }

    /// The source's describe reads only the candidate tables, not every
    /// table of the VPC, which at EC2's maxima (200 tables of up to 1,000
    /// routes) is the largest read of the job: by id, or those with a tag
    /// key like either cluster tag (`KubernetesCluster`,
    /// `kubernetes.io/cluster/<name>`), which [`is_source`] then checks
    /// exactly. One wildcard value rather than the two keys: EC2 ORs a
    /// filter's values, but moto, the emulator the tests run against, wants
    /// a table to carry all of them.
    fn source_filters(&self) -> Vec<Filter> {
        let mut filters = vec![Filter::new("vpc-id", [self.config.vpc_id.as_str()])];
        match &self.config.source {
            SourceSelector::RouteTableId(id) => filters.push(Filter::new("route-table-id", [id.as_str()])),
            SourceSelector::ClusterTag(_) => filters.push(Filter::new("tag-key", [CLUSTER_TAG_KEYS])),
        }
        filters
    }

    /// The one source among the tables read, or why there is not one.
    fn pick_source(&self, tables: Vec<RouteTable>) -> Result<RouteTable> {
        let config = self.config;
        let mut sources: Vec<RouteTable> =
            tables.into_iter().filter(|t| t.vpc_id == config.vpc_id && is_source(t, &config.source)).collect();
        match sources.len() {
            1 => Ok(sources.remove(0)),
            0 => Err(Error::Job(Problem::SourceNotFound {
                selector: config.source.to_string(),
                vpc_id: config.vpc_id.clone(),
            })),
            _ => Err(Error::Job(Problem::AmbiguousSource {
                selector: config.source.to_string(),
                vpc_id: config.vpc_id.clone(),
                ids: sources.into_iter().map(|t| t.id).collect(),
            })),
        }
    }
}

fn is_source(table: &RouteTable, selector: &SourceSelector) -> bool {
    match selector {
        SourceSelector::RouteTableId(id) => &table.id == id,
        SourceSelector::ClusterTag(name) => is_cluster_member(&table.tags, name),
    }
}

impl<E: RouteTables + Instances> Reconciler<'_, E> {
    /// Whether `instance_id` is a node of this cluster in `VPC_ID` (tagged
    /// for the cluster in either style; with only `SOURCE_ROUTE_TABLE_ID`,
    /// any instance of the VPC): one `DescribeInstances`.
    pub async fn is_cluster_node(&self, instance_id: &str) -> Result<bool> {
        let filters = [Filter::new("instance-id", [instance_id]), Filter::new("vpc-id", [self.config.vpc_id.as_str()])];
        let found = all_pages("DescribeInstances", |t| self.ec2.describe_instances(&filters, t))
            .await
            .map_err(Error::Describe)?;
        Ok(found.iter().any(|i| {
            i.id == instance_id
                && i.vpc_id == self.config.vpc_id
                && self.config.cluster_name.as_deref().is_none_or(|name| is_cluster_member(&i.tags, name))
        }))
    }
}
