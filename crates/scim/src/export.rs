//! Exports: pages of `startIndex`/`count` (1-based, until `totalResults`), complete or
//! incremental by `meta.lastModified`, with sweeps of ids to detect deletions.
//!
//! - A complete export reads every resource of the requested types, page by page, and ends
//!   with a cookie that holds the greatest `meta.lastModified` it saw.
//! - An incremental export reads only `meta.lastModified gt "<cookie's>"`. `lastModified`
//!   cannot show deletions, so every [`FullSweepEvery`](crate::ScimSettings::full_sweep_every)
//!   increments (default: each one) it also pages through every id (`attributes=id`) and
//!   reports the ids of the previous sweep (or of the complete export) that are gone as
//!   [`ExportItem::Deleted`].
//! - The ids of the last sweep are kept in the connection's memory (ids only, never whole
//!   resources), under the cookie. A cookie this connection does not hold (another
//!   connection's, one from before a restart, or one too old) is a `Conflict`: the host then
//!   runs a complete export.
//! - Users carry `memberOf` (references to their groups). Services do not keep `User.groups`
//!   reliably, so it is computed from the groups' `members`, read (ids only) before the users.

use crate::connector::ScimConnector;
use crate::discovery::{Kind, ResourceType};
use autoprov_connector::schema::{DN_KEY, MEMBER_OF, MEMBERS, STABLE_ID_KEY};
use autoprov_connector::{
    ConnectorError, ErrorKind, ExportCookie, ExportItem, ExportMode, ExportRequest, ExportStream,
    Operation, ValueType,
};
use autoprov_core::{PropertyValue, Reference, Resource, ScalarValue, StableId};
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// How many cookies' id sets a connection keeps.
const KEPT_STATES: usize = 4;

/// The ids known at a cookie, per resource kind the export covered.
type KnownIds = BTreeMap<KindKey, BTreeSet<String>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KindKey {
    User,
    Group,
}

fn key(kind: Kind) -> KindKey {
    match kind {
        Kind::User => KindKey::User,
        Kind::Group => KindKey::Group,
    }
}

/// The id sets of the latest cookies of one connection.
pub(crate) struct CookieStates {
    instance: String,
    seq: AtomicU64,
    states: Mutex<VecDeque<(u64, Arc<KnownIds>)>>,
}

impl CookieStates {
    pub(crate) fn new() -> Self {
        Self {
            instance: format!("{:016x}", rand::random::<u64>()),
            seq: AtomicU64::new(0),
            states: Mutex::new(VecDeque::new()),
        }
    }

    fn store(&self, known: KnownIds) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.push_back((seq, Arc::new(known)));
        while states.len() > KEPT_STATES {
            states.pop_front();
        }
        seq
    }

    fn get(&self, seq: u64) -> Option<Arc<KnownIds>> {
        self.states
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, k)| k.clone())
    }
}

/// A parsed cookie: `scim1.<instance>.<seq>.<increments since the sweep>.<lastModified|->`.
struct Cookie {
    instance: String,
    seq: u64,
    since_sweep: u32,
    modified: Option<String>,
}

impl Cookie {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(5, '.');
        if parts.next()? != "scim1" {
            return None;
        }
        let instance = parts.next()?.to_owned();
        let seq = parts.next()?.parse().ok()?;
        let since_sweep = parts.next()?.parse().ok()?;
        let modified = match parts.next()? {
            "-" => None,
            m => Some(m.to_owned()),
        };
        Some(Self {
            instance,
            seq,
            since_sweep,
            modified,
        })
    }

    fn text(&self) -> String {
        format!(
            "scim1.{}.{}.{}.{}",
            self.instance,
            self.seq,
            self.since_sweep,
            self.modified.as_deref().unwrap_or("-")
        )
    }
}

enum Phase {
    /// Read the groups' members (ids only) for the users' `memberOf`.
    MemberMap,
    /// Page through type `index` from `start`.
    Page {
        index: usize,
        start: u64,
    },
    /// Sweep the ids of every type and report deletions.
    Sweep,
    /// Emit the cookie.
    Finish,
    End,
}

struct Run {
    conn: ScimConnector,
    types: Vec<ResourceType>,
    /// The cookie of an incremental export: its lastModified and known ids.
    since: Option<(Option<String>, Arc<KnownIds>, u32)>,
    sweep: bool,
    phase: Phase,
    queue: VecDeque<ExportItem>,
    member_of: HashMap<String, BTreeSet<String>>,
    max_modified: Option<(chrono::DateTime<chrono::FixedOffset>, String)>,
    seen: KnownIds,
}

impl ScimConnector {
    pub(crate) async fn export_stream(
        &self,
        request: ExportRequest,
    ) -> Result<ExportStream, ConnectorError> {
        let op = Operation::Export;
        if let Some(scope) = &request.scope {
            return Err(ConnectorError::unsupported(
                op,
                format!("SCIM has no containers: an export cannot be scoped to {scope:?}"),
            ));
        }
        let all: Vec<ResourceType> = [self.groups(), self.users()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let types: Vec<ResourceType> = if request.entity_types.is_empty() {
            all
        } else {
            let mut chosen = Vec::new();
            for t in &request.entity_types {
                let Some(rt) = self.inner.service.resource_type(t.as_str()) else {
                    return Err(ConnectorError::new(
                        ErrorKind::InvalidOrder,
                        op,
                        format!(
                            "entity type `{t}` is not served by this SCIM service (it has {})",
                            self.entity_types().join(", ")
                        ),
                    ));
                };
                if !chosen.iter().any(|c: &ResourceType| c.kind == rt.kind) {
                    chosen.push(rt.clone());
                }
            }
            chosen.sort_by_key(|t| t.kind == Kind::User);
            chosen
        };
        let since = match &request.mode {
            ExportMode::Complete => None,
            ExportMode::Incremental(cookie) => {
                if !self.inner.info.capabilities.incremental_export {
                    return Err(ConnectorError::unsupported(
                        op,
                        "the service does not support filters, needed for incremental exports",
                    ));
                }
                let conflict = |why: &str| {
                    ConnectorError::new(
                        ErrorKind::Conflict,
                        op,
                        format!("unusable export cookie ({why}): run a complete export"),
                    )
                };
                let c = Cookie::parse(&cookie.0)
                    .ok_or_else(|| conflict("not a cookie of the SCIM package"))?;
                if c.instance != self.inner.cookies.instance {
                    return Err(conflict(
                        "it belongs to another connection, or to this one before a restart",
                    ));
                }
                let known = self
                    .inner
                    .cookies
                    .get(c.seq)
                    .ok_or_else(|| conflict("it is too old"))?;
                if let Some(t) = types.iter().find(|t| !known.contains_key(&key(t.kind))) {
                    return Err(conflict(&format!(
                        "its export did not cover `{}`",
                        t.entity_type
                    )));
                }
                Some((c.modified, known, c.since_sweep))
            }
            _ => {
                return Err(ConnectorError::unsupported(op, "unknown export mode"));
            }
        };
        let sweep = since
            .as_ref()
            .is_some_and(|(_, _, n)| n + 1 >= self.inner.settings.full_sweep_every);
        let needs_map =
            self.inner.info.capabilities.membership && types.iter().any(|t| t.kind == Kind::User);
        let run = Run {
            conn: self.clone(),
            types,
            since,
            sweep,
            phase: if needs_map {
                Phase::MemberMap
            } else {
                Phase::Page { index: 0, start: 1 }
            },
            queue: VecDeque::new(),
            member_of: HashMap::new(),
            max_modified: None,
            seen: BTreeMap::new(),
        };
        Ok(Box::pin(futures::stream::unfold(
            run,
            |mut run| async move {
                match run.step().await {
                    Ok(Some(item)) => Some((Ok(item), run)),
                    Ok(None) => None,
                    Err(e) => {
                        run.phase = Phase::End;
                        run.queue.clear();
                        Some((Err(e), run))
                    }
                }
            },
        )))
    }
}

impl ScimConnector {
    /// The cookie an incremental export started now would start from, without exporting a
    /// resource: SCIM has no change counter and no standard clock endpoint, so it is read from
    /// the service's own data — a sweep of every type's ids with their `meta` (`attributes=id,
    /// meta`, a few bytes a resource): the greatest `meta.lastModified` (the service's time of
    /// its latest write), and the ids known now (kept like a complete export's, for the
    /// deletions the next increment reports). `None` when the service cannot filter (no
    /// incremental export).
    pub(crate) async fn latest_cookie_now(&self) -> Result<Option<ExportCookie>, ConnectorError> {
        if !self.inner.info.capabilities.incremental_export {
            return Ok(None);
        }
        let types: Vec<ResourceType> = [self.groups(), self.users()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let mut run = Run {
            conn: self.clone(),
            types: types.clone(),
            since: None,
            sweep: false,
            phase: Phase::End,
            queue: VecDeque::new(),
            member_of: HashMap::new(),
            max_modified: None,
            seen: BTreeMap::new(),
        };
        for rt in &types {
            let items = run.list_ids(rt, "id,meta").await?;
            let ids = run.seen.entry(key(rt.kind)).or_default();
            ids.extend(
                items
                    .iter()
                    .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned)),
            );
            for item in &items {
                run.note_modified(item);
            }
        }
        Ok(Some(ExportCookie(run.finish())))
    }
}

impl Run {
    async fn step(&mut self) -> Result<Option<ExportItem>, ConnectorError> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(Some(item));
            }
            match std::mem::replace(&mut self.phase, Phase::End) {
                Phase::End => return Ok(None),
                Phase::MemberMap => {
                    let groups = self.conn.groups().expect("membership needs groups").clone();
                    for g in self.list_ids(&groups, "id,members").await? {
                        let Some(gid) = g.get("id").and_then(Value::as_str) else {
                            continue;
                        };
                        for m in members(&g) {
                            self.member_of
                                .entry(m.to_owned())
                                .or_default()
                                .insert(gid.to_owned());
                        }
                    }
                    self.phase = Phase::Page { index: 0, start: 1 };
                }
                Phase::Page { index, start } => {
                    let Some(rt) = self.types.get(index).cloned() else {
                        self.phase = if self.sweep {
                            Phase::Sweep
                        } else {
                            Phase::Finish
                        };
                        continue;
                    };
                    let count = self.conn.page_size();
                    let mut query = vec![
                        ("startIndex", start.to_string()),
                        ("count", count.to_string()),
                    ];
                    if let Some((Some(t), _, _)) = &self.since {
                        query.push((
                            "filter",
                            format!("meta.lastModified gt {}", crate::connector::literal(t)),
                        ));
                    }
                    let (items, total) = self.list_page(&rt, &query).await?;
                    let n = items.len() as u64;
                    for item in items {
                        self.note_modified(&item);
                        let resource = self.resource(&rt, &item)?;
                        self.seen
                            .entry(key(rt.kind))
                            .or_default()
                            .insert(resource.id.as_str().to_owned());
                        self.queue.push_back(ExportItem::Resource(resource));
                    }
                    self.seen.entry(key(rt.kind)).or_default();
                    self.phase = if n == 0 || total.is_none_or(|t| start - 1 + n >= t) {
                        Phase::Page {
                            index: index + 1,
                            start: 1,
                        }
                    } else {
                        Phase::Page {
                            index,
                            start: start + n,
                        }
                    };
                }
                Phase::Sweep => {
                    let known = self
                        .since
                        .as_ref()
                        .expect("a sweep is incremental")
                        .1
                        .clone();
                    let mut swept = BTreeMap::new();
                    for rt in self.types.clone() {
                        let ids: BTreeSet<String> = self
                            .list_ids(&rt, "id")
                            .await?
                            .iter()
                            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
                            .collect();
                        for gone in known
                            .get(&key(rt.kind))
                            .into_iter()
                            .flatten()
                            .filter(|id| !ids.contains(*id))
                        {
                            self.queue.push_back(ExportItem::Deleted {
                                id: gone.as_str().into(),
                                stable_id: Some(StableId::new(gone.clone())),
                            });
                        }
                        swept.insert(key(rt.kind), ids);
                    }
                    self.seen = swept;
                    self.phase = Phase::Finish;
                }
                Phase::Finish => {
                    let cookie = self.finish();
                    self.queue.push_back(ExportItem::Complete {
                        cookie: ExportCookie(cookie),
                    });
                    self.phase = Phase::End;
                }
            }
        }
    }

    /// One page of a list request: its resources and `totalResults`, when given.
    async fn list_page(
        &self,
        rt: &ResourceType,
        query: &[(&str, String)],
    ) -> Result<(Vec<Value>, Option<u64>), ConnectorError> {
        let page = self
            .conn
            .send(
                Operation::Export,
                Method::GET,
                &rt.endpoint,
                query,
                None,
                None,
            )
            .await?;
        let total = page.body.get("totalResults").and_then(Value::as_u64);
        let items = match page.body.get("Resources") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        Ok((items, total))
    }

    /// Every resource of a type with only some attributes (a sweep, the member map).
    async fn list_ids(
        &self,
        rt: &ResourceType,
        attributes: &str,
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut out = Vec::new();
        let mut start = 1u64;
        let count = self.conn.page_size();
        loop {
            let query = vec![
                ("startIndex", start.to_string()),
                ("count", count.to_string()),
                ("attributes", attributes.to_owned()),
            ];
            let (items, total) = self.list_page(rt, &query).await?;
            let n = items.len() as u64;
            out.extend(items);
            if n == 0 || total.is_none_or(|t| start - 1 + n >= t) {
                return Ok(out);
            }
            start += n;
        }
    }

    fn note_modified(&mut self, item: &Value) {
        let Some(text) = item
            .get("meta")
            .and_then(|m| m.get("lastModified"))
            .and_then(Value::as_str)
        else {
            return;
        };
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) else {
            return;
        };
        if self.max_modified.as_ref().is_none_or(|(m, _)| at > *m) {
            self.max_modified = Some((at, text.to_owned()));
        }
    }

    /// Stores the ids known after this export and returns the new cookie.
    fn finish(&mut self) -> String {
        let (previous, since_sweep) = match &self.since {
            None => (None, 0),
            Some((t, _, _)) if self.sweep => (t.clone(), 0),
            Some((t, _, n)) => (t.clone(), n + 1),
        };
        let known = match &self.since {
            // Without a sweep, the known ids are the previous ones and what changed; after a
            // sweep, the swept ids replace those of the swept types, and the types this
            // export did not cover keep theirs.
            Some((_, known, _)) => {
                let mut k = (**known).clone();
                for (kind, ids) in std::mem::take(&mut self.seen) {
                    if self.sweep {
                        k.insert(kind, ids);
                    } else {
                        k.entry(kind).or_default().extend(ids);
                    }
                }
                k
            }
            None => std::mem::take(&mut self.seen),
        };
        let states = &self.conn.inner.cookies;
        let seq = states.store(known);
        Cookie {
            instance: states.instance.clone(),
            seq,
            since_sweep,
            modified: self.max_modified.take().map(|(_, t)| t).or(previous),
        }
        .text()
    }

    fn resource(&self, rt: &ResourceType, item: &Value) -> Result<Resource, ConnectorError> {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Unexpected,
                    Operation::Export,
                    format!(
                        "the service listed a resource of {} without `id`",
                        rt.endpoint
                    ),
                )
            })?;
        let mut r = Resource::new(id).with_entity_type(rt.entity_type.as_str());
        r.stable_id = Some(StableId::new(id));
        for (property, attr) in &rt.attrs {
            if attr.secret {
                continue;
            }
            let Some(v) = attr.get(item) else { continue };
            let scalar = match (attr.kind, v) {
                (ValueType::Bool, Value::Bool(b)) => ScalarValue::Bool(*b),
                (ValueType::Integer, Value::Number(n)) if n.is_i64() => {
                    ScalarValue::Integer(n.as_i64().expect("checked"))
                }
                (ValueType::DateTime, Value::String(s)) => {
                    match chrono::DateTime::parse_from_rfc3339(s) {
                        Ok(d) => ScalarValue::DateTime(d.with_timezone(&chrono::Utc)),
                        Err(_) => ScalarValue::String(s.clone()),
                    }
                }
                (_, Value::String(s)) => ScalarValue::String(s.clone()),
                (_, other) => ScalarValue::String(other.to_string()),
            };
            r.values
                .insert(property.clone(), PropertyValue::Scalar(scalar));
        }
        let refs = |ids: &mut dyn Iterator<Item = &str>| -> BTreeSet<Reference> {
            ids.map(|g| Reference::key(DN_KEY, g).with(STABLE_ID_KEY, g))
                .collect()
        };
        match rt.kind {
            Kind::User => {
                if let Some(groups) = self.member_of.get(id)
                    && !groups.is_empty()
                {
                    let set = refs(&mut groups.iter().map(String::as_str));
                    r.values
                        .insert(MEMBER_OF.into(), PropertyValue::References(set));
                }
            }
            Kind::Group => {
                let set = refs(&mut members(item).into_iter());
                if !set.is_empty() {
                    r.values
                        .insert(MEMBERS.into(), PropertyValue::References(set));
                }
            }
        }
        Ok(r)
    }
}

/// The member ids of a group's JSON.
fn members(group: &Value) -> Vec<&str> {
    group
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_with_dotted_timestamps() {
        let c = Cookie {
            instance: "ab".into(),
            seq: 3,
            since_sweep: 2,
            modified: Some("2026-12-01T17:46:16.080684Z".into()),
        };
        let back = Cookie::parse(&c.text()).unwrap();
        assert_eq!(back.text(), c.text());
        assert_eq!(
            back.modified.as_deref(),
            Some("2026-12-01T17:46:16.080684Z")
        );
        assert!(Cookie::parse("autoprov-kit-foreign-cookie").is_none());
        assert!(Cookie::parse("scim1.ab.x.0.-").is_none());
    }
}
