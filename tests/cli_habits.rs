//! Habits from tcpdump and Zeek (`-r`, `-f`, `-c`, `-n`), output paths checked before reading,
//! the `--fail-on` explanation, shell completions and the man page, run as a process.
//!
//! The `-f` tests need the `live` feature (libpcap compiles the filters):
//! `cargo test --release --features live --test cli_habits`. Without it, the messages that say
//! how to get it are tested instead.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use flowaudit::report::flows::FLOW_COLUMNS;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run flowaudit")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A flows.csv row of [`sample_recs`]: first and last packet `first_ms` and `last_ms` after
/// 1700000000 s, which `date -u -d @1700000000` shows as 2023-11-14T22:13:20 (UTC); the
/// `*_epoch` columns keep the nanoseconds.
fn flow_row(first_ms: u32, last_ms: u32, rest: &str) -> String {
    format!(
        "2023-11-14T22:13:20.{first_ms:03}Z,2023-11-14T22:13:20.{last_ms:03}Z,{rest},1700000000.{:09},1700000000.{:09}\n",
        first_ms * 1_000_000,
        last_ms * 1_000_000
    )
}

fn tcp_row() -> String {
    flow_row(
        0,
        9,
        ",tcp,10.0.0.9,50000,10.0.0.2,443,syn,SF,5,370,3,362,SAPF,SAPF,false,false",
    )
}

fn udp_row() -> String {
    flow_row(
        4,
        5,
        ",udp,10.0.0.9,40000,10.0.0.2,53,first-packet,SF,1,72,1,92,,,false,false",
    )
}

fn header() -> String {
    format!("{}\n", FLOW_COLUMNS.join(","))
}

/// `flowaudit flows -q ARGS` on stdout.
fn flows(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["flows", "-q"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn r_reads_a_capture_as_tcpdump_does_and_n_changes_nothing() {
    let f = write_pcap(link::ETHERNET, false, &sample_recs());
    let want = header() + &tcp_row() + &udp_row();
    for args in [vec!["-r", s(f.path())], vec!["-n", "-r", s(f.path())]] {
        let o = flows(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), want, "{args:?}");
    }
    // -r twice merges the files as two arguments do: every packet counted twice.
    let o = flows(&["-r", s(f.path()), "-r", s(f.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let tcp = stdout(&o).lines().nth(1).unwrap().to_string();
    assert!(tcp.contains(",10,740,6,724,"), "{tcp}");
}

#[test]
fn a_filter_written_where_tcpdump_takes_it_is_pointed_to_f() {
    let f = write_pcap(link::ETHERNET, false, &sample_recs());
    let o = flows(&["-r", s(f.path()), "tcp port 443"]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o),
        "flowaudit: tcp port 443: no such capture file; to filter packets as tcpdump does, give \
         the expression with -f: -f 'tcp port 443'\n"
    );
}

#[test]
fn c_reads_only_the_first_packets() {
    let f = write_pcap(link::ETHERNET, false, &sample_recs());
    // Four packets: SYN, SYN-ACK, ACK and the client's 100 bytes; the handshake completed and
    // nothing closed it (Zeek's S1). Client 54 + 54 + 154 bytes, server 54.
    let o = flows(&["-c", "4", "-r", s(f.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        header()
            + &flow_row(
                0,
                3,
                ",tcp,10.0.0.9,50000,10.0.0.2,443,syn,S1,3,262,1,54,SAP,SA,false,false"
            )
    );
    // Five: the UDP question too, unanswered.
    let o = flows(&["--count", "5", "-r", s(f.path())]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.ends_with(
            ",udp,10.0.0.9,40000,10.0.0.2,53,first-packet,S0,1,72,0,0,,,false,false,\
             1700000000.004000000,1700000000.004000000\n"
        ),
        "{out}"
    );
    // What was selected is said on stderr unless -q.
    let o = run(&["flows", "-c", "4", "-r", s(f.path())]);
    assert!(
        stderr(&o).contains("selected 4 of 4 packets read (count 4)\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn output_paths_are_checked_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report");
    std::fs::write(&file, "not a directory").unwrap();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo/backup-window.pcap");
    let inv = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo/hosts.csv");
    let o = run(&["audit", s(&cap), "-I", s(&inv), "-o", s(&file)]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o),
        format!(
            "flowaudit: -o {}: exists and is a file, but the reports are several files written \
             into a directory: give a directory (new or existing), or move the file away\n",
            file.display()
        ),
        "said before any reading (no summary)"
    );
    // flows -o DIR, and -o in a directory that does not exist.
    let o = run(&["flows", s(&cap), "-o", s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o),
        format!(
            "flowaudit: -o {0}: is a directory; give a file name (e.g. {0}/report.csv)\n",
            dir.path().display()
        )
    );
    let missing = dir.path().join("no/such/flows.csv");
    let o = run(&["flows", s(&cap), "-o", s(&missing)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("/no/such does not exist; create it first"),
        "{}",
        stderr(&o)
    );
    // synth and diff outputs as well.
    let o = run(&["synth", "--demo", "-o", s(dir.path())]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains(": is a directory;"), "{}", stderr(&o));
}

/// Rows of a CSV file whose `column` equals `value`.
fn count_rows(path: &Path, column: &str, value: &str) -> usize {
    let mut r = csv::Reader::from_path(path).unwrap();
    let i = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == column)
        .unwrap();
    r.records()
        .filter(|x| &x.as_ref().unwrap()[i] == value)
        .count()
}

#[test]
fn fail_on_says_why_it_exits_1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    // The demo's expected findings (worked out from its plan in src/synth.rs).
    let high = count_rows(
        &root.join("fixtures/demo/expected/findings.csv"),
        "severity",
        "high",
    );
    assert_eq!(high, 2, "the demo refuses 6160 and leaves 6162 unanswered");
    let o = run(&[
        "audit",
        "-q",
        "-r",
        s(&root.join("fixtures/demo/backup-window.pcap")),
        "-I",
        s(&root.join("fixtures/demo/hosts.csv")),
        "-o",
        s(&out),
        "--fail-on",
        "high",
    ]);
    assert_eq!(code(&o), 1);
    // Said even with -q: the exit code alone does not tell a CI log what to look at.
    assert_eq!(
        stderr(&o),
        "flowaudit: exit 1: 2 findings at or above high (--fail-on high)\n"
    );
}

#[test]
fn completions_for_three_shells_pass_their_syntax_checks() {
    for (shell, check) in [
        ("bash", vec!["bash", "-n"]),
        ("zsh", vec!["zsh", "-n"]),
        ("fish", vec!["fish", "--no-execute"]),
    ] {
        let o = run(&["completions", shell]);
        assert_eq!(code(&o), 0, "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for sub in ["audit", "flows", "diff", "catalog", "completions"] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &script).unwrap();
        let st = Command::new(check[0])
            .args(&check[1..])
            .arg(f.path())
            .output();
        match st {
            Ok(r) => assert!(
                r.status.success(),
                "{shell} rejects its completions: {}",
                String::from_utf8_lossy(&r.stderr)
            ),
            // CI installs the three shells (.ci/run); elsewhere a missing one is skipped.
            Err(_) if std::env::var("CI").is_err() => {
                eprintln!(
                    "skipping the {shell} syntax check: {} is not installed",
                    check[0]
                )
            }
            Err(e) => panic!("CI must have {}: {e}", check[0]),
        }
    }
}

#[test]
fn the_man_page_renders_without_warnings() {
    let o = run(&["man"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq \\(aq") || page.contains(".TH flowaudit 1"),
        "{page}"
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &page).unwrap();
    // groff with every warning on, as `man -l` runs it.
    let r = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(f.path())
        .output();
    let Ok(r) = r else {
        assert!(std::env::var("CI").is_err(), "CI must have groff");
        eprintln!("skipping the man page rendering: groff is not installed");
        return;
    };
    assert!(r.status.success());
    assert_eq!(String::from_utf8_lossy(&r.stderr), "", "groff warnings");
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    // groff may mark bold by overstriking, and justifies lines with extra spaces.
    let plain = strip_overstrike(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "flowaudit",
        "SUBCOMMANDS",
        "audit",
        "Prove what a backup network",
    ] {
        assert!(plain.contains(want), "missing {want:?} in\n{plain}");
    }
    // -o DIR: one page per command.
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["man", "-o", s(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for page in [
        "flowaudit.1",
        "flowaudit-audit.1",
        "flowaudit-flows.1",
        "flowaudit-catalog-lint.1",
    ] {
        assert!(dir.path().join(page).exists(), "no {page}");
    }
    let audit = std::fs::read_to_string(dir.path().join("flowaudit-audit.1")).unwrap();
    assert!(audit.contains("fail\\-on"), "{audit}");
}

/// Removes "X\bX" (bold) and "_\bX" (underline) overstrikes.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

#[cfg(not(feature = "live"))]
#[test]
fn without_the_live_feature_sniff_and_f_say_how_to_get_it() {
    let o = run(&["sniff", "-i", "eth0", "-o", "x"]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o),
        "flowaudit: sniff (live capture) is not in this build: it links libpcap. Install \
         libpcap's headers (apt-get install libpcap-dev), then build with the live feature: \
         cargo build --release --features live (or cargo install --path . --features live)\n"
    );
    let f = write_pcap(link::ETHERNET, false, &sample_recs());
    let o = flows(&["-f", "udp", "-r", s(f.path())]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("capture filters are compiled by libpcap, which this build does not include; build with it: apt-get install libpcap-dev, then cargo build --release --features live"),
        "{}",
        stderr(&o)
    );
}

#[cfg(feature = "live")]
mod filters {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn f_keeps_the_matching_packets_of_a_file() {
        let f = write_pcap(link::ETHERNET, false, &sample_recs());
        let o = flows(&["-f", "udp", "-r", s(f.path())]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&o), header() + &udp_row());
        // -f then -c, as tcpdump counts: the first matching packet only.
        let o = flows(&["-f", "udp", "-c", "1", "-r", s(f.path())]);
        assert_eq!(
            stdout(&o),
            header()
                + &flow_row(
                    4,
                    4,
                    ",udp,10.0.0.9,40000,10.0.0.2,53,first-packet,S0,1,72,0,0,,,false,false"
                )
        );
        // tcpdump's `greater 100` keeps packets of at least 100 bytes: the 154-byte request
        // and the 254-byte answer, a flow caught mid-way (no SYN: the first packet's sender is
        // the client, docs/flows.md).
        let o = run(&["flows", "-f", "greater 100", "-r", s(f.path())]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let want = header()
            + &flow_row(
                3,
                6,
                ",tcp,10.0.0.9,50000,10.0.0.2,443,first-packet,OTH,1,154,1,254,AP,AP,false,false",
            );
        assert_eq!(stdout(&o), want);
        assert!(
            stderr(&o).contains("selected 2 of 10 packets read (filter \"greater 100\")"),
            "{}",
            stderr(&o)
        );
        // Judged by the length on the wire, not the bytes kept: the same capture cut to 60
        // bytes a packet (headers intact) gives the same flow.
        let cut: Vec<Rec> = sample_recs()
            .into_iter()
            .map(|mut r| {
                r.data.truncate(60);
                r
            })
            .collect();
        let f = write_pcap(link::ETHERNET, false, &cut);
        let o = flows(&["-f", "greater 100", "-r", s(f.path())]);
        assert_eq!(stdout(&o), want);
    }

    #[test]
    fn a_bad_filter_is_refused_before_reading() {
        let f = write_pcap(link::ETHERNET, false, &sample_recs());
        let inv = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo/hosts.csv");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report");
        let o = run(&[
            "audit",
            "-f",
            "tcp prot 80",
            "-r",
            s(f.path()),
            "-I",
            s(&inv),
            "-o",
            s(&out),
        ]);
        assert_eq!(code(&o), 2);
        assert_eq!(
            stderr(&o),
            "flowaudit: bad filter \"tcp prot 80\": can't parse filter expression: syntax error\n"
        );
        assert!(!out.exists(), "nothing written");
        let o = flows(&["-f", "tcp prot 80", "-r", s(f.path())]);
        assert_eq!(code(&o), 2);
        assert_eq!(
            stderr(&o),
            "flowaudit: bad filter \"tcp prot 80\": can't parse filter expression: syntax error\n"
        );
    }

    #[test]
    fn sniff_help_lists_its_own_options_only() {
        let help = stdout(&run(&["sniff", "--help"]));
        assert!(help.contains("-D, --list-interfaces"), "{help}");
        assert!(!help.contains("--no-mmap"), "a file-reading option: {help}");
        assert!(
            !help.contains("[default: 0]"),
            "-j's default is one per core: {help}"
        );
    }

    fn shared(name: &str) -> Option<PathBuf> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/pcaps")
            .join(name);
        if p.exists() {
            return Some(p);
        }
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but {} is missing",
            p.display()
        );
        eprintln!("skipping: {} is missing", p.display());
        None
    }

    /// Flows and their packets in tests/data/shared_pcaps_flows (from tshark's field export,
    /// see tests/data/derive_expected.py) that `keep(proto, a_port, b_port)` selects.
    fn expected(name: &str, keep: impl Fn(&str, &str, &str) -> bool) -> (usize, u64) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/shared_pcaps_flows")
            .join(format!("{name}.csv"));
        let mut r = csv::Reader::from_path(p).unwrap();
        let (mut n, mut packets) = (0, 0);
        for rec in r.records() {
            let rec = rec.unwrap();
            if keep(&rec[1], &rec[3], &rec[5]) {
                n += 1;
                packets += rec[7].parse::<u64>().unwrap();
            }
        }
        (n, packets)
    }

    /// Flows and packets in `flows -f FILTER` of a shared capture.
    fn filtered(path: &Path, filter: &str) -> (usize, u64, Vec<String>) {
        let o = flows(&["-f", filter, "-r", s(path)]);
        assert_eq!(code(&o), 0, "{filter}: {}", stderr(&o));
        let out = stdout(&o);
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let (mut n, mut packets, mut protos) = (0, 0, Vec::new());
        for rec in r.records() {
            let rec = rec.unwrap();
            n += 1;
            packets += rec[10].parse::<u64>().unwrap() + rec[12].parse::<u64>().unwrap();
            protos.push(rec[3].to_string());
        }
        protos.sort();
        protos.dedup();
        (n, packets, protos)
    }

    #[test]
    fn f_on_real_captures_matches_tshark_derived_flows() {
        let name = "enterprise-https-tls-443-dns-stp.pcap";
        let Some(path) = shared(name) else { return };
        // tests/data/shared_pcaps_expected.csv: 77 TCP and 40 UDP flows in this capture.
        let tcp = expected(name, |p, _, _| p == "6");
        assert_eq!(tcp.0, 77);
        assert_eq!(filtered(&path, "tcp"), (77, tcp.1, vec!["tcp".to_string()]));
        let udp = expected(name, |p, _, _| p == "17");
        assert_eq!(udp.0, 40);
        assert_eq!(filtered(&path, "udp"), (40, udp.1, vec!["udp".to_string()]));
        let https = expected(name, |p, a, b| p == "6" && (a == "443" || b == "443"));
        let got = filtered(&path, "tcp port 443");
        assert_eq!((got.0, got.1), https);
        let dns = expected(name, |p, a, b| p == "17" && (a == "53" || b == "53"));
        let got = filtered(&path, "udp port 53");
        assert_eq!((got.0, got.1), dns);
        // Raw IP (link type 101, which libpcap's compiler knows as DLT_RAW): one TCP flow.
        let raw = "pcap-rawip-linktype101-tcp-tls-odd-options.pcap";
        let Some(path) = shared(raw) else { return };
        let tcp = expected(raw, |p, _, _| p == "6");
        assert_eq!(filtered(&path, "tcp"), (1, tcp.1, vec!["tcp".to_string()]));
        assert_eq!(filtered(&path, "udp").0, 0);
    }
}
