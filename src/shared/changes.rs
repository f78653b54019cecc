//! Change events: every change a job made, as one EventBridge event, so
//! that operators can route failovers, releases and the like to chat,
//! paging or audit without parsing logs.
//!
//! A job's report lists its changes ([`Change`], only those made); the
//! runner publishes them after the writes ([`Publisher::publish`]):
//! `source` [`EVENT_SOURCE`], `detail-type` `<job> change`, `resources`
//! the ARNs of what changed, and a detail of
//! `{job, vpcId, resource, change, from, to, reason, invocationId}`.
//! Entries go ten to a call, several calls at once, within the deadline.
//! A publish that fails never fails the invocation and never retries a
//! write: it is logged and counted (`EventsFailed`).

use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info};

use crate::aws::events::{EventBus, EventEntry, batches};
use crate::shared::apply::{MIN_CALL_TIME, REPORT_ROOM};

/// The `source` of every change event.
pub const EVENT_SOURCE: &str = "kube-rtsync";

/// `PutEvents` calls in flight at once: a fill of 200 targets (20 calls)
/// goes out in one round trip, well inside EventBridge's own rate (hundreds
/// to thousands of `PutEvents` per second, by Region).
pub const PUBLISH_CONCURRENCY: usize = 32;

/// One change a job made: the resource it wrote, the plan's line for it,
/// what it was and became, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The resource written, as the report names it (a route table, a
    /// target group, an address).
    pub resource: String,
    /// ARNs of what changed (the event's `resources`); empty when the
    /// account is unknown (see [`Arns`]).
    #[serde(skip)]
    pub arns: Vec<String>,
    /// The plan's line for the change.
    pub change: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: String,
}

/// Where the resources live, for their ARNs: the partition, the Region and
/// the account (a Lambda function knows all three from its own ARN; the
/// command line knows the account only from `AWS_ACCOUNT_ID`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Arns {
    pub partition: String,
    pub region: String,
    pub account: Option<String>,
}

impl Arns {
    /// From a function's ARN
    /// (`arn:aws:lambda:us-east-1:123456789012:function:name`).
    pub fn from_function_arn(arn: &str) -> Option<Arns> {
        let mut parts = arn.split(':');
        let (Some("arn"), Some(partition), Some(_service), Some(region), Some(account)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if partition.is_empty() || region.is_empty() || account.is_empty() {
            return None;
        }
        Some(Arns { partition: partition.into(), region: region.into(), account: Some(account.into()) })
    }

    /// For a Region, with the account if known.
    pub fn in_region(region: &str, account: Option<String>) -> Arns {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Arns { partition: partition.into(), region: region.into(), account: account.filter(|a| !a.is_empty()) }
    }

    /// An EC2 resource's ARN (`route-table`, `instance`, `elastic-ip`, ...).
    pub fn ec2(&self, kind: &str, id: &str) -> Option<String> {
        let account = self.account.as_deref()?;
        Some(format!("arn:{}:ec2:{}:{account}:{kind}/{id}", self.partition, self.region))
    }

    /// A Route 53 hosted zone's ARN (global: no Region, no account).
    pub fn hosted_zone(&self, id: &str) -> String {
        format!("arn:{}:route53:::hostedzone/{id}", self.partition)
    }

    /// A DynamoDB table's ARN.
    pub fn dynamodb_table(&self, name: &str) -> Option<String> {
        let account = self.account.as_deref()?;
        Some(format!("arn:{}:dynamodb:{}:{account}:table/{name}", self.partition, self.region))
    }
}

/// What became of an invocation's change events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Published {
    /// Events EventBridge accepted.
    pub events: usize,
    /// Events not published: refused, failed, or out of time.
    pub failed: usize,
}

/// The detail of a change event (its JSON field names are the contract).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    job: &'a str,
    vpc_id: &'a str,
    resource: &'a str,
    change: &'a str,
    from: Option<&'a str>,
    to: Option<&'a str>,
    reason: &'a str,
    invocation_id: &'a str,
}

/// Publishes one invocation's changes on one bus.
pub struct Publisher<'a, B> {
    pub bus: &'a B,
    /// The bus's name or ARN.
    pub bus_name: &'a str,
    pub job: &'static str,
    pub vpc_id: &'a str,
    /// Lambda's request id (the command line makes one up).
    pub invocation_id: &'a str,
    pub deadline: Option<Instant>,
}

impl<B: EventBus> Publisher<'_, B> {
    /// The entry of one change.
    pub fn entry(&self, change: &Change) -> EventEntry {
        let detail = Detail {
            job: self.job,
            vpc_id: self.vpc_id,
            resource: &change.resource,
            change: &change.change,
            from: change.from.as_deref(),
            to: change.to.as_deref(),
            reason: &change.reason,
            invocation_id: self.invocation_id,
        };
        EventEntry {
            bus: self.bus_name.to_owned(),
            source: EVENT_SOURCE.to_owned(),
            detail_type: format!("{} change", self.job),
            resources: change.arns.clone(),
            detail: serde_json::to_string(&detail).unwrap_or_default(),
        }
    }

    /// Puts one event per change: ten to a call, [`PUBLISH_CONCURRENCY`]
    /// calls at once, none started too close to the deadline. Every failure
    /// is logged and counted, never returned.
    pub async fn publish(&self, changes: &[Change]) -> Published {
        if changes.is_empty() {
            return Published::default();
        }
        let calls = batches(changes.iter().map(|c| self.entry(c)).collect());
        let results: Vec<Published> = futures::stream::iter(calls.iter().map(|call| self.put(call)))
            .buffer_unordered(PUBLISH_CONCURRENCY)
            .collect()
            .await;
        let published = results.into_iter().fold(Published::default(), |total, one| Published {
            events: total.events + one.events,
            failed: total.failed + one.failed,
        });
        info!(bus = self.bus_name, events = published.events, failed = published.failed, "change events");
        published
    }

    async fn put(&self, call: &[EventEntry]) -> Published {
        let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()).saturating_sub(REPORT_ROOM));
        if left.is_some_and(|left| left < MIN_CALL_TIME) {
            error!(
                bus = self.bus_name,
                events = call.len(),
                "change events not published: the invocation deadline is near"
            );
            return Published { events: 0, failed: call.len() };
        }
        let result = match left {
            Some(left) => tokio::time::timeout(left, self.bus.put_events(call)).await.unwrap_or_else(|_| {
                Err(crate::aws::error::AwsError {
                    operation: "PutEvents",
                    kind: crate::aws::error::FailureKind::Deadline,
                    code: None,
                    message: format!("cut short after {} ms, at the invocation deadline", left.as_millis()),
                })
            }),
            None => self.bus.put_events(call).await,
        };
        match result {
            Ok(refused) => {
                for failure in &refused {
                    let detail = call.get(failure.index).map(|e| e.detail.as_str()).unwrap_or_default();
                    error!(bus = self.bus_name, code = %failure.code, message = %failure.message, detail,
                           "change event refused");
                }
                Published { events: call.len().saturating_sub(refused.len()), failed: refused.len().min(call.len()) }
            }
            Err(err) => {
                error!(bus = self.bus_name, events = call.len(), code = err.code().unwrap_or("-"), error = %err,
                       hint = err.hint(), "change events not published");
                Published { events: 0, failed: call.len() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_arn_gives_partition_region_and_account() {
        let cases = [
            (
                "arn:aws:lambda:us-east-1:123456789012:function:kube-rtsync-egress",
                Some(("aws", "us-east-1", "123456789012")),
            ),
            (
                "arn:aws-cn:lambda:cn-north-1:123456789012:function:f:live",
                Some(("aws-cn", "cn-north-1", "123456789012")),
            ),
            ("arn:aws:lambda:us-east-1::function:f", None),
            ("not an arn", None),
            ("", None),
        ];
        for (arn, expected) in cases {
            let got = Arns::from_function_arn(arn);
            let got = got.as_ref().map(|a| (a.partition.as_str(), a.region.as_str(), a.account.as_deref().unwrap()));
            assert_eq!(got, expected, "{arn}");
        }
    }

    #[test]
    fn arns_name_the_resource_in_its_partition() {
        let arns = Arns::in_region("us-gov-west-1", Some("123456789012".into()));
        assert_eq!(
            arns.ec2("route-table", "rtb-0a1").as_deref(),
            Some("arn:aws-us-gov:ec2:us-gov-west-1:123456789012:route-table/rtb-0a1")
        );
        assert_eq!(
            arns.dynamodb_table("bindings").as_deref(),
            Some("arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/bindings")
        );
        assert_eq!(arns.hosted_zone("Z123"), "arn:aws-us-gov:route53:::hostedzone/Z123");
        let unknown_account = Arns::in_region("eu-west-1", None);
        assert_eq!(unknown_account.ec2("instance", "i-1"), None);
        assert_eq!(unknown_account.hosted_zone("Z1"), "arn:aws:route53:::hostedzone/Z1");
        assert_eq!(Arns::in_region("cn-north-1", Some(String::new())).account, None);
    }
}
