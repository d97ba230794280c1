//! Regression tests for the text parsers fuzzed in fuzz/ (catalog, inventory, waivers): what the
//! fuzzers and a review of their messages found. Every problem names the file and the line it
//! is on (issue item 5).

use flowaudit::audit::catalog::{Catalogs, Roles};
use flowaudit::audit::inventory::{Cidr, Inventory};
use flowaudit::audit::waiver::Waivers;

/// A catalog whose header row is wrong: the problem names the header's line (4 here, after two
/// comment lines and a blank one), not line 0, which is no line of the file.
#[test]
fn a_wrong_catalog_header_is_reported_on_its_line() {
    let text = "# catalog: mine\n# product: Mine\n\nid,section,from,to\nx,y\n";
    let problems = Catalogs::lint("mine.csv", text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, 4, "{}", problems[0]);
    assert!(
        problems[0].message.contains("header must be"),
        "{}",
        problems[0]
    );
}

/// Every other catalog problem already names its line.
#[test]
fn catalog_problems_name_their_lines() {
    let text = "# catalog: mine\n# product: Mine\n\
        id,section,from_role,to_role,protocol,ports,qualifiers,host_pattern,ref,note,decision,source_line\n\
        r1,s,nosuchrole,backup-server,tcp,443,,,,note,,12\n\
        r2,s,backup-server,backup-proxy,tcp,99999,,,,note,,x\n\
        r3,s,backup-server,backup-proxy,tcp,\"443\n";
    let problems = Catalogs::lint("mine.csv", text);
    let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
    assert!(lines.iter().all(|l| *l >= 4), "{problems:?}");
    assert!(problems
        .iter()
        .any(|p| p.line == 4 && p.message.contains("nosuchrole")));
    assert!(problems
        .iter()
        .any(|p| p.line == 5 && p.message.contains("99999")));
}

/// Inventory and waiver problems name their lines, also after comments, blank lines and a
/// quoted cell spanning lines; odd but valid blocks print as they parse.
#[test]
fn inventory_and_waiver_problems_name_their_lines() {
    let roles = Roles::builtin();
    let inv = "address,roles,name\n# comment\n\n10.0.0.1,backup-server,\"two\nlines\"\n10.0.0.300,backup-server,x\n";
    let problems = Inventory::parse("hosts.csv", inv, &roles).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, 6, "{}", problems[0]);
    let w = "client,server,proto,ports,reason,owner,expires\n\n# c\n*,*,tcp,443,\"a\nb\",me,2026-02-30\n";
    let problems = Waivers::parse("w.csv", w, &roles).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, 4, "{}", problems[0]);
    for block in [
        "::ffff:0.0.0.0/96",
        "::ffff:10.0.0.0/104",
        "::/0",
        "0.0.0.0/0",
    ] {
        let c = Cidr::parse(block).unwrap();
        assert_eq!(Cidr::parse(&c.to_string()), Ok(c), "{block} shown as {c}");
    }
}
