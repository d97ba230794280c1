//! The packet decoder on one frame. The first two bytes pick the link type: byte 0 indexes the
//! link types flowaudit decodes (an index past them uses bytes 0-1 as a raw LINKTYPE value, so
//! unsupported types are covered too); bit 0 of byte 1 turns on --decap. The rest is the frame.
#![no_main]
use libfuzzer_sys::fuzz_target;

use flowaudit::decode::{decode, link, DecodeOptions, Frag, Skip};

const LINKS: [u16; 11] = [
    link::ETHERNET,
    link::RAW,
    link::IPV4,
    link::IPV6,
    link::RAW_ALT1,
    link::RAW_ALT2,
    link::NULL,
    link::LOOP,
    link::LINUX_SLL,
    link::LINUX_SLL2,
    link::NFLOG,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let link_type = LINKS
        .get(data[0] as usize % 16)
        .copied()
        .unwrap_or(u16::from_be_bytes([data[0], data[1]]));
    let frame = &data[2..];
    let opts = DecodeOptions::with_decap(data[1] & 1 != 0);
    let wire = frame.len() as u32 + (data[1] >> 1) as u32;
    let a = decode(link_type, frame, 7, wire, opts);
    // Pure: the same frame decodes the same way.
    assert_eq!(a, decode(link_type, frame, 7, wire, opts));
    match a {
        Ok(p) => {
            assert_eq!(p.ts_ns, 7);
            assert_eq!(p.wire_len, wire);
            if let Frag::Later { .. } = p.frag {
                assert_eq!((p.sport, p.dport), (0, 0), "later fragments carry no ports");
            }
        }
        Err(Skip::UnsupportedLinkType(l)) => assert_eq!(l, link_type),
        Err(_) => {}
    }
});
