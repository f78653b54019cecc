//! Injected failures for the in-memory services: the next `times` calls of
//! an operation (on one resource, or any) answer an AWS error code.

use crate::aws::error::AwsError;

#[derive(Default)]
pub struct Faults(Vec<(&'static str, Option<String>, String, usize)>);

impl Faults {
    pub fn add(&mut self, operation: &'static str, resource: Option<&str>, code: &str, times: usize) {
        self.0.push((operation, resource.map(str::to_owned), code.to_owned(), times));
    }

    /// The error `operation` on `resource` must answer now, if any.
    pub fn check(&mut self, operation: &'static str, resource: Option<&str>) -> Result<(), AwsError> {
        let hit = self.0.iter_mut().find(|(op, on, _, left)| {
            *op == operation && *left > 0 && on.as_deref().is_none_or(|on| Some(on) == resource)
        });
        if let Some((_, _, code, left)) = hit {
            *left -= 1;
            return Err(AwsError::service(operation, code.clone(), "injected fault"));
        }
        Ok(())
    }
}
