//! A synthetic organization for benchmarks and load tests: `N` identities, one AD-like account
//! each with ~9 scalar properties (one a write-only initial password), ~10 group memberships
//! and a `parentdn` found by a query rule, and a configurable drift between what the role model
//! expects and what the targets hold.
//!
//! Everything is derived from `(seed, index)` by a counter-based hash, so any identity or
//! target can be regenerated alone (no state, no randomness source), and loading streams the
//! targets one by one instead of materializing the whole organization.
//!
//! ```
//! use autoprov_planner::synthetic::SyntheticOrg;
//! use autoprov_planner::PlanOptions;
//! let org = SyntheticOrg::new(200);
//! let mut planner = org.planner();
//! let plan = planner.plan_full(org.now(), PlanOptions::default(), &autoprov_planner::OrderStates::new());
//! let orders = plan.orders().count();
//! assert!(orders > 0 && orders < 40, "about 5% drift: {orders}");
//! ```

use crate::compare::ComparisonType;
use crate::plan::{CorrelationKey, Planner, PlannerConfig};
use crate::policy::{
    Criteria, NavigationRule, QueryRule, RoleModel, ScalarBinding, ScalarRule, TypeRule,
};
use autoprov_core::{
    EntityTypeId, Owner, OwnerId, PropertyValue, Reference, Resource, ResourceId, ResourceType,
    ResourceTypeId, ScalarValue, Secret,
};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The resource type of the synthetic accounts.
pub const ACCOUNT_TYPE: &str = "AD_Entry_NominativeUser";
/// The domain of the synthetic mail addresses.
const MAIL_DOMAIN: &str = "@example.test";

/// The entity type of the synthetic OUs (query-rule lookups).
pub const OU_TYPE: &str = "AD_OrganizationalUnit";

/// What kind of drift a target has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drift {
    /// The target holds exactly what is expected.
    None,
    /// The `title` differs.
    Title,
    /// One expected group is missing and one unexpected group is present.
    Membership,
    /// The account does not exist yet (a joiner).
    Missing,
    /// The `displayName` differs only in case (equal under its comparison) and `mail` differs.
    MailAndCase,
}

/// A synthetic organization.
#[derive(Clone, Debug)]
pub struct SyntheticOrg {
    /// Number of identities.
    pub identities: usize,
    /// Departments (each has 4 groups and one OU).
    pub departments: usize,
    /// Sites (each has 3 groups).
    pub sites: usize,
    /// Titles (each has 2 groups).
    pub titles: usize,
    /// Percentage of identities whose target drifts from the expected state.
    pub drift_percent: u8,
    /// Number of targets without owner (orphans).
    pub orphans: usize,
    /// Seed of the derivation.
    pub seed: u64,
}

impl SyntheticOrg {
    /// An organization of `identities` with 5% drift and the default shape (50 departments,
    /// 20 sites, 30 titles ⇒ 4 + 3 + 2 + 1 = 10 groups per identity).
    pub fn new(identities: usize) -> Self {
        Self {
            identities,
            departments: 50,
            sites: 20,
            titles: 30,
            drift_percent: 5,
            orphans: 0,
            seed: 0x5eed,
        }
    }

    /// The evaluation time used by the generated data.
    pub fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn rand(&self, i: usize, stream: u64) -> u64 {
        splitmix64(
            self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.rotate_left(32),
        )
    }

    fn department(&self, i: usize) -> usize {
        (self.rand(i, 1) % self.departments as u64) as usize
    }

    fn site(&self, i: usize) -> usize {
        (self.rand(i, 2) % self.sites as u64) as usize
    }

    fn title(&self, i: usize) -> usize {
        (self.rand(i, 3) % self.titles as u64) as usize
    }

    /// The owner id of identity `i`.
    pub fn owner_id(&self, i: usize) -> OwnerId {
        OwnerId::new(format!("u{i:07}"))
    }

    /// The login of identity `i`.
    pub fn login(&self, i: usize) -> String {
        format!("user{i:07}")
    }

    /// Identity `i` (8 properties).
    pub fn owner(&self, i: usize) -> Owner {
        let given = GIVEN[self.given(i)];
        let sn = SURNAMES[self.surname(i)];
        Owner::new(self.owner_id(i), self.login(i))
            .with_entity_type("Directory_User")
            .with("login", self.login(i))
            .with("employeeId", format!("E{i:08}"))
            .with("givenName", given)
            .with("lastName", sn)
            .with("department", format!("D{:03}", self.department(i)))
            .with("site", format!("S{:02}", self.site(i)))
            .with("title", format!("T{:02}", self.title(i)))
            .with("costCenter", format!("CC{:04}", self.cost_center(i)))
    }

    fn given(&self, i: usize) -> usize {
        (self.rand(i, 4) % GIVEN.len() as u64) as usize
    }

    fn surname(&self, i: usize) -> usize {
        (self.rand(i, 5) % SURNAMES.len() as u64) as usize
    }

    fn cost_center(&self, i: usize) -> usize {
        (self.rand(i, 6) % COST_CENTERS as u64) as usize
    }

    /// [`SyntheticOrg::owner`] from the load's precomputed names: the same owner, built the
    /// way a connector's export builds one (its map in one piece, no formatting of the values
    /// every owner shares).
    fn owner_in(&self, i: usize, login: &str, refs: &Refs) -> Owner {
        let text = |s: &str| PropertyValue::Scalar(ScalarValue::String(s.to_owned()));
        let properties = BTreeMap::from([
            (
                "costCenter".to_owned(),
                text(&refs.cost_centers[self.cost_center(i)]),
            ),
            (
                "department".to_owned(),
                text(&refs.department_names[self.department(i)]),
            ),
            ("employeeId".to_owned(), text(&format!("E{i:08}"))),
            ("givenName".to_owned(), text(GIVEN[self.given(i)])),
            ("lastName".to_owned(), text(SURNAMES[self.surname(i)])),
            ("login".to_owned(), text(login)),
            ("site".to_owned(), text(&refs.site_names[self.site(i)])),
            ("title".to_owned(), text(&refs.title_names[self.title(i)])),
        ]);
        Owner {
            id: self.owner_id(i),
            identifier: login.to_owned(),
            entity_type: Some(refs.directory_user.clone()),
            properties,
        }
    }

    /// The drift of identity `i`'s target.
    pub fn drift(&self, i: usize) -> Drift {
        if self.rand(i, 7) % 100 >= u64::from(self.drift_percent) {
            return Drift::None;
        }
        match self.rand(i, 8) % 4 {
            0 => Drift::Title,
            1 => Drift::Membership,
            2 => Drift::Missing,
            _ => Drift::MailAndCase,
        }
    }

    fn ou_dn(department: &str) -> String {
        format!("OU={department},DC=example,DC=test")
    }

    fn group_dn(name: &str) -> Reference {
        Reference::dn(format!("CN={name},OU=Groups,DC=example,DC=test"))
    }

    /// The groups identity `i` is expected to be a member of.
    pub fn expected_groups(&self, i: usize) -> BTreeSet<Reference> {
        self.expected_groups_in(i, &Refs::new(self))
    }

    fn expected_groups_in(&self, i: usize, refs: &Refs) -> BTreeSet<Reference> {
        let d = self.department(i) * 4;
        let s = self.site(i) * 3;
        let t = self.title(i) * 2;
        let group = |list: &[Reference], k: usize| list[k].clone();
        // Built in one piece (sorted once, then laid out), not inserted one by one.
        BTreeSet::from([
            group(&refs.departments, d),
            group(&refs.departments, d + 1),
            group(&refs.departments, d + 2),
            group(&refs.departments, d + 3),
            group(&refs.sites, s),
            group(&refs.sites, s + 1),
            group(&refs.sites, s + 2),
            group(&refs.titles, t),
            group(&refs.titles, t + 1),
            refs.all_staff.clone(),
        ])
    }

    /// What the role model expects for identity `i` (mapped values only).
    pub fn desired_target(&self, i: usize) -> Resource {
        self.desired_target_in(i, &self.login(i), &Refs::new(self))
    }

    /// The desired target of identity `i`, derived (as [`SyntheticOrg::owner`] is) from `i`
    /// alone; its values are those the role model computes from the owner.
    fn desired_target_in(&self, i: usize, login: &str, refs: &Refs) -> Resource {
        let text = |s: String| PropertyValue::Scalar(ScalarValue::String(s));
        let d = self.department(i);
        let department = &refs.department_names[d];
        let given = GIVEN[self.given(i)];
        let sn = SURNAMES[self.surname(i)];
        let values = BTreeMap::from([
            ("department".to_owned(), text(department.clone())),
            ("displayName".to_owned(), text(format!("{given} {sn}"))),
            ("employeeID".to_owned(), text(format!("E{i:08}"))),
            ("givenName".to_owned(), text(given.to_owned())),
            ("mail".to_owned(), text(format!("{login}{MAIL_DOMAIN}"))),
            (
                "memberOf".to_owned(),
                PropertyValue::References(self.expected_groups_in(i, refs)),
            ),
            (
                "parentdn".to_owned(),
                PropertyValue::Reference(refs.ous[d].clone()),
            ),
            ("sAMAccountName".to_owned(), text(login.to_owned())),
            ("sn".to_owned(), text(sn.to_owned())),
            (
                "title".to_owned(),
                text(refs.title_names[self.title(i)].clone()),
            ),
        ]);
        Resource {
            id: ResourceId::new(format!("CN={login},{}", Self::ou_dn(department))),
            entity_type: Some(refs.ad_entry.clone()),
            stable_id: None,
            values,
        }
    }

    /// What the managed system holds for identity `i`, with its drift; `None` for a joiner.
    pub fn actual_target(&self, i: usize) -> Option<Resource> {
        self.actual_target_in(i, &self.login(i), &Refs::new(self))
    }

    fn actual_target_in(&self, i: usize, login: &str, refs: &Refs) -> Option<Resource> {
        let drift = self.drift(i);
        if drift == Drift::Missing {
            return None;
        }
        let mut r = self.desired_target_in(i, login, refs);
        match drift {
            Drift::None => {}
            Drift::Title => {
                r.values.insert("title".into(), "Former title".into());
            }
            Drift::Membership => {
                if let Some(PropertyValue::References(groups)) = r.values.get_mut("memberOf") {
                    let first = groups.iter().next().cloned();
                    if let Some(first) = first {
                        groups.remove(&first);
                    }
                    groups.insert(refs.legacy.clone());
                }
            }
            Drift::Missing => return None,
            Drift::MailAndCase => {
                let upper = match r.get("displayName") {
                    Some(PropertyValue::Scalar(ScalarValue::String(s))) => s.to_uppercase(),
                    _ => String::new(),
                };
                r.values.insert("displayName".into(), upper.into());
                r.values
                    .insert("mail".into(), format!("old.{login}{MAIL_DOMAIN}").into());
            }
        }
        Some(r)
    }

    /// Orphan target `k` (an account whose identity left the source).
    pub fn orphan_target(&self, k: usize) -> Resource {
        let login = format!("gone{k:06}");
        Resource::new(format!("CN={login},OU=Leavers,DC=example,DC=test"))
            .with_entity_type("AD_Entry")
            .with("sAMAccountName", login)
            .with("employeeID", format!("X{k:08}"))
    }

    /// The OUs (lookup resources of the `parentdn` query rule).
    pub fn ous(&self) -> Vec<Resource> {
        (0..self.departments)
            .map(|d| {
                let name = format!("D{d:03}");
                Resource::new(Self::ou_dn(&name))
                    .with_entity_type(OU_TYPE)
                    .with("ou", name)
            })
            .collect()
    }

    /// The account resource type. Its drift is corrected as the rules say
    /// (`NonConforming = Remove`): every drifted value is still classified, so planning pays
    /// for the classification, and each drift still gives its order.
    pub fn resource_type(&self) -> ResourceType {
        let mut rt = ResourceType::new(
            ACCOUNT_TYPE,
            ACCOUNT_TYPE,
            "Directory_User",
            "AD_Entry",
            "ad-main",
        );
        rt.non_conforming = autoprov_core::NonConformingPolicy::Remove;
        rt
    }

    /// The role model: 1 type rule, 9 scalar rules, 4·departments + 3·sites + 2·titles + 1
    /// navigation rules, 1 query rule.
    pub fn role_model(&self) -> RoleModel {
        let rt = ACCOUNT_TYPE;
        let mut m = RoleModel::new()
            .type_rule(TypeRule::new(rt, Criteria::always()))
            .scalar_rule(
                ScalarRule::from_owner(rt, "sAMAccountName", "login")
                    .comparison(ComparisonType::IgnoreCase),
            )
            .scalar_rule(ScalarRule::from_owner(rt, "employeeID", "employeeId"))
            .scalar_rule(ScalarRule::from_owner(rt, "givenName", "givenName"))
            .scalar_rule(ScalarRule::from_owner(rt, "sn", "lastName"))
            .scalar_rule(
                // Built with `push_str` rather than `format!`: these closures run for every
                // owner of every full plan, and the formatting machinery cost more than the
                // rest of the rule.
                ScalarRule::computed(rt, "displayName", |o| {
                    let g = o.get("givenName")?.as_scalar()?.as_str()?;
                    let s = o.get("lastName")?.as_scalar()?.as_str()?;
                    let mut name = String::with_capacity(g.len() + 1 + s.len());
                    name.push_str(g);
                    name.push(' ');
                    name.push_str(s);
                    Some(name.into())
                })
                .comparison(ComparisonType::IgnoreCase),
            )
            .scalar_rule(ScalarRule::computed(rt, "mail", |o| {
                let login = o.get("login")?.as_scalar()?.as_str()?;
                let mut mail = String::with_capacity(login.len() + MAIL_DOMAIN.len());
                mail.push_str(login);
                mail.push_str(MAIL_DOMAIN);
                Some(mail.into())
            }))
            .scalar_rule(ScalarRule::from_owner(rt, "title", "title"))
            .scalar_rule(ScalarRule::from_owner(rt, "department", "department"))
            .scalar_rule(
                ScalarRule::computed(rt, "userPassword", |o| {
                    Some(Secret::new(format!("Init-{}!", o.identifier)).into())
                })
                .write_only(),
            )
            .query_rule(QueryRule::new(
                rt,
                "parentdn",
                ScalarBinding::OwnerProperty("department".into()),
                OU_TYPE,
                "ou",
            ))
            .navigation_rule(NavigationRule::new(
                rt,
                "memberOf",
                Self::group_dn("AllStaff"),
            ));
        for d in 0..self.departments {
            for g in 0..4 {
                m = m.navigation_rule(
                    NavigationRule::new(rt, "memberOf", Self::group_dn(&format!("D{d:03}-G{g}")))
                        .when(Criteria::always().dimension("department", format!("D{d:03}"))),
                );
            }
        }
        for s in 0..self.sites {
            for g in 0..3 {
                m = m.navigation_rule(
                    NavigationRule::new(rt, "memberOf", Self::group_dn(&format!("S{s:02}-G{g}")))
                        .when(Criteria::always().dimension("site", format!("S{s:02}"))),
                );
            }
        }
        for t in 0..self.titles {
            for g in 0..2 {
                m = m.navigation_rule(
                    NavigationRule::new(rt, "memberOf", Self::group_dn(&format!("T{t:02}-G{g}")))
                        .when(Criteria::always().dimension("title", format!("T{t:02}"))),
                );
            }
        }
        m
    }

    /// The planner configuration: the resource type, the role model, correlation
    /// `employeeId` ⇄ `employeeID`.
    pub fn config(&self) -> PlannerConfig {
        PlannerConfig::new(vec![self.resource_type()], self.role_model()).correlate(
            ACCOUNT_TYPE,
            CorrelationKey::new("employeeId", "employeeID"),
        )
    }

    /// Every identity with its actual target (`None` for a joiner), generated one by one as
    /// [`SyntheticOrg::load`] generates them (the group references built once).
    pub fn identities(&self) -> impl Iterator<Item = (Owner, Option<Resource>)> + '_ {
        let refs = Refs::new(self);
        (0..self.identities).map(move |i| {
            let login = self.login(i);
            let owner = self.owner_in(i, &login, &refs);
            let target = self.actual_target_in(i, &login, &refs);
            (owner, target)
        })
    }

    /// Loads lookups, owners and targets into a planner, streaming the targets chunk by chunk
    /// through the bulk API ([`Planner::upsert_owners`], [`Planner::upsert_targets`]).
    ///
    /// Generation stays on the calling thread: generating on rayon's pool while loading
    /// measured slower with the system allocator (glibc), whose per-thread arenas make the
    /// planner's long-lived data live in worker arenas. Generating the next page on a worker
    /// while the planner loads the current one (2026-12-02, a million identities): the
    /// planner's share rose from 7.4-8.2 s to 20.3-20.7 s and the load from 12.8-13.8 s to
    /// 21.5-21.8 s, each freed owner and target going back to the generating thread's arena;
    /// with mimalloc the same split saved a quarter of the load (8.7-10.2 s against
    /// 11.6-16.3 s), at 1.6 times the CPU time.
    pub fn load(&self, planner: &mut Planner) {
        self.load_with(
            planner,
            |planner, owner| planner.upsert_owner(owner),
            |planner, targets| {
                // The resource type is configured by `config`, so this cannot fail.
                let _ = planner.upsert_targets(&ResourceTypeId::new(ACCOUNT_TYPE), targets);
            },
        );
    }

    /// [`SyntheticOrg::load`] with the loading steps in the caller's hands: each owner is
    /// handed to `owner` as soon as it is generated (a chunk of owners generated ahead would
    /// leave megabytes of freed memory cold in the allocator's caches), and the chunk of their
    /// targets ([`LOAD_CHUNK`], a page of an export) to `targets`. Timing the two separates
    /// the planner's share of a load from the generator's (the example `plan_synthetic` prints
    /// both).
    pub fn load_with(
        &self,
        planner: &mut Planner,
        mut owner: impl FnMut(&mut Planner, Owner),
        mut targets: impl FnMut(&mut Planner, Vec<Resource>),
    ) {
        for ou in self.ous() {
            planner.upsert_lookup(OU_TYPE, ou);
        }
        let rt = ResourceTypeId::new(ACCOUNT_TYPE);
        planner.reserve(self.identities, self.identities + self.orphans);
        let refs = Refs::new(self);
        let mut start = 0;
        while start < self.identities {
            let end = (start + LOAD_CHUNK).min(self.identities);
            let mut chunk = Vec::with_capacity(end - start);
            for i in start..end {
                let login = self.login(i);
                chunk.extend(self.actual_target_in(i, &login, &refs));
                owner(planner, self.owner_in(i, &login, &refs));
            }
            targets(planner, chunk);
            start = end;
        }
        for k in 0..self.orphans {
            let _ = planner.upsert_target(&rt, &self.orphan_target(k));
        }
    }

    /// [`SyntheticOrg::load_with`] streaming every identity through one `Owner` and one
    /// `Resource`, refilled in place (the same names, new values written into the same
    /// buffers), and handed over by reference: the way a load from a store or a paged export
    /// can feed the planner ([`Planner::upsert_owner_ref`], [`Planner::upsert_target`]) without
    /// allocating and freeing each identity's maps and strings on both sides.
    pub fn load_streaming_with(
        &self,
        planner: &mut Planner,
        mut owner: impl FnMut(&mut Planner, &Owner),
        mut target: impl FnMut(&mut Planner, &Resource),
    ) {
        for ou in self.ous() {
            planner.upsert_lookup(OU_TYPE, ou);
        }
        let rt = ResourceTypeId::new(ACCOUNT_TYPE);
        planner.reserve(self.identities, self.identities + self.orphans);
        let refs = Refs::new(self);
        let mut login = String::new();
        let mut o = Owner::new("", "");
        let mut r = Resource::new("");
        for i in 0..self.identities {
            login.clear();
            let _ = write!(login, "user{i:07}");
            self.fill_owner(i, &login, &refs, &mut o);
            owner(planner, &o);
            if self.fill_target(i, &login, &refs, &mut r) {
                target(planner, &r);
            }
        }
        for k in 0..self.orphans {
            let _ = planner.upsert_target(&rt, &self.orphan_target(k));
        }
    }

    /// Makes `out` [`SyntheticOrg::owner_in`]`(i)`, writing the values into its buffers when
    /// it already holds the same properties.
    fn fill_owner(&self, i: usize, login: &str, refs: &Refs, out: &mut Owner) {
        const NAMES: [&str; 8] = [
            "costCenter",
            "department",
            "employeeId",
            "givenName",
            "lastName",
            "login",
            "site",
            "title",
        ];
        if !out.properties.keys().map(String::as_str).eq(NAMES) {
            *out = self.owner_in(i, login, refs);
            return;
        }
        out.id = self.owner_id(i);
        set_text(&mut out.identifier, login);
        if out.entity_type.as_ref() != Some(&refs.directory_user) {
            out.entity_type = Some(refs.directory_user.clone());
        }
        let mut values = out.properties.values_mut();
        let mut next = || values.next().map(with_text);
        // In the map's (sorted) order: costCenter, department, employeeId, then the rest.
        for text in [
            &refs.cost_centers[self.cost_center(i)],
            &refs.department_names[self.department(i)],
        ] {
            if let Some(slot) = next() {
                slot.push_str(text);
            }
        }
        if let Some(slot) = next() {
            let _ = write!(slot, "E{i:08}");
        }
        for text in [
            GIVEN[self.given(i)],
            SURNAMES[self.surname(i)],
            login,
            &refs.site_names[self.site(i)],
            &refs.title_names[self.title(i)],
        ] {
            if let Some(slot) = next() {
                slot.push_str(text);
            }
        }
    }

    /// Makes `out` [`SyntheticOrg::actual_target_in`]`(i)` and returns `true`, or returns
    /// `false` for a joiner (no target).
    fn fill_target(&self, i: usize, login: &str, refs: &Refs, out: &mut Resource) -> bool {
        const NAMES: [&str; 10] = [
            "department",
            "displayName",
            "employeeID",
            "givenName",
            "mail",
            "memberOf",
            "parentdn",
            "sAMAccountName",
            "sn",
            "title",
        ];
        let drift = self.drift(i);
        if drift == Drift::Missing {
            return false;
        }
        if !out.values.keys().map(String::as_str).eq(NAMES) {
            match self.actual_target_in(i, login, refs) {
                Some(r) => *out = r,
                None => return false,
            }
            return true;
        }
        let d = self.department(i);
        let department = &refs.department_names[d];
        let given = GIVEN[self.given(i)];
        let sn = SURNAMES[self.surname(i)];
        out.id = ResourceId::new(format!("CN={login},{}", Self::ou_dn(department)));
        if out.entity_type.as_ref() != Some(&refs.ad_entry) {
            out.entity_type = Some(refs.ad_entry.clone());
        }
        out.stable_id = None;
        let mut values = out.values.values_mut();
        let mut next = || values.next();
        if let Some(v) = next() {
            set_value(v, department);
        }
        if let Some(v) = next() {
            let name = with_text(v);
            name.push_str(given);
            name.push(' ');
            name.push_str(sn);
            if drift == Drift::MailAndCase {
                *name = name.to_uppercase();
            }
        }
        if let Some(v) = next() {
            let id = with_text(v);
            let _ = write!(id, "E{i:08}");
        }
        if let Some(v) = next() {
            set_value(v, given);
        }
        if let Some(v) = next() {
            let mail = with_text(v);
            if drift == Drift::MailAndCase {
                mail.push_str("old.");
            }
            mail.push_str(login);
            mail.push_str(MAIL_DOMAIN);
        }
        if let Some(v) = next() {
            let mut groups = self.expected_groups_in(i, refs);
            if drift == Drift::Membership {
                let first = groups.iter().next().cloned();
                if let Some(first) = first {
                    groups.remove(&first);
                }
                groups.insert(refs.legacy.clone());
            }
            *v = PropertyValue::References(groups);
        }
        if let Some(v) = next() {
            *v = PropertyValue::Reference(refs.ous[d].clone());
        }
        if let Some(v) = next() {
            set_value(v, login);
        }
        if let Some(v) = next() {
            set_value(v, sn);
        }
        if let Some(v) = next() {
            if drift == Drift::Title {
                set_value(v, "Former title");
            } else {
                set_value(v, &refs.title_names[self.title(i)]);
            }
        }
        true
    }

    /// A planner built from [`SyntheticOrg::config`] and loaded with the organization.
    pub fn planner(&self) -> Planner {
        let mut planner = match Planner::new(self.config()) {
            Ok(p) => p,
            Err(e) => unreachable!("the synthetic configuration is valid: {e}"),
        };
        self.load(&mut planner);
        planner
    }
}

/// Targets handed to the planner at once by [`SyntheticOrg::load_with`]: a page of an export
/// (the AD package pages by 500 entries by default; the job feeds the planner entry by entry).
///
/// A page this small is still in the processor's cache when the planner compacts and frees
/// it: with pages of 4,096 targets (about 6 MB, generated before the planner sees the first)
/// the planner's share of a load of a million identities took 10.6 s instead of 5.6 s, and
/// the whole load 15.9 s instead of 9.5 s (glibc's allocator; 300,000 identities: 3.84 s and
/// 2.53 s; 64 measured as 256).
pub const LOAD_CHUNK: usize = 256;

/// Clears `slot` to an empty string value, keeping its buffer when it holds a string.
fn with_text(slot: &mut PropertyValue) -> &mut String {
    if !matches!(slot, PropertyValue::Scalar(ScalarValue::String(_))) {
        *slot = PropertyValue::Scalar(ScalarValue::String(String::new()));
    }
    match slot {
        PropertyValue::Scalar(ScalarValue::String(s)) => {
            s.clear();
            s
        }
        _ => unreachable!("made a string above"),
    }
}

/// Writes the string `value` into `slot`, reusing its buffer.
fn set_value(slot: &mut PropertyValue, value: &str) {
    with_text(slot).push_str(value);
}

/// Writes `value` into `s`, reusing its buffer.
fn set_text(s: &mut String, value: &str) {
    s.clear();
    s.push_str(value);
}

/// The organization's group and OU references, built once per load: a clone is an `Arc`
/// increment instead of a formatted, allocated reference per membership.
struct Refs {
    /// 4 per department.
    departments: Vec<Reference>,
    /// 3 per site.
    sites: Vec<Reference>,
    /// 2 per title.
    titles: Vec<Reference>,
    all_staff: Reference,
    legacy: Reference,
    /// The OU of each department.
    ous: Vec<Reference>,
    ad_entry: EntityTypeId,
    directory_user: EntityTypeId,
    /// The values every owner of a department, site, title or cost centre shares.
    department_names: Vec<String>,
    site_names: Vec<String>,
    title_names: Vec<String>,
    cost_centers: Vec<String>,
}

impl Refs {
    fn new(org: &SyntheticOrg) -> Self {
        let department_names: Vec<String> =
            (0..org.departments).map(|d| format!("D{d:03}")).collect();
        let site_names: Vec<String> = (0..org.sites).map(|s| format!("S{s:02}")).collect();
        let title_names: Vec<String> = (0..org.titles).map(|t| format!("T{t:02}")).collect();
        // `count` groups per name: `D000-G0`, `D000-G1`, …
        let groups = |names: &[String], count: usize| -> Vec<Reference> {
            names
                .iter()
                .flat_map(|n| (0..count).map(move |g| SyntheticOrg::group_dn(&format!("{n}-G{g}"))))
                .collect()
        };
        Self {
            departments: groups(&department_names, 4),
            sites: groups(&site_names, 3),
            titles: groups(&title_names, 2),
            all_staff: SyntheticOrg::group_dn("AllStaff"),
            legacy: SyntheticOrg::group_dn("Legacy-Unmanaged"),
            ous: department_names
                .iter()
                .map(|d| Reference::dn(SyntheticOrg::ou_dn(d)))
                .collect(),
            ad_entry: EntityTypeId::new("AD_Entry"),
            directory_user: EntityTypeId::new("Directory_User"),
            department_names,
            site_names,
            title_names,
            cost_centers: (0..COST_CENTERS).map(|c| format!("CC{c:04}")).collect(),
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Distinct cost centres.
const COST_CENTERS: usize = 1000;

const GIVEN: &[&str] = &[
    "Alice", "Bruno", "Chloé", "David", "Élodie", "Farid", "Greta", "Hugo", "Inès", "Jonas",
    "Karim", "Léa", "Mateo", "Nora", "Oscar", "Paula",
];

const SURNAMES: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Müller",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_generates_the_owners_and_targets_of_the_public_builders() {
        let mut org = SyntheticOrg::new(1_000);
        org.drift_percent = 40;
        let refs = Refs::new(&org);
        let mut drifts = BTreeSet::new();
        for (i, (owner, target)) in org.identities().enumerate() {
            assert_eq!(owner, org.owner(i), "owner {i}");
            assert_eq!(target, org.actual_target(i), "target {i}");
            let login = org.login(i);
            assert_eq!(owner, org.owner_in(i, &login, &refs), "owner {i}");
            let drift = org.drift(i);
            drifts.insert(format!("{drift:?}"));
            // The desired target holds the owner's values under their mapped names.
            let desired = org.desired_target(i);
            let text = |r: &Resource, p: &str| r.get(p).cloned();
            for (o, t) in [
                ("login", "sAMAccountName"),
                ("employeeId", "employeeID"),
                ("givenName", "givenName"),
                ("lastName", "sn"),
                ("department", "department"),
                ("title", "title"),
            ] {
                assert_eq!(owner.get(o).cloned(), text(&desired, t), "{i}: {t}");
            }
            assert_eq!(
                desired.get("memberOf"),
                Some(&PropertyValue::References(org.expected_groups(i)))
            );
        }
        assert_eq!(
            drifts.len(),
            5,
            "every kind of drift is generated: {drifts:?}"
        );
    }
}
