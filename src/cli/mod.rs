//! The command line's parts, one file per command (`collect`, `diff`, `firewall`, `policy`,
//! `sniff`) besides `audit` and `flows` in main.rs, and what they share: the error type and
//! its exit codes, the habits of tcpdump and Zeek users (sizes, durations, output paths), the
//! audit options every auditing command takes.

pub mod collect;
pub mod diff;
pub mod error;
pub mod firewall;
pub mod habits;
pub mod policy;
pub mod setup_args;
#[cfg(feature = "live")]
pub mod sniff;
#[cfg(feature = "live")]
pub mod sniff_prep;
