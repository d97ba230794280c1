//! Any bytes as a capture file: pcap/pcapng detection, both readers, decode and the engine.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowaudit_fuzz::read_capture(data, ".pcap");
});
