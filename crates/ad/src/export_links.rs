//! What a rename changes beyond the renamed entry, for incremental exports.
//!
//! AD keeps a membership as a link: renaming or moving a group changes the `memberOf` its
//! members read, and renaming a member changes the group's `member`, but neither side's
//! `uSNChanged` moves. Renaming an OU changes the DN of everything below it, whose
//! `uSNChanged` does not move either. An incremental export by `uSNChanged` alone would leave
//! the caller holding the old names. So an incremental export also:
//! 1. reads each changed entry's `replPropertyMetaData` and, when its `name` attribute changed
//!    since the cookie (a rename or a move), sends again the entries on the other side of its
//!    links;
//! 2. finds the OUs and containers renamed or moved since the cookie and sends again every
//!    exported entry below them, and the other side of their links;
//! 3. sends again every exported entry whose DN-valued properties (`manager`, `managedBy`: the
//!    mapping's references, also links in AD) name an entry renamed or moved in 1 or 2.
//!
//! When the metadata cannot be read (a delegated account without the right), an entry counts
//! as renamed: more is sent, never less.

use crate::export::{Plan, Tx, attributes, search, to_resource};
use crate::pool::{Entry, ServerPool};
use autoprov_connector::{ConnectorError, ExportItem};
use std::collections::{BTreeMap, HashSet};

/// The attribute holding per-attribute replication metadata.
pub(crate) const METADATA: &str = "replPropertyMetaData";
/// The attribute id of `name`, which changes with every rename and move.
const NAME_ATTID: u32 = 0x0009_0001;
/// Linked entries re-read per search.
const CHUNK: usize = 64;

/// What an incremental export has sent and must still send.
#[derive(Default)]
pub(crate) struct Links {
    /// (entity type index, lower-case DN) of every entry sent.
    sent: HashSet<(usize, String)>,
    /// Entries on the other side of a renamed entry's links: lower-case DN ⇒ DN.
    linked: BTreeMap<String, String>,
    /// The new DNs of the entries renamed or moved: lower-case DN ⇒ DN.
    renamed: BTreeMap<String, String>,
}

impl Links {
    /// Notes an entry about to be sent; `renamed`: its DN changed since the cookie. Returns
    /// `false` when that entry was already sent as that entity type.
    pub(crate) fn note(&mut self, entity_type: usize, entry: &Entry, renamed: bool) -> bool {
        if renamed {
            for dn in entry
                .texts("member")
                .into_iter()
                .chain(entry.texts("memberOf"))
            {
                self.linked.insert(dn.to_ascii_lowercase(), dn);
            }
            self.renamed
                .insert(entry.dn.to_ascii_lowercase(), entry.dn.clone());
        }
        self.sent
            .insert((entity_type, entry.dn.to_ascii_lowercase()))
    }

    /// Sends again what the renames of this server's entries changed: the entries below a
    /// renamed container, then the other side of every renamed entry's links. `Ok(false)` when
    /// the receiver went away.
    pub(crate) async fn send_renamed(
        &mut self,
        plan: &Plan,
        pool: &ServerPool,
        base: &str,
        usn: i64,
        tx: &mut Tx,
    ) -> Result<bool, ConnectorError> {
        let mut containers = Vec::new();
        let filter = format!(
            "(&(|(objectClass=organizationalUnit)(objectClass=container))(uSNChanged>={}))",
            usn + 1
        );
        let attrs = [METADATA.to_owned()];
        search(plan, pool, base, &filter, &attrs, &[], tx, |entry| {
            if renamed_since(&entry, usn) {
                containers.push(entry.dn);
            }
            None
        })
        .await?;
        for container in &containers {
            for (i, (_, m)) in plan.types.iter().enumerate() {
                if !self
                    .resend(plan, pool, container, i, &m.filter, true, tx)
                    .await?
                {
                    return Ok(false);
                }
            }
        }
        let linked: Vec<String> = std::mem::take(&mut self.linked).into_values().collect();
        for chunk in linked.chunks(CHUNK) {
            let dns: String = chunk
                .iter()
                .map(|dn| format!("(distinguishedName={})", ldap3::ldap_escape(dn.as_str())))
                .collect();
            for (i, (_, m)) in plan.types.iter().enumerate() {
                let filter = format!("(&{}(|{dns}))", m.filter);
                if !self.resend(plan, pool, base, i, &filter, false, tx).await? {
                    return Ok(false);
                }
            }
        }
        self.send_referencing(plan, pool, base, tx).await
    }

    /// Sends again the entries whose reference attributes name a renamed entry: AD rewrote
    /// those values without moving the referencing entries' `uSNChanged`.
    async fn send_referencing(
        &mut self,
        plan: &Plan,
        pool: &ServerPool,
        base: &str,
        tx: &mut Tx,
    ) -> Result<bool, ConnectorError> {
        let renamed: Vec<String> = std::mem::take(&mut self.renamed).into_values().collect();
        for (i, (_, m)) in plan.types.iter().enumerate() {
            let referencing: Vec<&str> = m
                .references
                .iter()
                .map(|p| m.attribute_of(p))
                .filter(|a| {
                    // Memberships are sent by the links pass.
                    !["member", "memberof"]
                        .iter()
                        .any(|l| a.eq_ignore_ascii_case(l))
                })
                .collect();
            if referencing.is_empty() {
                continue;
            }
            for chunk in renamed.chunks(CHUNK) {
                let any: String = chunk
                    .iter()
                    .flat_map(|dn| {
                        let dn = ldap3::ldap_escape(dn.as_str());
                        referencing.iter().map(move |attr| format!("({attr}={dn})"))
                    })
                    .collect();
                let filter = format!("(&{}(|{any}))", m.filter);
                if !self.resend(plan, pool, base, i, &filter, false, tx).await? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends again the entries of entity type `i` that `filter` finds below `base`, each
    /// once; `renamed`: they count as renamed (their links are followed too). `Ok(false)`
    /// when the receiver went away.
    #[allow(clippy::too_many_arguments)]
    async fn resend(
        &mut self,
        plan: &Plan,
        pool: &ServerPool,
        base: &str,
        i: usize,
        filter: &str,
        renamed: bool,
        tx: &mut Tx,
    ) -> Result<bool, ConnectorError> {
        let (entity_type, m) = &plan.types[i];
        let attrs = attributes(m, true);
        search(plan, pool, base, filter, &attrs, &[], tx, |entry| {
            self.note(i, &entry, renamed)
                .then(|| to_resource(entry, entity_type, m).map(ExportItem::Resource))
                .flatten()
        })
        .await
    }
}

/// Whether an entry's `name` changed after `usn` (a rename or a move), from its
/// `replPropertyMetaData`; `true` when the metadata is missing or unreadable.
pub(crate) fn renamed_since(entry: &Entry, usn: i64) -> bool {
    entry
        .values(METADATA)
        .first()
        .and_then(|blob| name_changed_at(blob))
        .is_none_or(|changed| changed > usn)
}

/// The local USN at which `name` last changed, from a `replPropertyMetaDataBlob` (version 1:
/// a 16-byte header with the count at offset 8, then 48-byte entries: attid, version, time,
/// invocation id, originating USN, local USN).
fn name_changed_at(blob: &[u8]) -> Option<i64> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(blob.get(at..at + 4)?.try_into().ok()?));
    if u32_at(0)? != 1 {
        return None;
    }
    let count = u32_at(8)? as usize;
    (0..count).find_map(|i| {
        let at = 16 + 48 * i;
        (u32_at(at)? == NAME_ATTID)
            .then(|| {
                Some(i64::from_le_bytes(
                    blob.get(at + 40..at + 48)?.try_into().ok()?,
                ))
            })
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(entries: &[(u32, i64)]) -> Vec<u8> {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0];
        b.extend((entries.len() as u32).to_le_bytes());
        b.extend([0; 4]);
        for (attid, usn) in entries {
            b.extend(attid.to_le_bytes());
            b.extend(1u32.to_le_bytes());
            b.extend([0; 8 + 16]);
            b.extend(usn.to_le_bytes());
            b.extend(usn.to_le_bytes());
        }
        b
    }

    fn entry(metadata: Option<Vec<u8>>) -> Entry {
        let mut attrs = Vec::new();
        if let Some(m) = metadata {
            attrs.push((METADATA.to_owned(), vec![m]));
        }
        Entry {
            dn: "CN=g,DC=example,DC=test".into(),
            attrs,
        }
    }

    #[test]
    fn the_name_attribute_tells_a_rename() {
        let b = blob(&[(0, 10), (3, 12), (NAME_ATTID, 12), (0x0009_0092, 15)]);
        assert_eq!(name_changed_at(&b), Some(12));
        assert!(renamed_since(&entry(Some(b.clone())), 11));
        assert!(!renamed_since(&entry(Some(b)), 12));
    }

    #[test]
    fn missing_or_unreadable_metadata_counts_as_renamed() {
        assert!(renamed_since(&entry(None), 100));
        assert!(renamed_since(&entry(Some(vec![1, 0, 0])), 100));
        let mut wrong_version = blob(&[(NAME_ATTID, 1)]);
        wrong_version[0] = 2;
        assert!(renamed_since(&entry(Some(wrong_version)), 100));
        let mut truncated = blob(&[(NAME_ATTID, 1)]);
        truncated.truncate(40);
        assert!(renamed_since(&entry(Some(truncated)), 100));
        assert!(renamed_since(&entry(Some(blob(&[(3, 1)]))), 100));
    }

    #[test]
    fn a_renamed_entry_links_both_sides_and_is_sent_once() {
        let mut e = entry(None);
        e.add("member".into(), vec![b"CN=a,DC=example,DC=test".to_vec()]);
        e.add("memberOf".into(), vec![b"CN=p,DC=example,DC=test".to_vec()]);
        let mut links = Links::default();
        assert!(links.note(0, &e, false));
        assert!(links.linked.is_empty());
        assert!(!links.note(0, &e, true));
        assert!(links.note(1, &e, false));
        assert_eq!(
            links.linked.values().collect::<Vec<_>>(),
            ["CN=a,DC=example,DC=test", "CN=p,DC=example,DC=test"]
        );
    }
}
