//! The DynamoDB port of the eip job's binding table, and its
//! `aws-sdk-dynamodb` adapter. The table's partition key is `PublicIp`
//! (string); a claim is a conditional write, which is what keeps two
//! invocations from ever handing one address to two nodes.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::aws::error::{AwsError, sdk_error};

/// A conditional write found the item in another state.
pub const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailedException";

/// The binding item, keyed by `PublicIp`; the attribute names are the item's
/// own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Binding {
    pub public_ip: String,
    pub allocation_id: String,
    pub instance_id: Option<String>,
    pub association_id: Option<String>,
    pub dns_name: Option<String>,
    pub allocated: bool,
    pub updated_at: u64,
}

impl Binding {
    /// Same binding, whenever it was written: `updated_at` alone never calls
    /// for a write.
    pub fn same_binding(&self, other: &Binding) -> bool {
        Binding { updated_at: 0, ..self.clone() } == Binding { updated_at: 0, ..other.clone() }
    }
}

/// The binding table. Implemented by [`AwsBindings`] and by `FakeBindings`
/// (feature `fakes`).
pub trait BindingStore: Send + Sync {
    /// Every item of the table.
    fn scan(&self, table: &str) -> impl Future<Output = Result<Vec<Binding>, AwsError>> + Send;

    /// Writes `item` only if the address is not allocated to anyone but
    /// `owners`: the item is absent, or `Allocated` is false, or it names no
    /// instance, or one of `owners` (the instance the write is for, and the one
    /// the item named when it was read). Never unconditional. A refusal is
    /// [`CONDITIONAL_CHECK_FAILED`].
    fn put(&self, table: &str, item: &Binding, owners: &[&str]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The condition of [`BindingStore::put`] with this many owners
/// (`:owner0`, `:owner1`, ...).
pub fn put_condition(owners: usize) -> String {
    // An allocated item that names no instance was never a claim (a claim
    // always names its node): nobody can finish it, so it is claimable.
    let mut condition =
        "attribute_not_exists(PublicIp) OR Allocated = :free OR attribute_not_exists(InstanceId)".to_owned();
    if owners > 0 {
        let names: Vec<String> = (0..owners).map(|k| format!(":owner{k}")).collect();
        condition.push_str(&format!(" OR InstanceId IN ({})", names.join(", ")));
    }
    condition
}

/// The [`BindingStore`] port over `aws-sdk-dynamodb`.
#[derive(Clone, Debug)]
pub struct AwsBindings {
    client: aws_sdk_dynamodb::Client,
}

impl AwsBindings {
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        AwsBindings { client }
    }
}

fn string(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

/// An item as the table holds it; `None` for one without its key.
pub fn binding_from_item(item: &HashMap<String, AttributeValue>) -> Option<Binding> {
    Some(Binding {
        public_ip: string(item, "PublicIp")?,
        allocation_id: string(item, "AllocationId").unwrap_or_default(),
        instance_id: string(item, "InstanceId"),
        association_id: string(item, "AssociationId"),
        dns_name: string(item, "DnsName"),
        allocated: item.get("Allocated").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        updated_at: item.get("UpdatedAt").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
    })
}

/// The item's attributes; absent options are absent attributes.
pub fn item_from_binding(b: &Binding) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("PublicIp".to_owned(), AttributeValue::S(b.public_ip.clone())),
        ("AllocationId".to_owned(), AttributeValue::S(b.allocation_id.clone())),
        ("Allocated".to_owned(), AttributeValue::Bool(b.allocated)),
        ("UpdatedAt".to_owned(), AttributeValue::N(b.updated_at.to_string())),
    ]);
    for (key, value) in [("InstanceId", &b.instance_id), ("AssociationId", &b.association_id), ("DnsName", &b.dns_name)]
    {
        if let Some(value) = value {
            item.insert(key.to_owned(), AttributeValue::S(value.clone()));
        }
    }
    item
}

impl BindingStore for AwsBindings {
    async fn scan(&self, table: &str) -> Result<Vec<Binding>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for _ in 0..crate::aws::ec2::MAX_PAGES {
            let out = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            items.extend(out.items().iter().filter_map(binding_from_item));
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
        Err(AwsError::service("Scan", "TooManyPages", format!("more than {} pages", crate::aws::ec2::MAX_PAGES)))
    }

    async fn put(&self, table: &str, item: &Binding, owners: &[&str]) -> Result<(), AwsError> {
        let mut req = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item_from_binding(item)))
            .condition_expression(put_condition(owners.len()))
            .expression_attribute_values(":free", AttributeValue::Bool(false));
        for (k, owner) in owners.iter().enumerate() {
            req = req.expression_attribute_values(format!(":owner{k}"), AttributeValue::S((*owner).to_owned()));
        }
        req.send().await.map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }
}
