//! `autoprov`: try a connector package on an orders file without writing Rust.
//!
//! ```text
//! autoprov fulfill  --orders orders.json --connection ad.json --results results.csv [--store run.db]
//! autoprov simulate --orders orders.json --connection ad.json
//! ```
//!
//! The connection file names the package and its settings:
//!
//! ```json
//! {"Connection": "ad-main", "Package": "ActiveDirectory",
//!  "Settings": {"Servers": [{"Url": "ldaps://dc1:636", "BaseDn": "DC=example,DC=test"}],
//!               "Bind": {"Login": "svc@EXAMPLE.TEST"},
//!               "Tls": {"CaCertificate": {"File": "/etc/ssl/dc-ca.pem"}}}}
//! ```
//!
//! `"Package": "InMemory"` (no settings) runs against an empty in-memory system, to try an
//! orders file with no directory at all.
//!
//! Secrets never come as command-line arguments (they would show in `ps` and shell history):
//! the bind password comes from the environment (`AUTOPROV_BIND_PASSWORD`, or the variable
//! `--bind-password-env` names), a file (`--bind-password-file`) or standard input
//! (`--bind-password-stdin`). Exit codes: 0 every order Executed (or Transmitted), 1 some
//! order Errored or left pending, 2 the run could not start or was aborted.

use autoprov_connector::{Connector, InMemoryConnector};
use autoprov_core::{ConnectionId, ProvisioningOrdersList};
use autoprov_orchestrator::fulfil_file::{FileFulfilment, FulfilProgress};
use autoprov_orchestrator::store::{MemoryStore, Store};
use clap::{Args, Parser, Subcommand};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "autoprov",
    version,
    about = "Automated identity provisioning: fulfil or preview an orders file through a connection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fulfil every order of an orders file through a connection and write the results file.
    Fulfill(FulfillArgs),
    /// Show what an orders file would do (the orders, and LDIF for Active Directory), writing
    /// nothing.
    Simulate(ConnectionArgs),
}

#[derive(Args, Debug)]
struct ConnectionArgs {
    /// The orders file, as the reference system writes it (`{"ProvisioningOrdersList": …}`).
    #[arg(long)]
    orders: PathBuf,
    /// The connection file (package and settings; no secret needed in it).
    #[arg(long)]
    connection: PathBuf,
    /// The environment variable holding the bind password.
    #[arg(long, default_value = "AUTOPROV_BIND_PASSWORD")]
    bind_password_env: String,
    /// A file holding the bind password (its first line).
    #[arg(long, conflicts_with = "bind_password_stdin")]
    bind_password_file: Option<PathBuf>,
    /// Read the bind password from standard input (its first line).
    #[arg(long)]
    bind_password_stdin: bool,
}

#[derive(Args, Debug)]
struct FulfillArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The results file: the reference system's CSV when it ends in `.csv`, JSON otherwise.
    #[arg(long)]
    results: PathBuf,
    /// A SQLite file that remembers every order's outcome, so that an interrupted run
    /// resumes without sending anything twice. Default: nothing kept after the run.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Print no progress.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("autoprov: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("autoprov: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Fulfill(args) => fulfill(args).await,
        Command::Simulate(args) => simulate(args).await,
    }
}

async fn fulfill(args: FulfillArgs) -> Result<ExitCode, String> {
    let connector = connector(&args.connection, false).await?;
    let store: Arc<dyn Store> = match &args.store {
        Some(path) => Arc::new(
            autoprov_store_sqlite::SqliteStore::open(path, Default::default())
                .map_err(|e| format!("store {}: {e}", path.display()))?,
        ),
        None => Arc::new(MemoryStore::new()),
    };
    let quiet = args.quiet;
    let runner = FileFulfilment::new([connector], store).on_progress(move |p: FulfilProgress| {
        if !quiet {
            println!("{p}");
        }
    });
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("autoprov: interrupted; orders not started stay pending for the next run");
            stop.cancel();
        }
    });
    let report = runner
        .run(&args.connection.orders, &args.results, &cancel)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} orders: {} executed, {} transmitted, {} errored, {} pending{}; results in {}",
        report.orders,
        report.executed,
        report.transmitted,
        report.errored,
        report.pending,
        if report.resumed {
            " (resumed an interrupted run)"
        } else {
            ""
        },
        report.results_file.display()
    );
    Ok(if report.errored == 0 && report.pending == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn simulate(args: ConnectionArgs) -> Result<ExitCode, String> {
    let connector = connector(&args, true).await?;
    let text = std::fs::read_to_string(&args.orders)
        .map_err(|e| format!("reading {}: {e}", args.orders.display()))?;
    let list = ProvisioningOrdersList::from_json(&text)
        .map_err(|e| format!("orders file {}: {e}", args.orders.display()))?;
    let orders = list.provisioning_orders_list;
    println!("{} orders", orders.len());
    for o in &orders {
        println!("  {}", o.label());
    }
    match connector.preview(&orders) {
        Some(preview) => {
            println!();
            print!("{}", preview.text);
            for why in &preview.refused {
                println!("# refused: {why}");
            }
        }
        None => println!("(the package renders no preview)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The connector a connection file describes, with the bind password from the environment,
/// a file or standard input.
async fn connector(args: &ConnectionArgs, lazily: bool) -> Result<Arc<dyn Connector>, String> {
    let path = &args.connection;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading connection file {}: {e}", path.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("connection file {}: not JSON: {e}", path.display()))?;
    let object = json
        .as_object_mut()
        .ok_or_else(|| format!("connection file {}: expected an object", path.display()))?;
    for key in object.keys() {
        if !["Connection", "Package", "Settings"].contains(&key.as_str()) {
            let hint =
                autoprov_core::config::closest_name(key, ["Connection", "Package", "Settings"])
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
            return Err(format!(
                "connection file {}: unknown field `{key}`{hint}",
                path.display()
            ));
        }
    }
    let connection: ConnectionId = object
        .get("Connection")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            format!(
                "connection file {}: `Connection` (its id) is required",
                path.display()
            )
        })?
        .into();
    let package = object
        .get("Package")
        .and_then(|v| v.as_str())
        .unwrap_or("ActiveDirectory")
        .to_owned();
    match package.as_str() {
        "InMemory" => Ok(Arc::new(InMemoryConnector::new(connection))),
        "ActiveDirectory" => {
            let mut settings = object.remove("Settings").ok_or_else(|| {
                format!("connection file {}: `Settings` is required", path.display())
            })?;
            if let Some(password) = bind_password(args)? {
                let bind = settings
                    .get_mut("Bind")
                    .and_then(|b| b.as_object_mut())
                    .ok_or_else(|| {
                        format!(
                            "connection file {}: `Settings.Bind` is required",
                            path.display()
                        )
                    })?;
                bind.insert("Password".into(), serde_json::Value::String(password));
            }
            let settings = autoprov_ad::AdSettings::from_json(settings)
                .map_err(|e| format!("connection file {}: {e}", path.display()))?;
            let ad = autoprov_ad::AdConnector::from_settings(connection, settings, lazily)
                .await
                .map_err(|e| format!("connection file {}: {e}", path.display()))?;
            Ok(Arc::new(ad))
        }
        other => Err(format!(
            "connection file {}: unknown package `{other}` (ActiveDirectory or InMemory)",
            path.display()
        )),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn bind_password(args: &ConnectionArgs) -> Result<Option<String>, String> {
    if args.bind_password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading the bind password from standard input: {e}"))?;
        return Ok(Some(first_line(&text)));
    }
    if let Some(file) = &args.bind_password_file {
        return read_secret_file(file).map(Some);
    }
    Ok(std::env::var(&args.bind_password_env)
        .ok()
        .filter(|v| !v.is_empty()))
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| first_line(&t))
        .map_err(|e| format!("reading the bind password file {}: {e}", path.display()))
}
