//! An in-memory binding table with DynamoDB's conditional-write semantics.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::aws::dynamodb::{Binding, BindingStore, CONDITIONAL_CHECK_FAILED};
use crate::aws::error::AwsError;
use crate::fake::faults::Faults;

#[derive(Default)]
struct State {
    items: BTreeMap<String, Binding>,
    puts: usize,
    faults: Faults,
}

#[derive(Default)]
pub struct FakeBindings {
    state: Mutex<State>,
}

impl FakeBindings {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn items(&self) -> Vec<Binding> {
        self.lock().items.values().cloned().collect()
    }

    pub fn item(&self, public_ip: &str) -> Option<Binding> {
        self.lock().items.get(public_ip).cloned()
    }

    pub fn insert(&self, item: Binding) {
        self.lock().items.insert(item.public_ip.clone(), item);
    }

    pub fn remove(&self, public_ip: &str) {
        self.lock().items.remove(public_ip);
    }

    pub fn puts(&self) -> usize {
        self.lock().puts
    }

    pub fn fail(&self, operation: &'static str, code: &str, times: usize) {
        self.lock().faults.add(operation, None, code, times);
    }

    /// The calls of `operation` after the first `skip` fail.
    pub fn fail_after(&self, operation: &'static str, skip: usize, code: &str, times: usize) {
        self.lock().faults.add_after(operation, None, code, skip, times);
    }
}

impl BindingStore for FakeBindings {
    async fn scan(&self, _table: &str) -> Result<Vec<Binding>, AwsError> {
        let mut state = self.lock();
        state.faults.check("Scan", None)?;
        Ok(state.items.values().cloned().collect())
    }

    async fn put(&self, _table: &str, item: &Binding, owners: &[&str]) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.puts += 1;
        state.faults.check("PutItem", None)?;
        if let Some(current) = state.items.get(&item.public_ip)
            && current.allocated
            && current.instance_id.as_deref().is_some_and(|id| !owners.contains(&id))
        {
            return Err(AwsError::service("PutItem", CONDITIONAL_CHECK_FAILED, "The conditional request failed"));
        }
        state.items.insert(item.public_ip.clone(), item.clone());
        Ok(())
    }
}
