//! A user catalog file: `flowaudit catalog lint` (parse, references, duplicates), the port
//! syntax on its own, and a role vocabulary file.
//!
//! `Catalogs::lint` parses the five built-in catalogs before the user's file, which is
//! input-independent and costs ~50 ms per run under AddressSanitizer (20 runs/s). So every
//! input goes through what `lint` does after that, on a copy of the built-ins parsed once
//! (`add_file`, then the duplicate check), and one input in 16 through `lint` itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use flowaudit::audit::catalog::{parse_ports, Catalogs, Roles};

fn builtin() -> &'static Catalogs {
    static B: OnceLock<Catalogs> = OnceLock::new();
    B.get_or_init(|| Catalogs::builtin(&[]).expect("built-in catalogs parse"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let problems = if data.len() % 16 == 0 {
        Catalogs::lint("fuzz.csv", &text)
    } else {
        let mut base = builtin().clone();
        let before = base.rules.len();
        let mut problems = base.add_file("fuzz.csv", &text);
        let mut seen = BTreeSet::new();
        for r in &base.rules[before..] {
            if r.via.is_none() && !seen.insert(r.id.clone()) {
                problems.push(flowaudit::audit::catalog::Problem {
                    file: "fuzz.csv".into(),
                    line: r.source_line,
                    message: format!("duplicate rule id {}", r.id),
                });
            }
        }
        problems
    };
    for p in problems {
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
    let _ = roles.lint();
    for id in roles.defs.keys() {
        let _ = roles.with_ancestors(id);
    }
});
