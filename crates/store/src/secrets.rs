//! Where a secret may be kept: only in orders (sealed by a durable store). Every other record
//! that could carry a [`Secret`](autoprov_core::Secret) value — synchronized resources
//! (exported values), assignments and assignment requests — refuses it with
//! [`StoreError::SecretNotStorable`], in every store, before anything of the call is written.
//!
//! Why refused rather than sealed: a password is write-only in every managed system and never
//! exported, so a secret among exported values is a connector bug; an assignment or a request
//! is desired state kept for the owner's lifetime, where a password has no business (an
//! initial password is generated at fulfilment time by the resource type's password
//! settings). Sealing them would keep a credential at rest that nothing ever reads. History,
//! audit entries, job runs and results have no field that can hold a `Secret` at all (their
//! texts are built with `Display`, which prints the mask).

use crate::{Assignments, StoreError};
use autoprov_core::{AssignmentRequest, ConnectionId, PropertyValue, Resource, ScalarValue};

fn refused(table: &'static str, key: impl Into<String>, property: &str) -> StoreError {
    StoreError::SecretNotStorable {
        table,
        key: key.into(),
        property: property.to_owned(),
    }
}

/// Refuses synchronized resources holding a secret value (naming the connection's resource
/// and the property).
pub fn refuse_secrets_in_resources(
    connection: &ConnectionId,
    resources: &[Resource],
) -> Result<(), StoreError> {
    for r in resources {
        for (property, value) in &r.values {
            if let PropertyValue::Scalar(ScalarValue::Secret(_)) = value {
                return Err(refused(
                    "resources",
                    format!("{connection}/{}", r.id),
                    property,
                ));
            }
        }
    }
    Ok(())
}

/// Refuses assignments holding a secret value.
pub fn refuse_secrets_in_assignments(assignments: &Assignments) -> Result<(), StoreError> {
    for (id, scalar) in &assignments.scalars {
        if let ScalarValue::Secret(_) = scalar.value {
            return Err(refused("assignments", id.as_str(), &scalar.property));
        }
    }
    Ok(())
}

/// Refuses an assignment request holding a secret value.
pub fn refuse_secret_in_request(request: &AssignmentRequest) -> Result<(), StoreError> {
    if let Some((property, ScalarValue::Secret(_))) = &request.assignment.scalar {
        return Err(refused("requests", request.id.as_str(), property));
    }
    Ok(())
}
