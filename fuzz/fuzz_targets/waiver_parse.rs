//! A waiver file (`--waivers`): parse it, then match, list and describe every waiver.
#![no_main]
use libfuzzer_sys::fuzz_target;

use flowaudit::audit::catalog::Roles;
use flowaudit::decode::Addr;
use flowaudit::audit::waiver::{describe, Date, ServiceRef, Waivers};

fn roles() -> &'static Roles {
    static R: std::sync::OnceLock<Roles> = std::sync::OnceLock::new();
    R.get_or_init(Roles::builtin)
}

fuzz_target!(|data: &[u8]| {
    let roles = roles();
    let text = String::from_utf8_lossy(data);
    let today = Date {
        year: 2026,
        month: 1,
        day: 1,
    };
    match Waivers::parse("waivers.csv", &text, roles) {
        Ok(w) => {
            let client_roles = vec!["backup-server".to_string()];
            let server_roles: Vec<String> = Vec::new();
            for (proto, port) in [("tcp", Some(443)), ("udp", Some(53)), ("icmp", None)] {
                let s = ServiceRef {
                    client: Addr::v4([10, 1, 0, 20]),
                    server: Addr::v4([10, 1, 0, 30]),
                    proto,
                    port,
                    client_roles: &client_roles,
                    server_roles: &server_roles,
                };
                let _ = w.find(&s, today);
            }
            let _ = w.expiring(today);
            let _ = w.expired(today);
            for x in &w.list {
                let _ = describe(x, &w.file, today);
                assert!(x.line >= 1);
            }
        }
        Err(problems) => {
            for p in problems {
                assert!(p.to_string().starts_with("waivers.csv:"), "{p}");
            }
        }
    }
    // Dates: what parses prints back the same, and day numbers round-trip.
    for line in text.lines().take(64) {
        if let Ok(d) = Date::parse(line) {
            assert_eq!(d.to_string(), line);
            assert_eq!(Date::from_days(d.days()), d);
        }
    }
});
