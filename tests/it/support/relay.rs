//! A TCP relay in front of a TLS endpoint, on loopback: it forwards bytes
//! both ways untouched (the TLS session is end to end) and notes when each
//! connection was accepted and when each chunk of bytes went through, so a
//! test can tell which connections a process opened, and when, without
//! reading inside TLS. It can add a round trip's latency, as a real Region
//! does: once for TCP's handshake, and before each answer from upstream.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What went through one connection.
#[derive(Clone, Debug)]
pub struct Connection {
    pub accepted: Instant,
    /// When each chunk from the client reached the relay.
    pub from_client: Vec<Instant>,
    /// When each chunk from upstream was passed on to the client.
    pub to_client: Vec<Instant>,
}

pub struct Relay {
    /// `host:port` to dial instead of upstream.
    pub address: String,
    connections: Arc<Mutex<Vec<Connection>>>,
}

impl Relay {
    /// Relays to `upstream` (`host:port`), adding `latency` once per
    /// connection and before each chunk upstream answers with.
    pub fn start(upstream: &str, latency: Duration) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().unwrap().to_string();
        let connections: Arc<Mutex<Vec<Connection>>> = Arc::default();
        let log = Arc::clone(&connections);
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let accepted = Instant::now();
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(Connection { accepted, from_client: Vec::new(), to_client: Vec::new() });
                    log.len() - 1
                };
                let (log, upstream) = (Arc::clone(&log), upstream.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(latency);
                    let Ok(server) = TcpStream::connect(&upstream) else { return };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up_log = Arc::clone(&log);
                    let up = std::thread::spawn(move || {
                        pump(c2, s2, Duration::ZERO, |t| up_log.lock().unwrap()[index].from_client.push(t))
                    });
                    pump(server, client, latency, |t| log.lock().unwrap()[index].to_client.push(t));
                    let _ = up.join();
                });
            }
        });
        Relay { address, connections }
    }

    /// Every connection so far.
    pub fn connections(&self) -> Vec<Connection> {
        self.connections.lock().unwrap().clone()
    }

    /// How many connections were accepted before `at`, and how many after.
    pub fn opened_around(&self, at: Instant) -> (usize, usize) {
        let all = self.connections();
        let before = all.iter().filter(|c| c.accepted < at).count();
        (before, all.len() - before)
    }
}

/// Copies `from` to `to` until either end closes, noting when each chunk
/// went through, after waiting `delay` for it.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration, mut note: impl FnMut(Instant)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        note(Instant::now());
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
