//! `nft -j list ruleset` (libnftables-json(5)) into the evaluator's model.
//!
//! Read with serde_json's untyped `Value` rather than the `nftables` crate's typed schema: that
//! schema's enums are closed, so one statement it does not model (a new nft feature, an `xt`
//! match) fails the whole document, while here it only makes that one rule "not evaluated".
//! The text of each rule is rebuilt in nft syntax for the report (without counter values, so the
//! text stays the same from one export to the next).

use serde_json::{Map, Value};

use super::model::{
    ct, parse_addr_interval, Action, Chain, Family, Field, Hook, Match, Need, Part, Policy, Rule,
    Ruleset, SetBody, Values,
};

/// What kind of value a field holds, to read the right-hand side of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Addr,
    Port,
    Proto,
    Name,
    CtState,
    NfProto,
}

fn kind_of(f: Field) -> Kind {
    match f {
        Field::Saddr | Field::Daddr => Kind::Addr,
        Field::Sport | Field::Dport => Kind::Port,
        Field::L4Proto => Kind::Proto,
        Field::NfProto => Kind::NfProto,
        Field::IifName | Field::OifName => Kind::Name,
        Field::CtState => Kind::CtState,
    }
}

/// Protocol names nft prints (and /etc/protocols' common ones).
pub fn proto_by_name(s: &str) -> Option<u8> {
    s.parse::<crate::decode::proto::IpProto>()
        .ok()
        .map(u8::from)
}

/// Reads `nft -j list ruleset` output into `rs`. Objects that are not tables, chains, sets,
/// maps or rules are ignored; malformed ones are listed in `rs.skipped`.
pub fn parse(file: &str, text: &str, rs: &mut Ruleset) -> Result<(), String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "{file}: line {} column {}: not valid JSON: {e} (give the output of `nft -j list ruleset`)",
            e.line(),
            e.column()
        )
    })?;
    let items = doc
        .get("nftables")
        .and_then(|v| v.as_array())
        .ok_or_else(|| {
            format!(
                "{file}: no \"nftables\" array at the top: not the output of `nft -j list ruleset`"
            )
        })?;
    let (mut tables, mut rules) = (0usize, 0usize);
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            rs.skipped
                .push(format!("{file}: nftables[{i}]: not an object"));
            continue;
        };
        let r = if let Some(t) = obj.get("table") {
            tables += 1;
            let _ = t;
            Ok(())
        } else if let Some(c) = obj.get("chain") {
            add_chain(c, rs)
        } else if let Some(s) = obj.get("set") {
            add_set(s, rs, false)
        } else if let Some(m) = obj.get("map") {
            add_set(m, rs, true)
        } else if let Some(r) = obj.get("rule") {
            rules += 1;
            add_rule(file, i, r, rs)
        } else {
            Ok(())
        };
        if let Err(e) = r {
            rs.skipped.push(format!("{file}: nftables[{i}]: {e}"));
        }
    }
    rs.sources.push(format!(
        "{file}: nftables JSON, {tables} tables, {rules} rules"
    ));
    Ok(())
}

fn str_of<'a>(o: &'a Value, k: &str) -> Result<&'a str, String> {
    o.get(k)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("no \"{k}\""))
}

fn add_chain(c: &Value, rs: &mut Ruleset) -> Result<(), String> {
    let family_name = str_of(c, "family")?.to_string();
    let table = str_of(c, "table")?.to_string();
    let name = str_of(c, "name")?.to_string();
    let hook = c.get("hook").and_then(|h| h.as_str()).map(|h| Hook {
        hook: h.to_string(),
        prio: c.get("prio").and_then(|p| p.as_i64()).unwrap_or(0),
        policy: match c.get("policy").and_then(|p| p.as_str()) {
            Some("drop") => Policy::Drop,
            _ => Policy::Accept,
        },
        kind: c
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("filter")
            .to_string(),
    });
    if rs.chain(&family_name, &table, &name).is_none() {
        rs.chains.push(Chain {
            family: Family::parse(&family_name),
            family_name,
            table,
            name,
            hook,
            rules: Vec::new(),
        });
    }
    Ok(())
}

fn add_set(s: &Value, rs: &mut Ruleset, is_map: bool) -> Result<(), String> {
    let key = (
        str_of(s, "family")?.to_string(),
        str_of(s, "table")?.to_string(),
        str_of(s, "name")?.to_string(),
    );
    let empty = Value::Array(vec![]);
    let elems = match s.get("elem") {
        Some(Value::Array(_)) => s.get("elem").unwrap(),
        Some(one) => one,
        None => &empty,
    };
    let body = match s.get("type") {
        Some(Value::String(t)) => match type_kind(t) {
            None => SetBody::Unknown(format!("elements of type {t}")),
            Some(kind) if is_map => {
                if s.get("map").and_then(|m| m.as_str()) != Some("verdict") {
                    SetBody::Unknown("a map to data, not to verdicts".into())
                } else {
                    match map_entries(elems, kind) {
                        Ok(e) => SetBody::Verdicts(e),
                        Err(e) => SetBody::Unknown(e),
                    }
                }
            }
            Some(kind) => match values(elems, kind) {
                Ok(v) => SetBody::Values(v),
                Err(e) => SetBody::Unknown(e),
            },
        },
        Some(Value::Array(_)) => SetBody::Unknown("concatenated keys (a . b)".into()),
        _ => SetBody::Unknown("no type".into()),
    };
    rs.sets.insert(key, body);
    Ok(())
}

fn type_kind(t: &str) -> Option<Kind> {
    Some(match t {
        "ipv4_addr" | "ipv6_addr" => Kind::Addr,
        "inet_service" => Kind::Port,
        "inet_proto" => Kind::Proto,
        "ifname" => Kind::Name,
        "ct_state" => Kind::CtState,
        _ => return None,
    })
}

fn map_entries(elems: &Value, kind: Kind) -> Result<Vec<(Values, Action)>, String> {
    let mut out = Vec::new();
    let list: Vec<&Value> = match elems {
        Value::Array(a) => a.iter().collect(),
        _ => vec![elems],
    };
    for e in list {
        let pair = e
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or_else(|| format!("map element {} is not [key, verdict]", compact(e)))?;
        let (action, _) = verdict(&pair[1])
            .ok_or_else(|| format!("map element {} has no verdict", compact(e)))?;
        out.push((values(&pair[0], kind)?, action));
    }
    Ok(out)
}

fn add_rule(file: &str, i: usize, r: &Value, rs: &mut Ruleset) -> Result<(), String> {
    let fam = str_of(r, "family")?;
    let table = str_of(r, "table")?;
    let chain = str_of(r, "chain")?;
    let ci = match rs.chain(fam, table, chain) {
        Some(ci) => ci,
        None => {
            rs.chains.push(Chain {
                family: Family::parse(fam),
                family_name: fam.into(),
                table: table.into(),
                name: chain.into(),
                hook: None,
                rules: Vec::new(),
            });
            rs.chains.len() - 1
        }
    };
    let exprs = r
        .get("expr")
        .and_then(|e| e.as_array())
        .ok_or("no \"expr\" array")?;
    let mut rule = Rule {
        parts: Vec::new(),
        action: Action::Continue,
        text: String::new(),
        handle: r.get("handle").and_then(|h| h.as_u64()),
        origin: format!("{file}: nftables[{i}]"),
        counter: None,
    };
    let mut words: Vec<String> = Vec::new();
    for st in exprs {
        statement(st, &mut rule, &mut words);
        if rule.action != Action::Continue {
            break; // statements after a verdict are never reached
        }
    }
    if let Some(c) = r.get("comment").and_then(|c| c.as_str()) {
        words.push(format!("comment \"{c}\""));
    }
    rule.text = words.join(" ");
    rs.chains[ci].rules.push(rule);
    Ok(())
}

/// One statement of a rule's `expr` array.
fn statement(st: &Value, rule: &mut Rule, words: &mut Vec<String>) {
    let Some((name, body)) = st.as_object().and_then(single) else {
        rule.parts.push(Part::Unknown(format!(
            "statement {} not understood",
            compact(st)
        )));
        words.push(compact(st));
        return;
    };
    if name == "match" {
        let (part, text) = match_stmt(body);
        rule.parts.push(part);
        words.push(text);
        return;
    }
    if let Some((action, text)) = verdict(st) {
        rule.action = action;
        words.push(text);
        return;
    }
    match name {
        "counter" => {
            if let (Some(p), Some(b)) = (
                body.get("packets").and_then(|v| v.as_u64()),
                body.get("bytes").and_then(|v| v.as_u64()),
            ) {
                rule.counter = Some((p, b));
            }
            words.push("counter".into());
        }
        "reject" => {
            rule.action = Action::Reject;
            words.push("reject".into());
        }
        "log" | "notrack" | "mangle" | "set" | "comment" => words.push(other_text(name, body)),
        "vmap" => {
            let text = format!(
                "{} vmap {}",
                expr_text(body.get("key").unwrap_or(&Value::Null)),
                expr_text(body.get("data").unwrap_or(&Value::Null))
            );
            rule.action = vmap(body).unwrap_or_else(Action::Unknown);
            words.push(text);
        }
        "queue" | "xt" | "nat" | "snat" | "dnat" | "masquerade" | "redirect" | "fwd" | "dup"
        | "synproxy" | "tproxy" => {
            rule.action = Action::Unknown(format!("statement \"{name}\" is not a filter verdict"));
            words.push(other_text(name, body));
        }
        _ => {
            // limit, quota, ct count, meter, ...: they decide by state the capture has not.
            rule.parts.push(Part::Unknown(format!(
                "\"{name}\" depends on state a capture does not show"
            )));
            words.push(other_text(name, body));
        }
    }
}

fn single(o: &Map<String, Value>) -> Option<(&str, &Value)> {
    if o.len() == 1 {
        o.iter().next().map(|(k, v)| (k.as_str(), v))
    } else {
        None
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn other_text(name: &str, body: &Value) -> String {
    match body {
        Value::Null => name.to_string(),
        _ => format!("{name} {}", compact(body)),
    }
}

/// A verdict statement (`{"accept": null}`, `{"jump": {"target": "x"}}`).
fn verdict(st: &Value) -> Option<(Action, String)> {
    let (name, body) = st.as_object().and_then(single)?;
    let target = || {
        body.get("target")
            .and_then(|t| t.as_str())
            .map(String::from)
    };
    Some(match name {
        "accept" => (Action::Accept, "accept".into()),
        "drop" => (Action::Drop, "drop".into()),
        "return" => (Action::Return, "return".into()),
        "continue" => (Action::Continue, "continue".into()),
        "jump" => {
            let t = target()?;
            (Action::Jump(t.clone()), format!("jump {t}"))
        }
        "goto" => {
            let t = target()?;
            (Action::Goto(t.clone()), format!("goto {t}"))
        }
        _ => return None,
    })
}

fn vmap(body: &Value) -> Result<Action, String> {
    let key = body.get("key").ok_or("vmap without a key")?;
    let (field, need) = left(key)?;
    match body.get("data") {
        Some(Value::String(s)) if s.starts_with('@') => Ok(Action::VmapRef {
            field,
            need,
            name: s[1..].to_string(),
        }),
        Some(d) => {
            let elems = d.get("set").ok_or("vmap data is neither a set nor @map")?;
            Ok(Action::Vmap {
                field,
                need,
                entries: map_entries(elems, kind_of(field))?,
            })
        }
        None => Err("vmap without data".into()),
    }
}

/// A `match` statement: the part and its nft text.
fn match_stmt(body: &Value) -> (Part, String) {
    let op = body.get("op").and_then(|o| o.as_str()).unwrap_or("==");
    let (l, r) = (
        body.get("left").unwrap_or(&Value::Null),
        body.get("right").unwrap_or(&Value::Null),
    );
    let text = {
        let o = match op {
            "==" | "in" => String::new(),
            o => format!("{o} "),
        };
        format!("{} {o}{}", expr_text(l), expr_text(r))
    };
    let part = match left(l) {
        Err(why) => Part::Unknown(why),
        Ok((field, need)) => match rhs(op, r, kind_of(field)) {
            Ok((negate, values)) => Part::Match(Match {
                field,
                need,
                negate,
                values,
            }),
            Err(why) => Part::Unknown(why),
        },
    };
    (part, text)
}

/// The field a left-hand side reads, and what the packet must be for it.
fn left(l: &Value) -> Result<(Field, Need), String> {
    let (name, body) = l
        .as_object()
        .and_then(single)
        .ok_or_else(|| format!("expression {} not understood", compact(l)))?;
    match name {
        "payload" => {
            let proto = body.get("protocol").and_then(|p| p.as_str());
            let field = body.get("field").and_then(|p| p.as_str());
            let (Some(proto), Some(field)) = (proto, field) else {
                return Err(format!("raw payload match {}", compact(body)));
            };
            payload(proto, field)
                .ok_or_else(|| format!("\"{proto} {field}\" is not kept per service"))
        }
        "meta" => {
            let key = body.get("key").and_then(|k| k.as_str()).unwrap_or("");
            match key {
                "l4proto" => Ok((Field::L4Proto, Need::Nothing)),
                "nfproto" | "protocol" => Ok((Field::NfProto, Need::Nothing)),
                "iifname" => Ok((Field::IifName, Need::Nothing)),
                "oifname" => Ok((Field::OifName, Need::Nothing)),
                k => Err(format!("\"meta {k}\" is not in a capture")),
            }
        }
        "ct" => {
            let key = body.get("key").and_then(|k| k.as_str()).unwrap_or("");
            if key == "state" && body.get("dir").is_none() {
                Ok((Field::CtState, Need::Nothing))
            } else {
                Err(format!("\"ct {key}\" is not evaluated"))
            }
        }
        n => Err(format!("\"{n}\" expressions are not evaluated")),
    }
}

fn payload(proto: &str, field: &str) -> Option<(Field, Need)> {
    let port = |f: &str| match f {
        "sport" => Some(Field::Sport),
        "dport" => Some(Field::Dport),
        _ => None,
    };
    Some(match proto {
        "ip" | "ip6" => {
            let need = if proto == "ip" { Need::V4 } else { Need::V6 };
            let f = match field {
                "saddr" => Field::Saddr,
                "daddr" => Field::Daddr,
                "protocol" if proto == "ip" => Field::L4Proto,
                "nexthdr" if proto == "ip6" => Field::L4Proto,
                _ => return None,
            };
            (f, need)
        }
        "th" => (port(field)?, Need::Ports),
        p => (port(field)?, Need::Proto(proto_by_name(p)?)),
    })
}

/// The right-hand side: whether it is negated, and the values.
fn rhs(op: &str, r: &Value, kind: Kind) -> Result<(bool, Values), String> {
    let limit = |v: &Value| -> Result<u128, String> {
        match values(v, kind)? {
            Values::Ints(iv) if iv.len() == 1 && iv[0].0 == iv[0].1 => Ok(iv[0].0),
            _ => Err(format!("comparison with {}", compact(v))),
        }
    };
    let top: u128 = match kind {
        Kind::Port => 65535,
        Kind::Proto => 255,
        _ => return cmp_plain(op, r, kind),
    };
    Ok(match op {
        "<" => (false, Values::Ints(below(limit(r)?, 0))),
        "<=" => (false, Values::Ints(vec![(0, limit(r)?)])),
        ">" => (false, Values::Ints(above(limit(r)?, top))),
        ">=" => (false, Values::Ints(vec![(limit(r)?, top)])),
        _ => return cmp_plain(op, r, kind),
    })
}

fn below(v: u128, lo: u128) -> Vec<(u128, u128)> {
    if v > lo {
        vec![(lo, v - 1)]
    } else {
        vec![]
    }
}

fn above(v: u128, hi: u128) -> Vec<(u128, u128)> {
    if v < hi {
        vec![(v + 1, hi)]
    } else {
        vec![]
    }
}

fn cmp_plain(op: &str, r: &Value, kind: Kind) -> Result<(bool, Values), String> {
    match op {
        "==" | "in" => Ok((false, values(r, kind)?)),
        "!=" => Ok((true, values(r, kind)?)),
        o => Err(format!("operator \"{o}\" is not evaluated")),
    }
}

/// Values of a right-hand side, a set's elements or a map's keys.
fn values(v: &Value, kind: Kind) -> Result<Values, String> {
    if let Some(s) = v.as_str().and_then(|s| s.strip_prefix('@')) {
        return Ok(Values::SetRef(s.to_string()));
    }
    if kind == Kind::Name {
        let mut names = Vec::new();
        for e in elements(v) {
            match e.as_str() {
                // "eth*" is a wildcard; "eth\*" (a literal star) names no real interface.
                Some(s) if s.contains("\\*") => {
                    return Err(format!("interface name {s:?} with a literal star"))
                }
                Some(s) => names.push(s.to_string()),
                None => return Err(format!("interface name {} not understood", compact(e))),
            }
        }
        return Ok(Values::Names(names));
    }
    let mut iv = Vec::new();
    for e in elements(v) {
        iv.push(interval(e, kind)?);
    }
    Ok(Values::Ints(iv))
}

/// The elements of a value: a `{"set": [...]}`, an array (flags), or one value.
fn elements(v: &Value) -> Vec<&Value> {
    let v = v.get("set").unwrap_or(v);
    let list: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    // Set elements with options come as {"elem": {"val": X, ...}}.
    list.into_iter()
        .map(|e| e.get("elem").and_then(|x| x.get("val")).unwrap_or(e))
        .collect()
}

fn interval(e: &Value, kind: Kind) -> Result<(u128, u128), String> {
    if let Some(p) = e.get("prefix") {
        let addr = p.get("addr").and_then(|a| a.as_str()).unwrap_or("");
        let len = p.get("len").and_then(|l| l.as_u64()).unwrap_or(999);
        return parse_addr_interval(&format!("{addr}/{len}"))
            .filter(|_| kind == Kind::Addr)
            .ok_or_else(|| format!("prefix {} not understood", compact(e)));
    }
    if let Some(Value::Array(r)) = e.get("range") {
        if r.len() == 2 {
            let (a, b) = (scalar(&r[0], kind)?, scalar(&r[1], kind)?);
            if a <= b {
                return Ok((a, b));
            }
        }
        return Err(format!("range {} not understood", compact(e)));
    }
    let x = scalar(e, kind)?;
    Ok((x, x))
}

fn scalar(e: &Value, kind: Kind) -> Result<u128, String> {
    let bad = || format!("value {} not understood", compact(e));
    match (kind, e) {
        (Kind::Port | Kind::Proto, Value::Number(n)) => {
            let max = if kind == Kind::Port { 65535 } else { 255 };
            n.as_u64()
                .filter(|&x| x <= max)
                .map(|x| x as u128)
                .ok_or_else(bad)
        }
        (Kind::Proto, Value::String(s)) => proto_by_name(s).map(|p| p as u128).ok_or_else(bad),
        (Kind::Port, Value::String(s)) => service_port(s).map(|p| p as u128).ok_or_else(bad),
        (Kind::Addr, Value::String(s)) => parse_addr_interval(s)
            .filter(|(a, b)| a == b)
            .map(|(a, _)| a)
            .ok_or_else(bad),
        (Kind::CtState, Value::String(s)) => ct::parse(s).ok_or_else(bad),
        (Kind::NfProto, Value::String(s)) => match s.as_str() {
            "ipv4" | "ip" => Ok(2),
            "ipv6" | "ip6" => Ok(10),
            _ => Err(bad()),
        },
        (Kind::NfProto, Value::Number(n)) => n.as_u64().map(|x| x as u128).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Service names `nft -j` may print instead of port numbers (with `-S`, or older versions).
fn service_port(s: &str) -> Option<u16> {
    Some(match s {
        "ssh" => 22,
        "domain" => 53,
        "http" => 80,
        "https" => 443,
        "microsoft-ds" => 445,
        "ms-sql-s" => 1433,
        "nfs" => 2049,
        "iscsi-target" => 3260,
        "ms-wbt-server" => 3389,
        n => return n.parse().ok(),
    })
}

/// An expression in nft syntax, for the rule's text.
fn expr_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => a.iter().map(expr_text).collect::<Vec<_>>().join(","),
        Value::Object(o) => match single(o) {
            Some(("payload", b)) => match (b.get("protocol"), b.get("field")) {
                (Some(p), Some(f)) => format!("{} {}", expr_text(p), expr_text(f)),
                _ => compact(v),
            },
            // nft prints these meta keys bare (`iifname "eth0"`), the others as `meta KEY`.
            Some(("meta", b)) => match b["key"].as_str() {
                Some(k @ ("iifname" | "oifname" | "iif" | "oif" | "iiftype" | "oiftype")) => {
                    k.to_string()
                }
                _ => format!("meta {}", expr_text(&b["key"])),
            },
            Some(("ct", b)) => format!("ct {}", expr_text(&b["key"])),
            Some(("prefix", b)) => format!("{}/{}", expr_text(&b["addr"]), expr_text(&b["len"])),
            Some(("range", Value::Array(r))) if r.len() == 2 => {
                format!("{}-{}", expr_text(&r[0]), expr_text(&r[1]))
            }
            Some(("set", Value::Array(a))) => format!(
                "{{ {} }}",
                a.iter().map(expr_text).collect::<Vec<_>>().join(", ")
            ),
            Some(("elem", b)) => expr_text(&b["val"]),
            _ => compact(v),
        },
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
    }
}
