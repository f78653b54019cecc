//! An in-memory [`Elbv2`] with ELBv2's semantics where kube-rtsync depends
//! on them: target groups with their type, VPC and port; registrations
//! keyed by id and port, at the group's port when none is given;
//! `TargetGroupNotFound` for an unknown ARN, `InvalidTarget` for an
//! instance that may not be registered or a deregistration of an absent
//! target; injected faults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use crate::aws::elbv2::{Elbv2, INVALID_TARGET, RegisteredTarget, TARGET_GROUP_NOT_FOUND, TargetGroup, TargetRef};
use crate::aws::error::AwsError;
use crate::fake::faults::Faults;

/// Calls made, successful or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElbCalls {
    pub describe_groups: usize,
    pub describe_health: usize,
    pub register: usize,
    pub deregister: usize,
}

/// A group's registrations: (id, port) to health state.
type Registrations = BTreeMap<(String, Option<u16>), String>;

#[derive(Default)]
struct State {
    groups: BTreeMap<String, (TargetGroup, Registrations)>,
    /// Instances ELBv2 refuses to register (not running).
    refused: BTreeSet<String>,
    calls: ElbCalls,
    faults: Faults,
}

#[derive(Default)]
pub struct FakeElbv2 {
    state: Mutex<State>,
}

impl FakeElbv2 {
    pub fn new(groups: impl IntoIterator<Item = TargetGroup>) -> Self {
        let fake = FakeElbv2::default();
        for group in groups {
            fake.lock().groups.insert(group.arn.clone(), (group, BTreeMap::new()));
        }
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a target directly, in the given health state.
    pub fn seed(&self, arn: &str, id: &str, port: Option<u16>, state: &str) {
        if let Some((group, targets)) = self.lock().groups.get_mut(arn) {
            targets.insert((id.to_owned(), port.or(group.port)), state.to_owned());
        }
    }

    /// ELBv2 refuses to register this instance (`InvalidTarget`).
    pub fn refuse(&self, id: &str) {
        self.lock().refused.insert(id.to_owned());
    }

    /// The next `times` calls of `operation` (on `arn`, or any) fail with
    /// `code`.
    pub fn fail(&self, operation: &'static str, arn: Option<&str>, code: &str, times: usize) {
        self.lock().faults.add(operation, arn, code, times);
    }

    pub fn calls(&self) -> ElbCalls {
        self.lock().calls
    }

    /// The group's registrations as (id, port), sorted.
    pub fn targets(&self, arn: &str) -> Vec<(String, Option<u16>)> {
        self.lock().groups.get(arn).map(|(_, t)| t.keys().cloned().collect()).unwrap_or_default()
    }

    fn check(state: &mut State, operation: &'static str, arn: Option<&str>) -> Result<(), AwsError> {
        state.faults.check(operation, arn)
    }

    fn group<'a>(
        state: &'a mut State,
        operation: &'static str,
        arn: &str,
    ) -> Result<&'a mut (TargetGroup, Registrations), AwsError> {
        state.groups.get_mut(arn).ok_or_else(|| {
            AwsError::service(operation, TARGET_GROUP_NOT_FOUND, format!("One or more target groups not found: {arn}"))
        })
    }
}

impl Elbv2 for FakeElbv2 {
    async fn describe_target_groups(&self, arns: &[String]) -> Result<Vec<TargetGroup>, AwsError> {
        let mut state = self.lock();
        state.calls.describe_groups += 1;
        Self::check(&mut state, "DescribeTargetGroups", None)?;
        arns.iter().map(|arn| Self::group(&mut state, "DescribeTargetGroups", arn).map(|(g, _)| g.clone())).collect()
    }

    async fn describe_target_health(&self, arn: &str) -> Result<Vec<RegisteredTarget>, AwsError> {
        let mut state = self.lock();
        state.calls.describe_health += 1;
        Self::check(&mut state, "DescribeTargetHealth", Some(arn))?;
        let (_, targets) = Self::group(&mut state, "DescribeTargetHealth", arn)?;
        Ok(targets
            .iter()
            .map(|((id, port), health)| RegisteredTarget { id: id.clone(), port: *port, state: health.clone() })
            .collect())
    }

    async fn register_targets(&self, arn: &str, targets: &[TargetRef]) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.calls.register += 1;
        Self::check(&mut state, "RegisterTargets", Some(arn))?;
        if let Some(bad) = targets.iter().find(|t| state.refused.contains(&t.id)) {
            return Err(AwsError::service(
                "RegisterTargets",
                INVALID_TARGET,
                format!("The following targets are not in a running state and cannot be registered: '{}'", bad.id),
            ));
        }
        let (group, registered) = Self::group(&mut state, "RegisterTargets", arn)?;
        let default_port = group.port;
        for t in targets {
            registered.entry((t.id.clone(), t.port.or(default_port))).or_insert_with(|| "initial".into());
        }
        Ok(())
    }

    async fn deregister_targets(&self, arn: &str, targets: &[TargetRef]) -> Result<(), AwsError> {
        let mut state = self.lock();
        state.calls.deregister += 1;
        Self::check(&mut state, "DeregisterTargets", Some(arn))?;
        let (group, registered) = Self::group(&mut state, "DeregisterTargets", arn)?;
        let default_port = group.port;
        let keys: Vec<(String, Option<u16>)> =
            targets.iter().map(|t| (t.id.clone(), t.port.or(default_port))).collect();
        if let Some(absent) = keys.iter().find(|k| !registered.contains_key(*k)) {
            return Err(AwsError::service(
                "DeregisterTargets",
                INVALID_TARGET,
                format!("The target {} is not registered with the target group", absent.0),
            ));
        }
        for key in keys {
            registered.remove(&key);
        }
        Ok(())
    }
}
