//! What predates autoprov (SPEC §10, the reference system's non-conforming values): a value
//! found in a managed system that no rule, approved manual assignment or kept value explains.
//!
//! Such a value is *non-conforming*. What the planner does with it is a per-resource-type
//! setting ([`NonConformingPolicy`]): keep it and list it for review (the default), adopt it
//! as found, or remove it. A person's decision on one value ([`FoundDecision`]) either keeps it
//! (it becomes a Found value, never overwritten) or confirms its removal; decisions are stored
//! durably with who decided.
//!
//! ```
//! use autoprov_core::{NonConformingPolicy, ResourceType};
//! // The reference-style name and the numeric code are both accepted.
//! for setting in [serde_json::json!("AdoptAsFound"), serde_json::json!(1)] {
//!     let json = serde_json::json!({
//!         "Id": "rt-1", "Identifier": "AD_User", "SourceEntityType": "Directory_User",
//!         "TargetEntityType": "AD_Entry", "Connection": "ad", "NonConforming": setting
//!     });
//!     assert_eq!(ResourceType::from_json(json).unwrap().non_conforming,
//!                NonConformingPolicy::AdoptAsFound);
//! }
//! // An unknown value is refused, naming the setting.
//! let json = serde_json::json!({
//!     "Id": "rt-1", "Identifier": "AD_User", "SourceEntityType": "Directory_User",
//!     "TargetEntityType": "AD_Entry", "Connection": "ad", "NonConforming": "Remvoe"
//! });
//! let err = ResourceType::from_json(json).unwrap_err();
//! assert_eq!(err.path(), "NonConforming");
//! assert_eq!(err.suggestion(), Some("Remove"));
//! // So is an unknown code.
//! let json = serde_json::json!({
//!     "Id": "rt-1", "Identifier": "AD_User", "SourceEntityType": "Directory_User",
//!     "TargetEntityType": "AD_Entry", "Connection": "ad", "NonConforming": 7
//! });
//! assert_eq!(ResourceType::from_json(json).unwrap_err().path(), "NonConforming");
//! ```

use crate::ids::{OwnerId, ResourceTypeId};
use crate::value::{Reference, ScalarValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What the planner does with a non-conforming value of a resource type (setting
/// `NonConforming`, a name or its numeric code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NonConformingPolicy {
    /// `KeepAndReview` (0): nothing is removed, cleared, overwritten or deleted; the value is
    /// listed for review until a person keeps it or confirms its removal. The default.
    #[default]
    KeepAndReview,
    /// `AdoptAsFound` (1): the value is kept as a Found value without review.
    AdoptAsFound,
    /// `Remove` (2): the value is removed (or overwritten, or the account deleted) without a
    /// decision, as rules alone say.
    Remove,
}

impl NonConformingPolicy {
    const NAMES: [&'static str; 3] = ["KeepAndReview", "AdoptAsFound", "Remove"];

    /// The numeric code (0, 1, 2).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The setting with this numeric code.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::KeepAndReview),
            1 => Some(Self::AdoptAsFound),
            2 => Some(Self::Remove),
            _ => None,
        }
    }

    /// The reference-style name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for NonConformingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for NonConformingPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for NonConformingPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NonConformingPolicy;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("KeepAndReview, AdoptAsFound, Remove, or their codes 0, 1, 2")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match NonConformingPolicy::NAMES.iter().position(|n| *n == v) {
                    Some(i) => Ok(NonConformingPolicy::from_code(i as u64)
                        .unwrap_or(NonConformingPolicy::KeepAndReview)),
                    None => Err(E::unknown_variant(v, &NonConformingPolicy::NAMES)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                NonConformingPolicy::from_code(v).ok_or_else(|| {
                    E::invalid_value(serde::de::Unexpected::Unsigned(v), &"a code 0, 1 or 2")
                })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(
                        serde::de::Unexpected::Signed(v),
                        &"a code 0, 1 or 2",
                    )),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// One value found in a target: the account itself, a scalar property's value or one
/// reference of a navigation (a membership).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum FoundValue {
    /// The target itself (an account that correlates with the owner but is not expected).
    Account,
    /// A scalar property holding this value.
    Scalar {
        /// The property.
        property: String,
        /// The value found.
        value: ScalarValue,
    },
    /// A navigation property holding this reference (e.g. a group membership).
    Navigation {
        /// The property (e.g. `memberOf`).
        property: String,
        /// The reference found.
        value: Reference,
    },
}

impl FoundValue {
    /// The property, none for the account.
    pub fn property(&self) -> Option<&str> {
        match self {
            Self::Account => None,
            Self::Scalar { property, .. } | Self::Navigation { property, .. } => Some(property),
        }
    }
}

impl fmt::Display for FoundValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account => f.write_str("account"),
            Self::Scalar { property, value } => write!(f, "{property} = {value}"),
            Self::Navigation { property, value } => write!(f, "{property} ∋ {value}"),
        }
    }
}

/// What a person decided about a found value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FoundVerdict {
    /// Keep it: it becomes a Found value that is never removed or overwritten automatically.
    Keep,
    /// Confirm its removal (declining the value): the next plan removes it.
    Remove,
}

/// A decision about one found value of one owner's target, with who decided, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct FoundDecision {
    /// The owner.
    pub owner: OwnerId,
    /// The resource type.
    pub resource_type: ResourceTypeId,
    /// The value decided on.
    pub value: FoundValue,
    /// Keep or remove.
    pub verdict: FoundVerdict,
    /// Who decided.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, if they said (a baseline says so).
    #[serde(default)]
    pub reason: Option<String>,
}

impl FoundDecision {
    /// A decision without a reason.
    pub fn new(
        owner: impl Into<OwnerId>,
        resource_type: impl Into<ResourceTypeId>,
        value: FoundValue,
        verdict: FoundVerdict,
        by: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            owner: owner.into(),
            resource_type: resource_type.into(),
            value,
            verdict,
            by: by.into(),
            at,
            reason: None,
        }
    }

    /// With the reason given.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The key a store files the decision under: one decision per owner, resource type and
    /// value (a later decision on the same value replaces the earlier one). Stable across
    /// versions: built from the JSON of the value.
    pub fn key(&self) -> String {
        let value = serde_json::to_string(&self.value).unwrap_or_default();
        format!("{}\u{1f}{}\u{1f}{value}", self.owner, self.resource_type)
    }
}

/// What autoprov holds as its own for one owner: the resource types, properties and
/// multi-valued references its plans gave a value (SPEC §10). A value listed here that the
/// rules stop giving is removed as the rules say (a leaver's account, a mover's old groups);
/// a value not listed that no rule explains predates autoprov and is kept until reviewed.
///
/// A planner holds it in memory; a store keeps it so that a restarted planner does not take
/// autoprov's own values for values that predate it. It holds no secret and no scalar value:
/// only which properties are autoprov's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OwnedValues {
    /// The owner.
    pub owner: OwnerId,
    /// Resource types whose target is autoprov's (it created or adopted it).
    pub resource_types: Vec<ResourceTypeId>,
    /// Scalar and mono-valued properties a rule gave a value, by resource type.
    pub properties: Vec<(ResourceTypeId, String)>,
    /// Multi-valued references a rule gave, by resource type and property.
    pub references: Vec<(ResourceTypeId, String, Reference)>,
}

impl OwnedValues {
    /// Nothing for `owner`.
    pub fn new(owner: impl Into<OwnerId>) -> Self {
        Self {
            owner: owner.into(),
            resource_types: Vec::new(),
            properties: Vec::new(),
            references: Vec::new(),
        }
    }

    /// Whether it holds nothing (a store then forgets the owner).
    pub fn is_empty(&self) -> bool {
        self.resource_types.is_empty() && self.properties.is_empty() && self.references.is_empty()
    }
}
