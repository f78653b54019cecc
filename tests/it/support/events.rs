//! An operator's rule on the emulator's default bus: every kube-rtsync
//! change event delivered to an SQS queue, read back as EventBridge
//! delivers it. SQS is spoken here in its JSON protocol over plain HTTP
//! (the emulator checks no signature), so that the tests need no SQS SDK.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::support::emulator::{Emulator, REGION};

pub struct EventsQueue {
    address: String,
    queue_url: String,
}

impl EventsQueue {
    /// A queue and a rule (`source: kube-rtsync`) delivering to it.
    pub async fn create(emulator: &Emulator, name: &str) -> EventsQueue {
        let endpoint = emulator.endpoint();
        let address = endpoint.strip_prefix("http://").expect("a plain HTTP emulator").to_owned();
        let mut queue = EventsQueue { address, queue_url: String::new() };
        queue.queue_url = queue.sqs("CreateQueue", json!({"QueueName": name}))["QueueUrl"].as_str().unwrap().to_owned();
        let attributes =
            queue.sqs("GetQueueAttributes", json!({"QueueUrl": queue.queue_url, "AttributeNames": ["QueueArn"]}));
        let queue_arn = attributes["Attributes"]["QueueArn"].as_str().unwrap().to_owned();
        let events = emulator.eventbridge_client();
        let rule = format!("{name}-rule");
        events
            .put_rule()
            .name(&rule)
            .event_pattern(json!({"source": ["kube-rtsync"]}).to_string())
            .send()
            .await
            .expect("PutRule");
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(queue_arn).build().unwrap();
        events.put_targets().rule(&rule).targets(target).send().await.expect("PutTargets");
        queue
    }

    /// Every event delivered so far (each read once), in delivery order.
    pub fn receive(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let answer = self.sqs("ReceiveMessage", json!({"QueueUrl": self.queue_url, "MaxNumberOfMessages": 10}));
            let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for message in messages {
                let receipt = message["ReceiptHandle"].as_str().unwrap().to_owned();
                self.sqs("DeleteMessage", json!({"QueueUrl": self.queue_url, "ReceiptHandle": receipt}));
                out.push(serde_json::from_str(message["Body"].as_str().unwrap()).expect("an EventBridge event"));
            }
        }
    }

    fn sqs(&self, action: &str, body: Value) -> Value {
        let body = body.to_string();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AmazonSQS.{action}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/sqs/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        let mut stream = TcpStream::connect(&self.address).expect("the emulator");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "SQS {action}: {response}");
        if payload.trim().is_empty() { Value::Null } else { serde_json::from_str(payload).expect("SQS answers JSON") }
    }
}

/// The runner's publish step through the real EventBridge adapter, against
/// the emulator, as invocation `inv-1` of account 123456789012.
pub async fn publish<R: kube_rtsync::shared::report::JobReport>(
    emulator: &Emulator,
    job: &'static str,
    config: &kube_rtsync::shared::config::SharedConfig,
    report: &R,
) -> kube_rtsync::shared::changes::Published {
    let bus = kube_rtsync::aws::events::AwsEventBridge::new(emulator.eventbridge_client());
    let arns = crate::support::arns();
    let to = kube_rtsync::shared::job::EventsTo { bus: &bus, arns: &arns, invocation_id: "inv-1" };
    kube_rtsync::shared::job::publish_changes(job, config, Some(report), Some(&to), None).await
}
