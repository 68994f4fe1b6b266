//! `zmprov`: one command from the command line, or a batch from `-f FILE` or stdin.

use std::io::{BufRead, IsTerminal, Write};

use clap::Parser;
use zmprov::client::Client;
use zmprov::commands::{self, CommandError, VERBS};

/// Provision domains, servers and accounts in route-lookup (Zimbra's zmprov verbs).
#[derive(Debug, Parser)]
#[command(name = "zmprov", version, about, after_help = verbs_help())]
struct Cli {
    /// route-lookup's gRPC address.
    #[arg(
        long,
        short = 's',
        env = "ZMPROV_SERVER",
        default_value = "http://127.0.0.1:7071"
    )]
    server: String,

    /// Admin bearer token (route-lookup's --admin-token).
    #[arg(long, env = "ZMPROV_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// File holding the admin token (first line), instead of --admin-token (which shows
    /// in `ps`).
    #[arg(
        long,
        env = "ZMPROV_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "admin_token"
    )]
    admin_token_file: Option<std::path::PathBuf>,

    /// Run the commands in FILE, one a line (`-` or no command at all: standard input).
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    file: Option<String>,

    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

fn verbs_help() -> String {
    let mut s = String::from("Commands:\n");
    for v in VERBS {
        s.push_str(&format!("  {}({}) {}\n", v.long, v.short, v.usage));
    }
    s.push_str(
        "\nThe proxy commands are also accepted as -garpu, --getAllReverseProxyURLs, etc.\n",
    );
    s
}

/// Moves the seed's dashed proxy commands (`-garpu`, `--getAllMemcachedServers`, …) out of
/// clap's way: they look like flags but are commands.
fn split_dashed_command(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut command = None;
    for a in args {
        if command.is_none() && a.starts_with('-') && commands::find(&a).is_some() {
            command = Some(a.trim_start_matches('-').to_string());
        } else {
            out.push(a);
        }
    }
    if let Some(c) = command {
        out.push("--".into());
        out.push(c);
    }
    out
}

fn print_error(e: &CommandError) {
    eprintln!("ERROR: {e}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse_from(split_dashed_command(std::env::args().collect()));
    let token = match common::secret::inline_or_file(
        "--admin-token",
        cli.admin_token.as_deref(),
        cli.admin_token_file.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ERROR: {}", common::exit::chain(&e));
            std::process::exit(2);
        }
    };
    let mut client = match Client::connect(&cli.server, token.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            std::process::exit(1);
        }
    };
    let batch = match (&cli.file, cli.command.is_empty()) {
        (Some(f), true) => Some(f.clone()),
        (Some(_), false) => {
            eprintln!("ERROR: give either -f FILE or a command, not both");
            std::process::exit(2);
        }
        (None, true) if !std::io::stdin().is_terminal() => Some("-".to_string()),
        (None, true) => {
            eprintln!("ERROR: no command (zmprov --help lists them)");
            std::process::exit(2);
        }
        (None, false) => None,
    };
    let code = match batch {
        None => match commands::run(&mut client, &cli.command).await {
            Ok(out) => {
                print!("{out}");
                0
            }
            Err(e) => {
                print_error(&e);
                if matches!(e, CommandError::Server(_)) {
                    1
                } else {
                    2
                }
            }
        },
        Some(path) => run_batch(&mut client, &path).await,
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Runs every line; a failing line is reported with its number and the batch goes on.
/// Exit status 1 if any line failed.
async fn run_batch(client: &mut Client, path: &str) -> i32 {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("ERROR: cannot read {path}: {e}");
                return 1;
            }
        }
    };
    let mut failed = 0;
    for (n, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ERROR: {path}: {e}");
                return 1;
            }
        };
        let args = match zmprov::tokenize::split(&line) {
            Ok(a) if a.is_empty() => continue,
            Ok(a) => a,
            Err(e) => {
                eprintln!("ERROR: line {}: {e}", n + 1);
                failed += 1;
                continue;
            }
        };
        match commands::run(client, &args).await {
            Ok(out) => {
                print!("{out}");
            }
            Err(e) => {
                eprintln!("ERROR: line {}: {e}", n + 1);
                failed += 1;
            }
        }
    }
    i32::from(failed > 0)
}
