//! Identifier newtypes.
//!
//! Every identifier is an opaque string so that hosts can keep their own keys (database ids,
//! GUIDs, the reference system's `Id`s). Distinct types stop an owner id from being passed where
//! an order id is expected. Identifiers are shared (`Arc<str>`): cloning one, which planners,
//! stores and dispatchers do for every order, costs no allocation.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        // Two clones of one identifier are equal without reading their text: the standard
        // library compares `Arc<str>`s by content only (its shortcut needs a sized type), which
        // costs a cache miss per comparison where a planner checks a million claims.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
            }
        }

        // As derived: the text's hash, consistent with `eq`.
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl $name {
            /// Wraps an identifier.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Arc::from(value.into()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the identifier and returns its string.
            pub fn into_string(self) -> String {
                self.0.to_string()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Arc::from(value))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Arc::from(value))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

define_id!(
    /// Identifies an owner (usually an identity of the HR source).
    OwnerId
);
define_id!(
    /// Identifies a resource (source or target object) in autoprov's own records.
    ResourceId
);
define_id!(
    /// Identifies an entity type such as `Directory_User` or `AD_Entry`.
    EntityTypeId
);
define_id!(
    /// Identifies a resource type such as `AD_Entry_NominativeUser`.
    ResourceTypeId
);
define_id!(
    /// Identifies a connection: one configured instance of a connector package.
    ConnectionId
);
define_id!(
    /// Identifies a connector package (implementation), e.g. `autoprov.ad`.
    PackageId
);
define_id!(
    /// Unique id of a provisioning order; also its idempotency key.
    OrderId
);
define_id!(
    /// Identifies an assignment (`AssignedResourceType`, `...Scalar`, `...Navigation`).
    AssignmentId
);
define_id!(
    /// Identifies an assignment request.
    RequestId
);
define_id!(
    /// Identifies a role (single or composite).
    RoleId
);
define_id!(
    /// The stable identity of an object in a managed system (AD's `objectGUID`), which survives
    /// renames and moves.
    StableId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_transparent_in_json_and_named_in_debug() {
        let id = OwnerId::new("u-7");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"u-7\"");
        assert_eq!(format!("{id:?}"), "OwnerId(\"u-7\")");
        assert_eq!(id.to_string(), "u-7");
        let back: OwnerId = serde_json::from_str("\"u-7\"").unwrap();
        assert_eq!(back, id);
    }
}

/// An opaque export cookie: where a connection's incremental export resumes. Connectors
/// write it, stores keep it; nobody else looks inside.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ExportCookie(pub String);

impl std::fmt::Debug for ExportCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExportCookie({:?})", self.0)
    }
}
