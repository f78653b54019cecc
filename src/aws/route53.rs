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

/// `ChangeResourceRecordSets` takes at most this many `ResourceRecord`
/// elements per request, an `UPSERT`'s counted twice.
pub const MAX_RESOURCE_RECORDS: usize = 1000;
/// ... and at most this many characters in all `Value` elements, an
/// `UPSERT`'s counted twice.
pub const MAX_VALUE_CHARACTERS: usize = 32_000;

impl RecordChange {
    pub fn record(&self) -> &ARecord {
        match self {
            RecordChange::Upsert(r) | RecordChange::Delete(r) => r,
        }
    }

    /// What the change counts against a request's limits: `ResourceRecord`
    /// elements and `Value` characters.
    pub fn weight(&self) -> (usize, usize) {
        let times = match self {
            RecordChange::Upsert(_) => 2,
            RecordChange::Delete(_) => 1,
        };
        let record = self.record();
        (times * record.values.len(), times * record.values.iter().map(String::len).sum::<usize>())
    }
}

/// `changes`, in order, cut into as few requests as Route 53's limits
/// allow ([`MAX_RESOURCE_RECORDS`], [`MAX_VALUE_CHARACTERS`]). A request
/// never holds two changes of one name, which Route 53 refuses.
pub fn batches(changes: &[RecordChange]) -> Vec<Vec<RecordChange>> {
    let mut out: Vec<Vec<RecordChange>> = Vec::new();
    let (mut records, mut characters) = (0, 0);
    for change in changes {
        let (r, c) = change.weight();
        let name = &change.record().name;
        let fits = out.last().is_some_and(|batch| {
            records + r <= MAX_RESOURCE_RECORDS
                && characters + c <= MAX_VALUE_CHARACTERS
                && !batch.iter().any(|other| other.record().name.eq_ignore_ascii_case(name))
        });
        if !fits {
            out.push(Vec::new());
            (records, characters) = (0, 0);
        }
        out.last_mut().expect("a batch was pushed").push(change.clone());
        records += r;
        characters += c;
    }
    out
}

/// The hosted zone's A records. Implemented by [`AwsRoute53`] and by
/// `FakeRoute53` (feature `fakes`).
pub trait Route53: Send + Sync {
    /// The zone's A records whose name ends with `suffix`.
    fn a_records(&self, zone_id: &str, suffix: &str) -> impl Future<Output = Result<Vec<ARecord>, AwsError>> + Send;

    /// Every change in one `ChangeResourceRecordSets` (all or nothing);
    /// callers keep within its limits with [`batches`].
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

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(n: usize) -> RecordChange {
        let ip = format!("3.0.{}.{}", n / 256, n % 256);
        RecordChange::Upsert(ARecord {
            name: format!("{}.nodes.example.com", ip.replace('.', "-")),
            ttl: 60,
            values: vec![ip],
        })
    }

    #[test]
    fn changes_are_cut_at_route_53_s_limits_with_upserts_counted_twice() {
        let cases: [(usize, Vec<usize>); 4] =
            [(1, vec![1]), (500, vec![500]), (501, vec![500, 1]), (1200, vec![500, 500, 200])];
        for (n, sizes) in cases {
            let changes: Vec<RecordChange> = (0..n).map(upsert).collect();
            let got: Vec<usize> = batches(&changes).iter().map(Vec::len).collect();
            assert_eq!(got, sizes, "{n} upserts");
            let flat: Vec<RecordChange> = batches(&changes).into_iter().flatten().collect();
            assert_eq!(flat, changes, "order and content kept");
        }
        let deletes: Vec<RecordChange> = (0..1000).map(|n| RecordChange::Delete(upsert(n).record().clone())).collect();
        assert_eq!(batches(&deletes).len(), 1, "a DELETE counts once");
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn long_values_cut_a_batch_by_characters_and_one_name_never_appears_twice_in_a_batch() {
        let long = |n: usize| {
            RecordChange::Delete(ARecord {
                name: format!("r{n}.example.com"),
                ttl: 60,
                values: vec!["x".repeat(10_000)],
            })
        };
        let got: Vec<usize> = batches(&[long(1), long(2), long(3), long(4)]).iter().map(Vec::len).collect();
        assert_eq!(got, [3, 1], "32,000 characters at most");
        let delete = RecordChange::Delete(upsert(7).record().clone());
        let got: Vec<usize> = batches(&[delete, upsert(8), upsert(7)]).iter().map(Vec::len).collect();
        assert_eq!(got, [2, 1]);
    }
}
