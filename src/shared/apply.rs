//! The apply engine every job's writes go through: bounded concurrency,
//! the shared write pace, the invocation deadline, and per-item results.
//!
//! A job hands [`Phases`] its planned writes as ordered phases of
//! [`Step`]s, and the call that carries one step out, with its own
//! idempotent fallbacks. The engine decides when each step may start: not
//! before a permit and a limiter token, never with too little time left,
//! never after an error that makes further writes to the same resource
//! pointless, and never after an earlier write to its resource failed
//! (how far a failure reaches: [`Reach`]). It gives every step one row of
//! the report ([`WriteResult`]) and one log line.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::aws::error::{AwsError, FailureKind};
use crate::shared::limiter::WriteLimiter;
use crate::shared::report::{WriteResult, WriteStatus};

/// No write is started with less than this left before the deadline: one
/// write with all its retries (the SDK's operation timeout is 2 s less)
/// must still fit, and the report must get out.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Time kept after the last call for the report to get out.
pub const REPORT_ROOM: Duration = Duration::from_secs(2);
/// A call is not attempted with less than this left (after [`REPORT_ROOM`]).
pub const MIN_CALL_TIME: Duration = Duration::from_secs(1);

fn deadline_error(message: String) -> AwsError {
    AwsError { operation: "write", kind: FailureKind::Deadline, code: None, message }
}

/// What became of one planned action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome<A> {
    Done(A),
    Failed(A, AwsError),
    /// Not attempted, and why (the deadline, or an earlier failure in the
    /// group).
    NotStarted(A, String),
}

/// Runs writes for one invocation.
pub struct Engine<'a> {
    limiter: &'a WriteLimiter,
    deadline: Option<Instant>,
    permits: Semaphore,
}

impl<'a> Engine<'a> {
    /// At most `concurrency` writes in flight, paced by `limiter`, none
    /// started within [`DEADLINE_MARGIN`] of `deadline`.
    pub fn new(limiter: &'a WriteLimiter, deadline: Option<Instant>, concurrency: usize) -> Self {
        Engine { limiter, deadline, permits: Semaphore::new(concurrency.max(1)) }
    }

    /// Why no further write may start now, if one may not: too little time
    /// left before the deadline once the limiter's wait is paid.
    pub async fn stop_reason(&self) -> Option<String> {
        let deadline = self.deadline?;
        let wait = self.limiter.delay().await;
        let left = deadline.saturating_duration_since(Instant::now());
        (left < wait + DEADLINE_MARGIN).then(|| format!("{} ms left before the invocation deadline", left.as_millis()))
    }

    /// One mutating call, paced by the shared limiter. Fallback calls (a
    /// create that became a replace) go through here too, so that they
    /// count against the same budget. The deadline is checked again once the
    /// limiter lets the call go, and the call is cut short at the time left
    /// (less [`REPORT_ROOM`]), whatever the SDK's own timeout.
    pub async fn paced<T>(&self, call: impl Future<Output = Result<T, AwsError>>) -> Result<T, AwsError> {
        self.paced_by(Some(self.limiter), call).await
    }

    /// One mutating call of another service than EC2, paced by that
    /// service's own `limiter` (Route 53's per-account rate, say) or by
    /// none (`None`: a table whose capacity is not shared), so that its
    /// throttling neither slows EC2's pace nor waits on it. The deadline
    /// rules of [`Engine::paced`] hold the same.
    pub async fn paced_by<T>(
        &self,
        limiter: Option<&WriteLimiter>,
        call: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        if let Some(limiter) = limiter {
            limiter.acquire().await;
        }
        let result = self.within_deadline(call).await;
        // The pace learns: slower after a throttled write, back up slowly.
        match (&result, limiter) {
            (Err(err), Some(limiter)) if err.is_throttling() => limiter.throttled().await,
            (Ok(_), Some(limiter)) => limiter.succeeded().await,
            _ => {}
        }
        result
    }

    async fn within_deadline<T>(&self, call: impl Future<Output = Result<T, AwsError>>) -> Result<T, AwsError> {
        let Some(deadline) = self.deadline else { return call.await };
        let left = deadline.saturating_duration_since(Instant::now()).saturating_sub(REPORT_ROOM);
        if left < MIN_CALL_TIME {
            return Err(deadline_error(format!(
                "not attempted: {} ms left before the invocation deadline",
                left.as_millis()
            )));
        }
        match tokio::time::timeout(left, call).await {
            Ok(result) => result,
            Err(_) => {
                Err(deadline_error(format!("cut short after {} ms, at the invocation deadline", left.as_millis())))
            }
        }
    }

    /// Runs one group's actions: each wave's actions concurrently, waves in
    /// order (a `noun` names the group in reasons). `run` carries one action
    /// out (through [`Engine::paced`]); after an error for which `stops` is
    /// true, no further action of the group starts. Outcomes come back in the
    /// order they ended. Jobs write through [`Phases`], which runs on this;
    /// routes calls it itself, with its plain actions: at EC2's maxima
    /// (198,801 creates in a dry run) a [`Step`] and a row per route took
    /// the peak from 52.9 to 199.1 MiB, past the function's 128 MB.
    pub async fn run_group<A, F, Fut>(
        &self,
        noun: &str,
        waves: Vec<Vec<A>>,
        run: F,
        stops: impl Fn(&AwsError) -> bool,
    ) -> Vec<ItemOutcome<A>>
    where
        F: Fn(&A) -> Fut,
        Fut: Future<Output = Result<(), AwsError>>,
    {
        let stopped: Mutex<Option<String>> = Mutex::new(None);
        let outcomes = Mutex::new(Vec::new());
        let push = |outcome| outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(outcome);
        for wave in waves {
            futures::future::join_all(wave.into_iter().map(|action| async {
                let Ok(_permit) = self.permits.acquire().await else { return };
                let earlier = stopped.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let reason = match earlier {
                    Some(reason) => Some(reason),
                    None => self.stop_reason().await,
                };
                if let Some(reason) = reason {
                    push(ItemOutcome::NotStarted(action, reason));
                    return;
                }
                match run(&action).await {
                    Ok(()) => push(ItemOutcome::Done(action)),
                    Err(err) => {
                        if stops(&err) {
                            let reason = format!(
                                "an earlier write to this {noun} failed with {}",
                                err.code().unwrap_or("an error")
                            );
                            stopped.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(reason);
                        }
                        push(ItemOutcome::Failed(action, err));
                    }
                }
            }))
            .await;
        }
        outcomes.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// One planned write: the resource it writes (a table, an address, ...),
/// what it does (for people, in the report and the log), and the action
/// the job's call carries out; where the job knows them, what the resource
/// held before and holds after (the log line's `from` and `to`).
#[derive(Clone, Debug)]
pub struct Step<A> {
    pub resource: String,
    pub change: String,
    pub action: A,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl<A> Step<A> {
    pub fn new(resource: impl Into<String>, change: impl Into<String>, action: A) -> Self {
        Step { resource: resource.into(), change: change.into(), action, from: None, to: None }
    }

    /// What the resource held before the write and holds after it.
    pub fn from_to(mut self, from: Option<String>, to: Option<String>) -> Self {
        (self.from, self.to) = (from, to);
        self
    }
}

/// What a phase gives the next: the steps that went through, with what
/// their call returned (an association id, say). What failed is in the
/// rows, and in [`Phases::has_failed`].
pub struct PhaseOutcome<A, O> {
    pub done: Vec<(Step<A>, O)>,
}

/// What a report row keeps of its step's action besides the resource and
/// the change: nothing (`()`, every job but one), or a job's own detail
/// (the targets of a `RegisterTargets` batch).
pub trait RowDetail<D> {
    fn row_detail(&self) -> D;
}

impl<A> RowDetail<()> for A {
    fn row_detail(&self) {}
}

/// How far a failed write reaches in [`Phases`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    /// A resource's steps build on each other (an address, then its name),
    /// so any failure withholds the resource's later phases; and an error
    /// that stops further writes stops the rest of its phase, every
    /// resource's.
    #[default]
    Phase,
    /// Resources are independent of each other, and a resource's steps of
    /// each other (a target group's registrations and deregistrations
    /// concern different instances). Only an error that says the resource
    /// cannot be written now (throttled, denied: a role may be scoped per
    /// resource) stops that resource's later steps, in its phase and the
    /// next; other resources go on.
    Resource,
}

/// A job's writes as ordered phases through the engine: each phase's steps
/// at once; a resource whose earlier write failed (or was not started) gets
/// no later write, and says so (how far a failure reaches: [`Reach`]); in a
/// dry run every step is `Planned`, so the dry-run report lists the same
/// rows as the real one; every step is logged once, with the resource and
/// the change, made or failed.
pub struct Phases<'e, 'a, D = ()> {
    engine: &'e Engine<'a>,
    job: &'static str,
    dry_run: bool,
    reach: Reach,
    failed: std::collections::BTreeSet<String>,
    results: Vec<WriteResult<D>>,
}

impl<'e, 'a, D> Phases<'e, 'a, D> {
    pub fn new(engine: &'e Engine<'a>, job: &'static str, dry_run: bool) -> Self {
        Phases { engine, job, dry_run, reach: Reach::default(), failed: Default::default(), results: Vec::new() }
    }

    /// How far a failed write reaches (by default [`Reach::Phase`]).
    pub fn with_reach(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// Runs one phase. `run` makes one step's calls (through
    /// [`Engine::paced`] or [`Engine::paced_by`]); after an error for which
    /// `stops` is true, no further step of the phase starts (of its
    /// resource only, with [`Reach::Resource`]; the `noun` names what the
    /// steps write, in reasons). In a dry run nothing is called and every
    /// step is done with `O::default()`.
    pub async fn run<A, O, F, Fut>(
        &mut self,
        noun: &str,
        steps: Vec<Step<A>>,
        run: F,
        stops: impl Fn(&AwsError) -> bool,
    ) -> PhaseOutcome<A, O>
    where
        A: RowDetail<D>,
        O: Default,
        F: Fn(&A) -> Fut,
        Fut: Future<Output = Result<O, AwsError>>,
    {
        self.run_waves(noun, vec![steps], run, stops).await
    }

    /// Runs phases one after the other, as [`Phases::run`] would, except
    /// that with [`Reach::Resource`] each resource goes on to its next
    /// phase as soon as its own writes of this one have ended, without
    /// waiting for the other resources' (a target group's deregistrations
    /// do not wait for another group's throttled registrations).
    pub async fn run_waves<A, O, F, Fut>(
        &mut self,
        noun: &str,
        waves: Vec<Vec<Step<A>>>,
        run: F,
        stops: impl Fn(&AwsError) -> bool,
    ) -> PhaseOutcome<A, O>
    where
        A: RowDetail<D>,
        O: Default,
        F: Fn(&A) -> Fut,
        Fut: Future<Output = Result<O, AwsError>>,
    {
        if self.reach == Reach::Resource {
            return self.execute(noun, waves, &run, &stops).await;
        }
        let mut outcome = PhaseOutcome { done: Vec::new() };
        for wave in waves {
            outcome.done.extend(self.execute(noun, vec![wave], &run, &stops).await.done);
        }
        outcome
    }

    /// The waves as one run of the engine per resource (or one for all).
    async fn execute<A, O, F, Fut>(
        &mut self,
        noun: &str,
        waves: Vec<Vec<Step<A>>>,
        run: &F,
        stops: &impl Fn(&AwsError) -> bool,
    ) -> PhaseOutcome<A, O>
    where
        A: RowDetail<D>,
        O: Default,
        F: Fn(&A) -> Fut,
        Fut: Future<Output = Result<O, AwsError>>,
    {
        let mut outcome = PhaseOutcome { done: Vec::new() };
        let job = self.job;
        let mut ready: Vec<Step<A>> = Vec::new();
        let mut wave_of: Vec<usize> = Vec::new();
        let mut not_started: Vec<(String, String, String)> = Vec::new();
        for (w, wave) in waves.into_iter().enumerate() {
            for step in wave {
                if self.failed.contains(&step.resource) {
                    let reason = format!("an earlier write to {} failed", step.resource);
                    not_started.push((step.resource.clone(), step.change.clone(), reason.clone()));
                    self.results.push(WriteResult::of(&step, WriteStatus::NotStarted { reason }));
                } else {
                    ready.push(step);
                    wave_of.push(w);
                }
            }
        }
        if self.dry_run {
            for step in ready {
                log_step(job, &step, &WriteStatus::Planned);
                self.results.push(WriteResult::of(&step, WriteStatus::Planned));
                outcome.done.push((step, O::default()));
            }
            log_not_started(job, &not_started);
            return outcome;
        }
        let outputs: Mutex<Vec<Option<O>>> = Mutex::new((0..ready.len()).map(|_| None).collect());
        // Each write is logged as it ends, so that the log's times are the
        // writes' own.
        let call = |k: &usize| {
            let k = *k;
            let (step, call, outputs) = (&ready[k], run(&ready[k].action), &outputs);
            async move {
                match call.await {
                    Ok(output) => {
                        log_step(job, step, &WriteStatus::Done);
                        outputs.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(output);
                        Ok(())
                    }
                    Err(err) => {
                        log_step(job, step, &WriteStatus::failed(&err));
                        Err(err)
                    }
                }
            }
        };
        // The steps' indices wave by wave, per resource (or all as one).
        let waves = wave_of.iter().copied().max().map_or(0, |w| w + 1);
        let mut groups: Vec<Vec<Vec<usize>>> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = Default::default();
        for (k, step) in ready.iter().enumerate() {
            let key = if self.reach == Reach::Resource { step.resource.as_str() } else { "" };
            let g = *index.entry(key).or_insert_with(|| {
                groups.push(vec![Vec::new(); waves]);
                groups.len() - 1
            });
            groups[g][wave_of[k]].push(k);
        }
        let runs = groups.into_iter().map(|waves| self.engine.run_group(noun, waves, &call, stops));
        let ended: Vec<ItemOutcome<usize>> = futures::future::join_all(runs).await.into_iter().flatten().collect();
        let mut outputs = outputs.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut steps: Vec<Option<Step<A>>> = ready.into_iter().map(Some).collect();
        for item in ended {
            let (k, status, error) = match item {
                ItemOutcome::Done(k) => (k, WriteStatus::Done, None),
                ItemOutcome::Failed(k, err) => (k, WriteStatus::failed(&err), Some(err)),
                ItemOutcome::NotStarted(k, reason) => (k, WriteStatus::NotStarted { reason }, None),
            };
            let Some(step) = steps[k].take() else { continue };
            self.results.push(WriteResult::of(&step, status.clone()));
            match (status, error) {
                (WriteStatus::Done, _) => {
                    let output = outputs[k].take().unwrap_or_default();
                    outcome.done.push((step, output));
                }
                (status, error) => {
                    if let WriteStatus::NotStarted { reason } = status {
                        not_started.push((step.resource.clone(), step.change.clone(), reason));
                    }
                    let withhold = match (self.reach, &error) {
                        (Reach::Resource, Some(error)) => stops(error),
                        _ => true,
                    };
                    if withhold {
                        self.failed.insert(step.resource);
                    }
                }
            }
        }
        log_not_started(job, &not_started);
        outcome
    }

    /// The engine the phases run on, for the jobs' calls.
    pub fn engine(&self) -> &'e Engine<'a> {
        self.engine
    }

    /// Whether an earlier write to this resource holds back its later ones
    /// (any failure, or with [`Reach::Resource`] an error that stops further
    /// writes; or a write that was not started).
    pub fn has_failed(&self, resource: &str) -> bool {
        self.failed.contains(resource)
    }

    /// Every step's row, in the order the steps ended.
    pub fn results(self) -> Vec<WriteResult<D>> {
        self.results
    }
}

/// A write's one log line, as it ends (or, in a dry run, as it is planned).
fn log_step(job: &'static str, step: &Step<impl Sized>, status: &WriteStatus) {
    let (resource, change) = (step.resource.as_str(), step.change.as_str());
    let (from, to) = (step.from.as_deref(), step.to.as_deref());
    match status {
        WriteStatus::Done => tracing::info!(job, resource, change, from, to, "change made"),
        WriteStatus::Planned => tracing::info!(job, resource, change, from, to, dry_run = true, "change planned"),
        WriteStatus::Failed { code, message, hint, .. } => tracing::error!(
            job, resource, change, from, to, code = code.as_deref().unwrap_or("-"), error = %message, hint,
            "change failed"
        ),
        WriteStatus::NotStarted { .. } => {}
    }
}

/// The writes that were not started (or were held back), one line per
/// resource and reason, since a deadline can leave thousands: how many,
/// and the first of them.
fn log_not_started(job: &'static str, rows: &[(String, String, String)]) {
    let mut by: std::collections::BTreeMap<(&str, &str), (usize, &str)> = Default::default();
    for (resource, change, reason) in rows {
        by.entry((resource.as_str(), reason.as_str())).or_insert((0, change.as_str())).0 += 1;
    }
    for ((resource, reason), (count, first)) in by {
        tracing::warn!(job, resource, not_started = count, first, reason, "changes not started");
    }
}

/// Errors after which further writes to the same resource are pointless
/// or impolite, whatever the service: we may not write it, the service is
/// throttling, or the failure is not the service's answer at all.
pub fn stops_further_writes(err: &AwsError) -> bool {
    err.is_throttling() || err.is_unauthorized() || matches!(err.kind, FailureKind::Other | FailureKind::Certificate)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::shared::config::WriteRate;

    fn unlimited() -> WriteLimiter {
        WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 })
    }

    #[tokio::test]
    async fn every_action_runs_once_and_reports_its_outcome() {
        let limiter = unlimited();
        let engine = Engine::new(&limiter, None, 2);
        let outcomes = engine
            .run_group(
                "group",
                vec![vec![1, 2, 3]],
                |n| {
                    let n = *n;
                    async move { if n == 2 { Err(AwsError::service("Op", "Boom", "no")) } else { Ok(()) } }
                },
                |_| false,
            )
            .await;
        let mut done: Vec<i32> =
            outcomes.iter().filter_map(|o| if let ItemOutcome::Done(n) = o { Some(*n) } else { None }).collect();
        done.sort();
        assert_eq!(done, vec![1, 3]);
        assert!(outcomes.iter().any(|o| matches!(o, ItemOutcome::Failed(2, e) if e.is_code("Boom"))));
    }

    #[tokio::test]
    async fn a_stopping_error_keeps_later_actions_of_the_group_from_starting() {
        let limiter = unlimited();
        let engine = Engine::new(&limiter, None, 1);
        let calls = AtomicUsize::new(0);
        let outcomes = engine
            .run_group(
                "group",
                vec![vec![1], vec![2, 3]],
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err(AwsError::service("Op", "RequestLimitExceeded", "slow down")) }
                },
                stops_further_writes,
            )
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let not_started = outcomes
            .iter()
            .filter(|o| matches!(o, ItemOutcome::NotStarted(_, r) if r.contains("RequestLimitExceeded")))
            .count();
        assert_eq!(not_started, 2);
    }

    /// Two phases over resources `a` and `b`: `a`'s first write fails with
    /// `code`; what becomes of the rest, by reach.
    async fn two_phases(reach: Reach, code: &'static str) -> Vec<(String, String, &'static str)> {
        let limiter = unlimited();
        let engine = Engine::new(&limiter, None, 1);
        let mut phases: Phases<'_, '_> = Phases::new(&engine, "test", false).with_reach(reach);
        let run = |n: &u32| {
            let n = *n;
            async move { if n == 1 { Err(AwsError::service("Op", code, "no")) } else { Ok(()) } }
        };
        let first = vec![Step::new("a", "a1", 1), Step::new("a", "a2", 2), Step::new("b", "b1", 3)];
        phases.run("resource", first, run, stops_further_writes).await;
        let second = vec![Step::new("a", "a3", 4), Step::new("b", "b2", 5)];
        phases.run("resource", second, run, stops_further_writes).await;
        let mut rows: Vec<(String, String, &'static str)> = phases
            .results()
            .into_iter()
            .map(|r| {
                let status = match r.status {
                    WriteStatus::Done => "done",
                    WriteStatus::Failed { .. } => "failed",
                    WriteStatus::NotStarted { .. } => "not started",
                    WriteStatus::Planned => "planned",
                };
                (r.resource, r.change, status)
            })
            .collect();
        rows.sort();
        rows
    }

    fn rows(expected: &[(&str, &str, &'static str)]) -> Vec<(String, String, &'static str)> {
        expected.iter().map(|(r, c, s)| (r.to_string(), c.to_string(), *s)).collect()
    }

    /// A stopping error reaches its whole phase, or only its resource; any
    /// failure withholds the resource's later phases, unless resources are
    /// independent (then only a stopping one does).
    #[tokio::test]
    async fn how_far_a_failure_reaches() {
        let (done, failed, held) = ("done", "failed", "not started");
        let cases = [
            (Reach::Phase, "AccessDenied", [failed, held, held, held, held]),
            (Reach::Resource, "AccessDenied", [failed, held, held, done, done]),
            (Reach::Phase, "InvalidTarget", [failed, done, held, done, done]),
            (Reach::Resource, "InvalidTarget", [failed, done, done, done, done]),
        ];
        for (reach, code, statuses) in cases {
            let steps = [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("b", "b2")];
            let expected: Vec<(&str, &str, &str)> = steps.iter().zip(statuses).map(|((r, c), s)| (*r, *c, s)).collect();
            assert_eq!(two_phases(reach, code).await, rows(&expected), "{reach:?} {code}");
        }
    }

    /// With independent resources, `b`'s second wave does not wait for
    /// `a`'s first: `a1` ends only once `b2` has run.
    #[tokio::test(start_paused = true)]
    async fn an_independent_resource_goes_on_to_its_next_wave_without_waiting_for_the_others() {
        let limiter = unlimited();
        let engine = Engine::new(&limiter, None, 4);
        let b2_ran = tokio::sync::Notify::new();
        let mut phases: Phases<'_, '_> = Phases::new(&engine, "test", false).with_reach(Reach::Resource);
        let run = |n: &u32| {
            let (n, b2_ran) = (*n, &b2_ran);
            async move {
                match n {
                    1 => b2_ran.notified().await,
                    3 => b2_ran.notify_one(),
                    _ => {}
                }
                Ok::<(), AwsError>(())
            }
        };
        let waves = vec![vec![Step::new("a", "a1", 1), Step::new("b", "b1", 2)], vec![Step::new("b", "b2", 3)]];
        let ran = tokio::time::timeout(Duration::from_secs(60), phases.run_waves("resource", waves, run, |_| false));
        let outcome: PhaseOutcome<u32, ()> = ran.await.expect("b2 waited for a1");
        assert_eq!(outcome.done.len(), 3);
    }

    #[tokio::test]
    async fn nothing_starts_inside_the_deadline_margin() {
        let limiter = unlimited();
        let engine = Engine::new(&limiter, Some(Instant::now() + DEADLINE_MARGIN / 2), 4);
        let outcomes = engine.run_group("group", vec![vec![1, 2]], |_| async { Ok(()) }, |_| false).await;
        assert!(outcomes.iter().all(|o| matches!(o, ItemOutcome::NotStarted(_, r) if r.contains("deadline"))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_with_too_little_time_left_is_not_made_and_a_slow_one_is_cut_at_the_deadline() {
        let limiter = unlimited();
        let called = AtomicUsize::new(0);
        let engine = Engine::new(&limiter, Some(Instant::now() + REPORT_ROOM + MIN_CALL_TIME / 2), 1);
        let err = engine
            .paced(async {
                called.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!((err.kind, called.load(Ordering::SeqCst)), (FailureKind::Deadline, 0));

        let start = Instant::now();
        let engine = Engine::new(&limiter, Some(start + Duration::from_secs(10)), 1);
        let err = engine
            .paced(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Deadline);
        assert_eq!(start.elapsed(), Duration::from_secs(10) - REPORT_ROOM);
    }
}
