//! The `hafront` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use hafront::control::{ClientError, ReloadOutcome, Request, Response};

/// Keeps a database service reachable when machines die: VRRP, health
/// checks, relays and alerts in one daemon.
#[derive(Parser)]
#[command(name = "hafront", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground until SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// More log detail: -v for debug, -vv for trace (overrides the config).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Validate a configuration file: prints OK, or every error with file:line:column.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Check everything except the files the configuration names (secrets,
        /// keys, certificates, scripts): their existence, modes and owners. For
        /// a file written for another machine.
        #[arg(long)]
        skip_files: bool,
        /// Also log in to the servers of every pool with failover, as its user, and
        /// report what would make a failover fail (no login, a missing privilege, a
        /// server that is not MariaDB, log_slave_updates off); with a quorum, get a lease
        /// from etcd and report a TTL etcd would not grant as asked.
        #[arg(long)]
        connect: bool,
    },
    /// Show the running daemon's VRRP instances, pools, servers, relays and
    /// pending alerts. Exits 3 when no daemon answers.
    Status {
        #[command(flatten)]
        target: ControlTarget,
        /// Print the status as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Make the running daemon re-read its configuration file and apply
    /// what changed. A bad file is refused (errors printed with
    /// file:line:column) and the running configuration kept.
    Reload {
        #[command(flatten)]
        target: ControlTarget,
        /// Only print what would change (+ added, - removed, ~ changed).
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove the VRRP instances' virtual addresses from their interfaces, and
    /// with a quorum delete the leader keys this node holds in etcd: what a
    /// killed daemon left behind. For systemd's `ExecStopPost` (run it only
    /// when the daemon is not running); prints each address and key released.
    Release {
        /// Configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Planned switchover: make POOL's primary read-only, let its writes finish (bounded),
    /// wait until the target has every transaction, promote it, and make the old primary
    /// its replica. Undone if the target cannot catch up.
    Switchover {
        #[command(flatten)]
        target: ControlTarget,
        /// The pool (with a `failover` block).
        pool: String,
        /// The server to promote (default: the replica with the least lag).
        #[arg(long)]
        to: Option<String>,
    },
    /// Automatic failover operations.
    Failover {
        #[command(subcommand)]
        action: FailoverAction,
    },
    /// Give a server no new clients; its open connections finish (HAProxy's drain). Kept
    /// across reloads and restarts until `hafront enable`.
    Drain {
        #[command(flatten)]
        target: ControlTarget,
        /// The server, as POOL/SERVER.
        server: String,
    },
    /// Let a drained server take new clients again.
    Enable {
        #[command(flatten)]
        target: ControlTarget,
        /// The server, as POOL/SERVER.
        server: String,
    },
    /// Print the token a gateway client sends to reach ADDRESS (`ip:port`),
    /// encrypted with the gateway relay's secret, as
    /// `openssl enc -aes-256-cbc -a -salt -md md5` would.
    GatewayToken {
        /// Configuration file holding the gateway relay.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The gateway relay (needed when there are several).
        #[arg(long)]
        relay: Option<String>,
        /// The server the client wants, as `ip:port`; must be on the allow-list.
        address: String,
    },
    /// Print a hafront configuration equivalent to a keepalived or HAProxy one;
    /// what has no equivalent becomes a comment naming its file and line.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    Generate {
        /// Directory to write `man/` and `completions/` into.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ImportFrom {
    /// A keepalived configuration (includes are followed).
    Keepalived {
        /// The keepalived.conf to translate.
        file: PathBuf,
    },
    /// An HAProxy configuration.
    Haproxy {
        /// The haproxy.cfg to translate.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum FailoverAction {
    /// Acknowledge POOL's last automatic failover: another may happen at once instead of
    /// after the `block` window.
    Ack {
        #[command(flatten)]
        target: ControlTarget,
        /// The pool.
        pool: String,
    },
}

/// Which daemon to talk to.
#[derive(clap::Args)]
struct ControlTarget {
    /// Configuration file whose `global.control_socket` names the socket.
    #[arg(short, long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Control socket to use instead of the configuration's.
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl ControlTarget {
    /// The socket path: `--socket`, else the configuration's
    /// `global.control_socket`, read leniently so that a daemon can still be
    /// reached (and told to reload) while the file has errors elsewhere.
    fn socket(&self) -> PathBuf {
        #[derive(serde::Deserialize, Default)]
        struct Lenient {
            #[serde(default)]
            global: LenientGlobal,
        }
        #[derive(serde::Deserialize, Default)]
        struct LenientGlobal {
            control_socket: Option<PathBuf>,
        }
        if let Some(socket) = &self.socket {
            return socket.clone();
        }
        let default = || hafront_config::Global::default().control_socket;
        let Ok(text) = std::fs::read_to_string(&self.config) else {
            return default();
        };
        match serde_saphyr::from_str::<Lenient>(&text) {
            Ok(lenient) => lenient.global.control_socket.unwrap_or_else(default),
            // Broken YAML: a plain `control_socket: PATH` line still counts.
            Err(_) => text
                .lines()
                .find_map(|line| line.trim().strip_prefix("control_socket:"))
                .map(|value| PathBuf::from(value.trim().trim_matches(['"', '\''])))
                .unwrap_or_else(default),
        }
    }
}

/// Prints the translation of a keepalived or HAProxy configuration, and a
/// summary on stderr. Fails when the input cannot be read or configures
/// nothing hafront does.
fn import(from: &ImportFrom) -> ExitCode {
    let (file, translated) = match from {
        ImportFrom::Keepalived { file } => (file, hafront_import::keepalived(file)),
        ImportFrom::Haproxy { file } => (file, hafront_import::haproxy(file)),
    };
    let translation = match translated {
        Ok(translation) => translation,
        Err(error) => {
            eprintln!("hafront import: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", translation.yaml);
    eprintln!(
        "hafront import: {} line(s) of {} not translated (comments marked \"not translated\")",
        translation.untranslated,
        file.display()
    );
    for secret in &translation.secret_files {
        eprintln!(
            "hafront import: create {secret} (mode 600) with the password, as its comment says"
        );
    }
    if translation.configures_something {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "hafront import: nothing in {} translates to hafront: the output configures nothing",
            file.display()
        );
        ExitCode::FAILURE
    }
}

/// Exit status of `status` and `reload` when no daemon answers (as LSB
/// `status` actions report "program is not running").
const NOT_RUNNING: u8 = 3;

const DEFAULT_CONFIG: &str = "/etc/hafront/hafront.yaml";

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Generate { dir } => match hafront::manual::generate(Cli::command(), &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hafront generate: {}: {err}", dir.display());
                ExitCode::FAILURE
            }
        },
        Command::Status { target, json } => status(&target, json),
        Command::Reload { target, dry_run } => reload(&target, dry_run),
        Command::Release { config } => release(&config),
        Command::Switchover { target, pool, to } => act(&target, &Request::Switchover { pool, to }),
        Command::Failover {
            action: FailoverAction::Ack { target, pool },
        } => act(&target, &Request::FailoverAck { pool }),
        Command::Drain { target, server } => act(&target, &Request::Drain { server }),
        Command::Enable { target, server } => act(&target, &Request::Enable { server }),
        Command::GatewayToken {
            config,
            relay,
            address,
        } => match hafront::relay::gateway::gateway_token(&config, relay.as_deref(), &address) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(problem) => {
                eprintln!("hafront gateway-token: {problem}");
                ExitCode::FAILURE
            }
        },
        Command::Import { from } => import(&from),
        Command::Check {
            config,
            skip_files,
            connect,
        } => match hafront_config::load_with(
            &config,
            hafront_config::ParseOptions {
                check_files: !skip_files,
            },
        ) {
            Ok(loaded) if !skip_files && !check_startup(&config, &loaded) => ExitCode::FAILURE,
            Ok(loaded) if connect => check_servers(&config, &loaded),
            Ok(_) => {
                println!("OK");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, verbose } => {
            let loaded = match hafront_config::load(&config) {
                Ok(loaded) if check_startup(&config, &loaded) => loaded,
                Ok(_) => return ExitCode::FAILURE,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            hafront::logging::init(&loaded.global.log, verbose);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("hafront: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(hafront::daemon::run(config, loaded)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Sends `request` to the daemon; on failure prints why and returns the exit
/// status to use.
fn ask(target: &ControlTarget, request: &Request) -> Result<Response, ExitCode> {
    match hafront::control::request(&target.socket(), request) {
        Ok(Response::Error { message }) => {
            eprintln!("hafront: {message}");
            Err(ExitCode::FAILURE)
        }
        Ok(response) => Ok(response),
        Err(err @ ClientError::NotRunning { .. }) => {
            eprintln!("{err}");
            Err(ExitCode::from(NOT_RUNNING))
        }
        Err(err) => {
            eprintln!("{err}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// A single-threaded runtime for a command's few network calls; says why when there is none.
fn small_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .inspect_err(|err| eprintln!("hafront: cannot start the async runtime: {err}"))
        .ok()
}

/// What `run` loads at start from the files `config` (read from `path`)
/// names ([`hafront::startup::check`]); prints each problem and returns
/// false when there is one.
fn check_startup(path: &std::path::Path, config: &hafront_config::Config) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let errors = hafront::startup::check(config, &path.display().to_string(), &text);
    for error in &errors {
        eprintln!("{error}");
    }
    errors.is_empty()
}

/// `hafront check --connect` after the file itself passed.
fn check_servers(path: &std::path::Path, config: &hafront_config::Config) -> ExitCode {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Some(runtime) = small_runtime() else {
        return ExitCode::FAILURE;
    };
    let file = path.display().to_string();
    let node = node_name(config);
    let errors = runtime.block_on(async {
        let mut errors = hafront::failover::check_servers(config, &file, &text).await;
        errors.extend(hafront::quorum::check_etcd(config, &node, &file, &text).await);
        errors
    });
    if errors.is_empty() {
        println!("OK");
        return ExitCode::SUCCESS;
    }
    for error in errors {
        eprintln!("{error}");
    }
    ExitCode::FAILURE
}

/// Asks the daemon for an operator's action and prints what it did.
fn act(target: &ControlTarget, request: &Request) -> ExitCode {
    match ask(target, request) {
        Ok(Response::Done { message }) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("hafront: the daemon answered something unexpected");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

fn status(target: &ControlTarget, json: bool) -> ExitCode {
    let status = match ask(target, &Request::Status) {
        Ok(Response::Status(status)) => status,
        Ok(_) => {
            eprintln!("hafront: the daemon answered something other than a status");
            return ExitCode::FAILURE;
        }
        Err(code) => return code,
    };
    if json {
        match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("hafront: cannot print the status: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", status.render_table(std::time::SystemTime::now()));
    }
    ExitCode::SUCCESS
}

fn release(config: &std::path::Path) -> ExitCode {
    let loaded = match hafront_config::load(config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let Some(runtime) = small_runtime() else {
        return ExitCode::FAILURE;
    };
    let mut code = ExitCode::SUCCESS;
    for (instance, result) in runtime.block_on(hafront::vrrp::release(&loaded)) {
        match result {
            Ok(removed) => {
                for address in removed {
                    println!("{instance}: removed {address}");
                }
            }
            Err(err) => {
                eprintln!("hafront: {instance}: {err}");
                code = ExitCode::FAILURE;
            }
        }
    }
    let node = node_name(&loaded);
    match runtime.block_on(hafront::quorum::release_node_keys(&loaded, &node)) {
        Ok(keys) => {
            for key in keys {
                println!("quorum: released {key}");
            }
        }
        Err(err) => {
            eprintln!("hafront: quorum: {err}; this node's keys expire with its lease");
            code = ExitCode::FAILURE;
        }
    }
    code
}

/// This node's name: `global.node`, else the host name.
fn node_name(config: &hafront_config::Config) -> String {
    config
        .global
        .node
        .clone()
        .or_else(|| nix::unistd::gethostname().ok()?.into_string().ok())
        .unwrap_or_else(|| "hafront".to_owned())
}

fn reload(target: &ControlTarget, dry_run: bool) -> ExitCode {
    let report = match ask(target, &Request::Reload { dry_run }) {
        Ok(Response::Reload(report)) => report,
        Ok(_) => {
            eprintln!("hafront: the daemon answered something other than a reload report");
            return ExitCode::FAILURE;
        }
        Err(code) => return code,
    };
    // The same file, however either path is spelt (relative, through a link).
    let same = match (
        std::fs::canonicalize(&target.config),
        std::fs::canonicalize(&report.config),
    ) {
        (Ok(named), Ok(read)) => named == read,
        _ => std::path::absolute(&target.config).ok().as_ref() == Some(&report.config),
    };
    if target.socket.is_none() && !same {
        eprintln!(
            "hafront: the daemon read {}, not {}: -c only finds its control socket",
            report.config.display(),
            target.config.display()
        );
    } else {
        eprintln!("hafront: the daemon read {}", report.config.display());
    }
    for change in &report.changes {
        println!("{change}");
    }
    for error in &report.errors {
        eprintln!("{error}");
    }
    match report.outcome {
        ReloadOutcome::Applied | ReloadOutcome::DryRun => {
            if report.changes.is_empty() {
                println!("no changes");
            }
            ExitCode::SUCCESS
        }
        ReloadOutcome::Refused => {
            eprintln!("hafront: reload refused; the running configuration stays in force");
            ExitCode::FAILURE
        }
        ReloadOutcome::Incomplete => {
            eprintln!("hafront: reload applied except for the errors above");
            ExitCode::FAILURE
        }
    }
}
