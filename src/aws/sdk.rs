//! How kube-rtsync builds its AWS SDK clients (EC2, ELBv2, Route 53,
//! DynamoDB): one HTTPS stack (hyper 1 and rustls), the crypto provider
//! picked by measurement, bounded retries and timeouts. The Lambda and the
//! command line share it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::shared::config::ConfigError;

/// The SDK's standard variable naming a PEM file of certificate
/// authorities to trust besides the system's (for a TLS-inspecting proxy or
/// a private endpoint).
pub const AWS_CA_BUNDLE: &str = "AWS_CA_BUNDLE";

const CA_BUNDLE_FORM: &str = "the path of a PEM file holding one or more CA certificates";

/// The crypto provider of kube-rtsync's TLS connections: ring, chosen by
/// measurement against aws-lc-rs (the SDK's default): the same TLS set-up
/// time, a cheaper first handshake per process, a smaller binary (README,
/// "Performance", has the figures). Given up: the post-quantum hybrid key
/// exchange (X25519MLKEM768) that the SDK's aws-lc-rs set-up prefers.
pub fn crypto() -> CryptoMode {
    CryptoMode::Ring
}

/// Extra certificate authorities to trust, as PEM, checked: every block is
/// a certificate that can be a root, and there is at least one. (The HTTPS
/// client would otherwise find out on its first request, by panicking.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle(Vec<u8>);

impl CaBundle {
    /// Checks `pem`; the error says what is wrong with it.
    pub fn from_pem(pem: Vec<u8>) -> Result<CaBundle, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("is not valid PEM: {e:?}"))?;
            roots.add(cert).map_err(|e| format!("holds a certificate that cannot be a root: {e}"))?;
        }
        if roots.is_empty() {
            return Err("holds no certificate".to_owned());
        }
        Ok(CaBundle(pem))
    }
}

/// The HTTPS client: rustls with `crypto`, the system's roots plus
/// `extra_roots`, and the proxy the environment names (`HTTPS_PROXY`,
/// `NO_PROXY`), as the SDK's own default client does (whose way of building
/// it, `build_with_connector_fn`, this follows).
pub fn https_client(crypto: CryptoMode, extra_roots: Option<CaBundle>) -> SharedHttpClient {
    let mut trust = TrustStore::default();
    if let Some(CaBundle(pem)) = extra_roots {
        trust.add_pem_certificate(pem);
    }
    let context = TlsContext::builder().with_trust_store(trust).build().expect("a TLS context never fails to build");
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(crypto.clone())).tls_context(context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The extra roots `AWS_CA_BUNDLE` names, read and checked now: a bundle
/// that cannot be used fails init, never the first call.
pub fn ca_bundle(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<CaBundle>, ConfigError> {
    let Some(path) = lookup(AWS_CA_BUNDLE).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let problem = |what: String| ConfigError::new(AWS_CA_BUNDLE, what, CA_BUNDLE_FORM);
    let pem = std::fs::read(&path).map_err(|e| problem(format!("cannot read {path}: {e}")))?;
    CaBundle::from_pem(pem).map(Some).map_err(|e| problem(format!("{path} {e}")))
}

/// The SDK configuration loader, from the environment: region, credentials
/// and endpoint as the SDK reads them, kube-rtsync's HTTPS client, and
/// bounded retries and timeouts. Throttled calls are retried with backoff;
/// every attempt and call is bounded so that a write started before the
/// deadline margin ends inside it.
pub fn config_loader(lookup: impl Fn(&str) -> Option<String>) -> Result<aws_config::ConfigLoader, ConfigError> {
    let extra_roots = ca_bundle(lookup)?;
    Ok(aws_config::from_env()
        .http_client(https_client(crypto(), extra_roots))
        .retry_config(RetryConfig::standard().with_max_attempts(4).with_max_backoff(Duration::from_secs(4)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(crate::shared::apply::DEADLINE_MARGIN - Duration::from_secs(2))
                .build(),
        ))
}

/// The EC2 client for `config`, with kube-rtsync's rules and the given
/// throttle counter.
pub fn ec2_client(
    config: &aws_config::SdkConfig,
    throttled: crate::aws::error::ThrottleCounter,
) -> aws_sdk_ec2::Client {
    let ec2_config = ec2_rules(aws_sdk_ec2::config::Builder::from(config)).interceptor(throttled).build();
    aws_sdk_ec2::Client::from_conf(ec2_config)
}

/// A client of another service than EC2 for `config`, with kube-rtsync's
/// rules and the given throttle counter: the same HTTPS stack, retries and
/// timeouts as EC2's.
macro_rules! service_client {
    ($sdk:ident, $config:expr, $throttled:expr) => {{
        let service_config = $sdk::config::Builder::from($config)
            .retry_classifier(crate::aws::error::NoRetryOnRefusedCertificate)
            .interceptor($throttled)
            .build();
        $sdk::Client::from_conf(service_config)
    }};
}

/// The ELBv2 client (targets).
pub fn elbv2_client(
    config: &aws_config::SdkConfig,
    throttled: crate::aws::error::ThrottleCounter,
) -> aws_sdk_elasticloadbalancingv2::Client {
    service_client!(aws_sdk_elasticloadbalancingv2, config, throttled)
}

/// The Route 53 client (eip).
pub fn route53_client(
    config: &aws_config::SdkConfig,
    throttled: crate::aws::error::ThrottleCounter,
) -> aws_sdk_route53::Client {
    service_client!(aws_sdk_route53, config, throttled)
}

/// The DynamoDB client (eip).
pub fn dynamodb_client(
    config: &aws_config::SdkConfig,
    throttled: crate::aws::error::ThrottleCounter,
) -> aws_sdk_dynamodb::Client {
    service_client!(aws_sdk_dynamodb, config, throttled)
}

/// The EventBridge client (every job's change events).
pub fn eventbridge_client(
    config: &aws_config::SdkConfig,
    throttled: crate::aws::error::ThrottleCounter,
) -> aws_sdk_eventbridge::Client {
    service_client!(aws_sdk_eventbridge, config, throttled)
}

/// kube-rtsync's rules on top of an EC2 client configuration: no retry of
/// a call whose endpoint's certificate was refused.
pub fn ec2_rules(builder: aws_sdk_ec2::config::Builder) -> aws_sdk_ec2::config::Builder {
    builder.retry_classifier(crate::aws::error::NoRetryOnRefusedCertificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(contents: &[u8]) -> (tempfile_path::TempPath, impl Fn(&str) -> Option<String>) {
        let path = tempfile_path::TempPath::new(contents);
        let value = path.0.display().to_string();
        (path, move |name: &str| (name == AWS_CA_BUNDLE).then(|| value.clone()))
    }

    /// A file under the system's temp dir, removed when dropped.
    mod tempfile_path {
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct TempPath(pub std::path::PathBuf);

        impl TempPath {
            pub fn new(contents: &[u8]) -> Self {
                static N: AtomicUsize = AtomicUsize::new(0);
                let name = format!("kube-rtsync-ca-{}-{}.pem", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
                let path = std::env::temp_dir().join(name);
                std::fs::write(&path, contents).unwrap();
                TempPath(path)
            }
        }

        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn no_bundle_means_system_roots_only() {
        assert_eq!(ca_bundle(|_| None), Ok(None));
        assert_eq!(ca_bundle(|_| Some(String::new())), Ok(None));
    }

    #[test]
    fn a_bundle_of_ca_certificates_is_read_whole() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-ca.pem");
        let pem = std::fs::read(path).unwrap();
        assert_eq!(ca_bundle(|_| Some(path.to_owned())), Ok(Some(CaBundle(pem))));
    }

    #[test]
    fn unusable_bundles_fail_with_the_variable_named() {
        let missing = ca_bundle(|_| Some("/nonexistent/ca.pem".into())).unwrap_err();
        assert_eq!(missing.variable, AWS_CA_BUNDLE);
        assert!(missing.problem.contains("cannot read /nonexistent/ca.pem"), "{missing}");

        let cases: [(&[u8], &str); 3] = [
            (b"", "holds no certificate"),
            (b"not a certificate at all\n", "holds no certificate"),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be a root"),
        ];
        for (contents, expected) in cases {
            let (_file, lookup) = with_file(contents);
            let err = ca_bundle(lookup).unwrap_err();
            assert_eq!(err.variable, AWS_CA_BUNDLE);
            assert!(err.problem.contains(expected), "{err}");
        }
    }
}
