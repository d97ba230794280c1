//! The decoder's part of the run summary: mirror sources, packets `--decap` left in their outer
//! flow, and connections split across VLANs.

use std::fmt::Write;

use crate::engine::Stats;

/// Appends the decoder's lines to the summary `t` (nothing when there is nothing to say).
pub fn render(s: &Stats, t: &mut String) {
    if !s.mirrors.is_empty() || s.mirrors_other > 0 {
        let total: u64 = s.mirrors.values().sum::<u64>() + s.mirrors_other;
        let _ = writeln!(
            t,
            "mirrored packets: {total} (unwrapped from their mirror transport; the outer flow to the collector is not kept)"
        );
        for (m, n) in &s.mirrors {
            let session = match m.session {
                0 => String::new(),
                id => format!(" session {id}"),
            };
            let _ = writeln!(t, "  {n:>10}  {} from {}{session}", m.kind.label(), m.from);
        }
        if s.mirrors_other > 0 {
            let _ = writeln!(t, "  {:>10}  from other sources", s.mirrors_other);
        }
    }
    if !s.decap_kept.is_empty() {
        let total: u64 = s.decap_kept.values().sum();
        let _ = writeln!(
            t,
            "tunnel packets kept in their outer flow: {total} (--decap could not decode the payload)"
        );
        for (why, n) in &s.decap_kept {
            let _ = writeln!(t, "  {n:>10}  {}", why.label());
        }
    }
    if s.capped_wire_len > 0 {
        let _ = writeln!(
            t,
            "records claiming an original length above {} bytes: {} (damaged headers; each counted as {} bytes)",
            crate::engine::MAX_WIRE_LEN,
            s.capped_wire_len,
            crate::engine::MAX_WIRE_LEN
        );
    }
    if s.vlan_split_tuples > 0 {
        let _ = writeln!(
            t,
            "connections split across VLANs: {} (each direction of one 5-tuple was seen only on a different VLAN: a routed trunk? --vlan-key none joins them)",
            s.vlan_split_tuples
        );
    }
}
