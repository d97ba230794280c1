//! `iptables-save` / `ip6tables-save` text (with or without `-c` counters) and `ipset save`
//! output into the evaluator's model.
//!
//! Each `-A` line becomes one rule whose text is the line itself. Options the evaluator cannot
//! decide from a capture (`-m limit`, `-m mark`, `-m time`, ...) make the rule "not evaluated".

use super::model::{
    ct, parse_addr_interval, Action, Chain, Family, Field, Hook, Match, Need, Part, Policy, Rule,
    Ruleset, SetBody, Values,
};
use super::nft::proto_by_name;

/// Splits a line into words; double quotes group (iptables-save quotes comments and log
/// prefixes, with `\"` inside).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => cur.extend(chars.next()),
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unbalanced double quote".into());
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Whether the text is ip6tables-save output (its header, or an IPv6 address in -s/-d).
fn is_v6(text: &str) -> bool {
    if text
        .lines()
        .any(|l| l.starts_with('#') && l.contains("ip6tables"))
    {
        return true;
    }
    text.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.windows(2).any(|p| {
            matches!(p[0], "-s" | "-d" | "--source" | "--destination") && p[1].contains(':')
        })
    })
}

fn builtin_prio(table: &str) -> i64 {
    match table {
        "raw" => -300,
        "mangle" => -150,
        "nat" => -100,
        "security" => 50,
        _ => 0,
    }
}

/// Reads iptables-save or ip6tables-save output into `rs`.
pub fn parse(file: &str, text: &str, rs: &mut Ruleset) -> Result<(), String> {
    let v6 = is_v6(text);
    let (family, family_name) = if v6 {
        (Family::Ip6, "ip6tables")
    } else {
        (Family::Ip, "iptables")
    };
    let mut table: Option<String> = None;
    let mut rules = 0usize;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = format!("{file}:{}", n + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(t) = line.strip_prefix('*') {
            table = Some(t.trim().to_string());
            continue;
        }
        if line == "COMMIT" {
            table = None;
            continue;
        }
        let Some(t) = table.clone() else {
            rs.skipped
                .push(format!("{at}: outside a *table ... COMMIT block: {line}"));
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            let mut w = decl.split_whitespace();
            let (Some(name), Some(policy)) = (w.next(), w.next()) else {
                rs.skipped
                    .push(format!("{at}: chain declaration without a policy: {line}"));
                continue;
            };
            let hook = (policy != "-").then(|| Hook {
                hook: name.to_ascii_lowercase(),
                prio: builtin_prio(&t),
                policy: if policy == "DROP" {
                    Policy::Drop
                } else {
                    Policy::Accept
                },
                kind: t.clone(),
            });
            if rs.chain(family_name, &t, name).is_none() {
                rs.chains.push(Chain {
                    family,
                    family_name: family_name.into(),
                    table: t.clone(),
                    name: name.into(),
                    hook,
                    rules: Vec::new(),
                });
            }
            continue;
        }
        match rule_line(&at, line, family_name, &t, v6, rs) {
            Ok(()) => rules += 1,
            Err(e) => rs.skipped.push(format!("{at}: {e}: {line}")),
        }
    }
    rs.sources.push(format!(
        "{file}: {} text, {rules} rules",
        if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        }
    ));
    Ok(())
}

fn rule_line(
    at: &str,
    line: &str,
    family_name: &str,
    table: &str,
    v6: bool,
    rs: &mut Ruleset,
) -> Result<(), String> {
    let mut w = words(line)?;
    let mut counter = None;
    if let Some(c) = w
        .first()
        .and_then(|x| x.strip_prefix('[')?.strip_suffix(']'))
    {
        counter = c
            .split_once(':')
            .and_then(|(p, b)| Some((p.parse().ok()?, b.parse().ok()?)));
        w.remove(0);
    }
    if w.first().map(String::as_str) != Some("-A") || w.len() < 2 {
        return Err("not an -A rule".into());
    }
    let chain = w[1].clone();
    let ci = rs
        .chain(family_name, table, &chain)
        .ok_or_else(|| format!("chain {chain} was not declared (no :{chain} line)"))?;
    let known_chains: Vec<String> = rs
        .chains
        .iter()
        .filter(|c| c.family_name == family_name && c.table == table)
        .map(|c| c.name.clone())
        .collect();
    let mut p = RuleParser {
        w: &w[2..],
        i: 0,
        v6,
        proto: None,
        parts: Vec::new(),
        action: Action::Continue,
        counter,
        chains: &known_chains,
    };
    p.run()?;
    let rule = Rule {
        parts: p.parts,
        action: p.action,
        text: line.trim_start_matches(|c| c != '-').to_string(),
        handle: None,
        origin: at.to_string(),
        counter: p.counter,
    };
    rs.chains[ci].rules.push(rule);
    Ok(())
}

struct RuleParser<'a> {
    w: &'a [String],
    i: usize,
    v6: bool,
    /// The `-p` protocol, which port options depend on.
    proto: Option<u8>,
    parts: Vec<Part>,
    action: Action,
    counter: Option<(u64, u64)>,
    chains: &'a [String],
}

impl RuleParser<'_> {
    fn next(&mut self, opt: &str) -> Result<String, String> {
        let v = self
            .w
            .get(self.i)
            .cloned()
            .ok_or_else(|| format!("{opt} without a value"))?;
        self.i += 1;
        Ok(v)
    }

    fn push(&mut self, field: Field, need: Need, negate: bool, values: Values) {
        self.parts.push(Part::Match(Match {
            field,
            need,
            negate,
            values,
        }));
    }

    fn addr_need(&self) -> Need {
        if self.v6 {
            Need::V6
        } else {
            Need::V4
        }
    }

    fn port_need(&self, opt: &str) -> Result<Need, String> {
        match self.proto {
            Some(p) if super::eval::has_ports(p) => Ok(Need::Proto(p)),
            _ => Err(format!("{opt} without -p tcp, udp, sctp or dccp")),
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut negate = false;
        let mut module = String::new();
        while self.i < self.w.len() {
            let opt = self.w[self.i].clone();
            self.i += 1;
            if opt == "!" {
                negate = true;
                continue;
            }
            self.option(&opt, negate, &mut module)?;
            negate = false;
        }
        Ok(())
    }

    fn option(&mut self, opt: &str, neg: bool, module: &mut String) -> Result<(), String> {
        match opt {
            "-s" | "--source" | "-d" | "--destination" => self.addresses(opt, neg)?,
            "-p" | "--protocol" => self.protocol(opt, neg)?,
            "-i" | "--in-interface" | "-o" | "--out-interface" => self.interface(opt, neg)?,
            "-m" | "--match" => *module = self.next(opt)?,
            "--dport" | "--destination-port" | "--sport" | "--source-port" => {
                self.port(opt, neg)?
            }
            "--dports" | "--destination-ports" | "--sports" | "--source-ports" => {
                self.ports(opt, neg)?
            }
            "--ctstate" | "--state" => self.ctstate(opt, neg)?,
            "--syn" => {
                // Our packets: the new connection's first packet is the SYN, later ones are not.
                let need = self.port_need(opt)?;
                self.push(
                    Field::CtState,
                    need,
                    neg,
                    Values::Ints(vec![(ct::NEW, ct::NEW)]),
                );
            }
            "--match-set" => self.match_set(opt, neg)?,
            "--src-range" | "--dst-range" => self.addr_range(opt, neg)?,
            "--comment" => {
                self.next(opt)?;
            }
            "-c" | "--set-counters" => {
                let p = self.next(opt)?;
                let b = self.next(opt)?;
                self.counter = p.parse().ok().zip(b.parse().ok());
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let t = self.next(opt)?;
                self.action = self.target(&t, opt.starts_with("-g") || opt == "--goto");
                // The target's own options (--reject-with, --log-prefix, ...) do not filter.
                self.skip_values();
            }
            o => self.unknown(o, module),
        }
        Ok(())
    }

    /// `-s`/`-d` with a comma-separated list of addresses or networks.
    fn addresses(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let v = self.next(opt)?;
        let mut iv = Vec::new();
        for a in v.split(',') {
            iv.push(addr(a, self.v6)?);
        }
        let f = if opt.starts_with("-s") || opt == "--source" {
            Field::Saddr
        } else {
            Field::Daddr
        };
        self.push(f, self.addr_need(), neg, Values::Ints(iv));
        Ok(())
    }

    /// `-p`: a protocol (`all` or 0 matches any); a positive one enables port options.
    fn protocol(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let v = self.next(opt)?;
        if v == "all" || v == "0" {
            return Ok(());
        }
        let p = proto_by_name(&v).ok_or_else(|| format!("unknown protocol {v:?}"))?;
        if !neg {
            self.proto = Some(p);
        }
        self.push(
            Field::L4Proto,
            Need::Nothing,
            neg,
            Values::Ints(vec![(p as u128, p as u128)]),
        );
        Ok(())
    }

    /// `-i`/`-o`: an interface name; iptables' `eth+` prefix becomes `eth*`.
    fn interface(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let v = self.next(opt)?;
        let f = if opt.starts_with("-i") || opt == "--in-interface" {
            Field::IifName
        } else {
            Field::OifName
        };
        let name = match v.strip_suffix('+') {
            Some(pre) => format!("{pre}*"),
            None => v,
        };
        self.push(f, Need::Nothing, neg, Values::Names(vec![name]));
        Ok(())
    }

    /// `--dport`/`--sport`: one port or range.
    fn port(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let need = self.port_need(opt)?;
        let v = self.next(opt)?;
        let f = if matches!(opt, "--dport" | "--destination-port") {
            Field::Dport
        } else {
            Field::Sport
        };
        self.push(f, need, neg, Values::Ints(vec![port_range(&v)?]));
        Ok(())
    }

    /// `--dports`/`--sports` (multiport): a comma-separated list of ports and ranges.
    fn ports(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let need = self.port_need(opt)?;
        let v = self.next(opt)?;
        let f = if opt.starts_with("--d") {
            Field::Dport
        } else {
            Field::Sport
        };
        let iv = v.split(',').map(port_range).collect::<Result<_, _>>()?;
        self.push(f, need, neg, Values::Ints(iv));
        Ok(())
    }

    /// `--ctstate`/`--state`: a comma-separated list of connection states.
    fn ctstate(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let v = self.next(opt)?;
        let mut iv = Vec::new();
        for s in v.split(',') {
            let b = ct::parse(s).ok_or_else(|| format!("unknown state {s:?}"))?;
            iv.push((b, b));
        }
        self.push(Field::CtState, Need::Nothing, neg, Values::Ints(iv));
        Ok(())
    }

    /// `--match-set NAME src|dst`: an ipset of one dimension; more are not evaluated.
    fn match_set(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let name = self.next(opt)?;
        let dirs = self.next(opt)?;
        let f = match dirs.as_str() {
            "src" => Field::Saddr,
            "dst" => Field::Daddr,
            d => {
                self.parts.push(Part::Unknown(format!(
                    "--match-set {name} {d}: sets of more than one dimension are not evaluated"
                )));
                return Ok(());
            }
        };
        self.push(f, self.addr_need(), neg, Values::SetRef(name));
        Ok(())
    }

    /// `--src-range`/`--dst-range` (iprange): an address range a-b.
    fn addr_range(&mut self, opt: &str, neg: bool) -> Result<(), String> {
        let v = self.next(opt)?;
        let iv = parse_addr_interval(&v)
            .filter(|_| v.contains('-'))
            .ok_or_else(|| format!("{opt} {v:?} is not an address range a-b"))?;
        let f = if opt == "--src-range" {
            Field::Saddr
        } else {
            Field::Daddr
        };
        self.push(f, self.addr_need(), neg, Values::Ints(vec![iv]));
        Ok(())
    }

    /// An option the capture cannot evaluate: skipped with its values, and said so.
    fn unknown(&mut self, o: &str, module: &str) {
        let what = if module.is_empty() {
            o.to_string()
        } else {
            format!("-m {module} {o}")
        };
        self.skip_values();
        self.parts.push(Part::Unknown(format!(
            "{what} is not evaluated from a capture"
        )));
    }

    /// Skips an unknown option's values (words up to the next option).
    fn skip_values(&mut self) {
        while self.i < self.w.len() && !self.w[self.i].starts_with('-') && self.w[self.i] != "!" {
            self.i += 1;
        }
    }

    fn target(&self, t: &str, goto: bool) -> Action {
        match t {
            "ACCEPT" => Action::Accept,
            "DROP" => Action::Drop,
            "REJECT" => Action::Reject,
            "RETURN" => Action::Return,
            "LOG" | "NFLOG" | "ULOG" | "MARK" | "CONNMARK" | "CT" | "TRACE" | "TCPMSS"
            | "CLASSIFY" | "DSCP" | "TOS" | "AUDIT" => Action::Continue,
            c if self.chains.iter().any(|x| x == c) => {
                if goto {
                    Action::Goto(c.into())
                } else {
                    Action::Jump(c.into())
                }
            }
            other => Action::Unknown(format!("target {other} is not a filter verdict")),
        }
    }
}

fn addr(a: &str, v6: bool) -> Result<(u128, u128), String> {
    // iptables-save writes a netmask as a prefix length; dotted masks are accepted too.
    let iv = match a.split_once('/') {
        Some((ip, mask)) if mask.contains('.') => {
            let m: std::net::Ipv4Addr = mask.parse().map_err(|_| format!("bad mask {mask:?}"))?;
            let len = u32::from(m).leading_ones();
            parse_addr_interval(&format!("{ip}/{len}"))
        }
        _ => parse_addr_interval(a),
    }
    .ok_or_else(|| format!("{a:?} is not an address or CIDR block"))?;
    if (iv.0 >> 32 == 0xffff) == v6 {
        return Err(format!(
            "{a:?} is not an {} address",
            if v6 { "IPv6" } else { "IPv4" }
        ));
    }
    Ok(iv)
}

/// `22` or `1024:65535` (iptables' range syntax; `:` alone means from 0 / to 65535).
fn port_range(s: &str) -> Result<(u128, u128), String> {
    let p = |x: &str, d: u16| -> Result<u128, String> {
        if x.is_empty() {
            return Ok(d as u128);
        }
        x.parse::<u16>()
            .map(|v| v as u128)
            .map_err(|_| format!("{s:?} is not a port or port range"))
    };
    let (lo, hi) = match s.split_once(':') {
        Some((a, b)) => (p(a, 0)?, p(b, 65535)?),
        None => {
            let v = p(s, 0)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("{s:?}: the range is backwards"));
    }
    Ok((lo, hi))
}

/// Reads `ipset save` output: address sets (hash:ip, hash:net, bitmap:ip) become sets the
/// iptables `--match-set` rules can use; other types are listed as not evaluated.
pub fn parse_ipset(file: &str, text: &str, rs: &mut Ruleset) -> Result<(), String> {
    // Each set's name and its intervals, or why it cannot be evaluated.
    type Intervals = Result<Vec<(u128, u128)>, String>;
    let mut sets: Vec<(String, Intervals)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let w: Vec<&str> = raw.split_whitespace().collect();
        match w.as_slice() {
            [] => {}
            [c, ..] if c.starts_with('#') => {}
            ["create", name, kind, ..] => {
                let body = match *kind {
                    "hash:ip" | "hash:net" | "bitmap:ip" => Ok(Vec::new()),
                    k => Err(format!("ipset type {k} is not evaluated")),
                };
                sets.push((name.to_string(), body));
            }
            ["add", name, elem, rest @ ..] => {
                let Some((_, body)) = sets.iter_mut().find(|(s, _)| s == name) else {
                    rs.skipped
                        .push(format!("{at}: add to set {name} before its create line"));
                    continue;
                };
                let Ok(list) = body else { continue };
                if rest.contains(&"nomatch") {
                    *body = Err("nomatch entries are not evaluated".into());
                    continue;
                }
                match parse_addr_interval(elem) {
                    Some(iv) => list.push(iv),
                    None => rs
                        .skipped
                        .push(format!("{at}: {elem:?} is not an address, range or CIDR")),
                }
            }
            _ => rs
                .skipped
                .push(format!("{at}: not a create or add line: {raw}")),
        }
    }
    let count = sets.len();
    for (name, body) in sets {
        let b = match body {
            Ok(iv) => SetBody::Values(Values::Ints(iv)),
            Err(e) => SetBody::Unknown(e),
        };
        rs.sets.insert(("ipset".into(), "ipset".into(), name), b);
    }
    rs.sources.push(format!("{file}: ipset save, {count} sets"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quoted_comments_together() {
        assert_eq!(
            words(r#"-A FORWARD -m comment --comment "veeam \"data\" movers" -j ACCEPT"#).unwrap(),
            vec![
                "-A",
                "FORWARD",
                "-m",
                "comment",
                "--comment",
                "veeam \"data\" movers",
                "-j",
                "ACCEPT"
            ]
        );
        assert!(words(r#"-A X --comment "open"#).is_err());
    }

    #[test]
    fn port_ranges_read_like_iptables() {
        assert_eq!(port_range("22").unwrap(), (22, 22));
        assert_eq!(port_range("1024:").unwrap(), (1024, 65535));
        assert_eq!(port_range(":1023").unwrap(), (0, 1023));
        assert!(port_range("9:1").is_err());
        assert!(port_range("70000").is_err());
    }
}
