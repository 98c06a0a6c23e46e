//! What a connection can do, declared as data.
//!
//! The conformance kit picks its checks from these flags and reports what it skipped; the
//! orchestrator reads [`Capabilities::mode`] to drive the provisioning state machine.

use autoprov_core::ConnectionMode;
use serde::{Deserialize, Serialize};

/// The capabilities a connection declares.
///
/// Every flag defaults to `false` (a connection declares what it does, nothing is assumed), and
/// [`Capabilities::mode`] to Automated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Capabilities {
    /// Automated (the connector applies orders) or manual (orders go to a human).
    pub mode: ConnectionMode,
    /// Added orders create targets.
    pub create: bool,
    /// Modified orders change scalars.
    pub update: bool,
    /// Deleted orders delete targets.
    pub delete: bool,
    /// A changed name (RDN) renames the target, keeping its stable id.
    pub rename: bool,
    /// A changed parent moves the target, keeping its stable id.
    pub move_parent: bool,
    /// Multi-valued navigations (group membership) with value-level add/remove.
    pub membership: bool,
    /// Accounts can be enabled and disabled.
    pub enable_disable: bool,
    /// Passwords can be written (and are never read back).
    pub password: bool,
    /// Complete export.
    pub export: bool,
    /// Incremental export since a cookie.
    pub incremental_export: bool,
    /// Names and values with unicode and every LDAP-special character round-trip exactly.
    pub special_characters: bool,
    /// Hierarchical names: targets live in parent containers that the connector can create.
    pub containers: bool,
    /// [`Connector::check_password`](crate::Connector::check_password) tells whether a
    /// password is an account's (like ConnId's `authenticate`), so the kit can prove that a
    /// password written was stored.
    pub password_check: bool,
}

impl Capabilities {
    /// Everything a full directory-like connector supports, automated.
    pub fn full() -> Self {
        Self {
            mode: ConnectionMode::Automated,
            create: true,
            update: true,
            delete: true,
            rename: true,
            move_parent: true,
            membership: true,
            enable_disable: true,
            password: true,
            export: true,
            incremental_export: true,
            special_characters: true,
            containers: true,
            password_check: true,
        }
    }

    /// Nothing at all (start here and set flags).
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether the connection is manual.
    pub fn is_manual(&self) -> bool {
        self.mode == ConnectionMode::Manual
    }
}
