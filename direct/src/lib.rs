//! Direct routing (LVS-DR) in the kernel: an eBPF director on the VIP's interface takes TCP
//! packets for a service (VIP:port), picks a server and rewrites only the frame's MAC
//! addresses, so the frame goes to the server on the same segment and the server answers
//! the client directly (it holds the VIP on `lo` and does not answer ARP for it).
//!
//! - The program (`bpf/director.c`, compiled by clang in `build.rs`) runs at XDP (native or
//!   generic) or at tc clsact ingress; see [`Hook`].
//! - Established flows stay on their server: an LRU flow table of [`FLOW_CAPACITY`]
//!   entries pins each 4-tuple to a server while that server is in the set. New flows (and
//!   flows whose server left) pick by the service's weighted [`maglev`] table.
//! - Tables are swapped atomically: each service has two halves; the inactive one is
//!   written, then the service's entry names it live in one map update.
//! - Nothing is pinned: the program goes away with the [`Director`] (XDP and tcx attach
//!   through a bpf_link, which the kernel drops with the last file descriptor, so a process
//!   killed with -9 leaves nothing forwarding). [`Director::load`] also removes a program
//!   of ours left attached the old way (netlink) by a crashed process.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use aya::maps::{Array, HashMap as BpfHashMap, MapError, PerCpuArray, PerCpuValues};
use aya::programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader, Pod};

pub mod colocated;
pub mod maglev;
mod netlink;

pub use netlink::{interface_networks, resolve_mac};

/// Services (VIP:port pairs) one director serves.
pub const MAX_SERVICES: usize = 64;
/// Servers per service.
pub const MAX_BACKENDS: usize = 64;
/// Entries of a service's Maglev table: a prime above 100 x [`MAX_BACKENDS`] (the paper's
/// advice for small disruption), one byte each so a table is one map value (16 KiB).
pub const TABLE_SIZE: usize = 16381;
/// Flows remembered by the LRU flow table (least recently used evicted first; an evicted
/// flow re-picks by the same table, so it keeps its server unless the set changed).
pub const FLOW_CAPACITY: usize = 65536;

/// Names of the programs in the object: what [`Director::load`] recognises as a leftover.
const XDP_PROGRAM: &str = "hafront_xdp";
const TC_PROGRAM: &str = "hafront_tc";

/// A table slot with no server.
const NO_BACKEND: u8 = 0xff;

static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/director.o"));

/// Where the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Native XDP if the interface has a device driver that is not veth
    /// (`/sys/class/net/IF/device` exists), else generic XDP.
    Auto,
    /// XDP in the driver (fastest; XDP_TX on a veth forwards nothing).
    XdpNative,
    /// XDP in the stack, for any interface.
    XdpGeneric,
    /// tc clsact ingress (tcx on Linux 6.6 and later).
    Tc,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Auto => "automatic",
            Hook::XdpNative => "native XDP",
            Hook::XdpGeneric => "generic XDP",
            Hook::Tc => "tc ingress",
        })
    }
}

/// A VIP:port (TCP) the director forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Service {
    /// The virtual address.
    pub address: Ipv4Addr,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.address, self.port)
    }
}

/// A server behind a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Its name (unique within a service; flows and counters follow it).
    pub name: String,
    /// Its own address (on the interface's segment).
    pub address: Ipv4Addr,
    /// Its MAC address (see [`resolve_mac`]).
    pub mac: [u8; 6],
    /// Its share of new flows relative to the others; 0 takes no new flows but keeps its
    /// established ones.
    pub weight: u32,
    /// This host itself serves (co-located director): its packets go up the local stack
    /// instead of back out.
    pub local: bool,
}

/// Traffic counted for one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCounters {
    /// The service.
    pub service: Service,
    /// Its current servers, in the order last given to [`Director::set_service`].
    pub backends: Vec<BackendCounters>,
    /// Packets that found no server (the service had none) and went up the local stack.
    pub unmatched_packets: u64,
}

/// Traffic counted for one server since it joined the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendCounters {
    /// The server's name.
    pub name: String,
    /// Packets sent to it.
    pub packets: u64,
    /// Bytes sent to it (whole frames).
    pub bytes: u64,
    /// New flows assigned to it.
    pub flows: u64,
}

/// What went wrong, in an operator's words.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The interface does not exist (in this network namespace).
    #[error("interface {interface} does not exist")]
    NoInterface {
        /// Its name.
        interface: String,
    },
    /// The kernel refused the program or its maps.
    #[error("cannot load the eBPF program: {detail}")]
    Load {
        /// The kernel's or loader's words.
        detail: String,
    },
    /// The program could not be attached to the interface.
    #[error("cannot attach the direct-routing program to {interface} at {hook}: {detail}")]
    Attach {
        /// The interface.
        interface: String,
        /// The hook tried.
        hook: Hook,
        /// The kernel's words, and a hint.
        detail: String,
    },
    /// The program could not be detached.
    #[error("cannot detach the direct-routing program from {interface}: {detail}")]
    Detach {
        /// The interface.
        interface: String,
        /// The kernel's words.
        detail: String,
    },
    /// A map of the director could not be read or written.
    #[error("cannot {action} the director's {map} map: {source}")]
    Map {
        /// What was being done.
        action: &'static str,
        /// Which map.
        map: &'static str,
        /// The loader's error.
        source: MapError,
    },
    /// More services than the director holds.
    #[error("cannot add service {service}: a director serves at most {MAX_SERVICES} services")]
    TooManyServices {
        /// The service refused.
        service: Service,
    },
    /// More servers than a service holds.
    #[error("service {service} has {count} servers; direct routing takes at most {MAX_BACKENDS}")]
    TooManyBackends {
        /// The service.
        service: Service,
        /// How many were given.
        count: usize,
    },
    /// Two servers of a service share a name.
    #[error("service {service} names server {name} twice")]
    DuplicateBackend {
        /// The service.
        service: Service,
        /// The repeated name.
        name: String,
    },
    /// A netlink request (addresses, neighbours, links) failed.
    #[error("cannot {action}: {source}")]
    Netlink {
        /// What was being asked.
        action: String,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// A network setting in `/proc/sys` could not be read or written.
    #[error("cannot set {}: {source}", path.display())]
    Sysctl {
        /// The setting's file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl DirectError {
    fn map(action: &'static str, map: &'static str) -> impl FnOnce(MapError) -> DirectError {
        move |source| DirectError::Map {
            action,
            map,
            source,
        }
    }
}

// The structs below mirror bpf/director.c: keep them in step.

#[repr(C)]
#[derive(Clone, Copy)]
struct ServiceKey {
    address: u32, // network byte order
    port: u16,    // network byte order
    padding: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ServiceEntry {
    index: u32,
    active: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Table {
    slots: [u8; TABLE_SIZE],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct BackendEntry {
    mac: [u8; 6],
    local: u8,
    present: u8,
    id: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Counters {
    packets: u64,
    bytes: u64,
    flows: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Settings {
    mac: [u8; 6],
    padding: u16,
    ifindex: u32,
}

// SAFETY: plain `repr(C)` data without padding holes the kernel would read uninitialised
// (every field is an integer or byte array, padding named explicitly).
unsafe impl Pod for ServiceKey {}
// SAFETY: as above.
unsafe impl Pod for ServiceEntry {}
// SAFETY: as above.
unsafe impl Pod for Table {}
// SAFETY: as above.
unsafe impl Pod for BackendEntry {}
// SAFETY: as above.
unsafe impl Pod for Counters {}
// SAFETY: as above.
unsafe impl Pod for Settings {}

/// One server in its slot of a service.
#[derive(Clone, Debug)]
struct Placed {
    backend: Backend,
    /// Unique per assignment: a flow pinned to a previous occupant of the slot re-picks.
    id: u32,
}

/// A service's place in the maps.
#[derive(Debug)]
struct ServiceSlot {
    index: u32,
    active: u32,
    slots: Vec<Option<Placed>>,
    /// Names in the order last given (for counters).
    order: Vec<String>,
}

enum Attachment {
    Xdp(aya::programs::xdp::XdpLinkId),
    Tc(aya::programs::tc::SchedClassifierLinkId),
}

/// The director of one interface: one program, its maps, several services.
pub struct Director {
    interface: String,
    hook: Hook,
    ebpf: Ebpf,
    attachment: Option<Attachment>,
    services: BTreeMap<Service, ServiceSlot>,
    next_id: u32,
}

impl fmt::Debug for Director {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Director")
            .field("interface", &self.interface)
            .field("hook", &self.hook)
            .field("attached", &self.is_attached())
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Director {
    /// Loads the program and its maps for `interface` at `hook` (not attached yet). First
    /// removes any program of ours that a crashed process left attached to the interface
    /// through netlink.
    pub fn load(interface: &str, hook: Hook) -> Result<Director, DirectError> {
        let ifindex = netlink::interface_index(interface)?;
        let link = netlink::link(ifindex)?;
        let hook = resolve_hook(&link, hook);
        remove_leftovers(interface, ifindex, &link)?;
        let mut ebpf = EbpfLoader::new()
            .load(PROGRAM)
            .map_err(|error| DirectError::Load {
                detail: refusal(&error_chain(&error)),
            })?;
        let loaded = match hook {
            Hook::Tc => program_mut::<SchedClassifier>(&mut ebpf, TC_PROGRAM)?.load(),
            _ => program_mut::<Xdp>(&mut ebpf, XDP_PROGRAM)?.load(),
        };
        loaded.map_err(|error| DirectError::Load {
            detail: refusal(&error_chain(&error)),
        })?;
        let settings = Settings {
            mac: link.mac.ok_or_else(|| DirectError::Load {
                detail: format!("{interface} has no Ethernet address"),
            })?,
            padding: 0,
            ifindex,
        };
        let mut settings_map: Array<_, Settings> = map_mut(&mut ebpf, "settings")?;
        settings_map
            .set(0, settings, 0)
            .map_err(DirectError::map("write", "settings"))?;
        Ok(Director {
            interface: interface.to_owned(),
            hook,
            ebpf,
            attachment: None,
            services: BTreeMap::new(),
            next_id: 1,
        })
    }

    /// Adds `service` or replaces its servers with `backends`. The new lookup table is
    /// written to the service's inactive half and then made live in one update, so no packet
    /// sees a half-written table; flows pinned to a server still present stay on it, flows
    /// of a server that left re-pick.
    pub fn set_service(
        &mut self,
        service: Service,
        backends: &[Backend],
    ) -> Result<(), DirectError> {
        if backends.len() > MAX_BACKENDS {
            return Err(DirectError::TooManyBackends {
                service,
                count: backends.len(),
            });
        }
        for (position, backend) in backends.iter().enumerate() {
            if backends[..position]
                .iter()
                .any(|other| other.name == backend.name)
            {
                return Err(DirectError::DuplicateBackend {
                    service,
                    name: backend.name.clone(),
                });
            }
        }
        let is_new = !self.services.contains_key(&service);
        let mut slot = match self.services.remove(&service) {
            Some(slot) => slot,
            None => ServiceSlot {
                index: self.free_service_index(service)?,
                active: 1,
                slots: vec![None; MAX_BACKENDS],
                order: Vec::new(),
            },
        };
        let result = self.apply(service, &mut slot, backends, is_new);
        // Kept even after a failure midway (the maps may hold part of it): the next update
        // of the service rewrites it.
        self.services.insert(service, slot);
        result
    }

    fn apply(
        &mut self,
        service: Service,
        slot: &mut ServiceSlot,
        backends: &[Backend],
        is_new: bool,
    ) -> Result<(), DirectError> {
        // 1. Place every server: the same name keeps its slot (and its flows, unless it
        //    moved to another address); new ones take free slots with a fresh id.
        let mut placement = vec![0usize; backends.len()];
        let mut next: Vec<Option<Placed>> = vec![None; MAX_BACKENDS];
        for (position, backend) in backends.iter().enumerate() {
            let kept = slot.slots.iter().enumerate().find_map(|(index, placed)| {
                placed
                    .as_ref()
                    .filter(|placed| placed.backend.name == backend.name)
                    .map(|placed| (index, placed))
            });
            if let Some((index, placed)) = kept {
                let id = if placed.backend.address == backend.address {
                    placed.id
                } else {
                    self.fresh_id()
                };
                next[index] = Some(Placed {
                    backend: backend.clone(),
                    id,
                });
                placement[position] = index;
            }
        }
        for (position, backend) in backends.iter().enumerate() {
            if next
                .iter()
                .flatten()
                .any(|placed| placed.backend.name == backend.name)
            {
                continue;
            }
            // A slot free both before and after, so a departing server's slot is not
            // reused in the same update (its flows must see it gone, not replaced).
            let index = (0..MAX_BACKENDS)
                .find(|&index| next[index].is_none() && slot.slots[index].is_none())
                .or_else(|| (0..MAX_BACKENDS).find(|&index| next[index].is_none()))
                .ok_or(DirectError::TooManyBackends {
                    service,
                    count: backends.len(),
                })?;
            next[index] = Some(Placed {
                backend: backend.clone(),
                id: self.fresh_id(),
            });
            placement[position] = index;
        }

        // 2. Servers that are new or changed: counters from zero for newcomers, then their
        //    entries (not yet referenced by the live table).
        for (index, placed) in next.iter().enumerate() {
            let Some(placed) = placed else { continue };
            let before = slot.slots[index].as_ref();
            if before.is_none_or(|before| before.id != placed.id) {
                self.reset_counters(slot.index, index)?;
            }
            if before.is_none_or(|before| {
                before.id != placed.id
                    || before.backend.mac != placed.backend.mac
                    || before.backend.local != placed.backend.local
            }) {
                self.write_backend(slot.index, index, Some(placed))?;
            }
        }
        if is_new {
            self.reset_counters(slot.index, MAX_BACKENDS)?;
        }

        // 3. The table, into the inactive half, then made live.
        let weighted: Vec<(&str, u32)> = backends
            .iter()
            .map(|backend| (backend.name.as_str(), backend.weight))
            .collect();
        let mut table = Table {
            slots: [NO_BACKEND; TABLE_SIZE],
        };
        for (entry, position) in table
            .slots
            .iter_mut()
            .zip(maglev::table(&weighted, TABLE_SIZE))
        {
            if position != maglev::EMPTY {
                *entry = u8::try_from(placement[position as usize]).unwrap_or(NO_BACKEND);
            }
        }
        let inactive = 1 - slot.active;
        let mut tables: Array<_, Table> = map_mut(&mut self.ebpf, "tables")?;
        tables
            .set(slot.index * 2 + inactive, table, 0)
            .map_err(DirectError::map("write", "tables"))?;
        let mut services: BpfHashMap<_, ServiceKey, ServiceEntry> =
            map_mut(&mut self.ebpf, "services")?;
        services
            .insert(
                service_key(service),
                ServiceEntry {
                    index: slot.index,
                    active: inactive,
                },
                0,
            )
            .map_err(DirectError::map("write", "services"))?;
        slot.active = inactive;

        // 4. Servers that left: gone only now, after the table stopped naming them.
        let departed: Vec<usize> = (0..MAX_BACKENDS)
            .filter(|&index| slot.slots[index].is_some() && next[index].is_none())
            .collect();
        for index in departed {
            self.write_backend(slot.index, index, None)?;
        }
        slot.slots = next;
        slot.order = backends
            .iter()
            .map(|backend| backend.name.clone())
            .collect();
        Ok(())
    }

    /// Stops forwarding `service` (its packets go up the local stack); nothing if unknown.
    pub fn remove_service(&mut self, service: Service) -> Result<(), DirectError> {
        let Some(slot) = self.services.remove(&service) else {
            return Ok(());
        };
        let mut services: BpfHashMap<_, ServiceKey, ServiceEntry> =
            map_mut(&mut self.ebpf, "services")?;
        match services.remove(&service_key(service)) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(error) => return Err(DirectError::map("write", "services")(error)),
        }
        for index in 0..MAX_BACKENDS {
            if slot.slots[index].is_some() {
                self.write_backend(slot.index, index, None)?;
            }
        }
        Ok(())
    }

    /// Attaches the program to the interface; nothing if attached already.
    pub fn attach(&mut self) -> Result<(), DirectError> {
        if self.attachment.is_some() {
            return Ok(());
        }
        let interface = self.interface.clone();
        let hook = self.hook;
        let attach_error = |error: ProgramError| DirectError::Attach {
            interface: interface.clone(),
            hook,
            detail: attach_hint(&error),
        };
        let attachment = match hook {
            Hook::Tc => {
                if !tcx_supported() {
                    // Older kernels attach through a clsact qdisc (already there is fine).
                    let _ = aya::programs::tc::qdisc_add_clsact(&interface);
                }
                let program = program_mut::<SchedClassifier>(&mut self.ebpf, TC_PROGRAM)?;
                Attachment::Tc(
                    program
                        .attach(&interface, TcAttachType::Ingress)
                        .map_err(attach_error)?,
                )
            }
            _ => {
                let mode = if hook == Hook::XdpNative {
                    XdpMode::Driver
                } else {
                    XdpMode::Skb
                };
                let program = program_mut::<Xdp>(&mut self.ebpf, XDP_PROGRAM)?;
                Attachment::Xdp(program.attach(&interface, mode).map_err(attach_error)?)
            }
        };
        self.attachment = Some(attachment);
        Ok(())
    }

    /// Detaches the program (packets for the services go up the local stack again);
    /// nothing if not attached. Also done on drop.
    pub fn detach(&mut self) -> Result<(), DirectError> {
        let Some(attachment) = self.attachment.take() else {
            return Ok(());
        };
        let detached = match attachment {
            Attachment::Xdp(link) => program_mut::<Xdp>(&mut self.ebpf, XDP_PROGRAM)?.detach(link),
            Attachment::Tc(link) => {
                program_mut::<SchedClassifier>(&mut self.ebpf, TC_PROGRAM)?.detach(link)
            }
        };
        detached.map_err(|error| DirectError::Detach {
            interface: self.interface.clone(),
            detail: error_chain(&error),
        })
    }

    /// Whether the program is attached.
    pub fn is_attached(&self) -> bool {
        self.attachment.is_some()
    }

    /// The hook in use ([`Hook::Auto`] resolved at load).
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The interface.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Packets, bytes and new flows per server of every service (summed over CPUs).
    pub fn counters(&self) -> Result<Vec<ServiceCounters>, DirectError> {
        let counters: PerCpuArray<_, Counters> = map_ref(&self.ebpf, "counters")?;
        let read = |service: u32, index: usize| -> Result<Counters, DirectError> {
            let values = counters
                .get(&counter_index(service, index), 0)
                .map_err(DirectError::map("read", "counters"))?;
            Ok(values
                .iter()
                .fold(Counters::default(), |sum, value| Counters {
                    packets: sum.packets + value.packets,
                    bytes: sum.bytes + value.bytes,
                    flows: sum.flows + value.flows,
                }))
        };
        let mut all = Vec::new();
        for (service, slot) in &self.services {
            let mut backends = Vec::new();
            for name in &slot.order {
                let Some(index) = slot.slots.iter().position(|placed| {
                    placed
                        .as_ref()
                        .is_some_and(|placed| &placed.backend.name == name)
                }) else {
                    continue;
                };
                let sum = read(slot.index, index)?;
                backends.push(BackendCounters {
                    name: name.clone(),
                    packets: sum.packets,
                    bytes: sum.bytes,
                    flows: sum.flows,
                });
            }
            all.push(ServiceCounters {
                service: *service,
                backends,
                unmatched_packets: read(slot.index, MAX_BACKENDS)?.packets,
            });
        }
        Ok(all)
    }

    fn free_service_index(&self, service: Service) -> Result<u32, DirectError> {
        (0..MAX_SERVICES as u32)
            .find(|index| self.services.values().all(|slot| slot.index != *index))
            .ok_or(DirectError::TooManyServices { service })
    }

    fn fresh_id(&mut self) -> u32 {
        let id = self.next_id;
        // 0 never names a server (an absent slot has id 0).
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    fn write_backend(
        &mut self,
        service: u32,
        index: usize,
        placed: Option<&Placed>,
    ) -> Result<(), DirectError> {
        let entry = placed.map_or_else(BackendEntry::default, |placed| BackendEntry {
            mac: placed.backend.mac,
            local: u8::from(placed.backend.local),
            present: 1,
            id: placed.id,
        });
        let mut backends: Array<_, BackendEntry> = map_mut(&mut self.ebpf, "backends")?;
        backends
            .set(service * MAX_BACKENDS as u32 + index as u32, entry, 0)
            .map_err(DirectError::map("write", "backends"))
    }

    fn reset_counters(&mut self, service: u32, index: usize) -> Result<(), DirectError> {
        let mut counters: PerCpuArray<_, Counters> = map_mut(&mut self.ebpf, "counters")?;
        let cpus = aya::util::nr_cpus().map_err(|(_, error)| DirectError::Load {
            detail: format!("cannot count the possible CPUs: {error}"),
        })?;
        let zeros = PerCpuValues::try_from(vec![Counters::default(); cpus]).map_err(|error| {
            DirectError::Load {
                detail: format!("cannot size the per-CPU counters: {error}"),
            }
        })?;
        counters
            .set(counter_index(service, index), zeros, 0)
            .map_err(DirectError::map("write", "counters"))
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Err(error) = self.detach() {
            tracing::warn!("{error}");
        }
    }
}

fn counter_index(service: u32, index: usize) -> u32 {
    service * (MAX_BACKENDS as u32 + 1) + index as u32
}

fn service_key(service: Service) -> ServiceKey {
    ServiceKey {
        address: u32::from_ne_bytes(service.address.octets()),
        port: service.port.to_be(),
        padding: 0,
    }
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, DirectError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or_else(|| DirectError::Load {
        detail: format!("the object has no program {name}"),
    })?;
    program
        .try_into()
        .map_err(|error: ProgramError| DirectError::Load {
            detail: error_chain(&error),
        })
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DirectError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = MapError>,
{
    let map = ebpf.map_mut(name).ok_or_else(|| DirectError::Load {
        detail: format!("the object has no map {name}"),
    })?;
    T::try_from(map).map_err(DirectError::map("open", name))
}

fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, DirectError>
where
    T: TryFrom<&'a aya::maps::Map, Error = MapError>,
{
    let map = ebpf.map(name).ok_or_else(|| DirectError::Load {
        detail: format!("the object has no map {name}"),
    })?;
    T::try_from(map).map_err(DirectError::map("open", name))
}

/// Native XDP where a hardware driver is behind the interface, generic on virtual devices
/// (veth and the like: XDP_TX on a veth forwards nothing unless its peer runs XDP too).
fn resolve_hook(link: &netlink::Link, hook: Hook) -> Hook {
    match hook {
        Hook::Auto if link.is_virtual => Hook::XdpGeneric,
        Hook::Auto => Hook::XdpNative,
        hook => hook,
    }
}

/// tcx (tc through bpf_link) exists from Linux 6.6.
fn tcx_supported() -> bool {
    aya::util::KernelVersion::current()
        .is_ok_and(|version| version >= aya::util::KernelVersion::new(6, 6, 0))
}

/// Removes programs of ours that a crashed process left attached through netlink (XDP, or
/// a tc filter): a bpf_link attachment dies with its process, these do not.
fn remove_leftovers(
    interface: &str,
    ifindex: u32,
    link: &netlink::Link,
) -> Result<(), DirectError> {
    for &(program_id, mode) in &link.xdp_programs {
        if program_name(program_id).as_deref() != Some(XDP_PROGRAM) {
            continue;
        }
        match netlink::detach_xdp(ifindex, mode) {
            Ok(()) => tracing::warn!(
                "removed a direct-routing program (id {program_id}) left on {interface} by a previous run"
            ),
            // Held by a bpf_link: a live process owns it; attach will say so if it is in
            // the way.
            Err(error) => {
                tracing::debug!("left program {program_id} on {interface} in place: {error}")
            }
        }
    }
    match aya::programs::tc::qdisc_detach_program(interface, TcAttachType::Ingress, TC_PROGRAM) {
        Ok(()) => tracing::warn!(
            "removed a direct-routing tc filter left on {interface} by a previous run"
        ),
        // None there, or no clsact qdisc at all.
        Err(error) => tracing::debug!("no tc leftover on {interface}: {error}"),
    }
    Ok(())
}

fn program_name(id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .flatten()
        .find(|program| program.id() == id)
        .and_then(|program| program.name_as_str().map(str::to_owned))
}

/// The compiled eBPF object this crate loads (`bpf/director.c`), for inspection with
/// `llvm-objdump` or `bpftool`.
pub fn program_object() -> &'static [u8] {
    PROGRAM
}

/// A program attached to an interface, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    /// Where: `xdp` or `tcx ingress`.
    pub hook: &'static str,
    /// The kernel's program id.
    pub id: u32,
    /// Its name (up to 15 characters), empty when the kernel gives none.
    pub name: String,
}

/// The programs attached to `interface` at XDP (any mode) and tcx ingress, whoever attached
/// them: to check that nothing forwards after a detach or a crash.
pub fn attached_programs(interface: &str) -> Result<Vec<AttachedProgram>, DirectError> {
    let ifindex = netlink::interface_index(interface)?;
    let mut programs: Vec<AttachedProgram> = netlink::link(ifindex)?
        .xdp_programs
        .into_iter()
        .map(|(id, _)| AttachedProgram {
            hook: "xdp",
            id,
            name: program_name(id).unwrap_or_default(),
        })
        .collect();
    if tcx_supported() {
        let (_, tcx) =
            SchedClassifier::query_tcx(interface, TcAttachType::Ingress).map_err(|error| {
                DirectError::Netlink {
                    action: format!("list the tc programs of {interface}"),
                    source: std::io::Error::other(error_chain(&error)),
                }
            })?;
        programs.extend(tcx.into_iter().map(|program| AttachedProgram {
            hook: "tcx ingress",
            id: program.id(),
            name: program.name_as_str().unwrap_or_default().to_owned(),
        }));
    }
    Ok(programs)
}

/// The error and its sources, joined.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The kernel's refusal in an operator's words: a permission hint, and only the end of a
/// verifier log (the verdict is at its end).
fn refusal(text: &str) -> String {
    const VERIFIER_LINES: usize = 12;
    if text.contains("Operation not permitted") || text.contains("os error 1)") {
        return format!(
            "the kernel refused it: {text} (are you root? is CAP_BPF with CAP_NET_ADMIN given?)"
        );
    }
    match text.split_once("Verifier output:") {
        Some((head, log)) => {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(VERIFIER_LINES)..].join("\n");
            format!("the kernel's verifier rejected it: {head}... {tail}")
        }
        None => format!("the kernel refused it: {text}"),
    }
}

fn attach_hint(error: &ProgramError) -> String {
    let text = error_chain(error);
    let busy = text.contains("Device or resource busy") || text.contains("os error 16");
    if busy {
        format!(
            "{text} (another program is attached there: `ip -d link show` or `bpftool net` names it)"
        )
    } else if text.contains("Operation not supported") || text.contains("os error 95") {
        format!("{text} (the driver does not support this hook: try generic XDP or tc)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_director_can_move_between_threads() {
        // The daemon keeps it in a task that may run on any worker thread.
        fn is_send<T: Send>() {}
        is_send::<Director>();
    }

    #[test]
    fn auto_means_native_xdp_on_hardware_and_generic_on_virtual_devices() {
        let link = |is_virtual| netlink::Link {
            mac: None,
            is_virtual,
            xdp_programs: Vec::new(),
        };
        assert_eq!(resolve_hook(&link(false), Hook::Auto), Hook::XdpNative);
        assert_eq!(resolve_hook(&link(true), Hook::Auto), Hook::XdpGeneric);
        assert_eq!(resolve_hook(&link(true), Hook::Tc), Hook::Tc);
        assert_eq!(
            resolve_hook(&link(false), Hook::XdpGeneric),
            Hook::XdpGeneric
        );
    }

    #[test]
    fn a_verifier_log_is_cut_to_its_verdict_and_a_permission_error_gets_a_hint() {
        let log: String = (0..100).map(|line| format!("{line}: insn\n")).collect();
        let text = refusal(&format!("BPF_PROG_LOAD failed. Verifier output: {log}"));
        assert!(text.contains("verifier rejected it"), "{text}");
        assert!(
            text.contains("99: insn") && !text.contains("50: insn"),
            "{text}"
        );
        let text = refusal("BPF_PROG_LOAD: Operation not permitted (os error 1)");
        assert!(text.contains("are you root?"), "{text}");
    }
}
