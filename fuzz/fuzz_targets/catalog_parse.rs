//! A user catalog file: `flowaudit catalog lint` (parse, references, duplicates), the port
//! syntax on its own, and a role vocabulary file.
#![no_main]
use libfuzzer_sys::fuzz_target;

use flowaudit::catalog::{parse_ports, Catalogs, Roles};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for p in Catalogs::lint("fuzz.csv", &text) {
        assert!(p.to_string().starts_with("fuzz.csv:"), "{p}");
    }
    if let Ok(ranges) = parse_ports(&text) {
        for r in ranges {
            assert!(r.lo <= r.hi);
            // What a report prints parses back to the same range.
            assert_eq!(parse_ports(&r.to_string()), Ok(vec![r]));
        }
    }
    let mut roles = Roles::default();
    let mut problems = Vec::new();
    roles.parse("roles.csv", &text, &mut problems);
    let _ = roles.lint("roles.csv");
    for id in roles.defs.keys() {
        let _ = roles.with_ancestors(id);
    }
});
