//! Added orders: create the entry, or adopt the same account already there (SPEC §7).

use super::*;

impl Inner {
    /// The name and place of the entry an Added order creates, checked without I/O: the
    /// required properties, the RDN (the first RDN property the order gives) and the parent
    /// (the order's, or the mapping's default below the first server's base).
    pub(crate) fn new_entry(
        &self,
        order: &ProvisioningOrder,
        m: &EntityMapping,
        d: &Desired,
    ) -> Result<NewEntry, ConnectorError> {
        let op = Operation::Create;
        for required in &m.required_properties {
            match order.changes.properties.get(required) {
                Some(PropertyChange::Set(ScalarValue::String(s))) if !s.is_empty() => {}
                Some(PropertyChange::Set(v)) if !matches!(v, ScalarValue::String(_)) => {}
                _ => {
                    return Err(invalid(
                        op,
                        format!("`{required}` is required to create this entry"),
                    ));
                }
            }
        }
        let (rdn_property, rdn_value) = match d.rdn.clone() {
            Some(r) => r,
            None => m
                .rdn_properties
                .iter()
                .find_map(|p| match order.changes.scalar(p) {
                    Some(ScalarValue::String(s)) if !s.is_empty() => Some((p.clone(), s.clone())),
                    _ => None,
                })
                .ok_or_else(|| {
                    invalid(
                        op,
                        format!(
                            "the entry needs a name: one of {} is required",
                            m.rdn_properties.join(", ")
                        ),
                    )
                })?,
        };
        let parent = match &d.parent {
            Some((_, dn)) => dn.clone(),
            None => {
                let default = m.default_parent.as_deref().ok_or_else(|| {
                    invalid(
                        op,
                        format!("`{}` (the parent DN) is required", m.parent_property),
                    )
                })?;
                let dn = Dn::parse(default).map_err(|e| invalid(op, e.to_string()))?;
                if self.server_for(&dn).is_some() {
                    dn
                } else {
                    let base = &self.servers[0].base_dn;
                    Dn::parse(&format!("{default},{base}"))
                        .map_err(|e| invalid(op, e.to_string()))?
                }
            }
        };
        let dn = parent.child(Rdn::new(&m.rdn_attribute, &rdn_value));
        Ok(NewEntry {
            rdn_property,
            rdn_value,
            parent,
            dn,
        })
    }
    pub(crate) async fn added(
        &self,
        order: &ProvisioningOrder,
        _entity_type: &str,
        m: &EntityMapping,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Create;
        let mut d = desired(order, m)?;
        let NewEntry {
            rdn_property,
            rdn_value,
            parent,
            dn,
        } = self.new_entry(order, m, &d)?;
        let (server_index, server) = self.server_of(&parent, op)?;
        let dn_text = dn.to_string();
        let fail = |e: ConnectorError| e.with_target(dn_text.clone());

        // The initial password: given, or generated (and then handed back for delivery).
        let mut generated = None;
        // The mapping's policy is a fallback: the dispatcher generates by the resource type's
        // password settings (and says when those settings want none).
        let generation_off = order
            .arguments
            .get(autoprov_connector::schema::NO_GENERATED_PASSWORD)
            .is_some_and(|v| v == "true");
        if d.password.is_none()
            && !generation_off
            && let Some(pw) = &m.password
            && let Some(policy) = &pw.generate
        {
            let secret = crate::password::generate(policy, &mut rand::thread_rng());
            generated = Some(secret.clone());
            d.password = Some((pw.property.clone(), secret));
        }
        if d.password.is_some() && !self.encrypted() {
            return Err(self.refuse_plain_password(&dn_text));
        }
        for g in d.groups_add.iter() {
            self.server_of(g, Operation::Membership).map_err(fail)?;
        }
        self.check_attributes(server_index, &d, op)
            .await
            .map_err(fail)?;
        let groups: Vec<&Dn> = d.groups_add.iter().collect();
        self.check_exist(&server, "group", &groups, Operation::Membership)
            .await
            .map_err(fail)?;

        // The entry, created disabled.
        let mut changed: BTreeSet<String> = BTreeSet::new();
        changed.insert(rdn_property.clone());
        for w in &d.scalars {
            if w.value.is_some() {
                changed.insert(w.property.clone());
            }
        }
        let mut attrs: BTreeMap<String, HashSet<Vec<u8>>> = creation_attributes(m, &d, &rdn_value)
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        if let Some((property, secret)) = &d.password {
            attrs.insert(
                "unicodePwd".into(),
                set([crate::password::unicode_pwd_of(
                    property,
                    secret,
                    Operation::Create,
                )?]),
            );
            changed.insert(property.clone());
        }
        if let Some((p, _)) = &d.parent {
            changed.insert(p.clone());
        }
        let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v))
            .collect();
        match server.add(&dn_text, &attrs).await {
            Ok(()) => {}
            Err(LdapFailure::Result { rc: 68, .. }) => {
                let adopted = self.adopt(order, m, &server, server_index, &dn, d).await?;
                // Adoption converges the password too: the generated one is the one set.
                return Ok(match generated {
                    Some(p)
                        if adopted
                            .changed
                            .iter()
                            .any(|c| Some(c) == m.password.as_ref().map(|pw| &pw.property)) =>
                    {
                        adopted.with_initial_password(p)
                    }
                    _ => adopted,
                });
            }
            Err(LdapFailure::Result { rc: 32, text, .. }) => {
                return Err(invalid(
                    op,
                    format!("the parent `{parent}` (or another referenced object) does not exist: {text}"),
                )
                .with_target(dn_text));
            }
            Err(f) => {
                let operation = match f.text() {
                    t if t.contains("0000052D") => Operation::SetPassword,
                    _ => op,
                };
                return Err(f.into_error(operation, &dn_text));
            }
        }

        // Then, at once (each depends only on the entry existing): enable and
        // must-change-at-first-logon in one modify, the memberships on the groups, and the
        // objectGUID read back.
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        for (attribute, value, property) in activation(m, &d, d.password.is_some()) {
            mods.push(Mod::Replace(attribute.as_bytes().to_vec(), set([value])));
            changed.extend(property);
        }
        let enable = async {
            if mods.is_empty() {
                return Ok(());
            }
            server
                .modify(&dn_text, &mods, &[])
                .await
                .map_err(|f| f.into_error(Operation::Enable, &dn_text))
        };
        let members = async {
            match &d.membership_property {
                Some(_) => {
                    self.change_members(&server, m, &dn_text, &dn_text, &d.groups_add, true)
                        .await
                }
                None => Ok(()),
            }
        };
        let guid = async {
            server
                .read(&dn_text, &["objectGUID".to_owned()], &[])
                .await
                .map_err(|f| f.into_error(Operation::Read, &dn_text))
        };
        let (enabled, members, entry) = futures::join!(enable, members, guid);
        enabled?;
        members?;
        if let Some(p) = &d.membership_property
            && !d.groups_add.is_empty()
        {
            changed.insert(p.clone());
        }
        let entry = entry?;
        let (resource_id, stable_id) = match entry {
            Some(e) => (e.dn.clone(), e.guid()),
            None => (dn_text.clone(), None),
        };
        let executed = Executed::new(resource_id)
            .with_stable_id(stable_id.map(StableId::new))
            .with_changed(changed);
        Ok(match generated {
            Some(p) => executed.with_initial_password(p),
            None => executed,
        })
    }

    /// An Added order met an existing entry: adopt it when it is the same account, and converge.
    pub(super) async fn adopt(
        &self,
        order: &ProvisioningOrder,
        m: &EntityMapping,
        server: &Arc<ServerPool>,
        server_index: usize,
        dn: &Dn,
        d: Desired,
    ) -> Result<Executed, ConnectorError> {
        let op = Operation::Create;
        let dn_text = dn.to_string();
        let mut attrs = self.read_list(&d, m);
        attrs.extend(["whenCreated".to_owned(), "objectGUID".to_owned()]);
        let existing = server
            .read(&dn_text, &attrs, &[])
            .await
            .map_err(|f| f.into_error(Operation::Read, &dn_text))?;
        let wanted_sam = order
            .changes
            .scalar(
                m.attributes
                    .iter()
                    .find(|(_, a)| a.eq_ignore_ascii_case("sAMAccountName"))
                    .map(|(p, _)| p.as_str())
                    .unwrap_or("sAMAccountName"),
            )
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let Some(entry) = existing else {
            // Something else holds a unique value (sAMAccountName): name it.
            let holder = match &wanted_sam {
                Some(sam) => server
                    .search_paged(
                        &server.base_dn,
                        &format!("(sAMAccountName={})", ldap_escape(sam.as_str())),
                        &["1.1".to_owned()],
                        &[],
                        10,
                    )
                    .await
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .map(|e| e.dn),
                None => None,
            };
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                op,
                match holder {
                    Some(h) => format!(
                        "sAMAccountName `{}` is already held by another object: {h}",
                        wanted_sam.unwrap_or_default()
                    ),
                    None => "another object already holds a unique value of this entry".into(),
                },
            )
            .with_target(dn_text));
        };
        if !has_classes(&entry, m) {
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                op,
                format!(
                    "an object of another kind ({}) already has this DN",
                    entry.texts("objectClass").join(", ")
                ),
            )
            .with_target(dn_text));
        }
        if let (Some(wanted), Some(actual)) = (&wanted_sam, entry.text("sAMAccountName"))
            && !wanted.eq_ignore_ascii_case(&actual)
        {
            return Err(ConnectorError::new(
                ErrorKind::AlreadyExists,
                op,
                format!(
                    "a different account (sAMAccountName `{actual}`, not `{wanted}`) already has this DN"
                ),
            )
            .with_target(dn_text));
        }
        // The same account. One autoprov did not create waits for review when the order asks
        // for it: nothing is written. It is the order's own when the order is sent again and
        // the entry was created at or after the order's first attempt (less the clock
        // tolerance between this host and the domain controllers).
        let created = entry
            .text("whenCreated")
            .as_deref()
            .and_then(crate::export::generalized_time);
        if autoprov_connector::adoption_needs_review(order, created) {
            let guid = entry.guid().map(StableId::new);
            return Err(
                ConnectorError::adoption_needs_review(&dn_text, guid.as_ref()).for_order(order),
            );
        }
        // The same account: converge. Its password, and whether it must be changed, belong to
        // the account's creation: an adopted account keeps them (they cannot be compared) —
        // unless the order is sent again after an attempt of its own whose outcome is unknown
        // or that failed: then the account is most likely the one that attempt created, with a
        // password nobody received, and it gets the order's (or a newly generated) one.
        let mut d = d;
        if order
            .arguments
            .get(autoprov_connector::RESENT_ARGUMENT)
            .map(String::as_str)
            != Some("true")
        {
            d.password = None;
            d.must_change = None;
        }
        d.parent = None;
        d.rdn = None;
        let mut executed = self.converge(server, server_index, m, entry, d, op).await?;
        executed.adopted = true;
        Ok(executed)
    }
}

#[cfg(test)]
mod adoption_tests {
    use autoprov_connector::{ADOPTION_REVIEW_ARGUMENT, RESENT_ARGUMENT, adoption_needs_review};

    /// Whether an entry created at `when_created` (AD's generalized time) is the own creation
    /// of an order first sent at `first` and sent again.
    fn created_since(when_created: Option<&str>, first: &str) -> bool {
        let mut order = crate::test_fixtures::order(
            autoprov_core::ChangeType::Added,
            "user",
            autoprov_core::Changes::default(),
            None,
        );
        order
            .arguments
            .insert(ADOPTION_REVIEW_ARGUMENT.to_owned(), first.to_owned());
        order
            .arguments
            .insert(RESENT_ARGUMENT.to_owned(), "true".to_owned());
        !adoption_needs_review(
            &order,
            when_created.and_then(crate::export::generalized_time),
        )
    }

    #[test]
    fn an_entry_is_the_orders_own_only_when_created_after_its_first_attempt() {
        let first = "2026-12-01T20:00:00Z";
        assert!(created_since(Some("20261201200001.0Z"), first));
        assert!(created_since(Some("20261201195700.0Z"), first));
        assert!(!created_since(Some("20261201195400.0Z"), first));
        assert!(!created_since(Some("20200101000000.0Z"), first));
        assert!(!created_since(None, first));
        assert!(!created_since(Some("yesterday"), first));
        assert!(!created_since(Some("20261201200001.0Z"), "soon"));
        assert_eq!(
            crate::export::generalized_time("20261201195600.0Z").map(|t| t.to_rfc3339()),
            Some("2026-12-01T19:56:00+00:00".to_owned())
        );
    }
}
