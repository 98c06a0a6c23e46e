//! Joiner, mover and leaver against the real service, each outcome checked with curl.

use autoprov_connector::ErrorKind;
use autoprov_core::{ChangeType, Changes, Reference, Secret};
use autoprov_scim::test_fixtures::*;
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn group(name: &str) -> Changes {
    let mut g = Changes::default();
    g.set("displayName", name);
    g
}

#[tokio::test]
async fn joiner_mover_leaver() {
    let Some(env) = scim_env("joiner_mover_leaver") else {
        return;
    };
    let _server = shared_use().await;
    let scim = connector(&env).await;
    let sales = apply(
        &scim,
        &order(ChangeType::Added, "Group", group(&unique("sales")), None),
    )
    .await;
    let support = apply(
        &scim,
        &order(ChangeType::Added, "Group", group(&unique("support")), None),
    )
    .await;
    let (sales, support) = (
        sales.resource_id.to_string(),
        support.resource_id.to_string(),
    );

    // Joiner: scalars, a sub-attribute, an extension attribute, the password, a group.
    let user_name = unique("jdoe");
    let external = unique("emp");
    let mut j = Changes::default();
    j.set("userName", user_name.clone())
        .set("externalId", external.clone())
        .set("name.givenName", "Jane")
        .set("name.familyName", "Doe")
        .set("title", "Clerk")
        .set("department", "Sales")
        .set("enabled", true)
        .set("password", Secret::new("Joiner-Passw0rd!"))
        .add_reference("memberOf", Reference::dn(sales.clone()));
    let joiner = order(ChangeType::Added, "User", j.clone(), None);
    let done = apply(&scim, &joiner).await;
    let id = done.resource_id.to_string();
    assert_eq!(
        done.stable_id.as_ref().map(|s| s.as_str()),
        Some(id.as_str())
    );
    assert!(!done.adopted);
    let u = env
        .get(&format!("/Users/{id}"))
        .expect("curl finds the joiner");
    assert_eq!(u["userName"], json!(user_name));
    assert_eq!(u["externalId"], json!(external));
    assert_eq!(u["name"]["givenName"], json!("Jane"));
    assert_eq!(u["name"]["familyName"], json!("Doe"));
    assert_eq!(u["title"], json!("Clerk"));
    assert_eq!(u[ENTERPRISE]["department"], json!("Sales"));
    assert_eq!(u["active"], json!(true));
    assert!(
        u.get("password").is_none(),
        "the service returns no password"
    );
    assert!(env.members_of(&sales).unwrap().contains(&id));

    // The same joiner re-sent (a dropped call, a retry): adopted, nothing written, one user.
    let again = apply(
        &scim,
        &order(
            ChangeType::Added,
            "User",
            {
                let mut c = j.clone();
                c.properties.remove("password");
                c
            },
            None,
        ),
    )
    .await;
    assert!(again.adopted && again.is_noop(), "{again:?}");
    assert_eq!(again.resource_id.as_str(), id);
    assert_eq!(env.users_named(&user_name).len(), 1);
    // Another identity (another externalId) with the same userName: refused, never a duplicate.
    let mut other = Changes::default();
    other
        .set("userName", user_name.clone())
        .set("externalId", unique("emp"));
    let e = try_apply(&scim, &order(ChangeType::Added, "User", other, None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(env.users_named(&user_name).len(), 1);

    // Mover: a new title and department, a rename, from sales to support. What the order does
    // not mention stays.
    let new_name = unique("jdoe-moved");
    let mut m = Changes::default();
    m.set("userName", new_name.clone())
        .set("title", "Lead")
        .set("department", "Support")
        .remove_reference("memberOf", Reference::dn(sales.clone()))
        .add_reference("memberOf", Reference::dn(support.clone()));
    let moved = apply(
        &scim,
        &order(ChangeType::Modified, "User", m.clone(), Some(&id)),
    )
    .await;
    assert_eq!(
        moved.resource_id.as_str(),
        id,
        "the key is the SCIM id: a rename keeps it"
    );
    for p in ["userName", "title", "department", "memberOf"] {
        assert!(
            moved.changed.contains(p),
            "changed {:?} lacks {p}",
            moved.changed
        );
    }
    let u = env.get(&format!("/Users/{id}")).unwrap();
    assert_eq!(u["userName"], json!(new_name));
    assert_eq!(u["title"], json!("Lead"));
    assert_eq!(u[ENTERPRISE]["department"], json!("Support"));
    assert_eq!(
        u["name"]["givenName"],
        json!("Jane"),
        "an unmentioned property was wiped"
    );
    assert_eq!(u["externalId"], json!(external));
    assert!(!env.members_of(&sales).unwrap().contains(&id));
    assert!(env.members_of(&support).unwrap().contains(&id));
    let again = apply(&scim, &order(ChangeType::Modified, "User", m, Some(&id))).await;
    assert!(
        again.is_noop(),
        "re-applying the move wrote {:?}",
        again.changed
    );

    // Leaver: disabled, then deleted; deleting again succeeds.
    let mut off = Changes::default();
    off.set("enabled", false);
    apply(&scim, &order(ChangeType::Modified, "User", off, Some(&id))).await;
    assert_eq!(
        env.get(&format!("/Users/{id}")).unwrap()["active"],
        json!(false)
    );
    let gone = apply(
        &scim,
        &order(ChangeType::Deleted, "User", Changes::default(), Some(&id)),
    )
    .await;
    assert!(gone.changed.contains("deleted"));
    assert!(
        env.get(&format!("/Users/{id}")).is_none(),
        "curl still finds the leaver"
    );
    let again = apply(
        &scim,
        &order(ChangeType::Deleted, "User", Changes::default(), Some(&id)),
    )
    .await;
    assert!(again.is_noop());

    // A Modified order of the deleted user is not reported as done.
    let mut late = Changes::default();
    late.set("title", "too late");
    let e = try_apply(&scim, &order(ChangeType::Modified, "User", late, Some(&id)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    for g in [&sales, &support] {
        apply(
            &scim,
            &order(ChangeType::Deleted, "Group", Changes::default(), Some(g)),
        )
        .await;
    }
}

#[tokio::test]
async fn group_adoption_never_duplicates() {
    let Some(env) = scim_env("group_adoption_never_duplicates") else {
        return;
    };
    let _server = shared_use().await;
    let scim = connector(&env).await;
    // The service does not keep group names unique: the package looks the name up first.
    let name = unique("adopted-group");
    let first = apply(
        &scim,
        &order(ChangeType::Added, "Group", group(&name), None),
    )
    .await;
    let again = apply(
        &scim,
        &order(ChangeType::Added, "Group", group(&name), None),
    )
    .await;
    assert!(again.adopted);
    assert_eq!(again.resource_id, first.resource_id);
    let filter = format!("displayName eq {}", serde_json::to_string(&name).unwrap());
    assert_eq!(
        env.query("/Groups", &filter).len(),
        1,
        "a second group was created"
    );
    let id = first.resource_id.to_string();
    apply(
        &scim,
        &order(ChangeType::Deleted, "Group", Changes::default(), Some(&id)),
    )
    .await;
    assert!(env.query("/Groups", &filter).is_empty());
}

#[tokio::test]
async fn invalid_orders_write_nothing() {
    let Some(env) = scim_env("invalid_orders_write_nothing") else {
        return;
    };
    let _server = shared_use().await;
    let scim = connector(&env).await;
    let user_name = unique("invalid");
    let mut c = Changes::default();
    c.set("userName", user_name.clone())
        .set("noSuchAttribute", "x");
    let e = try_apply(&scim, &order(ChangeType::Added, "User", c, None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidOrder);
    assert!(e.to_string().contains("noSuchAttribute"), "{e}");
    let mut c = Changes::default();
    c.set("userName", user_name.clone()).set("active", "yes");
    let e = try_apply(&scim, &order(ChangeType::Added, "User", c, None))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidOrder,
        "`active` is not a property (it is `enabled`)"
    );
    let mut c = Changes::default();
    c.set("userName", user_name.clone()).set("enabled", "yes");
    let e = try_apply(&scim, &order(ChangeType::Added, "User", c, None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidOrder, "a string for a boolean");
    assert!(
        env.users_named(&user_name).is_empty(),
        "an invalid order wrote"
    );
    let _: Value = Value::Null;
}
