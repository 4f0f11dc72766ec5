//! `hafront check` and `run` refuse a direct-routing relay whose servers are not on its
//! interface's subnet (it reaches them by MAC address), at the server's line; a file for
//! another machine passes with `--skip-files`.

use std::process::Command;

const HAFRONT: &str = env!("CARGO_BIN_EXE_hafront");

#[test]
fn a_direct_routing_server_off_the_interface_subnet_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "global:\n  state_dir: {state}\n  control_socket: {socket}\n\
         checks:\n  port: {{ kind: tcp }}\n\
         pools:\n  db:\n    check: port\n    servers:\n      - address: 127.0.0.5:3306\n      - address: 10.213.9.9:3306\n\
         vrrp:\n  instances:\n    vip:\n      interface: lo\n      vrid: 51\n      priority: 100\n      virtual_addresses: [127.0.0.100/8]\n\
         relays:\n  db:\n    listen: [127.0.0.100:3306]\n    pool: db\n    forward: direct_routing\n",
        state = dir.path().join("state").display(),
        socket = dir.path().join("control.sock").display(),
    );
    let config = dir.path().join("hafront.yaml");
    std::fs::write(&config, &text).expect("write the configuration");
    let line = text
        .lines()
        .position(|line| line.contains("10.213.9.9"))
        .expect("the server's line")
        + 1;
    let location = format!("{}:{line}:", config.display());

    for command in ["check", "run"] {
        let output = Command::new(HAFRONT)
            .args([command, "-c"])
            .arg(&config)
            .output()
            .expect("run hafront");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command} accepted it: {stderr}");
        assert!(
            stderr.contains(&location)
                && stderr.contains("pools.db.servers[1].address")
                && stderr.contains("10.213.9.9 must be on that interface's subnet")
                && stderr.contains("127.0.0.0/8"),
            "{command}: not located at {location} with the interface's networks: {stderr}"
        );
        assert!(
            !stderr.contains("servers[0]"),
            "{command}: the server on the subnet was refused too: {stderr}"
        );
    }

    let output = Command::new(HAFRONT)
        .args(["check", "--skip-files", "-c"])
        .arg(&config)
        .output()
        .expect("run hafront");
    assert!(
        output.status.success(),
        "--skip-files (a file for another machine) refused it: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
