//! Process exit codes shared by every binary, and command-line parsing that uses them.

/// `EX_USAGE` from sysexits.h: the configuration was refused. Operators and supervisors
/// tell "fix the flags" from "the service crashed" by this code.
pub const CONFIG_ERROR: i32 = 64;

/// An error with every cause after it, `outer: inner: root`, skipping a cause whose text
/// its parent already printed: what a log line or an exit reason should say (a pool error's
/// own text is often only "db error"; the cause is what the operator needs).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn chains_name_their_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot migrate the database")]
        struct Outer(#[source] Middle);
        #[derive(Debug, thiserror::Error)]
        #[error("db error")]
        struct Middle(#[source] std::io::Error);
        let e = Outer(Middle(std::io::Error::other(
            "password authentication failed for user \"zproxy\"",
        )));
        assert_eq!(
            super::chain(&e),
            "cannot migrate the database: db error: password authentication failed for user \"zproxy\""
        );
    }
}

/// A configuration `validate` refused: the one-line reason (printed before exit code 64).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<String> for ConfigError {
    fn from(reason: String) -> Self {
        Self(reason)
    }
}

impl From<&str> for ConfigError {
    fn from(reason: &str) -> Self {
        Self(reason.to_string())
    }
}

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
