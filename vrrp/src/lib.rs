//! VRRP v2/v3 (RFC 3768, RFC 5798, RFC 9568): a wire codec, a sans-IO state machine, and
//! (on Linux) the driver that puts them on an interface.
//!
//! # Layers
//!
//! - [`wire`]: [`Advert::parse`] verifies a received message (length, version, type,
//!   checksum in both v3-over-IPv4 forms, address count, interval, auth type) and
//!   [`Advert::emit`] builds one. Every refusal is a [`DropReason`] with a stable
//!   [`DropReason::as_str`] name for metrics. [`wire::check_hop_limit`] checks the TTL.
//! - [`machine`]: [`Machine`] is one virtual router. Feed it events with the current time
//!   and carry out its [`Action`]s:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use hafront_vrrp::{Action, GarpConfig, InstanceConfig, Machine, State, Version, Auth};
//!
//! let mut machine = Machine::new(InstanceConfig {
//!     vrid: 51,
//!     version: Version::V3,
//!     priority: 100,
//!     advert_interval: Duration::from_secs(1),
//!     virtual_addresses: vec!["10.0.0.100/24".parse().unwrap()],
//!     primary_address: "10.0.0.1".parse().unwrap(),
//!     preempt: true,
//!     preempt_delay: Duration::ZERO,
//!     auth: Auth::None,
//!     garp: GarpConfig::default(),
//! })
//! .unwrap();
//! let start = Instant::now();
//! machine.start(start);
//! let actions: Vec<Action> = std::iter::from_fn(|| machine.poll_action()).collect();
//! assert!(matches!(actions[..], [Action::Transition { new: State::Backup, .. }]));
//! // Nobody else advertises: the down timer (3 x 1 s + skew 0.61 s) makes it master.
//! let deadline = machine.poll_timeout().unwrap();
//! assert_eq!(deadline - start, Duration::from_millis(3609) + Duration::from_micros(375));
//! machine.handle_timeout(deadline);
//! assert_eq!(machine.state(), State::Master);
//! assert!(std::iter::from_fn(|| machine.poll_action()).any(|a| a == Action::AddVips));
//! ```
//!
//! A driver receives packets, checks the hop limit, parses, and calls
//! [`Machine::handle_advert`], which applies the instance checks (own advert, version,
//! VRID, auth, v2 interval, address list). It should drain pending packets before handling
//! a timeout, so an advert queued while the process was descheduled is not mistaken for a
//! dead master, but only a bounded number, so a flood does not starve the timers.
//!
//! - `linux` (Linux only): [`linux::Driver`] is that driver for one instance: raw protocol
//!   112 sockets on the interface (multicast, or unicast peers), VIPs added over rtnetlink
//!   with a valid lifetime renewed by every advert (a SIGKILLed daemon's VIPs expire),
//!   gratuitous ARP / unsolicited NA, leftover VIPs removed at start.
//!   [`linux::Driver::activity`] counts adverts sent and accepted and knows the current
//!   master; [`linux::release`] removes an instance's VIPs without running it (what a
//!   killed daemon left behind).
//!
//! ```no_run
//! # async fn example(instance: hafront_vrrp::InstanceConfig) -> Result<(), hafront_vrrp::linux::DriverError> {
//! use hafront_vrrp::linux::{Control, Driver, DriverConfig};
//! // instance.primary_address = linux::primary_address("eth0", false, &vips).await?;
//! let config = DriverConfig {
//!     interface: "eth0".into(),
//!     vip_lifetime: DriverConfig::default_vip_lifetime(instance.advert_interval),
//!     instance,
//!     unicast_peers: vec![],
//!     checksum: hafront_vrrp::ChecksumForm::PseudoHeader,
//!     mastership_gate: false,
//! };
//! let (events_tx, mut events) = tokio::sync::mpsc::channel(hafront_vrrp::linux::EVENT_BACKLOG);
//! let (control, control_rx) = tokio::sync::mpsc::channel(8);
//! let driver = Driver::new(config, events_tx).await?;
//! let drops = driver.drop_counters(); // per DropReason, for metrics
//! let activity = driver.activity(); // adverts sent / received, current master
//! let task = tokio::spawn(driver.run(control_rx));
//! control.send(Control::SetPriority(90)).await.ok(); // a tracked check lost weight 10
//! control.send(Control::Shutdown).await.ok(); // resign, withdraw the VIPs
//! task.await.expect("driver task")?;
//! # let _ = (drops, activity, events.try_recv());
//! # Ok(()) }
//! ```

#[cfg(target_os = "linux")]
pub mod linux;
pub mod machine;
pub mod wire;

pub use machine::{
    Action, ConfigError, GarpConfig, InstanceConfig, Machine, Reason, State, Tunables,
};
pub use wire::{
    Advert, Auth, Centiseconds, ChecksumForm, DropReason, EncodeError, Password, Version,
};
