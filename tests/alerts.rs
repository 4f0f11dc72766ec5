//! Alert mails against a real SMTP server on loopback (Debian's aiosmtpd):
//! content and count, coalescing and rate limit under flapping, queueing
//! while the server is down, restarts, STARTTLS with AUTH and a private CA,
//! and implicit TLS.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hafront::alerts::{Alerts, AlertsHandle, Event, check_email};
use hafront_config::{Alerts as AlertsConfig, Config, Email, Global, Secret, SmtpSecurity};
use hafront_health::{HealthEvent, Status};
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use support::{mysql_health, mysql_pool_config};

/// The SMTP sink: each accepted mail becomes a JSON file in `--dir`.
const SINK: &str = r##""""SMTP sink for hafront's alert tests: every accepted mail becomes a JSON
file in --dir (written to a temporary name, then renamed)."""
import argparse, asyncio, email, email.policy, json, logging, os, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--dir", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--auth")
parser.add_argument("--reject", action="append", default=[])
parser.add_argument("--delay", type=float, default=0.0)
args = parser.parse_args()
# Refused handshakes are expected in some tests; the tests report failures.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

received = 0

class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in args.reject:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global received
        await asyncio.sleep(args.delay)
        received += 1
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "body": message.get_content().replace("\r\n", "\n"),
        }
        name = os.path.join(args.dir, "%06d-%d.json" % (received, os.getpid()))
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    user, password = args.auth.split(":", 1)
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok)

context = None
if args.cert:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

def factory():
    kwargs = {}
    if args.mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if args.auth:
        kwargs.update(authenticator=authenticator, auth_required=True)
    return SMTP(Sink(), hostname="sink.test", **kwargs)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", args.port,
                                      ssl=context if args.mode == "tls" else None,
                                      reuse_address=True)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"##;

/// A running SMTP sink, killed by PID when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
}

/// How the sink secures and guards its sessions.
#[derive(Clone, Copy)]
enum SinkMode<'a> {
    Plain,
    /// Plain, answering 550 to RCPT TO for this address.
    Rejecting {
        recipient: &'a str,
    },
    Starttls {
        tls: &'a TestPki,
        auth: &'a str,
    },
    Tls {
        tls: &'a TestPki,
    },
    /// Plain, taking `seconds` to accept each mail.
    Slow {
        seconds: f64,
    },
}

impl SmtpSink {
    /// Starts the sink on `port` (0: any free port), writing mails to `mail_dir`.
    fn start(work: &Path, mail_dir: &Path, port: u16, mode: SinkMode<'_>) -> SmtpSink {
        let script = work.join("sink.py");
        std::fs::write(&script, SINK).unwrap();
        std::fs::create_dir_all(mail_dir).unwrap();
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(&script)
            .arg("--dir")
            .arg(mail_dir)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        match mode {
            SinkMode::Plain => {}
            SinkMode::Rejecting { recipient } => {
                command.args(["--reject", recipient]);
            }
            SinkMode::Slow { seconds } => {
                command.args(["--delay", &seconds.to_string()]);
            }
            SinkMode::Starttls { tls, auth } => {
                command.args(["--mode", "starttls", "--auth", auth]);
                command.arg("--cert").arg(&tls.server_cert);
                command.arg("--key").arg(&tls.server_key);
            }
            SinkMode::Tls { tls } => {
                command.args(["--mode", "tls"]);
                command.arg("--cert").arg(&tls.server_cert);
                command.arg("--key").arg(&tls.server_key);
            }
        }
        let mut child = command.spawn().expect("python3 with aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|port| port.trim().parse().ok());
        let mut sink = SmtpSink { child, port: 0 };
        sink.port = port.unwrap_or_else(|| panic!("SMTP sink did not start: {line:?}"));
        sink
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port held but not listening: connections to it are refused
/// until a sink binds it too (both sockets use SO_REUSEADDR).
fn reserved_port() -> (Socket, u16) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

/// A private CA and a server certificate for 127.0.0.1 signed by it.
struct TestPki {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl TestPki {
    fn generate(dir: &Path) -> TestPki {
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.pem"][..],
                &["-days", "2", "-subj", "/CN=hafront test CA"][..],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec[..],
                &["-keyout", "server.key", "-out", "server.csr"][..],
                &["-subj", "/CN=localhost"][..],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestPki {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

fn email(port: u16, security: SmtpSecurity, coalesce: Duration, max_per_hour: u32) -> Email {
    Email {
        smtp_host: "127.0.0.1".into(),
        smtp_port: Some(port),
        security,
        username: None,
        password: None,
        ca_file: None,
        from: "hafront <hafront@node1.example>".into(),
        to: vec!["ops@example.com".into(), "dba@example.com".into()],
        coalesce,
        max_per_hour,
        timeout: Duration::from_secs(5),
    }
}

fn config(state_dir: &Path, email: Email) -> Config {
    let global = Global {
        node: Some("node1".into()),
        state_dir: state_dir.to_path_buf(),
        ..Global::default()
    };
    mysql_pool_config(global, AlertsConfig { email: Some(email) }, Vec::new())
}

fn start(cfg: &Config) -> AlertsHandle {
    let snapshot = Arc::new(|| "pool mysql: db1 <state>, db2 up".to_owned());
    Alerts::start("node1".into(), cfg, snapshot).expect("alerts start")
}

fn health(server: &str, old: Status, new: Status, at: SystemTime) -> HealthEvent {
    let reason = if new == Status::Down {
        "connect: connection refused"
    } else {
        "ping ok"
    };
    mysql_health(server, old, new, reason, at)
}

/// Both servers discovered up: no mail for that.
fn discover(alerts: &AlertsHandle, at: SystemTime) {
    assert!(alerts.send(health("db1", Status::Unknown, Status::Up, at)));
    assert!(alerts.send(health("db2", Status::Unknown, Status::Up, at)));
}

/// The mails received so far, in arrival order.
fn mails(dir: &Path) -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default();
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    paths.sort();
    paths
        .iter()
        .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        .collect()
}

/// Waits (bounded) until at least `count` mails arrived; returns them all.
async fn wait_for_mails(dir: &Path, count: usize, patience: Duration) -> Vec<Value> {
    let deadline = Instant::now() + patience;
    loop {
        let received = mails(dir);
        if received.len() >= count || Instant::now() >= deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn queued(state_dir: &Path) -> usize {
    std::fs::read_dir(state_dir.join("mail-queue"))
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".mail")
        })
        .count()
}

fn text<'a>(mail: &'a Value, field: &str) -> &'a str {
    mail[field].as_str().unwrap_or_default()
}

#[tokio::test]
async fn down_then_up_sends_one_mail_each_and_the_recovery_says_how_long() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let sink = SmtpSink::start(work.path(), &inbox, 0, SinkMode::Plain);
    let cfg = config(
        work.path(),
        email(
            sink.port,
            SmtpSecurity::Plain,
            Duration::from_millis(200),
            20,
        ),
    );
    let alerts = start(&cfg);
    let down_at = SystemTime::now();
    discover(&alerts, down_at);
    assert!(alerts.send(health("db1", Status::Up, Status::Down, down_at)));

    let received = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "one mail for the failure");
    let down = &received[0];
    assert_eq!(
        text(down, "subject"),
        "[hafront node1] mysql/db1 (127.0.0.1:3306) is DOWN (was up): connect: connection refused"
    );
    assert_eq!(text(down, "mail_from"), "hafront@node1.example");
    assert_eq!(
        down["rcpt_tos"],
        serde_json::json!(["ops@example.com", "dba@example.com"])
    );
    let body = text(down, "body");
    assert!(
        body.starts_with("hafront on node node1 reports 1 event at "),
        "{body}"
    );
    assert!(
        body.contains(&humantime::format_rfc3339_seconds(down_at).to_string()),
        "{body}"
    );
    assert!(body.contains("pool mysql: db1 <state>, db2 up"), "{body}");
    assert!(
        !body.contains("db2 (127.0.0.1:3307)"),
        "discovery is not news: {body}"
    );

    let up_at = down_at + Duration::from_secs(150);
    assert!(alerts.send(health("db1", Status::Down, Status::Up, up_at)));
    let received = wait_for_mails(&inbox, 2, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2, "one mail for the recovery");
    assert_eq!(
        text(&received[1], "subject"),
        "[hafront node1] mysql/db1 (127.0.0.1:3306) is UP after being down for 2m 30s: ping ok"
    );

    // Shutdown queues whatever is pending and makes a last delivery pass.
    alerts.shutdown().await;
    assert_eq!(mails(&inbox).len(), 2, "no further mail");
    assert_eq!(queued(work.path()), 0);
    drop(sink);
}

#[tokio::test]
async fn last_server_down_names_the_pool_in_the_same_mail() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let sink = SmtpSink::start(work.path(), &inbox, 0, SinkMode::Plain);
    let cfg = config(
        work.path(),
        email(
            sink.port,
            SmtpSecurity::Plain,
            Duration::from_millis(300),
            20,
        ),
    );
    let alerts = start(&cfg);
    let at = SystemTime::now();
    discover(&alerts, at);
    alerts.send(health("db1", Status::Up, Status::Down, at));
    alerts.send(health("db2", Status::Up, Status::Down, at));
    let received = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
    alerts.shutdown().await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        text(&received[0], "subject"),
        "[hafront node1] pool mysql has NO healthy server (+2 more)"
    );
    assert!(text(&received[0], "body").contains("reports 3 events"));
    drop(sink);
}

/// The number of events a mail reports ("reports N event(s)").
fn reported_events(mail: &Value) -> usize {
    let body = text(mail, "body");
    let count = body
        .strip_prefix("hafront on node node1 reports ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok());
    count.unwrap_or_else(|| panic!("no event count in {body}"))
}

#[tokio::test]
async fn a_hundred_flaps_make_few_mails_and_lose_no_event() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let sink = SmtpSink::start(work.path(), &inbox, 0, SinkMode::Plain);
    let max_per_hour = 4;
    let cfg = config(
        work.path(),
        email(
            sink.port,
            SmtpSecurity::Plain,
            Duration::from_millis(150),
            max_per_hour,
        ),
    );
    let alerts = start(&cfg);
    let start_at = SystemTime::now();
    discover(&alerts, start_at);
    // A minute of flapping, compressed into two seconds.
    for flap in 0..100u64 {
        let at = start_at + Duration::from_millis(600 * flap);
        alerts.send(health("db1", Status::Up, Status::Down, at));
        tokio::time::sleep(Duration::from_millis(10)).await;
        alerts.send(health(
            "db1",
            Status::Down,
            Status::Up,
            at + Duration::from_millis(300),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = wait_for_mails(&inbox, 1, Duration::from_secs(10))
        .await
        .len();
    assert!(
        (1..=max_per_hour as usize).contains(&during),
        "{during} mails while flapping, limit {max_per_hour}"
    );

    assert_eq!(alerts.dropped(), 0);
    // Shutdown sends what the rate limit held back, as one mail; the sink
    // stores each mail before acknowledging it.
    alerts.shutdown().await;
    let received = mails(&inbox);
    assert!(
        received.len() <= max_per_hour as usize + 1,
        "{} mails in all",
        received.len()
    );
    let total: usize = received.iter().map(reported_events).sum();
    assert_eq!(total, 200, "every flap reported exactly once");
    let last = text(received.last().unwrap(), "body");
    assert!(
        last.contains("held back by the limit of 4 mails per hour"),
        "{last}"
    );
    drop(sink);
}

#[tokio::test]
async fn a_mail_queued_while_smtp_is_down_arrives_when_it_is_back() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let (_reserved, port) = reserved_port();
    let cfg = config(
        work.path(),
        email(port, SmtpSecurity::Plain, Duration::from_millis(100), 20),
    );
    let alerts = start(&cfg);
    let at = SystemTime::now();
    discover(&alerts, at);
    alerts.send(health("db1", Status::Up, Status::Down, at));

    let deadline = Instant::now() + Duration::from_secs(5);
    while queued(work.path()) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(queued(work.path()), 1, "the mail waits in the queue");

    let sink = SmtpSink::start(work.path(), &inbox, port, SinkMode::Plain);
    let received = wait_for_mails(&inbox, 1, Duration::from_secs(15)).await;
    assert_eq!(received.len(), 1, "delivered once the server is back");
    assert!(text(&received[0], "subject").contains("mysql/db1 (127.0.0.1:3306) is DOWN"));
    alerts.shutdown().await;
    assert_eq!(queued(work.path()), 0);
    assert_eq!(mails(&inbox).len(), 1);
    drop(sink);
}

#[tokio::test]
async fn a_queued_mail_survives_a_restart_and_arrives_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let (_reserved, port) = reserved_port();
    let cfg = config(
        work.path(),
        email(port, SmtpSecurity::Plain, Duration::from_millis(100), 20),
    );

    let first = start(&cfg);
    let at = SystemTime::now();
    discover(&first, at);
    first.send(health("db1", Status::Up, Status::Down, at));
    first.shutdown().await;
    assert_eq!(
        queued(work.path()),
        1,
        "undeliverable mail kept for the next run"
    );

    let sink = SmtpSink::start(work.path(), &inbox, port, SinkMode::Plain);
    let second = start(&cfg);
    let received = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert!(text(&received[0], "subject").contains("is DOWN"));
    second.shutdown().await;
    assert_eq!(queued(work.path()), 0);

    // Its start and its shutdown each make a delivery pass.
    let third = start(&cfg);
    third.shutdown().await;
    assert_eq!(mails(&inbox).len(), 1, "sent mail is not sent again");
    drop(sink);
}

#[tokio::test]
async fn a_mail_refused_for_good_is_set_aside_not_retried() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let sink = SmtpSink::start(
        work.path(),
        &inbox,
        0,
        SinkMode::Rejecting {
            recipient: "dba@example.com",
        },
    );
    let cfg = config(
        work.path(),
        email(
            sink.port,
            SmtpSecurity::Plain,
            Duration::from_millis(100),
            20,
        ),
    );
    let alerts = start(&cfg);
    alerts.send(health(
        "db1",
        Status::Unknown,
        Status::Down,
        SystemTime::now(),
    ));
    let failed = work.path().join("mail-queue").join("failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&failed).map_or(0, Iterator::count) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alerts.shutdown().await;
    assert_eq!(
        std::fs::read_dir(&failed).unwrap().count(),
        1,
        "kept for the operator"
    );
    assert_eq!(queued(work.path()), 0, "not retried");
    assert!(mails(&inbox).is_empty());
    drop(sink);
}

#[tokio::test]
async fn starttls_with_auth_against_a_private_ca() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let pki = TestPki::generate(work.path());
    let sink = SmtpSink::start(
        work.path(),
        &inbox,
        0,
        SinkMode::Starttls {
            tls: &pki,
            auth: "alerts:s3cret pass",
        },
    );
    let password_file = work.path().join("smtp-password");
    std::fs::write(&password_file, "s3cret pass\n").unwrap();
    let mut settings = email(
        sink.port,
        SmtpSecurity::Starttls,
        Duration::from_millis(100),
        20,
    );
    settings.username = Some("alerts".into());
    settings.password = Some(Secret::File(password_file));
    settings.ca_file = Some(pki.ca_cert.clone());
    let cfg = config(work.path(), settings);
    let alerts = start(&cfg);
    alerts.send(Event::from(health(
        "db1",
        Status::Unknown,
        Status::Down,
        SystemTime::now(),
    )));
    let received = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
    alerts.shutdown().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["tls"], Value::Bool(true));
    assert_eq!(received[0]["authenticated"], Value::Bool(true));
    drop(sink);
}

#[tokio::test]
async fn starttls_refuses_a_server_the_ca_did_not_sign() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let server_pki = TestPki::generate(&{
        let dir = work.path().join("server-pki");
        std::fs::create_dir(&dir).unwrap();
        dir
    });
    let other_pki = TestPki::generate(&{
        let dir = work.path().join("other-pki");
        std::fs::create_dir(&dir).unwrap();
        dir
    });
    let sink = SmtpSink::start(
        work.path(),
        &inbox,
        0,
        SinkMode::Starttls {
            tls: &server_pki,
            auth: "alerts:pw",
        },
    );
    let mut settings = email(
        sink.port,
        SmtpSecurity::Starttls,
        Duration::from_millis(100),
        20,
    );
    settings.username = Some("alerts".into());
    settings.password = Some(Secret::Value("pw".into()));
    settings.ca_file = Some(other_pki.ca_cert.clone());
    let cfg = config(work.path(), settings);
    let alerts = start(&cfg);
    alerts.send(health(
        "db1",
        Status::Unknown,
        Status::Down,
        SystemTime::now(),
    ));
    // Shutdown queues the mail and makes a last delivery pass.
    alerts.shutdown().await;
    assert!(
        mails(&inbox).is_empty(),
        "no mail (and no password) to an unverified server"
    );
    assert_eq!(queued(work.path()), 1, "the mail stays queued");
    drop(sink);
}

#[tokio::test]
async fn implicit_tls() {
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let pki = TestPki::generate(work.path());
    let sink = SmtpSink::start(work.path(), &inbox, 0, SinkMode::Tls { tls: &pki });
    let mut settings = email(sink.port, SmtpSecurity::Tls, Duration::from_millis(100), 20);
    settings.ca_file = Some(pki.ca_cert.clone());
    let cfg = config(work.path(), settings);
    let alerts = start(&cfg);
    alerts.send(health(
        "db2",
        Status::Unknown,
        Status::Down,
        SystemTime::now(),
    ));
    let received = wait_for_mails(&inbox, 1, Duration::from_secs(10)).await;
    alerts.shutdown().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["tls"], Value::Bool(true));
    assert!(text(&received[0], "body").contains("mysql/db2 (127.0.0.1:3307) is DOWN"));
    drop(sink);
}

#[tokio::test]
async fn a_hanging_smtp_server_delays_nothing_else() {
    let work = tempfile::tempdir().unwrap();
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut settings = email(port, SmtpSecurity::Plain, Duration::from_millis(50), 20);
    settings.timeout = Duration::from_secs(3);
    let mut cfg = config(work.path(), settings);
    let script = work.path().join("count.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"$HAFRONT_EVENT\" >> \"$1\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = work.path().join("count.log");
    cfg.notify = vec![hafront_config::Notify {
        command: vec![script.display().to_string(), log.display().to_string()],
        instance: None,
        pool: None,
        timeout: Duration::from_secs(5),
        user: None,
    }];
    let alerts = start(&cfg);
    let at = SystemTime::now();
    discover(&alerts, at);
    let sending = Instant::now();
    for flap in 0..20 {
        let (old, new) = if flap % 2 == 0 {
            (Status::Up, Status::Down)
        } else {
            (Status::Down, Status::Up)
        };
        assert!(alerts.send(health("db1", old, new, at)));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let sent_in = sending.elapsed();
    assert!(
        sent_in < Duration::from_secs(3),
        "producers waited: {sent_in:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 22
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        22,
        "scripts ran while SMTP hung"
    );
    let stopping = Instant::now();
    alerts.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(12),
        "shutdown is bounded"
    );
    assert!(queued(work.path()) >= 1, "undelivered mails stay queued");
    drop(silent);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = config(
        work.path(),
        email(25, SmtpSecurity::Plain, Duration::from_secs(1), 1),
    );
    cfg.alerts.email = None;
    let alerts = start(&cfg);
    let sender = alerts.sender();
    let at = SystemTime::now();
    // The dispatcher cannot run while this single-threaded test does not
    // yield, so the queue fills up.
    let accepted = (0..10_000)
        .filter(|_| sender.send(health("db1", Status::Up, Status::Down, at)))
        .count();
    assert_eq!(accepted, 4096);
    assert_eq!(alerts.dropped(), 10_000 - 4096);
    assert_eq!(sender.dropped(), alerts.dropped());
    alerts.shutdown().await;
}

#[test]
fn invalid_settings_are_refused_at_start() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let work = tempfile::tempdir().unwrap();
    let snapshot = Arc::new(String::new);
    let mut settings = email(25, SmtpSecurity::Plain, Duration::from_secs(1), 1);
    settings.to = vec!["not an address".into()];
    let err =
        Alerts::start("n".into(), &config(work.path(), settings), snapshot.clone()).unwrap_err();
    assert!(err.to_string().contains("not an address"), "{err}");

    let mut settings = email(25, SmtpSecurity::Plain, Duration::from_secs(1), 1);
    settings.password = Some(Secret::Value("hunter2".into()));
    let err = Alerts::start("n".into(), &config(work.path(), settings), snapshot).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    let mut settings = email(25, SmtpSecurity::Starttls, Duration::from_secs(1), 1);
    assert!(check_email(&settings).is_ok());
    settings.ca_file = Some(work.path().join("missing-ca.pem"));
    let err = check_email(&settings).unwrap_err();
    assert!(err.to_string().contains("missing-ca.pem"), "{err}");
}

/// Every line of every mail body that reports an event of `db1`.
fn db1_event_lines(inbox: &Path) -> Vec<String> {
    mails(inbox)
        .iter()
        .flat_map(|mail| {
            text(mail, "body")
                .lines()
                .filter(|line| line.contains("mysql/db1 (127.0.0.1:3306) is "))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn reloads_while_servers_flap_and_smtp_is_slow_mail_every_transition_once() {
    const FLAPS: u64 = 12;
    let work = tempfile::tempdir().unwrap();
    let inbox = work.path().join("inbox");
    let sink = SmtpSink::start(work.path(), &inbox, 0, SinkMode::Slow { seconds: 0.2 });
    let notes = work.path().join("notes");
    let script = work.path().join("note.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$HAFRONT_SERVER $HAFRONT_NEW $HAFRONT_DOWN_SECONDS\" >> {}\n",
            notes.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut base = config(
        work.path(),
        email(
            sink.port,
            SmtpSecurity::Plain,
            Duration::from_millis(100),
            1000,
        ),
    );
    base.notify = vec![hafront_config::Notify {
        command: vec![script.display().to_string()],
        instance: None,
        pool: None,
        timeout: Duration::from_secs(10),
        user: None,
    }];
    // Each reload changes something else: the mail settings (a new mailer),
    // the log level, the notify scripts, the state directory (a new mail queue).
    let mut variants = vec![base.clone(); 5];
    let mail = |cfg: &mut Config| cfg.alerts.email.as_mut().unwrap().clone();
    let mut changed = mail(&mut variants[1]);
    changed.from = "hafront <alerts@node1.example>".into();
    changed.coalesce = Duration::from_millis(150);
    variants[1].alerts.email = Some(changed);
    variants[2].global.log.level = "debug".into();
    variants[3].notify[0].timeout = Duration::from_secs(20);
    variants[4].global.state_dir = work.path().join("state2");

    let alerts = start(&base);
    let t0 = SystemTime::now();
    discover(&alerts, t0);
    for flap in 0..FLAPS {
        let down_at = t0 + Duration::from_secs(100 * flap);
        assert!(alerts.send(health("db1", Status::Up, Status::Down, down_at)));
        let variant = &variants[flap as usize % variants.len()];
        alerts.reconfigure(variant).await.expect("reload");
        let up_at = down_at + Duration::from_secs(flap + 1);
        assert!(alerts.send(health("db1", Status::Down, Status::Up, up_at)));
        let variant = &variants[(flap as usize + 2) % variants.len()];
        alerts.reconfigure(variant).await.expect("reload");
        // Paced so that reloads land while mails are being delivered.
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    // Every transition reaches the mailbox (the sink takes 0.2 s a mail).
    let deadline = Instant::now() + Duration::from_secs(60);
    while db1_event_lines(&inbox).len() < 2 * FLAPS as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alerts.shutdown().await;

    let lines = db1_event_lines(&inbox);
    let downs = lines
        .iter()
        .filter(|line| line.contains(" is DOWN (was up)"))
        .count();
    assert_eq!(
        downs, FLAPS as usize,
        "each failure mailed once: {lines:#?}"
    );
    for flap in 0..FLAPS {
        let recovery = format!(" is UP after being down for {}s:", flap + 1);
        let mailed = lines.iter().filter(|line| line.contains(&recovery)).count();
        assert_eq!(
            mailed,
            1,
            "recovery after {}s mailed once: {lines:#?}",
            flap + 1
        );
    }
    assert_eq!(lines.len(), 2 * FLAPS as usize, "{lines:#?}");
    let sent = mails(&inbox).len();
    assert!(
        sent >= 6,
        "{sent} mails: reloads did not fall between deliveries"
    );
    assert_eq!(alerts_left_queued(work.path()), 0);

    // The notify scripts saw each transition once, with the outage's length.
    let noted = std::fs::read_to_string(&notes).unwrap();
    let mut noted: Vec<&str> = noted.lines().collect();
    noted.sort_unstable();
    // Discovery (unknown to up) is news to scripts, not to mail.
    let discovery = ["db1 up ".to_owned(), "db2 up ".to_owned()];
    let mut expected: Vec<String> = (0..FLAPS)
        .flat_map(|flap| ["db1 down ".to_owned(), format!("db1 up {}", flap + 1)])
        .chain(discovery)
        .collect();
    expected.sort_unstable();
    assert_eq!(noted, expected);
    drop(sink);
}

/// Mails still queued in either state directory the reloads used.
fn alerts_left_queued(work: &Path) -> usize {
    [work.to_path_buf(), work.join("state2")]
        .iter()
        .filter(|dir| dir.join("mail-queue").exists())
        .map(|dir| queued(dir))
        .sum()
}
