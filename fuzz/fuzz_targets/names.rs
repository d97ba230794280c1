//! The server-name parsers (src/names.rs), which read attacker-controlled payloads: byte 0
//! picks the parser (even: DNS response from UDP port 53, odd: TLS ClientHello), the rest is
//! the payload. Names must come out as printable ASCII (bytes outside it escaped as `\xNN`),
//! DNS names at most 255 bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

use flowaudit::decode::names::{dns_answers, tls_sni};

fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        for (_, name) in dns_answers(payload) {
            assert!(printable(&name), "{name:?}");
            assert!(name.len() <= 255, "{} bytes", name.len());
        }
    } else if let Some(name) = tls_sni(payload) {
        assert!(printable(&name), "{name:?}");
    }
});
