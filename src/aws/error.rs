//! Failures of AWS calls, the same for every service: the AWS error code
//! and message kept from the SDK, and a classification (throttling, access,
//! network, certificate) that decides retries, hints and whether further
//! writes may start.

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::aws::ec2::{INVALID_PARAMETER_VALUE, ROUTE_LIMIT_EXCEEDED, ROUTE_NOT_FOUND, ROUTE_TABLE_NOT_FOUND};

/// What kind of failure an AWS call met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The service answered with an error code.
    Service,
    /// The call (or one of its attempts) ran out of time.
    Timeout,
    /// The request could not be sent or the answer not read.
    Network,
    /// The endpoint's TLS certificate was refused (not trusted, expired,
    /// or for another name).
    Certificate,
    /// Not made, or cut short: too little time was left before the
    /// invocation's deadline (the next invocation makes it).
    Deadline,
    /// Anything else (for example no credentials).
    Other,
}

/// A failed AWS call, with the AWS error code when the service gave one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed{}: {message}", .code.as_deref().map(|c| format!(" with {c}")).unwrap_or_default())]
pub struct AwsError {
    pub operation: &'static str,
    pub kind: FailureKind,
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn service(operation: &'static str, code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError { operation, kind: FailureKind::Service, code: Some(code.into()), message: message.into() }
    }

    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn is_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    /// The service refused the call for its request rate (any service's
    /// throttling code: the one list the counter, the pace and the engine's
    /// stop share).
    pub fn is_throttling(&self) -> bool {
        self.code().is_some_and(|code| THROTTLING_CODES.contains(&code))
    }

    /// `ReplaceRoute` found no route to replace (the route vanished).
    pub fn is_missing_route(&self) -> bool {
        self.is_code(ROUTE_NOT_FOUND)
            || (self.is_code(INVALID_PARAMETER_VALUE) && self.message.to_ascii_lowercase().contains("no route"))
    }

    /// Whether the same call, made again a little later, can succeed:
    /// throttling, a timeout, the network, the deadline, or the service's own
    /// failure (a 5xx, or an answer with no error code at all: a gateway's or
    /// a proxy's error page). Not a refusal the caller must fix (the role, the
    /// certificate, a bad parameter, a resource that does not exist).
    pub fn retry_can_help(&self) -> bool {
        retry_can_help(self.kind, self.code())
    }

    /// EC2 refused the caller's credentials or permissions.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.code(), Some(c) if c.starts_with("UnauthorizedOperation") || c == "AccessDenied" || c == "AuthFailure")
    }

    /// What an operator should do about it, for the error message. It names
    /// no job's variables: a job that knows which of its settings matter
    /// adds that context (the routes job's `report::hint`).
    pub fn hint(&self) -> &'static str {
        match self.code() {
            _ if self.is_unauthorized() => "check the job's IAM policy (policies/<job>.json) and its conditions",
            Some(ROUTE_TABLE_NOT_FOUND) => "the route table does not exist (or no longer does)",
            Some(ROUTE_LIMIT_EXCEEDED) => {
                "the table is at its route quota: raise it (Service Quotas: routes per route table, L-93826ACB)"
            }
            _ if self.is_throttling() => {
                "the service is throttling these calls; the next invocation continues the work"
            }
            _ => match self.kind {
                FailureKind::Timeout | FailureKind::Network => "transient; the next invocation retries",
                FailureKind::Deadline => "the invocation ran out of time; the next invocation continues the work",
                FailureKind::Certificate => {
                    "the endpoint's certificate is not trusted: check AWS_ENDPOINT_URL and any HTTPS proxy, or add their CA with AWS_CA_BUNDLE"
                }
                _ => "see the AWS error code",
            },
        }
    }
}

/// Counts SDK attempts a service answered as throttled, retried or not:
/// HTTP 503 (EC2's `RequestLimitExceeded`) or 429, or HTTP 400 with a
/// throttling error code in the body (ELBv2 and Route 53's `Throttling`,
/// DynamoDB's `ThrottlingException`; see [`throttling_code`]).
#[derive(Clone, Debug, Default)]
pub struct ThrottleCounter {
    own: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The invocation's total, which every service's counter adds to.
    total: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl ThrottleCounter {
    pub fn count(&self) -> usize {
        self.own.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One more throttled attempt.
    pub fn record(&self) {
        self.own.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(total) = &self.total {
            total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A counter of one service's own (whose pace learns from it alone)
    /// that also counts into this one.
    pub fn service(&self) -> ThrottleCounter {
        ThrottleCounter { own: Default::default(), total: Some(std::sync::Arc::clone(&self.own)) }
    }
}

impl aws_sdk_ec2::config::Intercept for ThrottleCounter {
    fn name(&self) -> &'static str {
        "ThrottleCounter"
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        if let Some(response) = context.response() {
            let status = response.status().as_u16();
            // Non-streaming answers are read whole before this runs.
            let body = response.body().bytes().unwrap_or_default();
            if status == 503 || status == 429 || (status == 400 && throttling_code(body).is_some()) {
                self.record();
            }
        }
        Ok(())
    }
}

/// [`AwsError::retry_can_help`] for a failure as a report keeps it.
pub fn retry_can_help(kind: FailureKind, code: Option<&str>) -> bool {
    match kind {
        FailureKind::Timeout | FailureKind::Network | FailureKind::Deadline => true,
        FailureKind::Certificate | FailureKind::Other => false,
        FailureKind::Service => match code {
            None => true,
            Some(code) => {
                THROTTLING_CODES.contains(&code) || TRANSIENT_CODES.contains(&code) || code.starts_with("Internal")
            }
        },
    }
}

/// Codes of a service's own passing failure (besides throttling and the
/// `Internal…` family), which the SDK's standard mode retries too.
pub const TRANSIENT_CODES: [&str; 6] = [
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalFailure",
];

/// The error codes AWS services throttle with (those the SDK's own retry
/// classifier treats as throttling).
pub const THROTTLING_CODES: [&str; 12] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// The throttling code an error body carries, if any: in a query or REST
/// XML error (`<Code>Throttling</Code>`) or a JSON one (`"__type":
/// "com.amazonaws.dynamodb.v20120810#ThrottlingException"`, or the bare
/// code).
pub fn throttling_code(body: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(body).ok()?;
    let json_type = serde_json::from_str::<serde_json::Value>(text).ok().and_then(|v| {
        let t = v.get("__type").or_else(|| v.get("code"))?.as_str()?.to_owned();
        Some(t.rsplit('#').next().unwrap_or_default().to_owned())
    });
    THROTTLING_CODES.into_iter().find(|code| match &json_type {
        Some(t) => t == code,
        None => text.contains(&format!("<Code>{code}</Code>")),
    })
}

/// Stops the SDK from retrying a call whose endpoint's certificate was
/// refused: no retry can change the certificate, and four attempts with
/// backoff would only delay the error.
#[derive(Clone, Debug, Default)]
pub struct NoRetryOnRefusedCertificate;

impl aws_sdk_ec2::config::retry::ClassifyRetry for NoRetryOnRefusedCertificate {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_ec2::config::interceptors::InterceptorContext,
    ) -> aws_sdk_ec2::config::retry::RetryAction {
        use aws_sdk_ec2::config::retry::RetryAction;
        match ctx.output_or_error() {
            Some(Err(err)) if err.as_connector_error().is_some_and(|e| refused_certificate(e)) => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "NoRetryOnRefusedCertificate"
    }
}

/// Keeps the AWS error code and message of a failed SDK call.
pub(crate) fn sdk_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let kind = match &err {
        SdkError::ServiceError(_) => FailureKind::Service,
        SdkError::TimeoutError(_) => FailureKind::Timeout,
        SdkError::DispatchFailure(failure) if failure.as_connector_error().is_some_and(|e| refused_certificate(e)) => {
            FailureKind::Certificate
        }
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => FailureKind::Network,
        _ => FailureKind::Other,
    };
    let code = err.code().map(str::to_owned);
    let message = match (kind, err.message()) {
        (FailureKind::Service, Some(message)) => message.to_owned(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    AwsError { operation, kind, code, message }
}

/// Whether rustls refused the peer's certificate somewhere down the error's
/// causes. (An `io::Error` hides the error it wraps from `source()`; its
/// `get_ref()` shows it.)
pub(crate) fn refused_certificate(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>() {
            return true;
        }
        next = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_found_in_xml_and_json_error_bodies() {
        let cases: [(&str, Option<&str>); 7] = [
            // ELBv2 (query XML) and Route 53 (REST XML).
            (
                r#"<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>"#,
                Some("Throttling"),
            ),
            (
                r#"<ErrorResponse><Error><Type>Sender</Type><Code>PriorRequestNotComplete</Code></Error></ErrorResponse>"#,
                Some("PriorRequestNotComplete"),
            ),
            // DynamoDB (JSON 1.0).
            (
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
                Some("ThrottlingException"),
            ),
            (r#"{"__type":"ProvisionedThroughputExceededException"}"#, Some("ProvisionedThroughputExceededException")),
            // Not throttling: a condition check, a validation error, a
            // code that merely starts like one.
            (r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#, None),
            (
                r#"<ErrorResponse><Error><Code>ValidationError</Code><Message>Throttling is not the matter</Message></Error></ErrorResponse>"#,
                None,
            ),
            (r#"<Response><Errors><Error><Code>ThrottlingSomething</Code></Error></Errors></Response>"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(throttling_code(body.as_bytes()), expected, "{body}");
        }
        assert_eq!(throttling_code(b"\xff\xfe"), None);
    }

    #[test]
    fn a_service_s_counter_counts_into_the_total_and_not_into_another_service_s() {
        let total = ThrottleCounter::default();
        let (ec2, route53) = (total.service(), total.service());
        route53.record();
        route53.record();
        ec2.record();
        assert_eq!((total.count(), ec2.count(), route53.count()), (3, 1, 2));
    }

    #[test]
    fn every_throttling_code_slows_the_pace_and_stops_a_group_not_only_ec2_s() {
        // Route 53 and DynamoDB throttle with codes EC2 never uses.
        for code in
            ["Throttling", "PriorRequestNotComplete", "ProvisionedThroughputExceededException", "ThrottlingException"]
        {
            let err = AwsError::service("ChangeResourceRecordSets", code, "Rate exceeded");
            assert!(err.is_throttling(), "{code}");
            assert!(crate::shared::apply::stops_further_writes(&err), "{code}");
        }
        for code in THROTTLING_CODES {
            assert!(AwsError::service("X", code, "").is_throttling(), "{code}");
        }
        assert!(!AwsError::service("PutItem", "ConditionalCheckFailedException", "").is_throttling());
        assert!(!AwsError::service("X", "ThrottlingSomething", "").is_throttling());
    }

    #[test]
    fn a_refused_certificate_is_found_under_wrapped_io_errors() {
        use std::io::{Error as IoError, ErrorKind};

        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Connect(#[source] IoError);

        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let chain = Connect(IoError::other(IoError::new(ErrorKind::InvalidData, refused)));
        assert!(refused_certificate(&chain));
        let other_tls = Connect(IoError::other(IoError::new(ErrorKind::InvalidData, rustls::Error::DecryptError)));
        assert!(!refused_certificate(&other_tls));
        assert!(!refused_certificate(&Connect(IoError::from(ErrorKind::ConnectionRefused))));
        let failed = AwsError { kind: FailureKind::Certificate, ..AwsError::service("DescribeRouteTables", "", "") };
        assert!(failed.hint().contains("AWS_CA_BUNDLE"));
    }
}
