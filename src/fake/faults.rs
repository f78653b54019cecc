//! Injected failures for the in-memory services: the next `times` calls of
//! an operation (on one resource, or any) answer an AWS error code.

use crate::aws::error::AwsError;

#[derive(Default)]
pub struct Faults(Vec<Fault>);

struct Fault {
    operation: &'static str,
    resource: Option<String>,
    code: String,
    /// Matching calls to let through first.
    skip: usize,
    times: usize,
}

impl Faults {
    pub fn add(&mut self, operation: &'static str, resource: Option<&str>, code: &str, times: usize) {
        self.add_after(operation, resource, code, 0, times);
    }

    /// Like [`Faults::add`], after `skip` matching calls have gone through:
    /// a failure at a later step of a sequence of the same call.
    pub fn add_after(
        &mut self,
        operation: &'static str,
        resource: Option<&str>,
        code: &str,
        skip: usize,
        times: usize,
    ) {
        self.0.push(Fault { operation, resource: resource.map(str::to_owned), code: code.to_owned(), skip, times });
    }

    /// The error `operation` on `resource` must answer now, if any.
    pub fn check(&mut self, operation: &'static str, resource: Option<&str>) -> Result<(), AwsError> {
        let hit = self.0.iter_mut().find(|f| {
            f.operation == operation && f.times > 0 && f.resource.as_deref().is_none_or(|on| Some(on) == resource)
        });
        if let Some(fault) = hit {
            if fault.skip > 0 {
                fault.skip -= 1;
                return Ok(());
            }
            fault.times -= 1;
            return Err(AwsError::service(operation, fault.code.clone(), "injected fault"));
        }
        Ok(())
    }
}
