//! The configuration mapped onto the driver's: which changes apply live, the tunables, and
//! the driver settings (password read from its secret, the interface's primary address,
//! the VIP lifetime).

use std::time::Duration;

use hafront_config::{V3Checksum, VrrpInstance};
use hafront_vrrp::linux::{self, DriverConfig};
use hafront_vrrp::{Auth, ChecksumForm, GarpConfig, InstanceConfig, Password, Tunables, Version};
use ipnet::IpNet;
use tracing::info;

use super::VrrpError;

/// Whether `wanted` can be applied to the running instance without a restart: only
/// `track`, the priority (not to or from the address owner's 255), preemption and
/// gratuitous ARP may differ. Anything else (interface, VRID, version, addresses, interval,
/// password, peers) restarts it.
pub(super) fn applies_live(running: &VrrpInstance, wanted: &VrrpInstance) -> bool {
    let owner = |instance: &VrrpInstance| instance.priority == u8::MAX;
    let strip = |instance: &VrrpInstance| VrrpInstance {
        track: Vec::new(),
        priority: 0,
        preempt: false,
        preempt_delay: Duration::ZERO,
        garp: hafront_config::Garp::default(),
        ..instance.clone()
    };
    owner(running) == owner(wanted) && strip(running) == strip(wanted)
}

/// The settings a reload changes live.
pub(super) fn tunables(config: &VrrpInstance) -> Tunables {
    Tunables {
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        garp: garp(config),
    }
}

fn garp(config: &VrrpInstance) -> GarpConfig {
    GarpConfig {
        repeat: config.garp.repeat,
        interval: config.garp.interval,
        refresh: config.garp.refresh,
    }
}

/// Maps the configuration onto the driver's: version, password, checksum form, the
/// interface's primary address, gratuitous ARP, unicast peers and the VIP lifetime.
pub(super) async fn driver_config(
    name: &str,
    config: &VrrpInstance,
) -> Result<DriverConfig, VrrpError> {
    let auth_error = |message: String| VrrpError::AuthPass {
        instance: name.to_owned(),
        message,
    };
    let version = if config.version == 2 {
        Version::V2
    } else {
        Version::V3
    };
    let auth = match &config.auth_pass {
        None => Auth::None,
        Some(secret) => {
            let text = secret
                .reveal()
                .map_err(|err| auth_error(format!("cannot read it: {err}")))?;
            let password = Password::new(text.as_bytes())
                .ok_or_else(|| auth_error("longer than 8 bytes".to_owned()))?;
            Auth::Password(password)
        }
    };
    let ipv6 = config
        .virtual_addresses
        .first()
        .is_some_and(|vip| matches!(vip, IpNet::V6(_)));
    let primary_address =
        linux::primary_address(&config.interface, ipv6, &config.virtual_addresses)
            .await
            .map_err(|source| VrrpError::Driver {
                instance: name.to_owned(),
                source,
            })?;
    info!(instance = %name, interface = %config.interface, %primary_address, "VRRP instance starting");
    let instance = InstanceConfig {
        vrid: config.vrid,
        version,
        priority: config.priority,
        advert_interval: config.advert_interval,
        virtual_addresses: config.virtual_addresses.clone(),
        primary_address,
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        auth,
        garp: garp(config),
    };
    Ok(DriverConfig {
        interface: config.interface.clone(),
        vip_lifetime: DriverConfig::default_vip_lifetime(config.advert_interval),
        // Set by the instance when a quorum gates mastership.
        mastership_gate: false,
        instance,
        unicast_peers: config.unicast_peers.clone(),
        checksum: match config.v3_checksum {
            V3Checksum::PseudoHeader => ChecksumForm::PseudoHeader,
            V3Checksum::MessageOnly => ChecksumForm::MessageOnly,
        },
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The instance `vip` of a configuration: `keys` (YAML flow mapping entries) over
    /// defaults for the required ones.
    fn instance(keys: &str) -> VrrpInstance {
        let defaults = [
            ("interface", "eth0"),
            ("vrid", "7"),
            ("priority", "100"),
            ("virtual_addresses", "[10.213.0.100/24]"),
        ];
        let mut entries: Vec<String> = defaults
            .iter()
            .filter(|(key, _)| {
                !keys.starts_with(&format!("{key}:")) && !keys.contains(&format!(", {key}:"))
            })
            .map(|(key, value)| format!("{key}: {value}"))
            .collect();
        entries.push(keys.to_owned());
        let yaml = format!(
            "vrrp:\n  instances:\n    vip: {{ {} }}\n",
            entries.join(", ")
        );
        let config = hafront_config::parse(&yaml, "test.yaml").expect("valid");
        config.vrrp.instances["vip"].clone()
    }

    #[test]
    fn a_reload_restarts_an_instance_only_for_what_cannot_change_live() {
        let running = instance("preempt: true");
        for live in [
            "preempt: false",
            "priority: 120",
            "preempt_delay: 5s",
            "garp: { repeat: 1, refresh: 10s }",
            "track: [{ interface: lo }]",
        ] {
            assert!(applies_live(&running, &instance(live)), "{live}");
        }
        for restart in [
            "interface: eth1",
            "vrid: 8",
            "version: 2, advert_interval: 1s",
            "virtual_addresses: [10.213.0.101/24]",
            "priority: 255",
        ] {
            assert!(!applies_live(&running, &instance(restart)), "{restart}");
        }
        assert_ne!(tunables(&running), tunables(&instance("preempt: false")));
    }
}
