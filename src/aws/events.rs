//! EventBridge, the door the change events go out through: one narrow
//! trait ([`EventBus`], a `PutEvents` call), its SDK adapter, and the
//! limits of one call.

use std::future::Future;

use crate::aws::error::{AwsError, sdk_error};

/// Entries one `PutEvents` call takes at most.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// Bytes one `PutEvents` call takes at most, counted as EventBridge counts
/// an entry's size (source, detail type, detail, resources, and 14 bytes
/// for the time).
pub const MAX_BYTES_PER_CALL: usize = 256 * 1024;

/// One event to put on a bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventEntry {
    /// The bus's name or ARN.
    pub bus: String,
    pub source: String,
    pub detail_type: String,
    /// ARNs of the resources the event is about.
    pub resources: Vec<String>,
    /// The detail, a JSON object.
    pub detail: String,
}

impl EventEntry {
    /// The entry's size as EventBridge counts it against a call's limit.
    pub fn size(&self) -> usize {
        14 + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// An entry of an accepted call that EventBridge refused on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFailure {
    /// The entry's position in the call.
    pub index: usize,
    pub code: String,
    pub message: String,
}

/// `PutEvents`, and nothing else.
pub trait EventBus: Send + Sync {
    /// Puts up to [`MAX_ENTRIES_PER_CALL`] entries. An error is the whole
    /// call's; an accepted call can still refuse single entries.
    fn put_events(&self, entries: &[EventEntry]) -> impl Future<Output = Result<Vec<EntryFailure>, AwsError>> + Send;
}

/// Entries cut into calls: at most [`MAX_ENTRIES_PER_CALL`] and
/// [`MAX_BYTES_PER_CALL`] each, in order.
pub fn batches(entries: Vec<EventEntry>) -> Vec<Vec<EventEntry>> {
    let mut out: Vec<Vec<EventEntry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.size();
        let fits = out.last().is_some_and(|b| b.len() < MAX_ENTRIES_PER_CALL && bytes + size <= MAX_BYTES_PER_CALL);
        if !fits {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("a batch was just pushed").push(entry);
    }
    out
}

/// [`EventBus`] on the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsEventBridge {
    client: aws_sdk_eventbridge::Client,
}

impl AwsEventBridge {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        AwsEventBridge { client }
    }
}

impl EventBus for AwsEventBridge {
    async fn put_events(&self, entries: &[EventEntry]) -> Result<Vec<EntryFailure>, AwsError> {
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let sdk_entries = entries
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&e.bus)
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .set_resources(Some(e.resources.clone()))
                    .detail(&e.detail)
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(sdk_entries))
            .send()
            .await
            .map_err(|e| sdk_error("PutEvents", e))?;
        Ok(out
            .entries()
            .iter()
            .enumerate()
            .filter_map(|(index, result)| {
                let code = result.error_code()?;
                Some(EntryFailure {
                    index,
                    code: code.to_owned(),
                    message: result.error_message().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail_len: usize) -> EventEntry {
        EventEntry {
            bus: "default".into(),
            source: "kube-rtsync".into(),
            detail_type: "routes change".into(),
            resources: vec![],
            detail: "x".repeat(detail_len),
        }
    }

    #[test]
    fn entries_go_ten_to_a_call_in_order() {
        let cases = [(0, vec![]), (1, vec![1]), (10, vec![10]), (11, vec![10, 1]), (25, vec![10, 10, 5])];
        for (n, expected) in cases {
            let entries: Vec<EventEntry> = (0..n).map(entry).collect();
            let calls = batches(entries);
            assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), expected, "{n} entries");
            let order: Vec<usize> = calls.iter().flatten().map(|e| e.detail.len()).collect();
            assert_eq!(order, (0..n).collect::<Vec<_>>(), "{n} entries keep their order");
        }
    }

    #[test]
    fn a_call_never_exceeds_256_kib() {
        // 14 + 11 + 13 = 38 bytes besides the detail: three entries of 100,000
        // bytes of detail cannot share a call.
        let calls = batches(vec![entry(100_000), entry(100_000), entry(100_000)]);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(entry(100_000).size(), 100_038);
    }
}
