//! The guide's example package (`crates/example-package`, `acme.badges`: users, groups,
//! memberships, renames, passwords, adoption review, paged incremental export) registered
//! beside the built-in ones, connected from a JSON connections file, and proven with the
//! conformance kit: every check is printed, and the program exits non-zero if one fails or is
//! skipped unexpectedly.
//!
//! Run it: `cargo run --example custom_connector`. The package's own kit tests run with
//! `cargo test -p autoprov-example-package`.

use autoprov_connector::PackageRegistry;
use autoprov_connector::testkit::{self, KitProfile};
use autoprov_core::ConnectionId;
use autoprov_example_package::{BadgePackage, GROUP, NAME, NOTE, USER};

/// Two connections to the same site: the second exports one object per page.
const CONNECTIONS: &str = r#"[
    {"Id": "badges-hq", "Package": "acme.badges", "Settings": {"Site": "HQ"}},
    {"Id": "badges-hq-paged", "Package": "acme.badges", "Settings": {"Site": "HQ", "PageSize": 1}}
]"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(async {
        let mut registry = PackageRegistry::new();
        registry.register(BadgePackage::default());
        let mut connections = registry
            .connect_all_from_json(CONNECTIONS)
            .await
            .expect("the badge package connects");
        let mut profile = KitProfile::new(USER, NAME);
        profile.group_type = Some(GROUP.into());
        profile.required_property = Some(NAME.into());
        profile.text_property = NOTE.into();
        profile.one_per_page = connections.remove(&ConnectionId::from("badges-hq-paged"));
        let profile = profile.expect_skips([
            "move_keeps_stable_id",
            "manual_transmits",
            "preview_is_offline_and_shows_no_secret",
        ]);
        let connection = &connections[&ConnectionId::from("badges-hq")];
        testkit::run_all(connection.as_ref(), &profile).await
    });
    println!("{report}");
    if !report.is_success() {
        std::process::exit(1);
    }
}
