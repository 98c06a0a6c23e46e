//! Orders and records the checks (and a store crate's own tests) build on.

use crate::OrderRecord;
use autoprov_core::{
    ChangeType, Changes, ConnectionMode, Owner, ProvisioningOrder, ResourceType, ResourceTypeRef,
};
use chrono::{DateTime, TimeZone, Utc};

/// The kit's fixed "now".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// An Added order `o-<i>` for owner `owner-<i>` with one scalar change.
pub fn order(i: usize) -> ProvisioningOrder {
    order_for(i, &format!("user{i}"))
}

/// An Added order `o-<i>` whose `sAMAccountName` change is `login` (two orders with the same
/// `i` and different logins conflict).
pub fn order_for(i: usize, login: &str) -> ProvisioningOrder {
    let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "conn");
    let mut changes = Changes::default();
    changes.set("sAMAccountName", login);
    ProvisioningOrder {
        order_id: format!("o-{i:05}").as_str().into(),
        assigned_resource_type_id: None,
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("owner-{i}"), format!("user{i}"))),
        resource_type: ResourceTypeRef::of(&rt),
        connection: Some("conn".into()),
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

/// A Pending automated record of [`order`]`(i)`.
pub fn record(i: usize) -> OrderRecord {
    OrderRecord::pending(order(i), ConnectionMode::Automated, t0())
}
