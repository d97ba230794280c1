//! A host inventory (`audit --inventory`): parse it, print every block as the reports do, and
//! look addresses up.
#![no_main]
use libfuzzer_sys::fuzz_target;

use flowaudit::audit::catalog::Roles;
use flowaudit::decode::Addr;
use flowaudit::audit::inventory::{Cidr, Inventory};

fn roles() -> &'static Roles {
    static R: std::sync::OnceLock<Roles> = std::sync::OnceLock::new();
    R.get_or_init(Roles::builtin)
}

fuzz_target!(|data: &[u8]| {
    let roles = roles();
    let text = String::from_utf8_lossy(data);
    match Inventory::parse("hosts.csv", &text, roles) {
        Ok(inv) => {
            for e in &inv.entries {
                // Reports print blocks with Display; what they print must parse back.
                let shown = e.cidr.to_string();
                assert_eq!(Cidr::parse(&shown), Ok(e.cidr), "{shown}");
                let _ = inv.lookup(e.cidr.addr, roles);
                for r in &e.roles {
                    let _ = inv.holders(r, roles).count();
                }
            }
            let _ = inv.lookup(Addr::v4([10, 1, 0, 5]), roles);
        }
        Err(problems) => {
            for p in problems {
                assert!(p.to_string().starts_with("hosts.csv:"), "{p}");
            }
        }
    }
    // Each line on its own as an address block, as the inventory and waivers read them.
    for line in text.lines().take(64) {
        if let Ok(c) = Cidr::parse(line) {
            let shown = c.to_string();
            assert_eq!(Cidr::parse(&shown), Ok(c), "{line:?} shown as {shown}");
        }
    }
});
