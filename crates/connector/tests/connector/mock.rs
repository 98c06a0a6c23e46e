//! An integrator tests their own code in isolation with `MockConnector` (feature `mock`).
//!
//! The code under test is a small router an integrator might write: it sends each order to the
//! connection it names, turns outcomes into `ProvisioningResult`s, retries temporary errors once,
//! and never lets one failing order stop the others.

use autoprov_connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, ErrorKind, Executed, Fulfillment,
    MockConnector, Operation,
};
use autoprov_core::{
    ChangeType, Changes, ConnectionId, Owner, ProvisioningOrder, ProvisioningResult,
    ProvisioningState, ResourceType, ResourceTypeRef,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The integrator's code under test.
async fn route(
    connections: &BTreeMap<ConnectionId, Arc<dyn Connector>>,
    orders: &[ProvisioningOrder],
) -> Vec<ProvisioningResult> {
    let mut results = Vec::new();
    for order in orders {
        let result =
            |state, message: Option<String>, done: Option<&Executed>, ticket| ProvisioningResult {
                order_id: order.order_id.clone(),
                assignment_id: order.assigned_resource_type_id.clone(),
                provisioning_state: state,
                message,
                change_type: order.change_type,
                owner_id: order.owner_id().cloned(),
                owner_type: None,
                resource_id: done.map(|d| d.resource_id.clone()),
                stable_id: done.and_then(|d| d.stable_id.clone()),
                ticket,
            };
        let Some(conn) = order.connection.as_ref().and_then(|c| connections.get(c)) else {
            results.push(result(
                ProvisioningState::Errored,
                Some("no such connection".into()),
                None,
                None,
            ));
            continue;
        };
        let mut outcome = conn.fulfill(order).await;
        if matches!(&outcome, Err(e) if e.is_temporary()) {
            outcome = conn.fulfill(order).await;
        }
        results.push(match outcome {
            Ok(Fulfillment::Executed(done)) => {
                result(ProvisioningState::Executed, None, Some(&done), None)
            }
            Ok(Fulfillment::Transmitted { ticket }) => {
                result(ProvisioningState::Transmitted, None, None, Some(ticket))
            }
            Ok(other) => result(
                ProvisioningState::Errored,
                Some(format!("{other:?}")),
                None,
                None,
            ),
            Err(e) => result(ProvisioningState::Errored, Some(e.to_string()), None, None),
        });
    }
    results
}

fn order(id: &str, connection: &str) -> ProvisioningOrder {
    let mut changes = Changes::default();
    changes.set("sAMAccountName", id);
    ProvisioningOrder {
        order_id: id.into(),
        assigned_resource_type_id: Some(format!("art-{id}").into()),
        change_type: ChangeType::Added,
        workflow_instance_id: None,
        owner: Some(Owner::new(format!("owner-{id}"), id)),
        resource_type: ResourceTypeRef::of(&ResourceType::new(
            "rt",
            "rt",
            "Directory_User",
            "user",
            connection,
        )),
        connection: Some(connection.into()),
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

fn mock(connection: &str) -> MockConnector {
    let mut m = MockConnector::new();
    m.expect_info().return_const(ConnectorInfo::new(
        "test.mock",
        connection,
        Capabilities::full(),
    ));
    m
}

#[tokio::test]
async fn routes_orders_retries_once_and_isolates_failures() {
    let mut ad = mock("ad");
    let mut calls = 0;
    ad.expect_fulfill()
        .withf(|o| o.order_id.as_str() == "o-1")
        .times(2)
        .returning(move |o| {
            calls += 1;
            if calls == 1 {
                Err(
                    ConnectorError::new(ErrorKind::Unavailable, Operation::Create, "busy")
                        .for_order(o),
                )
            } else {
                let mut done = Executed::new("CN=o-1,DC=example,DC=test");
                done.stable_id = Some("guid-1".into());
                Ok(Fulfillment::Executed(done))
            }
        });
    ad.expect_fulfill()
        .withf(|o| o.order_id.as_str() == "o-2")
        .times(1)
        .returning(|o| {
            Err(
                ConnectorError::new(ErrorKind::PermissionDenied, Operation::Create, "denied")
                    .for_order(o),
            )
        });
    let mut desk = mock("desk");
    desk.expect_fulfill().times(1).returning(|_| {
        Ok(Fulfillment::Transmitted {
            ticket: "T-9".into(),
        })
    });

    let mut connections: BTreeMap<ConnectionId, Arc<dyn Connector>> = BTreeMap::new();
    connections.insert("ad".into(), Arc::new(ad));
    connections.insert("desk".into(), Arc::new(desk));
    let orders = [
        order("o-1", "ad"),
        order("o-2", "ad"),
        order("o-3", "desk"),
        order("o-4", "nowhere"),
    ];
    let results = route(&connections, &orders).await;

    let states: Vec<_> = results.iter().map(|r| r.provisioning_state).collect();
    assert_eq!(
        states,
        [
            ProvisioningState::Executed,
            ProvisioningState::Errored,
            ProvisioningState::Transmitted,
            ProvisioningState::Errored
        ]
    );
    assert_eq!(results[0].stable_id.as_ref().unwrap().as_str(), "guid-1");
    let message = results[1].message.as_deref().unwrap();
    assert!(
        message.contains("permission denied")
            && message.contains("o-2")
            && message.contains("owner-o-2"),
        "{message}"
    );
    assert_eq!(results[2].ticket.as_deref(), Some("T-9"));
    // The mocks' expectations (times) are verified when they drop with `connections`.
}

#[tokio::test]
async fn a_mock_is_a_connector_like_any_other() {
    let mut m = mock("m");
    m.expect_check().times(1).returning(|| {
        Err(ConnectorError::new(
            ErrorKind::Unauthenticated,
            Operation::Check,
            "refused",
        ))
    });
    let conn: Box<dyn Connector> = Box::new(m);
    assert_eq!(conn.info().connection.as_str(), "m");
    assert_eq!(
        conn.check().await.unwrap_err().kind(),
        ErrorKind::Unauthenticated
    );
    assert!(format!("{conn:?}").contains("MockConnector"));
}
