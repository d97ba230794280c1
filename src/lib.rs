//! flowaudit: rebuilds bidirectional flows from captures and audits them against vendor port
//! catalogs. One folder per pipeline stage, in the order data flows through them:
//!
//! - [`capture`]: packets in: pcap/pcapng files (plain or gzip), live capture through libpcap
//!   (`live`, feature `live`) and tcpdump filters on files (`bpf`)
//! - [`flowinput`]: flow records in (flows.csv, Zeek conn.log, NetFlow v5/v9 and IPFIX)
//! - [`decode`]: frames to fixed-size packet summaries; server names from DNS and TLS
//!   (`names`); the decoder's part of the summary
//! - [`flow`]: flow keys, direction, TCP state, one shard's flow table (`map`), finished flows
//!   spilled to disk and merged back in order (`store`)
//! - [`engine`]: the parallel, deterministic pipeline over batches, and the one run driver
//!   (`run`) that feeds it from files, a live capture or flow records
//! - [`audit`]: flows to classified services, rule use and grouped findings; the catalogs
//!   (`catalog`), the inventory (`inventory`), waivers (`waiver`) and what an audit needs
//!   besides the flows (`setup`)
//! - [`report`]: CSV/JSONL/Markdown/HTML writers, the run summary, the report manifest
//! - [`diff`]: comparing two audits' report directories, and the change gates
//! - [`policy`]: firewall rulesets from an audit's report directory
//! - [`firewall`]: an existing nftables/iptables ruleset checked against the observed traffic
//! - [`synth`]: the deterministic capture generator used by benchmarks and demos
//! - [`csvtext`]: the comment and escaping conventions of the CSV files people write
//!
//! The modules' former top-level paths (`flowaudit::audit::catalog`, `flowaudit::engine::run`, ...) remain as
//! re-exports, so code written against them keeps building.

pub mod audit;
pub mod capture;
pub mod csvtext;
pub mod decode;
pub mod diff;
pub mod engine;
pub mod firewall;
pub mod flow;
pub mod flowinput;
pub mod policy;
pub mod report;
pub mod synth;
