//! The route-lookup process: a readable --help, exit code 64 with one line on a bad
//! configuration, and a clean exit on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use route_lookup::testing::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_route-lookup");

/// Kills the child if a test fails before it exits.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn help_names_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--database-url",
        "--http-listen",
        "--grpc-listen",
        "--admin-token",
        "--insecure-admin",
        "--auth-wait",
        "--auth-wait-max-attempts",
        "--verify-passwords",
        "--lookup-secret",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_configurations_exit_64_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--database-url", "postgres://x/y"], "--admin-token"),
        (
            &[
                "--database-url",
                "postgres://x/y",
                "--admin-token",
                "t",
                "--insecure-admin",
            ],
            "exclude",
        ),
        (
            &[
                "--database-url",
                "postgres://x/y",
                "--insecure-admin",
                "--lookup-secret",
                "",
            ],
            "--lookup-secret",
        ),
        (
            &["--database-url", "mysql://x/y", "--insecure-admin"],
            "--database-url",
        ),
        (
            &[
                "--database-url",
                "postgres://x/y",
                "--insecure-admin",
                "--http-listen",
                "nowhere",
            ],
            "nowhere",
        ),
        (
            &[
                "--database-url",
                "postgres://x/y",
                "--insecure-admin",
                "--db-pool-size",
                "0",
            ],
            "--db-pool-size",
        ),
        (
            &[
                "--database-url",
                "postgres://x/y",
                "--insecure-admin",
                "--memcached-auth-file",
                "/nonexistent/cache-auth",
            ],
            "--memcached-auth-file /nonexistent/cache-auth: cannot read it",
        ),
    ];
    for (args, mention) in cases {
        let out = Command::new(BIN)
            .args(*args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(mention), "{args:?}: {err}");
        assert!(err.trim_end().lines().count() <= 3, "{args:?}: {err}");
    }
}

#[test]
fn sigterm_exits_cleanly() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::create());
    let child = Command::new(BIN)
        .args([
            "--database-url",
            &db.url,
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .args(["--insecure-admin", "--grace-period", "2"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .env("RUST_LOG", "info")
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    // Wait until both listeners are up (their addresses are logged).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = 0;
    let mut line = String::new();
    while seen < 2 {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "exited early"
        );
        if line.contains("listening") {
            seen += 1;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    guard.0 = None;
    drop(db);
}
