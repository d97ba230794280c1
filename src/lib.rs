//! flowaudit: rebuilds bidirectional flows from captures and audits them against vendor port
//! catalogs. One module per pipeline stage:
//!
//! - [`capture`]: pcap/pcapng readers and writers
//! - [`decode`]: frames to fixed-size packet summaries
//! - [`flow`]: flow keys, direction, TCP state, one shard's flow table
//! - [`flowmap`]: the key -> flow map under each shard, with prefetching
//! - [`flowstore`]: finished flows, spilled to sorted runs on disk and merged back in order
//! - [`engine`]: the parallel, deterministic pipeline over batches
//! - [`run`]: driving the engine over files
//! - [`report`]: CSV/JSONL writers
//! - [`summary`]: the human summary of a run
//! - [`synth`]: the deterministic capture generator used by benchmarks and demos
//! - [`diff`]: comparing two audits' report directories, and the change gates
//! - [`waiver`]: accepted exceptions to findings, with expiry dates
//! - [`firewall`]: an existing nftables/iptables ruleset checked against the observed traffic

pub mod audit;
pub mod capture;
pub mod catalog;
pub mod decode;
pub mod diff;
pub mod engine;
pub mod firewall;
pub mod flow;
pub mod flowmap;
pub mod flowstore;
pub mod inventory;
#[cfg(feature = "live")]
pub mod live;
pub mod names;
pub mod report;
pub mod run;
pub mod summary;
pub mod synth;
pub mod waiver;
