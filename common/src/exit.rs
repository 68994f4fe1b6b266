//! Process exit codes shared by every binary, and command-line parsing that uses them.

/// `EX_USAGE` from sysexits.h: the configuration was refused. Operators and supervisors
/// tell "fix the flags" from "the service crashed" by this code.
pub const CONFIG_ERROR: i32 = 64;

/// Prints a one-line reason for a refused configuration and exits with [`CONFIG_ERROR`].
pub fn config_error(binary: &str, reason: impl std::fmt::Display) -> ! {
    eprintln!("{binary}: configuration error: {reason}");
    std::process::exit(CONFIG_ERROR)
}

/// Parses the command line (and environment twins). `--help` and `--version` print and
/// exit 0; anything else wrong exits with [`CONFIG_ERROR`] and clap's one-line reason.
pub fn parse_or_exit<C: clap::Parser>(binary: &str) -> C {
    match C::try_parse() {
        Ok(c) => c,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                e.exit()
            }
            _ => {
                // clap spreads some reasons over several lines ("the following required
                // arguments were not provided:" + the names); keep them on one line, and
                // drop the usage and help hints.
                let text = e.to_string();
                let reason: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .take_while(|l| {
                        !l.starts_with("Usage:") && !l.starts_with("For more information")
                    })
                    .filter(|l| !l.is_empty())
                    .collect();
                let reason = reason.join(" ");
                let reason = reason.trim_start_matches("error: ");
                config_error(
                    binary,
                    if reason.is_empty() {
                        "invalid arguments"
                    } else {
                        reason
                    },
                )
            }
        },
    }
}
