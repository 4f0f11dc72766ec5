//! Holds an attached direct-routing director for the netns tests (the kill -9 case) and for
//! measuring by hand: loads the program on INTERFACE at HOOK, forwards VIP:PORT to the
//! servers given as NAME=ADDRESS[*WEIGHT] (their MACs from the neighbour table), attaches,
//! prints `attached <hook>` and holds until it is killed (the program goes with it).
//!
//! ```text
//! ip netns exec DIRECTOR hafront-direct-holder eth0 xdp 10.213.0.100:6379 a=10.213.0.2 b=10.213.0.3*3
//! ```

use std::io::Write;
use std::net::Ipv4Addr;

use hafront_direct::{Backend, Director, Hook, Service};

fn main() {
    if let Err(error) = run() {
        eprintln!("hafront-direct-holder: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [interface, hook, service, servers @ ..] = args.as_slice() else {
        return Err("usage: INTERFACE xdp|xdp-native|tc VIP:PORT NAME=ADDRESS[*WEIGHT]...".into());
    };
    let hook = match hook.as_str() {
        "xdp" => Hook::XdpGeneric,
        "xdp-native" => Hook::XdpNative,
        "tc" => Hook::Tc,
        other => return Err(format!("unknown hook {other}")),
    };
    let (address, port) = service.split_once(':').ok_or("the service is VIP:PORT")?;
    let service = Service {
        address: address.parse().map_err(|_| "bad VIP")?,
        port: port.parse().map_err(|_| "bad port")?,
    };
    let mut backends = Vec::new();
    for server in servers {
        let (name, rest) = server.split_once('=').ok_or("a server is NAME=ADDRESS")?;
        let (address, weight) = rest.split_once('*').unwrap_or((rest, "1"));
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("bad address {address}"))?;
        let mac = hafront_direct::resolve_mac(interface, address)
            .map_err(|error| error.to_string())?
            .ok_or(format!("{address} does not answer ARP on {interface}"))?;
        backends.push(Backend {
            name: name.to_owned(),
            address,
            mac,
            weight: weight.parse().map_err(|_| format!("bad weight {weight}"))?,
            local: false,
        });
    }
    let mut director = Director::load(interface, hook).map_err(|error| error.to_string())?;
    director
        .set_service(service, &backends)
        .map_err(|error| error.to_string())?;
    director.attach().map_err(|error| error.to_string())?;
    println!("attached {}", director.hook());
    std::io::stdout()
        .flush()
        .map_err(|error| error.to_string())?;
    loop {
        std::thread::park();
    }
}
