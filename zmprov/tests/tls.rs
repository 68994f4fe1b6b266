//! zmprov against route-lookup on TLS (`--tls-cert`): the real binary with `--server
//! https://…` works when `--ca` (or `ZMPROV_CA`) names the CA, fails with one line naming the
//! certificate problem (exit 1) when it names another, and refuses an unreadable `--ca`
//! before connecting (exit 2).

use std::path::PathBuf;
use std::process::Stdio;

use route_lookup::testing::{Harness, TOKEN};

/// Files in a scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("zmprov-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (exit code, stdout, stderr) of zmprov with `args` and `env`.
async fn zmprov(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"))
        .args(args)
        .env("ZMPROV_ADMIN_TOKEN", TOKEN)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("zmprov runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn https_with_the_right_ca_works_and_another_ca_is_named() {
    let scratch = Scratch::new();
    let (cert, key) = common::tls::self_signed(&["localhost"]).unwrap();
    let (other, _) = common::tls::self_signed(&["localhost"]).unwrap();
    let (cert_file, key_file) = (
        scratch.write("lookup.crt", &cert),
        scratch.write("lookup.key", &key),
    );
    let other_file = scratch.write("other.crt", &other);
    let h = Harness::start(&["--tls-cert", &cert_file, "--tls-key", &key_file]).await;
    let server = h.grpc_url();
    assert!(server.starts_with("https://"), "{server}");

    let (code, stdout, stderr) = zmprov(
        &["--server", &server, "--ca", &cert_file, "cd", "example.com"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim().len(), 36, "an id: {stdout}");
    // The environment twin.
    let (code, stdout, stderr) =
        zmprov(&["--server", &server, "gad"], &[("ZMPROV_CA", &cert_file)]).await;
    assert_eq!((code, stdout.as_str()), (0, "example.com\n"), "{stderr}");

    let (code, stdout, stderr) =
        zmprov(&["--server", &server, "--ca", &other_file, "gad"], &[]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("ERROR: cannot reach route-lookup at {server}/: "))
            && stderr.contains("invalid peer certificate"),
        "{stderr}"
    );

    let (code, _, stderr) = zmprov(
        &["--server", &server, "--ca", "/nonexistent/ca.pem", "gad"],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("ERROR: --ca /nonexistent/ca.pem: cannot read /nonexistent/ca.pem"),
        "{stderr}"
    );
    h.stop().await;
}
