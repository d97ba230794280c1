//! The kernel as the oracle for the firewall check. Each test builds three network namespaces
//! (client, router, server), loads a real ruleset into the router (nftables with `counter`
//! statements, or iptables), opens real TCP and UDP connections from the client to the server
//! through it, captures them with tcpdump on the router's client-side interface, runs
//! `flowaudit audit --firewall` on the capture and compares firewall.csv with the kernel's own
//! per-rule packet counters and with what each connection did (answered or timed out).
//!
//! Needs root, nftables, iptables and tcpdump (CI installs them and runs as root; elsewhere the
//! tests skip with a message, and fail under CI=true). Only 198.19.1.0/24 and 198.19.2.0/24
//! (benchmarking addresses) inside the namespaces are used; the namespaces are removed even when
//! a test fails.

mod common;

use common::read_csv;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

/// Whether to skip: not root, or a tool missing (never under CI=true, where both are set up).
fn skip(what: &str, tools: &[&str]) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(!ci, "CI must run {what} as root");
        eprintln!("skipping {what}: needs root to create network namespaces");
        return true;
    }
    for t in tools {
        let found = Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            assert!(
                !ci,
                "{what} needs {t} (apt-get install nftables iptables ipset tcpdump)"
            );
            eprintln!("skipping {what}: {t} is not installed (apt-get install nftables iptables ipset tcpdump)");
            return true;
        }
    }
    false
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// client (198.19.1.2 and .3) -- router (198.19.1.1 | 198.19.2.1) -- server (198.19.2.2).
struct Lab {
    c: String,
    r: String,
    s: String,
    dir: tempfile::TempDir,
}

const SERVER: &str = "198.19.2.2";

impl Lab {
    fn new(tag: &str) -> Lab {
        let id = std::process::id();
        let lab = Lab {
            c: format!("fwk{id}{tag}c"),
            r: format!("fwk{id}{tag}r"),
            s: format!("fwk{id}{tag}s"),
            dir: tempfile::tempdir().unwrap(),
        };
        for ns in [&lab.c, &lab.r, &lab.s] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
            sh(&["ip", "netns", "add", ns]);
            // No IPv6 chatter (router solicitations) in the capture.
            for k in ["all", "default"] {
                sh(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                ]);
            }
        }
        sh(&[
            "ip", "link", "add", "rc", "netns", &lab.r, "type", "veth", "peer", "name", "c0",
            "netns", &lab.c,
        ]);
        sh(&[
            "ip", "link", "add", "rs", "netns", &lab.r, "type", "veth", "peer", "name", "s0",
            "netns", &lab.s,
        ]);
        for (ns, dev, addrs) in [
            (&lab.c, "c0", vec!["198.19.1.2/24", "198.19.1.3/24"]),
            (&lab.r, "rc", vec!["198.19.1.1/24"]),
            (&lab.r, "rs", vec!["198.19.2.1/24"]),
            (&lab.s, "s0", vec!["198.19.2.2/24"]),
        ] {
            for a in addrs {
                sh(&["ip", "-n", ns, "addr", "add", a, "dev", dev]);
            }
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &lab.c,
            "route",
            "add",
            "default",
            "via",
            "198.19.1.1",
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.s,
            "route",
            "add",
            "default",
            "via",
            "198.19.2.1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &lab.r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn in_router(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.r];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn in_ns<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd affects only this thread.
            let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// Servers on the server: every TCP port answers `pong`, every UDP port echoes.
    fn serve(&self, tcp: &[u16], udp: &[u16]) {
        for &p in tcp {
            let l = Lab::in_ns(&self.s, move || TcpListener::bind(("0.0.0.0", p)).unwrap())
                .join()
                .unwrap();
            std::thread::spawn(move || {
                for c in l.incoming().flatten() {
                    let mut c = c;
                    let mut buf = [0u8; 16];
                    let _ = c.read(&mut buf);
                    let _ = c.write_all(b"pong");
                }
            });
        }
        for &p in udp {
            let s = Lab::in_ns(&self.s, move || UdpSocket::bind(("0.0.0.0", p)).unwrap())
                .join()
                .unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            });
        }
    }

    /// tcpdump on the router's client-side interface, until the returned guard is stopped.
    fn capture(&self) -> Capture {
        let file = self.path("window.pcap");
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", &self.r, "tcpdump", "-i", "rc", "-n", "-U", "-s", "0", "-w",
            ])
            .arg(&file)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening on rc"), "tcpdump said: {line}");
        Capture { child, file }
    }

    /// Connections from the client, one after the other: ("src", "tcp"|"udp", port) -> what
    /// happened: answered or timeout (or refused).
    fn connect(&self, specs: &[(&'static str, &'static str, u16)]) -> Vec<String> {
        let specs = specs.to_vec();
        Lab::in_ns(&self.c, move || {
            specs
                .iter()
                .map(|&(src, proto, port)| {
                    let to: SocketAddr = format!("{SERVER}:{port}").parse().unwrap();
                    let r = if proto == "tcp" {
                        tcp_once(src, to)
                    } else {
                        udp_once(src, to)
                    };
                    format!("{src} {proto}/{port} {r}")
                })
                .collect()
        })
        .join()
        .unwrap()
    }
}

fn tcp_once(src: &str, to: SocketAddr) -> &'static str {
    // A socket bound to the client address (std has no bind-before-connect): through libc.
    let sock = socket2_connect(src, to);
    match sock {
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(b"ping");
            let mut buf = [0u8; 4];
            match s.read_exact(&mut buf) {
                Ok(()) => "answered",
                Err(_) => "no-answer",
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused",
        Err(_) => "timeout",
    }
}

/// connect(2) from a chosen source address with a 1 s timeout.
fn socket2_connect(src: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a fresh descriptor we own; the sockaddr structs are fully
    // initialised before use.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let sa = |a: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(a).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let local = sa(src.parse().unwrap(), 0);
        assert_eq!(
            libc::bind(fd, &local as *const _ as *const libc::sockaddr, len),
            0
        );
        // Give up after one retransmission of the SYN (about 1 s).
        let ms: libc::c_uint = 1500;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &ms as *const _ as *const libc::c_void,
            4,
        );
        let syncnt: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_SYNCNT,
            &syncnt as *const _ as *const libc::c_void,
            4,
        );
        let SocketAddr::V4(t) = to else {
            unreachable!()
        };
        let remote = sa(*t.ip(), t.port());
        let r = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        let s = TcpStream::from_raw_fd(fd);
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(s)
    }
}

fn udp_once(src: &str, to: SocketAddr) -> &'static str {
    let s = UdpSocket::bind((src, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.send_to(b"ping", to).unwrap();
    let mut buf = [0u8; 16];
    match s.recv_from(&mut buf) {
        Ok(_) => "answered",
        Err(_) => "timeout",
    }
}

struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        // `ip netns exec` forwards the signal; tcpdump flushes and exits.
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.c, &self.r, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The traffic both tests send: (source, protocol, port).
const TRAFFIC: [(&str, &str, u16); 8] = [
    ("198.19.1.2", "tcp", 2501), // documented (VBR-039), through the wide range
    ("198.19.1.2", "tcp", 2501),
    ("198.19.1.2", "tcp", 2502),
    ("198.19.1.2", "tcp", 9401), // documented (VBR-198), through the exact rule
    ("198.19.1.2", "tcp", 9392), // documented (VBR-036), dropped by the ruleset
    ("198.19.1.3", "tcp", 8050), // a host not in the inventory
    ("198.19.1.2", "udp", 9000), // undocumented
    ("198.19.1.2", "tcp", 5555), // undocumented, dropped by the policy
];

const INVENTORY: &str = "address,roles,name\n198.19.1.2,backup-console,console01\n198.19.2.2,backup-server;mount-server,vbr01\n";

/// Runs the traffic through the lab and the audit with `--firewall` on the capture.
fn audit(lab: &Lab, ruleset: &Path, extra: &[&str]) -> (Vec<String>, PathBuf) {
    lab.serve(&[2501, 2502, 9401, 9392, 8050, 5555], &[9000]);
    let cap = lab.capture();
    let outcomes = lab.connect(&TRAFFIC);
    let pcap = cap.stop();
    let inv = lab.path("hosts.csv");
    std::fs::write(&inv, INVENTORY).unwrap();
    let out = lab.path("report");
    let o = Command::new(BIN)
        .arg("audit")
        .arg(&pcap)
        .arg("-I")
        .arg(&inv)
        .arg("-o")
        .arg(&out)
        .arg("--firewall")
        .arg(ruleset)
        .arg("--write-flows")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "audit failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (outcomes, out)
}

fn n(row: &BTreeMap<String, String>, k: &str) -> u64 {
    row[k].parse().unwrap()
}

/// The checks both tests share: per rule, flowaudit's hits against the kernel's counters; per
/// connection, flowaudit's decision against what the connection did.
fn compare(
    out: &Path,
    outcomes: &[String],
    kernel: &BTreeMap<String, u64>,
    established_rule: &str,
) {
    let rows = read_csv(&out.join("firewall.csv"));
    // What each connection did, and what flowaudit says the ruleset decided for its service.
    let svc = read_csv(&out.join("firewall_services.csv"));
    for o in outcomes {
        let w: Vec<&str> = o.split(' ').collect();
        let (proto, port) = w[1].split_once('/').unwrap();
        let s = svc
            .iter()
            .find(|s| s["client_addr"] == w[0] && s["proto"] == proto && s["server_port"] == port)
            .unwrap_or_else(|| panic!("no service for {o}"));
        let want = if w[2] == "answered" { "accept" } else { "drop" };
        assert_eq!(s["decision"], want, "{o}: flowaudit says {s:?}");
    }
    // Per rule: hit or not, as the kernel counted.
    for r in &rows {
        if r["index"] == "policy" {
            continue;
        }
        let pos = &r["position"];
        let k = kernel[pos];
        assert_eq!(
            k > 0,
            n(r, "services") > 0,
            "{pos} ({}): kernel {k} packets, flowaudit {r:?}",
            r["text"]
        );
        // A rule that accepted new connections and nothing else counted one packet each.
        if r["action"] == "accept" && n(r, "established_services") == 0 && n(r, "new_services") > 0
        {
            assert_eq!(k, n(r, "flows"), "{pos}: kernel packets vs flowaudit flows");
        }
        if r["action"] == "drop" || r["action"] == "jump" {
            // Dropped SYNs are retransmitted: at least one packet per flow.
            assert!(
                k >= n(r, "flows"),
                "{pos}: kernel {k} < flows {}",
                r["flows"]
            );
        }
    }
    // The accept-established rule counted every packet of the accepted connections but their
    // first: computed from the capture's flows and flowaudit's decisions.
    let flows = read_csv(&out.join("flows.csv"));
    let accepted: Vec<&BTreeMap<String, String>> =
        svc.iter().filter(|s| s["decision"] == "accept").collect();
    let mut expect = 0;
    for f in &flows {
        if accepted.iter().any(|s| {
            s["client_addr"] == f["client_addr"]
                && s["server_addr"] == f["server_addr"]
                && s["proto"] == f["proto"]
                && s["server_port"] == f["server_port"]
        }) {
            expect += n(f, "client_packets") + n(f, "server_packets") - 1;
        }
    }
    assert!(expect > 0);
    assert_eq!(
        kernel[established_rule], expect,
        "established rule: kernel vs capture"
    );
}

/// (position, verdict, services, flows, covering_ports, covering_clients, covering_servers)
/// of every row.
fn verdicts(out: &Path) -> Vec<[String; 7]> {
    read_csv(&out.join("firewall.csv"))
        .into_iter()
        .map(|r| {
            [
                r["position"].clone(),
                r["verdict"].clone(),
                r["services"].clone(),
                r["flows"].clone(),
                r["covering_ports"].clone(),
                r["covering_clients"].clone(),
                r["covering_servers"].clone(),
            ]
        })
        .collect()
}

fn row(v: [&str; 7]) -> [String; 7] {
    v.map(String::from)
}

const NFT_RULESET: &str = "table inet fw {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related counter accept
    ip saddr 198.19.1.0/24 tcp dport 2000-4000 counter accept
    ip saddr 198.19.1.2 ip daddr 198.19.2.2 tcp dport 9401 counter accept
    tcp dport 9392 counter drop
    tcp dport 8000-8100 counter accept
    tcp dport 7000 counter accept
    tcp dport 7100 meta mark 0x1 counter accept
    udp dport 9000 counter accept
  }
}
";

/// The kernel's counters by position (`inet fw forward #n`), from `nft -j list ruleset`.
fn nft_counters(json: &str) -> BTreeMap<String, u64> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut per_chain: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for item in v["nftables"].as_array().unwrap() {
        let Some(r) = item.get("rule") else { continue };
        let chain = format!(
            "{} {} {}",
            r["family"].as_str().unwrap(),
            r["table"].as_str().unwrap(),
            r["chain"].as_str().unwrap()
        );
        let i = per_chain.entry(chain.clone()).or_default();
        *i += 1;
        let packets = r["expr"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e.get("counter").and_then(|c| c["packets"].as_u64()))
            .expect("every rule has a counter");
        out.insert(format!("{chain} #{i}"), packets);
    }
    out
}

#[test]
fn nftables_rule_hits_match_the_kernels_counters() {
    if skip("the nftables kernel test", &["nft", "tcpdump"]) {
        return;
    }
    let lab = Lab::new("n");
    let rules = lab.path("fw.nft");
    std::fs::write(&rules, NFT_RULESET).unwrap();
    lab.in_router(&["nft", "-f", rules.to_str().unwrap()]);
    // flowaudit reads the ruleset exported before the traffic; the kernel's counters are read
    // after it.
    let export = lab.path("fw.json");
    std::fs::write(&export, lab.in_router(&["nft", "-j", "list", "ruleset"])).unwrap();
    let (outcomes, out) = audit(&lab, &export, &[]);
    let after = lab.in_router(&["nft", "-j", "list", "ruleset"]);
    let kernel = nft_counters(&after);
    assert_eq!(
        outcomes,
        vec![
            "198.19.1.2 tcp/2501 answered",
            "198.19.1.2 tcp/2501 answered",
            "198.19.1.2 tcp/2502 answered",
            "198.19.1.2 tcp/9401 answered",
            "198.19.1.2 tcp/9392 timeout",
            "198.19.1.3 tcp/8050 answered",
            "198.19.1.2 udp/9000 answered",
            "198.19.1.2 tcp/5555 timeout",
        ]
    );
    compare(&out, &outcomes, &kernel, "inet fw forward #1");
    let f = "inet fw forward";
    assert_eq!(
        verdicts(&out),
        vec![
            row([&format!("{f} #1"), "needed", "5", "6", "", "", ""]),
            row([
                &format!("{f} #2"),
                "too-wide",
                "2",
                "3",
                "2501-2502",
                "console01 (198.19.1.2)",
                "vbr01 (198.19.2.2)"
            ]),
            row([
                &format!("{f} #3"),
                "needed",
                "1",
                "1",
                "9401",
                "console01 (198.19.1.2)",
                "vbr01 (198.19.2.2)"
            ]),
            row([&format!("{f} #4"), "drops-documented", "1", "1", "", "", ""]),
            row([
                &format!("{f} #5"),
                "allows-undocumented",
                "1",
                "1",
                "",
                "",
                ""
            ]),
            row([&format!("{f} #6"), "unused", "0", "0", "", "", ""]),
            row([&format!("{f} #7"), "not-evaluated", "0", "0", "", "", ""]),
            row([
                &format!("{f} #8"),
                "allows-undocumented",
                "1",
                "1",
                "",
                "",
                ""
            ]),
            row([&format!("{f} policy"), "needed", "1", "1", "", "", ""]),
        ]
    );
    // The documented service the ruleset drops is a high finding, among the high ones.
    let findings = read_csv(&out.join("findings.csv"));
    let rank = |s: &str| {
        ["high", "medium", "low", "info"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(findings
        .windows(2)
        .all(|w| rank(&w[0]["severity"]) <= rank(&w[1]["severity"])));
    let fw: Vec<(&str, &str, &str)> = findings
        .iter()
        .filter(|f| f["kind"].starts_with("firewall-"))
        .map(|f| {
            (
                f["severity"].as_str(),
                f["kind"].as_str(),
                f["subject"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        fw,
        vec![
            ("high", "firewall-drops-documented", "console01 (198.19.1.2) -> vbr01 (198.19.2.2) tcp/9392"),
            ("medium", "firewall-allows-undocumented", "firewall inet fw forward #5: tcp dport 8000-8100 counter accept"),
            ("medium", "firewall-allows-undocumented", "firewall inet fw forward #8: udp dport 9000 counter accept"),
            ("low", "firewall-too-wide", "firewall inet fw forward #2: ip saddr 198.19.1.0/24 tcp dport 2000-4000 counter accept"),
            ("info", "firewall-unused-rule", "firewall inet fw forward #6: tcp dport 7000 counter accept"),
            ("info", "firewall-not-evaluated", "firewall inet fw forward #7: tcp dport 7100 meta mark 1 counter accept"),
        ]
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("## Firewall ruleset"), "{summary}");
    assert!(
        summary.contains("- Evaluated chains: inet fw forward"),
        "{summary}"
    );
}

const IPTABLES_RULESET: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:console - [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -s 198.19.1.0/24 -j console
-A FORWARD -p udp -m udp --dport 9000 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 7000 -j ACCEPT
-A console -p tcp -m tcp --dport 9392 -j DROP
-A console -p tcp -m multiport --dports 2000:4000 -j ACCEPT
-A console -d 198.19.2.2/32 -p tcp -m set --match-set consoles src -m tcp --dport 9401 -j ACCEPT
-A console -p tcp -m tcp --dport 8000:8100 -j ACCEPT
-A console -p tcp -m tcp --dport 7100 -m mark --mark 0x1 -j ACCEPT
COMMIT
";

/// `iptables -L CHAIN -v -x -n --line-numbers`: packets by position (`iptables filter CHAIN #n`).
fn iptables_counters(lab: &Lab, chains: &[&str]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in chains {
        let text = lab.in_router(&["iptables", "-L", c, "-v", "-x", "-n", "--line-numbers"]);
        for line in text.lines().skip(2) {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() > 2 {
                out.insert(
                    format!("iptables filter {c} #{}", w[0]),
                    w[1].parse().unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn iptables_rule_hits_match_the_kernels_counters() {
    if skip(
        "the iptables kernel test",
        &["iptables", "ipset", "tcpdump"],
    ) {
        return;
    }
    let lab = Lab::new("i");
    // The set the 9401 rule uses: only the console (a real kernel ipset).
    lab.in_router(&["ipset", "create", "consoles", "hash:ip"]);
    lab.in_router(&["ipset", "add", "consoles", "198.19.1.2"]);
    let sets = lab.path("ipsets.save");
    std::fs::write(&sets, lab.in_router(&["ipset", "save"])).unwrap();
    let rules = lab.path("rules.v4");
    std::fs::write(&rules, IPTABLES_RULESET).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.r, "iptables-restore"])
        .stdin(std::fs::File::open(&rules).unwrap())
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let export = lab.path("saved.v4");
    std::fs::write(&export, lab.in_router(&["iptables-save"])).unwrap();
    let (outcomes, out) = audit(
        &lab,
        &export,
        &[
            "--firewall",
            sets.to_str().unwrap(),
            "--firewall-chain",
            "FORWARD",
        ],
    );
    let kernel = iptables_counters(&lab, &["FORWARD", "console"]);
    compare(&out, &outcomes, &kernel, "iptables filter FORWARD #1");
    let (f, c) = ("iptables filter FORWARD", "iptables filter console");
    assert_eq!(
        verdicts(&out),
        vec![
            row([&format!("{f} #1"), "needed", "5", "6", "", "", ""]),
            // The jump is on the path of every new connection from the client subnet, and
            // undocumented ones came through it.
            row([
                &format!("{f} #2"),
                "allows-undocumented",
                "7",
                "8",
                "",
                "",
                ""
            ]),
            row([
                &format!("{f} #3"),
                "allows-undocumented",
                "1",
                "1",
                "",
                "",
                ""
            ]),
            row([&format!("{f} #4"), "unused", "0", "0", "", "", ""]),
            row([&format!("{f} policy"), "needed", "1", "1", "", "", ""]),
            row([&format!("{c} #1"), "drops-documented", "1", "1", "", "", ""]),
            row([
                &format!("{c} #2"),
                "too-wide",
                "2",
                "3",
                "2501-2502",
                "console01 (198.19.1.2)",
                "vbr01 (198.19.2.2)"
            ]),
            row([
                &format!("{c} #3"),
                "needed",
                "1",
                "1",
                "9401",
                "console01 (198.19.1.2)",
                "vbr01 (198.19.2.2)"
            ]),
            row([
                &format!("{c} #4"),
                "allows-undocumented",
                "1",
                "1",
                "",
                "",
                ""
            ]),
            row([&format!("{c} #5"), "not-evaluated", "0", "0", "", "", ""]),
        ]
    );
}

const ROUND_TRIP: &str = "table inet trip {
  set backup_hosts {
    type ipv4_addr; flags interval;
    elements = { 10.1.0.0/24, 10.2.0.5-10.2.0.9, 10.3.0.1 }
  }
  set vports {
    type inet_service; flags interval;
    elements = { 22, 2500-3300 }
  }
  map verdicts {
    type inet_service : verdict;
    elements = { 80 : accept, 81 : drop, 82 : jump sub }
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname \"eth*\" oifname \"wan0\" accept
    ip saddr @backup_hosts tcp dport @vports counter accept
    ip6 saddr 2001:db8::/32 meta l4proto { tcp, udp } th dport 53 accept
    ip saddr != 10.0.0.0/8 tcp dport { 443, 8443 } drop
    tcp dport vmap @verdicts
    udp dport 1000-2000 jump sub
    tcp dport < 1024 goto sub
  }
  chain sub {
    ip daddr 10.9.0.0/16 return
    tcp dport 82 accept
  }
}
";

#[test]
fn nft_json_export_round_trips_without_loss() {
    use flowaudit::firewall::model::Ruleset;
    if skip("the nft round-trip test", &["nft"]) {
        return;
    }
    let lab = Lab::new("t");
    let rules = lab.path("rt.nft");
    std::fs::write(&rules, ROUND_TRIP).unwrap();
    lab.in_router(&["nft", "-f", rules.to_str().unwrap()]);
    let json = lab.in_router(&["nft", "-j", "list", "ruleset"]);
    let mut rs = Ruleset::default();
    flowaudit::firewall::load_text("export.json", &json, &mut rs).unwrap();
    rs.resolve_sets();
    assert!(rs.skipped.is_empty(), "{:?}", rs.skipped);
    // Every rule was understood: nothing left "not evaluated".
    for c in &rs.chains {
        for r in &c.rules {
            assert!(
                r.unknown_reasons().is_empty(),
                "{}: {:?}",
                r.text,
                r.unknown_reasons()
            );
        }
    }
    // The rules' text, as flowaudit rebuilds it from the JSON, is nft's own listing (without
    // the counters' values and the quotes around interface names).
    let listing = lab.in_router(&["nft", "list", "ruleset"]);
    let mut nft_rules: Vec<String> = Vec::new();
    let mut in_chain = false;
    for line in listing.lines().map(str::trim) {
        if line.starts_with("chain ") {
            in_chain = true;
        } else if line == "}" {
            in_chain = false;
        } else if in_chain && !line.starts_with("type ") && !line.is_empty() {
            let mut w: Vec<&str> = line.split(' ').collect();
            while let Some(i) = w.iter().position(|x| *x == "packets") {
                w.drain(i..i + 4); // "packets N bytes M"
            }
            nft_rules.push(w.join(" ").replace('"', ""));
        }
    }
    let ours: Vec<String> = rs
        .chains
        .iter()
        .flat_map(|c| c.rules.iter().map(|r| r.text.clone()))
        .collect();
    assert_eq!(ours, nft_rules);
    assert_eq!(ours.len(), 11);
    // The sets' contents came through: evaluate a few packets.
    use flowaudit::firewall::eval::{evaluate, Packet, Selection};
    use flowaudit::firewall::model::{addr_key, ct};
    let bases = Selection::default().base_chains(&rs);
    let p = |src: &str, dst: &str, proto: u8, port: u16| Packet {
        v6: src.contains(':'),
        saddr: addr_key(src.parse().unwrap()),
        daddr: addr_key(dst.parse().unwrap()),
        proto,
        sport: None,
        dport: Some(port),
        iif: Some("eth1".into()),
        oif: Some("lan0".into()),
        state: ct::NEW,
    };
    let by = |pk: Packet| {
        let t = evaluate(&rs, &bases, &pk);
        format!(
            "{} {}",
            t.verdict.as_str(),
            t.by.map(|a| flowaudit::firewall::check::position(&rs, a))
                .unwrap_or_default()
        )
    };
    assert_eq!(
        by(p("10.2.0.7", "10.9.9.9", 6, 3000)),
        "accept inet trip forward #4"
    );
    assert_eq!(
        by(p("10.2.0.10", "10.9.9.9", 6, 3000)),
        "drop inet trip forward policy"
    );
    assert_eq!(
        by(p("2001:db8::5", "2001:db9::1", 17, 53)),
        "accept inet trip forward #5"
    );
    assert_eq!(
        by(p("192.0.2.1", "10.9.9.9", 6, 8443)),
        "drop inet trip forward #6"
    );
    assert_eq!(
        by(p("10.5.0.1", "10.8.0.1", 6, 81)),
        "drop inet trip forward #7"
    );
    assert_eq!(
        by(p("10.5.0.1", "10.8.0.1", 6, 82)),
        "accept inet trip sub #2"
    );
    // 82 to 10.9/16: sub returns, vmap's jump goes on to #8 (udp), #9 (< 1024: goto sub,
    // which returns again, from forward too): the policy.
    assert_eq!(
        by(p("10.5.0.1", "10.9.0.1", 6, 82)),
        "drop inet trip forward policy"
    );
}
