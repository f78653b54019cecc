//! Trigger decoding: what woke the function up: an Auto Scaling
//! notification through SNS, an EventBridge EC2 instance state change
//! (nodes outside Auto Scaling, such as Karpenter's), or a schedule.
//!
//! The event only says *why* a reconcile runs; what to do is always decided
//! from the observed state. Decoding is strict all the same: a
//! malformed or unexpected event is an error before anything is read or
//! written, so that a misrouted subscription is noticed rather than obeyed.

use aws_lambda_events::sns::SnsEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::shared::config::excerpt;

/// Auto Scaling event names, as they appear in the notification's `Event`.
const LAUNCH: &str = "autoscaling:EC2_INSTANCE_LAUNCH";
const TERMINATE: &str = "autoscaling:EC2_INSTANCE_TERMINATE";
const LAUNCH_ERROR: &str = "autoscaling:EC2_INSTANCE_LAUNCH_ERROR";
const TERMINATE_ERROR: &str = "autoscaling:EC2_INSTANCE_TERMINATE_ERROR";
const TEST_NOTIFICATION: &str = "autoscaling:TEST_NOTIFICATION";

/// EC2 instance states whose change may add, move or remove a pod route.
const RECONCILE_STATES: [&str; 5] = ["running", "stopping", "stopped", "shutting-down", "terminated"];
const STATE_CHANGE: &str = "EC2 Instance State-change Notification";
const SCHEDULED: &str = "Scheduled Event";
const SPOT_INTERRUPTION: &str = "EC2 Spot Instance Interruption Warning";

/// One reason to run, decoded from an invocation event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Trigger {
    /// An Auto Scaling notification delivered through SNS.
    AutoScaling(AutoScalingNotification),
    /// An EventBridge `EC2 Instance State-change Notification`.
    InstanceStateChange { instance_id: String, state: String, event_id: String },
    /// An EventBridge `EC2 Spot Instance Interruption Warning`: the instance
    /// goes in two minutes. The run trusts the observed Spot request status,
    /// not the event.
    SpotInterruption { instance_id: String, action: String, event_id: String },
    /// A scheduled EventBridge rule: the periodic full reconcile.
    Schedule { event_id: String },
    /// A command line run (`kube-rtsync plan` / `sync`); never decoded from an
    /// event.
    Manual { command: String },
}

impl Trigger {
    /// Whether this trigger asks for a reconcile (a test notification, or a
    /// state such as `pending`, does not).
    pub fn wants_reconcile(&self) -> bool {
        match self {
            Trigger::AutoScaling(n) => n.event != AutoScalingEvent::TestNotification,
            Trigger::InstanceStateChange { state, .. } => RECONCILE_STATES.contains(&state.as_str()),
            Trigger::SpotInterruption { .. } | Trigger::Schedule { .. } | Trigger::Manual { .. } => true,
        }
    }

    /// The instance the trigger is about, if it names one.
    pub fn instance_id(&self) -> Option<&str> {
        match self {
            Trigger::AutoScaling(n) => n.instance_id.as_deref(),
            Trigger::InstanceStateChange { instance_id, .. } | Trigger::SpotInterruption { instance_id, .. } => {
                Some(instance_id)
            }
            Trigger::Schedule { .. } | Trigger::Manual { .. } => None,
        }
    }

    /// The instance that has just started and whose pod route Kubernetes
    /// writes only once the node registers: worth waiting for.
    pub fn new_node(&self) -> Option<&str> {
        match self {
            Trigger::AutoScaling(n) if n.event == AutoScalingEvent::Launch => n.instance_id.as_deref(),
            Trigger::InstanceStateChange { instance_id, state, .. } if state == "running" => Some(instance_id),
            _ => None,
        }
    }
}

/// The kinds of Auto Scaling notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoScalingEvent {
    Launch,
    Terminate,
    /// A failed launch may still have left an instance behind: reconcile.
    LaunchError,
    /// A failed termination may have half-happened: reconcile.
    TerminateError,
    /// Sent by `put-notification-configuration`; nothing to do.
    TestNotification,
}

impl AutoScalingEvent {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            LAUNCH => AutoScalingEvent::Launch,
            TERMINATE => AutoScalingEvent::Terminate,
            LAUNCH_ERROR => AutoScalingEvent::LaunchError,
            TERMINATE_ERROR => AutoScalingEvent::TerminateError,
            TEST_NOTIFICATION => AutoScalingEvent::TestNotification,
            _ => return None,
        })
    }
}

/// The parts of an Auto Scaling notification kube-rtsync reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AutoScalingNotification {
    pub event: AutoScalingEvent,
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The SNS message id: the same on every redelivery of one message.
    pub message_id: String,
}

/// The Auto Scaling notification as SNS carries it in `Message`.
/// (`aws_lambda_events` types only the EventBridge form of these.)
#[derive(Deserialize)]
struct RawAutoScalingMessage {
    #[serde(rename = "Event")]
    event: String,
    #[serde(rename = "AutoScalingGroupName")]
    group: String,
    #[serde(rename = "EC2InstanceId", default)]
    instance_id: Option<String>,
}

/// The EventBridge envelope (`aws.ec2` state changes and `aws.events`
/// schedules).
#[derive(Deserialize)]
struct RawEventBridge {
    #[serde(default)]
    id: String,
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    detail: Value,
}

#[derive(Deserialize)]
struct RawSpotInterruption {
    #[serde(rename = "instance-id")]
    instance_id: String,
    #[serde(rename = "instance-action", default)]
    action: String,
}

#[derive(Deserialize)]
struct RawStateChange {
    #[serde(rename = "instance-id")]
    instance_id: String,
    state: String,
}

/// An invocation event that kube-rtsync cannot act on.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "unsupported event shape ({found}): expected an SNS event carrying an Auto Scaling notification, an EventBridge EC2 instance state change, or a scheduled event"
    )]
    UnsupportedShape { found: String },
    #[error("malformed EventBridge event: {0}")]
    MalformedEventBridge(#[source] serde_json::Error),
    #[error(
        "unsupported EventBridge event (source {source_name:?}, detail-type {detail_type:?}): expected source aws.ec2 with detail-type \"{STATE_CHANGE}\" or \"{SPOT_INTERRUPTION}\", or source aws.events with detail-type \"{SCHEDULED}\""
    )]
    UnsupportedEventBridge { source_name: String, detail_type: String },
    #[error("EventBridge event {event_id}: malformed instance state change detail ({error})")]
    MalformedStateChange { event_id: String, error: String },
    #[error("EventBridge event {event_id}: malformed Spot interruption warning detail ({error})")]
    MalformedSpotInterruption { event_id: String, error: String },
    #[error("malformed SNS event: {0}")]
    MalformedSns(#[source] serde_json::Error),
    #[error("the SNS event has no records")]
    NoRecords,
    #[error("record {index} comes from {event_source:?}, not from aws:sns")]
    NotSns { index: usize, event_source: String },
    #[error("SNS message {message_id}: the message is not JSON ({error}); it starts with {excerpt:?}")]
    MessageNotJson { message_id: String, error: String, excerpt: String },
    #[error(
        "SNS message {message_id} is not an Auto Scaling notification ({error}); subscribe the function only to the topic named in the Auto Scaling group's notification configuration"
    )]
    NotAutoScaling { message_id: String, error: String },
    #[error(
        "SNS message {message_id}: unsupported Auto Scaling event {event:?}; expected one of {LAUNCH}, {TERMINATE}, {LAUNCH_ERROR}, {TERMINATE_ERROR}, {TEST_NOTIFICATION}"
    )]
    UnknownAutoScalingEvent { message_id: String, event: String },
}

/// Decodes raw invocation bytes.
pub fn decode_bytes(bytes: &[u8]) -> Result<Vec<Trigger>, EventError> {
    let value: Value = serde_json::from_slice(bytes).map_err(EventError::NotJson)?;
    decode(&value)
}

/// Decodes an invocation event into its triggers. Either every record
/// decodes, or the whole event is rejected.
pub fn decode(event: &Value) -> Result<Vec<Trigger>, EventError> {
    match event {
        Value::Object(map) if map.contains_key("Records") => decode_sns(event),
        Value::Object(map) if map.contains_key("detail-type") => decode_eventbridge(event).map(|t| vec![t]),
        other => Err(EventError::UnsupportedShape { found: describe_shape(other) }),
    }
}

fn decode_sns(event: &Value) -> Result<Vec<Trigger>, EventError> {
    let sns = SnsEvent::deserialize(event).map_err(EventError::MalformedSns)?;
    if sns.records.is_empty() {
        return Err(EventError::NoRecords);
    }
    sns.records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            if record.event_source != "aws:sns" {
                return Err(EventError::NotSns { index, event_source: excerpt(&record.event_source) });
            }
            decode_autoscaling(&record.sns.message_id, &record.sns.message).map(Trigger::AutoScaling)
        })
        .collect()
}

fn decode_eventbridge(event: &Value) -> Result<Trigger, EventError> {
    let raw = RawEventBridge::deserialize(event).map_err(EventError::MalformedEventBridge)?;
    match (raw.source.as_str(), raw.detail_type.as_str()) {
        ("aws.ec2", STATE_CHANGE) => {
            let detail = RawStateChange::deserialize(&raw.detail).map_err(|e| EventError::MalformedStateChange {
                event_id: excerpt(&raw.id),
                error: excerpt(&e.to_string()),
            })?;
            Ok(Trigger::InstanceStateChange { instance_id: detail.instance_id, state: detail.state, event_id: raw.id })
        }
        ("aws.ec2", SPOT_INTERRUPTION) => {
            let detail = RawSpotInterruption::deserialize(&raw.detail).map_err(|e| {
                EventError::MalformedSpotInterruption { event_id: excerpt(&raw.id), error: excerpt(&e.to_string()) }
            })?;
            Ok(Trigger::SpotInterruption { instance_id: detail.instance_id, action: detail.action, event_id: raw.id })
        }
        ("aws.events", SCHEDULED) => Ok(Trigger::Schedule { event_id: raw.id }),
        _ => Err(EventError::UnsupportedEventBridge {
            source_name: excerpt(&raw.source),
            detail_type: excerpt(&raw.detail_type),
        }),
    }
}

fn decode_autoscaling(message_id: &str, message: &str) -> Result<AutoScalingNotification, EventError> {
    // Event strings can be anything: error messages quote at most ~200
    // characters of each.
    let message_id = &excerpt(message_id);
    let value: Value = serde_json::from_str(message).map_err(|e| EventError::MessageNotJson {
        message_id: message_id.to_owned(),
        error: excerpt(&e.to_string()),
        excerpt: message.chars().take(40).collect(),
    })?;
    let raw = RawAutoScalingMessage::deserialize(&value).map_err(|e| EventError::NotAutoScaling {
        message_id: message_id.to_owned(),
        error: excerpt(&e.to_string()),
    })?;
    let event = AutoScalingEvent::parse(&raw.event).ok_or_else(|| EventError::UnknownAutoScalingEvent {
        message_id: message_id.to_owned(),
        event: excerpt(&raw.event),
    })?;
    Ok(AutoScalingNotification {
        event,
        group: raw.group,
        instance_id: raw.instance_id.filter(|id| !id.is_empty()),
        message_id: message_id.to_owned(),
    })
}

/// A short description of an unexpected event, for the error message.
fn describe_shape(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
            if keys.is_empty() {
                "an empty object".into()
            } else {
                excerpt(&format!("an object with keys {}", keys.join(", ")))
            }
        }
        Value::Array(_) => "an array".into(),
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Null => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAUNCH_EVENT: &str = include_str!("../../events/sns-launch.json");
    const TERMINATE_EVENT: &str = include_str!("../../events/sns-terminate.json");
    const TEST_EVENT: &str = include_str!("../../events/sns-test-notification.json");
    const RUNNING_EVENT: &str = include_str!("../../events/eventbridge-instance-running.json");
    const TERMINATED_EVENT: &str = include_str!("../../events/eventbridge-instance-terminated.json");
    const SCHEDULED_EVENT: &str = include_str!("../../events/eventbridge-scheduled.json");
    const SPOT_EVENT: &str = include_str!("../../events/eventbridge-spot-interruption.json");

    /// The launch sample with its SNS `Message` replaced.
    fn with_message(message: &str) -> Value {
        let mut event: Value = serde_json::from_str(LAUNCH_EVENT).unwrap();
        event["Records"][0]["Sns"]["Message"] = Value::String(message.to_owned());
        event
    }

    #[test]
    fn samples_decode_to_their_triggers() {
        let cases = [
            (LAUNCH_EVENT, AutoScalingEvent::Launch, Some("i-0b7f3c2a9d4e5f601"), true),
            (TERMINATE_EVENT, AutoScalingEvent::Terminate, Some("i-0c1d2e3f4a5b6c7d8"), true),
            (TEST_EVENT, AutoScalingEvent::TestNotification, None, false),
        ];
        for (sample, kind, instance, reconcile) in cases {
            let triggers = decode_bytes(sample.as_bytes()).unwrap();
            assert_eq!(triggers.len(), 1);
            let Trigger::AutoScaling(n) = &triggers[0] else { panic!("{triggers:?}") };
            assert_eq!(n.event, kind);
            assert_eq!(n.group, "nodes.k8s.example.com");
            assert_eq!(n.instance_id.as_deref(), instance);
            assert_eq!(triggers[0].wants_reconcile(), reconcile);
            assert!(!n.message_id.is_empty());
        }
    }

    #[test]
    fn every_autoscaling_event_name_is_known() {
        let cases = [
            (LAUNCH, AutoScalingEvent::Launch, true),
            (TERMINATE, AutoScalingEvent::Terminate, true),
            (LAUNCH_ERROR, AutoScalingEvent::LaunchError, true),
            (TERMINATE_ERROR, AutoScalingEvent::TerminateError, true),
            (TEST_NOTIFICATION, AutoScalingEvent::TestNotification, false),
        ];
        for (name, kind, reconcile) in cases {
            let message = format!(r#"{{"Event":"{name}","AutoScalingGroupName":"g","EC2InstanceId":"i-1"}}"#);
            let triggers = decode(&with_message(&message)).unwrap();
            let Trigger::AutoScaling(n) = &triggers[0] else { panic!("{triggers:?}") };
            assert_eq!(n.event, kind, "{name}");
            assert_eq!(triggers[0].wants_reconcile(), reconcile, "{name}");
        }
    }

    #[test]
    fn malformed_events_are_rejected_with_the_reason() {
        let mut other_source: Value = serde_json::from_str(LAUNCH_EVENT).unwrap();
        other_source["Records"][0]["EventSource"] = Value::String("aws:sqs".into());
        let mut no_records: Value = serde_json::from_str(LAUNCH_EVENT).unwrap();
        no_records["Records"] = Value::Array(vec![]);
        let mut no_sns: Value = serde_json::from_str(LAUNCH_EVENT).unwrap();
        no_sns["Records"][0].as_object_mut().unwrap().remove("Sns");

        let cases: Vec<(Value, &str)> = vec![
            (with_message("not json at all"), "message is not JSON"),
            (with_message(r#"{"Event":"autoscaling:EC2_INSTANCE_LAUNCH"#), "message is not JSON"),
            (with_message(r#"{"hello":"world"}"#), "not an Auto Scaling notification"),
            (with_message(r#"["autoscaling:EC2_INSTANCE_LAUNCH"]"#), "not an Auto Scaling notification"),
            (with_message(r#"{"Event":42,"AutoScalingGroupName":"g"}"#), "not an Auto Scaling notification"),
            (
                with_message(r#"{"Event":"autoscaling:EC2_INSTANCE_LAUNCHING","AutoScalingGroupName":"g"}"#),
                "unsupported Auto Scaling event \"autoscaling:EC2_INSTANCE_LAUNCHING\"",
            ),
            (other_source, "not from aws:sns"),
            (no_records, "no records"),
            (no_sns, "malformed SNS event"),
            (serde_json::json!({}), "an empty object"),
            (serde_json::json!({"detail-type": "x"}), "malformed EventBridge event"),
            (
                serde_json::json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
                "unsupported EventBridge event (source \"aws.s3\"",
            ),
            (
                serde_json::json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {"state": "running"}}),
                "malformed instance state change",
            ),
            (serde_json::json!({"version": "0", "detail": {}}), "keys detail, version"),
            (serde_json::json!([1, 2]), "an array"),
            (serde_json::json!("launch"), "a string"),
            (Value::Null, "null"),
        ];
        for (event, needle) in cases {
            let err = decode(&event).expect_err(needle);
            assert!(err.to_string().contains(needle), "{err} should contain {needle:?}");
        }
        let err = decode_bytes(b"{not json").unwrap_err();
        assert!(matches!(err, EventError::NotJson(_)), "{err}");
    }

    #[test]
    fn eventbridge_samples_decode_to_their_triggers() {
        let running = decode_bytes(RUNNING_EVENT.as_bytes()).unwrap();
        assert_eq!(
            running,
            vec![Trigger::InstanceStateChange {
                instance_id: "i-0b7f3c2a9d4e5f601".into(),
                state: "running".into(),
                event_id: "7bf73129-1428-4cd3-a780-95db273d1602".into(),
            }]
        );
        assert_eq!(running[0].new_node(), Some("i-0b7f3c2a9d4e5f601"));
        let terminated = decode_bytes(TERMINATED_EVENT.as_bytes()).unwrap();
        assert!(terminated[0].wants_reconcile());
        assert_eq!(terminated[0].new_node(), None);
        assert_eq!(terminated[0].instance_id(), Some("i-0c1d2e3f4a5b6c7d8"));
        let scheduled = decode_bytes(SCHEDULED_EVENT.as_bytes()).unwrap();
        assert_eq!(scheduled, vec![Trigger::Schedule { event_id: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into() }]);
        assert!(scheduled[0].wants_reconcile());
        let spot = decode_bytes(SPOT_EVENT.as_bytes()).unwrap();
        assert_eq!(
            spot,
            vec![Trigger::SpotInterruption {
                instance_id: "i-0b7f3c2a9d4e5f601".into(),
                action: "terminate".into(),
                event_id: "1e5527d7-bb36-4607-3370-4164db56a40e".into(),
            }]
        );
        assert!(spot[0].wants_reconcile());
        assert_eq!((spot[0].new_node(), spot[0].instance_id()), (None, Some("i-0b7f3c2a9d4e5f601")));
    }

    #[test]
    fn a_spot_warning_without_an_instance_is_rejected_naming_the_event() {
        let mut event: Value = serde_json::from_str(SPOT_EVENT).unwrap();
        event["detail"] = serde_json::json!({"instance-action": "stop"});
        let err = decode(&event).unwrap_err();
        assert!(matches!(err, EventError::MalformedSpotInterruption { .. }), "{err}");
        assert!(err.to_string().contains("1e5527d7-bb36-4607-3370-4164db56a40e"), "{err}");
    }

    #[test]
    fn only_states_that_move_routes_reconcile() {
        let cases = [
            ("pending", false),
            ("running", true),
            ("stopping", true),
            ("stopped", true),
            ("shutting-down", true),
            ("terminated", true),
        ];
        for (state, reconcile) in cases {
            let mut event: Value = serde_json::from_str(RUNNING_EVENT).unwrap();
            event["detail"]["state"] = Value::String(state.into());
            assert_eq!(decode(&event).unwrap()[0].wants_reconcile(), reconcile, "{state}");
        }
    }

    #[test]
    fn one_bad_record_rejects_the_whole_event() {
        let mut event: Value = serde_json::from_str(LAUNCH_EVENT).unwrap();
        let mut bad = event["Records"][0].clone();
        bad["Sns"]["Message"] = Value::String("garbage".into());
        event["Records"].as_array_mut().unwrap().push(bad);
        assert!(matches!(decode(&event), Err(EventError::MessageNotJson { .. })));
    }

    #[test]
    fn long_event_strings_are_quoted_in_part() {
        let long = "x".repeat(10_000);
        let unsupported = serde_json::json!({"source": long, "detail-type": long, "detail": {}});
        let bad_event = with_message(&format!(r#"{{"Event":"{long}","AutoScalingGroupName":"g"}}"#));
        for event in [unsupported, bad_event] {
            let message = decode(&event).unwrap_err().to_string();
            assert!(message.len() < 1_000, "{} characters", message.len());
        }
    }
}
