//! The conventions every connector follows for the shape of orders and exported resources.
//!
//! Orders are generic ([`autoprov_core::ProvisioningOrder`]); these names fix how the common
//! directory concepts appear in them, so the planner, the conformance kit and every package
//! agree. A package may map them to its own attributes (the AD package maps [`ENABLED`] to
//! `userAccountControl`), and may accept further properties of its own.

/// Mono-valued navigation to the parent container (a reference with key [`DN_KEY`]).
pub const PARENT: &str = "parentdn";
/// Multi-valued navigation: the groups an account is a member of. Written as
/// `memberOf_add` / `memberOf_remove` deltas; the connector applies them on the groups.
pub const MEMBER_OF: &str = "memberOf";
/// Multi-valued navigation of a group: its members (read-only in exports; the back-link of
/// [`MEMBER_OF`]).
pub const MEMBERS: &str = "member";
/// Boolean scalar: the account is enabled.
pub const ENABLED: &str = "enabled";
/// Secret scalar: the password, write-only, never exported.
pub const PASSWORD: &str = "password";
/// Boolean scalar: the user must change the password at first logon.
pub const MUST_CHANGE_PASSWORD: &str = "mustChangePassword";
/// The key of a reference that holds a target's name (its DN for directories; the resource id
/// of its export).
pub const DN_KEY: &str = "dn";
/// The key of a reference that holds a target's stable id.
pub const STABLE_ID_KEY: &str = "StableId";
