//! What the eip job reads, in one round trip: the account's Elastic IPs
//! (split into the pool and the others), the VPC's instances, the A records
//! under the suffix, the binding table and the instances that are leaving,
//! all at once; then, only when a
//! pool address is held by an instance outside the VPC, that instance.

use tracing::warn;

use super::{Error, Reconciler};
use crate::aws::dynamodb::{Binding, BindingStore};
use crate::aws::ec2::model::Filter;
use crate::aws::ec2::{Addresses, Instances, LeavingInstances, all_pages, mark_leaving};
use crate::aws::route53::{ARecord, Route53};
use crate::jobs::eip::model::{Instance, PoolAddress};

/// What one observe found.
pub struct Observed {
    pub instances: Vec<Instance>,
    /// The pool's addresses kube-rtsync may reason about.
    pub pool: Vec<PoolAddress>,
    /// The account's other addresses: never written (rule 3 reads them).
    pub others: Vec<PoolAddress>,
    pub items: Vec<Binding>,
    pub records: Vec<ARecord>,
    /// Pool addresses left out, and why.
    pub warnings: Vec<String>,
}

impl<E: Instances + Addresses + LeavingInstances, R: Route53, B: BindingStore> Reconciler<'_, E, R, B> {
    pub async fn observe(&self) -> Result<Observed, Error> {
        let config = self.config;
        let vpc = [Filter::new("vpc-id", [config.vpc_id.as_str()])];
        let records = async {
            match &config.dns {
                Some(dns) => self.route53.a_records(&dns.zone_id, &dns.suffix).await,
                None => Ok(Vec::new()),
            }
        };
        let items = async {
            match &config.table {
                Some(table) => self.bindings.scan(table).await,
                None => Ok(Vec::new()),
            }
        };
        let (addresses, mut instances, records, items, leaving) = futures::try_join!(
            self.ec2.describe_addresses(),
            all_pages("DescribeInstances", |t| self.ec2.describe_instances(&vpc, t)),
            records,
            items,
            async { Ok::<_, crate::aws::ec2::AwsError>(crate::aws::ec2::leaving_or_none(self.ec2).await) },
        )
        .map_err(Error::Describe)?;
        mark_leaving(&mut instances, &leaving);
        let (mut pool, others): (Vec<PoolAddress>, Vec<PoolAddress>) =
            addresses.into_iter().partition(|a| config.pool_tags.matches(&a.tags));

        // A holder outside the VPC is not ours, but the planner must see it
        // to tell it from an instance that is gone.
        let outside: Vec<String> = pool
            .iter()
            .filter_map(|a| a.instance_id.clone())
            .filter(|id| !instances.iter().any(|i| &i.id == id))
            .collect();
        if !outside.is_empty() {
            let filter = [Filter::new("instance-id", outside.iter().map(String::as_str))];
            let more = all_pages("DescribeInstances", |t| self.ec2.describe_instances(&filter, t))
                .await
                .map_err(Error::Describe)?;
            instances.extend(more);
        }
        // An address associated through an interface of no instance we can
        // see (another service's interface) is never ours to release.
        let mut warnings = Vec::new();
        pool.retain(|a| {
            let unknown = a.association_id.is_some()
                && a.instance_id.is_none()
                && !a
                    .network_interface_id
                    .as_ref()
                    .is_some_and(|eni| instances.iter().any(|i| i.eni_ids.contains(eni)));
            if unknown {
                let msg = format!(
                    "{} is associated with {} of no instance in view; left alone",
                    a.public_ip,
                    a.network_interface_id.as_deref().unwrap_or("an unknown target")
                );
                warn!("{msg}");
                warnings.push(msg);
            }
            !unknown
        });
        Ok(Observed { instances, pool, others, items, records, warnings })
    }
}
