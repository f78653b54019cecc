//! A TLS endpoint that keeps its connections open, on loopback: it ends TLS
//! with the emulator's test certificate (signed by the test CA) and passes
//! the plain bytes to an HTTP endpoint that keeps connections alive (the
//! test proxy). moto's own TLS endpoint closes every connection after one
//! answer, which no AWS endpoint does, so it cannot show a warm connection
//! being used.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct TlsFront {
    /// `host:port` of the TLS endpoint.
    pub address: String,
    /// When each chunk of plain bytes from a client was read (a request,
    /// or part of one, decrypted), over every connection.
    requests: Arc<Mutex<Vec<Instant>>>,
}

impl TlsFront {
    /// Ends TLS and relays to `upstream` (`host:port`, plain HTTP).
    pub fn start(upstream: &str) -> TlsFront {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(super::emulator::TLS_CERT)
            .expect("the test certificate")
            .collect::<Result<_, _>>()
            .expect("the test certificate is PEM");
        let key = PrivateKeyDer::from_pem_file(super::emulator::TLS_KEY).expect("the test key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the certificate matches the key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let requests: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let noted = Arc::clone(&requests);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, upstream, noted) = (acceptor.clone(), upstream.clone(), Arc::clone(&noted));
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let Ok(plain) = tokio::net::TcpStream::connect(&upstream).await else { return };
                        let _ = plain.set_nodelay(true);
                        let (mut from_client, mut to_client) = tokio::io::split(tls);
                        let (mut from_upstream, mut to_upstream) = plain.into_split();
                        let requests = async {
                            let mut buf = vec![0u8; 64 * 1024];
                            while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                                noted.lock().unwrap().push(Instant::now());
                                if to_upstream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            let _ = to_upstream.shutdown().await;
                        };
                        let answers = async {
                            let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
                            let _ = to_client.shutdown().await;
                        };
                        tokio::join!(requests, answers);
                    });
                }
            });
        });
        TlsFront { address, requests }
    }

    /// When the first request read after `after` reached the endpoint.
    pub fn first_request_after(&self, after: Instant) -> Option<Instant> {
        self.requests.lock().unwrap().iter().copied().filter(|t| *t > after).min()
    }
}
