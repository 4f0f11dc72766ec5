//! Direct routing in the daemon: relays with `forward: direct_routing`.
//!
//! Each interface that carries such relays gets one kernel [`Director`] (one
//! eBPF program and its maps), loaded at start but attached only while one of
//! its services is live. A relay's services (its listen addresses, which are
//! virtual addresses of one VRRP instance) are live while that instance is
//! master, with the servers of the pool that are up (with the relay's role,
//! not drained; backups only while no other server is), each at the MAC
//! address the neighbour table gives; with `policy: first`, only the first of
//! them in the pool's order. So the program forwards on the master only, and
//! follows health checks within one check interval.
//!
//! A server that is this host itself (the classic co-located pair, each
//! MariaDB host also a director) gets its packets up the local stack. Such a
//! host keeps the VIP on `lo` and answers ARP for it only where the VRRP
//! instance holds it: hafront sets this up when the relay starts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hafront_config::{Config, KernelHook, Policy, Relay, Role};
use hafront_direct::{Backend, DirectError, Director, Hook, Service};
use hafront_health::{Monitor, ServerHealth};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::control::{DirectRelayStatus, DirectServerStatus};
use crate::vrrp::VrrpInstances;

/// How often a relay re-reads server health, drains and MAC addresses
/// besides reacting to health events and VRRP state changes.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The pool's servers as the health monitor holds them.
type PoolHealth = Arc<[Arc<ServerHealth>]>;

/// The running direct-routing relays and the kernel programs they share.
#[derive(Default)]
pub struct DirectRelays {
    interfaces: BTreeMap<String, Arc<Kernel>>,
    relays: BTreeMap<String, RunningRelay>,
}

/// One interface's program, with the services live in it.
struct Kernel {
    interface: String,
    /// The hook the configuration asked for (`auto` before it is resolved).
    hook: KernelHook,
    state: Mutex<KernelState>,
}

struct KernelState {
    director: Director,
    /// Live services, with the backends they were given.
    live: BTreeMap<(Ipv4Addr, u16), Vec<Backend>>,
}

/// One relay's follower task and what it shows in status.
struct RunningRelay {
    config: Relay,
    kernel: Arc<Kernel>,
    pool: watch::Sender<PoolHealth>,
    view: Arc<Mutex<RelayView>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// A direct-routing relay's services: its IPv4 listen addresses and ports
/// (`check` refuses IPv6 ones).
fn services_of(relay: &Relay) -> Vec<(Ipv4Addr, u16)> {
    relay
        .listen
        .iter()
        .filter_map(|address| match address {
            SocketAddr::V4(address) => Some((*address.ip(), address.port())),
            SocketAddr::V6(_) => None,
        })
        .collect()
}

/// What a relay's follower last did, for status.
#[derive(Default, Clone)]
struct RelayView {
    live: bool,
    backends: Vec<Backend>,
    problem: Option<String>,
}

impl DirectRelays {
    /// Starts every direct-routing relay of `config` that is not running with
    /// the same settings, and stops those that changed or went away (waiting
    /// until their services are out, so a restarted relay's own are not taken
    /// out after it put them in); a relay whose settings are the same keeps
    /// running, flows included, and sees its pool's new servers. Returns each
    /// relay that could not start, with why (logged).
    pub async fn follow(
        &mut self,
        config: &Config,
        monitor: &Monitor,
        vrrp: &mut VrrpInstances,
    ) -> Vec<(String, String)> {
        for (name, running) in std::mem::take(&mut self.relays) {
            if config.relays.get(&name) == Some(&running.config) {
                self.relays.insert(name, running);
                continue;
            }
            let what = if config.relays.contains_key(&name) {
                "changed; restarting it"
            } else {
                "removed"
            };
            running.stop().await;
            info!(relay = %name, "direct-routing relay {what}");
        }
        // A program stays loaded while a relay uses its interface with its hook (all
        // relays of an interface name the same hook).
        let wanted: BTreeMap<&str, KernelHook> = config
            .relays
            .values()
            .filter_map(|relay| {
                let (_, instance) = config.direct_routing_instance(relay)?;
                Some((instance.interface.as_str(), relay.hook.unwrap_or_default()))
            })
            .collect();
        self.interfaces
            .retain(|interface, kernel| wanted.get(interface.as_str()) == Some(&kernel.hook));
        let mut problems = Vec::new();
        for (name, relay) in &config.relays {
            if relay.forward != hafront_config::Forward::DirectRouting {
                continue;
            }
            let Some(pool) = monitor.pool(&relay.pool) else {
                continue;
            };
            if let Some(running) = self.relays.get(name) {
                running.pool.send_replace(pool);
                continue;
            }
            match self.start(config, name, relay, pool, monitor, vrrp) {
                Ok(running) => {
                    self.relays.insert(name.clone(), running);
                }
                Err(problem) => {
                    error!(relay = %name, "direct routing not started: {problem}");
                    problems.push((name.clone(), problem));
                }
            }
        }
        problems
    }

    fn start(
        &mut self,
        config: &Config,
        name: &str,
        relay: &Relay,
        pool: PoolHealth,
        monitor: &Monitor,
        vrrp: &mut VrrpInstances,
    ) -> Result<RunningRelay, String> {
        let (instance_name, instance) = config
            .direct_routing_instance(relay)
            .ok_or_else(|| "its listen addresses belong to no vrrp instance".to_owned())?;
        let kernel = self.kernel(&instance.interface, relay.hook.unwrap_or_default())?;
        let services = services_of(relay);
        let (pool_sender, pool_receiver) = watch::channel(pool);
        let (stop, stopped) = oneshot::channel();
        let view = Arc::new(Mutex::new(RelayView::default()));
        let follower = Follower {
            relay: name.to_owned(),
            services,
            role: relay.role,
            first_only: relay.policy == Policy::First,
            kernel: Arc::clone(&kernel),
            view: Arc::clone(&view),
            warned: BTreeSet::new(),
            colocated: false,
        };
        let task = tokio::spawn(follower.run(
            vrrp.master_watch(instance_name),
            pool_receiver,
            monitor.subscribe(),
            stopped,
        ));
        info!(relay = %name, instance = %instance_name, interface = %instance.interface,
            "direct routing follows the instance's master");
        Ok(RunningRelay {
            config: relay.clone(),
            kernel,
            pool: pool_sender,
            view,
            stop: Some(stop),
            task,
        })
    }

    /// The program on `interface`, loaded on first use.
    fn kernel(&mut self, interface: &str, hook: KernelHook) -> Result<Arc<Kernel>, String> {
        if let Some(kernel) = self.interfaces.get(interface) {
            return Ok(Arc::clone(kernel));
        }
        let director = Director::load(interface, kernel_hook(hook))
            .map_err(|err| format!("interface {interface}: {err}"))?;
        info!(interface, hook = ?director.hook(), "direct-routing program loaded (not attached)");
        let kernel = Arc::new(Kernel {
            interface: interface.to_owned(),
            hook,
            state: Mutex::new(KernelState {
                director,
                live: BTreeMap::new(),
            }),
        });
        self.interfaces
            .insert(interface.to_owned(), Arc::clone(&kernel));
        Ok(kernel)
    }

    /// Each relay's state and per-server counters.
    pub fn status(&self) -> Vec<DirectRelayStatus> {
        self.relays
            .iter()
            .map(|(name, running)| running.status(name))
            .collect()
    }

    /// Takes every service out and detaches every program, waiting for the
    /// followers to finish.
    pub async fn stop(&mut self) {
        for running in std::mem::take(&mut self.relays).into_values() {
            running.stop().await;
        }
        for kernel in std::mem::take(&mut self.interfaces).into_values() {
            kernel.detach();
        }
    }
}

impl RunningRelay {
    /// Has the follower take the relay's services out, and waits until it did.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    fn status(&self, name: &str) -> DirectRelayStatus {
        let view = self
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (hook, counters) = {
            let state = self
                .kernel
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let counters = state.director.counters().unwrap_or_else(|err| {
                warn!(relay = %name, "cannot read the direct-routing counters: {err}");
                Vec::new()
            });
            (hook_name(state.director.hook()), counters)
        };
        let mut servers: BTreeMap<String, DirectServerStatus> = BTreeMap::new();
        for backend in &view.backends {
            servers.insert(
                backend.name.clone(),
                DirectServerStatus {
                    name: backend.name.clone(),
                    address: IpAddr::V4(backend.address),
                    local: backend.local,
                    forwarding: view.live,
                    packets: 0,
                    bytes: 0,
                    flows: 0,
                },
            );
        }
        let listening = services_of(&self.config);
        for service in counters {
            if !listening.contains(&(service.service.address, service.service.port)) {
                continue;
            }
            for backend in service.backends {
                let server =
                    servers
                        .entry(backend.name.clone())
                        .or_insert_with(|| DirectServerStatus {
                            name: backend.name.clone(),
                            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            local: false,
                            forwarding: false,
                            packets: 0,
                            bytes: 0,
                            flows: 0,
                        });
                server.packets += backend.packets;
                server.bytes += backend.bytes;
                server.flows += backend.flows;
            }
        }
        DirectRelayStatus {
            name: name.to_owned(),
            pool: self.config.pool.clone(),
            interface: self.kernel.interface.clone(),
            hook: hook.to_owned(),
            listen: self.config.listen.clone(),
            attached: view.live,
            problem: view.problem,
            servers: servers.into_values().collect(),
        }
    }
}

impl Kernel {
    /// Makes `services` live with `backends`, or takes them out (`None`);
    /// the program is attached while any service is live.
    fn apply(
        &self,
        services: &[(Ipv4Addr, u16)],
        backends: Option<&[Backend]>,
    ) -> Result<(), DirectError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for &(address, port) in services {
            let service = Service { address, port };
            match backends {
                Some(backends) => {
                    state.director.set_service(service, backends)?;
                    state.live.insert((address, port), backends.to_vec());
                }
                None => {
                    if state.live.remove(&(address, port)).is_some() {
                        state.director.remove_service(service)?;
                    }
                }
            }
        }
        if state.live.is_empty() {
            if state.director.is_attached() {
                state.director.detach()?;
                info!(interface = %self.interface, "direct-routing program detached");
            }
        } else if !state.director.is_attached() {
            state.director.attach()?;
            info!(interface = %self.interface, hook = ?state.director.hook(),
                "direct-routing program attached");
        }
        Ok(())
    }

    /// Detaches the program whatever is live (at stop).
    fn detach(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.live.clear();
        if let Err(err) = state.director.detach() {
            error!(interface = %self.interface, "cannot detach the direct-routing program: {err}");
        }
    }
}

/// Keeps one relay's services in its interface's program: live with the
/// eligible servers while its instance is master, out otherwise.
struct Follower {
    relay: String,
    services: Vec<(Ipv4Addr, u16)>,
    role: Option<Role>,
    /// `policy: first`: new flows go to the first eligible server only.
    first_only: bool,
    kernel: Arc<Kernel>,
    view: Arc<Mutex<RelayView>>,
    /// Servers already warned about (no MAC address), so each is logged once
    /// until it resolves.
    warned: BTreeSet<String>,
    /// Whether this host's own server was set up to take the VIP's packets.
    colocated: bool,
}

impl Follower {
    async fn run(
        mut self,
        mut master: watch::Receiver<bool>,
        mut pool: watch::Receiver<PoolHealth>,
        mut events: tokio::sync::broadcast::Receiver<hafront_health::HealthEvent>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
        let mut master_known = true;
        let mut applied: Option<Vec<Backend>> = None;
        loop {
            let servers = pool.borrow_and_update().clone();
            let is_master = master_known && *master.borrow_and_update();
            // This host's addresses, read once per pass: a server among them is this host.
            let local = local_addresses();
            self.prepare_colocated(&servers, &local).await;
            let wanted = if is_master {
                Some(self.backends(&servers, &local).await)
            } else {
                None
            };
            if wanted != applied {
                self.apply(wanted.as_deref());
                applied = wanted;
            }
            tokio::select! {
                _ = &mut stop => break,
                changed = master.changed(), if master_known => {
                    if changed.is_err() {
                        // The instance is gone (reload): not master any more.
                        master_known = false;
                    }
                }
                _ = pool.changed() => {}
                _ = events.recv() => {}
                _ = recheck.tick() => {}
            }
        }
        if applied.is_some() {
            self.apply(None);
        }
    }

    /// Applies `backends` (or takes the services out) and records the result.
    fn apply(&mut self, backends: Option<&[Backend]>) {
        let result = self.kernel.apply(&self.services, backends);
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                view.live = backends.is_some();
                view.backends = backends.map(<[Backend]>::to_vec).unwrap_or_default();
                if view.problem.take().is_some() {
                    info!(relay = %self.relay, "direct routing works again");
                }
                match backends {
                    Some(backends) => info!(relay = %self.relay,
                        servers = %names(backends), "direct routing forwards"),
                    None => info!(relay = %self.relay, "direct routing stands by (not master)"),
                }
            }
            Err(err) => {
                error!(relay = %self.relay, "direct routing: {err}");
                view.problem = Some(err.to_string());
            }
        }
    }

    /// The servers that get new flows: up, with the relay's role, not
    /// drained; backups only while no other server qualifies; each with a
    /// known MAC address (a server whose address does not resolve is left
    /// out and named once in the log); only the first such with
    /// `policy: first`.
    async fn backends(&mut self, servers: &PoolHealth, local: &BTreeSet<Ipv4Addr>) -> Vec<Backend> {
        let eligible = |server: &&Arc<ServerHealth>| {
            server.is_up()
                && !server.is_drained()
                && self.role.is_none_or(|role| server.role() == Some(role))
        };
        let mut chosen: Vec<&Arc<ServerHealth>> = servers
            .iter()
            .filter(eligible)
            .filter(|server| !server.backup)
            .collect();
        if chosen.is_empty() {
            chosen = servers
                .iter()
                .filter(eligible)
                .filter(|server| server.backup)
                .collect();
        }
        let mut backends = Vec::with_capacity(chosen.len());
        for server in chosen {
            if self.first_only && !backends.is_empty() {
                break;
            }
            let IpAddr::V4(address) = server.address.ip() else {
                continue;
            };
            let name = server.name.clone();
            if local.contains(&address) {
                backends.push(Backend {
                    name,
                    address,
                    mac: [0; 6],
                    weight: server.weight,
                    local: true,
                });
                continue;
            }
            let interface = self.kernel.interface.clone();
            let resolved = tokio::task::spawn_blocking(move || {
                hafront_direct::resolve_mac(&interface, address)
            })
            .await;
            match resolved {
                Ok(Ok(Some(mac))) => {
                    self.warned.remove(&name);
                    backends.push(Backend {
                        name,
                        address,
                        mac,
                        weight: server.weight,
                        local: false,
                    });
                }
                Ok(Ok(None)) => self.warn_once(
                    name,
                    format!(
                        "{address} does not answer ARP on {}: it gets no flows until it does",
                        self.kernel.interface
                    ),
                ),
                Ok(Err(err)) => self.warn_once(name, err.to_string()),
                Err(err) => self.warn_once(name, err.to_string()),
            }
        }
        backends
    }

    fn warn_once(&mut self, server: String, why: String) {
        if self.warned.insert(server.clone()) {
            warn!(relay = %self.relay, server = %server, "direct routing leaves the server out: {why}");
        }
    }

    /// On a host that is itself one of the servers, keeps the VIPs on `lo`
    /// and ARP answers for them off outside the instance's hold, once.
    async fn prepare_colocated(&mut self, servers: &PoolHealth, local: &BTreeSet<Ipv4Addr>) {
        if self.colocated {
            return;
        }
        let is_server = servers.iter().any(|server| match server.address.ip() {
            IpAddr::V4(address) => local.contains(&address),
            IpAddr::V6(_) => false,
        });
        if !is_server {
            return;
        }
        let vips: Vec<Ipv4Addr> = self.services.iter().map(|(address, _)| *address).collect();
        let interface = self.kernel.interface.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            hafront_direct::colocated::serve_locally(&interface, &vips)
        })
        .await
        .map_err(|err| err.to_string())
        .and_then(|prepared| prepared.map_err(|err| err.to_string()));
        match prepared {
            Ok(()) => {
                info!(relay = %self.relay, interface = %self.kernel.interface,
                    "this host is one of the servers: the VIPs are on lo, and ARP for them \
                     is answered only where the VRRP instance holds them");
                self.colocated = true;
            }
            Err(err) => {
                error!(relay = %self.relay, "cannot prepare this host to serve the VIPs: {err}");
                self.view
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .problem = Some(err);
            }
        }
    }
}

/// This host's IPv4 addresses, on every interface.
fn local_addresses() -> BTreeSet<Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .map(|addresses| {
            addresses
                .filter_map(|interface| {
                    interface
                        .address?
                        .as_sockaddr_in()
                        .map(|address| address.ip())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn names(backends: &[Backend]) -> String {
    let names: Vec<&str> = backends
        .iter()
        .map(|backend| backend.name.as_str())
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn kernel_hook(hook: KernelHook) -> Hook {
    match hook {
        KernelHook::Auto => Hook::Auto,
        KernelHook::XdpNative => Hook::XdpNative,
        KernelHook::XdpGeneric => Hook::XdpGeneric,
        KernelHook::Tc => Hook::Tc,
    }
}

fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Auto => "auto",
        Hook::XdpNative => "xdp_native",
        Hook::XdpGeneric => "xdp_generic",
        Hook::Tc => "tc",
    }
}
