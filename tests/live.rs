//! Live capture through libpcap on a real veth pair between two network namespaces made by the
//! test, with real sockets opened inside the namespaces. Needs root (CI runs as root; elsewhere
//! the tests skip with a message). Only addresses inside the namespaces (198.18.0.0/15, the
//! benchmarking range) are used; the namespaces are removed even when a test fails.
#![cfg(feature = "live")]

mod common;

use common::read_csv;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn skip() -> bool {
    if is_root() {
        return false;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must run the live tests as root"
    );
    eprintln!("skipping live capture test: needs root to create network namespaces");
    true
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect("run ip");
    assert!(st.success(), "{args:?} failed");
}

/// Two namespaces joined by a veth pair: A has .1 and .3, B has .2.
struct Net {
    a: String,
    b: String,
    net: u8,
}

impl Net {
    fn new(tag: u8) -> Net {
        let id = std::process::id() % 10000;
        let n = Net {
            a: format!("fa{id}-{tag}a"),
            b: format!("fa{id}-{tag}b"),
            net: tag,
        };
        for ns in [&n.a, &n.b] {
            // Left over from an earlier run that was killed: start clean.
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        sh(&["ip", "netns", "add", &n.a]);
        sh(&["ip", "netns", "add", &n.b]);
        sh(&[
            "ip", "link", "add", "vA", "netns", &n.a, "type", "veth", "peer", "name", "vB",
            "netns", &n.b,
        ]);
        for (ns, dev, addrs) in [(&n.a, "vA", vec![1, 3]), (&n.b, "vB", vec![2])] {
            for h in addrs {
                sh(&[
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("198.18.{}.{h}/24", n.net),
                    "dev",
                    dev,
                ]);
            }
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // B's answers to .3 vanish: connections from .3 stay half-open (SYN, no SYN-ACK).
        sh(&[
            "ip",
            "-n",
            &n.b,
            "route",
            "add",
            "blackhole",
            &format!("198.18.{}.3/32", n.net),
        ]);
        n
    }

    fn addr(&self, host: u8, port: u16) -> SocketAddr {
        format!("198.18.{}.{host}:{port}", self.net)
            .parse()
            .unwrap()
    }

    /// Runs `f` on a thread that has entered namespace `ns` (sockets it opens live there).
    fn in_ns<T: Send + 'static>(
        &self,
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

    /// Starts `flowaudit sniff` on vA inside namespace A and waits until it is capturing.
    fn sniff(&self, args: &[&str]) -> Child {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.a, BIN, "sniff", "-i", "vA", "-q"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.contains("listening on vA"), "sniff said: {line}");
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            if !rest.is_empty() {
                eprintln!("sniff stderr: {rest}");
            }
        });
        child
    }

    fn inventory(&self, dir: &Path) -> std::path::PathBuf {
        let p = dir.join("hosts.csv");
        let n = self.net;
        std::fs::write(&p, format!("198.18.{n}.1,backup-server,vbr\n198.18.{n}.3,backup-server,vbr-b\n198.18.{n}.2,windows-server,win\n")).unwrap();
        p
    }

    /// The test traffic: completed, refused and half-open TCP; answered and refused UDP.
    fn traffic(&self) {
        let srv = self.addr(2, 6162);
        let server = self
            .in_ns(&self.b.clone(), move || {
                let l = TcpListener::bind(srv).unwrap();
                let u = UdpSocket::bind(SocketAddr::new(srv.ip(), 9999)).unwrap();
                (l, u)
            })
            .join()
            .unwrap();
        let (listener, udp) = server;
        let tcp_thread = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"world").unwrap();
        });
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            udp.send_to(&buf[..n], from).unwrap();
        });
        let (a1, a3) = (self.addr(1, 40001), self.addr(3, 40003));
        let (closed, half, udp_to, udp_closed) = (
            self.addr(2, 6160),
            self.addr(2, 445),
            self.addr(2, 9999),
            self.addr(2, 9998),
        );
        self.in_ns(&self.a.clone(), move || {
            let s = socket2_connect(a1, srv);
            let mut s = s.unwrap();
            s.write_all(b"hello").unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            drop(s);
            let refused = TcpStream::connect_timeout(&closed, Duration::from_secs(2));
            assert!(refused.is_err());
            let half_open = socket2_connect_timeout(a3, half, Duration::from_millis(1500));
            assert!(half_open.is_err());
            let u = UdpSocket::bind(SocketAddr::new(a1.ip(), 40002)).unwrap();
            u.send_to(b"ping", udp_to).unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(u.recv_from(&mut buf).unwrap().0, 4);
            u.send_to(b"nobody", udp_closed).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        })
        .join()
        .unwrap();
        tcp_thread.join().unwrap();
        udp_thread.join().unwrap();
    }
}

/// Connects from a chosen local address (std's TcpStream cannot bind before connecting).
fn socket2_connect(local: SocketAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    socket2_connect_timeout(local, to, Duration::from_secs(3))
}

fn socket2_connect_timeout(
    local: SocketAddr,
    to: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a fresh fd, checked for errors; the fd is owned by TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            4,
        );
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as i64,
            tv_usec: timeout.subsec_micros() as i64,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let sin = |a: SocketAddr| {
            let SocketAddr::V4(v4) = a else {
                panic!("v4 only")
            };
            libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            }
        };
        let l = sin(local);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        if libc::bind(fd, &l as *const _ as *const libc::sockaddr, len) != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        let r = sin(to);
        if libc::connect(fd, &r as *const _ as *const libc::sockaddr, len) != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

fn terminate(child: &mut Child) -> i32 {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap().code().unwrap_or(-1)
}

#[test]
fn live_capture_flows_states_and_verdicts() {
    if skip() {
        return;
    }
    let net = Net::new(1);
    let dir = tempfile::tempdir().unwrap();
    let inv = net.inventory(dir.path());
    let out = dir.path().join("report");
    let mut child = net.sniff(&[
        "-I",
        inv.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-f",
        "tcp or udp or icmp",
    ]);
    net.traffic();
    // SIGTERM mid-run: the reports must still hold every flow.
    assert_eq!(terminate(&mut child), 0);
    let n = net.net;
    let flows = read_csv(&out.join("flows.csv"));
    let flow = |client: &str, server_port: &str| {
        flows
            .iter()
            .find(|f| f["client_addr"] == client && f["server_port"] == server_port)
            .unwrap_or_else(|| panic!("no flow {client} -> :{server_port} in {flows:#?}"))
    };
    let h = |x: u8| format!("198.18.{n}.{x}");
    let f = flow(&h(1), "6162");
    assert_eq!(
        (
            f["client_port"].as_str(),
            f["server_addr"].as_str(),
            f["basis"].as_str(),
            f["conn_state"].as_str()
        ),
        ("40001", h(2).as_str(), "syn", "SF")
    );
    assert_eq!(flow(&h(1), "6160")["conn_state"], "REJ");
    let half = flow(&h(3), "445");
    assert_eq!(
        (half["conn_state"].as_str(), half["server_packets"].as_str()),
        ("S0", "0")
    );
    let u = flow(&h(1), "9999");
    assert_eq!(
        (
            u["proto"].as_str(),
            u["client_packets"].as_str(),
            u["server_packets"].as_str(),
            u["conn_state"].as_str()
        ),
        ("udp", "1", "1", "SF")
    );
    assert_eq!(flow(&h(1), "9998")["icmp_unreachable"], "true");
    assert_eq!(
        flows.iter().filter(|f| f["proto"] != "icmp").count(),
        5,
        "{flows:#?}"
    );

    let services = read_csv(&out.join("services.csv"));
    let svc = |port: &str| services.iter().find(|s| s["server_port"] == port).unwrap();
    let got: Vec<(&str, &str, &str)> = ["6162", "6160", "445", "9999", "9998"]
        .iter()
        .map(|p| {
            (
                svc(p)["verdict"].as_str(),
                svc(p)["outcome"].as_str(),
                svc(p)["rule_ids"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("documented", "established", "VBR-007"), // backup-server -> windows-server 6162
            ("documented", "refused", "VBR-002"),     // 6160 answered by RST
            ("documented", "unanswered", "VBR-001"),  // 445, SYN-ACKs blackholed
            ("undocumented", "established", ""),
            ("undocumented", "refused", ""), // ICMP port unreachable
        ]
    );
}

#[test]
fn reports_are_rewritten_while_capturing() {
    if skip() {
        return;
    }
    let net = Net::new(2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let mut child = net.sniff(&["-o", out.to_str().unwrap(), "--report-every", "1s"]);
    net.traffic();
    // While the capture runs, an interim report appears with the flows so far, complete (the
    // file is renamed into place, so a reader never sees half of it).
    let mut interim = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(t) = std::fs::read_to_string(out.join("capture.txt")) {
            if t.contains("interim") && out.join("flows.csv").exists() {
                interim = Some(read_csv(&out.join("flows.csv")));
                break;
            }
        }
    }
    let interim = interim.expect("an interim report within 10 s");
    assert!(
        interim.iter().any(|f| f["server_port"] == "6162"),
        "{interim:#?}"
    );
    assert!(child.try_wait().unwrap().is_none(), "still capturing");
    assert_eq!(terminate(&mut child), 0);
    let fin = std::fs::read_to_string(out.join("capture.txt")).unwrap();
    assert!(fin.contains("final"), "{fin}");
    assert!(fin.contains("libpcap: received"), "{fin}");
}

#[test]
fn packet_limit_stops_and_write_saves_the_capture() {
    if skip() {
        return;
    }
    let net = Net::new(3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let saved = dir.path().join("saved.pcapng");
    let mut child = net.sniff(&[
        "-o",
        out.to_str().unwrap(),
        "-c",
        "4",
        "-f",
        "tcp port 6162",
        "-w",
        saved.to_str().unwrap(),
    ]);
    net.traffic();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0));
    // The saved file re-reads offline to the same flows the live run reported.
    let offline = Command::new(BIN)
        .args(["flows", "-q"])
        .arg(&saved)
        .output()
        .unwrap();
    assert!(offline.status.success());
    let live = std::fs::read_to_string(out.join("flows.csv")).unwrap();
    assert_eq!(String::from_utf8(offline.stdout).unwrap(), live);
    let flows = read_csv(&out.join("flows.csv"));
    let total: u64 = flows
        .iter()
        .map(|f| {
            f["client_packets"].parse::<u64>().unwrap()
                + f["server_packets"].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(total, 4, "exactly --packets 4 were processed");
}

#[test]
fn drops_privileges_after_opening_the_interface() {
    if skip() {
        return;
    }
    let net = Net::new(4);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    std::fs::create_dir(&out).unwrap();
    // The reports are written after the switch, so the directory must be writable by that user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = net.sniff(&["-o", out.to_str().unwrap(), "-Z", "nobody"]);
    // `ip netns exec` execs flowaudit in place, so the child's pid is flowaudit's.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    net.traffic();
    assert_eq!(terminate(&mut child), 0);
    // nobody's uid is 65534 on Debian; real, effective, saved and filesystem uids all switched.
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65534"; 4],
        "{uid_line}"
    );
    let flows = read_csv(&out.join("flows.csv"));
    assert!(flows.iter().any(|f| f["server_port"] == "6162"));
}
