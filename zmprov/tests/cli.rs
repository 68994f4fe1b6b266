//! zmprov end to end: the real binary against a running route-lookup on a real PostgreSQL.
//! Every verb, both batch modes, the dashed proxy commands and Zimbra's exact output of
//! garpu/gamau/gamcs, the error lines and exit codes, and no password in any output.

use std::process::Stdio;

use proto::v1::registry_client::RegistryClient;
use proto::v1::{RegisterRequest, ServiceKind};
use route_lookup::testing::{Harness, TOKEN};
use tokio::io::AsyncWriteExt;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn zmprov(h: &Harness, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"));
    cmd.arg("--server")
        .arg(h.grpc_url())
        .args(args)
        .env("ZMPROV_ADMIN_TOKEN", TOKEN)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("zmprov runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("zmprov finishes")
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

async fn ok(h: &Harness, args: &[&str]) -> String {
    let o = zmprov(h, args, None).await;
    assert_eq!(o.code, 0, "zmprov {args:?}: {}", o.stderr);
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    o.stdout
}

fn is_uuid(s: &str) -> bool {
    s.trim().len() == 36 && s.trim().chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

const SEED: &str = r#"
# The demo's shape: one domain, an alias domain, two mailbox servers, a lookup target.
createDomain example.com description "Example Inc."
cd example.org
cad alias.example.com example.com
mcf zimbraDefaultDomainName example.com
createServer mbx1.example.com zimbraServiceEnabled mailbox serviceAddress 127.0.0.1 zimbraMtaAuthTarget TRUE
cs mbx2.example.com zimbraServiceEnabled mailbox zimbraServiceEnabled memcached serviceAddress 127.0.0.2 zimbraImapBindPort 8143
cs lookup1.example.com zimbraReverseProxyLookupTarget TRUE zimbraExtensionBindPort 7072
cs lookup2.example.com zimbraReverseProxyLookupTarget TRUE zimbraExtensionBindPort 17072 zimbraMtaAuthTarget TRUE zimbraMtaAuthPort 7073

ca ann@example.com 'S3cret pass+%' zimbraMailHost mbx1.example.com displayName "Ann Example"
ca bob@example.com hunter2 zimbraMailHost mbx2.example.com
aaa ann@example.com annie@example.com
"#;

#[tokio::test]
async fn every_verb_end_to_end() {
    let h = Harness::start(&[]).await;
    // Batch from a file: one id per create, nothing else.
    let dir = std::env::temp_dir().join(format!("zmprov-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("seed.zmp");
    std::fs::write(&file, SEED).unwrap();
    let out = ok(&h, &["-f", file.to_str().unwrap()]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    assert!(lines.iter().all(|l| is_uuid(l)), "{out}");

    // The seed's three proxy commands, every spelling, Zimbra's exact output.
    for garpu in [
        "garpu",
        "getAllReverseProxyURLs",
        "-garpu",
        "--getAllReverseProxyURLs",
        "--garpu",
    ] {
        assert_eq!(
            ok(&h, &[garpu]).await,
            "lookup1.example.com:7072/service/extension/nginx-lookup lookup2.example.com:17072/service/extension/nginx-lookup \n",
            "{garpu}"
        );
    }
    for gamau in [
        "gamau",
        "getAllMtaAuthURLs",
        "-gamau",
        "--getAllMtaAuthURLs",
    ] {
        assert_eq!(
            ok(&h, &[gamau]).await,
            "http://lookup2.example.com:7073/service/admin/soap/ http://mbx1.example.com:7072/service/admin/soap/ \n"
        );
    }
    assert_eq!(ok(&h, &["gamcs"]).await, "mbx2.example.com:11211 \n");
    // A live registered cache node joins gamcs.
    let channel = tonic::transport::Channel::from_shared(h.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reg = RegistryClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        Ok(r)
    });
    reg.register(RegisterRequest {
        kind: ServiceKind::CacheNode.into(),
        address: "10.0.0.5:11211".into(),
        ttl_seconds: 60,
    })
    .await
    .unwrap();
    for gamcs in [
        "gamcs",
        "getAllMemcachedServers",
        "-gamcs",
        "--getAllMemcachedServers",
    ] {
        assert_eq!(
            ok(&h, &[gamcs]).await,
            "mbx2.example.com:11211 10.0.0.5:11211 \n"
        );
    }

    // getAccount: `# name`, then attr: value lines, sorted; by alias too; selected attrs.
    let ga = ok(&h, &["ga", "annie@example.com"]).await;
    assert!(ga.starts_with("# name ann@example.com\n"), "{ga}");
    for line in [
        "displayName: Ann Example",
        "mail: annie@example.com",
        "zimbraAccountStatus: active",
        "zimbraMailAlias: annie@example.com",
        "zimbraMailDeliveryAddress: ann@example.com",
        "zimbraMailHost: mbx1.example.com",
    ] {
        assert!(ga.lines().any(|l| l == line), "missing {line:?} in\n{ga}");
    }
    assert!(
        !ga.contains("S3cret") && !ga.to_lowercase().contains("password"),
        "{ga}"
    );
    assert_eq!(
        ok(
            &h,
            &[
                "getAccount",
                "ann@example.com",
                "zimbraMailHost",
                "zimbraaccountstatus"
            ]
        )
        .await,
        "# name ann@example.com\nzimbraAccountStatus: active\nzimbraMailHost: mbx1.example.com\n"
    );
    let gs = ok(&h, &["gs", "mbx2.example.com"]).await;
    for line in [
        "zimbraImapBindPort: 8143",
        "zimbraServiceEnabled: mailbox",
        "zimbraServiceEnabled: memcached",
        "serviceAddress: 127.0.0.2",
    ] {
        assert!(gs.lines().any(|l| l == line), "missing {line:?} in\n{gs}");
    }
    assert_eq!(
        ok(&h, &["gd", "alias.example.com", "zimbraDomainType"]).await,
        "# name alias.example.com\nzimbraDomainType: alias\n"
    );

    // Lists.
    assert_eq!(ok(&h, &["gaa"]).await, "ann@example.com\nbob@example.com\n");
    assert_eq!(ok(&h, &["getAllAccounts", "example.org"]).await, "");
    assert_eq!(
        ok(&h, &["gad"]).await,
        "alias.example.com\nexample.com\nexample.org\n"
    );
    assert_eq!(
        ok(&h, &["gas"]).await,
        "lookup1.example.com\nlookup2.example.com\nmbx1.example.com\nmbx2.example.com\n"
    );
    assert_eq!(
        ok(&h, &["gas", "mailbox"]).await,
        "mbx1.example.com\nmbx2.example.com\n"
    );
    assert_eq!(
        ok(&h, &["gcf", "zimbraDefaultDomainName"]).await,
        "zimbraDefaultDomainName: example.com\n"
    );
    assert!(ok(&h, &["gacf"])
        .await
        .contains("zimbraDefaultDomainName: example.com\n"));

    // Modify: plain, +attr, -attr; config; server; domain.
    assert_eq!(
        ok(
            &h,
            &[
                "ma",
                "ann@example.com",
                "zimbraMailHost",
                "mbx2.example.com",
                "zimbraAccountStatus",
                "locked"
            ]
        )
        .await,
        ""
    );
    assert_eq!(
        ok(
            &h,
            &[
                "ga",
                "ann@example.com",
                "zimbraMailHost",
                "zimbraAccountStatus"
            ]
        )
        .await,
        "# name ann@example.com\nzimbraAccountStatus: locked\nzimbraMailHost: mbx2.example.com\n"
    );
    ok(
        &h,
        &[
            "ms",
            "mbx2.example.com",
            "-zimbraServiceEnabled",
            "memcached",
            "+zimbraServiceEnabled",
            "imapproxy",
        ],
    )
    .await;
    assert_eq!(
        ok(&h, &["gs", "mbx2.example.com", "zimbraServiceEnabled"]).await,
        "# name mbx2.example.com\nzimbraServiceEnabled: mailbox\nzimbraServiceEnabled: imapproxy\n"
    );
    assert_eq!(ok(&h, &["gamcs"]).await, "10.0.0.5:11211 \n");
    ok(
        &h,
        &["md", "example.org", "zimbraVirtualIPAddress", "10.1.2.3"],
    )
    .await;
    ok(
        &h,
        &["modifyConfig", "zimbraReverseProxyUserLoginLimit", "5"],
    )
    .await;
    assert_eq!(
        ok(&h, &["gcf", "zimbraReverseProxyUserLoginLimit"]).await,
        "zimbraReverseProxyUserLoginLimit: 5\n"
    );
    ok(&h, &["sp", "bob@example.com", "new pass"]).await;

    // Aliases and deletes.
    ok(&h, &["raa", "ann@example.com", "annie@example.com"]).await;
    let o = zmprov(&h, &["ga", "annie@example.com"], None).await;
    assert_eq!(o.code, 1);
    assert_eq!(
        o.stderr,
        "ERROR: service.NOT_FOUND (no such account: annie@example.com)\n"
    );
    ok(&h, &["da", "bob@example.com"]).await;
    ok(&h, &["ds", "lookup1.example.com"]).await;
    ok(&h, &["dd", "example.org"]).await;
    assert_eq!(ok(&h, &["gad"]).await, "alias.example.com\nexample.com\n");

    // Batch from stdin, with a failing line in the middle: reported with its line number,
    // the rest still runs, exit status 1.
    let o = zmprov(
        &h,
        &[],
        Some("cd stdin.example\n# comment\n\nga nobody@example.com\ncd stdin2.example\n"),
    )
    .await;
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert_eq!(o.stdout.lines().count(), 2);
    assert_eq!(
        o.stderr,
        "ERROR: line 4: service.NOT_FOUND (no such account: nobody@example.com)\n"
    );
    let o = zmprov(&h, &["-f", "-"], Some("gad\n")).await;
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("stdin2.example\n"));

    // Errors: one line naming the problem, non-zero exit; never the password.
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["ca", "ann@example.com", "Sup3r+secret"],
            1,
            "ERROR: service.ALREADY_EXISTS (account already exists: ann@example.com)\n",
        ),
        (
            &["ca", "x@nosuch.example", "Sup3r+secret"],
            1,
            "ERROR: service.NOT_FOUND (no such domain: nosuch.example)\n",
        ),
        (
            &["ma", "ann@example.com", "zimbraBogus", "1"],
            1,
            "ERROR: service.INVALID_REQUEST (invalid attr name: zimbraBogus)\n",
        ),
        // zimbraMailHost must name a mailbox server, with Zimbra's two messages.
        (
            &[
                "ca",
                "new@example.com",
                "Sup3r+secret",
                "zimbraMailHost",
                "nosuch.example.com",
            ],
            1,
            "ERROR: service.INVALID_REQUEST (specified zimbraMailHost does not correspond to a valid server service hostname: nosuch.example.com)\n",
        ),
        (
            &["ma", "ann@example.com", "zimbraMailHost", "lookup2.example.com"],
            1,
            "ERROR: service.INVALID_REQUEST (specified zimbraMailHost does not correspond to a valid server with the mailbox service enabled: lookup2.example.com)\n",
        ),
        (
            &["ma", "ann@example.com", "zimbraMailHost"],
            2,
            "ERROR: usage: modifyAccount(ma) {name@domain|id} [attr1 value1 [attr2 value2...]]\n",
        ),
        (
            &["frobnicate"],
            2,
            "ERROR: unknown command: frobnicate (zmprov --help lists them)\n",
        ),
        (
            &["dd", "example.com"],
            1,
            "ERROR: service.INVALID_REQUEST (domain not empty: example.com (1 accounts))\n",
        ),
    ];
    for (args, code, stderr) in cases {
        let o = zmprov(&h, args, None).await;
        assert_eq!((o.code, o.stderr.as_str()), (*code, *stderr), "{args:?}");
        assert!(!o.stdout.contains("secret") && !o.stderr.contains("secret"));
    }
    // A wrong token and an unreachable server.
    let o = {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"));
        cmd.args(["--server", &h.grpc_url(), "--admin-token", "wrong", "gad"]);
        cmd.output().await.unwrap()
    };
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "ERROR: service.AUTH_REQUIRED (invalid admin token)\n"
    );
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"))
        .args(["--server", "http://127.0.0.1:1", "gad"])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .starts_with("ERROR: cannot reach route-lookup at http://127.0.0.1:1"));
    std::fs::remove_dir_all(&dir).ok();
    h.stop().await;
}

#[tokio::test]
async fn the_admin_token_can_come_from_a_file_instead_of_the_command_line() {
    let h = Harness::start(&[]).await;
    let dir = std::env::temp_dir().join(format!("zmprov-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("token");
    std::fs::write(&good, format!("{TOKEN}\n")).unwrap();
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"))
            .args(args)
            .env_remove("ZMPROV_ADMIN_TOKEN")
            .output()
            .await
            .unwrap()
    };
    let server = h.grpc_url();
    let o = run(vec![
        "--server".into(),
        server.clone(),
        "--admin-token-file".into(),
        good.display().to_string(),
        "cd".into(),
        "file.example".into(),
    ])
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Its environment twin, as a compose secret or a systemd credential passes it.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"))
        .args(["--server", &server, "gad"])
        .env_remove("ZMPROV_ADMIN_TOKEN")
        .env("ZMPROV_ADMIN_TOKEN_FILE", &good)
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "file.example\n");
    // Both ways at once, a missing file, an empty one: refused before connecting, naming
    // the file and never the token.
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (args, want) in [
        (
            vec!["--admin-token", TOKEN, "--admin-token-file", good.to_str().unwrap()],
            "cannot be used with",
        ),
        (
            vec!["--admin-token-file", "/nonexistent/token"],
            "ERROR: --admin-token-file /nonexistent/token: cannot read it: No such file or directory",
        ),
        (
            vec!["--admin-token-file", empty.to_str().unwrap()],
            "its first line is empty",
        ),
    ] {
        let mut full: Vec<String> = vec!["--server".into(), server.clone()];
        full.extend(args.iter().map(|s| s.to_string()));
        full.push("gad".into());
        let o = run(full).await;
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains(TOKEN));
    }
    std::fs::remove_dir_all(&dir).ok();
    h.stop().await;
}

#[tokio::test]
async fn usage_errors_are_found_before_connecting_even_with_the_server_down() {
    // Nothing listens at port 1: any attempt to connect would say "cannot reach".
    let run = |args: &[&str]| {
        let mut full = vec!["--server", "http://127.0.0.1:1", "--admin-token", "t"];
        full.extend_from_slice(args);
        let full: Vec<String> = full.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_zmprov"))
                .args(full)
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap()
        }
    };
    for (args, want) in [
        (&["gaaa"][..], "ERROR: unknown command: gaaa (zmprov --help lists them)\n"),
        (&["ca", "x@example.com"][..], "ERROR: usage: createAccount(ca) {name@domain} {password} [attr1 value1 [attr2 value2...]]\n"),
        (&["ma", "x@example.com", "displayName"][..], "ERROR: usage: modifyAccount(ma) {name@domain|id} [attr1 value1 [attr2 value2...]]\n"),
        (&["mcf", "a", "b", "c"][..], "ERROR: usage: modifyConfig(mcf) attr1 value1 [attr2 value2...]\n"),
        (&["-l", "gaa"][..], "ERROR: -l (LDAP mode) is Zimbra's: this zmprov always works through route-lookup's gRPC API at --server\n"),
        (&["-z", "gaa"][..], "ERROR: -z/-a/-p/-P (a Zimbra admin account and password) are Zimbra's: authenticate with --admin-token-file or --admin-token\n"),
        (&["-f", "/nonexistent/batch"][..], "ERROR: cannot read /nonexistent/batch: No such file or directory (os error 2)\n"),
    ] {
        let o = run(args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), want, "{args:?}");
    }
    // A batch whose every line is wrong never connects either; its errors carry line numbers.
    let dir = std::env::temp_dir().join(format!("zmprov-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let batch = dir.join("bad.zmp");
    std::fs::write(&batch, "# a comment\n\ngaaa\nca only-one@example.com\n").unwrap();
    let o = run(&["-f", batch.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.starts_with("ERROR: line 3: unknown command: gaaa"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ERROR: line 4: usage: createAccount(ca)"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    // With one good line it must connect, and says so when it cannot.
    std::fs::write(&batch, "gaaa\ngad\n").unwrap();
    let o = run(&["-f", batch.to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("cannot reach route-lookup at http://127.0.0.1:1"));
    std::fs::remove_dir_all(&dir).ok();
}
