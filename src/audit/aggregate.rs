//! Flows to services: every flow turned the way the catalogs say where the engine only guessed,
//! then summed per (client, server, protocol, server port). Chunks of flows are keyed in
//! parallel and sorted, so the services come out in one deterministic order (host indices follow
//! address order) without a hash map as large as the services.

use std::io;

use rayon::prelude::*;

use super::classify::{allowed, End};
use super::compiled::Compiled;
use super::hosts::{HostIdx, Hosts};
use super::{Caveats, Outcome, Service, ServiceKey, Verdict};
use crate::decode::{proto, Addr};
use crate::flow::store::Flows;
use crate::flow::{Basis, FlowRecord};

/// Flows handled at once: bounds the keys held while flows stream from disk.
const CHUNK: usize = 1 << 20;

/// Calls `f` with consecutive chunks of the flows in report order and the index of each chunk's
/// first flow. Flows held in memory are lent as they are; spilled ones are read back.
pub fn for_each_chunk(
    flows: &Flows,
    mut f: impl FnMut(usize, &[FlowRecord]) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(mem) = flows.in_memory() {
        for (k, c) in mem.chunks(CHUNK).enumerate() {
            f(k * CHUNK, c)?;
        }
        return Ok(());
    }
    let mut buf = Vec::with_capacity(CHUNK.min(flows.len() as usize));
    let mut base = 0;
    for r in flows.iter() {
        buf.push(r?);
        if buf.len() == CHUNK {
            f(base, &buf)?;
            base += CHUNK;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        f(base, &buf)?;
    }
    Ok(())
}

/// Every address of the flows, sorted, each once.
pub fn addresses(flows: &Flows) -> io::Result<Vec<Addr>> {
    let mut all: Vec<Addr> = Vec::new();
    for_each_chunk(flows, |_, chunk| {
        let mut v: Vec<Addr> = chunk
            .par_iter()
            .flat_map_iter(|f| [f.key.a, f.key.b])
            .collect();
        v.par_sort_unstable();
        v.dedup();
        all = merge_sorted(std::mem::take(&mut all), v);
        Ok(())
    })?;
    Ok(all)
}

fn merge_sorted(a: Vec<Addr>, b: Vec<Addr>) -> Vec<Addr> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x <= y => {
                i += 1;
                if x == y {
                    j += 1;
                }
                *x
            }
            (_, Some(y)) => {
                j += 1;
                *y
            }
            (Some(x), None) => {
                i += 1;
                *x
            }
            (None, None) => unreachable!(),
        };
        out.push(next);
    }
    out
}

/// What the direction test needs to know about the hosts.
pub struct Ctx<'a> {
    pub cc: &'a Compiled,
    pub hosts: &'a Hosts,
    pub names: &'a rustc_hash::FxHashMap<HostIdx, Vec<String>>,
}

impl Ctx<'_> {
    pub fn end(&self, h: HostIdx) -> End<'_> {
        let host = self.hosts.get(h);
        End {
            roles: host.in_inventory().then_some(&host.roles),
            public: super::is_public(host.addr),
            names: self.names.get(&h).map_or(&[], Vec::as_slice),
        }
    }

    /// Whether the catalogs turn this flow around: the engine only guessed (port or first
    /// packet), no rule allows it as it stands and one allows it the other way.
    fn flips(&self, f: &FlowRecord) -> bool {
        if !f.flow.basis.is_heuristic() || !proto::has_ports(f.key.proto) {
            return false;
        }
        let (c, cp) = f.client();
        let (s, sp) = f.server();
        let (c, s) = (self.hosts.idx(c), self.hosts.idx(s));
        let p = f.key.proto;
        !allowed(self.cc, p, sp, &self.end(c), &self.end(s))
            && allowed(self.cc, p, cp, &self.end(s), &self.end(c))
    }
}

/// The flow as the audit sees it: turned where the catalogs said so.
pub fn oriented(mut f: FlowRecord, flipped: bool) -> FlowRecord {
    if flipped {
        f.flip(Basis::Catalog);
    }
    f
}

fn key_of(hosts: &Hosts, f: &FlowRecord) -> ServiceKey {
    let (c, _) = f.client();
    let (s, sp) = f.server();
    ServiceKey {
        client: hosts.idx(c),
        server: hosts.idx(s),
        proto: f.key.proto,
        port: if proto::has_ports(f.key.proto) { sp } else { 0 },
    }
}

/// All flows summed into services, sorted by key; sets a bit in `flipped` for every flow the
/// catalogs turned around, and counts what the capture could not show into `caveats`.
pub fn services(
    flows: &Flows,
    cx: &Ctx,
    flipped: &mut Vec<u64>,
    caveats: &mut Caveats,
) -> io::Result<Vec<Service>> {
    flipped.clear();
    flipped.resize((flows.len() as usize).div_ceil(64), 0);
    let mut all: Vec<Service> = Vec::new();
    for_each_chunk(flows, |base, chunk| {
        let mut keyed: Vec<(ServiceKey, u32, bool)> = chunk
            .par_iter()
            .enumerate()
            .map(|(i, f)| {
                let flip = cx.flips(f);
                (key_of(cx.hosts, &oriented(*f, flip)), i as u32, flip)
            })
            .collect();
        for &(_, i, flip) in &keyed {
            if flip {
                let n = base + i as usize;
                flipped[n / 64] |= 1 << (n % 64);
            }
        }
        keyed.par_sort_unstable_by_key(|k| (k.0, k.1));
        // Sized exactly: the services are most of the audit's memory.
        let distinct = 1 + keyed.windows(2).filter(|w| w[0].0 != w[1].0).count();
        let mut part: Vec<Service> = Vec::with_capacity(distinct);
        for (key, i, flip) in keyed {
            let f = oriented(chunk[i as usize], flip);
            caveats.add(&f);
            if caveats.not_a_service(&f, &key, cx.hosts) {
                continue;
            }
            match part.last_mut() {
                Some(s) if s.key == key => s.add(&f),
                _ => part.push(Service::of_flow(key, &f)),
            }
        }
        all = merge_services(std::mem::take(&mut all), part);
        Ok(())
    })?;
    Ok(all)
}

fn merge_services(a: Vec<Service>, b: Vec<Service>) -> Vec<Service> {
    if a.is_empty() {
        return b;
    }
    let mut out: Vec<Service> = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.key <= y.key => a.next(),
            (_, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        let next = next.expect("peeked");
        match out.last_mut() {
            Some(s) if s.key == next.key => s.merge(&next),
            _ => out.push(next),
        }
    }
    out
}

impl Service {
    fn of_flow(key: ServiceKey, f: &FlowRecord) -> Service {
        let mut s = Service {
            key,
            flows: 0,
            established: 0,
            refused: 0,
            unanswered: 0,
            packets: 0,
            bytes: 0,
            first_ts: f.flow.first_ts,
            last_ts: f.flow.last_ts,
            bases: [0; 5],
            verdict: Verdict::Undocumented,
            outcome: Outcome::Unanswered,
            unknown: Default::default(),
            rules: [0; 3],
            n_rules: 0,
            more: 0,
            waiver: super::NO_WAIVER,
        };
        s.add(f);
        s
    }

    fn add(&mut self, f: &FlowRecord) {
        self.flows += 1;
        match Outcome::of_flow(f) {
            Outcome::Established => self.established += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Unanswered => self.unanswered += 1,
        }
        self.packets += f.flow.packets[0] + f.flow.packets[1];
        self.bytes += f.flow.bytes[0] + f.flow.bytes[1];
        self.first_ts = self.first_ts.min(f.flow.first_ts);
        self.last_ts = self.last_ts.max(f.flow.last_ts);
        self.bases[f.flow.basis as usize] += 1;
    }

    fn merge(&mut self, o: &Service) {
        self.flows += o.flows;
        self.established += o.established;
        self.refused += o.refused;
        self.unanswered += o.unanswered;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.first_ts = self.first_ts.min(o.first_ts);
        self.last_ts = self.last_ts.max(o.last_ts);
        for (a, b) in self.bases.iter_mut().zip(o.bases) {
            *a += b;
        }
    }
}
