//! A TCP relay in front of a TLS endpoint, on loopback: it forwards bytes
//! both ways untouched (the TLS session is end to end) and notes when each
//! connection was accepted, so a test can tell which connections a process
//! opened, and when, without reading inside TLS.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Relay {
    /// `host:port` to dial instead of upstream.
    pub address: String,
    /// When each connection was accepted.
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl Relay {
    /// Relays to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().unwrap().to_string();
        let accepted: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let log = Arc::clone(&accepted);
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                log.lock().unwrap().push(Instant::now());
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(&upstream) else { return };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || pump(c2, s2));
                    pump(server, client);
                    let _ = up.join();
                });
            }
        });
        Relay { address, accepted }
    }

    /// When each connection so far was accepted.
    pub fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }

    /// How many connections were accepted before `at`, and how many after.
    pub fn opened_around(&self, at: Instant) -> (usize, usize) {
        let all = self.accepted();
        let before = all.iter().filter(|t| **t < at).count();
        (before, all.len() - before)
    }
}

/// Copies `from` to `to` until either end closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
