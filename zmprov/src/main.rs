//! `zmprov`: one command from the command line, or a batch from `-f FILE` or stdin.

use std::io::{IsTerminal, Read, Write};

use clap::Parser;
use zmprov::client::Client;
use zmprov::commands::{self, CommandError, VERBS};

/// Provision domains, servers and accounts in route-lookup (Zimbra's zmprov verbs).
#[derive(Debug, Parser)]
#[command(name = "zmprov", version, about, after_help = verbs_help())]
struct Cli {
    /// route-lookup's gRPC address: http://HOST:PORT, or https://HOST:PORT when
    /// route-lookup runs with --tls-cert.
    #[arg(
        long,
        short = 's',
        env = "ZMPROV_SERVER",
        default_value = "http://127.0.0.1:7071"
    )]
    server: String,

    /// PEM CA certificates an https:// --server is verified against (default: the system's
    /// CAs).
    #[arg(long, env = "ZMPROV_CA", value_name = "PEM")]
    ca: Option<std::path::PathBuf>,

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

    /// Zimbra zmprov's flags for LDAP mode and its own authentication, refused with an
    /// explanation (this zmprov always works through route-lookup).
    #[arg(short = 'l', long = "ldap", hide = true)]
    ldap: bool,
    #[arg(short = 'z', long = "zadmin", hide = true)]
    zadmin: bool,
    #[arg(short = 'm', long = "master", hide = true)]
    master: bool,
    #[arg(short = 'a', long = "account", hide = true, value_name = "NAME")]
    account: Option<String>,
    #[arg(short = 'p', long = "password", hide = true, value_name = "PASS")]
    password: Option<String>,
    #[arg(short = 'P', long = "passfile", hide = true, value_name = "FILE")]
    passfile: Option<String>,
    #[arg(short = 'y', long = "authtoken", hide = true, value_name = "TOKEN")]
    authtoken: Option<String>,
    #[arg(short = 'Y', long = "authtokenfile", hide = true, value_name = "FILE")]
    authtokenfile: Option<String>,

    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

impl Cli {
    /// Why a Zimbra-only flag cannot be honoured, if one was given.
    fn zimbra_only(&self) -> Option<&'static str> {
        if self.ldap {
            Some("-l (LDAP mode) is Zimbra's: this zmprov always works through route-lookup's gRPC API at --server")
        } else if self.master {
            Some("-m (the LDAP master) is Zimbra's: this zmprov always works through route-lookup at --server")
        } else if self.zadmin
            || self.account.is_some()
            || self.password.is_some()
            || self.passfile.is_some()
        {
            Some("-z/-a/-p/-P (a Zimbra admin account and password) are Zimbra's: authenticate with --admin-token-file or --admin-token")
        } else if self.authtoken.is_some() || self.authtokenfile.is_some() {
            Some(
                "-y/-Y (a Zimbra auth token) are Zimbra's: use --admin-token-file or --admin-token",
            )
        } else {
            None
        }
    }
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

/// Most bytes of a batch read before connecting.
const MAX_BATCH: u64 = 64 * 1024 * 1024;

/// What to run: one command, or a batch's checked lines.
enum Work {
    One(Vec<String>),
    Batch {
        /// (line number, arguments) of the lines that passed the check.
        lines: Vec<(usize, Vec<String>)>,
        /// Lines that did not.
        bad: usize,
    },
}

/// Reads and checks everything before any connection: a typo or an unreadable file is a
/// usage error (exit 2) whether or not route-lookup is up.
fn plan(cli: &Cli) -> Result<Work, String> {
    let batch = match (&cli.file, cli.command.is_empty()) {
        (Some(f), true) => f.clone(),
        (Some(_), false) => return Err("give either -f FILE or a command, not both".into()),
        (None, true) if !std::io::stdin().is_terminal() => "-".to_string(),
        (None, true) => return Err("no command (zmprov --help lists them)".into()),
        (None, false) => {
            commands::check(&cli.command).map_err(|e| e.to_string())?;
            return Ok(Work::One(cli.command.clone()));
        }
    };
    let mut text = String::new();
    let read = if batch == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_BATCH)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(&batch).and_then(|f| f.take(MAX_BATCH).read_to_string(&mut text))
    };
    read.map_err(|e| format!("cannot read {batch}: {e}"))?;
    let mut lines = Vec::new();
    let mut bad = 0;
    for (n, line) in text.lines().enumerate() {
        let checked = zmprov::tokenize::split(line)
            .map_err(|e| e.to_string())
            .and_then(|args| {
                if args.is_empty() {
                    return Ok(None);
                }
                commands::check(&args).map_err(|e| e.to_string())?;
                Ok(Some(args))
            });
        match checked {
            Ok(Some(args)) => lines.push((n + 1, args)),
            Ok(None) => {}
            Err(e) => {
                eprintln!("ERROR: line {}: {e}", n + 1);
                bad += 1;
            }
        }
    }
    Ok(Work::Batch { lines, bad })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse_from(split_dashed_command(std::env::args().collect()));
    if let Some(why) = cli.zimbra_only() {
        eprintln!("ERROR: {why}");
        std::process::exit(2);
    }
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
    let ca = match &cli.ca {
        Some(path) => match common::tls::client_config(Some(path)) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!(
                    "ERROR: --ca {}: {}",
                    path.display(),
                    common::exit::chain(&e)
                );
                std::process::exit(2);
            }
        },
        None => None,
    };
    let work = match plan(&cli) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ERROR: {e}");
            std::process::exit(2);
        }
    };
    if let Work::Batch { lines, bad } = &work {
        if lines.is_empty() {
            std::process::exit(i32::from(*bad > 0));
        }
    }
    let mut client = match Client::connect(&cli.server, token.as_deref(), ca.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            std::process::exit(1);
        }
    };
    let code = match work {
        Work::One(args) => match commands::run(&mut client, &args).await {
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
        Work::Batch { lines, bad } => run_batch(&mut client, lines, bad).await,
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Runs the checked lines; a failing line is reported with its number and the batch goes
/// on. Exit status 1 if any line failed (here or at the check). On a terminal, long
/// batches show their progress on standard error.
async fn run_batch(client: &mut Client, lines: Vec<(usize, Vec<String>)>, bad: usize) -> i32 {
    let total = lines.len();
    let progress = total >= 100 && std::io::stderr().is_terminal();
    let mut failed = bad;
    for (done, (n, args)) in lines.into_iter().enumerate() {
        match commands::run(client, &args).await {
            Ok(out) => print!("{out}"),
            Err(e) => {
                eprintln!("ERROR: line {n}: {e}");
                failed += 1;
            }
        }
        if progress && (done + 1) % 50 == 0 {
            let _ = std::io::stdout().flush();
            eprint!("\r{}/{} commands", done + 1, total);
        }
    }
    if progress {
        eprintln!("\r{total}/{total} commands");
    }
    i32::from(failed > 0)
}
