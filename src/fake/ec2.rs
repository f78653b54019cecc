//! An in-memory EC2 that behaves like EC2 where kube-rtsync depends on it:
//! filters with wildcards, pagination, the error codes of route writes,
//! blackholes, Elastic IP associations (one per private address, the old
//! one taken off), the write bucket, and injected faults. Public (not
//! `cfg(test)`, behind the `fakes` feature) so that the integration tests in
//! `tests/`, the benchmarks and the examples can use it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::aws::ec2::model::{
    Address, Destination, Filter, Instance, InstanceStatus, Leaving, NatGateway, Page, Route, RouteState, RouteTable,
    Subnet, Target,
};
use crate::aws::ec2::{
    ALREADY_ASSOCIATED, ASSOCIATION_NOT_FOUND, Addresses, AwsError, FailureKind, INVALID_PARAMETER_VALUE, Instances,
    LEAVING_EVENT_CODES, LeavingInstances, Nats, ROUTE_ALREADY_EXISTS, ROUTE_NOT_FOUND, ROUTE_TABLE_NOT_FOUND,
    RouteTablePage, RouteTables, StatusCheck,
};

/// The EC2 operations the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    DescribeRouteTables,
    CreateRoute,
    ReplaceRoute,
    DeleteRoute,
    DescribeSubnets,
    DescribeInstances,
    DescribeInstanceStatus,
    DescribeNatGateways,
    ModifyInstanceAttribute,
    CreateTags,
    DeleteTags,
    DescribeAddresses,
    AssociateAddress,
    DisassociateAddress,
    DescribeSpotInstanceRequests,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::DescribeRouteTables => "DescribeRouteTables",
            Operation::CreateRoute => "CreateRoute",
            Operation::ReplaceRoute => "ReplaceRoute",
            Operation::DeleteRoute => "DeleteRoute",
            Operation::DescribeSubnets => "DescribeSubnets",
            Operation::DescribeInstances => "DescribeInstances",
            Operation::DescribeInstanceStatus => "DescribeInstanceStatus",
            Operation::DescribeNatGateways => "DescribeNatGateways",
            Operation::ModifyInstanceAttribute => "ModifyInstanceAttribute",
            Operation::CreateTags => "CreateTags",
            Operation::DeleteTags => "DeleteTags",
            Operation::DescribeAddresses => "DescribeAddresses",
            Operation::AssociateAddress => "AssociateAddress",
            Operation::DisassociateAddress => "DisassociateAddress",
            Operation::DescribeSpotInstanceRequests => "DescribeSpotInstanceRequests",
        }
    }

    fn is_describe(self) -> bool {
        self.name().starts_with("Describe")
    }
}

/// A successful route write, as the fake recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub operation: Operation,
    pub route_table_id: String,
    pub destination: Destination,
    pub target: Option<Target>,
}

/// Calls made, successful or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub describe: usize,
    pub create: usize,
    pub replace: usize,
    pub delete: usize,
    /// Describes of subnets, instances, instance status and NAT gateways.
    pub describe_other: usize,
    /// Attribute and tag writes.
    pub writes_other: usize,
    /// Instance statuses `DescribeInstanceStatus` answered with, in all.
    pub statuses_read: usize,
}

impl CallCounts {
    pub fn writes(&self) -> usize {
        self.create + self.replace + self.delete
    }
}

/// An injected failure.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Only this operation (any, if `None`).
    pub operation: Option<Operation>,
    /// Only route writes (not describes).
    pub writes_only: bool,
    /// Only writes to this table (any, if `None`).
    pub route_table_id: Option<String>,
    /// The error to answer.
    pub kind: FailureKind,
    pub code: Option<String>,
    /// Fail only this many matching calls (every one, if `None`).
    pub times: Option<usize>,
    /// Fail only every n-th matching call (1 = every call).
    pub every: usize,
    seen: usize,
}

impl Fault {
    /// Every matching call fails with this AWS error code.
    pub fn code(code: &str) -> Self {
        Fault {
            operation: None,
            writes_only: false,
            route_table_id: None,
            kind: FailureKind::Service,
            code: Some(code.to_owned()),
            times: None,
            every: 1,
            seen: 0,
        }
    }

    /// Every matching call times out.
    pub fn timeout() -> Self {
        Fault { kind: FailureKind::Timeout, code: None, ..Fault::code("") }
    }

    pub fn on(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Only route writes fail; describes are served.
    pub fn on_writes(mut self) -> Self {
        self.writes_only = true;
        self
    }

    pub fn on_table(mut self, route_table_id: &str) -> Self {
        self.route_table_id = Some(route_table_id.to_owned());
        self
    }

    pub fn times(mut self, times: usize) -> Self {
        self.times = Some(times);
        self
    }

    pub fn every(mut self, n: usize) -> Self {
        self.every = n.max(1);
        self
    }

    fn matches(&self, operation: Operation, table: Option<&str>) -> bool {
        self.operation.is_none_or(|op| op == operation)
            && !(self.writes_only && operation.is_describe())
            && self.route_table_id.as_deref().is_none_or(|t| Some(t) == table)
            && self.times != Some(0)
    }
}

/// A change made by "someone else" just before the next write.
type Interleaved = Box<dyn FnOnce(&mut BTreeMap<String, RouteTable>) + Send>;

#[derive(Default)]
struct State {
    tables: BTreeMap<String, RouteTable>,
    page_size: Option<usize>,
    calls: CallCounts,
    writes: Vec<Write>,
    faults: Vec<Fault>,
    interleaved: Option<Interleaved>,
    /// Changes to make when `DescribeRouteTables` is called for the n-th time.
    on_describe: Vec<(usize, Interleaved)>,
    /// EC2's own request-rate bucket for mutating calls, when modelled.
    bucket: Option<Ec2Bucket>,
    /// Routes a table may hold before `CreateRoute` answers
    /// `RouteLimitExceeded`.
    route_limit: Option<usize>,
    subnets: BTreeMap<String, Subnet>,
    instances: BTreeMap<String, Instance>,
    statuses: BTreeMap<String, InstanceStatus>,
    nat_gateways: BTreeMap<String, NatGateway>,
    addresses: BTreeMap<String, Address>,
    associations: usize,
    /// Instances whose Spot request is marked for termination.
    spot_interruptions: std::collections::BTreeSet<String>,
    /// Scheduled events by instance: code, not-before, and whether it is over
    /// (completed or cancelled).
    scheduled_events: BTreeMap<String, (String, Option<String>, bool)>,
}

/// EC2's token bucket for mutating actions: `capacity` requests, refilled
/// at `per_second`; a write finding it empty is refused with
/// `RequestLimitExceeded`. Runs on tokio's clock, so paused-time tests see
/// it exactly.
struct Ec2Bucket {
    capacity: f64,
    per_second: f64,
    /// Taken meanwhile by another writer of the account (the cluster's own
    /// route controller), per second.
    others: f64,
    tokens: f64,
    at: tokio::time::Instant,
    rejected: usize,
}

/// An in-memory EC2 holding route tables.
#[derive(Default)]
pub struct FakeEc2 {
    state: Mutex<State>,
}

impl FakeEc2 {
    pub fn new(tables: impl IntoIterator<Item = RouteTable>) -> Self {
        let fake = FakeEc2::default();
        for table in tables {
            fake.insert(table);
        }
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds or replaces a table.
    pub fn insert(&self, table: RouteTable) {
        self.lock().tables.insert(table.id.clone(), table);
    }

    /// Answers `DescribeRouteTables` in pages of this size (default: all in
    /// one).
    pub fn with_page_size(self, size: usize) -> Self {
        self.lock().page_size = Some(size.max(1));
        self
    }

    /// Meters writes with EC2's bucket shape (about 50, refilled at 5/s).
    pub fn with_write_bucket(self, capacity: u32, per_second: f64) -> Self {
        self.lock().bucket = Some(Ec2Bucket {
            capacity: f64::from(capacity),
            per_second,
            others: 0.0,
            tokens: f64::from(capacity),
            at: tokio::time::Instant::now(),
            rejected: 0,
        });
        self
    }

    /// Refuses creates in a table that already holds `limit` routes, as
    /// EC2's route table quota does.
    pub fn with_route_limit(self, limit: usize) -> Self {
        self.lock().route_limit = Some(limit);
        self
    }

    pub fn insert_subnet(&self, subnet: Subnet) {
        self.lock().subnets.insert(subnet.id.clone(), subnet);
    }

    /// Adds or replaces an instance (its status checks stay as they were).
    pub fn insert_instance(&self, instance: Instance) {
        self.lock().instances.insert(instance.id.clone(), instance);
    }

    pub fn instance(&self, id: &str) -> Option<Instance> {
        self.lock().instances.get(id).cloned()
    }

    /// Sets an instance's status checks (system, instance).
    pub fn set_status(&self, id: &str, system: &str, instance: &str) {
        let status =
            InstanceStatus { id: id.to_owned(), system: Some(system.to_owned()), instance: Some(instance.to_owned()) };
        self.lock().statuses.insert(id.to_owned(), status);
    }

    /// The instance's Spot request is marked for termination: the interruption
    /// warning.
    pub fn warn_spot_interruption(&self, id: &str) {
        self.lock().spot_interruptions.insert(id.to_owned());
    }

    /// A scheduled event (`instance-stop`, `instance-retirement`,
    /// `system-reboot`, ...) on the instance; `over`: completed or cancelled,
    /// as EC2 keeps such events a while.
    pub fn schedule_event(&self, id: &str, code: &str, not_before: Option<&str>, over: bool) {
        self.lock().scheduled_events.insert(id.to_owned(), (code.to_owned(), not_before.map(str::to_owned), over));
    }

    pub fn insert_address(&self, address: Address) {
        self.lock().addresses.insert(address.allocation_id.clone(), address);
    }

    pub fn addresses(&self) -> Vec<Address> {
        self.lock().addresses.values().cloned().collect()
    }

    pub fn insert_nat_gateway(&self, gateway: NatGateway) {
        self.lock().nat_gateways.insert(gateway.id.clone(), gateway);
    }

    /// Changes an instance in place (a stop, a start, a tag).
    pub fn edit_instance(&self, id: &str, f: impl FnOnce(&mut Instance)) {
        if let Some(instance) = self.lock().instances.get_mut(id) {
            f(instance);
        }
    }

    pub fn edit_nat_gateway(&self, id: &str, f: impl FnOnce(&mut NatGateway)) {
        if let Some(gateway) = self.lock().nat_gateways.get_mut(id) {
            f(gateway);
        }
    }

    /// Another writer of the account takes `per_second` of the modelled
    /// bucket's refill (as the cluster's route controller does).
    pub fn with_other_writer(self, per_second: f64) -> Self {
        if let Some(bucket) = self.lock().bucket.as_mut() {
            bucket.others = per_second;
        }
        self
    }

    /// Writes the modelled EC2 bucket refused.
    pub fn rejected_by_bucket(&self) -> usize {
        self.lock().bucket.as_ref().map_or(0, |b| b.rejected)
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn table(&self, id: &str) -> Option<RouteTable> {
        self.lock().tables.get(id).cloned()
    }

    pub fn tables(&self) -> Vec<RouteTable> {
        self.lock().tables.values().cloned().collect()
    }

    pub fn calls(&self) -> CallCounts {
        self.lock().calls
    }

    /// Successful writes, in the order they happened.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// Forgets the call counts and the write log.
    pub fn reset_counters(&self) {
        let mut state = self.lock();
        state.calls = CallCounts::default();
        state.writes.clear();
    }

    /// Runs `change` on the tables right before the next write is served:
    /// another writer racing kube-rtsync between its describe and its writes.
    pub fn interleave(&self, change: impl FnOnce(&mut BTreeMap<String, RouteTable>) + Send + 'static) {
        self.lock().interleaved = Some(Box::new(change));
    }

    /// Runs `change` on the tables right before the `nth` call (counting
    /// from 1) to `DescribeRouteTables` is served: the cluster's controller
    /// writing a node's route while kube-rtsync waits for it.
    pub fn on_describe(&self, nth: usize, change: impl FnOnce(&mut BTreeMap<String, RouteTable>) + Send + 'static) {
        self.lock().on_describe.push((nth, Box::new(change)));
    }

    /// Turns every route pointing at `target` into a blackhole, as EC2
    /// does when an instance or interface goes away.
    pub fn blackhole(&self, target: &Target) {
        for table in self.lock().tables.values_mut() {
            for route in table.routes.iter_mut().filter(|r| &r.target == target) {
                route.state = RouteState::Blackhole;
            }
        }
    }

    /// Runs `f` on the stored table (to add or change routes behind
    /// kube-rtsync's back, as the cluster's controller would).
    pub fn edit(&self, id: &str, f: impl FnOnce(&mut RouteTable)) {
        if let Some(table) = self.lock().tables.get_mut(id) {
            f(table);
        }
    }

    fn check_faults(state: &mut State, operation: Operation, table: Option<&str>) -> Result<(), AwsError> {
        for fault in state.faults.iter_mut().filter(|f| f.matches(operation, table)) {
            fault.seen += 1;
            if fault.seen % fault.every != 0 {
                continue;
            }
            if let Some(times) = fault.times.as_mut() {
                *times -= 1;
            }
            return Err(AwsError {
                operation: operation.name(),
                kind: fault.kind,
                code: fault.code.clone(),
                message: format!("injected {}", fault.code.as_deref().unwrap_or("timeout")),
            });
        }
        Ok(())
    }

    fn write(
        &self,
        operation: Operation,
        route_table_id: &str,
        destination: &Destination,
        target: Option<&Target>,
    ) -> Result<(), AwsError> {
        let mut state = self.lock();
        match operation {
            Operation::CreateRoute => state.calls.create += 1,
            Operation::ReplaceRoute => state.calls.replace += 1,
            Operation::DeleteRoute => state.calls.delete += 1,
            _ => state.calls.writes_other += 1,
        }
        if let Some(change) = state.interleaved.take() {
            change(&mut state.tables);
        }
        Self::check_faults(&mut state, operation, Some(route_table_id))?;
        let name = operation.name();
        let route_limit = state.route_limit;
        if let Some(bucket) = state.bucket.as_mut() {
            let now = tokio::time::Instant::now();
            bucket.tokens = (bucket.tokens
                + now.duration_since(bucket.at).as_secs_f64() * (bucket.per_second - bucket.others))
                .min(bucket.capacity);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                bucket.rejected += 1;
                return Err(AwsError::service(name, "RequestLimitExceeded", "Request limit exceeded."));
            }
            bucket.tokens -= 1.0;
        }
        let table = state.tables.get_mut(route_table_id).ok_or_else(|| {
            AwsError::service(
                name,
                ROUTE_TABLE_NOT_FOUND,
                format!("The routeTable ID '{route_table_id}' does not exist"),
            )
        })?;
        let existing = table.routes.iter().position(|r| &r.destination == destination);
        if operation == Operation::CreateRoute
            && existing.is_none()
            && route_limit.is_some_and(|l| table.routes.len() >= l)
        {
            return Err(AwsError::service(
                name,
                crate::aws::ec2::ROUTE_LIMIT_EXCEEDED,
                "The maximum number of routes has been reached.",
            ));
        }
        match (operation, existing, target) {
            (_, _, Some(t)) if !t.is_copyable() => {
                return Err(AwsError::service(name, INVALID_PARAMETER_VALUE, format!("invalid target {t:?}")));
            }
            (Operation::CreateRoute, Some(_), _) => {
                return Err(AwsError::service(
                    name,
                    ROUTE_ALREADY_EXISTS,
                    format!("The route identified by {destination} already exists."),
                ));
            }
            (Operation::CreateRoute, None, Some(t)) => table.routes.push(Route::active(destination.clone(), t.clone())),
            (Operation::ReplaceRoute, None, _) => {
                return Err(AwsError::service(
                    name,
                    INVALID_PARAMETER_VALUE,
                    format!(
                        "There is no route defined for '{destination}' in the route table. Use CreateRoute instead."
                    ),
                ));
            }
            (Operation::ReplaceRoute, Some(i), Some(t)) => {
                table.routes[i].target = t.clone();
                table.routes[i].state = RouteState::Active;
            }
            (Operation::DeleteRoute, None, _) => {
                return Err(AwsError::service(
                    name,
                    ROUTE_NOT_FOUND,
                    format!("no route with destination-cidr-block {destination} in route table {route_table_id}"),
                ));
            }
            (Operation::DeleteRoute, Some(i), _) => {
                table.routes.remove(i);
            }
            _ => {
                return Err(AwsError::service(name, INVALID_PARAMETER_VALUE, "missing target"));
            }
        }
        state.writes.push(Write {
            operation,
            route_table_id: route_table_id.to_owned(),
            destination: destination.clone(),
            target: target.cloned(),
        });
        Ok(())
    }
}

impl RouteTables for FakeEc2 {
    async fn describe_route_tables(
        &self,
        filters: &[Filter],
        next_token: Option<String>,
    ) -> Result<RouteTablePage, AwsError> {
        let mut state = self.lock();
        state.calls.describe += 1;
        let nth = state.calls.describe;
        if let Some(i) = state.on_describe.iter().position(|(n, _)| *n == nth) {
            let (_, change) = state.on_describe.remove(i);
            change(&mut state.tables);
        }
        Self::check_faults(&mut state, Operation::DescribeRouteTables, None)?;
        let mut matching = Vec::new();
        for table in state.tables.values() {
            if table_matches(table, filters)? {
                matching.push(table.clone());
            }
        }
        let start = match next_token {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                AwsError::service("DescribeRouteTables", "InvalidPaginationToken", format!("bad token {token:?}"))
            })?,
        };
        let size = state.page_size.unwrap_or(usize::MAX);
        let end = start.saturating_add(size).min(matching.len());
        Ok(RouteTablePage {
            route_tables: matching.get(start..end).map(<[_]>::to_vec).unwrap_or_default(),
            next_token: (end < matching.len()).then(|| end.to_string()),
        })
    }

    async fn create_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
        target: &Target,
    ) -> Result<(), AwsError> {
        self.write(Operation::CreateRoute, route_table_id, destination, Some(target))
    }

    async fn replace_route(
        &self,
        route_table_id: &str,
        destination: &Destination,
        target: &Target,
    ) -> Result<(), AwsError> {
        self.write(Operation::ReplaceRoute, route_table_id, destination, Some(target))
    }

    async fn delete_route(&self, route_table_id: &str, destination: &Destination) -> Result<(), AwsError> {
        self.write(Operation::DeleteRoute, route_table_id, destination, None)
    }
}

/// One page of everything, or nothing when a fault fires.
fn describe<T: Clone>(
    state: &mut State,
    operation: Operation,
    items: impl FnOnce(&State) -> Result<Vec<T>, AwsError>,
) -> Result<Page<T>, AwsError> {
    state.calls.describe_other += 1;
    FakeEc2::check_faults(state, operation, None)?;
    Ok(Page { items: items(state)?, next_token: None })
}

/// The filters the fake serves for instances, subnets and NAT gateways.
fn resource_matches(
    operation: Operation,
    id: &str,
    vpc_id: &str,
    tags: &BTreeMap<String, String>,
    filters: &[Filter],
) -> Result<bool, AwsError> {
    for filter in filters {
        let value = match filter.name.as_str() {
            "vpc-id" => Some(vpc_id),
            "instance-id" => Some(id),
            name => match name.strip_prefix("tag:") {
                Some(key) => tags.get(key).map(String::as_str),
                None => {
                    return Err(AwsError::service(
                        operation.name(),
                        "InvalidParameterValue",
                        format!("The filter '{name}' is invalid"),
                    ));
                }
            },
        };
        if !value.is_some_and(|v| filter.values.iter().any(|p| glob(p, v))) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Instances for FakeEc2 {
    async fn describe_instances(&self, filters: &[Filter], _: Option<String>) -> Result<Page<Instance>, AwsError> {
        describe(&mut self.lock(), Operation::DescribeInstances, |state| {
            let mut out = Vec::new();
            for instance in state.instances.values() {
                if resource_matches(
                    Operation::DescribeInstances,
                    &instance.id,
                    &instance.vpc_id,
                    &instance.tags,
                    filters,
                )? {
                    out.push(instance.clone());
                }
            }
            Ok(out)
        })
    }
}

impl LeavingInstances for FakeEc2 {
    async fn describe_spot_interruptions(&self, _: Option<String>) -> Result<Page<String>, AwsError> {
        describe(&mut self.lock(), Operation::DescribeSpotInstanceRequests, |state| {
            Ok(state.spot_interruptions.iter().filter(|id| state.instances.contains_key(*id)).cloned().collect())
        })
    }

    async fn describe_scheduled_departures(&self, _: Option<String>) -> Result<Page<(String, Leaving)>, AwsError> {
        describe(&mut self.lock(), Operation::DescribeInstanceStatus, |state| {
            // The server-side filter: only the leaving codes, only running
            // instances (no IncludeAllInstances).
            Ok(state
                .scheduled_events
                .iter()
                .filter(|(id, (code, _, over))| {
                    !over
                        && LEAVING_EVENT_CODES.contains(&code.as_str())
                        && state.instances.get(*id).is_some_and(|i| i.state == "running")
                })
                .map(|(id, (code, not_before, _))| {
                    (id.clone(), Leaving::Scheduled { code: code.clone(), not_before: not_before.clone() })
                })
                .collect())
        })
    }
}

impl Nats for FakeEc2 {
    async fn describe_subnets(&self, filters: &[Filter], _: Option<String>) -> Result<Page<Subnet>, AwsError> {
        let no_tags = BTreeMap::new();
        describe(&mut self.lock(), Operation::DescribeSubnets, |state| {
            let mut out = Vec::new();
            for subnet in state.subnets.values() {
                if resource_matches(Operation::DescribeSubnets, &subnet.id, &subnet.vpc_id, &no_tags, filters)? {
                    out.push(subnet.clone());
                }
            }
            Ok(out)
        })
    }

    async fn describe_impaired(&self, check: StatusCheck, _: Option<String>) -> Result<Page<InstanceStatus>, AwsError> {
        let mut state = self.lock();
        let page = describe(&mut state, Operation::DescribeInstanceStatus, |state| {
            // Running instances only, as EC2 answers without
            // IncludeAllInstances; the filter on the check's status.
            Ok(state
                .instances
                .values()
                .filter(|i| i.state == "running")
                .filter_map(|i| state.statuses.get(&i.id).cloned())
                .filter(|s| match check {
                    StatusCheck::System => s.system.as_deref() == Some("impaired"),
                    StatusCheck::Instance => s.instance.as_deref() == Some("impaired"),
                })
                .collect())
        })?;
        state.calls.statuses_read += page.items.len();
        Ok(page)
    }

    async fn describe_nat_gateways(&self, filters: &[Filter], _: Option<String>) -> Result<Page<NatGateway>, AwsError> {
        describe(&mut self.lock(), Operation::DescribeNatGateways, |state| {
            let mut out = Vec::new();
            for gateway in state.nat_gateways.values() {
                if resource_matches(
                    Operation::DescribeNatGateways,
                    &gateway.id,
                    &gateway.vpc_id,
                    &gateway.tags,
                    filters,
                )? {
                    out.push(gateway.clone());
                }
            }
            Ok(out)
        })
    }

    async fn set_source_dest_check(&self, instance_id: &str, enabled: bool) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.calls.writes_other += 1;
        Self::check_faults(&mut state, Operation::ModifyInstanceAttribute, Some(instance_id))?;
        match state.instances.get_mut(instance_id) {
            Some(instance) => {
                instance.source_dest_check = Some(enabled);
                Ok(())
            }
            None => Err(AwsError::service(
                "ModifyInstanceAttribute",
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{instance_id}' does not exist"),
            )),
        }
    }

    async fn create_tag(&self, resource_id: &str, key: &str, value: &str) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.calls.writes_other += 1;
        Self::check_faults(&mut state, Operation::CreateTags, Some(resource_id))?;
        match state.tables.get_mut(resource_id) {
            Some(table) => {
                table.tags.insert(key.to_owned(), value.to_owned());
                Ok(())
            }
            None => Err(AwsError::service(
                "CreateTags",
                ROUTE_TABLE_NOT_FOUND,
                format!("The routeTable ID '{resource_id}' does not exist"),
            )),
        }
    }

    async fn delete_tag(&self, resource_id: &str, key: &str) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.calls.writes_other += 1;
        Self::check_faults(&mut state, Operation::DeleteTags, Some(resource_id))?;
        if let Some(table) = state.tables.get_mut(resource_id) {
            table.tags.remove(key);
        }
        Ok(())
    }
}

impl Addresses for FakeEc2 {
    async fn describe_addresses(&self) -> Result<Vec<Address>, AwsError> {
        describe(&mut self.lock(), Operation::DescribeAddresses, |state| {
            Ok(state.addresses.values().cloned().collect())
        })
        .map(|page| page.items)
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        instance_id: &str,
        network_interface_id: Option<&str>,
    ) -> Result<String, AwsError> {
        let mut state = self.lock();
        state.calls.writes_other += 1;
        Self::check_faults(&mut state, Operation::AssociateAddress, Some(allocation_id))?;
        let Some(instance) = state.instances.get(instance_id).cloned() else {
            return Err(AwsError::service(
                "AssociateAddress",
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{instance_id}' does not exist"),
            ));
        };
        if instance.state != "running" && instance.state != "stopped" {
            return Err(AwsError::service(
                "AssociateAddress",
                "IncorrectInstanceState",
                format!("The instance '{instance_id}' is not in a valid state for this operation."),
            ));
        }
        state.associations += 1;
        let association = format!("eipassoc-{:08x}", state.associations);
        let Some(address) = state.addresses.get_mut(allocation_id) else {
            return Err(AwsError::service(
                "AssociateAddress",
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{allocation_id}' does not exist"),
            ));
        };
        if address.association_id.is_some() {
            return Err(AwsError::service(
                "AssociateAddress",
                ALREADY_ASSOCIATED,
                format!(
                    "resource {allocation_id} is already associated with associate-id {:?}",
                    address.association_id
                ),
            ));
        }
        // As on EC2: an association by interface still shows the instance.
        let eni = network_interface_id.map(str::to_owned).or_else(|| instance.eni_ids.first().cloned());
        address.association_id = Some(association.clone());
        address.instance_id = Some(instance_id.to_owned());
        address.network_interface_id = eni.clone();
        address.private_ip = instance.private_ip.clone();
        // As on EC2: the interface's primary private address holds one Elastic
        // IP, and associating another takes the one it had off it.
        let private_ip = instance.private_ip.clone();
        for other in state.addresses.values_mut().filter(|a| a.allocation_id != allocation_id) {
            let same_interface = other.network_interface_id.is_some() && other.network_interface_id == eni
                || other.network_interface_id.is_none() && other.instance_id.as_deref() == Some(instance_id);
            let same_address = other.private_ip.is_none() || private_ip.is_none() || other.private_ip == private_ip;
            if other.association_id.is_some() && same_interface && same_address {
                other.association_id = None;
                other.instance_id = None;
                other.network_interface_id = None;
                other.private_ip = None;
            }
        }
        Ok(association)
    }

    async fn disassociate_address(&self, association_id: &str) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.calls.writes_other += 1;
        Self::check_faults(&mut state, Operation::DisassociateAddress, Some(association_id))?;
        match state.addresses.values_mut().find(|a| a.association_id.as_deref() == Some(association_id)) {
            Some(address) => {
                address.association_id = None;
                address.instance_id = None;
                address.network_interface_id = None;
                address.private_ip = None;
                Ok(())
            }
            None => Err(AwsError::service(
                "DisassociateAddress",
                ASSOCIATION_NOT_FOUND,
                format!("The association ID '{association_id}' does not exist"),
            )),
        }
    }
}

/// EC2 filter semantics: every filter must match; within a filter, any value.
fn table_matches(table: &RouteTable, filters: &[Filter]) -> Result<bool, AwsError> {
    for filter in filters {
        let any = |mut candidates: Box<dyn Iterator<Item = &str> + '_>| {
            candidates.any(|c| filter.values.iter().any(|pattern| glob(pattern, c)))
        };
        let matched = match filter.name.as_str() {
            "vpc-id" => any(Box::new(std::iter::once(table.vpc_id.as_str()))),
            "route-table-id" => any(Box::new(std::iter::once(table.id.as_str()))),
            "tag-key" => any(Box::new(table.tags.keys().map(String::as_str))),
            "tag-value" => any(Box::new(table.tags.values().map(String::as_str))),
            name => match name.strip_prefix("tag:") {
                Some(key) => any(Box::new(table.tags.get(key).map(String::as_str).into_iter())),
                None => {
                    return Err(AwsError::service(
                        "DescribeRouteTables",
                        "InvalidParameterValue",
                        format!("The filter '{name}' is invalid"),
                    ));
                }
            },
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// EC2 filter wildcards: `*` is any run of characters, `?` any one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_follows_ec2_wildcards() {
        let cases = [
            ("private_*", "private_us-east-1a", true),
            ("private_*", "private_", true),
            ("private_*", "public_us-east-1a", false),
            ("*private*", "k8s-private-b", true),
            ("rtb-?", "rtb-1", true),
            ("rtb-?", "rtb-12", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[tokio::test]
    async fn writes_answer_with_ec2_error_codes() {
        let dest = Destination::Cidr("100.96.1.0/24".parse().unwrap());
        let target = Target::Instance("i-1".into());
        let fake = FakeEc2::new([RouteTable::new("rtb-1", "vpc-1")]);
        fake.create_route("rtb-1", &dest, &target).await.unwrap();
        let dup = fake.create_route("rtb-1", &dest, &target).await.unwrap_err();
        assert!(dup.is_code(ROUTE_ALREADY_EXISTS));
        fake.delete_route("rtb-1", &dest).await.unwrap();
        assert!(fake.delete_route("rtb-1", &dest).await.unwrap_err().is_code(ROUTE_NOT_FOUND));
        assert!(fake.replace_route("rtb-1", &dest, &target).await.unwrap_err().is_missing_route());
        assert!(fake.create_route("rtb-x", &dest, &target).await.unwrap_err().is_code(ROUTE_TABLE_NOT_FOUND));
        assert_eq!(fake.writes().len(), 2);
        assert_eq!(fake.calls().writes(), 6);
    }

    #[tokio::test]
    async fn faults_fire_as_configured() {
        let dest = Destination::Cidr("100.96.1.0/24".parse().unwrap());
        let fake = FakeEc2::new([RouteTable::new("rtb-1", "vpc-1")]);
        fake.inject(Fault::code("RequestLimitExceeded").on(Operation::DeleteRoute).every(2).times(1));
        assert!(fake.delete_route("rtb-1", &dest).await.unwrap_err().is_code(ROUTE_NOT_FOUND));
        assert!(fake.delete_route("rtb-1", &dest).await.unwrap_err().is_throttling());
        assert!(fake.delete_route("rtb-1", &dest).await.unwrap_err().is_code(ROUTE_NOT_FOUND));
        assert!(fake.delete_route("rtb-1", &dest).await.unwrap_err().is_code(ROUTE_NOT_FOUND));
    }

    #[tokio::test]
    async fn unknown_filters_are_rejected_and_pages_follow_tokens() {
        let fake = FakeEc2::new((0..5).map(|n| RouteTable::new(format!("rtb-{n}"), "vpc-1"))).with_page_size(2);
        assert!(fake.describe_route_tables(&[Filter::new("route.state", ["active"])], None).await.is_err());
        let all = crate::aws::ec2::describe_all(&fake, &[Filter::new("vpc-id", ["vpc-1"])]).await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(fake.calls().describe, 1 + 3);
    }
}
