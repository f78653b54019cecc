//! The local EC2 emulator (moto in server mode) for the emulator tests and
//! the demo: started on a free loopback port, stopped when dropped, even
//! when a test fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};

pub const REGION: &str = "us-east-1";

pub struct Emulator {
    child: Child,
    port: u16,
    scheme: &'static str,
}

/// The CA that signed the TLS emulator's certificate (test-only key pair,
/// made with openssl for these tests; trusted nowhere else).
pub const TEST_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-ca.pem");
pub const TLS_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/emulator-cert.pem");
pub const TLS_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/emulator-key.pem");

/// Where `make venv` installs the emulator, unless `MOTO_SERVER` says
/// otherwise.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return path.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server")
}

/// A client of any SDK crate for the emulator at `endpoint`, through
/// kube-rtsync's HTTPS client trusting [`TEST_CA`].
macro_rules! sdk_client {
    ($sdk:ident, $endpoint:expr) => {{
        let test_ca =
            std::fs::read(TEST_CA).map(kube_rtsync::aws::sdk::CaBundle::from_pem).expect("the test CA").unwrap();
        let config = $sdk::Config::builder()
            .http_client(kube_rtsync::aws::sdk::https_client(kube_rtsync::aws::sdk::crypto(), Some(test_ca)))
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new(REGION))
            .endpoint_url($endpoint)
            .credentials_provider($sdk::config::Credentials::new("test", "test", None, None, "kube-rtsync-tests"))
            .build();
        $sdk::Client::from_conf(config)
    }};
}

/// Whether the emulator is installed. Without it an emulator test returns
/// early, saying so, so that plain `cargo test` on a fresh clone runs the
/// rest; with `KUBE_RTSYNC_REQUIRE_EMULATOR` set (`make test` sets it) a
/// missing emulator fails the test instead, so CI cannot pass by skipping.
pub fn available(test: &str) -> bool {
    if moto_server().exists() {
        return true;
    }
    if std::env::var_os("KUBE_RTSYNC_REQUIRE_EMULATOR").is_some() {
        panic!("{test}: the emulator is required but not installed at {}: run `make venv`", moto_server().display());
    }
    // Once, and past the test harness's capture (which hides what passing
    // tests print), so that the skip is seen.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\nkube-rtsync: the emulator is not installed ({}): the emulator tests are skipped (first: {test}); `make venv` installs it, `make test` runs them\n",
            moto_server().display()
        );
    });
    false
}

/// Returns from an emulator test when the emulator is not installed (see
/// [`available`]).
#[macro_export]
macro_rules! require_emulator {
    () => {
        if !$crate::support::emulator::available(module_path!()) {
            return;
        }
    };
}

impl Emulator {
    /// Starts a fresh emulator and waits until it answers.
    pub fn start() -> Emulator {
        Emulator::spawn(&[], "http")
    }

    /// Starts a fresh emulator that speaks HTTPS only, with a certificate
    /// for 127.0.0.1 signed by [`TEST_CA`].
    pub fn start_tls() -> Emulator {
        Emulator::spawn(&["--ssl-cert", TLS_CERT, "--ssl-key", TLS_KEY], "https")
    }

    fn spawn(extra: &[&str], scheme: &'static str) -> Emulator {
        let bin = moto_server();
        assert!(
            bin.exists(),
            "the EC2 emulator is not installed at {}: run `make venv` (or `make test`, which installs it)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut emulator = Emulator { child, port, scheme };
        emulator.wait_ready();
        emulator
    }

    fn wait_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the EC2 emulator exited during start-up with {status}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the EC2 emulator did not answer on {addr} within 60 s");
    }

    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// An SDK client for the emulator, with dummy credentials.
    pub fn client(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(client_config(&self.endpoint()).build())
    }

    /// An ELBv2 client for the emulator, with dummy credentials.
    pub fn elbv2_client(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        sdk_client!(aws_sdk_elasticloadbalancingv2, self.endpoint())
    }

    /// A Route 53 client for the emulator, with dummy credentials.
    pub fn route53_client(&self) -> aws_sdk_route53::Client {
        sdk_client!(aws_sdk_route53, self.endpoint())
    }

    /// A DynamoDB client for the emulator, with dummy credentials.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        sdk_client!(aws_sdk_dynamodb, self.endpoint())
    }

    /// An EventBridge client for the emulator, with dummy credentials.
    pub fn eventbridge_client(&self) -> aws_sdk_eventbridge::Client {
        sdk_client!(aws_sdk_eventbridge, self.endpoint())
    }

    /// The environment a kube-rtsync process needs to talk to the emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK configuration for an emulator (or a proxy in front of it) at
/// `endpoint`, through kube-rtsync's HTTPS client trusting [`TEST_CA`].
pub fn client_config(endpoint: &str) -> aws_sdk_ec2::config::Builder {
    let test_ca = std::fs::read(TEST_CA).map(kube_rtsync::aws::sdk::CaBundle::from_pem).expect("the test CA").unwrap();
    aws_sdk_ec2::Config::builder()
        .http_client(kube_rtsync::aws::sdk::https_client(kube_rtsync::aws::sdk::crypto(), Some(test_ca)))
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "kube-rtsync-tests"))
}
