//! A small stand-in for the Lambda Runtime API, so that the compiled
//! `kube-rtsync` binary can be driven exactly as Lambda drives it: the
//! binary polls `/invocation/next`, gets an event, and posts a response or
//! an error. Serves loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the function answered to one event.
#[derive(Debug)]
pub enum Answer {
    Response(serde_json::Value),
    Error(serde_json::Value),
    InitError(serde_json::Value),
}

pub struct RuntimeApi {
    pub address: String,
    answers: Receiver<(String, Answer)>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Events not yet handed out, the next one last.
    events: Mutex<Vec<(String, String)>>,
    /// Signalled when an event is pushed.
    pushed: Condvar,
    /// Events given so far (for request ids).
    given: Mutex<usize>,
    answers: Mutex<Sender<(String, Answer)>>,
    /// When the function first asked for an event (its init was done).
    first_poll: Mutex<Option<Instant>>,
    /// When each event was handed out, and when its answer came back.
    served: Mutex<Vec<(String, Instant)>>,
    /// `Lambda-Runtime-Deadline-Ms` as sent verbatim; None: 5 minutes from
    /// now in epoch milliseconds, as Lambda sends it.
    deadline_header: Mutex<Option<u64>>,
    answered: Mutex<Vec<(String, Instant)>>,
}

impl RuntimeApi {
    /// Serves `events` (JSON texts) in order, one per `/invocation/next`.
    /// Once they are used up, a poll waits for the next [`Self::push`], for
    /// ever if none comes, as on Lambda.
    pub fn start(events: Vec<String>) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().unwrap().to_string();
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            pushed: Condvar::new(),
            given: Mutex::new(0),
            answers: Mutex::new(tx),
            first_poll: Mutex::new(None),
            served: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
            deadline_header: Mutex::new(None),
        });
        let server = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&server);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        let api = RuntimeApi { address, answers: rx, shared };
        for event in events {
            api.push(event);
        }
        api
    }

    /// Sends `Lambda-Runtime-Deadline-Ms: value` verbatim from now on (a
    /// local emulator's duration, for example).
    pub fn send_deadline_header(&self, value: u64) {
        *self.shared.deadline_header.lock().unwrap() = Some(value);
    }

    /// Queues one more event, after those already given.
    pub fn push(&self, event: String) {
        let mut given = self.shared.given.lock().unwrap();
        let request_id = format!("8f5d3c2e-0000-4000-8000-{:012}", *given);
        *given += 1;
        self.shared.events.lock().unwrap().insert(0, (request_id, event));
        self.shared.pushed.notify_all();
    }

    /// When the function first polled for an event.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().unwrap()
    }

    /// When an event was handed out.
    pub fn served_at(&self, request_id: &str) -> Option<Instant> {
        Some(self.shared.served.lock().unwrap().iter().find(|(id, _)| id == request_id)?.1)
    }

    /// How long the function took over an event: from handing it out to
    /// receiving the answer.
    pub fn duration(&self, request_id: &str) -> Option<Duration> {
        let served = self.shared.served.lock().unwrap().iter().find(|(id, _)| id == request_id)?.1;
        let answered = self.shared.answered.lock().unwrap().iter().find(|(id, _)| id == request_id)?.1;
        Some(answered.duration_since(served))
    }

    /// The next answer, with its request id.
    pub fn answer(&self, timeout: Duration) -> (String, Answer) {
        self.answers.recv_timeout(timeout).expect("the function answered in time")
    }
}

/// Whether the other end has closed the connection (without reading from it).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}

fn serve(stream: TcpStream, shared: &Shared) {
    // Small request/response exchanges: Nagle's algorithm would add a
    // delayed-ACK stall to each.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                    _ => {}
                }
            }
        }
        let body = if chunked { read_chunked(&mut reader) } else { read_exact(&mut reader, length) };

        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            shared.first_poll.lock().unwrap().get_or_insert_with(Instant::now);
            // No event yet: hold the poll open, as Lambda does while idle,
            // until one is pushed or the function goes away.
            let (request_id, event) = {
                let mut events = shared.events.lock().unwrap();
                loop {
                    if let Some(next) = events.pop() {
                        break next;
                    }
                    if peer_closed(&writer) {
                        return;
                    }
                    events = shared.pushed.wait_timeout(events, Duration::from_millis(100)).unwrap().0;
                }
            };
            let deadline = match *shared.deadline_header.lock().unwrap() {
                Some(value) => u128::from(value),
                None => u128::from(kube_rtsync::shared::clock::now_ms()) + 300_000,
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {request_id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:kube-rtsync\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000;Sampled=0\r\nContent-Length: {}\r\n\r\n",
                event.len()
            );
            shared.served.lock().unwrap().push((request_id.clone(), Instant::now()));
            if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(event.as_bytes())).is_err() {
                return;
            }
            continue;
        }
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let answer = match segments.as_slice() {
            [_, "runtime", "invocation", id, "response"] => Some((id.to_string(), Answer::Response(json))),
            [_, "runtime", "invocation", id, "error"] => Some((id.to_string(), Answer::Error(json))),
            [_, "runtime", "init", "error"] => Some((String::new(), Answer::InitError(json))),
            _ => None,
        };
        let status = if answer.is_some() { "202 Accepted" } else { "404 Not Found" };
        let _ = writer.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\n{{}}").as_bytes());
        if let Some(answer) = answer {
            shared.answered.lock().unwrap().push((answer.0.clone(), Instant::now()));
            let _ = shared.answers.lock().unwrap().send(answer);
        }
    }
}

fn read_exact(reader: &mut impl Read, length: usize) -> Vec<u8> {
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    body
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            let mut end = String::new();
            let _ = reader.read_line(&mut end);
            return body;
        }
        body.extend(read_exact(reader, size));
        let mut crlf = String::new();
        let _ = reader.read_line(&mut crlf);
    }
}
