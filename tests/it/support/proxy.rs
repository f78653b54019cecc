//! A small HTTP proxy in front of the EC2 emulator, on loopback: it can
//! refuse some route writes with EC2's throttling answer (HTTP 503
//! `RequestLimitExceeded`), either every n-th or by metering them with a
//! model of EC2's token bucket, and add latency to every call, the way a
//! real region's round trip would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Default)]
pub struct Behaviour {
    /// Refuse every n-th route write (0: never).
    pub throttle_every: usize,
    /// Meter route writes with this bucket and refuse those it has no
    /// token for.
    pub bucket: Option<WriteBucket>,
    /// Refuse the first calls of one action with a query-protocol error.
    pub refuse: Option<Refusal>,
    /// Added before every answer, and once when a connection opens (the
    /// round trip of TCP's handshake). TLS is not modelled.
    pub latency: Duration,
}

/// EC2's bucket for mutating calls, per account and region: `capacity`
/// tokens refilled at `per_second`, of which another writer of the account
/// (the cluster's route controller) takes `others_per_second`. Each write
/// reaches it after a pseudo-random delay of up to `jitter`, as requests of
/// a real network do.
#[derive(Clone, Copy, Debug)]
pub struct WriteBucket {
    pub capacity: f64,
    pub per_second: f64,
    pub others_per_second: f64,
    pub jitter: Duration,
}

/// The first `times` calls of `action` are answered with HTTP `status`
/// and the error `code`, as ELBv2 and Route 53 throttle (400 `Throttling`)
/// or EC2 refuses (403 `UnauthorizedOperation`, in EC2's error document).
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    pub action: &'static str,
    pub times: usize,
    pub status: u16,
    pub code: &'static str,
}

pub struct Proxy {
    pub endpoint: String,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    writes: AtomicUsize,
    throttled: AtomicUsize,
    describes: AtomicUsize,
    connections: AtomicUsize,
    /// Every call, by its `Action`.
    actions: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    /// The modelled bucket's tokens, and when they were counted.
    tokens: std::sync::Mutex<Option<(f64, Instant)>>,
    /// Calls refused by [`Behaviour::refuse`].
    refused: AtomicUsize,
    /// Every call: when its request was read, and when its answer was sent.
    timeline: std::sync::Mutex<Vec<(Instant, Instant)>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (host:port).
    pub fn start(upstream: &str, behaviour: Behaviour) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let counters = Arc::new(Counters::default());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let shared = Arc::clone(&counters);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let (upstream, counters) = (upstream.clone(), Arc::clone(&shared));
                std::thread::spawn(move || serve(client, &upstream, behaviour, &counters));
            }
        });
        Proxy { endpoint, counters }
    }

    /// The longest chain of calls among those whose request came after
    /// `since`, each sent after the one before it was answered: how many
    /// round trips they took one after the other, whatever the latency.
    pub fn round_trips_since(&self, since: Instant) -> usize {
        let mut calls: Vec<(Instant, Instant)> =
            self.counters.timeline.lock().unwrap().iter().copied().filter(|(start, _)| *start >= since).collect();
        calls.sort();
        let mut depth = vec![1usize; calls.len()];
        for i in 0..calls.len() {
            for j in 0..i {
                if calls[j].1 <= calls[i].0 {
                    depth[i] = depth[i].max(depth[j] + 1);
                }
            }
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// Calls so far, by `Action` (every service of the emulator speaks a
    /// query protocol with one).
    pub fn actions(&self) -> std::collections::BTreeMap<String, usize> {
        self.counters.actions.lock().unwrap().clone()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Route writes seen (refused or not), refused, and describes seen.
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = &self.counters;
        (c.writes.load(Ordering::SeqCst), c.throttled.load(Ordering::SeqCst), c.describes.load(Ordering::SeqCst))
    }
}

pub struct Request {
    pub head: Vec<String>,
    pub body: Vec<u8>,
}

pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
        head.push(line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { head, body })
}

/// The call a request makes: `Action=` of the query protocols (EC2, ELBv2),
/// `X-Amz-Target` of the JSON ones (DynamoDB), or Route 53's REST path.
fn action(head: &[String], body: &str) -> Option<String> {
    if let Some(action) = body.split('&').find_map(|p| p.strip_prefix("Action=")) {
        return Some(action.to_owned());
    }
    if let Some(target) = head.iter().find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-target").then(|| value.trim().to_owned())
    }) {
        return target.rsplit('.').next().map(str::to_owned);
    }
    let request_line = head.first()?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next()?, parts.next()?);
    match (method, path.split('?').next()?.ends_with("/rrset")) {
        ("POST", true) => Some("ChangeResourceRecordSets".into()),
        ("GET", true) => Some("ListResourceRecordSets".into()),
        _ => None,
    }
}

fn serve(client: TcpStream, upstream: &str, behaviour: Behaviour, counters: &Counters) {
    let _ = client.set_nodelay(true);
    if !behaviour.latency.is_zero() {
        std::thread::sleep(behaviour.latency);
    }
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut writer = client;
    while let Some(request) = read_request(&mut reader) {
        let received = Instant::now();
        let body = String::from_utf8_lossy(&request.body);
        let is_write = ["Action=CreateRoute&", "Action=ReplaceRoute&", "Action=DeleteRoute&"]
            .iter()
            .any(|a| body.starts_with(a) || body.contains(&format!("&{a}")));
        let action = action(&request.head, &body);
        if let Some(action) = &action {
            *counters.actions.lock().unwrap().entry(action.clone()).or_default() += 1;
        }
        if let Some(refusal) = behaviour.refuse
            && action.as_deref() == Some(refusal.action)
            && counters.refused.fetch_add(1, Ordering::SeqCst) < refusal.times
        {
            // EC2's protocol has its own error document; ELBv2's and Route 53's
            // are the query one.
            let xml = if body.contains("Version=2016-11-15") {
                format!(
                    "<Response><Errors><Error><Code>{}</Code><Message>Refused by the test proxy</Message></Error></Errors><RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>",
                    refusal.code
                )
            } else {
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>Rate exceeded</Message></Error><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ErrorResponse>",
                    refusal.code
                )
            };
            let answer = format!(
                "HTTP/1.1 {} Refused\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                refusal.status,
                xml.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if body.contains("Action=DescribeRouteTables") {
            counters.describes.fetch_add(1, Ordering::SeqCst);
        }
        let refuse = is_write && {
            let n = counters.writes.fetch_add(1, Ordering::SeqCst) + 1;
            let nth = behaviour.throttle_every > 0 && n.is_multiple_of(behaviour.throttle_every);
            nth || behaviour.bucket.is_some_and(|bucket| !take_token(&bucket, n, counters))
        };
        let answer = if refuse {
            counters.throttled.fetch_add(1, Ordering::SeqCst);
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>";
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                xml.len()
            )
            .into_bytes()
        } else {
            match forward(upstream, &request) {
                Some(answer) => answer,
                None => return,
            }
        };
        if !behaviour.latency.is_zero() {
            std::thread::sleep(behaviour.latency);
        }
        if writer.write_all(&answer).is_err() {
            return;
        }
        counters.timeline.lock().unwrap().push((received, Instant::now()));
    }
}

/// Whether the modelled bucket has a token for the `n`-th write (and takes
/// it), after that write's jitter.
fn take_token(bucket: &WriteBucket, n: usize, counters: &Counters) -> bool {
    // A fixed pseudo-random sequence (Knuth's multiplicative hash).
    let fraction = ((n as u64).wrapping_mul(2_654_435_761) % 1_000) as f64 / 1_000.0;
    std::thread::sleep(bucket.jitter.mul_f64(fraction));
    let mut state = counters.tokens.lock().unwrap();
    let now = Instant::now();
    let (tokens, at) = state.get_or_insert((bucket.capacity, now));
    let refill = bucket.per_second - bucket.others_per_second;
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * refill).min(bucket.capacity);
    *at = now;
    if *tokens < 1.0 {
        return false;
    }
    *tokens -= 1.0;
    true
}

/// One request on a fresh upstream connection; the answer re-framed with a
/// Content-Length so that the client's connection can be kept alive.
fn forward(upstream: &str, request: &Request) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let _ = up.set_nodelay(true);
    let mut out = Vec::new();
    for line in &request.head {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&request.body);
    up.write_all(&out).ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut answer = Vec::new();
    for line in head.lines() {
        let lower = line.to_ascii_lowercase();
        if !(lower.starts_with("content-length:")
            || lower.starts_with("connection:")
            || lower.starts_with("transfer-encoding:"))
        {
            answer.extend_from_slice(line.as_bytes());
            answer.extend_from_slice(b"\r\n");
        }
    }
    answer.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    answer.extend_from_slice(body);
    Some(answer)
}
