//! Habits people bring from tcpdump and Zeek (`-r FILE`, `-f 'BPF'`, `-c N`, `-n`), shell
//! completions and the man page, the exit-1 explanation of `audit --fail-on`, and checks that
//! output paths are usable before a long run starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, ValueEnum};

use flowaudit::engine::run::{Selected, Selection};

use crate::cli::error::{CliError, CmdResult, EXIT_INPUT};

/// The error for an output that could not be written (`None`: stdout).
pub fn cannot_write(output: Option<&Path>, e: std::io::Error) -> CliError {
    CliError::input(format!(
        "cannot write {}: {e}",
        output
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "stdout".into())
    ))
}

/// A command line clap refused, in the same `flowaudit: ...` form as every other error (exit
/// 2); --help and --version print as clap prints them (exit 0).
pub fn usage_error(e: clap::Error) -> u8 {
    use clap::error::ErrorKind::*;
    if matches!(
        e.kind(),
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // As clap's own exit does, but returning the code to main: a closed pipe
        // (`--help | head`) is no error, any other failure to print is.
        return match e.print() {
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => EXIT_INPUT,
            _ => e.exit_code() as u8,
        };
    }
    let text = e.render().to_string();
    eprint!(
        "flowaudit: {}",
        text.strip_prefix("error: ").unwrap_or(&text)
    );
    EXIT_INPUT
}

/// How `flows` and `audit` pick their input, the way tcpdump does.
#[derive(Args, Clone)]
pub struct ReadArgs {
    /// Read this capture file, as tcpdump -r does (repeatable; the same as naming it as an
    /// argument; - is stdin). Files given with -r come before the other arguments.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,
    /// Keep only packets that match this capture filter, in tcpdump (BPF) syntax, e.g.
    /// 'tcp port 443 or udp port 53'. Compiled by libpcap: needs a build with --features live.
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// Read only the first COUNT packets (counted after -f, as tcpdump -c counts).
    #[arg(short = 'c', long = "count", value_name = "COUNT")]
    pub count: Option<u64>,
    /// Accepted for tcpdump habit and changes nothing: flowaudit never looks names up. Names in
    /// reports come only from the inventory and from DNS answers and TLS server names in the
    /// capture itself.
    #[arg(short = 'n')]
    pub numeric: bool,
}

impl ReadArgs {
    /// The captures to read: -r files, then the positional ones.
    pub fn captures(&self, positional: &[PathBuf]) -> Vec<PathBuf> {
        self.read.iter().chain(positional).cloned().collect()
    }

    /// The packet selection for the run; Err is the message for a filter that cannot be used.
    pub fn selection(&self) -> Result<Selection, String> {
        Ok(Selection {
            filter: match &self.filter {
                None => None,
                Some(expr) => Some(compile_filter(expr)?),
            },
            max_packets: self.count,
        })
    }

    /// After the run: what -f and -c did, and any link type the filter could not judge.
    /// Returns false when the filter failed on some packets (they were left out).
    pub fn report(&self, sel: &Selected, quiet: bool) -> bool {
        for e in &sel.filter_errors {
            eprintln!("flowaudit: {e}; packets of that link type were left out");
        }
        if !quiet && (self.filter.is_some() || self.count.is_some()) {
            eprintln!(
                "selected {} of {} packets read{}{}",
                sel.kept,
                sel.read,
                self.filter
                    .as_ref()
                    .map(|f| format!(" (filter {f:?})"))
                    .unwrap_or_default(),
                self.count
                    .map(|c| format!(" (count {c})"))
                    .unwrap_or_default()
            );
        }
        sel.filter_errors.is_empty()
    }

    /// A tcpdump user may write the filter where tcpdump takes it, after the options:
    /// `flows -r x.pcap 'tcp port 443'`. Says what to do instead of "cannot open".
    pub fn check_positional(&self, positional: &[PathBuf]) -> Result<(), String> {
        if self.read.is_empty() {
            return Ok(());
        }
        for p in positional {
            let s = p.to_string_lossy();
            if !p.exists() && s != "-" {
                return Err(format!(
                    "{s}: no such capture file; to filter packets as tcpdump does, give the \
                     expression with -f: -f '{s}'"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(feature = "live")]
fn compile_filter(expr: &str) -> Result<Box<dyn flowaudit::engine::run::PacketFilter>, String> {
    Ok(Box::new(flowaudit::capture::bpf::Bpf::new(expr)?))
}

#[cfg(not(feature = "live"))]
fn compile_filter(expr: &str) -> Result<Box<dyn flowaudit::engine::run::PacketFilter>, String> {
    Err(format!(
        "-f {expr:?}: capture filters are compiled by libpcap, which this build does not \
         include; build with it: apt-get install libpcap-dev, then cargo build --release \
         --features live"
    ))
}

/// `flowaudit sniff` in a build without the `live` feature: says how to get it.
#[cfg(not(feature = "live"))]
#[derive(Args)]
pub struct NoLiveArgs {
    /// The options of `sniff` (see a build with --features live).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<std::ffi::OsString>,
}

#[cfg(not(feature = "live"))]
pub fn cmd_no_live(_: NoLiveArgs) -> CmdResult {
    Err(CliError::input(
        "sniff (live capture) is not in this build: it links libpcap. Install libpcap's \
         headers (apt-get install libpcap-dev), then build with the live feature: cargo build \
         --release --features live (or cargo install --path . --features live)",
    ))
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Completions on stdout, e.g. `flowaudit completions bash > /etc/bash_completion.d/flowaudit`.
pub fn cmd_completions(a: CompletionsArgs) -> CmdResult {
    use clap_complete::Shell as S;
    let shell = match a.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    let mut cmd = crate::Cli::command();
    clap_complete::generate(shell, &mut cmd, "flowaudit", &mut std::io::stdout());
    Ok(0)
}

#[derive(Args)]
pub struct ManArgs {
    /// Write flowaudit.1 and one page per command (flowaudit-audit.1, ...) into this directory
    /// instead of printing flowaudit.1 on stdout.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
}

/// The man page (roff), e.g. `flowaudit man | man -l -`.
pub fn cmd_man(a: ManArgs) -> CmdResult {
    let cmd = crate::Cli::command();
    let result = match &a.output {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
        Some(dir) => {
            check_output_dir(dir, "-o").map_err(CliError::input)?;
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir))
        }
    };
    result
        .map(|()| 0)
        .map_err(|e| CliError::input(format!("cannot write the man page: {e}")))
}

/// `90s`, `30m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with s, m, h or d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// `1G`, `500M`, `64K`, or plain bytes.
#[cfg(feature = "live")]
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with K, M or G"))?;
    let mul = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{s:?}: unit must be K, M or G")),
    };
    Ok(n * mul)
}

/// The progress bar of a run over files, on stderr when it is a terminal and `wanted`; a
/// spinner when the inputs' size is unknown (.gz, stdin).
pub fn progress_bar(wanted: bool, total: Option<u64>) -> Option<indicatif::ProgressBar> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    if !wanted || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} read, {binary_bytes_per_sec}, {msg}")
                .expect("valid template"),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}

/// Why `audit --fail-on` exits 1, or None when it does not.
pub fn fail_on_reason(counted: usize, waived: usize, threshold: &str) -> Option<String> {
    if counted == 0 {
        return None;
    }
    let waived = if waived > 0 {
        format!("; {waived} more waived, not counted")
    } else {
        String::new()
    };
    Some(format!(
        "exit 1: {counted} finding{} at or above {threshold} (--fail-on {threshold}){waived}",
        if counted == 1 { "" } else { "s" }
    ))
}

/// A report directory, before a long run: a directory (or a path one can be made at) that takes
/// new files. Nothing is created: a run that fails later leaves no empty directory behind.
/// `flag` names the option the path came from.
pub fn check_output_dir(dir: &Path, flag: &str) -> Result<(), String> {
    let d = dir.display();
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "{flag} {d}: exists and is a file, but the reports are several files written into a \
             directory: give a directory (new or existing), or move the file away"
        ));
    }
    // The directory itself, or the nearest existing directory it would be made in.
    let mut at = dir;
    while !at.exists() {
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
    }
    if !at.is_dir() {
        return Err(format!(
            "{flag} {d}: cannot be made: {} is a file",
            at.display()
        ));
    }
    tempfile::tempfile_in(at).map_err(|e| {
        format!(
            "{flag} {d}: cannot write in {}: {e}; give a directory you can write",
            at.display()
        )
    })?;
    Ok(())
}

/// A report file, before a long run: not a directory, in a directory that exists and takes new
/// files (reports are written under a temporary name there, then renamed). `-` is stdout.
pub fn check_output_file(file: &Path, flag: &str) -> Result<(), String> {
    let f = file.display();
    if file == Path::new("-") {
        return Ok(());
    }
    if file.is_dir() {
        return Err(format!(
            "{flag} {f}: is a directory; give a file name (e.g. {})",
            file.join("report.csv").display()
        ));
    }
    // Devices and pipes (/dev/null, a FIFO) are written in place.
    if file.exists() && !file.is_file() {
        return Ok(());
    }
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "{flag} {f}: the directory {} does not exist; create it first",
            parent.display()
        ));
    }
    tempfile::tempfile_in(parent).map_err(|e| {
        format!(
            "{flag} {f}: cannot write in {}: {e}; give a path you can write",
            parent.display()
        )
    })?;
    Ok(())
}

/// A fresh directory for reports that could not be written where asked: $TMPDIR (else /tmp)
/// is writable by every user, so a capture's results are not lost with the run.
pub fn fallback_dir() -> std::io::Result<PathBuf> {
    Ok(tempfile::Builder::new()
        .prefix("flowaudit-reports-")
        .tempdir_in(std::env::temp_dir())?
        .keep())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and argument of every command says what it does (clap prints nothing for
    /// one without help, so a gap is easy to miss in review).
    #[test]
    fn every_option_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&crate::Cli::command(), "flowaudit", &mut missing);
        assert!(missing.is_empty(), "options without help: {missing:?}");
    }

    #[test]
    fn the_fail_on_reason_counts_and_names_the_threshold() {
        assert_eq!(fail_on_reason(0, 3, "high"), None);
        assert_eq!(
            fail_on_reason(2, 0, "high").unwrap(),
            "exit 1: 2 findings at or above high (--fail-on high)"
        );
        assert_eq!(
            fail_on_reason(1, 1, "low").unwrap(),
            "exit 1: 1 finding at or above low (--fail-on low); 1 more waived, not counted"
        );
    }
}
