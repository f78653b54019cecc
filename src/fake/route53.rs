//! An in-memory [`Route53`] zone: A records by name; `UPSERT` replaces,
//! `DELETE` must name the record exactly (TTL and values), a batch is all
//! or nothing (`InvalidChangeBatch`), holds one change per name, and keeps
//! within Route 53's limits of `ResourceRecord` elements and characters.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::aws::error::AwsError;
use crate::aws::route53::{ARecord, MAX_RESOURCE_RECORDS, MAX_VALUE_CHARACTERS, RecordChange, Route53};
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
        let refuse =
            |message: String| Err(AwsError::service("ChangeResourceRecordSets", "InvalidChangeBatch", message));
        let (records, characters) =
            changes.iter().map(RecordChange::weight).fold((0, 0), |(r, c), (dr, dc)| (r + dr, c + dc));
        if records > MAX_RESOURCE_RECORDS {
            return refuse(format!("Number of records limit of {MAX_RESOURCE_RECORDS} exceeded."));
        }
        if characters > MAX_VALUE_CHARACTERS {
            return refuse(format!("Number of characters limit of {MAX_VALUE_CHARACTERS} exceeded."));
        }
        let mut names = std::collections::BTreeSet::new();
        for change in changes {
            if !names.insert(change.record().name.to_ascii_lowercase()) {
                return refuse(format!(
                    "The request contains an invalid set of changes for a resource record set 'A {}.'",
                    change.record().name
                ));
            }
        }
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
