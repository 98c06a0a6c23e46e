//! Converging an existing entry to what an order wants: only what differs is written, and
//! memberships change value by value on the groups.

use super::*;

impl Inner {
    /// Writes what differs between `entry` and `d` (scalars, enabled, password, memberships).
    pub(super) async fn converge(
        &self,
        server: &Arc<ServerPool>,
        server_index: usize,
        m: &EntityMapping,
        entry: Entry,
        d: Desired,
        op: Operation,
    ) -> Result<Executed, ConnectorError> {
        let dn_text = entry.dn.clone();
        // Writes go to the object that was read, by objectGUID.
        let target = address(&entry);
        let fail = |e: ConnectorError| e.with_target(dn_text.clone());
        if d.password.is_some() && !self.encrypted() {
            return Err(self.refuse_plain_password(&dn_text));
        }
        self.check_attributes(server_index, &d, op)
            .await
            .map_err(fail)?;
        let mut changed = BTreeSet::new();

        // Memberships to change: compare with memberOf.
        let current_groups: HashSet<String> = entry
            .texts("memberOf")
            .iter()
            .filter_map(|g| Dn::parse(g).ok())
            .map(|g| g.key())
            .collect();
        let adds: Vec<Dn> = d
            .groups_add
            .iter()
            .filter(|g| !current_groups.contains(&g.key()))
            .cloned()
            .collect();
        let removes: Vec<Dn> = d
            .groups_remove
            .iter()
            .filter(|g| current_groups.contains(&g.key()))
            .cloned()
            .collect();
        for g in adds.iter().chain(&removes) {
            self.server_of(g, Operation::Membership).map_err(fail)?;
        }
        let add_refs: Vec<&Dn> = adds.iter().collect();
        self.check_exist(server, "group", &add_refs, Operation::Membership)
            .await
            .map_err(fail)?;

        // Scalars, enabled, password, must-change: one modify.
        let mut mods: Vec<Mod<Vec<u8>>> = Vec::new();
        let mut kinds: HashSet<Operation> = HashSet::new();
        for w in &d.scalars {
            // A rule-written userAccountControl goes after the password, below.
            if d.uac.is_some() && w.attribute.eq_ignore_ascii_case("userAccountControl") {
                continue;
            }
            let current = entry.values(&w.attribute);
            let same = match &w.value {
                None => current.is_empty(),
                Some(v) if w.is_dn => {
                    current.len() == 1
                        && match (
                            Dn::parse(&String::from_utf8_lossy(&current[0])),
                            Dn::parse(&String::from_utf8_lossy(v)),
                        ) {
                            (Ok(a), Ok(b)) => a.same_as(&b),
                            _ => current[0] == *v,
                        }
                }
                Some(v) => current.len() == 1 && current[0] == *v,
            };
            if same {
                continue;
            }
            mods.push(match &w.value {
                Some(v) => Mod::Replace(w.attribute.as_bytes().to_vec(), set([v.clone()])),
                None => Mod::Delete(w.attribute.as_bytes().to_vec(), HashSet::new()),
            });
            changed.insert(w.property.clone());
            kinds.insert(Operation::Update);
        }
        if let Some((p, secret)) = &d.password {
            mods.push(Mod::Replace(
                b"unicodePwd".to_vec(),
                set([crate::password::unicode_pwd_of(
                    p,
                    secret,
                    Operation::SetPassword,
                )?]),
            ));
            changed.insert(p.clone());
            kinds.insert(Operation::SetPassword);
        }
        if let Some((p, uac)) = &d.uac {
            // The rule's value, its disabled bit following the enabled flag when the order
            // gives one; after the password in the same modify, as on creation.
            let current = uac_of(&entry);
            let wanted = match &d.enabled {
                Some((_, true)) => uac & !UF_ACCOUNTDISABLE,
                Some((_, false)) => uac | UF_ACCOUNTDISABLE,
                None => *uac,
            };
            if current != Some(wanted) {
                mods.push(Mod::Replace(
                    b"userAccountControl".to_vec(),
                    set([wanted.to_string().into_bytes()]),
                ));
                changed.insert(p.clone());
                changed.extend(d.enabled.as_ref().map(|(e, _)| e.clone()));
                kinds.insert(Operation::Enable);
            }
        } else if let Some((p, enabled)) = &d.enabled {
            let current = uac_of(&entry).unwrap_or(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE);
            let wanted = if *enabled {
                current & !UF_ACCOUNTDISABLE
            } else {
                current | UF_ACCOUNTDISABLE
            };
            if wanted != current {
                mods.push(Mod::Replace(
                    b"userAccountControl".to_vec(),
                    set([wanted.to_string().into_bytes()]),
                ));
                changed.insert(p.clone());
                kinds.insert(Operation::Enable);
            }
        }
        if let Some((p, must)) = &d.must_change {
            let current_zero = entry.text("pwdLastSet").map(|v| v.trim() == "0");
            let value: Option<&[u8]> = match (must, current_zero) {
                (true, Some(false)) => Some(b"0"),
                (false, Some(true)) => Some(b"-1"),
                _ => None,
            };
            if let Some(v) = value {
                mods.push(Mod::Replace(b"pwdLastSet".to_vec(), set([v.to_vec()])));
                changed.insert(p.clone());
                kinds.insert(Operation::SetPassword);
            }
        }
        if !mods.is_empty() {
            let operation = if kinds.len() == 1 {
                kinds.into_iter().next().unwrap_or(Operation::Update)
            } else {
                Operation::Update
            };
            match server.modify(&target, &mods, &[]).await {
                Ok(()) => {}
                Err(LdapFailure::Result { rc: 32, text, .. }) => {
                    return Err(invalid(
                        operation,
                        format!("a referenced object (e.g. the manager) does not exist: {text}"),
                    )
                    .with_target(dn_text));
                }
                Err(f) => return Err(f.into_error(operation, &dn_text)),
            }
        }

        if let Some(p) = &d.membership_property {
            self.change_members(server, m, &dn_text, &target, &adds, true)
                .await?;
            self.change_members(server, m, &dn_text, &target, &removes, false)
                .await?;
            if !adds.is_empty() || !removes.is_empty() {
                changed.insert(p.clone());
            }
        }
        Ok(Executed::new(dn_text.clone())
            .with_stable_id(entry.guid().map(StableId::new))
            .with_changed(changed))
    }

    /// Adds or removes the member `member_value` (its DN, or `<GUID=...>` so that the value
    /// names the object that was read) on each group's member attribute: value-level, never a
    /// replace, with permissive modify (and a present member / absent member is success even
    /// without it). `member_dn` names it in errors. Writes to one group are coalesced with
    /// those of concurrent orders (`MembershipBatch`, [`crate::members`]).
    pub(super) async fn change_members(
        &self,
        server: &ServerPool,
        m: &EntityMapping,
        member_dn: &str,
        member_value: &str,
        groups: &[Dn],
        add: bool,
    ) -> Result<(), ConnectorError> {
        let attribute = m.group_attribute();
        let controls = if m.permissive_modify {
            vec![control(PERMISSIVE_MODIFY_OID)]
        } else {
            Vec::new()
        };
        let writes = groups.iter().map(|dn| {
            let g = dn.to_string();
            // One line per server, group, attribute, direction and control set.
            let key = format!(
                "{}\u{0}{}\u{0}{add}\u{0}{}\u{0}{}",
                server.url,
                attribute,
                m.permissive_modify,
                dn.key()
            );
            let controls = &controls;
            async move {
                let result = self
                    .members
                    .write(&key, member_value.as_bytes().to_vec(), |values| {
                        let values = set(values);
                        let m = if add {
                            Mod::Add(attribute.as_bytes().to_vec(), values)
                        } else {
                            Mod::Delete(attribute.as_bytes().to_vec(), values)
                        };
                        let g = &g;
                        async move { server.modify(g, &[m], controls).await }
                    })
                    .await;
                (result, g, dn)
            }
        });
        for (result, group, dn) in futures::future::join_all(writes).await {
            match result {
                Ok(()) => {}
                // Already a member / not a member: the wanted state holds.
                Err(LdapFailure::Result { rc: 68 | 20, .. }) if add => {}
                Err(LdapFailure::Result { rc: 16, .. }) if !add => {}
                Err(LdapFailure::Result {
                    rc: 53, ref text, ..
                }) if !add && is_absent_value(text) => {}
                Err(LdapFailure::Result { rc: 32, text, .. }) => {
                    self.confirmed.forget(&dn.key());
                    return Err(invalid(
                        Operation::Membership,
                        format!("group `{group}` does not exist: {text}"),
                    )
                    .with_target(member_dn));
                }
                Err(f) => {
                    let verb = if add { "adding to" } else { "removing from" };
                    let e = f.into_error(Operation::Membership, member_dn);
                    let message = format!("{verb} group `{group}`: {}", e.message());
                    return Err(
                        ConnectorError::new(e.kind(), Operation::Membership, message)
                            .with_target(member_dn)
                            .pipe_status(e.is_temporary()),
                    );
                }
            }
        }
        Ok(())
    }
}
