//! flowaudit: rebuilds bidirectional flows from captures and audits them against vendor port
//! catalogs. One module per pipeline stage:
//!
//! - [`capture`]: pcap/pcapng readers and writers
//! - [`decode`]: frames to fixed-size packet summaries
//! - [`flow`]: flow keys, direction, TCP state, one shard's flow table
//! - [`flowmap`]: the key -> flow map under each shard, with prefetching
//! - [`flowinput`]: flow records (flows.csv, Zeek conn.log, NetFlow/IPFIX) made into flows
//! - [`flowstore`]: finished flows, spilled to sorted runs on disk and merged back in order
//! - [`engine`]: the parallel, deterministic pipeline over batches
//! - [`run`]: driving the engine over files
//! - [`setup`]: what an audit needs besides the flows (catalogs, inventory, waivers, options)
//! - [`report`]: CSV/JSONL writers
//! - [`summary`]: the human summary of a run
//! - [`synth`]: the deterministic capture generator used by benchmarks and demos
//! - [`diff`]: comparing two audits' report directories, and the change gates
//! - [`waiver`]: accepted exceptions to findings, with expiry dates
//! - `bpf` (feature `live`): tcpdump filter expressions applied to capture files, by libpcap
//! - [`policy`]: firewall rulesets from an audit's report directory
//! - [`firewall`]: an existing nftables/iptables ruleset checked against the observed traffic

pub mod audit;
#[cfg(feature = "live")]
pub mod bpf;
pub mod capture;
pub mod catalog;
pub mod csvtext;
pub mod decode;
pub mod decode_summary;
pub mod diff;
pub mod engine;
pub mod firewall;
pub mod flow;
pub mod flowinput;
pub mod flowmap;
pub mod flowstore;
pub mod inventory;
#[cfg(feature = "live")]
pub mod live;
pub mod names;
pub mod policy;
pub mod report;
pub mod run;
pub mod setup;
pub mod summary;
pub mod synth;
pub mod waiver;
