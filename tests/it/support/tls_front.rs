//! A TLS endpoint that keeps its connections open, on loopback: it ends TLS
//! with the emulator's test certificate (signed by the test CA) and passes
//! the plain bytes to an HTTP endpoint that keeps connections alive (the
//! test proxy). moto's own TLS endpoint closes every connection after one
//! answer, which no AWS endpoint does, so it cannot show a warm connection
//! being used.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub struct TlsFront {
    /// `host:port` of the TLS endpoint.
    pub address: String,
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
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else { return };
                        let _ = plain.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront { address }
    }
}
