//! report.html in a real browser: the demo audit's page is rendered by headless Chromium, which
//! must log nothing to the console (script errors, refused fetches), and the rendered DOM must
//! show the counts this test takes from the demo's CSV reports (services.csv, findings.csv,
//! rules.csv, inventory.csv), counted here. Also: hostile inventory names stay text, nothing is
//! fetched from the network, and the page is byte-identical whatever `--threads`.
//!
//! Without Chromium (Debian package `chromium`) the browser tests skip with a message, except
//! under `CI=true`, where they fail.

mod common;

use common::{read_csv, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_flowaudit");
const PCAP: &str = "fixtures/demo/backup-window.pcap";
const INVENTORY: &str = "fixtures/demo/hosts.csv";

/// Audits the demo capture with `inventory` into `dir`.
fn audit(dir: &Path, inventory: &Path, threads: &str) {
    let out = Command::new(BIN)
        .args(["audit", PCAP, "-q", "-j", threads, "-I"])
        .arg(inventory)
        .arg("-o")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The headless browser, or None when it is missing and this is not CI.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        let why = "chromium is not installed (Debian: apt-get install chromium)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{why}; CI must run the browser tests");
        }
        eprintln!("skipping the browser test: {why}");
    }
    found
}

/// What the browser made of a page: the DOM after its scripts ran, and every console message.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

fn render(browser: &Path, file: &Path, query: &str) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}{query}", file.canonicalize().unwrap().display());
    let out = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed on {url}: {stderr}",
        browser.display()
    );
    // Chromium logs every console message (errors, uncaught exceptions, Content-Security-Policy
    // refusals) as `...:INFO:CONSOLE(line)] "message", source: ...`.
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(dom.contains("</html>"), "no DOM for {url}: {stderr}");
    Rendered { dom, console }
}

/// Text with the entities the serializer writes turned back.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The markup from the start tag holding `id="ID"` to the next `end` (e.g. `</tr>`).
fn element<'a>(dom: &'a str, id: &str, end: &str) -> &'a str {
    let at = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id}"));
    let start = dom[..at].rfind('<').unwrap();
    let stop = dom[at..]
        .find(end)
        .map_or(dom.len(), |i| at + i + end.len());
    &dom[start..stop]
}

/// The text of the element with that id (one without child elements).
fn text_of(dom: &str, id: &str) -> String {
    let e = element(dom, id, "<");
    let open = e.find('>').unwrap() + 1;
    unescape(&e[open..e.len() - 1])
}

/// The texts of the `tag` cells (`td` or `th`) of one table row, markup stripped.
fn cells(row: &str, tag: &str) -> Vec<String> {
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = row;
    // `<td>` or `<td attributes>`, not `<thead>`.
    let start = |s: &str| {
        [format!("<{tag}>"), format!("<{tag} ")]
            .iter()
            .filter_map(|p| s.find(p.as_str()))
            .min()
    };
    while let Some(i) = start(rest) {
        let body_start = i + rest[i..].find('>').unwrap() + 1;
        let body_end = body_start + rest[body_start..].find(&close).unwrap();
        out.push(strip_tags(&rest[body_start..body_end]));
        rest = &rest[body_end..];
    }
    out
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
}

/// The value of `name="..."` in a start tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(unescape(&tag[i..i + tag[i..].find('"')?]))
}

/// The part of the DOM between `from` and the next `to`.
fn between<'a>(dom: &'a str, from: &str, to: &str) -> &'a str {
    let i = dom
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the page"));
    &dom[i..i + dom[i..].find(to).unwrap()]
}

/// Counts from the demo's CSV reports, by the documented schemas (docs/reports.md).
struct Expected {
    /// (verdict, outcome) -> services.
    services: BTreeMap<(String, String), u64>,
    /// severity -> (findings, host pairs).
    severities: BTreeMap<String, (u64, u64)>,
    findings: usize,
    /// product -> (used, unused) rule instances.
    products: BTreeMap<String, (u64, u64)>,
    /// (client role, server role) -> (services, worst verdict, subjects of its findings).
    matrix: BTreeMap<(String, String), (u64, String, BTreeSet<String>)>,
}

/// A host's roles for the matrix: the inventory's roles without those that are another's
/// family. In the demo inventory only vbr01 lists a role with its family: `backup-server` is
/// the family of `windows-backup-server` (docs/roles.md's family tree); no other role listed
/// for one host there is an ancestor of another.
fn matrix_roles(inventory: &[Row], addr: &str) -> Vec<String> {
    let Some(row) = inventory.iter().find(|r| r["address"] == addr) else {
        return vec!["(not in inventory)".into()];
    };
    let roles: Vec<&str> = row["roles"].split(';').collect();
    roles
        .iter()
        .filter(|&&r| !(r == "backup-server" && roles.contains(&"windows-backup-server")))
        .map(|r| r.to_string())
        .collect()
}

/// Verdicts from best to worst, as the matrix colours them.
const WORST_LAST: [&str; 5] = [
    "documented",
    "unknown-host",
    "reverse",
    "role-mismatch",
    "undocumented",
];

fn expected(dir: &Path) -> Expected {
    let services = read_csv(&dir.join("services.csv"));
    let findings = read_csv(&dir.join("findings.csv"));
    let rules = read_csv(&dir.join("rules.csv"));
    let inventory = read_csv(&dir.join("inventory.csv"));
    let mut e = Expected {
        services: BTreeMap::new(),
        severities: BTreeMap::new(),
        findings: findings.len(),
        products: BTreeMap::new(),
        matrix: BTreeMap::new(),
    };
    for s in &services {
        *e.services
            .entry((s["verdict"].clone(), s["outcome"].clone()))
            .or_default() += 1;
        // A service gives a finding unless it is documented and established; the finding's
        // subject is `client group -> server group proto/port`.
        let finding = (s["verdict"] != "documented" || s["outcome"] != "established").then(|| {
            format!(
                "{} -> {} {}/{}",
                s["client_group"], s["server_group"], s["proto"], s["server_port"]
            )
        });
        for c in matrix_roles(&inventory, &s["client_addr"]) {
            for sv in matrix_roles(&inventory, &s["server_addr"]) {
                let cell = e.matrix.entry((c.clone(), sv)).or_insert((
                    0,
                    "documented".into(),
                    BTreeSet::new(),
                ));
                cell.0 += 1;
                let rank = |v: &str| WORST_LAST.iter().position(|w| *w == v).unwrap();
                if rank(&s["verdict"]) > rank(&cell.1) {
                    cell.1 = s["verdict"].clone();
                }
                cell.2.extend(finding.clone());
            }
        }
    }
    for f in &findings {
        let s = e.severities.entry(f["severity"].clone()).or_default();
        s.0 += 1;
        s.1 += f["host_pairs"].parse::<u64>().unwrap();
    }
    for r in &rules {
        let p = e.products.entry(r["product"].clone()).or_default();
        match r["status"].as_str() {
            "used" => p.0 += 1,
            "unused" => p.1 += 1,
            other => panic!("status {other}"),
        }
    }
    e
}

fn demo_report() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    audit(dir.path(), Path::new(INVENTORY), "2");
    dir
}

#[test]
fn demo_report_renders_without_console_messages_and_shows_the_csv_counts() {
    let Some(browser) = chromium() else { return };
    let dir = demo_report();
    let page = render(&browser, &dir.path().join("report.html"), "");
    assert_eq!(page.console, Vec::<String>::new(), "console messages");
    let dom = &page.dom;
    let e = expected(dir.path());

    // The capture window: `TZ=UTC tcpdump -tttt -r fixtures/demo/backup-window.pcap` prints
    // 2026-01-01 00:00:00.000000 for the first packet and 00:00:10.658000 for the last.
    assert_eq!(text_of(dom, "first-packet"), "2026-01-01T00:00:00.000Z");
    assert_eq!(text_of(dom, "last-packet"), "2026-01-01T00:00:10.658Z");
    assert_eq!(text_of(dom, "services-total"), "22");
    assert_eq!(text_of(dom, "inventory-entries"), "10");

    // Services by verdict and outcome, as services.csv counts them.
    let mut all = 0;
    for v in WORST_LAST {
        let mut total = 0;
        for o in ["established", "refused", "unanswered"] {
            let n = e
                .services
                .get(&(v.to_string(), o.to_string()))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                text_of(dom, &format!("sv-{v}-{o}")),
                n.to_string(),
                "{v} {o}"
            );
            total += n;
        }
        assert_eq!(text_of(dom, &format!("sv-{v}-total")), total.to_string());
        all += total;
    }
    assert_eq!(all, 22);
    assert_eq!(text_of(dom, "sv-all-total"), all.to_string());

    // Findings per severity, and the script's count of the rows shown (it ran).
    for sev in ["high", "medium", "low", "info"] {
        let (n, pairs) = e.severities.get(sev).copied().unwrap_or((0, 0));
        assert_eq!(text_of(dom, &format!("fs-{sev}")), n.to_string(), "{sev}");
        assert_eq!(
            text_of(dom, &format!("fh-{sev}")),
            pairs.to_string(),
            "{sev}"
        );
    }
    assert_eq!(e.findings, 46);
    assert_eq!(
        text_of(dom, "shown"),
        format!("{0} of {0} findings shown", e.findings)
    );
    let rows = between(dom, "<table class=\"findings\">", "</table>");
    assert_eq!(rows.matches("<tr id=\"f-").count(), e.findings);

    // Coverage per product, as rules.csv counts its rows.
    let cov = between(dom, "<table class=\"coverage\">", "</table>");
    let mut shown: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in cov.split("<tr id=\"cov-").skip(1) {
        let c = cells(row, "td");
        let total: u64 = c[1].parse().unwrap();
        let (used, unused) = (c[2].parse().unwrap(), c[3].parse().unwrap());
        assert_eq!(total, used + unused, "{}", c[0]);
        shown.insert(c[0].clone(), (used, unused));
    }
    assert_eq!(shown, e.products);
    // Unused rules are folded: one closed <details> per product that has any.
    let folded = dom.matches("<summary>Documented but unused:").count();
    assert_eq!(
        folded,
        e.products.values().filter(|p| p.1 > 0).count(),
        "folded unused rules"
    );

    check_matrix(dom, &e);
    check_internal_links(dom, &e);
}

/// The role matrix: each cell's services and worst verdict, and the findings it links to.
fn check_matrix(dom: &str, e: &Expected) {
    let table = between(dom, "<table class=\"matrix\">", "</table>");
    let head = between(table, "<thead>", "</thead>");
    let servers: Vec<String> = cells(head, "th").into_iter().skip(1).collect();
    let mut got: BTreeMap<(String, String), (u64, String, BTreeSet<String>)> = BTreeMap::new();
    let body = between(table, "<tbody>", "</tbody>");
    for row in body.split("<tr>").skip(1) {
        let client = cells(row, "th").remove(0);
        for (i, td) in row.split("<td").skip(1).enumerate() {
            let Some(n) = attr(td, "data-services") else {
                continue;
            };
            let worst = attr(td, "data-worst").unwrap();
            assert!(td.contains(&format!("<b>{n}</b>")), "cell text {td}");
            assert!(td.contains(&format!("v-{worst}")), "cell colour {td}");
            let target = attr(td, "href").unwrap();
            let item = element(dom, &target[1..], "</li>");
            let subjects: BTreeSet<String> = item
                .split("href=\"#")
                .skip(1)
                .map(|h| {
                    let id = &h[..h.find('"').unwrap()];
                    cells(element(dom, id, "</tr>"), "td")[2].clone()
                })
                .collect();
            got.insert(
                (client.clone(), servers[i].clone()),
                (n.parse().unwrap(), worst, subjects),
            );
        }
    }
    assert_eq!(got, e.matrix);
    // Worked by hand from the demo plan: vbr01's refused tcp/6160 to proxy01 shows in both of
    // proxy01's roles, and the cell is framed as a documented service that failed.
    let cell = &e.matrix[&("windows-backup-server".into(), "backup-proxy".into())];
    assert_eq!(cell.0, 2);
    assert_eq!(
        cell.2,
        BTreeSet::from(["vbr01 -> proxy01 tcp/6160".to_string()])
    );
}

/// Every `href="#x"` has an element `id="x"`: the five of the navigation, one per matrix cell
/// and one per finding of each cell.
fn check_internal_links(dom: &str, e: &Expected) {
    let mut n = 0;
    for h in dom.split("href=\"#").skip(1) {
        let id = &h[..h.find('"').unwrap()];
        assert!(
            dom.contains(&format!(" id=\"{id}\"")),
            "link to #{id} leads nowhere"
        );
        n += 1;
    }
    let per_cell: usize = e.matrix.values().map(|c| c.2.len()).sum();
    assert_eq!(n, 5 + e.matrix.len() + per_cell);
}

#[test]
fn the_filters_hide_rows_as_the_address_asks() {
    let Some(browser) = chromium() else { return };
    let dir = demo_report();
    let e = expected(dir.path());
    let high = e.severities["high"].0;
    let page = render(&browser, &dir.path().join("report.html"), "?severity=high");
    assert_eq!(page.console, Vec::<String>::new());
    assert_eq!(
        text_of(&page.dom, "shown"),
        format!("{high} of {} findings shown", e.findings)
    );
    let rows = between(&page.dom, "<table class=\"findings\">", "</table>");
    let visible: Vec<&str> = rows
        .split("<tr id=\"f-")
        .skip(1)
        .filter(|r| !r[..r.find('>').unwrap()].contains(" hidden"))
        .collect();
    assert_eq!(visible.len() as u64, high);
    assert!(visible.iter().all(|r| r.contains("data-severity=\"high\"")));

    // Kinds combine with severities: the one undocumented finding among medium ones.
    let page = render(
        &browser,
        &dir.path().join("report.html"),
        "?severity=medium&kind=undocumented",
    );
    assert_eq!(
        text_of(&page.dom, "shown"),
        format!("1 of {} findings shown", e.findings)
    );
}

#[test]
fn the_console_check_sees_script_errors_and_refused_fetches() {
    // The oracle of the tests above: a page with an uncaught error and a fetch that the same
    // Content-Security-Policy refuses must give console messages.
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
         </head><body><img src=\"https://example.com/x.png\"><script>null.x;</script></body></html>",
    )
    .unwrap();
    let r = render(&browser, &page, "");
    assert!(
        r.console.iter().any(|l| l.contains("Uncaught TypeError")),
        "{:?}",
        r.console
    );
    assert!(
        r.console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{:?}",
        r.console
    );
}

/// The demo inventory with hostile names for admin01 and proxy01.
const HOSTILE_SCRIPT: &str = "<script>alert(1)</script>";
const HOSTILE_ATTR: &str = "\"><img src=x onerror=alert(2)>&amp;";

fn hostile_report() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let inv = std::fs::read_to_string(INVENTORY).unwrap();
    let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let inv = inv
        .replace("admin01", &quoted(HOSTILE_SCRIPT))
        .replace("proxy01", &quoted(HOSTILE_ATTR));
    let path = dir.path().join("hostile.csv");
    std::fs::write(&path, inv).unwrap();
    audit(&dir.path().join("report"), &path, "2");
    dir
}

#[test]
fn hostile_inventory_names_stay_text() {
    let dir = hostile_report();
    let html = std::fs::read_to_string(dir.path().join("report/report.html")).unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&amp;amp;"));
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("<img"));
    let Some(browser) = chromium() else { return };
    let page = render(&browser, &dir.path().join("report/report.html"), "");
    assert_eq!(page.console, Vec::<String>::new(), "console messages");
    assert_eq!(page.dom.matches("<script").count(), 1);
    assert!(!page.dom.contains("<img"));
    // The names read as written, in the inventory table and in the findings' subjects.
    let inv = between(&page.dom, "<table class=\"inventory\">", "</table>");
    let names: Vec<String> = inv
        .split("<tr>")
        .skip(2)
        .map(|r| cells(r, "td")[2].clone())
        .collect();
    assert!(names.contains(&HOSTILE_SCRIPT.to_string()), "{names:?}");
    assert!(names.contains(&HOSTILE_ATTR.to_string()), "{names:?}");
    let findings = between(&page.dom, "<table class=\"findings\">", "</table>");
    let subjects: Vec<String> = findings
        .split("<tr id=\"f-")
        .skip(1)
        .map(|r| cells(r, "td")[2].clone())
        .collect();
    let refused = format!("vbr01 -> {HOSTILE_ATTR} tcp/6160");
    assert!(subjects.contains(&refused), "{subjects:?}");
}

#[test]
fn nothing_is_fetched_from_the_network() {
    let dir = demo_report();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    // The browser may fetch nothing at all, whatever a later change adds.
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
    ));
    assert!(!html.contains("url("), "CSS fetch");
    assert!(!html.contains("@import"), "CSS import");
    // No tag names an address: no src at all, and links only within the page.
    let mut rest = html.as_str();
    let mut tags = 0;
    while let Some(i) = rest.find('<') {
        let tag = &rest[i..i + rest[i..].find('>').unwrap()];
        assert!(!tag.contains("://"), "{tag}");
        assert!(!tag.contains(" src="), "{tag}");
        if let Some(h) = attr(tag, "href") {
            assert!(h.starts_with('#'), "{tag}");
        }
        tags += 1;
        rest = &rest[i + tag.len()..];
    }
    assert!(tags > 500, "only {tags} tags");
}

#[test]
fn report_is_byte_identical_for_any_thread_count() {
    let one = tempfile::tempdir().unwrap();
    let seven = tempfile::tempdir().unwrap();
    audit(one.path(), Path::new(INVENTORY), "1");
    audit(seven.path(), Path::new(INVENTORY), "7");
    let a = std::fs::read(one.path().join("report.html")).unwrap();
    let b = std::fs::read(seven.path().join("report.html")).unwrap();
    assert!(a == b, "report.html differs between --threads 1 and 7");
    // Written atomically: no temporary file is left beside it.
    for e in std::fs::read_dir(one.path()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "left behind: {name}");
    }
}
