//! What `hafront run` loads at start beyond the configuration file's own
//! checks: each relay's keys, certificates and secrets as its transport
//! reads them (a private key given as a certificate, a garbage CA file, a
//! certificate whose key does not match), the alert mail settings, and the
//! VRRP instances' interfaces, and that direct-routing servers are on their
//! interface's subnet.
//! `check`, `run` and `reload` all call [`check`], so a file `check` passes
//! starts, and one it refuses is refused at the same location.

use std::net::IpAddr;
use std::path::Path;

use hafront_config::{Config, ConfigError, KeyPath, Relay, RelayMode, Secret};

/// Loads what `config` needs at start, without starting anything, and
/// returns each problem located in `text` (the file named `file`).
pub fn check(config: &Config, file: &str, text: &str) -> Vec<ConfigError> {
    let error = |key: KeyPath, message: String| located(file, text, key, message);
    let mut errors = Vec::new();
    for (name, relay) in &config.relays {
        if let Err(problem) = crate::relay::check_mode(&relay.mode) {
            let message = problem.to_string();
            let mode = KeyPath::root().key("relays").key(name).key("mode");
            // The key whose file the message names; the mode when none does.
            let key = mode_files(&relay.mode)
                .into_iter()
                .find(|(_, path)| message.contains(&format!("{}:", path.display())))
                .map_or(mode.clone(), |(key, _)| mode.key(key));
            errors.push(error(key, message));
        }
    }
    for (name, instance) in &config.vrrp.instances {
        if nix::net::if_::if_nametoindex(instance.interface.as_str()).is_err() {
            let key = KeyPath::root()
                .key("vrrp")
                .key("instances")
                .key(name)
                .key("interface");
            let message = format!(
                "no network interface named {:?} on this host (`ip link` lists them); a file \
                 written for another machine is checked with --skip-files",
                instance.interface
            );
            errors.push(error(key, message));
        }
    }
    errors.extend(direct_routing_subnets(config, &error));
    if let Some(email) = &config.alerts.email
        && let Err(problem) = crate::alerts::check_email(email)
    {
        let key = KeyPath::root().key("alerts").key("email");
        errors.push(error(key, problem.to_string()));
    }
    errors
}

/// Direct routing reaches servers by their MAC address on the VIP's
/// interface: each server of a direct-routing relay must be on one of the
/// interface's IPv4 networks on this host.
fn direct_routing_subnets(
    config: &Config,
    error: &impl Fn(KeyPath, String) -> ConfigError,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for relay in config.relays.values() {
        let Some((_, instance)) = config.direct_routing_instance(relay) else {
            continue;
        };
        // A missing interface is reported with its instance.
        let Ok(networks) = hafront_direct::interface_networks(&instance.interface) else {
            continue;
        };
        let Some(pool) = config.pools.get(&relay.pool) else {
            continue;
        };
        for (index, server) in pool.servers.iter().enumerate() {
            let IpAddr::V4(address) = server.address.ip() else {
                continue;
            };
            if networks.iter().any(|network| network.contains(&address)) {
                continue;
            }
            let key = KeyPath::root()
                .key("pools")
                .key(&relay.pool)
                .key("servers")
                .index(index)
                .key("address");
            let on = if networks.is_empty() {
                "it has no IPv4 address".to_owned()
            } else {
                let list: Vec<String> = networks.iter().map(ToString::to_string).collect();
                format!("its networks are {}", list.join(", "))
            };
            errors.push(error(
                key,
                format!(
                    "direct routing reaches servers by their MAC address on {}, so {address} \
                     must be on that interface's subnet, but {on}",
                    instance.interface
                ),
            ));
        }
    }
    errors
}

/// `message` about the value at `key`, located in `text` (the file named
/// `file`).
pub fn located(file: &str, text: &str, key: KeyPath, message: String) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        position: hafront_config::locate(text, &key),
        key,
        message,
    }
}

/// Where relay `name`'s failure to start, `problem` (one that no check can
/// foresee, such as an address in use), belongs: the listen address it
/// names, else the relay.
pub fn relay_failure_key(name: &str, relay: &Relay, problem: &str) -> KeyPath {
    let relay_key = KeyPath::root().key("relays").key(name);
    relay
        .listen
        .iter()
        .position(|address| problem.contains(&format!("cannot listen on {address}:")))
        .map_or(relay_key.clone(), |index| {
            relay_key.key("listen").index(index)
        })
}

/// The files a relay mode reads, by key, in the order they are read.
fn mode_files(mode: &RelayMode) -> Vec<(&'static str, &Path)> {
    match mode {
        RelayMode::Plain => Vec::new(),
        RelayMode::SpipedEncrypt(spiped) | RelayMode::SpipedDecrypt(spiped) => {
            vec![("key_file", &spiped.key_file)]
        }
        RelayMode::TlsServer(tls) => {
            let mut files = Vec::new();
            files.extend(
                tls.client_ca_file
                    .as_deref()
                    .map(|file| ("client_ca_file", file)),
            );
            files.extend([("cert_file", &*tls.cert_file), ("key_file", &tls.key_file)]);
            files
        }
        RelayMode::TlsClient(tls) => {
            let mut files: Vec<(&str, &Path)> = tls
                .ca_file
                .as_deref()
                .map(|file| ("ca_file", file))
                .into_iter()
                .collect();
            files.extend(tls.cert_file.as_deref().map(|file| ("cert_file", file)));
            files.extend(tls.key_file.as_deref().map(|file| ("key_file", file)));
            files
        }
        RelayMode::Gateway(gateway) => match &gateway.secret {
            Secret::File(file) => vec![("secret", file.as_path())],
            Secret::Value(_) => Vec::new(),
        },
    }
}
