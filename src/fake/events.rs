//! An in-memory [`EventBus`]: keeps every entry it accepts, in order, and
//! can refuse whole calls (an AWS error code, as a throttled or denied
//! `PutEvents` answers) or single entries of an accepted call (as
//! EventBridge does with `FailedEntryCount`).

use std::sync::{Mutex, MutexGuard};

use crate::aws::error::AwsError;
use crate::aws::events::{EntryFailure, EventBus, EventEntry, MAX_BYTES_PER_CALL, MAX_ENTRIES_PER_CALL};
use crate::fake::faults::Faults;

#[derive(Default)]
struct State {
    entries: Vec<EventEntry>,
    calls: usize,
    faults: Faults,
    /// Entries to refuse inside accepted calls, with this code.
    refuse_entries: Option<(String, usize)>,
}

#[derive(Default)]
pub struct FakeEventBridge {
    state: Mutex<State>,
}

impl FakeEventBridge {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every entry accepted, in the order of the calls.
    pub fn entries(&self) -> Vec<EventEntry> {
        self.lock().entries.clone()
    }

    /// The details of the entries accepted, parsed.
    pub fn details(&self) -> Vec<serde_json::Value> {
        self.lock().entries.iter().map(|e| serde_json::from_str(&e.detail).unwrap_or_default()).collect()
    }

    /// `PutEvents` calls made (refused ones too).
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// The next `times` calls answer `code`.
    pub fn fail(&self, code: &str, times: usize) {
        self.lock().faults.add("PutEvents", None, code, times);
    }

    /// The next `times` entries of accepted calls are refused with `code`.
    pub fn refuse_entries(&self, code: &str, times: usize) {
        self.lock().refuse_entries = Some((code.to_owned(), times));
    }
}

impl EventBus for FakeEventBridge {
    async fn put_events(&self, entries: &[EventEntry]) -> Result<Vec<EntryFailure>, AwsError> {
        let mut state = self.lock();
        state.calls += 1;
        state.faults.check("PutEvents", None)?;
        if entries.is_empty() || entries.len() > MAX_ENTRIES_PER_CALL {
            return Err(AwsError::service(
                "PutEvents",
                "ValidationException",
                format!("{} entries: a call takes 1 to {MAX_ENTRIES_PER_CALL}", entries.len()),
            ));
        }
        let bytes: usize = entries.iter().map(EventEntry::size).sum();
        if bytes > MAX_BYTES_PER_CALL {
            return Err(AwsError::service(
                "PutEvents",
                "ValidationException",
                "total size of the entries exceeds 256 KB",
            ));
        }
        let mut failures = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&entry.detail).is_err() {
                failures.push(EntryFailure {
                    index,
                    code: "MalformedDetail".into(),
                    message: "Detail is malformed.".into(),
                });
                continue;
            }
            if let Some((code, left)) = state.refuse_entries.as_mut().filter(|(_, left)| *left > 0) {
                *left -= 1;
                failures.push(EntryFailure { index, code: code.clone(), message: "injected fault".into() });
                continue;
            }
            state.entries.push(entry.clone());
        }
        Ok(failures)
    }
}
