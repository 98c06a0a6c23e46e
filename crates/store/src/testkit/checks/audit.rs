//! The audit trail, retention and erasure.

use super::transitions::check_index;
use super::*;

/// The audit trail: appended in order, paged by sequence number; review decisions append
/// their entry with who decided and why.
pub async fn audit_trail(store: Arc<impl Store>) {
    let s = store.as_ref();
    let a = s
        .append_audit(AuditEntry::new(t0(), "carol", AuditAction::Forced, "rt").because("go-live"))
        .await
        .expect("append");
    let review = OrderRecord::new(
        order(1),
        ConnectionMode::Automated,
        S::AwaitingApproval,
        t0(),
    );
    s.insert_orders(std::slice::from_ref(&review))
        .await
        .expect("insert");
    s.decide_review(
        1,
        ReviewDecision::new(review.id().clone(), ReviewVerdict::Declined, "dave", t0())
            .because("no"),
    )
    .await
    .expect("decline");
    let b = s
        .append_audit(AuditEntry::new(t0(), "erin", AuditAction::Retried, "o-x"))
        .await
        .expect("append");
    assert!(b > a, "sequence numbers increase");
    let all = s.audit_page(None, 10).await.expect("page");
    let seen: Vec<(&str, AuditAction)> = all
        .iter()
        .map(|(_, e)| (e.actor.as_str(), e.action))
        .collect();
    assert_eq!(
        seen,
        [
            ("carol", AuditAction::Forced),
            ("dave", AuditAction::Declined),
            ("erin", AuditAction::Retried)
        ]
    );
    assert_eq!(all[1].1.subject, review.id().as_str());
    assert_eq!(all[1].1.owner, Some("owner-1".into()));
    assert_eq!(all[1].1.reason.as_deref(), Some("no"));
    assert_eq!(all[0].1.reason.as_deref(), Some("go-live"));
    let rest = s.audit_page(Some(all[0].0), 10).await.expect("page");
    assert_eq!(rest.len(), 2);
}

/// Retention removes finished orders older than the cut-off, with their history, and never
/// an open one.
pub async fn retention_purges_finished_orders_only(store: Arc<impl Store>) {
    let s = store.as_ref();
    s.insert_orders(&(0..6).map(record).collect::<Vec<_>>())
        .await
        .expect("insert");
    let old = t0();
    let recent = t0() + TimeDelta::days(40);
    // 0: Verified long ago; 1: Verified recently; 2: Errored long ago (open: recoverable);
    // 3: Executed long ago (open); 4: Inactive long ago; 5: Pending.
    for (i, path, at) in [
        (
            0,
            &[E::ConnectorSucceeded, E::SynchronizationMatched][..],
            old,
        ),
        (
            1,
            &[E::ConnectorSucceeded, E::SynchronizationMatched][..],
            recent,
        ),
        (2, &[E::ConnectorFailed][..], old),
        (3, &[E::ConnectorSucceeded][..], old),
        (4, &[E::PeriodPassed][..], old),
    ] {
        for event in path {
            step(s, record(i).id(), OrderUpdate::event(*event, at)).await;
        }
    }
    let cutoff = t0() + TimeDelta::days(30);
    let purged = s.purge_finished(cutoff, 1).await.expect("purge");
    assert_eq!(
        purged,
        vec![record(0).id().clone()],
        "limit respected, oldest ids first"
    );
    let purged = s.purge_finished(cutoff, 100).await.expect("purge");
    assert_eq!(purged, vec![record(4).id().clone()]);
    for gone in [0, 4] {
        assert!(s.order(record(gone).id()).await.expect("order").is_none());
        assert!(
            s.order_history(record(gone).id())
                .await
                .expect("history")
                .is_empty()
        );
    }
    for kept in [1, 2, 3, 5] {
        assert!(
            s.order(record(kept).id()).await.expect("order").is_some(),
            "o-{kept} kept"
        );
    }
    check_index(s).await;
}

/// Erasing one owner removes their orders, history, assignments, requests and audit entries,
/// nobody else's, and audits the erasure.
pub async fn erasure_removes_one_owner(store: Arc<impl Store>) {
    let s = store.as_ref();
    s.insert_orders(&[record(1), record(2)])
        .await
        .expect("insert");
    step(
        s,
        record(1).id(),
        OrderUpdate::event(E::ConnectorSucceeded, t0()),
    )
    .await;
    let mut batch = Assignments::default();
    for i in [1, 2] {
        let art = AssignedResourceType {
            id: AssignmentId::new(format!("owner-{i}/rt")),
            owner: format!("owner-{i}").as_str().into(),
            resource_type: "rt".into(),
            status: AssignmentStatus::new(WorkflowState::Calculated),
        };
        let scalar = AssignedResourceScalar {
            id: AssignmentId::new(format!("owner-{i}/rt/department")),
            assigned_resource_type: art.id.clone(),
            property: "department".to_owned(),
            value: ScalarValue::String("Sales".into()),
            status: AssignmentStatus::new(WorkflowState::Calculated),
        };
        batch.resource_types.insert(art.id.clone(), art);
        batch.scalars.insert(scalar.id.clone(), scalar);
        let request = AssignmentRequest::new(
            format!("req-{i}").as_str(),
            format!("owner-{i}").as_str(),
            RequestKind::Add,
            RequestedAssignment {
                resource_type: "rt".into(),
                scalar: None,
                navigation: None,
            },
            autoprov_core::ApprovalWorkflowType::None,
        );
        s.put_request(request).await.expect("request");
        s.append_audit(
            AuditEntry::new(t0(), "frank", AuditAction::Adopted, format!("o-{i}"))
                .owner(format!("owner-{i}").as_str()),
        )
        .await
        .expect("audit");
    }
    s.put_assignments(batch).await.expect("assignments");
    let erasure = s
        .erase_owner(&"owner-1".into(), "dpo", t0())
        .await
        .expect("erase");
    assert_eq!(
        (
            erasure.orders,
            erasure.assignments,
            erasure.requests,
            erasure.audit_entries
        ),
        (1, 2, 1, 1)
    );
    assert!(s.order(record(1).id()).await.expect("order").is_none());
    assert!(
        s.order_history(record(1).id())
            .await
            .expect("history")
            .is_empty()
    );
    assert!(s.order(record(2).id()).await.expect("order").is_some());
    assert_eq!(
        s.assignment(&"owner-1/rt/department".into())
            .await
            .expect("get"),
        None
    );
    assert!(
        s.assignment(&"owner-2/rt/department".into())
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(s.request(&"req-1".into()).await.expect("get"), None);
    assert!(s.request(&"req-2".into()).await.expect("get").is_some());
    let audit = s.audit_page(None, 10).await.expect("audit");
    assert!(
        audit
            .iter()
            .all(|(_, e)| e.owner.as_ref().map(|o| o.as_str()) != Some("owner-1"))
    );
    let last = &audit.last().expect("the erasure is audited").1;
    assert_eq!(
        (last.action, last.actor.as_str(), last.subject.as_str()),
        (AuditAction::Erased, "dpo", "owner-1")
    );
    check_index(s).await;
}
