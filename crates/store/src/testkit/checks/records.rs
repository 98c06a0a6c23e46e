//! Everything else a restarted process needs: cookies, resources, assignments, requests, review decisions, job runs.

use super::*;

/// Cookies per connection: absent, set, replaced.
pub async fn cookies(store: Arc<impl Store>) {
    let (a, b): (ConnectionId, ConnectionId) = ("a".into(), "b".into());
    assert_eq!(store.cookie(&a).await.expect("cookie"), None);
    store
        .set_cookie(&a, ExportCookie("1".into()))
        .await
        .expect("set");
    store
        .set_cookie(&b, ExportCookie("x".into()))
        .await
        .expect("set");
    store
        .set_cookie(&a, ExportCookie("2".into()))
        .await
        .expect("set");
    assert_eq!(
        store.cookie(&a).await.expect("cookie"),
        Some(ExportCookie("2".into()))
    );
    assert_eq!(
        store.cookie(&b).await.expect("cookie"),
        Some(ExportCookie("x".into()))
    );
}

fn resource(key: &str, stable: &str, name: &str) -> Resource {
    let mut r = Resource::new(key);
    r.stable_id = Some(StableId::new(stable));
    r.entity_type = Some("AD_Entry".into());
    r.values.insert(
        "name".to_owned(),
        PropertyValue::Scalar(ScalarValue::String(name.to_owned())),
    );
    r
}

/// Resources by key, by stable id, renamed (same stable id, new key), deleted, paged.
pub async fn resources_by_key_and_stable_id(store: Arc<impl Store>) {
    let (c, other): (ConnectionId, ConnectionId) = ("conn".into(), "other".into());
    let s = store.as_ref();
    s.upsert_resources(
        &c,
        (0..5)
            .map(|i| resource(&format!("CN=u{i}"), &format!("g{i}"), "n"))
            .collect(),
    )
    .await
    .expect("upsert");
    s.upsert_resources(&other, vec![resource("CN=u0", "z0", "other")])
        .await
        .expect("upsert");
    let r = s
        .resource(&c, &"CN=u2".into())
        .await
        .expect("resource")
        .expect("stored");
    assert_eq!(r, resource("CN=u2", "g2", "n"));
    assert_eq!(
        s.key_of_stable(&c, &"g3".into()).await.expect("stable"),
        Some("CN=u3".into())
    );
    // A rename: the same object under a new key replaces the old key.
    s.upsert_resources(&c, vec![resource("CN=renamed", "g3", "n2")])
        .await
        .expect("rename");
    assert_eq!(
        s.resource(&c, &"CN=u3".into()).await.expect("resource"),
        None
    );
    assert_eq!(
        s.key_of_stable(&c, &"g3".into()).await.expect("stable"),
        Some("CN=renamed".into())
    );
    let removed = s
        .delete_resources(&c, &["CN=u1".into(), "CN=absent".into()])
        .await
        .expect("delete");
    assert_eq!(removed, vec![resource("CN=u1", "g1", "n")]);
    assert_eq!(
        s.key_of_stable(&c, &"g1".into()).await.expect("stable"),
        None
    );
    let mut keys = Vec::new();
    let mut after: Option<ResourceId> = None;
    loop {
        let page = s.resources_page(&c, after.as_ref(), 2).await.expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        keys.extend(page.into_iter().map(|r| r.id.to_string()));
    }
    assert_eq!(keys, ["CN=renamed", "CN=u0", "CN=u2", "CN=u4"]);
    assert_eq!(
        s.resource(&other, &"CN=u0".into())
            .await
            .expect("resource")
            .map(|r| r.stable_id),
        Some(Some("z0".into())),
        "connections are separate"
    );
}

/// Assignments (by id, paged, upserted) and assignment requests with their approval state.
pub async fn assignments_and_requests(store: Arc<impl Store>) {
    let s = store.as_ref();
    let art = |i: usize| AssignedResourceType {
        id: AssignmentId::new(format!("a-{i}")),
        owner: format!("owner-{i}").as_str().into(),
        resource_type: "rt".into(),
        status: AssignmentStatus::new(WorkflowState::Calculated),
    };
    let mut batch = Assignments::default();
    for i in 0..4 {
        batch.resource_types.insert(art(i).id.clone(), art(i));
    }
    let scalar = AssignedResourceScalar {
        id: "b-0".into(),
        assigned_resource_type: "a-0".into(),
        property: "department".to_owned(),
        value: ScalarValue::String("Sales".into()),
        status: AssignmentStatus::new(WorkflowState::Found),
    };
    batch.scalars.insert(scalar.id.clone(), scalar.clone());
    s.put_assignments(batch).await.expect("put");
    let mut approved = art(2);
    approved.status.workflow_state = WorkflowState::Approved;
    let mut update = Assignments::default();
    update
        .resource_types
        .insert(approved.id.clone(), approved.clone());
    s.put_assignments(update).await.expect("upsert");
    assert_eq!(
        s.assignment(&"a-2".into()).await.expect("get"),
        Some(Assignment::ResourceType(approved))
    );
    assert_eq!(
        s.assignment(&"b-0".into()).await.expect("get"),
        Some(Assignment::Scalar(scalar))
    );
    let first = s.assignments_page(None, 3).await.expect("page");
    let rest = s
        .assignments_page(Some(&"a-2".into()), 3)
        .await
        .expect("page");
    assert_eq!(first.len() + rest.len(), 5, "every assignment once");

    let mut request = AssignmentRequest::new(
        "req-1",
        "owner-1",
        RequestKind::Add,
        RequestedAssignment {
            resource_type: "rt".into(),
            scalar: None,
            navigation: None,
        },
        autoprov_core::ApprovalWorkflowType::One,
    );
    s.put_request(request.clone()).await.expect("put request");
    request.submit().expect("submit");
    s.put_request(request.clone())
        .await
        .expect("upsert request");
    assert_eq!(
        s.request(&"req-1".into()).await.expect("get"),
        Some(request.clone())
    );
    assert_eq!(
        s.requests_page(None, 10).await.expect("page"),
        vec![request]
    );
    assert_eq!(s.request(&"absent".into()).await.expect("get"), None);
}

/// Review decisions apply their event and are kept with who decided; a decision the state
/// machine refuses records nothing.
pub async fn review_decisions(store: Arc<impl Store>) {
    let s = store.as_ref();
    let review = |i: usize| {
        OrderRecord::new(
            order(i),
            ConnectionMode::Automated,
            S::AwaitingApproval,
            t0(),
        )
    };
    s.insert_orders(&[review(1), review(2), review(3), record(4)])
        .await
        .expect("insert");
    let postponed = s
        .decide_review(
            1,
            ReviewDecision::new(
                review(3).id().clone(),
                ReviewVerdict::Postponed,
                "alice",
                t0(),
            ),
        )
        .await
        .expect("postpone");
    assert_eq!(postponed.state, S::AwaitingApproval);
    let approved = s
        .decide_review(
            1,
            ReviewDecision::new(
                review(1).id().clone(),
                ReviewVerdict::Approved,
                "alice",
                t0(),
            ),
        )
        .await
        .expect("approve");
    assert_eq!(approved.state, S::Pending);
    let declined =
        ReviewDecision::new(review(2).id().clone(), ReviewVerdict::Declined, "bob", t0())
            .because("not needed");
    assert_eq!(
        s.decide_review(1, declined.clone())
            .await
            .expect("decline")
            .state,
        S::Inactive
    );
    assert_eq!(
        s.review_decision(review(2).id()).await.expect("get"),
        Some(declined)
    );
    let err = s
        .decide_review(
            1,
            ReviewDecision::new(record(4).id().clone(), ReviewVerdict::Approved, "eve", t0()),
        )
        .await
        .expect_err("a Pending order is not in review");
    assert!(
        matches!(err, StoreError::IllegalTransition { .. }),
        "got {err:?}"
    );
    assert_eq!(
        s.review_decision(record(4).id()).await.expect("get"),
        None,
        "nothing recorded"
    );
    let err = s
        .decide_review(
            1,
            ReviewDecision::new(review(3).id().clone(), ReviewVerdict::Approved, "eve", t0()),
        )
        .await
        .expect_err("version 1 is stale after the postponement");
    assert!(
        matches!(err, StoreError::StaleVersion { .. }),
        "got {err:?}"
    );
    let all = s.review_decisions_page(None, 10).await.expect("page");
    let ids: Vec<String> = all.iter().map(|d| d.order_id.to_string()).collect();
    assert_eq!(ids, ["o-00001", "o-00002", "o-00003"]);
    assert_eq!(all[0].by, "alice");
}

/// Job runs: upserted by id, read by id, paged oldest first.
pub async fn job_runs(store: Arc<impl Store>) {
    let s = store.as_ref();
    let run = |i: i64| {
        JobRun::started(
            format!("job-{i}"),
            JobKind::Complete,
            false,
            t0() + TimeDelta::minutes(i),
        )
    };
    for i in [2, 0, 1] {
        s.put_job_run(run(i)).await.expect("put");
    }
    let mut done = run(1);
    done.status = JobStatus::Succeeded;
    done.finished_at = Some(t0() + TimeDelta::minutes(5));
    done.counts.insert(S::Verified, 3);
    s.put_job_run(done.clone()).await.expect("upsert");
    assert_eq!(s.job_run("job-1").await.expect("get"), Some(done));
    let first = s.job_runs_page(None, 2).await.expect("page");
    let rest = s.job_runs_page(Some(&first[1].id), 2).await.expect("page");
    let ids: Vec<&str> = first.iter().chain(&rest).map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["job-0", "job-1", "job-2"]);
}

/// Decisions on found values: filed by key (owner, resource type, value), a later decision on
/// the same value replaces the earlier one, each is audited with who decided, a batch deciding
/// one value twice writes nothing, and an erasure removes the owner's decisions.
pub async fn found_decisions(store: Arc<impl Store>) {
    use autoprov_core::{FoundDecision, FoundValue, FoundVerdict, Reference};
    let s = store.as_ref();
    let member = |owner: &str, group: &str, verdict, by: &str| {
        FoundDecision::new(
            owner,
            "ad",
            FoundValue::Navigation {
                property: "memberOf".into(),
                value: Reference::dn(format!("CN={group},OU=Groups")),
            },
            verdict,
            by,
            t0(),
        )
    };
    let audit_before = s.audit_page(None, 10_000).await.expect("audit").len();
    let batch = vec![
        member("u2", "G1", FoundVerdict::Keep, "alice"),
        member("u1", "G1", FoundVerdict::Remove, "alice").because("left the project"),
        FoundDecision::new(
            "u1",
            "ad",
            FoundValue::Scalar {
                property: "title".into(),
                value: ScalarValue::from("Boss"),
            },
            FoundVerdict::Keep,
            "bob",
            t0(),
        ),
    ];
    s.put_found_decisions(&batch).await.expect("put");
    let all = s.found_decisions_page(None, 10).await.expect("page");
    let mut keys: Vec<String> = batch.iter().map(FoundDecision::key).collect();
    keys.sort();
    assert_eq!(
        all.iter().map(FoundDecision::key).collect::<Vec<_>>(),
        keys,
        "decisions are paged by key"
    );
    let second = s
        .found_decisions_page(Some(&keys[0]), 1)
        .await
        .expect("page 2");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].key(), keys[1]);
    let removal = all
        .iter()
        .find(|d| d.verdict == FoundVerdict::Remove)
        .expect("the removal is kept");
    assert_eq!(removal.by, "alice");
    assert_eq!(removal.reason.as_deref(), Some("left the project"));

    // Each decision is audited, with its owner and who decided.
    let audit = s.audit_page(None, 10_000).await.expect("audit");
    let new: Vec<&AuditEntry> = audit[audit_before..].iter().map(|(_, e)| e).collect();
    assert_eq!(new.len(), 3, "one audit entry per decision: {new:?}");
    assert!(new.iter().any(|e| e.action == AuditAction::Declined
        && e.actor == "alice"
        && e.owner.as_ref().map(|o| o.as_str()) == Some("u1")
        && e.subject.contains("G1")));
    assert_eq!(
        new.iter()
            .filter(|e| e.action == AuditAction::Adopted)
            .count(),
        2
    );

    // A later decision on the same value replaces the earlier one.
    s.put_found_decisions(&[member("u1", "G1", FoundVerdict::Keep, "carol")])
        .await
        .expect("replace");
    let all = s.found_decisions_page(None, 10).await.expect("page");
    assert_eq!(all.len(), 3);
    let g1 = all
        .iter()
        .find(|d| d.owner.as_str() == "u1" && d.value.property() == Some("memberOf"))
        .expect("u1's membership");
    assert_eq!((g1.verdict, g1.by.as_str()), (FoundVerdict::Keep, "carol"));

    // One value twice in a batch: refused, nothing written.
    let err = s
        .put_found_decisions(&[
            member("u3", "G9", FoundVerdict::Keep, "dave"),
            member("u3", "G9", FoundVerdict::Remove, "dave"),
        ])
        .await
        .expect_err("a value decided twice in one batch");
    assert!(
        matches!(err, StoreError::DuplicateFoundDecision { .. }),
        "got {err:?}"
    );
    assert_eq!(
        s.found_decisions_page(None, 10).await.expect("page").len(),
        3
    );

    // An erasure removes the owner's decisions, and only theirs.
    s.erase_owner(&"u1".into(), "dpo", t0())
        .await
        .expect("erase");
    let left = s.found_decisions_page(None, 10).await.expect("page");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].owner.as_str(), "u2");
}

/// A secret outside an order (a synchronized resource's value, an assignment, a request) is
/// refused with [`StoreError::SecretNotStorable`] naming the record and the property, and
/// nothing of the call is written.
pub async fn secrets_outside_orders_are_refused(store: Arc<impl Store>) {
    let s = store.as_ref();
    let conn: ConnectionId = "ad".into();
    let mut leaky = resource("CN=leak", "g-leak", "leak");
    leaky.values.insert(
        "unicodePwd".to_owned(),
        PropertyValue::Scalar(ScalarValue::Secret(autoprov_core::Secret::new("Kit-Pa55!"))),
    );
    let plain = resource("CN=plain", "g-plain", "plain");
    let err = s
        .upsert_resources(&conn, vec![plain.clone(), leaky])
        .await
        .expect_err("a secret among exported values");
    assert!(
        matches!(&err, StoreError::SecretNotStorable { table: "resources", key, property }
            if key == "ad/CN=leak" && property == "unicodePwd"),
        "got {err:?}"
    );
    assert!(!err.to_string().contains("Kit-Pa55"), "{err}");
    assert_eq!(
        s.resource(&conn, &plain.id).await.expect("read"),
        None,
        "nothing of the call is written"
    );

    let mut batch = Assignments::default();
    let scalar = AssignedResourceScalar {
        id: "s-pw".into(),
        assigned_resource_type: "a-0".into(),
        property: "password".to_owned(),
        value: ScalarValue::Secret(autoprov_core::Secret::new("Kit-Pa55!")),
        status: AssignmentStatus::new(WorkflowState::Found),
    };
    batch.scalars.insert(scalar.id.clone(), scalar);
    let err = s
        .put_assignments(batch)
        .await
        .expect_err("a secret assignment");
    assert!(
        matches!(&err, StoreError::SecretNotStorable { table: "assignments", key, property }
            if key == "s-pw" && property == "password"),
        "got {err:?}"
    );
    assert_eq!(s.assignment(&"s-pw".into()).await.expect("read"), None);

    let request = AssignmentRequest::new(
        "req-pw",
        "owner-1",
        RequestKind::Add,
        RequestedAssignment {
            resource_type: "rt".into(),
            scalar: Some((
                "password".to_owned(),
                ScalarValue::Secret(autoprov_core::Secret::new("Kit-Pa55!")),
            )),
            navigation: None,
        },
        autoprov_core::ApprovalWorkflowType::One,
    );
    let err = s.put_request(request).await.expect_err("a secret request");
    assert!(
        matches!(&err, StoreError::SecretNotStorable { table: "requests", key, .. }
            if key == "req-pw"),
        "got {err:?}"
    );
    assert_eq!(s.request(&"req-pw".into()).await.expect("read"), None);
}

/// What autoprov holds as its own ([`OwnedValues`](autoprov_core::OwnedValues)): replaced per
/// owner, read back by owner in pages, forgotten when empty and when the owner is erased; a
/// batch naming an owner twice is refused and writes nothing.
pub async fn owned_values(store: Arc<impl Store>) {
    use autoprov_core::{OwnedValues, OwnerId, Reference};
    let s = store.as_ref();
    let owned = |owner: &str, groups: &[&str]| {
        let mut v = OwnedValues::new(owner);
        v.resource_types.push("ad".into());
        v.properties.push(("ad".into(), "department".into()));
        for g in groups {
            v.references.push((
                "ad".into(),
                "memberOf".into(),
                Reference::dn(format!("CN={g},OU=Groups")),
            ));
        }
        v
    };
    let page = |after: Option<OwnerId>| async move {
        s.owned_values_page(after.as_ref(), 2)
            .await
            .expect("owned_values_page")
    };
    s.put_owned_values(&[
        owned("u1", &["a"]),
        owned("u2", &[]),
        owned("u3", &["b", "c"]),
    ])
    .await
    .expect("put");
    let first = page(None).await;
    assert_eq!(first, vec![owned("u1", &["a"]), owned("u2", &[])]);
    let second = page(Some("u2".into())).await;
    assert_eq!(second, vec![owned("u3", &["b", "c"])]);
    assert!(page(Some("u3".into())).await.is_empty());

    // Replaced, forgotten when empty.
    s.put_owned_values(&[owned("u1", &["z"]), OwnedValues::new("u2")])
        .await
        .expect("replace");
    let all = page(None).await;
    assert_eq!(all, vec![owned("u1", &["z"]), owned("u3", &["b", "c"])]);

    // Twice in one batch: refused, nothing written.
    let e = s
        .put_owned_values(&[owned("u4", &[]), owned("u1", &[]), owned("u4", &["x"])])
        .await
        .expect_err("an owner twice in one batch");
    assert!(
        matches!(&e, StoreError::DuplicateOwnedValues { owner } if owner.as_str() == "u4"),
        "{e}"
    );
    assert_eq!(
        page(None).await,
        all,
        "nothing of the refused batch was written"
    );

    // Erasure forgets the owner.
    s.erase_owner(&"u1".into(), "dpo", t0())
        .await
        .expect("erase");
    assert_eq!(page(None).await, vec![owned("u3", &["b", "c"])]);
}
