//! The binary's one error type: what to print and the exit code, returned up to `main`, which
//! is the only place that prints it and exits.

use std::fmt::Display;

/// Exit codes (README, "Exit codes"): 0 ok, 1 findings at or above --fail-on or a change gate
/// holds, 2 usage or input error, 3 a capture was truncated or corrupt (everything before the
/// damage was reported).
pub const EXIT_FAIL_ON: u8 = 1;
pub const EXIT_INPUT: u8 = 2;
pub const EXIT_CORRUPT: u8 = 3;

/// A command's failure: messages for stderr (each printed as `flowaudit: MESSAGE`, possibly
/// none when they were printed already) and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub lines: Vec<String>,
}

impl CliError {
    /// An input or usage error (exit 2) with one message.
    pub fn input(message: impl Display) -> CliError {
        CliError {
            code: EXIT_INPUT,
            lines: vec![message.to_string()],
        }
    }

    /// An input error (exit 2) with one message per line, e.g. each bad line of a file.
    pub fn input_lines(lines: Vec<String>) -> CliError {
        CliError {
            code: EXIT_INPUT,
            lines,
        }
    }

    /// Exit with `code` and one message.
    pub fn with_code(code: u8, message: impl Display) -> CliError {
        CliError {
            code,
            lines: vec![message.to_string()],
        }
    }

    /// Exit with `code`, nothing more to print.
    pub fn quiet(code: u8) -> CliError {
        CliError {
            code,
            lines: Vec::new(),
        }
    }

    /// Prints the messages; the exit code for `main`.
    pub fn report(self) -> u8 {
        for l in &self.lines {
            eprintln!("flowaudit: {l}");
        }
        self.code
    }
}

/// What a command returns: the exit code of a run that finished (0, or 1 for a gate, 3 for a
/// damaged capture whose reports were still written), or the error that stopped it.
pub type CmdResult = Result<u8, CliError>;
