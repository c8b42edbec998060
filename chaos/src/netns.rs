//! One Linux network namespace per zone, joined by a bridge in the host's
//! namespace: zone `i` (0-based) is namespace `skc-zone-<name>`, its nodes
//! hold addresses `10.77.<i+1>.<10+k>` on the namespace's `eth0`, and the
//! host reaches them all through the bridge at `10.77.0.1`. Faults that
//! touch the network act inside a zone's namespace, so the host's own
//! firewall is never changed. Everything this module makes carries the
//! `skc-` prefix; dropping a `ZoneNetwork`, or `clean_leftovers` at the
//! start of a run, removes it.

use std::net::Ipv4Addr;
use std::process::Command;

/// Prefix of every namespace and link a drill makes.
pub const PREFIX: &str = "skc-";
/// The bridge joining the zones.
const BRIDGE: &str = "skc-br";
/// The bridge's address, on the drill's /16.
const BRIDGE_ADDRESS: &str = "10.77.0.1/16";
/// Most zones a drill lays out (third octets 1..=MAX_ZONES).
pub const MAX_ZONES: usize = 9;
/// Most nodes per zone (last octets 10..10+MAX_NODES_PER_ZONE).
pub const MAX_NODES_PER_ZONE: usize = 8;
/// The interface inside every zone's namespace.
pub const ZONE_INTERFACE: &str = "eth0";

/// Why the zones' network could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("the drill lays out zones as network namespaces, which needs root: run it as root")]
    NotRoot,
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("cannot run `{program}`: {source} (install iproute2 and nftables)")]
    Missing { program: String, source: std::io::Error },
    #[error("at most {MAX_ZONES} zones and {MAX_NODES_PER_ZONE} nodes per zone, not {zones} zones")]
    TooMany { zones: usize },
}

/// Runs `program args`, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<(), NetError> {
    run_with_input(program, args, "")
}

/// Runs `program args` with `input` on its stdin, failing with its stderr.
fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), NetError> {
    use std::io::Write;
    let missing = |source| NetError::Missing {
        program: program.to_string(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(missing)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that reads nothing may close its stdin first; its exit status tells.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(missing)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs `program args` inside `namespace`.
pub fn run_in(namespace: &str, program: &str, args: &[&str]) -> Result<(), NetError> {
    let mut full = vec!["netns", "exec", namespace, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// Runs `nft -f -` inside `namespace` with `script` on stdin.
pub fn nft_in(namespace: &str, script: &str) -> Result<(), NetError> {
    run_with_input("ip", &["netns", "exec", namespace, "nft", "-f", "-"], script)
}

/// The namespace of zone `zone`.
pub fn namespace(zone: &str) -> String {
    format!("{PREFIX}zone-{zone}")
}

/// How a drill lays its zones out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// One network namespace per zone (needs root): every fault is possible.
    Namespaces,
    /// Every node on a loopback address of its own in the host's namespace
    /// (no root): only faults made with signals to processes.
    Loopback,
}

impl Isolation {
    /// The address of the `k`th node (0-based) of the `index`th zone
    /// (0-based): `10.77.<index+1>.<10+k>` in a namespace, or
    /// `127.77.<index+1>.<10+k>` on loopback (Linux routes all of
    /// `127.0.0.0/8` to the loopback interface, so no set-up is needed).
    pub fn node_address(self, index: usize, k: usize) -> Ipv4Addr {
        assert!(
            index < MAX_ZONES && k < MAX_NODES_PER_ZONE,
            "zone {index} node {k} out of range"
        );
        let first = match self {
            Isolation::Namespaces => 10,
            Isolation::Loopback => 127,
        };
        Ipv4Addr::new(first, 77, index as u8 + 1, 10 + k as u8)
    }
}

/// Whether this process may make namespaces, rules and loop devices.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The zones' namespaces and the bridge between them; removed on drop.
#[derive(Debug)]
pub struct ZoneNetwork {
    zones: Vec<String>,
}

impl ZoneNetwork {
    /// Makes one namespace per zone, each with `nodes_per_zone` addresses,
    /// after removing what an earlier run left behind.
    pub fn create(zones: &[&str], nodes_per_zone: usize) -> Result<Self, NetError> {
        if !is_root() {
            return Err(NetError::NotRoot);
        }
        if zones.len() > MAX_ZONES || nodes_per_zone > MAX_NODES_PER_ZONE {
            return Err(NetError::TooMany { zones: zones.len() });
        }
        clean_leftovers();
        let network = Self {
            zones: zones.iter().map(|z| z.to_string()).collect(),
        };
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        run("ip", &["addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE])?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        for (index, zone) in zones.iter().enumerate() {
            let ns = namespace(zone);
            let host_side = format!("{PREFIX}v-{zone}");
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &host_side,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    ZONE_INTERFACE,
                    "netns",
                    &ns,
                ],
            )?;
            run("ip", &["link", "set", &host_side, "master", BRIDGE, "up"])?;
            for k in 0..nodes_per_zone {
                let address = format!("{}/16", Isolation::Namespaces.node_address(index, k));
                run("ip", &["-n", &ns, "addr", "add", &address, "dev", ZONE_INTERFACE])?;
            }
            run("ip", &["-n", &ns, "link", "set", ZONE_INTERFACE, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// The zones, in the order they were laid out.
    pub fn zones(&self) -> &[String] {
        &self.zones
    }
}

impl Drop for ZoneNetwork {
    fn drop(&mut self) {
        clean_leftovers();
    }
}

/// Removes every namespace and link with the drill's prefix, killing any
/// process still inside one of its namespaces (a node an interrupted drill
/// left running would otherwise keep the namespace, and its link, alive).
pub fn clean_leftovers() {
    let listed = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for line in listed(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if !name.starts_with(PREFIX) {
            continue;
        }
        for pid in listed(&["netns", "pids", name]).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        let _ = run("ip", &["netns", "del", name]);
    }
    // A link whose namespace is still going away is deleted here directly.
    for line in listed(&["-o", "link", "show"]).lines() {
        let name = line.split(':').nth(1).unwrap_or_default().trim();
        let name = name.split('@').next().unwrap_or_default();
        if name.starts_with(PREFIX) {
            let _ = run("ip", &["link", "del", name]);
        }
    }
}
