//! An in-memory [`Route53`] zone: A records by name; `UPSERT` replaces,
//! `DELETE` must name the record exactly (TTL and values), and a batch is
//! all or nothing (`InvalidChangeBatch`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::aws::error::AwsError;
use crate::aws::route53::{ARecord, RecordChange, Route53};
use crate::fake::faults::Faults;

#[derive(Default)]
struct State {
    records: BTreeMap<String, ARecord>,
    batches: usize,
    faults: Faults,
}

#[derive(Default)]
pub struct FakeRoute53 {
    state: Mutex<State>,
}

impl FakeRoute53 {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, record: ARecord) {
        self.lock().records.insert(record.name.clone(), record);
    }

    pub fn remove(&self, name: &str) {
        self.lock().records.remove(name);
    }

    pub fn records(&self) -> Vec<ARecord> {
        self.lock().records.values().cloned().collect()
    }

    /// `ChangeResourceRecordSets` calls made.
    pub fn batches(&self) -> usize {
        self.lock().batches
    }

    pub fn fail(&self, operation: &'static str, code: &str, times: usize) {
        self.lock().faults.add(operation, None, code, times);
    }
}

impl Route53 for FakeRoute53 {
    async fn a_records(&self, _zone_id: &str, suffix: &str) -> Result<Vec<ARecord>, AwsError> {
        let mut state = self.lock();
        state.faults.check("ListResourceRecordSets", None)?;
        let suffix = format!(".{suffix}");
        Ok(state.records.values().filter(|r| r.name.ends_with(&suffix)).cloned().collect())
    }

    async fn change(&self, _zone_id: &str, changes: &[RecordChange]) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.batches += 1;
        state.faults.check("ChangeResourceRecordSets", None)?;
        for change in changes {
            if let RecordChange::Delete(record) = change
                && state.records.get(&record.name) != Some(record)
            {
                return Err(AwsError::service(
                    "ChangeResourceRecordSets",
                    "InvalidChangeBatch",
                    format!(
                        "Tried to delete resource record set [name='{}.', type='A'] but it was not found",
                        record.name
                    ),
                ));
            }
        }
        for change in changes {
            match change {
                RecordChange::Upsert(record) => state.records.insert(record.name.clone(), record.clone()),
                RecordChange::Delete(record) => state.records.remove(&record.name),
            };
        }
        Ok(())
    }
}
