//! The `autoprov` command, run as a user would: on the in-memory system, and against the Samba
//! domain controller (checked with `ldapsearch`), with the bind password from the environment.
#![allow(clippy::disallowed_methods)] // tests may read the wall clock

use autoprov_ad::test_fixtures::{self, ad_env};
use autoprov_core::{ChangeType, Changes, ProvisioningOrder, ProvisioningOrdersList, Reference};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn autoprov() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autoprov"))
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "autoprov-cli-{name}-{}-{}",
            std::process::id(),
            test_fixtures::token()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_orders(path: &Path, orders: Vec<ProvisioningOrder>) {
    let list = ProvisioningOrdersList {
        provisioning_orders_list: orders,
    };
    std::fs::write(path, list.to_json_pretty()).unwrap();
}

/// Orders as the reference system writes them: one file per connection, no connection named.
fn unaddressed(mut order: ProvisioningOrder) -> ProvisioningOrder {
    order.connection = None;
    order
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fulfill_on_the_in_memory_system_writes_the_reference_results_csv() {
    let dir = Dir::new("memory");
    std::fs::write(
        dir.path("memory.json"),
        r#"{"Connection": "try", "Package": "InMemory"}"#,
    )
    .unwrap();
    let mut orders = Vec::new();
    for i in 0..5 {
        let mut c = Changes::default();
        c.set("sAMAccountName", format!("u{i}"))
            .set("cn", format!("u{i}"))
            .set_reference("parentdn", Reference::dn("DC=example,DC=test"));
        orders.push(unaddressed(test_fixtures::order(
            ChangeType::Added,
            "user",
            c,
            None,
        )));
    }
    write_orders(&dir.path("orders.json"), orders);
    let out = autoprov()
        .args(["fulfill", "--orders"])
        .arg(dir.path("orders.json"))
        .arg("--connection")
        .arg(dir.path("memory.json"))
        .arg("--results")
        .arg(dir.path("results.csv"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("OrdersCount:5\n"), "{stdout}");
    assert!(stdout.contains("Progress:100\n"), "{stdout}");
    let csv = std::fs::read_to_string(dir.path("results.csv")).unwrap_or_default();
    assert!(stdout.contains("5 orders: 5 executed"), "{stdout}\n{csv}");
    let csv = std::fs::read_to_string(dir.path("results.csv")).unwrap();
    let results = autoprov_core::results_csv::read(csv.as_bytes()).unwrap();
    assert_eq!(results.len(), 5);
    assert!(dir.path("orders.json.done").exists());
    assert!(!dir.path("orders.json").exists());
}

#[test]
fn an_unparsable_orders_file_exits_2_naming_the_file_and_where_it_is_wrong() {
    let dir = Dir::new("bad");
    std::fs::write(
        dir.path("memory.json"),
        r#"{"Connection": "try", "Package": "InMemory"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path("orders.json"),
        r#"{"ProvisioningOrdersList": [{"ChangeType": "Addded"}]}"#,
    )
    .unwrap();
    let out = autoprov()
        .args(["fulfill", "--orders"])
        .arg(dir.path("orders.json"))
        .arg("--connection")
        .arg(dir.path("memory.json"))
        .arg("--results")
        .arg(dir.path("results.csv"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("orders.json"), "{stderr}");
    assert!(stderr.contains("ProvisioningOrdersList[0]"), "{stderr}");
    assert!(!dir.path("results.csv").exists());

    // A typo in the connection file names the closest field.
    std::fs::write(
        dir.path("typo.json"),
        r#"{"Connection": "try", "Pakage": "InMemory"}"#,
    )
    .unwrap();
    let out = autoprov()
        .args(["simulate", "--orders"])
        .arg(dir.path("orders.json.unparsable"))
        .arg("--connection")
        .arg(dir.path("typo.json"))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("`Pakage`") && stderr.contains("`Package`"),
        "{stderr}"
    );
}

#[test]
fn there_is_no_way_to_give_a_password_as_an_argument() {
    let out = autoprov().args(["fulfill", "--help"]).output().unwrap();
    let (help, _) = text(&out);
    assert!(help.contains("--bind-password-env"), "{help}");
    assert!(help.contains("--bind-password-file"), "{help}");
    assert!(help.contains("--bind-password-stdin"), "{help}");
    let out = autoprov()
        .args(["fulfill", "--bind-password", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fulfill_and_simulate_against_samba_with_the_password_from_the_environment() {
    let Some(env) =
        ad_env("fulfill_and_simulate_against_samba_with_the_password_from_the_environment")
    else {
        return;
    };
    let dir = Dir::new("samba");
    let token = test_fixtures::token();
    let ou = format!("OU=cli-{token},{}", env.base_dn);
    // No password in the file: it comes from the environment.
    let connection = serde_json::json!({
        "Connection": "ad-cli",
        "Package": "ActiveDirectory",
        "Settings": {
            "Servers": [{"Url": env.url, "BaseDn": env.base_dn}],
            "Bind": {"Login": env.bind_dn},
            "Tls": {"CaCertificate": {"File": env.ca_file}}
        }
    });
    std::fs::write(dir.path("ad.json"), connection.to_string()).unwrap();

    let mut c = Changes::default();
    c.set("ou", format!("cli-{token}"))
        .set_reference("parentdn", Reference::dn(&env.base_dn));
    let mut orders = vec![unaddressed(test_fixtures::order(
        ChangeType::Added,
        "organizationalUnit",
        c,
        None,
    ))];
    for i in 0..3 {
        let mut c = Changes::default();
        c.set("sAMAccountName", format!("cli{token}{i}"))
            .set("cn", format!("cli{token}{i}"))
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(&ou));
        let mut o = unaddressed(test_fixtures::order(ChangeType::Added, "user", c, None));
        o.depends_on = vec![orders[0].order_id.clone()];
        orders.push(o);
    }
    write_orders(&dir.path("orders.json"), orders);

    // The preview first: LDIF, nothing written.
    let out = autoprov()
        .args(["simulate", "--orders"])
        .arg(dir.path("orders.json"))
        .arg("--connection")
        .arg(dir.path("ad.json"))
        .env("AUTOPROV_BIND_PASSWORD", &env.password)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("changetype: add").count(), 4, "{stdout}");
    let search = |filter: &str| {
        let out = env.ldap_tool("ldapsearch", &["-LLL", "-b", &env.base_dn, filter, "dn"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!search(&format!("(ou=cli-{token})")).contains("dn: "));

    // The password from a variable the user names; it is never echoed.
    let out = autoprov()
        .args(["fulfill", "--orders"])
        .arg(dir.path("orders.json"))
        .arg("--connection")
        .arg(dir.path("ad.json"))
        .arg("--results")
        .arg(dir.path("results.csv"))
        .env_remove("AUTOPROV_BIND_PASSWORD")
        .env("MY_SECRET_VAR", &env.password)
        .arg("--bind-password-env")
        .arg("MY_SECRET_VAR")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("4 orders: 4 executed"), "{stdout}");
    assert!(
        !stdout.contains(&env.password) && !stderr.contains(&env.password),
        "the password is never printed"
    );
    for i in 0..3 {
        let found = search(&format!("(sAMAccountName=cli{token}{i})"));
        assert!(found.contains(&format!("CN=cli{token}{i},{ou}")), "{found}");
    }
    let csv = std::fs::read_to_string(dir.path("results.csv")).unwrap();
    assert_eq!(csv.matches(",Executed,").count(), 4, "{csv}");
    let _ = env.ldap_tool("ldapdelete", &["-r", &ou]);
}
