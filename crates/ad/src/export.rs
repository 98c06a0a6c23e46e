//! Export: paged searches streamed as resources, ranged retrieval of large `member` values, and
//! incremental export by `uSNChanged` with a cookie.
//!
//! The cookie records, per domain, the directory server's `invocationId` and the
//! `highestCommittedUSN` read *before* the export started: an incremental export returns every
//! entry whose `uSNChanged` is above it (an entry changed during an export is sent again next
//! time: at least once, never lost) and the tombstones in `CN=Deleted Objects` (read with the
//! show-deleted control) as [`ExportItem::Deleted`]. A cookie from another server or domain
//! controller (another `invocationId`, e.g. after a restore) is refused with `Conflict`, so the
//! caller runs a complete export. Known limitation: an entry moved *out of* a requested scope
//! is not reported as deleted by a scoped incremental export.

use crate::connector::Inner;
use crate::errors::LdapFailure;
use crate::export_links::{Links, METADATA, renamed_since};
use crate::mapping::EntityMapping;
use crate::pool::{Entry, Handle, SHOW_DELETED_OID, ServerPool, control};
use autoprov_connector::dn::{Dn, Rdn, split_rdn};
use autoprov_connector::schema::ValueType;
use autoprov_connector::{
    ConnectorError, ErrorKind, ExportCookie, ExportItem, ExportMode, ExportRequest, ExportStream,
    Operation, schema,
};
use autoprov_core::{PropertyValue, Reference, Resource, ScalarValue, StableId};
use base64::Engine as _;
use futures::channel::mpsc;
use futures::{SinkExt as _, StreamExt as _};
use ldap3::Scope;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const COOKIE_PREFIX: &str = "adusn1:";

/// Attributes never exported (secrets, or given another way).
const NOT_EXPORTED: &[&str] = &[
    "objectguid",
    "distinguishedname",
    "unicodepwd",
    "userpassword",
    "ntpwdhistory",
    "lmpwdhistory",
    "supplementalcredentials",
    "dbcspwd",
    "memberof",
    "member",
    "replpropertymetadata",
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cookie {
    /// Per domain (normalized base DN): the DC's invocationId and the USN watermark.
    servers: BTreeMap<String, Mark>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    dsa: String,
    usn: i64,
}

impl Cookie {
    fn encode(&self) -> ExportCookie {
        let json = serde_json::to_vec(self).unwrap_or_default();
        ExportCookie(format!(
            "{COOKIE_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        ))
    }

    fn decode(cookie: &ExportCookie) -> Option<Self> {
        let data = cookie.0.strip_prefix(COOKIE_PREFIX)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(data)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

fn conflict(message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(ErrorKind::Conflict, Operation::Export, message)
}

/// The USN watermark and identity of a server's domain controller.
async fn mark_of(pool: &ServerPool) -> Result<Mark, ConnectorError> {
    let root = pool
        .read(
            "",
            &["highestCommittedUSN".to_owned(), "dsServiceName".to_owned()],
            &[],
        )
        .await
        .map_err(|f| f.into_error(Operation::Export, &pool.url))?
        .ok_or_else(|| {
            ConnectorError::new(ErrorKind::Unexpected, Operation::Export, "no rootDSE")
                .with_target(pool.url.clone())
        })?;
    let usn = root
        .text("highestCommittedUSN")
        .and_then(|u| u.trim().parse().ok())
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Unexpected,
                Operation::Export,
                "the rootDSE has no highestCommittedUSN",
            )
            .with_target(pool.url.clone())
        })?;
    // The DC's identity goes into the cookie; a failed read must fail the export rather than
    // record a different identity, which would make the next incremental export refuse the
    // cookie as coming from another DC.
    let dsa = match root.text("dsServiceName") {
        Some(service) => pool
            .read(
                &service,
                &["invocationId".to_owned(), "objectGUID".to_owned()],
                &[],
            )
            .await
            .map_err(|f| f.into_error(Operation::Export, &pool.url))?
            .and_then(|e| {
                e.values("invocationId")
                    .first()
                    .and_then(|b| crate::guid::guid_to_string(b))
                    .or_else(|| e.guid())
            })
            .unwrap_or(service),
        None => pool.url.clone(),
    };
    Ok(Mark { dsa, usn })
}

/// The cookie an incremental export started now would start from: each domain's watermark,
/// read from its rootDSE (`highestCommittedUSN`) without exporting anything.
pub(crate) async fn latest_cookie(inner: &Inner) -> Result<ExportCookie, ConnectorError> {
    let mut cookie = Cookie::default();
    for pool in &inner.servers {
        cookie.servers.insert(pool.base.key(), mark_of(pool).await?);
    }
    Ok(cookie.encode())
}

pub(crate) struct Plan {
    servers: Vec<(Arc<ServerPool>, String, Mark, Option<i64>)>,
    pub(crate) types: Vec<(String, EntityMapping)>,
    scope: Option<Dn>,
    page_size: u32,
    request_timeout: std::time::Duration,
}

pub(crate) async fn export(
    inner: Arc<Inner>,
    request: ExportRequest,
) -> Result<ExportStream, ConnectorError> {
    let mut types = Vec::new();
    if request.entity_types.is_empty() {
        types.extend(
            inner
                .settings
                .entity_types
                .iter()
                .map(|(k, m)| (k.clone(), m.clone())),
        );
    } else {
        for et in &request.entity_types {
            let (k, m) = inner
                .settings
                .entity_types
                .get_key_value(et.as_str())
                .ok_or_else(|| {
                    ConnectorError::new(
                        ErrorKind::InvalidOrder,
                        Operation::Export,
                        format!("entity type `{et}` is not mapped by this AD connection"),
                    )
                })?;
            types.push((k.clone(), m.clone()));
        }
    }
    let scope = match &request.scope {
        Some(s) => Some(Dn::parse(s).map_err(|e| {
            ConnectorError::new(
                ErrorKind::InvalidOrder,
                Operation::Export,
                format!("scope: {e}"),
            )
        })?),
        None => None,
    };
    let previous = match &request.mode {
        ExportMode::Complete => None,
        ExportMode::Incremental(cookie) => Some(Cookie::decode(cookie).ok_or_else(|| {
            conflict("the export cookie is not one this AD package issued; run a complete export")
        })?),
        other => {
            return Err(ConnectorError::new(
                ErrorKind::Unsupported,
                Operation::Export,
                format!("export mode {other:?}"),
            ));
        }
    };
    let mut servers = Vec::new();
    for pool in &inner.servers {
        let base = match &scope {
            Some(s) if s.is_within(&pool.base) => s.to_string(),
            Some(s) if pool.base.is_within(s) => pool.base_dn.clone(),
            Some(_) => continue,
            None => pool.base_dn.clone(),
        };
        let mark = mark_of(pool).await?;
        let since = match &previous {
            None => None,
            Some(cookie) => {
                let old = cookie.servers.get(&pool.base.key()).ok_or_else(|| {
                    conflict(format!(
                        "the export cookie has no watermark for `{}`; run a complete export",
                        pool.base_dn
                    ))
                })?;
                if old.dsa != mark.dsa {
                    return Err(conflict(format!(
                        "the export cookie was issued by another domain controller ({} ≠ {}); run a complete export",
                        old.dsa, mark.dsa
                    )));
                }
                if old.usn > mark.usn {
                    return Err(conflict(
                        "the export cookie is ahead of the directory; run a complete export",
                    ));
                }
                Some(old.usn)
            }
        };
        servers.push((pool.clone(), base, mark, since));
    }
    if servers.is_empty() {
        return Err(ConnectorError::new(
            ErrorKind::InvalidOrder,
            Operation::Export,
            format!(
                "scope `{}` is outside every configured base DN",
                request.scope.unwrap_or_default()
            ),
        ));
    }
    let plan = Plan {
        servers,
        types,
        scope,
        page_size: inner.settings.page_size,
        request_timeout: inner.settings.request_timeout,
    };
    // Items travel in batches: one wake-up of the consumer per batch rather than per entry.
    // At most a few batches are in flight, so memory stays bounded whatever the directory's size.
    let (tx, rx) = mpsc::channel::<Vec<Item>>(4);
    tokio::spawn(async move {
        let mut tx = Tx {
            tx,
            batch: Vec::with_capacity(BATCH),
        };
        let last = match run(&plan, &mut tx).await {
            Ok(Some(cookie)) => Ok(ExportItem::Complete { cookie }),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        if tx.send(last).await {
            tx.flush().await;
        }
    });
    Ok(rx.flat_map(futures::stream::iter).boxed())
}

type Item = Result<ExportItem, ConnectorError>;

const BATCH: usize = 64;

/// The sending side of an export stream.
pub(crate) struct Tx {
    tx: mpsc::Sender<Vec<Item>>,
    batch: Vec<Item>,
}

impl Tx {
    /// Queues an item; `false` when the receiver went away.
    async fn send(&mut self, item: Item) -> bool {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush().await
        } else {
            true
        }
    }

    /// Sends what is queued; `false` when the receiver went away.
    async fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.tx.send(batch).await.is_ok()
    }
}

/// Runs the plan; `Ok(None)` when the receiver went away.
async fn run(plan: &Plan, tx: &mut Tx) -> Result<Option<ExportCookie>, ConnectorError> {
    let mut cookie = Cookie::default();
    for (pool, base, mark, since) in &plan.servers {
        let mut links = Links::default();
        for (i, (entity_type, m)) in plan.types.iter().enumerate() {
            let filter = match since {
                Some(usn) => format!("(&{}(uSNChanged>={}))", m.filter, usn + 1),
                None => m.filter.clone(),
            };
            let attrs = attributes(m, since.is_some());
            let sent = search(plan, pool, base, &filter, &attrs, &[], tx, |entry| {
                if let Some(usn) = since {
                    links.note(i, &entry, renamed_since(&entry, *usn));
                }
                to_resource(entry, entity_type, m).map(ExportItem::Resource)
            })
            .await?;
            if !sent {
                return Ok(None);
            }
        }
        if let Some(usn) = since
            && (!links.send_renamed(plan, pool, base, *usn, tx).await?
                || !deleted(plan, pool, *usn, tx).await?)
        {
            return Ok(None);
        }
        cookie.servers.insert(pool.base.key(), mark.clone());
    }
    Ok(Some(cookie.encode()))
}

/// The attributes an export reads for an entity type. An incremental export also reads both
/// sides of memberships and the replication metadata, to send again what a rename changed
/// (see [`crate::export_links`]).
pub(crate) fn attributes(m: &EntityMapping, incremental: bool) -> Vec<String> {
    let mut attrs: BTreeSet<String> = m.export_attributes.iter().cloned().collect();
    attrs.insert("objectGUID".into());
    if m.enabled_property.is_some() {
        attrs.insert("userAccountControl".into());
    }
    if m.membership.is_some() || incremental {
        attrs.insert("memberOf".into());
    }
    if incremental {
        attrs.insert(METADATA.into());
    }
    if m.object_classes
        .iter()
        .any(|c| c.eq_ignore_ascii_case("group"))
        && !attrs
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("member;range="))
    {
        attrs.insert("member".into());
    }
    attrs.into_iter().collect()
}

/// One paged search, streamed; ranged `member` values are completed on the way. Returns
/// `Ok(false)` when the receiver went away.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn search(
    plan: &Plan,
    pool: &ServerPool,
    base: &str,
    filter: &str,
    attrs: &[String],
    controls: &[ldap3::controls::RawControl],
    tx: &mut Tx,
    convert: impl FnMut(Entry) -> Option<ExportItem>,
) -> Result<bool, ConnectorError> {
    let fail = |f: LdapFailure| f.into_error(Operation::Export, base);
    let handle = pool.handle().await.map_err(fail)?;
    match stream_search(
        plan, pool, &handle, base, filter, attrs, controls, tx, convert,
    )
    .await
    {
        Ok(more) => Ok(more),
        Err((failure, on_this_connection)) => {
            if on_this_connection {
                pool.failed(&handle, &failure).await;
            }
            Err(fail(failure))
        }
    }
}

/// The search of [`search`] on one connection. A failure says whether it happened on that
/// connection (so the caller can drop it) or in a ranged-attribute read, which goes through the
/// pool and has already been handled there.
#[allow(clippy::too_many_arguments)]
async fn stream_search(
    plan: &Plan,
    pool: &ServerPool,
    handle: &Handle,
    base: &str,
    filter: &str,
    attrs: &[String],
    controls: &[ldap3::controls::RawControl],
    tx: &mut Tx,
    mut convert: impl FnMut(Entry) -> Option<ExportItem>,
) -> Result<bool, (LdapFailure, bool)> {
    let here = |e: ldap3::LdapError| (LdapFailure::from(e), true);
    let mut ldap = handle.ldap.clone();
    if !controls.is_empty() {
        ldap.with_controls(controls.to_vec());
    }
    let adapters: Vec<Box<dyn Adapter<String, Vec<String>>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(plan.page_size as i32)),
    ];
    let mut stream = ldap
        .with_timeout(plan.request_timeout)
        .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
        .await
        .map_err(here)?;
    loop {
        let next = stream.next().await.map_err(here)?;
        let Some(raw) = next else { break };
        let mut entry = Entry::from_result(raw).map_err(here)?;
        complete_ranges(pool, &mut entry)
            .await
            .map_err(|f| (f, false))?;
        let item = match convert(entry) {
            Some(item) => Ok(item),
            None => continue,
        };
        if !tx.send(item).await {
            let id = stream.ldap_handle().last_id();
            let _ = stream.ldap_handle().abandon(id).await;
            return Ok(false);
        }
    }
    let res = stream.finish().await;
    if !tx.flush().await {
        return Ok(false);
    }
    match res.rc {
        0 | 32 => Ok(true),
        rc => Err((
            LdapFailure::Result {
                rc,
                text: res.text,
                matched: res.matched,
            },
            true,
        )),
    }
}

/// Fetches the rest of every ranged attribute (`member;range=0-1499`) of an entry and stores
/// the complete value list under the plain attribute name.
async fn complete_ranges(pool: &ServerPool, entry: &mut Entry) -> Result<(), LdapFailure> {
    let ranged: Vec<String> = entry
        .attrs
        .iter()
        .map(|(name, _)| name)
        .filter(|name| name.contains(";range="))
        .cloned()
        .collect();
    for key in ranged {
        let Some((name, mut values)) = entry.remove(&key) else {
            continue;
        };
        let (attr, range) = name.split_once(";range=").unwrap_or((&name, "*"));
        let attr = attr.to_owned();
        let mut high = range.split('-').nth(1).unwrap_or("*").to_owned();
        let mut guard = 0;
        while high != "*" && guard < 100_000 {
            guard += 1;
            let Ok(last) = high.parse::<u64>() else { break };
            let request = format!("{attr};range={}-*", last + 1);
            let Some(more) = pool.read(&entry.dn, &[request], &[]).await? else {
                break;
            };
            let Some((more_name, more_values)) = more.attrs.into_iter().find(|(n, _)| {
                n.to_ascii_lowercase()
                    .starts_with(&format!("{};range=", attr.to_ascii_lowercase()))
            }) else {
                break;
            };
            values.extend(more_values);
            high = more_name
                .split_once(";range=")
                .and_then(|(_, r)| r.split('-').nth(1))
                .unwrap_or("*")
                .to_owned();
        }
        entry.add(attr, values);
    }
    Ok(())
}

fn references(values: Vec<String>) -> BTreeSet<Reference> {
    values.into_iter().map(Reference::dn).collect()
}

/// Reads LDAP generalized time as AD writes it (`20261201195600.0Z`, UTC).
pub(crate) fn generalized_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S%.fZ")
        .ok()
        .map(|d| d.and_utc())
}

/// A single attribute value as a scalar of the property's type; the bytes are moved, not
/// copied, when they are text.
fn typed(kind: ValueType, raw: Vec<u8>) -> ScalarValue {
    if kind == ValueType::Binary {
        return ScalarValue::Binary(raw);
    }
    let text = match String::from_utf8(raw) {
        Ok(text) => text,
        Err(e)
            if matches!(
                kind,
                ValueType::Integer | ValueType::Bool | ValueType::DateTime
            ) =>
        {
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
        // Text, and DN-valued or later types: what is not UTF-8 stays bytes.
        Err(e) => return ScalarValue::Binary(e.into_bytes()),
    };
    match kind {
        ValueType::Integer => match text.trim().parse() {
            Ok(n) => ScalarValue::Integer(n),
            Err(_) => ScalarValue::String(text),
        },
        ValueType::Bool => match text.as_str() {
            "TRUE" => ScalarValue::Bool(true),
            "FALSE" => ScalarValue::Bool(false),
            _ => ScalarValue::String(text),
        },
        ValueType::DateTime => match generalized_time(&text) {
            Some(t) => ScalarValue::DateTime(t),
            None => ScalarValue::String(text),
        },
        _ => ScalarValue::String(text),
    }
}

/// Values as text, moved out of their bytes when they are UTF-8.
fn into_texts(values: Vec<Vec<u8>>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| {
            String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
        })
        .collect()
}

/// An entry as a resource: `id` = DN, `StableId` = objectGUID, `parentdn`, `enabled`,
/// `memberOf` / `member` and DN-valued properties as references, single-valued attributes as
/// scalars. Never a password. The entry's values are moved into the resource.
pub(crate) fn to_resource(
    mut entry: Entry,
    entity_type: &str,
    m: &EntityMapping,
) -> Option<Resource> {
    let stable_id = entry.guid().map(StableId::new);
    let parent = split_rdn(&entry.dn).map(|(_, parent)| Reference::dn(parent));
    let mut r = Resource::new(std::mem::take(&mut entry.dn)).with_entity_type(entity_type);
    r.stable_id = stable_id;
    if let Some(parent) = parent {
        r.values
            .insert(m.parent_property.clone(), PropertyValue::Reference(parent));
    }
    if let Some(enabled) = &m.enabled_property
        && let Some(uac) = entry
            .text("userAccountControl")
            .and_then(|u| u.trim().parse::<i64>().ok())
    {
        r.values.insert(
            enabled.clone(),
            PropertyValue::Scalar(ScalarValue::Bool(
                uac & crate::fulfill::UF_ACCOUNTDISABLE == 0,
            )),
        );
    }
    let mut take = |attr: &str| {
        entry
            .remove(attr)
            .map(|(_, values)| references(into_texts(values)))
            .unwrap_or_default()
    };
    let member_of = take("memberof");
    let member = take("member");
    if let Some(ms) = &m.membership {
        r.values
            .insert(ms.property.clone(), PropertyValue::References(member_of));
    }
    if m.object_classes
        .iter()
        .any(|c| c.eq_ignore_ascii_case("group"))
    {
        r.values.insert(
            schema::MEMBERS.to_owned(),
            PropertyValue::References(member),
        );
    }
    for (name, values) in entry.attrs {
        if NOT_EXPORTED.iter().any(|n| n.eq_ignore_ascii_case(&name)) || name.contains(';') {
            continue;
        }
        let property = m.property_of(&name);
        if r.values.contains_key(property) {
            continue;
        }
        if m.is_reference(property) {
            let mut dns = into_texts(values);
            let value = if dns.len() == 1 {
                PropertyValue::Reference(Reference::dn(dns.remove(0)))
            } else {
                PropertyValue::References(references(dns))
            };
            r.values.insert(property.to_owned(), value);
            continue;
        }
        // Multi-valued attributes have no scalar form in the model: left out.
        let Ok([value]) = <[Vec<u8>; 1]>::try_from(values) else {
            continue;
        };
        let kind = m.kind_of(property);
        r.values.insert(
            property.to_owned(),
            PropertyValue::Scalar(typed(kind, value)),
        );
    }
    Some(r)
}

/// Streams the tombstones changed since `usn` as deletions.
async fn deleted(
    plan: &Plan,
    pool: &ServerPool,
    usn: i64,
    tx: &mut Tx,
) -> Result<bool, ConnectorError> {
    let base = format!("CN=Deleted Objects,{}", pool.base_dn);
    let controls = [control(SHOW_DELETED_OID)];
    let attrs: Vec<String> = [
        "objectGUID",
        "lastKnownParent",
        "msDS-LastKnownRDN",
        "objectClass",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (_, m) in &plan.types {
        let classes: String = m
            .object_classes
            .iter()
            .map(|c| format!("(objectClass={})", ldap3::ldap_escape(c.as_str())))
            .collect();
        let filter = format!("(&(isDeleted=TRUE){classes}(uSNChanged>={}))", usn + 1);
        let scope = plan.scope.clone();
        let sent = search(plan, pool, &base, &filter, &attrs, &controls, tx, |entry| {
            let guid = entry.guid()?;
            if !seen.insert(guid.clone()) {
                return None;
            }
            let tomb = Dn::parse(&entry.dn).ok()?;
            // A tombstone is named `CN=<name>\0ADEL:<guid>`: the name is before the line feed.
            let rdn_value = entry.text("msDS-LastKnownRDN").or_else(|| {
                tomb.rdn_value()
                    .map(|v| v.split('\n').next().unwrap_or(v).to_owned())
            })?;
            let attr = tomb.rdn_attribute().unwrap_or("CN").to_owned();
            let id = match entry
                .text("lastKnownParent")
                .and_then(|p| Dn::parse(&p).ok())
            {
                Some(parent) => {
                    if let Some(scope) = &scope
                        && !parent.is_within(scope)
                    {
                        return None;
                    }
                    parent.child(Rdn::new(attr, rdn_value)).to_string()
                }
                None => entry.dn.clone(),
            };
            Some(ExportItem::Deleted {
                id: id.into(),
                stable_id: Some(StableId::new(guid)),
            })
        })
        .await?;
        if !sent {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_foreign_ones_are_refused() {
        let mut c = Cookie::default();
        c.servers.insert(
            "dc=example,dc=test".into(),
            Mark {
                dsa: "c5c26e30-35d3-43ca-9ea4-44c41a57ea9c".into(),
                usn: 4242,
            },
        );
        let encoded = c.encode();
        assert!(encoded.0.starts_with(COOKIE_PREFIX));
        assert_eq!(Cookie::decode(&encoded), Some(c));
        assert_eq!(Cookie::decode(&ExportCookie("memory:17".into())), None);
        assert_eq!(
            Cookie::decode(&ExportCookie(format!("{COOKIE_PREFIX}!!"))),
            None
        );
    }

    #[test]
    fn entries_become_resources_without_secrets() {
        let mut e = Entry {
            dn: "CN=Doe\\, John,OU=Sales,DC=example,DC=test".into(),
            ..Entry::default()
        };
        let mut put = |name: &str, values: Vec<&[u8]>| {
            e.add(
                name.to_owned(),
                values.into_iter().map(<[u8]>::to_vec).collect(),
            );
        };
        put(
            "objectGUID",
            vec![&[
                0x30, 0x6e, 0xc2, 0xc5, 0xd3, 0x35, 0xca, 0x43, 0x9e, 0xa4, 0x44, 0xc4, 0x1a, 0x57,
                0xea, 0x9c,
            ]],
        );
        put("userAccountControl", vec![b"514"]);
        put("sAMAccountName", vec![b"jdoe"]);
        put(
            "memberOf",
            vec![b"CN=G1,DC=example,DC=test", b"CN=G2,DC=example,DC=test"],
        );
        put("manager", vec![b"CN=Boss,DC=example,DC=test"]);
        put("objectClass", vec![b"top", b"user"]);
        put("unicodePwd", vec![b"x"]);
        let r = to_resource(e, "user", &EntityMapping::user()).unwrap();
        assert_eq!(r.id.as_str(), "CN=Doe\\, John,OU=Sales,DC=example,DC=test");
        assert_eq!(
            r.stable_id.as_ref().unwrap().as_str(),
            "c5c26e30-35d3-43ca-9ea4-44c41a57ea9c"
        );
        assert_eq!(
            r.get("parentdn")
                .unwrap()
                .as_reference()
                .unwrap()
                .dn_value(),
            Some("OU=Sales,DC=example,DC=test")
        );
        assert_eq!(
            r.get("enabled"),
            Some(&PropertyValue::Scalar(ScalarValue::Bool(false)))
        );
        assert_eq!(r.get("memberOf").unwrap().as_references().unwrap().len(), 2);
        assert!(r.get("manager").unwrap().as_reference().is_some());
        assert_eq!(
            r.get("userAccountControl"),
            Some(&PropertyValue::Scalar(ScalarValue::Integer(514)))
        );
        assert!(r.get("unicodePwd").is_none());
        assert!(r.get("objectClass").is_none());
        assert!(r.get("password").is_none());
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            typed(ValueType::Integer, b"42".to_vec()),
            ScalarValue::Integer(42)
        );
        assert_eq!(
            typed(ValueType::Bool, b"TRUE".to_vec()),
            ScalarValue::Bool(true)
        );
        assert!(matches!(
            typed(ValueType::DateTime, b"20260131080000.0Z".to_vec()),
            ScalarValue::DateTime(_)
        ));
        assert_eq!(
            typed(ValueType::String, vec![0xff, 0]),
            ScalarValue::Binary(vec![0xff, 0])
        );
        assert_eq!(
            typed(ValueType::Integer, b" 7 ".to_vec()),
            ScalarValue::Integer(7)
        );
        assert_eq!(
            typed(ValueType::Integer, b"x7".to_vec()),
            ScalarValue::String("x7".into())
        );
        assert_eq!(
            typed(ValueType::Integer, vec![0xff]),
            ScalarValue::String("\u{fffd}".into())
        );
        assert_eq!(
            typed(ValueType::Bool, b"yes".to_vec()),
            ScalarValue::String("yes".into())
        );
        assert_eq!(
            typed(ValueType::DateTime, b"soon".to_vec()),
            ScalarValue::String("soon".into())
        );
        assert_eq!(
            typed(ValueType::Binary, b"ab".to_vec()),
            ScalarValue::Binary(b"ab".to_vec())
        );
        assert_eq!(
            typed(ValueType::String, "é".as_bytes().to_vec()),
            ScalarValue::String("é".into())
        );
    }
}
