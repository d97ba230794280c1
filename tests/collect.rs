//! `flowaudit collect` on loopback: the test sends NetFlow v9 and IPFIX export packets
//! (templates, data, one lost v9 packet) to the collector on 127.0.0.1, then SIGTERM; the final
//! reports hold every record and count the gap.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod exportgen;
use exportgen::*;

#[test]
fn collector_reports_v9_and_ipfix_then_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("flowaudit-collect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let inv = dir.join("hosts.csv");
    std::fs::write(
        &inv,
        "address,roles,name\n10.5.0.1,backup-server,vbr\n10.5.0.2,backup-proxy,proxy\n",
    )
    .unwrap();
    let out = dir.join("report");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowaudit"))
        .args(["collect", "--listen", "127.0.0.1:0", "-I"])
        .arg(&inv)
        .arg("-o")
        .arg(&out)
        .args(["--duration", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The collector prints the port it bound.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let to = (Ipv4Addr::LOCALHOST, port);
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let t0 = 1_700_000_000_000u64;
    let flow = |sport: u16, dport: u16, proto: u8, flags: u8, packets: u64| Flow {
        src: Ipv4Addr::new(10, 5, 0, 1),
        dst: Ipv4Addr::new(10, 5, 0, 2),
        sport,
        dport,
        proto,
        flags,
        packets,
        bytes: packets * 100,
        start_ms: t0,
        end_ms: t0 + 1000,
    };
    let f = fields(false);
    let secs = (t0 / 1000) as u32 + 2;
    // v9: template + 1 record (seq 0), a record (seq 1), [seq 2 lost], a record (seq 3).
    let v9 = [
        v9_message(
            9,
            0,
            secs,
            &[
                v9_template(260, &f),
                data_set(260, &[record(&flow(50001, 6160, 6, 0x1b, 5), None)]),
            ],
        ),
        v9_message(
            9,
            1,
            secs,
            &[data_set(
                260,
                &[record(&flow(50002, 6162, 6, 0x1b, 6), None)],
            )],
        ),
        v9_message(
            9,
            3,
            secs,
            &[data_set(
                260,
                &[record(&flow(50003, 2500, 6, 0x1b, 7), None)],
            )],
        ),
    ];
    // IPFIX: template + 2 records (seq 0), then 1 record (seq 2: no gap).
    let ipfix = [
        ipfix_message(
            3,
            0,
            secs,
            &[
                ipfix_template(300, &f),
                data_set(
                    300,
                    &[
                        record(&flow(50004, 10006, 6, 0x1b, 3), None),
                        record(&flow(50005, 11731, 6, 0x1b, 4), None),
                    ],
                ),
            ],
        ),
        ipfix_message(
            3,
            2,
            secs,
            &[data_set(
                300,
                &[record(&flow(50006, 445, 6, 0x1b, 2), None)],
            )],
        ),
    ];
    for m in v9.iter().chain(&ipfix) {
        sock.send_to(m, to).unwrap();
    }
    // Every datagram is in the collector's socket buffer once sent on loopback; SIGTERM now
    // must still decode all of them.
    std::thread::sleep(Duration::from_millis(300));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let begun = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "collector did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    let txt = std::fs::read_to_string(out.join("collector.txt")).unwrap();
    assert!(txt.contains("datagrams: 5 "), "{txt}");
    assert!(txt.contains("records: 6\n"), "{txt}");
    assert!(txt.contains("data sets without template: 0\n"), "{txt}");
    assert!(txt.contains("sequence gaps: 1 (lost: 1)\n"), "{txt}");
    assert!(txt.trim_end().ends_with("final"), "{txt}");
    // Six TCP connections from the server to the proxy, each one flow, with the audit beside.
    let flows = std::fs::read_to_string(out.join("flows.csv")).unwrap();
    assert_eq!(flows.lines().count(), 1 + 6, "{flows}");
    let ports: Vec<&str> = flows
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(7).unwrap())
        .collect();
    for p in ["6160", "6162", "2500", "10006", "11731", "445"] {
        assert!(ports.contains(&p), "{p} in {flows}");
    }
    assert!(out.join("services.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
