//! E-mail to a real SMTP server on loopback (aiosmtpd, STARTTLS and AUTH, a private CA made by
//! `openssl`): handed over with the server's reply, and a mail server that is down loses nothing.

use super::*;

// ---- the SMTP server -------------------------------------------------------------------------

/// A private CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Loyalty test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Debian's Python, which `python3-aiosmtpd` installs into (a `python3` earlier on the PATH, as
/// pyenv's, would not see it); any `python3` where there is no `/usr/bin/python3`.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Whether the SMTP server can run here; in CI (`LOYALTY_REQUIRE_SMTP=1`) it must.
fn smtp_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("LOYALTY_REQUIRE_SMTP").is_some() {
        panic!("python3-aiosmtpd is required (LOYALTY_REQUIRE_SMTP is set)");
    }
    if !ok {
        eprintln!("skipped: no python3-aiosmtpd (scripts/test.sh installs it)");
    }
    ok
}

/// `tests/smtp/receiver.py`: STARTTLS and AUTH required, `bounce…` recipients refused.
struct SmtpServer {
    child: Child,
    mail: PathBuf,
}

impl SmtpServer {
    fn start(port: u16, dir: &Path, cert: &Path, key: &Path) -> Self {
        use std::io::BufRead;
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(&mail)
            .args([cert, key])
            .args([SMTP_LOGIN, SMTP_PASSWORD])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Self { child, mail }
    }

    /// The messages it accepted, in order, as text.
    fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.mail)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_settings(port: u16, ca: &Path) -> OutboundSettings {
    OutboundSettings {
        smtp: Some(SmtpSettings {
            url: format!("smtp://{SMTP_LOGIN}:p%40ss%20word@127.0.0.1:{port}"),
            from: "Bonus Club <club@shop.example>".into(),
            ca_file: Some(ca.to_path_buf()),
        }),
        ..Default::default()
    }
}

#[test]
fn email_is_handed_to_a_real_smtp_server_over_starttls_with_auth() {
    if !smtp_available() {
        return;
    }
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let port = free_port();
        let smtp = SmtpServer::start(port, dir.path(), &cert, &key);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_with(dir.path(), clock, &smtp_settings(port, &ca)).await;
        let op = server.operator();
        let (anna, anna_phone) =
            member(&server, dir.path(), "anna", "email", "anna@example.com").await;
        let (ben, _) = member(
            &server,
            dir.path(),
            "ben",
            "email",
            "bounce-ben@example.com",
        )
        .await;

        op.send_message(&send("receipt", "email", &[&anna, &ben]))
            .await
            .unwrap();
        let list = settled(&op, "receipt").await;

        let handed = of(&list, &anna);
        assert_eq!(handed.status, "handed_over", "{handed:?}");
        let reply = handed.detail.clone().unwrap_or_default();
        assert!(
            reply.starts_with("250 ") && reply.contains("queued as Q1"),
            "{reply}"
        );
        let failed = of(&list, &ben);
        assert_eq!(
            (failed.status.as_str(), failed.reason.as_deref()),
            ("failed", Some("bad_address")),
            "{failed:?}"
        );
        assert!(
            failed.detail.as_deref().unwrap_or_default().contains("550"),
            "{failed:?}"
        );

        let mail = smtp.messages();
        assert_eq!(mail.len(), 1, "only Anna's e-mail was accepted");
        let text = &mail[0];
        for expected in [
            "X-Was-Tls: yes",
            "X-Envelope-To: anna@example.com",
            "From: \"Bonus Club\" <club@shop.example>",
            "To: anna@example.com",
            "Subject: Subject of receipt",
            &format!("Message-ID: <receipt.{anna}@shop.example>"),
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
        assert!(
            text.contains("Body of receipt: gr=C3=BC=C3=9Fe")
                || text.contains("Body of receipt: grüße"),
            "{text}"
        );

        // The member's app learns the state at its next sync.
        anna_phone.sync().await.unwrap();
        let message = &anna_phone.messages().unwrap()[0].message;
        assert_eq!(message.delivery.as_ref().unwrap().status, "handed_over");
        server.stop().await;
    });
}

#[test]
fn a_mail_server_that_is_down_loses_nothing() {
    if !smtp_available() {
        return;
    }
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let port = free_port();
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_with(dir.path(), clock.clone(), &smtp_settings(port, &ca)).await;
        let op = server.operator();
        let (anna, _) = member(&server, dir.path(), "anna", "email", "anna@example.com").await;

        // Nothing listens yet: the delivery waits with the reason, and the connection's words.
        op.send_message(&send("notice", "email", &[&anna]))
            .await
            .unwrap();
        let waiting = attempted(&op, "notice", &anna, 1).await;
        assert_eq!(
            (waiting.status.as_str(), waiting.reason.as_deref()),
            ("queued", Some("provider_unavailable")),
            "{waiting:?}"
        );
        assert!(waiting.detail.is_some(), "{waiting:?}");

        // The mail server comes up; once the pause before the retry has passed, it goes out.
        let smtp = SmtpServer::start(port, dir.path(), &cert, &key);
        clock.advance(31_000);
        let list = settled(&op, "notice").await;
        assert_eq!(of(&list, &anna).status, "handed_over", "{list:?}");
        assert_eq!(of(&list, &anna).attempts, 2);
        assert_eq!(smtp.messages().len(), 1);
        server.stop().await;
    });
}
