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
//! A driver receives packets, checks the hop limit, parses, picks the machine by VRID
//! (else [`DropReason::UnknownVrid`]) and calls [`Machine::handle_advert`], which applies
//! the instance checks (own advert, version, auth, v2 interval, address list). It should
//! drain pending packets before handling a timeout, so an advert queued while the process
//! was descheduled is not mistaken for a dead master.

#[cfg(target_os = "linux")]
pub mod linux;
pub mod machine;
pub mod wire;

pub use machine::{Action, ConfigError, GarpConfig, InstanceConfig, Machine, Reason, State};
pub use wire::{
    Advert, Auth, Centiseconds, ChecksumForm, DropReason, EncodeError, Password, Version,
};
