//! Tests of [`super`]: parsing (hostile strings included), HTTP against a server on
//! 127.0.0.1 through a host [`ProbeTarget`], chunked decoding, comparison rules.

use super::http::{decode_chunked, find, parse_response};
use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

/// A target on the host: ports on 127.0.0.1, exec runs host programs, and the app's
/// exit is whatever the test sets.
struct Host {
    exited: Arc<AtomicI32>,
}

const RUNNING: i32 = i32::MIN;

impl Host {
    fn new() -> Host {
        Host { exited: Arc::new(AtomicI32::new(RUNNING)) }
    }
}

impl ProbeTarget for Host {
    fn connect(&self, port: u16, timeout: Duration) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)
    }
    fn exec(&self, argv: &[String], _timeout: Duration) -> io::Result<ExecOutput> {
        let o = std::process::Command::new(&argv[0]).args(&argv[1..]).output()?;
        Ok(ExecOutput { code: o.status.code().unwrap_or(-1), stdout: o.stdout, stderr: o.stderr, timed_out: false })
    }
    fn app_exited(&self) -> Option<i32> {
        Some(self.exited.load(Ordering::SeqCst)).filter(|&c| c != RUNNING)
    }
    fn log_tail(&self, _lines: usize) -> String {
        "line 1\nTraceback: boom".into()
    }
    fn describe(&self) -> String {
        "test host".into()
    }
}

/// Serves `responses` in turn (raw bytes; an empty one closes the connection without
/// a byte), reading each request first. Returns the port and the requests seen.
fn serve(responses: Vec<Vec<u8>>) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for r in responses {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while find(&req, b"\r\n\r\n").is_none() {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            seen2.lock().unwrap().push(String::from_utf8_lossy(&req).into_owned());
            let _ = s.write_all(&r);
        }
    });
    (port, seen)
}

fn ok_response(body: &str) -> Vec<u8> {
    format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}").into_bytes()
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn fast() -> ProbeOptions {
    ProbeOptions {
        ready_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(2),
        exec_timeout: Duration::from_secs(2),
    }
}

#[test]
fn http_probe_texts_parse() {
    let h = |s: &str| Probe::http(s).unwrap();
    assert_eq!(h("8080:/api/health"), Probe::Http { port: 8080, path: "/api/health".into(), expect: None });
    assert_eq!(h("8080:/=ok"), Probe::Http { port: 8080, path: "/".into(), expect: Some("ok".into()) });
    assert_eq!(h("1:/=a=b"), Probe::Http { port: 1, path: "/".into(), expect: Some("a=b".into()) });
    assert_eq!(h("80:/s?q=x&y=2"), Probe::Http { port: 80, path: "/s?q=x&y=2".into(), expect: None });
    assert_eq!(
        h("80:/s?q=x=found it"),
        Probe::Http { port: 80, path: "/s?q=x".into(), expect: Some("found it".into()) }
    );
    assert_eq!(h("65535:/?flag"), Probe::Http { port: 65535, path: "/?flag".into(), expect: None });
}

#[test]
fn hostile_http_probe_texts_are_refused() {
    for bad in [
        "",
        ":",
        "8080",
        "8080:",
        "8080:api",
        "0:/",
        "65536:/",
        "-1:/",
        "+80:/",
        "0008080:/",
        "８０:/",
        "80 :/",
        "8080:/=",
        "8080:/a b",
        "8080:/\r\nHost: evil",
        "8080:/\u{0}",
        "8080:/é",
        "8080:/#frag",
        "8080:/=a\u{0}",
        "99999999999999999999:/",
    ] {
        let e = Probe::http(bad).expect_err(bad);
        assert!(e.to_string().contains("PORT:PATH"), "{bad:?}: {e}");
    }
}

#[test]
fn exec_probe_texts_split_like_a_shell_without_one() {
    let w = |s: &str| match Probe::exec(s).unwrap() {
        Probe::Exec { argv } => argv,
        p => panic!("{p:?}"),
    };
    assert_eq!(w(r#"python3 -c "import app""#), ["python3", "-c", "import app"]);
    assert_eq!(w(r"echo 'a b' c\ d  e"), ["echo", "a b", "c d", "e"]);
    assert_eq!(w(r#"echo "" 'it'\''s' "q\"uote\\" "\n""#), ["echo", "", "it's", "q\"uote\\", "\\n"]);
    assert_eq!(w("printf '$HOME | x; y'"), ["printf", "$HOME | x; y"]);
    assert_eq!(w("a\\\nb\tc\n"), ["ab", "c"]);
    assert_eq!(w("x'y'\"z\""), ["xyz"]);
    for bad in [
        "",
        "   ",
        "''",
        "ls | wc",
        "a && b",
        "a;b",
        "cat <f",
        "echo $HOME",
        "echo \"$HOME\"",
        "echo `id`",
        "(a)",
        "'open",
        "\"open",
        "trail\\",
        "nul\u{0}byte",
    ] {
        assert!(Probe::exec(bad).is_err(), "{bad:?} should be refused");
    }
    let e = Probe::exec("ls | wc").unwrap_err().to_string();
    assert!(e.contains("not run by a shell") && e.contains("quote it"), "{e}");
}

#[test]
fn probes_print_as_they_parse() {
    for p in [
        Probe::http("8080:/s?q=x=found").unwrap(),
        Probe::http("8080:/health").unwrap(),
        Probe::exec(r#"python3 -c "import app; print('x y')" '' a\'b"#).unwrap(),
        Probe::run_for("1m30s").unwrap(),
        Probe::run_for("250ms").unwrap(),
    ] {
        let text = p.to_string();
        assert_eq!(text.parse::<Probe>().unwrap(), p, "{text}");
    }
    assert_eq!(Probe::exec("python3 -c 'import app'").unwrap().to_string(), "exec python3 -c 'import app'");
    let e = "ftp 21:/".parse::<Probe>().unwrap_err();
    assert!(matches!(e, ProbeError::BadProbe { .. }), "{e}");
}

#[test]
fn durations_parse() {
    let d = |s: &str| parse_duration(s).unwrap();
    assert_eq!(d("500ms"), Duration::from_millis(500));
    assert_eq!(d("20s"), Duration::from_secs(20));
    assert_eq!(d("1m"), Duration::from_secs(60));
    assert_eq!(d("1m30s"), Duration::from_secs(90));
    assert_eq!(d("2h"), Duration::from_secs(7200));
    assert_eq!(d("15"), Duration::from_secs(15));
    assert_eq!(d(" 5s "), Duration::from_secs(5));
    for bad in ["", "s", "5x", "-1s", "1.5s", "5 s", "1m30", "25h", "99999999999999999999s", "18446744073709551615h"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn probe_files_parse_and_refuse_mistakes() {
    let p = Path::new("probes.toml");
    let f = ProbeFile::parse(
        r#"
timeout = "10s"
[[probe]]
http = "8080:/api/health"
[[probe]]
exec = ["python3", "-c", "import app"]
[[probe]]
exec = "perl -e 'print 1'"
[[probe]]
run_for = "2s"
"#,
        p,
    )
    .unwrap();
    assert_eq!(f.timeout, Some(Duration::from_secs(10)));
    assert_eq!(f.probes.len(), 4);
    assert_eq!(f.probes[1], Probe::Exec { argv: vec!["python3".into(), "-c".into(), "import app".into()] });
    assert_eq!(f.probes[2], Probe::Exec { argv: vec!["perl".into(), "-e".into(), "print 1".into()] });
    let mut o = ProbeOptions::default();
    f.apply(&mut o);
    assert_eq!(o.exec_timeout, Duration::from_secs(10));
    for (bad, needle) in [
        ("", "no [[probe]]"),
        ("[[probe]]\nhttp = \"8080:/\"\nexec = \"ls\"\n", "exactly one"),
        ("[[probe]]\n", "exactly one"),
        ("[[probe]]\nhtp = \"8080:/\"\n", "unknown field"),
        ("[[probe]]\nhttp = \"80:/\"\n[[probe]]\nhttp = \"nope\"\n", "probe 2"),
        ("timeout = \"soon\"\n[[probe]]\nrun_for = \"1s\"\n", "timeout"),
        ("[[probe]]\nexec = []\n", "no command"),
        ("[[probe]]\nexec = 3\n", "probe"),
        ("[[probe]\n", "probes.toml"),
    ] {
        let e = ProbeFile::parse(bad, p).expect_err(bad).to_string();
        assert!(e.contains(needle) && e.contains("probes.toml"), "{bad:?}: {e}");
    }
}

#[test]
fn default_probes_say_what_they_do() {
    let (p, why) = default_probes(&[8080, 80, 8080]);
    assert_eq!(p, vec![Probe::http("80:/").unwrap(), Probe::http("8080:/").unwrap()]);
    assert!(why.contains("80, 8080"), "{why}");
    let (p, why) = default_probes(&[]);
    assert_eq!(p, vec![Probe::RunFor(DEFAULT_RUN_FOR)]);
    assert!(why.contains("no TCP port") && why.contains("5s"), "{why}");
}

#[test]
fn http_probe_records_status_hash_and_sends_plain_http10() {
    let (port, seen) = serve(vec![ok_response("hello ok"), b"HTTP/1.1 503 Busy\r\n\r\ndown".to_vec()]);
    let probes = [Probe::http(&format!("{port}:/a?b=c=ok")).unwrap(), Probe::http(&format!("{port}:/")).unwrap()];
    let out = run_probes(&Host::new(), &probes, &fast()).unwrap();
    assert_eq!(out[0].status, Some(200));
    assert_eq!(out[0].hash.as_deref(), Some(sha(b"hello ok").as_str()));
    assert_eq!((out[0].length, out[0].excerpt.as_str(), out[0].expect_met), (8, "hello ok", Some(true)));
    assert!(out[0].ok());
    assert_eq!(out[1].status, Some(503));
    assert!(!out[1].ok(), "a 5xx is a failing probe");
    let req = seen.lock().unwrap()[0].clone();
    assert!(req.starts_with("GET /a?b=c HTTP/1.0\r\n") && req.contains("Connection: close\r\n"), "{req}");
    assert!(req.contains(&format!("Host: localhost:{port}\r\n")), "{req}");
}

#[test]
fn http_probe_decodes_chunked_and_honours_content_length() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let (port, _) = serve(vec![chunked.to_vec(), b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcdef".to_vec()]);
    let p = Probe::http(&format!("{port}:/")).unwrap();
    let out = run_probes(&Host::new(), &[p.clone(), p], &fast()).unwrap();
    assert_eq!(out[0].hash.as_deref(), Some(sha(b"hello world").as_str()));
    assert_eq!(out[1].hash.as_deref(), Some(sha(b"abc").as_str()));
    assert_eq!(decode_chunked(b"3\r\nabc\r\n0\r\n\r\n").unwrap(), b"abc");
    for bad in [&b"3\r\nab"[..], b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcX\r\n", b"3", b"ffffffffffffffffff\r\n"] {
        assert!(decode_chunked(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nabc").unwrap_err().contains("cut"));
    assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err().contains("not an HTTP response"));
    assert!(parse_response(b"HTTP/1.0 2000 OK\r\n\r\n").is_err());
}

#[test]
fn http_probe_waits_through_refused_and_empty_connections() {
    // A proxy that accepts before the app listens: two empty connections, then the answer.
    let (port, seen) = serve(vec![vec![], vec![], ok_response("up")]);
    let out = run_probes(&Host::new(), &[Probe::http(&format!("{port}:/")).unwrap()], &fast()).unwrap();
    assert_eq!((out[0].status, out[0].excerpt.as_str()), (Some(200), "up"));
    assert_eq!(seen.lock().unwrap().len(), 3);
    // Nothing listening yet: the port opens after 600 ms.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 512];
        let _ = s.read(&mut b);
        s.write_all(&ok_response("late")).unwrap();
    });
    let out = run_probes(&Host::new(), &[Probe::http(&format!("{port}:/=late")).unwrap()], &fast()).unwrap();
    t.join().unwrap();
    assert!(out[0].ok(), "{:?}", out[0]);
    assert!(out[0].millis >= 500, "{:?}", out[0]);
}

#[test]
fn http_probe_gives_up_at_the_ready_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let opts = ProbeOptions { ready_timeout: Duration::from_millis(700), ..fast() };
    let t0 = Instant::now();
    let out = run_probes(&Host::new(), &[Probe::http(&format!("{port}:/")).unwrap()], &opts).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    let e = out[0].error.as_deref().unwrap();
    assert!(e.contains(&format!("port {port} gave no answer within 700ms")), "{e}");
    assert!(!out[0].ok());
    // A server that accepts and never answers is a request timeout, not a wait.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let opts = ProbeOptions { request_timeout: Duration::from_millis(300), ..fast() };
    let out = run_probes(&Host::new(), &[Probe::http(&format!("{port}:/")).unwrap()], &opts).unwrap();
    assert!(out[0].error.as_deref().unwrap().contains("no answer within 300ms"), "{:?}", out[0]);
    drop(l);
}

#[test]
fn an_app_that_exits_fails_the_run_with_its_log() {
    let host = Host::new();
    let exited = host.exited.clone();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        exited.store(3, Ordering::SeqCst);
    });
    let e = run_probes(&host, &[Probe::http(&format!("{port}:/")).unwrap()], &fast()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ProbeError::AppExited { code: 3, .. }), "{msg}");
    assert!(msg.contains("exited with code 3") && msg.contains("Traceback: boom"), "{msg}");
    // Exec probes need a running app too.
    let e = run_probes(&host, &[Probe::exec("true").unwrap()], &fast()).unwrap_err();
    assert!(e.to_string().contains("before probe `exec true`"), "{e}");
}

#[test]
fn run_for_watches_the_app() {
    let host = Host::new();
    let t0 = Instant::now();
    let out = run_probes(&host, &[Probe::run_for("300ms").unwrap()], &fast()).unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300) && out[0].ok() && out[0].exit_code.is_none());
    host.exited.store(0, Ordering::SeqCst);
    let out = run_probes(&host, &[Probe::run_for("10s").unwrap()], &fast()).unwrap();
    assert_eq!(out[0].exit_code, Some(0), "a batch app that finished well");
    assert!(out[0].ok() && t0.elapsed() < Duration::from_secs(3));
    host.exited.store(2, Ordering::SeqCst);
    let e = run_probes(&host, &[Probe::run_for("10s").unwrap()], &fast()).unwrap_err();
    assert!(e.to_string().contains("during `run-for 10s`"), "{e}");
}

#[test]
fn exec_probe_records_code_and_output_hash() {
    let out = run_probes(
        &Host::new(),
        &[Probe::exec("echo hi").unwrap(), Probe::exec("sh -c 'echo oops >&2; exit 4'").unwrap()],
        &fast(),
    )
    .unwrap();
    assert_eq!((out[0].exit_code, out[0].hash.as_deref()), (Some(0), Some(sha(b"hi\n").as_str())));
    assert!(out[0].ok());
    assert_eq!((out[1].exit_code, out[1].stderr.as_deref()), (Some(4), Some("oops\n")));
    assert!(!out[1].ok());
    let missing = run_probes(&Host::new(), &[Probe::exec("/no/such/program").unwrap()], &fast()).unwrap();
    assert!(missing[0].error.as_deref().unwrap().contains("cannot run it"), "{:?}", missing[0]);
}

fn outcome(probe: &str, status: Option<u16>, code: Option<i32>, body: &[u8]) -> ProbeOutcome {
    let mut o = ProbeOutcome::new(&probe.parse().unwrap());
    o.status = status;
    o.exit_code = code;
    o.record(body);
    o
}

fn one(a: &ProbeOutcome, b: &ProbeOutcome, mode: CompareMode) -> Vec<ProbeDiff> {
    compare(std::slice::from_ref(a), std::slice::from_ref(b), mode)
}

#[test]
fn comparison_rules() {
    let a = outcome("http 80:/", Some(200), None, b"v1");
    let same = outcome("http 80:/", Some(200), None, b"v1");
    let other_body = outcome("http 80:/", Some(200), None, b"v2");
    let not_found = outcome("http 80:/", Some(404), None, b"v1");
    assert!(one(&a, &same, CompareMode::Full).is_empty());
    let d = one(&a, &other_body, CompareMode::Full);
    assert_eq!(d.len(), 1);
    assert!(d[0].why.contains("body differs") && d[0].why.contains("--probe-compare status"), "{:?}", d[0]);
    assert!(one(&a, &other_body, CompareMode::Status).is_empty());
    let d = one(&a, &not_found, CompareMode::Status);
    assert!(d[0].why.contains("HTTP status 200 on the original, 404"), "{:?}", d[0]);
    assert!(d[0].original.starts_with("HTTP 200") && d[0].slim.starts_with("HTTP 404"), "{:?}", d[0]);

    let mut refused = ProbeOutcome::new(&"http 80:/".parse().unwrap());
    refused.error = Some("port 80 gave no answer".into());
    let d = one(&a, &refused, CompareMode::Status);
    assert!(d[0].why.contains("no answer from the slim image"), "{:?}", d[0]);

    let x0 = outcome("exec app --check", None, Some(0), b"fine");
    let x127 = outcome("exec app --check", None, Some(127), b"");
    let d = one(&x0, &x127, CompareMode::Status);
    assert!(d[0].why.contains("exit code 0 on the original, 127"), "{:?}", d[0]);

    let mut e1 = outcome("http 80:/=ok", Some(200), None, b"ok 1");
    e1.expect_met = Some(true);
    let mut e2 = outcome("http 80:/=ok", Some(200), None, b"fail 2");
    e2.expect_met = Some(false);
    let d = one(&e1, &e2, CompareMode::Status);
    assert!(d[0].why.contains("EXPECTED text is missing from the slim image's"), "{:?}", d[0]);

    // Lengths and order must match.
    assert_eq!(compare(&[a.clone(), x0.clone()], std::slice::from_ref(&a), CompareMode::Full).len(), 1);
    assert_eq!(compare(&[a.clone(), x0.clone()], &[x0, a], CompareMode::Full).len(), 2);
}

#[test]
fn ok_means_something_to_preserve() {
    assert!(outcome("http 80:/", Some(404), None, b"").ok(), "a 4xx is an answer to preserve");
    assert!(!outcome("http 80:/", Some(500), None, b"").ok());
    assert!(!outcome("exec false", None, Some(1), b"").ok());
    let mut e = outcome("http 80:/=x", Some(200), None, b"y");
    e.expect_met = Some(false);
    assert!(!e.ok());
    assert!(e.summary().contains("EXPECTED text missing"), "{}", e.summary());
    let json = serde_json::to_value(outcome("exec true", None, Some(0), b"")).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert!(json.get("status").is_none());
    let _ = AtomicUsize::new(0);
}
