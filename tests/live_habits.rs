//! `sniff -D` on its own, and `sniff -Z USER`: output paths that user cannot write are refused
//! before anything is captured, a missing report directory is made for that user, and reports
//! that cannot be written at the end go to a temporary directory instead of being lost.
//!
//! Real captures on a veth pair between two network namespaces made by the test (as
//! tests/live.rs does), addresses in 198.18.0.0/15 inside them only; needs root (CI runs as
//! root; elsewhere the tests skip with a message): `cargo test --release --features live --test
//! live_habits`.
#![cfg(feature = "live")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");
/// Debian's nobody.
const NOBODY_UID: u32 = 65534;

fn skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
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
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

/// Namespace A (vA, 198.18.N.1) and B (vB, .2), joined by a veth pair; removed on drop.
struct Net {
    a: String,
    b: String,
    net: u8,
}

impl Net {
    fn new(tag: u8) -> Net {
        let id = std::process::id() % 10000;
        let n = Net {
            a: format!("fh{id}-{tag}a"),
            b: format!("fh{id}-{tag}b"),
            net: 100 + tag,
        };
        for ns in [&n.a, &n.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
            sh(&["ip", "netns", "add", ns]);
        }
        sh(&[
            "ip", "link", "add", "vA", "netns", &n.a, "type", "veth", "peer", "name", "vB",
            "netns", &n.b,
        ]);
        for (ns, dev, h) in [(&n.a, "vA", 1), (&n.b, "vB", 2)] {
            let addr = format!("198.18.{}.{h}/24", n.net);
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        n
    }

    fn addr(&self, host: u8, port: u16) -> SocketAddr {
        format!("198.18.{}.{host}:{port}", self.net)
            .parse()
            .unwrap()
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
            assert_eq!(
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            f()
        })
    }

    /// Three UDP datagrams from .1:40002 to .2:9999, each echoed back.
    fn udp_exchange(&self) {
        let srv = self.addr(2, 9999);
        let server = Net::in_ns(&self.b, move || UdpSocket::bind(srv).unwrap())
            .join()
            .unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let local = self.addr(1, 40002);
        Net::in_ns(&self.a, move || {
            let u = UdpSocket::bind(local).unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 64];
            for msg in [&b"one"[..], b"two", b"three"] {
                u.send_to(msg, srv).unwrap();
                assert_eq!(u.recv_from(&mut buf).unwrap().0, msg.len());
            }
        })
        .join()
        .unwrap();
        echo.join().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }

    /// `flowaudit sniff -i vA -q ARGS` inside namespace A, its stderr lines on a channel.
    fn sniff(&self, args: &[&str], tmpdir: &Path) -> (Child, Receiver<String>) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.a, BIN, "sniff", "-i", "vA", "-q"])
            .args(args)
            .env("TMPDIR", tmpdir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in err.lines() {
                let _ = tx.send(line.unwrap_or_default());
            }
        });
        (child, rx)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

/// Waits for a line containing `want` (panics after 10 s).
fn wait_line(rx: &Receiver<String>, want: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line with {want:?} within 10 s"));
        if line.contains(want) {
            return line;
        }
    }
}

fn terminate(child: &mut Child) -> i32 {
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap().code().unwrap_or(-1)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory tree nobody can walk through (0755, owned by root) and a TMPDIR nobody can
/// write (the place for reports that cannot go where asked).
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    (dir, tmp)
}

/// The UDP flow of [`Net::udp_exchange`] in a flows.csv: (client, server, packets both ways).
fn udp_flow(flows_csv: &Path) -> Vec<(String, String, String, String, String)> {
    let mut r = csv::Reader::from_path(flows_csv)
        .unwrap_or_else(|e| panic!("{}: {e}", flows_csv.display()));
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (
                format!("{}:{}", &x[4], &x[5]),
                format!("{}:{}", &x[6], &x[7]),
                x[10].to_string(),
                x[12].to_string(),
                x[9].to_string(),
            )
        })
        .collect()
}

fn want_flow(net: &Net) -> Vec<(String, String, String, String, String)> {
    vec![(
        format!("198.18.{}.1:40002", net.net),
        format!("198.18.{}.2:9999", net.net),
        "3".into(),
        "3".into(),
        "SF".into(),
    )]
}

#[test]
fn d_lists_interfaces_without_other_options() {
    if skip() {
        return;
    }
    let net = Net::new(1);
    let o = Command::new("ip")
        .args(["netns", "exec", &net.a, BIN, "sniff", "-D"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // tcpdump -D's form: "N.name" (and a description in brackets for some).
    assert!(
        out.lines().any(|l| l
            .split_once('.')
            .is_some_and(|(n, name)| { n.parse::<u32>().is_ok() && name == "vA" })),
        "{out}"
    );
}

#[test]
fn z_refuses_paths_that_user_cannot_write_before_capturing() {
    if skip() {
        return;
    }
    let net = Net::new(2);
    let (dir, tmp) = workdir();
    // A report directory made by root, 0755: nobody cannot write in it.
    let out = dir.path().join("report");
    std::fs::create_dir(&out).unwrap();
    let (mut child, rx) = net.sniff(&["-o", out.to_str().unwrap(), "-Z", "nobody"], &tmp);
    let code = child.wait().unwrap().code();
    let lines: Vec<String> = rx.iter().collect();
    assert_eq!(code, Some(2), "{lines:?}");
    assert_eq!(
        lines,
        [format!(
            "flowaudit: {0}: user nobody cannot write there (Permission denied (os error 13)): \
             nothing was captured; make it writable for nobody (e.g. chown nobody {0}) or \
             choose another path",
            out.display()
        )],
        "refused before the capture started (no 'listening on')"
    );
    // The same for a -w file in a directory nobody cannot write.
    let ok = dir.path().join("ok");
    std::fs::create_dir(&ok).unwrap();
    std::os::unix::fs::chown(&ok, Some(NOBODY_UID), None).unwrap();
    let saved = dir.path().join("saved.pcapng");
    let (mut child, rx) = net.sniff(
        &[
            "-o",
            ok.to_str().unwrap(),
            "-w",
            saved.to_str().unwrap(),
            "-Z",
            "nobody",
        ],
        &tmp,
    );
    assert_eq!(child.wait().unwrap().code(), Some(2));
    let lines: Vec<String> = rx.iter().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "flowaudit: {}: user nobody cannot write there",
            dir.path().display()
        )),
        "{lines:?}"
    );
    assert!(!saved.exists());
}

#[test]
fn z_makes_a_missing_report_directory_for_that_user() {
    if skip() {
        return;
    }
    let net = Net::new(3);
    let (dir, tmp) = workdir();
    let out = dir.path().join("new/report");
    let (mut child, rx) = net.sniff(
        &[
            "-o",
            out.to_str().unwrap(),
            "-Z",
            "nobody",
            "-f",
            "udp port 9999",
        ],
        &tmp,
    );
    wait_line(&rx, "listening on vA");
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), NOBODY_UID);
    net.udp_exchange();
    assert_eq!(terminate(&mut child), 0);
    assert_eq!(udp_flow(&out.join("flows.csv")), want_flow(&net));
}

#[test]
fn reports_that_cannot_be_written_go_to_a_temporary_directory() {
    if skip() {
        return;
    }
    let net = Net::new(4);
    let (dir, tmp) = workdir();
    let out = dir.path().join("report");
    let (mut child, rx) = net.sniff(
        &[
            "-o",
            out.to_str().unwrap(),
            "-Z",
            "nobody",
            "-f",
            "udp port 9999",
        ],
        &tmp,
    );
    wait_line(&rx, "listening on vA");
    net.udp_exchange();
    // While capturing, the directory stops taking files (a mistake, a full disk...).
    chmod(&out, 0o555);
    assert_eq!(terminate(&mut child), 2, "the reports are not where asked");
    let moved = wait_line(&rx, "cannot write reports to");
    let prefix = format!(
        "flowaudit: cannot write reports to {}: Permission denied (os error 13); writing them to ",
        out.display()
    );
    assert!(moved.starts_with(&prefix), "{moved}");
    let fallback = PathBuf::from(moved[prefix.len()..].trim_end_matches(" instead"));
    assert!(fallback.starts_with(&tmp), "{moved}");
    let last = wait_line(&rx, "the reports are in");
    assert_eq!(
        last,
        format!(
            "flowaudit: the reports are in {}, not in {} (Permission denied (os error 13))",
            fallback.display(),
            out.display()
        )
    );
    // Nothing captured is lost: the whole exchange is in the reports written instead.
    assert_eq!(udp_flow(&fallback.join("flows.csv")), want_flow(&net));
    assert!(fallback.join("capture.txt").exists());
}
