//! Flow records as audit input (`audit --flows`): the shared Zeek logs against their captures,
//! the shared NetFlow/IPFIX captures against tshark-derived counts
//! (tests/data/netflow_expected.csv), and hand-built files whose contents the tests wrote.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use flowaudit::decode::proto;
use flowaudit::engine::EngineConfig;
use flowaudit::flowinput::{read_records, run_flow_files};

mod exportgen;
use exportgen::*;

fn shared(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/flowlogs")
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    // CI always has ../shared: a missing one there is a broken setup, not a reason to skip.
    assert!(
        std::env::var("CI").is_err(),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("skipping: {} not found", dir.display());
    None
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flowaudit-fi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn netflow_captures_give_the_records_tshark_decodes() {
    let Some(dir) = shared("netflow") else { return };
    let mut rdr = csv::Reader::from_path("tests/data/netflow_expected.csv").unwrap();
    let mut checked = 0;
    for row in rdr.deserialize::<BTreeMap<String, String>>() {
        let row = row.unwrap();
        let file = &row["file"];
        let n = |k: &str| row[k].parse::<u64>().unwrap();
        let read = read_records(&[dir.join(file)], &EngineConfig::default()).unwrap();
        let st = &read.stats;
        assert_eq!(st.records, n("records"), "{file}: records");
        let tcp = read
            .recs
            .iter()
            .filter(|r| r.key.proto == proto::TCP)
            .count() as u64;
        assert_eq!(tcp, n("tcp_records"), "{file}: TCP records");
        assert_eq!(st.options_records, n("options_records"), "{file}: options");
        assert_eq!(
            st.missing_template_sets,
            n("missing_template_sets"),
            "{file}: sets without template"
        );
        let sampling: Vec<u32> = st.sources.iter().filter_map(|s| s.sampling).collect();
        let want: Vec<u32> = row["sampling"].parse().into_iter().collect();
        assert_eq!(sampling, want, "{file}: sampling");
        assert_eq!(st.skipped_total(), 0, "{file}: {:?}", st.problems);
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// services.csv as (client, server, proto, port) -> (verdict, outcome, flows, bases).
fn services(dir: &Path) -> BTreeMap<[String; 4], [String; 4]> {
    let mut r = csv::Reader::from_path(dir.join("services.csv")).unwrap();
    r.deserialize::<BTreeMap<String, String>>()
        .map(|x| {
            let x = x.unwrap();
            let g = |k: &str| x[k].clone();
            (
                [
                    g("client_addr"),
                    g("server_addr"),
                    g("proto"),
                    g("server_port"),
                ],
                [g("verdict"), g("outcome"), g("flows"), g("direction_basis")],
            )
        })
        .collect()
}

fn audit(args: &[&str], inv: &Path, out: &Path) {
    let st = Command::new(env!("CARGO_BIN_EXE_flowaudit"))
        .arg("audit")
        .args(args)
        .arg("-I")
        .arg(inv)
        .arg("-o")
        .arg(out)
        .arg("-q")
        .status()
        .unwrap();
    assert!(st.success(), "audit {args:?}: {st}");
}

/// Auditing a conn.log gives the services, verdicts, outcomes, flow counts and direction bases
/// of auditing the capture Zeek made it from. The one difference is documented
/// (docs/scale-out.md): Zeek does not log a GRE tunnel itself as a connection (only in
/// tunnel.log), so the capture's outer GRE service has no conn.log row.
#[test]
fn zeek_conn_logs_audit_like_their_captures() {
    let Some(dir) = shared("zeek") else { return };
    let tmp = tmpdir("zeek");
    let inv = tmp.join("hosts.csv");
    std::fs::write(&inv, "address,roles,name\n10.0.0.0/8,backup-server,lan\n").unwrap();
    let mut compared = 0;
    for name in [
        "wikipedia",
        "wikipedia-scope_sep",
        "ftp-ipv4",
        "pop3",
        "dhcp",
        "vlan-mpls",
        "gre",
        "geneve-ipv6",
        "gtp-inner-teredo",
        "ssh-half-duplex-client",
        "zeekjs-dns-json",
    ] {
        let pcap = dir.join(format!("{name}.pcap"));
        let log = dir.join(format!("{name}.conn.log"));
        let (p, z) = (tmp.join(format!("p-{name}")), tmp.join(format!("z-{name}")));
        audit(&[pcap.to_str().unwrap()], &inv, &p);
        audit(&["--flows", log.to_str().unwrap()], &inv, &z);
        let mut from_pcap = services(&p);
        let from_zeek = services(&z);
        if name == "gre" {
            let outer = [
                "172.27.1.66".to_string(),
                "66.59.109.137".into(),
                "gre".into(),
                String::new(),
            ];
            assert!(
                from_pcap.remove(&outer).is_some(),
                "gre: the outer GRE flow"
            );
        }
        // Every gre.conn.log row is inside the tunnel (tunnel_parents set): without --decap
        // the packet engine sees only the outer flow, so the conn.log has nothing to audit.
        assert_eq!(from_zeek.is_empty(), name == "gre", "{name}");
        assert_eq!(from_pcap, from_zeek, "{name}");
        compared += 1;
    }
    assert_eq!(compared, 11);
    // With --decap both see the 6 inner services. One outcome differs: the capture's ICMP
    // port-unreachable answers the inner DNS query (refused); Zeek logs that ICMP message as a
    // connection of its own, so from conn.log the query is unanswered.
    let (p, z) = (tmp.join("p-gre-decap"), tmp.join("z-gre-decap"));
    let pcap = dir.join("gre.pcap");
    let log = dir.join("gre.conn.log");
    audit(&["--decap", pcap.to_str().unwrap()], &inv, &p);
    audit(&["--decap", "--flows", log.to_str().unwrap()], &inv, &z);
    let (mut from_pcap, mut from_zeek) = (services(&p), services(&z));
    let dns = [
        "66.59.111.190".to_string(),
        "172.28.2.3".into(),
        "udp".into(),
        "53".into(),
    ];
    assert_eq!(from_pcap.remove(&dns).unwrap()[1], "refused");
    assert_eq!(from_zeek.remove(&dns).unwrap()[1], "unanswered");
    assert_eq!(from_pcap.len(), 5);
    assert_eq!(from_pcap, from_zeek);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// pop3.conn.log has 11 rows for 7 tshark conversations: the 6 REJ retries on two 4-tuples stay
/// 6 flows (a SYN after a RST starts a new connection, as in the packet engine), and
/// ssh-half-duplex-client's 25 rows become the capture's 20 flows (Zeek's attempt timer split 5
/// of them; within the idle timeout the rows are one flow again).
#[test]
fn zeek_rows_become_the_engines_flows() {
    let Some(dir) = shared("zeek") else { return };
    let cfg = EngineConfig::default();
    for (name, rows, flows) in [("pop3", 11, 11), ("ssh-half-duplex-client", 25, 20)] {
        let out = run_flow_files(&[dir.join(format!("{name}.conn.log"))], &cfg).unwrap();
        let st = out.stats.flow_input.as_ref().unwrap();
        assert_eq!(st.records, rows, "{name}");
        assert_eq!(out.flows.len(), flows, "{name}");
        // btest canonified every ts: all rows kept, at time 0.
        assert_eq!(st.no_time_records, rows, "{name}");
        let pcap = flowaudit::engine::run::run_files(
            &[dir.join(format!("{name}.pcap"))],
            EngineConfig::default(),
            &flowaudit::engine::run::RunOptions::default(),
        )
        .unwrap();
        assert_eq!(pcap.flows.len(), flows, "{name}: the capture's flows");
    }
}

/// The two directions of a TCP and a UDP conversation, exported as four unidirectional IPFIX
/// records, become two flows with client and server decided by flags and ports.
#[test]
fn unidirectional_records_pair_into_flows() {
    let (a, b) = (Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 9));
    let f = |src, dst, sport, dport, proto, flags, packets, bytes, start_ms, end_ms| Flow {
        src,
        dst,
        sport,
        dport,
        proto,
        flags,
        packets,
        bytes,
        start_ms,
        end_ms,
    };
    let t0 = 1_700_000_000_000u64;
    let recs = [
        // Server's answer first in the file: the flags, not the order, decide.
        f(
            b,
            a,
            10006,
            51000,
            6,
            0x12 | 0x01 | 0x08,
            4,
            1200,
            t0 + 1,
            t0 + 900,
        ),
        f(
            a,
            b,
            51000,
            10006,
            6,
            0x02 | 0x10 | 0x01 | 0x08,
            6,
            5000,
            t0,
            t0 + 950,
        ),
        f(b, a, 53, 40000, 17, 0, 1, 120, t0 + 5, t0 + 5),
        f(a, b, 40000, 53, 17, 0, 1, 60, t0 + 4, t0 + 4),
    ];
    let fields = fields(false);
    let msg = ipfix_message(
        1,
        0,
        (t0 / 1000) as u32 + 1,
        &[
            ipfix_template(300, &fields),
            data_set(
                300,
                &recs.iter().map(|r| record(r, None)).collect::<Vec<_>>(),
            ),
        ],
    );
    let tmp = tmpdir("pair");
    let file = tmp.join("export.ipfix");
    std::fs::write(&file, msg).unwrap();
    let out = run_flow_files(&[file], &EngineConfig::default()).unwrap();
    let flows = out.flows.to_vec().unwrap();
    assert_eq!(flows.len(), 2);
    let tcp = flows.iter().find(|f| f.key.proto == proto::TCP).unwrap();
    assert_eq!(tcp.client().0.to_string(), "10.1.0.5");
    assert_eq!(tcp.server().1, 10006);
    assert_eq!(tcp.flow.basis.as_str(), "syn");
    assert_eq!(tcp.conn_state().as_str(), "SF");
    assert_eq!(tcp.flow.packets, [6, 4]);
    assert_eq!(tcp.flow.bytes, [5000, 1200]);
    assert_eq!(tcp.flow.first_ts, t0 as i64 * 1_000_000);
    assert_eq!(tcp.flow.last_ts, (t0 as i64 + 950) * 1_000_000);
    let udp = flows.iter().find(|f| f.key.proto == proto::UDP).unwrap();
    assert_eq!(udp.client().0.to_string(), "10.1.0.5");
    assert_eq!(udp.server().1, 53);
    assert_eq!(udp.flow.packets, [1, 1]);
    assert_eq!(udp.conn_state().as_str(), "SF");
    let st = out.stats.flow_input.as_ref().unwrap();
    assert_eq!((st.records, st.merged_records), (4, 2));
    assert!(st.caveats().is_empty(), "{:?}", st.caveats());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A record with samplingInterval 10 makes its source sampled, and the caveat says so.
#[test]
fn sampled_records_are_a_caveat() {
    let t0 = 1_700_000_000_000u64;
    let r = Flow {
        src: Ipv4Addr::new(10, 2, 0, 1),
        dst: Ipv4Addr::new(10, 2, 0, 2),
        sport: 50000,
        dport: 445,
        proto: 6,
        flags: 0x02,
        packets: 1,
        bytes: 60,
        start_ms: t0,
        end_ms: t0,
    };
    let fields = fields(true);
    let msg = ipfix_message(
        7,
        0,
        (t0 / 1000) as u32,
        &[
            ipfix_template(256, &fields),
            data_set(256, &[record(&r, Some(10))]),
        ],
    );
    let tmp = tmpdir("sampled");
    let file = tmp.join("sampled.ipfix");
    std::fs::write(&file, msg).unwrap();
    let out = run_flow_files(std::slice::from_ref(&file), &EngineConfig::default()).unwrap();
    let st = out.stats.flow_input.as_ref().unwrap();
    assert!(st.sampled());
    assert_eq!(st.sources[0].sampling, Some(10));
    assert_eq!(
        st.caveats()[0],
        format!(
            "sampled flow data from {} (IPFIX, observation domain 7) (1 in 10): packet and byte counts are of sampled packets, and short connections may be missing entirely, so \"unanswered\" outcomes and \"unused\"/never-seen rules cannot be claimed",
            file.display()
        )
    );
    // The audit of those records says so in summary.md, and the unanswered attempt's finding is
    // marked as weak evidence.
    let inv = tmp.join("hosts.csv");
    std::fs::write(
        &inv,
        "address,roles,name\n10.2.0.1,backup-server,vbr\n10.2.0.2,windows-server,win\n",
    )
    .unwrap();
    let rep = tmp.join("report");
    audit(&["--flows", file.to_str().unwrap()], &inv, &rep);
    let summary = std::fs::read_to_string(rep.join("summary.md")).unwrap();
    assert!(summary.contains("- sampled flow data from "), "{summary}");
    let findings = std::fs::read_to_string(rep.join("findings.csv")).unwrap();
    let unanswered = findings
        .lines()
        .find(|l| l.contains("documented-unanswered"))
        .unwrap_or_else(|| panic!("{findings}"));
    assert!(
        unanswered.contains("weak evidence: the flow records are sampled or incomplete"),
        "{unanswered}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Two routers export the same connection (v9 from one, IPFIX from the other, in one capture
/// of the export traffic): one flow, counted once, both exporters named; and an IPFIX template
/// withdrawn before a data set leaves that set undecoded.
#[test]
fn duplicates_from_two_exporters_count_once() {
    let t0 = 1_700_000_000_000u64;
    let r = Flow {
        src: Ipv4Addr::new(10, 3, 0, 1),
        dst: Ipv4Addr::new(10, 3, 0, 2),
        sport: 50000,
        dport: 9392,
        proto: 6,
        flags: 0x02 | 0x10 | 0x01,
        packets: 10,
        bytes: 4000,
        start_ms: t0,
        end_ms: t0 + 2000,
    };
    let fields = fields(false);
    let (r1, r2) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    let v9 = v9_message(
        1,
        0,
        (t0 / 1000) as u32 + 3,
        &[
            v9_template(400, &fields),
            data_set(400, &[record(&r, None)]),
        ],
    );
    let ipfix = ipfix_message(
        0,
        0,
        (t0 / 1000) as u32 + 3,
        &[
            ipfix_template(500, &fields),
            data_set(500, &[record(&r, None)]),
        ],
    );
    let withdrawn = ipfix_message(
        0,
        1,
        (t0 / 1000) as u32 + 4,
        &[ipfix_withdrawal(500), data_set(500, &[record(&r, None)])],
    );
    let tmp = tmpdir("dups");
    let file = tmp.join("exports.pcap");
    let mut w = flowaudit::capture::writer::PcapWriter::new(
        std::fs::File::create(&file).unwrap(),
        101,
        true,
    )
    .unwrap();
    for (i, (src, msg)) in [(r1, &v9), (r2, &ipfix), (r2, &withdrawn)]
        .iter()
        .enumerate()
    {
        let p = udp_packet(*src, 2055, msg);
        w.write(t0 as i64 * 1_000_000 + i as i64, &p, p.len() as u32)
            .unwrap();
    }
    drop(w);
    let out = run_flow_files(&[file], &EngineConfig::default()).unwrap();
    let flows = out.flows.to_vec().unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].flow.packets, [10, 0]);
    assert_eq!(flows[0].flow.bytes, [4000, 0]);
    let st = out.stats.flow_input.as_ref().unwrap();
    assert_eq!(st.records, 2);
    assert_eq!(st.duplicate_flows, 1);
    assert_eq!(
        st.duplicate_examples[0].1,
        vec![
            "192.0.2.1 (NetFlow v9, source id 1)".to_string(),
            "192.0.2.2 (IPFIX, observation domain 0)".to_string()
        ]
    );
    assert_eq!(st.missing_template_sets, 1);
    assert_eq!(st.sequence_gaps, 0);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// `flowaudit flows` run on two consecutive captures cuts a connection in two; auditing both
/// flows.csv files joins it again (within the idle timeout), as reading both captures would.
#[test]
fn a_flow_cut_by_two_flows_files_is_one_flow() {
    // Files of report schema 2 (epoch seconds, no `*_epoch` columns) still read.
    let head = flowaudit::report::flows::FLOW_COLUMNS
        [..flowaudit::report::flows::FLOW_COLUMNS_SCHEMA_2]
        .join(",");
    let tmp = tmpdir("span");
    let f1 = tmp.join("part1.csv");
    let f2 = tmp.join("part2.csv");
    std::fs::write(
        &f1,
        format!("{head}\n100.000000000,110.000000000,,tcp,10.4.0.1,50123,10.4.0.2,10006,syn,S1,5,700,4,900,SA,SA,false,false\n"),
    )
    .unwrap();
    // The second capture starts mid-connection: no SYN, the port rule guessed; FIN both ways.
    std::fs::write(
        &f2,
        format!("{head}\n130.000000000,140.000000000,,tcp,10.4.0.1,50123,10.4.0.2,10006,first-packet,SF,3,300,2,200,AF,AF,false,false\n"),
    )
    .unwrap();
    let out = run_flow_files(&[f1, f2], &EngineConfig::default()).unwrap();
    let flows = out.flows.to_vec().unwrap();
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(f.flow.packets, [8, 6]);
    assert_eq!(f.flow.bytes, [1000, 1100]);
    assert_eq!(f.flow.first_ts, 100_000_000_000);
    assert_eq!(f.flow.last_ts, 140_000_000_000);
    assert_eq!(f.flow.basis.as_str(), "syn");
    assert_eq!(f.conn_state().as_str(), "SF");
    let st = out.stats.flow_input.as_ref().unwrap();
    assert_eq!(
        (st.records, st.merged_records, st.duplicate_flows),
        (2, 1, 0)
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// flows.csv written by `flows` reads back into the same flows.csv, byte for byte.
#[test]
fn flows_csv_round_trips() {
    let Some(dir) = shared("zeek") else { return };
    let tmp = tmpdir("roundtrip");
    let bin = env!("CARGO_BIN_EXE_flowaudit");
    for name in ["wikipedia", "pop3", "ssh-half-duplex-client", "dhcp"] {
        let a = tmp.join(format!("{name}.csv"));
        let b = tmp.join(format!("{name}-again.csv"));
        let pcap = dir.join(format!("{name}.pcap"));
        assert!(Command::new(bin)
            .args(["flows", "-q", "-o"])
            .arg(&a)
            .arg(&pcap)
            .status()
            .unwrap()
            .success());
        assert!(Command::new(bin)
            .args(["flows", "-q", "-o"])
            .arg(&b)
            .arg("--flows")
            .arg(&a)
            .status()
            .unwrap()
            .success());
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            std::fs::read_to_string(&b).unwrap(),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_file_that_is_no_flow_input_is_named() {
    let tmp = tmpdir("bad");
    let f = tmp.join("notes.txt");
    std::fs::write(&f, "hello\n").unwrap();
    let e = run_flow_files(std::slice::from_ref(&f), &EngineConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with(&format!("{}: not a flow input", f.display())),
        "{e}"
    );
    // A malformed conn.log row is skipped with its line number; the others are kept.
    let log = tmp.join("conn.log");
    std::fs::write(
        &log,
        "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\thistory\torig_pkts\tresp_pkts\n\
         1.0\t10.0.0.1\t5000\t10.0.0.2\t53\tudp\tDd\t1\t1\n\
         2.0\t10.0.0.1\tport?\t10.0.0.2\t53\tudp\tDd\t1\t1\n",
    )
    .unwrap();
    let out = run_flow_files(std::slice::from_ref(&log), &EngineConfig::default()).unwrap();
    let st = out.stats.flow_input.as_ref().unwrap();
    assert_eq!(out.flows.len(), 1);
    assert_eq!(st.skipped_total(), 1);
    assert_eq!(
        st.problems[0],
        format!(
            "{}: line 4: id.orig_p: not a port: \"port?\"",
            log.display()
        )
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Zeek's dns.log and ssl.log give names, as DNS answers and TLS SNI in a capture do.
#[test]
fn zeek_dns_and_ssl_logs_name_addresses() {
    let tmp = tmpdir("names");
    let dns = tmp.join("dns.log");
    std::fs::write(
        &dns,
        "#separator \\x09\n#set_separator\t,\n#path\tdns\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tquery\tanswers\n\
         1.0\t10.0.0.1\t5000\t10.0.0.53\t53\tvbr.example.net\t10.0.0.7,vbr-alias.example.net\n",
    )
    .unwrap();
    let ssl = tmp.join("ssl.json");
    std::fs::write(
        &ssl,
        "{\"ts\":2.0,\"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":5001,\"id.resp_h\":\"10.0.0.8\",\"id.resp_p\":443,\"server_name\":\"portal.example.net\"}\n",
    )
    .unwrap();
    let out = run_flow_files(&[dns, ssl], &EngineConfig::default()).unwrap();
    let names: Vec<(String, Vec<String>)> = out
        .names
        .iter()
        .map(|(a, n)| (a.to_string(), n.iter().cloned().collect()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("10.0.0.7".to_string(), vec!["vbr.example.net".to_string()]),
            (
                "10.0.0.8".to_string(),
                vec!["portal.example.net".to_string()]
            ),
        ]
    );
    assert_eq!(out.flows.len(), 0);
    let _ = std::fs::remove_dir_all(&tmp);
}
