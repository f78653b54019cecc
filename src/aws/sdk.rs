//! How kube-rtsync builds its AWS SDK clients (EC2, ELBv2, Route 53,
//! DynamoDB): one HTTPS stack (hyper 1 and rustls), the crypto provider
//! picked by measurement, bounded retries and timeouts. The Lambda and the
//! command line share it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::SharedHttpClient;
use aws_smithy_async::rt::sleep::{SharedAsyncSleep, default_async_sleep};
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
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

/// The HTTPS client of every SDK client in the process: rustls with
/// `crypto`, the system's roots plus `extra_roots`, and the proxy the
/// environment names (`HTTPS_PROXY`, `NO_PROXY`).
///
/// Unlike the SDK's own client it builds no connector when an SDK client is
/// built (the SDK's builds one per client to check it, each parsing every
/// root again), and it keeps one connector, with one connection pool, per
/// pair of timeouts: every service of the process shares it, and
/// [`HttpsClient::warm_up`] fills the pool the first calls will use.
#[derive(Clone, Debug)]
pub struct HttpsClient {
    inner: Arc<Inner>,
}

/// A connector's key: its connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct Inner {
    crypto: CryptoMode,
    context: TlsContext,
    connectors: RwLock<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpsClient {
    pub fn new(crypto: CryptoMode, extra_roots: Option<CaBundle>) -> HttpsClient {
        let mut trust = TrustStore::default();
        if let Some(CaBundle(pem)) = extra_roots {
            trust.add_pem_certificate(pem);
        }
        let context =
            TlsContext::builder().with_trust_store(trust).build().expect("a TLS context never fails to build");
        HttpsClient { inner: Arc::new(Inner { crypto, context, connectors: RwLock::default() }) }
    }

    /// The client with the crypto provider of [`crypto`] and the extra
    /// roots `AWS_CA_BUNDLE` names, read and checked now.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<HttpsClient, ConfigError> {
        Ok(HttpsClient::new(crypto(), ca_bundle(lookup)?))
    }

    /// The client as the SDK's configuration takes it.
    pub fn shared(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }

    /// The connector for `settings`, built on first use (this is where the
    /// roots are parsed, once per pair of timeouts).
    fn connector(&self, settings: &HttpConnectorSettings, sleep: Option<SharedAsyncSleep>) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some(connector) = self.inner.connectors.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return connector.clone();
        }
        let mut connectors = self.inner.connectors.write().unwrap_or_else(|e| e.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| {
                let mut connector = ConnectorBuilder::default()
                    .tls_provider(Provider::Rustls(self.inner.crypto.clone()))
                    .tls_context(self.inner.context.clone());
                connector.set_connector_settings(Some(settings.clone()));
                connector.set_sleep_impl(sleep);
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                SharedHttpConnector::new(connector.build())
            })
            .clone()
    }

    /// Opens a connection to each of `endpoints` (URLs), at once, in the
    /// pool the SDK's calls use, so that the first invocation finds them
    /// open: one `HEAD /` each, whose answer is ignored. Ends after
    /// `budget` whatever is left; a connection that could not be made is
    /// logged and forgotten (the call that needs it opens its own).
    pub async fn warm_up(&self, endpoints: &[String], budget: Duration) -> WarmUp {
        let started = tokio::time::Instant::now();
        let mut warm = WarmUp::default();
        if budget.is_zero() || endpoints.is_empty() {
            return warm;
        }
        let deadline = started + budget;
        let connector = self.prepare();
        let open = |endpoint: String| {
            let connector = connector.clone();
            async move {
                let mut request = HttpRequest::empty();
                request.set_method("HEAD").map_err(|e| e.to_string())?;
                request.set_uri(endpoint.as_str()).map_err(|e| e.to_string())?;
                let call = connector.call(request);
                match tokio::time::timeout_at(deadline, call).await {
                    Ok(answer) => answer.map(|response| response.status().as_u16()).map_err(|e| error_chain(&e)),
                    Err(_) => Err(format!("not open within the init budget of {} ms", budget.as_millis())),
                }
            }
        };
        let results = futures::future::join_all(endpoints.iter().cloned().map(open)).await;
        for (endpoint, result) in endpoints.iter().zip(results) {
            match result {
                Ok(status) => {
                    warm.opened += 1;
                    tracing::debug!(endpoint, status, "connection opened during init");
                }
                Err(error) => {
                    warm.failed += 1;
                    tracing::warn!(endpoint, error, "no connection opened during init; the first call opens its own");
                }
            }
        }
        warm.took = started.elapsed();
        warm
    }

    /// Builds, now, the connector the SDK's calls will use (the roots
    /// parsed, the TLS configuration made), so that the first call does not
    /// do it at an invocation's throttled CPU.
    pub fn prepare(&self) -> SharedHttpConnector {
        self.connector(&connector_settings(&timeouts()), default_async_sleep())
    }
}

/// An error with its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// What a warm-up did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarmUp {
    pub opened: usize,
    pub failed: usize,
    pub took: Duration,
}

impl HttpClient for HttpsClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.connector(settings, components.sleep_impl())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(std::borrow::Cow::Borrowed("1.x"))))
    }
}

/// The HTTPS client as the SDK's configuration takes it (see [`HttpsClient`]).
pub fn https_client(crypto: CryptoMode, extra_roots: Option<CaBundle>) -> SharedHttpClient {
    HttpsClient::new(crypto, extra_roots).shared()
}

/// The AWS services kube-rtsync calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ec2,
    Elbv2,
    Route53,
    DynamoDb,
    EventBridge,
}

/// The URL the service's endpoint resolver gives for `sdk`, with the
/// endpoint the configuration names (the service's own variable first,
/// then `AWS_ENDPOINT_URL`), as the service's client resolves it.
macro_rules! resolve_endpoint {
    ($sdk_crate:ident, $service_id:literal, $sdk:expr) => {{
        use $sdk_crate::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let sdk: &aws_config::SdkConfig = $sdk;
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id($service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("every field of the key is set");
        let url = sdk
            .service_config()
            .and_then(|config| config.load_config(key))
            .or_else(|| sdk.endpoint_url().map(str::to_owned));
        let params = Params::builder()
            .set_region(sdk.region().map(|r| r.to_string()))
            .set_use_fips(sdk.use_fips())
            .set_use_dual_stack(sdk.use_dual_stack())
            .set_endpoint(url)
            .build();
        match params {
            Ok(params) => DefaultResolver::new().resolve_endpoint(&params).await.ok().map(|e| e.url().to_owned()),
            Err(_) => None,
        }
    }};
}

impl Service {
    /// The endpoint this service's client sends to, or none when it cannot
    /// be resolved (no Region): the client will say so on its first call.
    pub async fn endpoint(self, sdk: &aws_config::SdkConfig) -> Option<String> {
        match self {
            Service::Ec2 => resolve_endpoint!(aws_sdk_ec2, "EC2", sdk),
            Service::Elbv2 => resolve_endpoint!(aws_sdk_elasticloadbalancingv2, "Elastic Load Balancing v2", sdk),
            Service::Route53 => resolve_endpoint!(aws_sdk_route53, "Route 53", sdk),
            Service::DynamoDb => resolve_endpoint!(aws_sdk_dynamodb, "DynamoDB", sdk),
            Service::EventBridge => resolve_endpoint!(aws_sdk_eventbridge, "EventBridge", sdk),
        }
    }
}

/// The most connections a warm-up opens to one endpoint.
pub const MAX_WARM_CONNECTIONS: usize = 8;

/// The URLs to warm up for `connections` (a service and how many calls the
/// first round trip makes to it at once): one per connection to open,
/// services that resolve to the same endpoint (an emulator) counted once
/// with the most any of them asks for, at most [`MAX_WARM_CONNECTIONS`]
/// each.
pub async fn warm_up_urls(sdk: &aws_config::SdkConfig, connections: &[(Service, usize)]) -> Vec<String> {
    let mut per_endpoint: Vec<(String, usize)> = Vec::new();
    for &(service, count) in connections {
        let Some(url) = service.endpoint(sdk).await else { continue };
        let count = count.min(MAX_WARM_CONNECTIONS);
        match per_endpoint.iter_mut().find(|(u, _)| *u == url) {
            Some((_, most)) => *most = (*most).max(count),
            None => per_endpoint.push((url, count)),
        }
    }
    per_endpoint.into_iter().flat_map(|(url, count)| std::iter::repeat_n(url, count)).collect()
}

/// The connector settings the SDK derives from `timeouts` for every call:
/// the key of the connector a call uses.
fn connector_settings(timeouts: &TimeoutConfig) -> HttpConnectorSettings {
    let mut settings = HttpConnectorSettings::builder();
    settings.set_connect_timeout(timeouts.connect_timeout());
    settings.set_read_timeout(timeouts.read_timeout());
    settings.build()
}

/// Every call's bounds: a write started before the deadline margin ends
/// inside it.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(crate::shared::apply::DEADLINE_MARGIN - Duration::from_secs(2))
        .build()
}

/// The one file the system's roots are read from: the variable naming the
/// bundle whose roots the HTTPS client trusts when the environment names
/// none (OpenSSL's convention, which the platform loader follows).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// The directory form of the same convention.
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";

/// Where the platforms kube-rtsync runs on keep their bundle of trusted
/// roots, in the order looked for: Amazon Linux 2023 (Lambda's
/// `provided.al2023`) and the Red Hat family, then Debian, Ubuntu and
/// Alpine, then others.
pub const PLATFORM_BUNDLES: &[&str] =
    &["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/cert.pem"];

/// The bundle file to read the system's roots from: none when the
/// environment already says where they are (`SSL_CERT_FILE` or
/// `SSL_CERT_DIR`, the operator's choice stands), else the first of
/// [`PLATFORM_BUNDLES`] that exists. Without it the platform loader reads
/// the bundle and then every file of the certificate directory.
pub fn platform_bundle(lookup: impl Fn(&str) -> Option<String>, exists: impl Fn(&str) -> bool) -> Option<&'static str> {
    let set = |name: &str| lookup(name).is_some_and(|v| !v.is_empty());
    if set(SSL_CERT_FILE) || set(SSL_CERT_DIR) {
        return None;
    }
    PLATFORM_BUNDLES.iter().copied().find(|path| exists(path))
}

/// Points `SSL_CERT_FILE` at the platform's bundle when the environment
/// names none, so that the roots are read from that one file.
///
/// # Safety
///
/// It sets a variable of the process: call it before any other thread
/// exists (first thing in `main`, before the async runtime is built), so
/// that nothing reads the environment at the same time.
pub unsafe fn read_roots_from_the_platform_bundle() {
    if let Some(path) = platform_bundle(|name| std::env::var(name).ok(), |path| std::path::Path::new(path).is_file()) {
        // SAFETY: the caller guarantees that no other thread exists.
        unsafe { std::env::set_var(SSL_CERT_FILE, path) };
    }
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
    Ok(config_loader_with(HttpsClient::from_lookup(lookup)?))
}

/// [`config_loader`] with the given HTTPS client (the Lambda keeps it, to
/// warm it up).
pub fn config_loader_with(client: HttpsClient) -> aws_config::ConfigLoader {
    aws_config::from_env()
        .http_client(client.shared())
        .retry_config(RetryConfig::standard().with_max_attempts(4).with_max_backoff(Duration::from_secs(4)))
        .timeout_config(timeouts())
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
    fn the_roots_come_from_the_first_platform_bundle_unless_the_environment_says() {
        let present = |paths: &'static [&'static str]| move |path: &str| paths.contains(&path);
        let unset = |_: &str| None;
        let cases: [(&[&str], Option<&str>); 4] = [
            (
                &["/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"],
                Some("/etc/pki/tls/certs/ca-bundle.crt"),
            ),
            (&["/etc/ssl/certs/ca-certificates.crt"], Some("/etc/ssl/certs/ca-certificates.crt")),
            (&["/etc/ssl/cert.pem"], Some("/etc/ssl/cert.pem")),
            (&[], None),
        ];
        for (paths, expected) in cases {
            let paths: &'static [&'static str] = Box::leak(paths.to_vec().into_boxed_slice());
            assert_eq!(platform_bundle(unset, present(paths)), expected, "{paths:?}");
        }
        let all = present(&["/etc/pki/tls/certs/ca-bundle.crt"]);
        for variable in [SSL_CERT_FILE, SSL_CERT_DIR] {
            let set = |name: &str| (name == variable).then(|| "/opt/ca/roots.pem".to_owned());
            assert_eq!(platform_bundle(set, all), None, "{variable} set: the operator's choice stands");
        }
        let empty = |name: &str| (name == SSL_CERT_FILE).then(String::new);
        assert_eq!(platform_bundle(empty, all), Some("/etc/pki/tls/certs/ca-bundle.crt"), "empty counts as unset");
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
