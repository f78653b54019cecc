//! The Route 53 port of the eip job's DNS names, and its
//! `aws-sdk-route53` adapter: the A records of one hosted zone, read and
//! changed in one `ChangeBatch`.

use std::future::Future;

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use serde::{Deserialize, Serialize};

use crate::aws::error::{AwsError, sdk_error};

/// A Route 53 A record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ARecord {
    /// Fully qualified, without the trailing dot.
    pub name: String,
    pub ttl: u64,
    pub values: Vec<String>,
}

/// One change of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "record", rename_all = "snake_case")]
pub enum RecordChange {
    Upsert(ARecord),
    /// Route 53 deletes only a record given exactly: name, TTL and values.
    Delete(ARecord),
}

/// The hosted zone's A records. Implemented by [`AwsRoute53`] and by
/// `FakeRoute53` (feature `fakes`).
pub trait Route53: Send + Sync {
    /// The zone's A records whose name ends with `suffix`.
    fn a_records(&self, zone_id: &str, suffix: &str) -> impl Future<Output = Result<Vec<ARecord>, AwsError>> + Send;

    /// Every change in one `ChangeResourceRecordSets` (all or nothing).
    fn change(&self, zone_id: &str, changes: &[RecordChange]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The [`Route53`] port over `aws-sdk-route53`.
#[derive(Clone, Debug)]
pub struct AwsRoute53 {
    client: aws_sdk_route53::Client,
}

impl AwsRoute53 {
    pub fn new(client: aws_sdk_route53::Client) -> Self {
        AwsRoute53 { client }
    }
}

/// Route 53 names are absolute (trailing dot) and may differ in case.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn record_set(record: &ARecord) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(format!("{}.", record.name))
        .r#type(RrType::A)
        .ttl(record.ttl as i64)
        .set_resource_records(Some(
            record.values.iter().filter_map(|v| ResourceRecord::builder().value(v).build().ok()).collect(),
        ))
        .build()
        .expect("a record set with a name and a type always builds")
}

impl Route53 for AwsRoute53 {
    async fn a_records(&self, zone_id: &str, suffix: &str) -> Result<Vec<ARecord>, AwsError> {
        let suffix = format!(".{}", normal(suffix));
        let mut records = Vec::new();
        let mut next: Option<(String, RrType)> = None;
        for _ in 0..crate::aws::ec2::MAX_PAGES {
            let mut req = self.client.list_resource_record_sets().hosted_zone_id(zone_id);
            if let Some((name, kind)) = next.take() {
                req = req.start_record_name(name).start_record_type(kind);
            }
            let out = req.send().await.map_err(|e| sdk_error("ListResourceRecordSets", e))?;
            records.extend(
                out.resource_record_sets()
                    .iter()
                    .filter(|r| r.r#type() == &RrType::A && normal(r.name()).ends_with(&suffix))
                    .map(|r| ARecord {
                        name: normal(r.name()),
                        ttl: r.ttl().unwrap_or(0).max(0) as u64,
                        values: r.resource_records().iter().map(|v| v.value().to_owned()).collect(),
                    }),
            );
            match (out.is_truncated(), out.next_record_name(), out.next_record_type()) {
                (true, Some(name), Some(kind)) => next = Some((name.to_owned(), kind.clone())),
                _ => return Ok(records),
            }
        }
        Err(AwsError::service("ListResourceRecordSets", "TooManyPages", "more pages than any zone holds"))
    }

    async fn change(&self, zone_id: &str, changes: &[RecordChange]) -> Result<(), AwsError> {
        let changes = changes
            .iter()
            .map(|c| {
                let (action, record) = match c {
                    RecordChange::Upsert(r) => (ChangeAction::Upsert, r),
                    RecordChange::Delete(r) => (ChangeAction::Delete, r),
                };
                Change::builder()
                    .action(action)
                    .resource_record_set(record_set(record))
                    .build()
                    .expect("a change builds")
            })
            .collect();
        let batch = ChangeBatch::builder().set_changes(Some(changes)).build().expect("a change batch builds");
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| sdk_error("ChangeResourceRecordSets", e))?;
        Ok(())
    }
}
