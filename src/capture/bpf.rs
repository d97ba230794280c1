//! Capture filters in tcpdump (BPF) syntax for capture files, compiled by libpcap (cargo feature
//! `live`, which links libpcap): `flowaudit flows|audit -f 'tcp port 443' -r FILE`.
//!
//! libpcap compiles a filter for one link type, and the files of one run (or the interfaces of
//! one pcapng) may have several: a program is compiled per link type when its first packet comes.
//! The calls are made here rather than through the `pcap` crate's `BpfProgram::filter`, which
//! passes the captured length as the wire length: `greater`, `less` and `len` would then judge a
//! snaplen-cut packet by its stored bytes, unlike tcpdump.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use crate::engine::run::PacketFilter;

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut c_void,
}

#[repr(C)]
struct PktHdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[link(name = "pcap")]
extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut c_void;
    fn pcap_compile(
        p: *mut c_void,
        fp: *mut BpfProgram,
        s: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_geterr(p: *mut c_void) -> *const c_char;
    fn pcap_close(p: *mut c_void);
    fn pcap_freecode(fp: *mut BpfProgram);
    fn pcap_offline_filter(fp: *const BpfProgram, h: *const PktHdr, pkt: *const u8) -> c_int;
}

/// PCAP_NETMASK_UNKNOWN: `ip broadcast` cannot be used, as with tcpdump -r.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// One filter compiled for one link type.
struct Program(BpfProgram);

// SAFETY: the program is plain memory owned by this value; libpcap keeps no reference to it.
unsafe impl Send for Program {}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program came from a successful pcap_compile and is freed once.
        unsafe { pcap_freecode(&mut self.0) }
    }
}

/// The DLT_ value libpcap's compiler expects for a file's LINKTYPE_ value: they are equal
/// except for the few that differ between platforms (tcpdump.org's link-layer header types).
fn dlt_of(linktype: u16) -> c_int {
    match linktype {
        100 => 11, // ATM RFC 1483
        101 => 12, // raw IP: DLT_RAW on Linux
        l => l as c_int,
    }
}

/// Compiles `expr` for `linktype`.
fn compile(expr: &CStr, linktype: u16) -> Result<Program, String> {
    // SAFETY: a dead handle is only used to compile; it is closed on every path, and the error
    // text is copied before that.
    unsafe {
        let p = pcap_open_dead(dlt_of(linktype), 262_144);
        if p.is_null() {
            return Err("libpcap could not make a compiler handle".into());
        }
        let mut prog = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        let r = pcap_compile(p, &mut prog, expr.as_ptr(), 1, NETMASK_UNKNOWN);
        let result = if r == 0 {
            Ok(Program(prog))
        } else {
            Err(CStr::from_ptr(pcap_geterr(p))
                .to_string_lossy()
                .into_owned())
        };
        pcap_close(p);
        result
    }
}

/// A tcpdump filter expression, compiled per link type on demand.
pub struct Bpf {
    expr: CString,
    text: String,
    programs: HashMap<u16, Result<Program, String>>,
}

impl Bpf {
    /// Checks `expr` by compiling it for Ethernet, so that a typo fails before any reading.
    pub fn new(expr: &str) -> Result<Bpf, String> {
        let c = CString::new(expr).map_err(|_| format!("filter {expr:?} contains a NUL byte"))?;
        let ethernet = compile(&c, crate::decode::link::ETHERNET)
            .map_err(|e| format!("bad filter {expr:?}: {e}"))?;
        let mut programs = HashMap::new();
        programs.insert(crate::decode::link::ETHERNET, Ok(ethernet));
        Ok(Bpf {
            expr: c,
            text: expr.to_string(),
            programs,
        })
    }
}

impl PacketFilter for Bpf {
    fn matches(&mut self, link: u16, packet: &[u8], orig_len: u32) -> Result<bool, String> {
        let expr = &self.expr;
        let prog = self
            .programs
            .entry(link)
            .or_insert_with(|| compile(expr, link));
        let prog = prog.as_ref().map_err(|e| {
            format!(
                "filter {:?} does not apply to link type {link}: {e}",
                self.text
            )
        })?;
        let h = PktHdr {
            ts: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            caplen: packet.len() as u32,
            len: orig_len.max(packet.len() as u32),
        };
        // SAFETY: a compiled program, a header whose caplen is the buffer's length, and the
        // buffer itself; the BPF interpreter reads no further than caplen.
        Ok(unsafe { pcap_offline_filter(&prog.0, &h, packet.as_ptr()) } != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_refused_with_libpcaps_reason() {
        let e = Bpf::new("tcp prot 80").err().unwrap();
        assert!(e.starts_with("bad filter \"tcp prot 80\": "), "{e}");
    }
}
