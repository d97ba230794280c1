//! The firewall evaluator on hand-written rulesets: every expected verdict and path below was
//! worked out by hand from the ruleset text, the way the kernel walks it (nft(8): chains,
//! jump/goto/return, policies; iptables-extensions(8) for the matches).

use std::net::IpAddr;

use flowaudit::firewall::eval::{evaluate, Packet, Selection, Verdict};
use flowaudit::firewall::model::{addr_key, ct, Ruleset};
use flowaudit::firewall::{check, load_text};

fn load(parts: &[(&str, &str)]) -> Ruleset {
    let mut rs = Ruleset::default();
    for (name, text) in parts {
        load_text(name, text, &mut rs).unwrap();
    }
    rs.resolve_sets();
    rs
}

fn pkt(src: &str, dst: &str, proto: u8, dport: u16) -> Packet {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    Packet {
        v6: s.is_ipv6(),
        saddr: addr_key(s),
        daddr: addr_key(d),
        proto,
        sport: None,
        dport: Some(dport),
        iif: None,
        oif: None,
        state: ct::NEW,
    }
}

/// The verdict, and the positions matched (`chain#n`, `chain policy`), as text.
fn run(rs: &Ruleset, sel: &Selection, p: &Packet) -> (String, Vec<String>, String) {
    let t = evaluate(rs, &sel.base_chains(rs), p);
    let pos = |at: flowaudit::firewall::eval::At| check::position(rs, at);
    let verdict = match &t.verdict {
        Verdict::NotEvaluated(why) => format!("not-evaluated: {why}"),
        v => v.as_str().to_string(),
    };
    (
        verdict,
        t.matched.iter().map(|a| pos(*a)).collect(),
        t.by.map(pos).unwrap_or_default(),
    )
}

/// A chain: its name, (hook, policy) for a base chain, and its rules' `expr` JSON.
type ChainSpec<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [&'a str]);

/// Builds `nft -j` JSON from (chain, hook/policy, rules as expr JSON) triples of one table.
fn nft(family: &str, table: &str, chains: &[ChainSpec], sets: &[&str]) -> String {
    let mut items = vec![format!(
        r#"{{"table": {{"family": "{family}", "name": "{table}", "handle": 1}}}}"#
    )];
    for (name, hook, _) in chains {
        items.push(match hook {
            Some((h, pol)) => format!(
                r#"{{"chain": {{"family": "{family}", "table": "{table}", "name": "{name}", "handle": 1, "type": "filter", "hook": "{h}", "prio": 0, "policy": "{pol}"}}}}"#
            ),
            None => format!(
                r#"{{"chain": {{"family": "{family}", "table": "{table}", "name": "{name}", "handle": 2}}}}"#
            ),
        });
    }
    for s in sets {
        items.push(s.to_string());
    }
    let mut handle = 10;
    for (name, _, rules) in chains {
        for r in rules.iter() {
            handle += 1;
            items.push(format!(
                r#"{{"rule": {{"family": "{family}", "table": "{table}", "chain": "{name}", "handle": {handle}, "expr": [{r}]}}}}"#
            ));
        }
    }
    format!(r#"{{"nftables": [{}]}}"#, items.join(",\n"))
}

const TCP: u8 = 6;
const UDP: u8 = 17;

fn dport(proto: &str, v: &str) -> String {
    format!(
        r#"{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "{proto}", "field": "dport"}}}}, "right": {v}}}}}"#
    )
}

fn saddr(fam: &str, op: &str, v: &str) -> String {
    format!(
        r#"{{"match": {{"op": "{op}", "left": {{"payload": {{"protocol": "{fam}", "field": "saddr"}}}}, "right": {v}}}}}"#
    )
}

const ACCEPT: &str = r#"{"accept": null}"#;
const DROP: &str = r#"{"drop": null}"#;
const RETURN: &str = r#"{"return": null}"#;
const COUNTER: &str = r#"{"counter": {"packets": 0, "bytes": 0}}"#;

#[test]
fn jumps_return_to_the_next_rule_and_gotos_return_from_the_caller() {
    let r1 = format!(
        "{}, {}, {{\"jump\": {{\"target\": \"backup\"}}}}",
        saddr("ip", "==", r#"{"prefix": {"addr": "10.0.1.0", "len": 24}}"#),
        COUNTER
    );
    let r2 = format!("{}, {ACCEPT}", dport("tcp", "22"));
    let r3 = format!(
        "{}, {{\"goto\": {{\"target\": \"web\"}}}}",
        dport("tcp", "80")
    );
    let r4 = format!("{}, {ACCEPT}", dport("tcp", "81"));
    let b1 = format!("{}, {RETURN}", dport("tcp", "22"));
    let b2 = format!("{}, {ACCEPT}", dport("tcp", r#"{"range": [5000, 6000]}"#));
    let w1 = format!("{}, {RETURN}", saddr("ip", "==", r#""10.0.1.7""#));
    let w2 = format!("{}, {ACCEPT}", dport("tcp", "80"));
    let text = nft(
        "inet",
        "filter",
        &[
            ("forward", Some(("forward", "drop")), &[&r1, &r2, &r3, &r4]),
            ("backup", None, &[&b1, &b2]),
            ("web", None, &[&w1, &w2]),
        ],
        &[],
    );
    let rs = load(&[("fw.json", &text)]);
    let sel = Selection::default();
    let f = "inet filter forward";
    // 22 from the backup subnet: jump, return at backup #1, then forward #2 accepts.
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.1.5", "10.0.2.2", TCP, 22)),
        (
            "accept".into(),
            vec![
                format!("{f} #1"),
                "inet filter backup #1".into(),
                format!("{f} #2")
            ],
            format!("{f} #2")
        )
    );
    // 5500: accepted inside the jumped-to chain.
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.1.5", "10.0.2.2", TCP, 5500)).2,
        "inet filter backup #2"
    );
    // 6001 from the subnet: backup runs out, back in forward nothing else matches: policy.
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.1.5", "10.0.2.2", TCP, 6001)),
        (
            "drop".into(),
            vec![format!("{f} #1"), format!("{f} policy")],
            format!("{f} policy")
        )
    );
    // 80 from 10.0.1.7: goto web, web returns: a goto returns from forward itself, so the
    // rule after it (#4) is never reached and the base chain's policy decides.
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.1.7", "10.0.2.2", TCP, 80)).0,
        "drop"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.9.9", "10.0.2.2", TCP, 80)).2,
        "inet filter web #2"
    );
    // Had it been a jump, #4 would not match 80 anyway; 81 reaches #4 directly.
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.9.9", "10.0.2.2", TCP, 81)).2,
        format!("{f} #4")
    );
}

#[test]
fn named_and_anonymous_interval_sets() {
    let set = r#"{"set": {"family": "ip", "name": "backup_hosts", "table": "t", "type": "ipv4_addr", "handle": 3, "flags": ["interval"],
        "elem": [{"prefix": {"addr": "10.1.0.0", "len": 24}}, {"range": ["10.2.0.5", "10.2.0.9"]}, "10.3.0.1"]}}"#;
    let ports = r#"{"set": {"family": "ip", "name": "vports", "table": "t", "type": "inet_service", "handle": 4, "flags": ["interval"],
        "elem": [22, {"range": [2500, 3300]}, {"elem": {"val": 10006, "comment": "x"}}]}}"#;
    let r1 = format!(
        "{}, {}, {ACCEPT}",
        saddr("ip", "==", r#""@backup_hosts""#),
        dport("tcp", r#""@vports""#)
    );
    let r2 = format!(
        "{}, {ACCEPT}",
        dport("udp", r#"{"set": [53, {"range": [6000, 6010]}]}"#)
    );
    let text = nft(
        "ip",
        "t",
        &[("fwd", Some(("forward", "drop")), &[&r1, &r2])],
        &[set, ports],
    );
    let rs = load(&[("fw.json", &text)]);
    let sel = Selection::default();
    let by = |s: &str, proto: u8, p: u16| run(&rs, &sel, &pkt(s, "10.9.0.1", proto, p)).0;
    assert_eq!(by("10.1.0.255", TCP, 2500), "accept");
    assert_eq!(by("10.1.1.0", TCP, 2500), "drop");
    assert_eq!(by("10.2.0.4", TCP, 22), "drop");
    assert_eq!(by("10.2.0.9", TCP, 3300), "accept");
    assert_eq!(by("10.2.0.9", TCP, 3301), "drop");
    assert_eq!(by("10.3.0.1", TCP, 10006), "accept");
    assert_eq!(by("10.3.0.1", UDP, 10006), "drop");
    assert_eq!(by("10.3.0.1", UDP, 6010), "accept");
    assert_eq!(by("10.3.0.1", UDP, 6011), "drop");
}

#[test]
fn ip_tables_see_ipv4_ip6_tables_ipv6_and_inet_both() {
    let r_ip = format!("{}, {ACCEPT}", dport("tcp", "22"));
    let ip = nft(
        "ip",
        "v4",
        &[("fwd", Some(("forward", "drop")), &[&r_ip])],
        &[],
    );
    let rs = load(&[("ip.json", &ip)]);
    let sel = Selection::default();
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", TCP, 22)).0,
        "accept"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("2001:db8::1", "2001:db8::2", TCP, 22)).0,
        "not-filtered"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("2001:db8::1", "2001:db8::2", TCP, 23)).0,
        "not-filtered"
    );

    // An inet table: `ip saddr` rules only see IPv4, `ip6 saddr` only IPv6.
    let r1 = format!(
        "{}, {ACCEPT}",
        saddr("ip", "==", r#"{"prefix": {"addr": "0.0.0.0", "len": 0}}"#)
    );
    let r2 = format!(
        "{}, {DROP}",
        saddr(
            "ip6",
            "==",
            r#"{"prefix": {"addr": "2001:db8::", "len": 32}}"#
        )
    );
    let inet = nft(
        "inet",
        "both",
        &[("fwd", Some(("forward", "accept")), &[&r1, &r2])],
        &[],
    );
    let rs = load(&[("inet.json", &inet)]);
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", UDP, 53)).2,
        "inet both fwd #1"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("2001:db8::1", "2001:db8::2", UDP, 53)).2,
        "inet both fwd #2"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("2001:db9::1", "2001:db8::2", UDP, 53)).2,
        "inet both fwd policy"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("2001:db9::1", "2001:db8::2", UDP, 53)).0,
        "accept"
    );

    // Both loaded: an IPv4 packet must pass the ip table and the inet table.
    let rs = load(&[("ip.json", &ip), ("inet.json", &inet)]);
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", TCP, 23)).0,
        "drop"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", TCP, 22)),
        (
            "accept".into(),
            vec!["ip v4 fwd #1".into(), "inet both fwd #1".into()],
            "inet both fwd #1".into()
        )
    );
}

#[test]
fn negations_and_implicit_protocol_dependencies() {
    let r1 = format!(
        "{}, {DROP}",
        saddr("ip", "!=", r#"{"prefix": {"addr": "10.0.0.0", "len": 8}}"#)
    );
    let r2 = format!(
        "{}, {ACCEPT}",
        r#"{"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}"#
    );
    let text = nft(
        "ip",
        "t",
        &[("fwd", Some(("forward", "drop")), &[&r1, &r2])],
        &[],
    );
    let rs = load(&[("fw.json", &text)]);
    let sel = Selection::default();
    assert_eq!(
        run(&rs, &sel, &pkt("192.168.0.1", "10.0.0.2", TCP, 80)).2,
        "ip t fwd #1"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("10.1.0.1", "10.0.0.2", TCP, 80)).2,
        "ip t fwd #2"
    );
    assert_eq!(
        run(&rs, &sel, &pkt("10.1.0.1", "10.0.0.2", TCP, 22)).2,
        "ip t fwd policy"
    );
    // `tcp dport != 22` needs TCP: a UDP packet to 80 does not match it, negation or not.
    assert_eq!(
        run(&rs, &sel, &pkt("10.1.0.1", "10.0.0.2", UDP, 80)).2,
        "ip t fwd policy"
    );
}

#[test]
fn policy_accept_and_policy_drop() {
    for (pol, want) in [("accept", "accept"), ("drop", "drop")] {
        let r = format!("{}, {ACCEPT}", dport("tcp", "443"));
        let text = nft("inet", "t", &[("fwd", Some(("forward", pol)), &[&r])], &[]);
        let rs = load(&[("fw.json", &text)]);
        let (v, m, by) = run(
            &rs,
            &Selection::default(),
            &pkt("10.0.0.1", "10.0.0.2", TCP, 444),
        );
        assert_eq!(
            (v.as_str(), m, by.as_str()),
            (
                want,
                vec!["inet t fwd policy".to_string()],
                "inet t fwd policy"
            )
        );
    }
}

#[test]
fn connection_state_new_and_established() {
    let r1 = format!(
        "{}, {ACCEPT}",
        r#"{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}"#
    );
    let r2 = format!(
        "{}, {}, {ACCEPT}",
        r#"{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}"#,
        dport("tcp", "22")
    );
    let text = nft(
        "inet",
        "t",
        &[("fwd", Some(("forward", "drop")), &[&r1, &r2])],
        &[],
    );
    let rs = load(&[("fw.json", &text)]);
    let sel = Selection::default();
    let mut p = pkt("10.0.0.1", "10.0.0.2", TCP, 22);
    assert_eq!(run(&rs, &sel, &p).2, "inet t fwd #2");
    p.state = ct::ESTABLISHED;
    p.dport = Some(9999);
    assert_eq!(run(&rs, &sel, &p).2, "inet t fwd #1");
}

#[test]
fn what_a_capture_cannot_show_is_not_evaluated_never_guessed() {
    let mark = r#"{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}"#;
    let limit = r#"{"limit": {"rate": 10, "per": "second"}}"#;
    // #1: a mark and port 80: a packet to 22 fails the known part, so the mark does not matter.
    let r1 = format!("{mark}, {}, {DROP}", dport("tcp", "80"));
    // #2: a rate limit on 443: cannot be decided for a packet to 443.
    let r2 = format!("{}, {limit}, {ACCEPT}", dport("tcp", "443"));
    // #3: a mark alone, with a counter only: no verdict, so evaluation goes on either way.
    let r3 = format!("{mark}, {COUNTER}");
    let r4 = format!("{}, {ACCEPT}", dport("tcp", r#"{"set": [22, 443]}"#));
    let text = nft(
        "inet",
        "t",
        &[("fwd", Some(("forward", "drop")), &[&r1, &r2, &r3, &r4])],
        &[],
    );
    let rs = load(&[("fw.json", &text)]);
    let sel = Selection::default();
    assert_eq!(
        run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", TCP, 22)).2,
        "inet t fwd #4"
    );
    let (v, _, by) = run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", TCP, 443));
    assert_eq!(
        v,
        "not-evaluated: \"limit\" depends on state a capture does not show"
    );
    assert_eq!(by, "inet t fwd #2");
    let (v, _, by) = run(&rs, &sel, &pkt("10.0.0.1", "10.0.0.2", TCP, 80));
    assert_eq!(v, "not-evaluated: \"meta mark\" is not in a capture");
    assert_eq!(by, "inet t fwd #1");
    // The reasons every rule gives, as firewall.csv lists them.
    let reasons: Vec<Vec<String>> = rs.chains[0]
        .rules
        .iter()
        .map(|r| r.unknown_reasons())
        .collect();
    assert_eq!(
        reasons,
        vec![
            vec!["\"meta mark\" is not in a capture".to_string()],
            vec!["\"limit\" depends on state a capture does not show".to_string()],
            vec!["\"meta mark\" is not in a capture".to_string()],
            vec![],
        ]
    );
    assert_eq!(
        rs.chains[0].rules[1].text,
        "tcp dport 443 limit {\"per\":\"second\",\"rate\":10} accept"
    );
}

#[test]
fn verdict_maps_pick_by_the_key() {
    let vmap = r#"{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": {"set": [[22, {"accept": null}], [{"range": [5000, 5010]}, {"jump": {"target": "x"}}], [23, {"drop": null}]]}}}"#;
    let x1 = format!("{}, {ACCEPT}", saddr("ip", "==", r#""10.0.0.1""#));
    let text = nft(
        "ip",
        "t",
        &[
            ("fwd", Some(("forward", "accept")), &[vmap]),
            ("x", None, &[&x1]),
        ],
        &[],
    );
    let rs = load(&[("fw.json", &text)]);
    let sel = Selection::default();
    let by = |s: &str, p: u16| {
        let (v, _, b) = run(&rs, &sel, &pkt(s, "10.0.0.9", TCP, p));
        format!("{v} {b}")
    };
    assert_eq!(by("10.0.0.2", 22), "accept ip t fwd #1");
    assert_eq!(by("10.0.0.2", 23), "drop ip t fwd #1");
    assert_eq!(by("10.0.0.1", 5005), "accept ip t x #1");
    assert_eq!(by("10.0.0.2", 5005), "accept ip t fwd policy");
    assert_eq!(by("10.0.0.2", 24), "accept ip t fwd policy");
}

const IPTABLES: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:backup - [0:0]
:web - [0:0]
[120:9000] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[3:180] -A FORWARD -s 10.0.1.0/24 -j backup
-A FORWARD -p tcp -m multiport --dports 80,443,8000:8080 -g web
-A FORWARD -m set --match-set admins src -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -p udp -m limit --limit 5/sec -j ACCEPT
-A FORWARD ! -s 10.0.0.0/8 -j LOG --log-prefix \"outsider \"
-A backup -p tcp -m tcp --dport 22 -j RETURN
-A backup -p tcp -m tcp --dport 2500:3300 -m comment --comment \"veeam data movers\" -j ACCEPT
-A web -s 10.0.1.66/32 -j RETURN
-A web -j ACCEPT
COMMIT
";

const IPSET: &str = "create admins hash:net family inet hashsize 1024 maxelem 65536
add admins 10.0.7.0/24
add admins 10.0.8.1
create pairs hash:ip,port family inet
add pairs 10.0.0.1,tcp:22
";

#[test]
fn iptables_save_with_user_chains_gotos_multiport_and_ipsets() {
    let rs = load(&[("rules.v4", IPTABLES), ("sets.save", IPSET)]);
    assert!(rs.skipped.is_empty(), "{:?}", rs.skipped);
    let sel = Selection {
        names: vec!["FORWARD".into()],
    };
    let f = "iptables filter FORWARD";
    let by = |s: &str, proto: u8, p: u16| {
        let (v, _, b) = run(&rs, &sel, &pkt(s, "10.0.2.2", proto, p));
        format!("{v} {b}")
    };
    assert_eq!(
        by("10.0.1.5", TCP, 2600),
        "accept iptables filter backup #2"
    );
    // 22 from the backup subnet returns from backup; admins do not hold 10.0.1.5; the udp
    // limit rule needs udp; #6 logs only outsiders: the policy drops it.
    assert_eq!(by("10.0.1.5", TCP, 22), format!("drop {f} policy"));
    assert_eq!(by("10.0.8.1", TCP, 22), format!("accept {f} #4"));
    assert_eq!(by("10.0.7.200", TCP, 22), format!("accept {f} #4"));
    // web by goto: 10.0.1.66 returns from web, which returns from FORWARD too: policy.
    assert_eq!(by("10.0.1.66", TCP, 8080), format!("drop {f} policy"));
    assert_eq!(by("10.0.1.67", TCP, 8080), "accept iptables filter web #2");
    // The rate-limited udp rule is not evaluated.
    assert_eq!(
        by("10.0.1.5", UDP, 53),
        format!("not-evaluated: -m limit --limit is not evaluated from a capture {f} #5")
    );
    // The established rule takes every later packet.
    let mut p = pkt("10.0.1.5", "10.0.2.2", UDP, 53);
    p.state = ct::ESTABLISHED;
    assert_eq!(run(&rs, &sel, &p).2, format!("{f} #1"));
    // Counters from iptables-save -c, text without them.
    let fw = &rs.chains[rs.chain("iptables", "filter", "FORWARD").unwrap()];
    assert_eq!(fw.rules[0].counter, Some((120, 9000)));
    assert_eq!(fw.rules[1].text, "-A FORWARD -s 10.0.1.0/24 -j backup");
    assert_eq!(
        fw.rules[4].unknown_reasons(),
        vec!["-m limit --limit is not evaluated from a capture".to_string()]
    );
}

#[test]
fn malformed_lines_are_skipped_with_file_and_line() {
    let text = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp --dport 99999 -j ACCEPT\n-A NOPE -j ACCEPT\n-A FORWARD -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
    let rs = load(&[("bad.v4", text)]);
    assert_eq!(
        rs.skipped,
        vec![
            "bad.v4:3: \"99999\" is not a port or port range: -A FORWARD -p tcp --dport 99999 -j ACCEPT".to_string(),
            "bad.v4:4: chain NOPE was not declared (no :NOPE line): -A NOPE -j ACCEPT".to_string(),
        ]
    );
    assert_eq!(rs.rule_count(), 1);
    let mut rs = Ruleset::default();
    let e = load_text("x.json", "{\"nftables\": [", &mut rs).unwrap_err();
    assert!(
        e.starts_with("x.json: line 1 column 14: not valid JSON"),
        "{e}"
    );
    assert!(load_text("x.txt", "hello\n", &mut rs)
        .unwrap_err()
        .starts_with("x.txt: neither"));
}
