use super::*;
use crate::connector::ConnectorExt;
use autoprov_core::{
    Owner, PropertyValue, ProvisioningOrder, ResourceType, ResourceTypeRef, ScalarValue, Secret,
};

const BASE: &str = "DC=example,DC=test";

fn order(
    id: &str,
    change_type: ChangeType,
    entity_type: &str,
    changes: Changes,
) -> ProvisioningOrder {
    ProvisioningOrder {
        order_id: id.into(),
        assigned_resource_type_id: None,
        change_type,
        workflow_instance_id: None,
        owner: Some(Owner::new("u-1", "jdoe")),
        resource_type: ResourceTypeRef::of(&ResourceType::new(
            "rt",
            "rt",
            "Directory_User",
            entity_type,
            "mem",
        )),
        connection: None,
        changes,
        resource: None,
        depends_on: vec![],
        not_before: None,
        arguments: Default::default(),
    }
}

fn on(mut o: ProvisioningOrder, target: &Executed) -> ProvisioningOrder {
    let mut r = Resource::new(target.resource_id.clone());
    r.stable_id = target.stable_id.clone();
    o.resource = Some(r);
    o
}

fn user(cn: &str, sam: &str, parent: &str) -> Changes {
    let mut c = Changes::default();
    c.set("cn", cn)
        .set("sAMAccountName", sam)
        .set_reference("parentdn", Reference::dn(parent));
    c
}

fn group(cn: &str, parent: &str) -> Changes {
    let mut c = user(cn, &format!("g-{cn}"), parent);
    c.set("groupType", -2147483646i64);
    c
}

async fn run(
    system: &InMemoryConnector,
    o: &ProvisioningOrder,
) -> Result<Executed, ConnectorError> {
    system
        .fulfill(o)
        .await
        .map(|f| f.executed().cloned().expect("automated"))
}

fn system() -> (InMemoryConnector, String) {
    let s = InMemoryConnector::new("mem");
    let ou = s.ensure_container(&format!("OU=Sales,{BASE}")).unwrap();
    (s, ou.into_string())
}

fn refs(r: &Resource, property: &str) -> Vec<String> {
    match r.get(property) {
        Some(PropertyValue::References(set)) => set
            .iter()
            .map(|r| r.dn_value().unwrap().to_owned())
            .collect(),
        other => panic!("{property}: {other:?}"),
    }
}

#[tokio::test]
async fn creates_with_escaped_dn_and_adopts_on_retry() {
    let (s, ou) = system();
    let o = order(
        "o1",
        ChangeType::Added,
        "user",
        user("Smith, John", "jsmith", &ou),
    );
    let done = run(&s, &o).await.unwrap();
    assert_eq!(
        done.resource_id.as_str(),
        r"CN=Smith\, John,OU=Sales,DC=example,DC=test"
    );
    assert!(done.changed.contains("sAMAccountName") && !done.adopted);
    assert_eq!(
        done.stable_id.as_ref().unwrap().as_str(),
        "00000000-0000-4000-8000-000000000002"
    );
    // The same order again: adopted, nothing written.
    let again = run(&s, &o).await.unwrap();
    assert!(again.adopted && again.is_noop(), "{again:?}");
    assert_eq!(again.stable_id, done.stable_id);
    // Another order for the same account converges its attributes.
    let mut c = user("Smith, John", "JSMITH", &ou);
    c.set("title", "Boss");
    let converged = run(&s, &order("o2", ChangeType::Added, "user", c))
        .await
        .unwrap();
    assert!(converged.adopted);
    // The key matched without case; the order's spelling is written.
    assert_eq!(
        converged.changed,
        BTreeSet::from(["sAMAccountName".to_owned(), "title".to_owned()])
    );
    // A different object holding the name: AlreadyExists.
    let e = run(
        &s,
        &order(
            "o3",
            ChangeType::Added,
            "user",
            user("Smith, John", "other", &ou),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(e.order().unwrap().as_str(), "o3");
    // The unique key held elsewhere: AlreadyExists, case-insensitively.
    let e = run(
        &s,
        &order(
            "o4",
            ChangeType::Added,
            "user",
            user("Other", "JSmith", &ou),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("Smith"), "{e}");
    // A group of the same name is another object too.
    let e = run(
        &s,
        &order("o5", ChangeType::Added, "group", group("Smith, John", &ou)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert_eq!(s.len(), 2);
}

#[tokio::test]
async fn invalid_orders_write_nothing() {
    let (s, ou) = system();
    let g = run(&s, &order("g", ChangeType::Added, "group", group("G", &ou)))
        .await
        .unwrap();
    let before = (s.operation_log().len(), s.change_number(), s.snapshot());
    let mut cases = Vec::new();
    // Missing required, unknown property, bad reference, wrong kind, missing parent, secret
    // in a plain property, unknown type, a membership add to a non-group.
    let mut c = user("A", "a", &ou);
    c.properties.remove("sAMAccountName");
    cases.push(("user", c));
    let mut c = user("A", "a", &ou);
    c.set("noSuchAttribute", "x");
    cases.push(("user", c));
    let mut c = user("A", "a", &ou);
    c.add_reference("memberOf", Reference::dn(g.resource_id.as_str()))
        .add_reference("memberOf", Reference::dn(format!("CN=Missing,{ou}")));
    cases.push(("user", c));
    let mut c = user("A", "a", &ou);
    c.set("accountExpires", "tomorrow");
    cases.push(("user", c));
    let mut c = user("A", "a", &ou);
    c.properties.remove("parentdn");
    cases.push(("user", c));
    let mut c = user("A", "a", &format!("OU=Nowhere,{BASE}"));
    c.set("description", "x");
    cases.push(("user", c));
    let mut c = user("A", "a", &ou);
    c.set("description", Secret::new("s3cr3t-value"));
    cases.push(("user", c));
    cases.push(("printer", user("A", "a", &ou)));
    let mut c = user("A", "a", &ou);
    c.add_reference("memberOf", Reference::dn(ou.as_str()));
    cases.push(("user", c));
    let mut c = user("A", "a", &ou);
    c.set_reference("manager", Reference::dn(g.resource_id.as_str()));
    cases.push(("user", c));
    for (i, (t, c)) in cases.into_iter().enumerate() {
        let e = run(&s, &order(&format!("bad{i}"), ChangeType::Added, t, c))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "case {i}: {e}");
        assert!(!e.is_temporary());
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
    // A Modified order with one bad property writes none of the good ones.
    let mut c = Changes::default();
    c.set("description", "changed").set("noSuchAttribute", "x");
    let e = run(
        &s,
        &on(order("bad-m", ChangeType::Modified, "group", c), &g),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidOrder);
    assert_eq!(e.target(), Some(g.resource_id.as_str()));
    assert_eq!(
        before,
        (s.operation_log().len(), s.change_number(), s.snapshot())
    );
}

#[tokio::test]
async fn membership_lives_on_the_group_and_is_idempotent() {
    let (s, ou) = system();
    let g = run(
        &s,
        &order("g", ChangeType::Added, "group", group("Staff", &ou)),
    )
    .await
    .unwrap();
    let mut c = user("Ann", "ann", &ou);
    c.add_reference("memberOf", Reference::dn(g.resource_id.as_str()));
    let ann = run(&s, &order("ann", ChangeType::Added, "user", c))
        .await
        .unwrap();
    assert!(ann.changed.contains("memberOf"));
    let bob = run(
        &s,
        &order("bob", ChangeType::Added, "user", user("Bob", "bob", &ou)),
    )
    .await
    .unwrap();
    let mut add = Changes::default();
    add.add_reference("memberOf", Reference::dn(g.resource_id.as_str()));
    run(
        &s,
        &on(
            order("bob+", ChangeType::Modified, "user", add.clone()),
            &bob,
        ),
    )
    .await
    .unwrap();
    // Twice: success, nothing written.
    let again = run(
        &s,
        &on(order("bob+2", ChangeType::Modified, "user", add), &bob),
    )
    .await
    .unwrap();
    assert!(again.is_noop());
    let group_now = s.get(g.resource_id.as_str()).unwrap();
    assert_eq!(refs(&group_now, "member").len(), 2);
    assert_eq!(
        refs(&s.get(ann.resource_id.as_str()).unwrap(), "memberOf"),
        vec![g.resource_id.to_string()]
    );
    // The write went to the group's `member`.
    let log = s.operations_of(&"bob+".into());
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].operation, log[0].property.as_deref()),
        (Operation::Membership, Some("member"))
    );
    assert_eq!(&log[0].target, g.stable_id.as_ref().unwrap());
    // Remove one member: the other stays. Remove again: success.
    let mut rm = Changes::default();
    rm.remove_reference("memberOf", Reference::dn(g.resource_id.as_str()));
    run(
        &s,
        &on(
            order("ann-", ChangeType::Modified, "user", rm.clone()),
            &ann,
        ),
    )
    .await
    .unwrap();
    let again = run(
        &s,
        &on(order("ann-2", ChangeType::Modified, "user", rm), &ann),
    )
    .await
    .unwrap();
    assert!(again.is_noop());
    assert_eq!(
        refs(&s.get(g.resource_id.as_str()).unwrap(), "member"),
        vec![bob.resource_id.to_string()]
    );
    // The group side works too, and removing from a deleted group succeeds.
    let mut m = Changes::default();
    m.add_reference("member", Reference::dn(ann.resource_id.as_str()));
    run(&s, &on(order("g+", ChangeType::Modified, "group", m), &g))
        .await
        .unwrap();
    assert_eq!(
        refs(&s.get(ann.resource_id.as_str()).unwrap(), "memberOf").len(),
        1
    );
    run(
        &s,
        &on(
            order("g-del", ChangeType::Deleted, "group", Changes::default()),
            &g,
        ),
    )
    .await
    .unwrap();
    assert!(refs(&s.get(ann.resource_id.as_str()).unwrap(), "memberOf").is_empty());
    let mut rm = Changes::default();
    rm.remove_reference("memberOf", Reference::dn(g.resource_id.as_str()));
    run(
        &s,
        &on(order("ann-3", ChangeType::Modified, "user", rm), &ann),
    )
    .await
    .unwrap();
    assert!(s.repeated_effects().is_empty());
}

#[tokio::test]
async fn rename_and_move_keep_the_stable_id() {
    let (s, ou) = system();
    let other = s.ensure_container(&format!("OU=Other,{BASE}")).unwrap();
    let u = run(
        &s,
        &order("u", ChangeType::Added, "user", user("Ann", "ann", &ou)),
    )
    .await
    .unwrap();
    let mut c = Changes::default();
    c.set("cn", "Ann B")
        .set_reference("parentdn", Reference::dn(other.as_str()));
    let moved = run(&s, &on(order("mv", ChangeType::Modified, "user", c), &u))
        .await
        .unwrap();
    assert_eq!(
        moved.resource_id.as_str(),
        "CN=Ann B,OU=Other,DC=example,DC=test"
    );
    assert_eq!(moved.stable_id, u.stable_id);
    assert_eq!(
        moved.changed,
        BTreeSet::from(["cn".to_owned(), "parentdn".to_owned()])
    );
    assert!(s.get(u.resource_id.as_str()).is_none());
    // An order carrying the old DN but the stable id still finds it.
    let mut c = Changes::default();
    c.set("title", "x");
    run(&s, &on(order("t", ChangeType::Modified, "user", c), &u))
        .await
        .unwrap();
    // Renaming the container moves everything below it.
    let container = s.get(other.as_str()).unwrap();
    let mut c = Changes::default();
    c.set("ou", "Renamed");
    let target = Executed {
        resource_id: other.clone(),
        stable_id: container.stable_id.clone(),
        changed: BTreeSet::new(),
        adopted: false,
        initial_password: None,
        note: None,
    };
    run(
        &s,
        &on(
            order("ren-ou", ChangeType::Modified, "organizationalUnit", c),
            &target,
        ),
    )
    .await
    .unwrap();
    let now = s.get(u.stable_id.as_ref().unwrap().as_str()).unwrap();
    assert_eq!(now.id.as_str(), "CN=Ann B,OU=Renamed,DC=example,DC=test");
    // A rename onto a taken name is AlreadyExists; a move below itself is invalid.
    run(
        &s,
        &order("b", ChangeType::Added, "user", user("Bob", "bob", &ou)),
    )
    .await
    .unwrap();
    let mut c = Changes::default();
    c.set("cn", "bob")
        .set_reference("parentdn", Reference::dn(ou.as_str()));
    let e = run(
        &s,
        &on(order("clash", ChangeType::Modified, "user", c), &moved),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let mut c = Changes::default();
    c.set_reference("parentdn", Reference::dn(format!("OU=Renamed,{BASE}")));
    let self_target = Executed {
        resource_id: format!("OU=Renamed,{BASE}").into(),
        ..target
    };
    let e = run(
        &s,
        &on(
            order("loop", ChangeType::Modified, "organizationalUnit", c),
            &self_target,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
}

#[tokio::test]
async fn deletes_are_idempotent_and_containers_protect_their_children() {
    let (s, ou) = system();
    let u = run(
        &s,
        &order("u", ChangeType::Added, "user", user("Ann", "ann", &ou)),
    )
    .await
    .unwrap();
    let ou_obj = s.get(&ou).unwrap();
    let ou_target = Executed {
        resource_id: ou.clone().into(),
        stable_id: ou_obj.stable_id.clone(),
        changed: BTreeSet::new(),
        adopted: false,
        initial_password: None,
        note: None,
    };
    let e = run(
        &s,
        &on(
            order(
                "d-ou",
                ChangeType::Deleted,
                "organizationalUnit",
                Changes::default(),
            ),
            &ou_target,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let del = on(
        order("d", ChangeType::Deleted, "user", Changes::default()),
        &u,
    );
    assert!(!run(&s, &del).await.unwrap().is_noop());
    let again = run(&s, &del).await.unwrap();
    assert!(again.is_noop());
    assert_eq!(again.resource_id, u.resource_id);
    // A new object at the old name is another object: a delete by the old stable id leaves it.
    let u2 = run(
        &s,
        &order("u2", ChangeType::Added, "user", user("Ann", "ann", &ou)),
    )
    .await
    .unwrap();
    assert_ne!(u2.stable_id, u.stable_id);
    assert!(run(&s, &del).await.unwrap().is_noop());
    assert!(s.get(u2.resource_id.as_str()).is_some());
    // Tree delete takes the subtree.
    let tree = InMemoryConnector::builder("t")
        .tree_delete(true)
        .build()
        .unwrap();
    let top = tree.ensure_container(&format!("OU=B,OU=A,{BASE}")).unwrap();
    tree.seed("user", &user("X", "x", top.as_str())).unwrap();
    assert_eq!(tree.len(), 3);
    tree.remove(&format!("OU=A,{BASE}")).unwrap();
    assert!(tree.is_empty());
}

#[tokio::test]
async fn passwords_are_write_only() {
    let (s, ou) = system();
    let mut c = user("Ann", "ann", &ou);
    c.set("password", Secret::new("Initial-Pa55!"))
        .set("enabled", true);
    let o = order("u", ChangeType::Added, "user", c);
    let u = run(&s, &o).await.unwrap();
    assert!(u.changed.contains("password"));
    assert!(s.verify_password(u.resource_id.as_str(), "Initial-Pa55!"));
    assert!(!s.verify_password(u.resource_id.as_str(), "wrong"));
    // Re-applying the same password writes nothing.
    assert!(run(&s, &o).await.unwrap().is_noop());
    let everything = format!(
        "{:?} {:?} {:?} {}",
        s,
        s.snapshot(),
        s.operation_log(),
        serde_json::to_string(&s.snapshot()).unwrap()
    );
    assert!(!everything.contains("Initial-Pa55"), "{everything}");
    let r = s.get(u.resource_id.as_str()).unwrap();
    assert!(r.get("password").is_none());
    assert_eq!(
        r.get("enabled"),
        Some(&PropertyValue::Scalar(ScalarValue::Bool(true)))
    );
}

#[tokio::test]
async fn incremental_export_returns_changes_and_deletions_since_the_cookie() {
    let (s, ou) = system();
    let a = run(
        &s,
        &order("a", ChangeType::Added, "user", user("A", "a", &ou)),
    )
    .await
    .unwrap();
    let b = run(
        &s,
        &order("b", ChangeType::Added, "user", user("B", "b", &ou)),
    )
    .await
    .unwrap();
    let c = run(
        &s,
        &order("c", ChangeType::Added, "user", user("C", "c", &ou)),
    )
    .await
    .unwrap();
    let full = s.export_all(ExportRequest::complete()).await.unwrap();
    assert_eq!(full.resources.len(), 4);
    let cookie = full.cookie.unwrap();
    let mut m = Changes::default();
    m.set("title", "t");
    run(&s, &on(order("b2", ChangeType::Modified, "user", m), &b))
        .await
        .unwrap();
    run(
        &s,
        &on(
            order("c-", ChangeType::Deleted, "user", Changes::default()),
            &c,
        ),
    )
    .await
    .unwrap();
    let d = run(
        &s,
        &order("d", ChangeType::Added, "user", user("D", "d", &ou)),
    )
    .await
    .unwrap();
    let inc = s
        .export_all(ExportRequest::incremental(cookie.clone()))
        .await
        .unwrap();
    let ids: BTreeSet<_> = inc
        .resources
        .iter()
        .map(|r| r.stable_id.clone().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([b.stable_id.clone().unwrap(), d.stable_id.clone().unwrap()])
    );
    assert!(!ids.contains(a.stable_id.as_ref().unwrap()));
    assert_eq!(
        inc.deleted,
        vec![(c.resource_id.clone(), c.stable_id.clone())]
    );
    let next = inc.cookie.unwrap();
    let empty = s
        .export_all(ExportRequest::incremental(next.clone()))
        .await
        .unwrap();
    assert!(empty.resources.is_empty() && empty.deleted.is_empty());
    // Type and scope filters.
    let users = s
        .export_all(ExportRequest::complete().of_types(["user".into()]))
        .await
        .unwrap();
    assert_eq!(users.resources.len(), 3);
    let scoped = s
        .export_all(ExportRequest::complete().within(ou.clone()))
        .await
        .unwrap();
    assert_eq!(scoped.resources.len(), 4);
    assert!(
        s.export(ExportRequest::complete().within(format!("OU=None,{BASE}")))
            .await
            .is_err()
    );
    // Unusable cookies are conflicts.
    for bad in ["garbage", "other@1", "mem@999999"] {
        let e = s
            .export(ExportRequest::incremental(ExportCookie(bad.into())))
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{bad}");
    }
    s.purge_tombstones();
    let e = s
        .export(ExportRequest::incremental(cookie))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // A cookie taken after the last purged deletion is still good.
    s.export_all(ExportRequest::incremental(next))
        .await
        .unwrap();
}

#[tokio::test]
async fn export_pages_through_a_large_system() {
    let (s, ou) = system();
    for i in 0..1000 {
        s.seed("user", &user(&format!("U{i}"), &format!("u{i}"), &ou))
            .unwrap();
    }
    let mut stream = s.export(ExportRequest::complete()).await.unwrap();
    // A write between pages neither blocks nor breaks the export.
    let mut n = 0;
    while let Some(item) = futures::StreamExt::next(&mut stream).await {
        if n == 300 {
            s.seed("user", &user("Late", "late", &ou)).unwrap();
        }
        match item.unwrap() {
            ExportItem::Resource(_) => n += 1,
            ExportItem::Complete { cookie } => {
                let inc = s
                    .export_all(ExportRequest::incremental(cookie))
                    .await
                    .unwrap();
                assert_eq!(
                    inc.resources.len(),
                    1,
                    "the late write is in the next increment"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(n >= 1001);
}

#[test]
fn concurrent_orders_from_threads_are_each_applied_once() {
    let (s, ou) = system();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = s.clone();
            let ou = ou.clone();
            tasks.push(tokio::spawn(async move {
                // Every order is sent twice, concurrently.
                let o = order(
                    &format!("o{}", i / 2),
                    ChangeType::Added,
                    "user",
                    user(&format!("U{}", i / 2), &format!("u{}", i / 2), &ou),
                );
                run(&s, &o).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(s.len(), 101);
    assert!(s.repeated_effects().is_empty());
}

#[tokio::test]
async fn package_builds_from_json_settings() {
    let package = MemoryPackage::new();
    let mut registry = crate::PackageRegistry::new();
    registry.register(package.clone());
    let config = |settings: serde_json::Value| crate::ConnectionConfig {
        id: "m".into(),
        package: PACKAGE_ID.into(),
        settings,
    };
    let conn = registry
        .connect(&config(serde_json::json!({
            "Containers": ["OU=A,DC=corp,DC=test"],
            "Schema": InMemorySchema::ad_like_in("DC=corp,DC=test"),
            "TreeDelete": true,
        })))
        .await
        .unwrap();
    assert_eq!(conn.info().capabilities, Capabilities::full());
    assert_eq!(package.system(&"m".into()).unwrap().len(), 1);
    let e = registry
        .connect(&config(serde_json::json!({"Containerz": []})))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration);
    assert!(e.to_string().contains("Containerz"), "{e}");
    let e = registry
        .connect(&config(
            serde_json::json!({"Containers": ["OU=A,DC=elsewhere"]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{e}");
    registry
        .connect(&config(serde_json::Value::Null))
        .await
        .unwrap();
}

#[tokio::test]
async fn out_of_band_changes_are_logged_without_an_order() {
    let (s, ou) = system();
    let u = s.seed("user", &user("Ann", "ann", &ou)).unwrap();
    let mut c = Changes::default();
    c.set("title", "drifted").set("enabled", true);
    s.modify(u.resource_id.as_str(), &c).unwrap();
    assert!(s.operation_log().iter().all(|r| r.order.is_none()));
    assert_eq!(
        s.get(u.resource_id.as_str()).unwrap().get("title"),
        Some(&PropertyValue::from("drifted"))
    );
    assert!(s.remove("CN=Nobody,DC=example,DC=test").unwrap().is_noop());
    s.remove(u.stable_id.as_ref().unwrap().as_str()).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(
        child_dn(&ou, "CN", "a,b").unwrap(),
        r"CN=a\,b,OU=Sales,DC=example,DC=test"
    );
}

/// Every order is checked against the declared schema (`Connector::schema`) first: what the
/// schema refuses is an `InvalidOrder` naming the order and the property, with the schema's
/// reason, and nothing is written.
#[tokio::test]
async fn orders_are_validated_by_the_declared_schema() {
    use crate::schema::Violation;
    let (s, ou) = system();
    let declared = s.schema().unwrap();
    let before = s.snapshot();
    let mut plain_password = user("A", "a", &ou);
    plain_password.set("password", "Plain-Text-Passw0rd!");
    let mut single_member_of = user("B", "b", &ou);
    single_member_of.set_reference("memberOf", Reference::dn(ou.as_str()));
    let mut wrong_type = user("C", "c", &ou);
    wrong_type.set("accountExpires", "tomorrow");
    let cases = [
        ("password", plain_password, Violation::SecretNotSecret),
        (
            "memberOf",
            single_member_of,
            Violation::MultiValuedWithoutDelta,
        ),
        (
            "accountExpires",
            wrong_type,
            Violation::WrongType {
                expected: crate::ValueType::DateTime,
                found: "string",
            },
        ),
    ];
    for (i, (property, changes, violation)) in cases.into_iter().enumerate() {
        let o = order(&format!("schema-{i}"), ChangeType::Added, "user", changes);
        let v = declared.validate(&o).unwrap_err();
        assert_eq!(
            (v.property.as_deref(), &v.violation),
            (Some(property), &violation)
        );
        let e = run(&s, &o).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidOrder, "{e}");
        assert_eq!(e.order().map(|o| o.as_str()), Some(o.order_id.as_str()));
        let text = e.to_string();
        assert!(
            text.contains(&format!("`{property}`")) && text.contains(&violation.to_string()),
            "{text}"
        );
        assert!(!text.contains("Plain-Text-Passw0rd!"), "{text}");
    }
    assert_eq!(s.snapshot(), before, "nothing was written");
    // A group's members are written as deltas on the group, as its schema declares.
    assert!(declared.property("group", "member").unwrap().writable);
}
