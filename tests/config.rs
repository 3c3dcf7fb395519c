//! `serve`'s configuration: the example file and the README's table against the code, and
//! `callmood config check` as a user runs it (file, environment, flags, errors, secrets).
//! No model is loaded: `config check` only looks for the files.
use std::path::{Path, PathBuf};
use std::process::Command;

use callmood::config::{all_keys, Config, Layered};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `callmood SUBCOMMAND` run from the repository (where the committed emotion models are),
/// with no CALLMOOD_* variable of the test's own environment, and `--model` pointing at
/// `model` (`config check` only looks that the file exists).
fn callmood(subcommand: &[&str], model: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_callmood"));
    c.current_dir(repo())
        .args(subcommand)
        .arg("--model")
        .arg(model);
    for (k, _) in std::env::vars() {
        if k.starts_with("CALLMOOD_") {
            c.env_remove(k);
        }
    }
    c
}

/// `callmood config check --model MODEL`.
fn check(model: &Path) -> Command {
    callmood(&["config", "check"], model)
}

/// Runs `c`: (success, stdout, stderr).
fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A temporary directory with a stand-in model file and a configuration file holding `toml`.
struct Setup {
    dir: tempfile::TempDir,
    model: PathBuf,
    file: PathBuf,
}

fn setup(toml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bin");
    std::fs::write(&model, b"not read by config check").unwrap();
    let file = dir.path().join("callmood.toml");
    std::fs::write(&file, toml).unwrap();
    Setup { dir, model, file }
}

/// The line of `config check`'s output that sets `key` of `section`.
fn line<'a>(out: &'a str, section: &str, key: &str) -> &'a str {
    let start = out
        .find(&format!("[{section}]\n"))
        .unwrap_or_else(|| panic!("no [{section}] in {out}"));
    out[start..]
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {section}.{key} in {out}"))
}

#[test]
fn the_example_file_parses_to_the_defaults_and_names_every_key() {
    let path = repo().join(callmood::config::EXAMPLE_FILE);
    let l = Layered::from_file(&path).unwrap();
    assert_eq!(l.config, Config::default());
    l.validate().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for key in all_keys() {
        let (section, name) = key.split_once('.').unwrap();
        let body = text
            .split(&format!("[{section}]\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no [{section}]"));
        let body = body.split("\n[").next().unwrap();
        assert!(
            body.lines().any(|l| l
                .trim_start_matches("# ")
                .starts_with(&format!("{name} = "))),
            "{key} missing from the example"
        );
    }
}

/// The cells of each row of the README's "Configuration" table.
fn readme_table() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("### Configuration\n")
        .nth(1)
        .expect("a Configuration section")
        .split("\n##")
        .next()
        .unwrap()
        .to_string();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_readme_names_every_flag_and_variable_of_serve() {
    use clap::CommandFactory;
    let rows = readme_table();
    let cli = callmood::cli::Cli::command();
    let serve = cli.find_subcommand("serve").unwrap();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "config") {
            continue;
        }
        // The flag's row names its variable too.
        let row = rows
            .iter()
            .find(|r| r[2].contains(&format!("`--{long}`")))
            .unwrap_or_else(|| panic!("--{long} is in no row of the README's table"));
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(
                row[2].contains(&format!("`{env}`")),
                "{env} not beside --{long}"
            );
        }
    }
}

#[test]
fn the_readme_lists_every_key_with_its_default() {
    let rows = readme_table();
    let keys: Vec<String> = rows
        .iter()
        .map(|r| r[0].trim_matches('`').to_string())
        .collect();
    let want = all_keys();
    assert_eq!(keys, want);
    let defaults = Layered::default();
    for (key, row) in keys.iter().zip(&rows) {
        let cell = &row[1];
        let value = defaults.value_text(key);
        if value == "(not set)" {
            assert!(
                !cell.starts_with('`'),
                "{key}: {cell} but not set by default"
            );
        } else {
            assert_eq!(cell, &format!("`{value}`"), "{key}");
        }
    }
}

/// What `config check` says of a file holding `toml`, which it must refuse.
fn refused(toml: &str) -> String {
    let s = setup(toml);
    let (ok, _, err) = run(check(&s.model).arg("--config").arg(&s.file));
    assert!(!ok, "{toml} accepted");
    err
}

/// What `config check` says when the environment has `var=value`, which it must refuse.
fn env_refused(model: &Path, var: &str, value: &str) -> String {
    let (ok, _, err) = run(check(model).env(var, value));
    assert!(!ok, "{var}={value} accepted");
    err
}

#[test]
fn a_wrong_value_is_refused_with_the_key_its_value_and_the_file() {
    let s = setup("[alerts]\nescalate_angry = 1.7\n");
    let (ok, _, err) = run(check(&s.model).arg("--config").arg(&s.file));
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}: alerts.escalate_angry = 1.7: must be within 0..1",
            s.file.display()
        )),
        "{err}"
    );
    // serve refuses the same file the same way, before any model loads.
    let (ok, _, err) = run(callmood(&["serve"], &s.model).arg("--config").arg(&s.file));
    assert!(!ok);
    assert!(
        err.contains("alerts.escalate_angry = 1.7: must be within 0..1"),
        "{err}"
    );

    for (toml, needle) in [
        (
            "[server]\nmax_calls = \"many\"\n",
            "server.max_calls = \"many\": invalid type: string \"many\", expected usize",
        ),
        (
            "[server]\nmax_calls = 0\n",
            "server.max_calls = 0: must be at least 1",
        ),
        ("[asr]\nworkers = 0\n", "asr.workers = 0: must be ≥ 1"),
        (
            "[legs]\nrtp_ports = \"5000-4000\"\n",
            "legs.rtp_ports = \"5000-4000\"",
        ),
        (
            "[legs]\nrtp_allow = \"127.0.0.1,10.0.0.0/33\"\n",
            "\"10.0.0.0/33\" is not a network",
        ),
        (
            "[security]\ntenant_max_calls = 4\n",
            "security.tenant_max_calls = 4: needs security.auth_tokens",
        ),
        (
            "[security]\npayment_window_s = 601\n",
            "security.payment_window_s = 601: must be at most 600",
        ),
        (
            "[security]\npayment_window_s = -1\n",
            "security.payment_window_s = -1: invalid value",
        ),
        (
            "[alerts]\nescalate_window = 2\n",
            "alerts.escalate_window = 2: must be at least escalate_min_utterances (3)",
        ),
    ] {
        let err = refused(toml);
        assert!(err.contains(needle), "{toml}: {err}");
    }
}

#[test]
fn an_unknown_key_or_section_is_refused() {
    for (toml, needle) in [
        (
            "[server]\nmax_cals = 3\n",
            "server.max_cals: unknown key (known: addr, max_calls,",
        ),
        (
            "[alrets]\ncooldown_ms = 1\n",
            "alrets: unknown key (known: server, models,",
        ),
        ("max_calls = 3\n", "max_calls: unknown key"),
    ] {
        let err = refused(toml);
        assert!(err.contains(needle), "{toml}: {err}");
    }
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let s = setup("[server]\naddr = \"127.0.0.1:1001\"\nmax_calls = 5\ndrain_timeout_s = 7\n");
    let file = |c: &mut Command| {
        c.arg("--config").arg(&s.file);
    };
    // The file alone; a flag's default (--drain-timeout 30) does not undo it.
    let mut c = check(&s.model);
    file(&mut c);
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    let file_name = s.file.display().to_string();
    assert!(line(&out, "server", "addr").contains("\"127.0.0.1:1001\""));
    assert!(line(&out, "server", "addr").ends_with(&file_name), "{out}");
    assert!(line(&out, "server", "drain_timeout_s").starts_with("drain_timeout_s = 7 "));
    assert!(line(&out, "server", "idle_timeout_s").ends_with("# default"));
    // The environment over the file.
    let mut c = check(&s.model);
    file(&mut c);
    c.env("CALLMOOD_ADDR", "127.0.0.1:1002")
        .env("CALLMOOD_MAX_CALLS", "9");
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    assert!(line(&out, "server", "addr").contains("\"127.0.0.1:1002\""));
    assert!(line(&out, "server", "addr").ends_with("# env CALLMOOD_ADDR"));
    assert!(line(&out, "server", "max_calls").starts_with("max_calls = 9 "));
    // A flag over both.
    let mut c = check(&s.model);
    file(&mut c);
    c.env("CALLMOOD_ADDR", "127.0.0.1:1002").args([
        "--addr",
        "127.0.0.1:1003",
        "--no-words",
        "--workers",
        "3",
    ]);
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    assert!(line(&out, "server", "addr").contains("\"127.0.0.1:1003\""));
    assert!(line(&out, "server", "addr").ends_with("# flag --addr"));
    assert!(line(&out, "models", "words").starts_with("words = false "));
    assert!(line(&out, "asr", "workers").starts_with("workers = 3 "));
    assert!(line(&out, "server", "max_calls").starts_with("max_calls = 5 "));
    // A wrong value from the environment names the variable.
    let err = env_refused(&s.model, "CALLMOOD_MAX_CALLS", "0");
    assert!(
        err.contains("CALLMOOD_MAX_CALLS=0 (server.max_calls): must be at least 1"),
        "{err}"
    );
    // The file named by CALLMOOD_CONFIG.
    let mut c = check(&s.model);
    c.env("CALLMOOD_CONFIG", &s.file);
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    assert!(line(&out, "server", "max_calls").starts_with("max_calls = 5 "));
}

#[test]
fn any_key_set_in_the_environment_beats_the_file_and_loses_to_a_flag() {
    let s = setup("[server]\nmax_calls = 5\n[alerts]\nescalate_angry = 0.6\n");
    let mut c = check(&s.model);
    c.arg("--config")
        .arg(&s.file)
        .env("CALLMOOD_ALERTS__ESCALATE_ANGRY", "0.7")
        .env("CALLMOOD_SERVER__MAX_CALLS", "4");
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    let angry = line(&out, "alerts", "escalate_angry");
    assert!(angry.starts_with("escalate_angry = 0.7 "), "{out}");
    assert!(
        angry.ends_with("# env CALLMOOD_ALERTS__ESCALATE_ANGRY"),
        "{out}"
    );
    assert!(line(&out, "server", "max_calls").starts_with("max_calls = 4 "));
    let (ok, out, err) = run(c.args(["--max-calls", "6"]));
    assert!(ok, "{err}");
    assert!(line(&out, "server", "max_calls").ends_with("# flag --max-calls"));
    // A misspelt variable is refused, not ignored; so is a value out of range.
    let err = env_refused(&s.model, "CALLMOOD_ALERTS__ESCALATE_ANGER", "0.7");
    assert!(
        err.contains("env CALLMOOD_ALERTS__ESCALATE_ANGER: alerts.escalate_anger: unknown key"),
        "{err}"
    );
    let err = env_refused(&s.model, "CALLMOOD_ALERTS__ESCALATE_ANGRY", "1.7");
    assert!(
        err.contains(
            "CALLMOOD_ALERTS__ESCALATE_ANGRY=1.7 (alerts.escalate_angry): must be within 0..1"
        ),
        "{err}"
    );
}

/// AudioHook client secrets: shown hidden, and a malformed entry refused with the key and
/// the entry's position named, never its text.
#[test]
fn audiohook_client_secrets_are_hidden_and_checked() {
    let s = setup("");
    // "c2VjcmV0LXZhbHVl" is base64 of "secret-value".
    let mut c = check(&s.model);
    c.env(
        "CALLMOOD_AUDIOHOOK_CLIENT_SECRETS",
        "hook-key-1:c2VjcmV0LXZhbHVl,hook-key-2:c2VjcmV0LXZhbHVl",
    );
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    let all = format!("{out}{err}");
    assert!(
        !all.contains("c2VjcmV0") && !all.contains("hook-key"),
        "{all}"
    );
    assert!(
        line(&out, "ws", "audiohook_client_secrets")
            .starts_with("audiohook_client_secrets = [\"<hidden>\", \"<hidden>\"]"),
        "{out}"
    );
    for (entry, why) in [
        ("hook-key-1", "entry 1: not KEY:SECRET"),
        (":c2VjcmV0LXZhbHVl", "entry 1: the API key is empty"),
        (
            "hook-key-1:not base64 secret!",
            "entry 1: the client secret is not base64",
        ),
    ] {
        let (ok, out, err) = run(check(&s.model).arg("--audiohook-client-secret").arg(entry));
        assert!(!ok, "{entry}");
        assert!(err.contains("ws.audiohook_client_secrets"), "{err}");
        assert!(err.contains(why), "{entry}: {err}");
        assert!(
            !format!("{out}{err}").contains("hook-key"),
            "{entry}: {err}"
        );
    }
}

/// Twilio auth tokens: shown hidden; the public URL checked and refused without a token.
#[test]
fn twilio_auth_tokens_are_hidden_and_the_public_url_checked() {
    let s = setup("");
    let mut c = check(&s.model);
    c.env("CALLMOOD_TWILIO_AUTH_TOKENS", "tw-token-1,tw-token-2")
        .arg("--twilio-public-url")
        .arg("wss://callmood.example.com");
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    assert!(!format!("{out}{err}").contains("tw-token"), "{out}{err}");
    assert!(
        line(&out, "ws", "twilio_auth_tokens")
            .starts_with("twilio_auth_tokens = [\"<hidden>\", \"<hidden>\"]"),
        "{out}"
    );
    for (args, why) in [
        (
            vec![
                "--twilio-auth-token",
                "t",
                "--twilio-public-url",
                "https://callmood.example.com",
            ],
            "must start with wss://",
        ),
        (
            vec!["--twilio-public-url", "wss://callmood.example.com"],
            "needs ws.twilio_auth_tokens",
        ),
    ] {
        let (ok, _, err) = run(check(&s.model).args(&args));
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("ws.twilio_public_url") && err.contains(why),
            "{err}"
        );
    }
    // The audio fork's Basic credentials: hidden, and a pair without a user refused.
    let (ok, out, err) = run(check(&s.model).arg("--fork-basic-auth").arg("fs:fork-pw"));
    assert!(ok, "{err}");
    assert!(!format!("{out}{err}").contains("fork-pw"), "{out}{err}");
    let (ok, out, err) = run(check(&s.model).arg("--fork-basic-auth").arg("no-colon-pw"));
    assert!(!ok);
    assert!(
        err.contains("ws.fork_basic_auth") && err.contains("entry 1: not USER:PASSWORD"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains("no-colon-pw"), "{err}");
}

/// `serve --help` and `config check --help` name each flag's environment variable, never
/// a secret one's value.
#[test]
fn help_never_prints_a_secret_from_the_environment() {
    for cmd in [&["serve", "--help"][..], &["config", "check", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_callmood"))
            .args(cmd)
            .env("CALLMOOD_AUDIOHOOK_API_KEYS", "sekrit-1")
            .env("CALLMOOD_AUDIOHOOK_CLIENT_SECRETS", "k:c2Vrcml0LTI=")
            .env("CALLMOOD_TWILIO_AUTH_TOKENS", "sekrit-3")
            .env("CALLMOOD_FORK_BASIC_AUTH", "fs:sekrit-4")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("CALLMOOD_TWILIO_AUTH_TOKENS"), "{help}");
        for secret in ["sekrit", "c2Vrcml0"] {
            assert!(!help.contains(secret), "{help}");
        }
    }
}

#[test]
fn secrets_are_never_printed() {
    let s = setup("");
    let tokens = s.dir.path().join("tokens");
    std::fs::write(&tokens, "tok-secret-0123456789 acme\n").unwrap();
    let toml = format!(
        "[security]\nauth_tokens = {:?}\ntenant_max_calls = 2\n",
        tokens.display().to_string()
    );
    std::fs::write(&s.file, toml).unwrap();
    let mut c = check(&s.model);
    c.arg("--config")
        .arg(&s.file)
        .env("CALLMOOD_AUDIOHOOK_API_KEYS", "hook-secret-1,hook-secret-2");
    let (ok, out, err) = run(&mut c);
    assert!(ok, "{err}");
    let all = format!("{out}{err}");
    // The values hold "-secret"; the key `audiohook_client_secrets` may be printed.
    assert!(!all.contains("-secret"), "{all}");
    assert!(
        line(&out, "ws", "audiohook_api_keys")
            .starts_with("audiohook_api_keys = [\"<hidden>\", \"<hidden>\"]"),
        "{out}"
    );
    assert!(line(&out, "security", "auth_tokens").contains(&tokens.display().to_string()));

    // Nor in errors: a secret of the wrong type, a file that is not TOML on the secret's
    // line, a token file refused.
    for toml in [
        "[ws]\naudiohook_api_keys = \"hook-secret\"\n",
        "[ws]\naudiohook_api_keys = [\"hook-secret\", 3]\n",
        "[ws]\naudiohook_api_keys = [\"hook-secret\"\n",
    ] {
        std::fs::write(&s.file, toml).unwrap();
        let (ok, out, err) = run(check(&s.model).arg("--config").arg(&s.file));
        assert!(!ok, "{toml}");
        assert!(!format!("{out}{err}").contains("secret"), "{toml}: {err}");
        assert!(err.contains(&s.file.display().to_string()), "{err}");
    }
    for value in ["hook-secret", "[\"hook-secret\", 3]"] {
        let mut c = check(&s.model);
        c.env("CALLMOOD_WS__AUDIOHOOK_API_KEYS", value);
        let (ok, out, err) = run(&mut c);
        assert!(!ok, "{value}");
        assert!(!format!("{out}{err}").contains("secret"), "{value}: {err}");
        assert!(err.contains("ws.audiohook_api_keys"), "{err}");
    }
    std::fs::write(&tokens, "tok-secret-0123456789\n").unwrap();
    let (ok, out, err) = run(check(&s.model).arg("--auth-tokens").arg(&tokens));
    assert!(!ok);
    assert!(!format!("{out}{err}").contains("secret"), "{err}");
}

#[test]
fn a_missing_model_fails_the_check() {
    let s = setup("");
    let (ok, _, err) = run(&mut check(&s.dir.path().join("none.bin")));
    assert!(!ok);
    assert!(err.contains("models/fetch.sh"), "{err}");
    let (ok, _, err) = run(check(&s.model).args(["--lexicon", "no/such/dir"]));
    assert!(!ok);
    assert!(
        err.contains("models.lexicon = no/such/dir: not found"),
        "{err}"
    );
    // Unless the words are off.
    let (ok, _, err) = run(check(&s.model).args(["--lexicon", "no/such/dir", "--no-words"]));
    assert!(ok, "{err}");
}

/// A server (no models: prosody only) run with `toml`'s settings on loopback, with an
/// AudioSocket listener: its gRPC and AudioSocket addresses, and the sender that stops it.
async fn serve_with(
    toml: &str,
) -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let l = Layered::from_toml(toml, Path::new("callmood.toml")).unwrap();
    l.validate().unwrap();
    let cfg = l.config.serve_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let audiosocket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (
        listener.local_addr().unwrap(),
        audiosocket.local_addr().unwrap(),
    );
    let analyzer = callmood::server::session::Analyzer {
        plan: callmood::core::dsp::DspPlan::new(),
        asr: None,
        voice: None,
        words: None,
        metrics: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        callmood::server::serve_on(listener, Some(audiosocket), None, analyzer, &cfg, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addrs.0, addrs.1, stop)
}

/// The `long_silence` alerts among a call's events, which must end with its summary.
async fn long_silences(mut events: tonic::Streaming<callmood::proto::CallEvent>) -> usize {
    use callmood::proto::call_event::Event;
    let mut alerts = 0;
    let mut summary = false;
    while let Some(e) = tokio::time::timeout(std::time::Duration::from_secs(20), events.message())
        .await
        .expect("events within 20 s")
        .unwrap()
    {
        match e.event {
            Some(Event::Alert(a)) if a.kind == "long_silence" => alerts += 1,
            Some(Event::Summary(_)) => summary = true,
            _ => {}
        }
    }
    assert!(summary, "no summary");
    alerts
}

/// `long_silence` alerts of one recording of `secs` of silence sent through
/// `AnalyzeRecording` to a server run with `toml`'s settings.
async fn long_silence_alerts(toml: &str, secs: u32) -> usize {
    use callmood::proto::{self, call_analyzer_client::CallAnalyzerClient};
    let (addr, _, _stop) = serve_with(toml).await;
    let mut wav = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut wav, spec).unwrap();
        for _ in 0..secs * 16_000 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
    }
    let mut client = CallAnalyzerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let events = client
        .analyze_recording(proto::AnalyzeRecordingRequest {
            call_id: "quiet".into(),
            audio: Some(proto::analyze_recording_request::Audio::Wav(
                wav.into_inner(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    long_silences(events).await
}

/// The same over an AudioSocket leg (the legs' registry starts that call): `secs` of
/// 8 kHz silence in 20 ms frames, then a hang-up, watched with `WatchCall`.
async fn long_silence_alerts_of_a_leg(toml: &str, secs: u32) -> usize {
    use callmood::proto::{self, call_analyzer_client::CallAnalyzerClient};
    use tokio::io::AsyncWriteExt;
    let (addr, audiosocket, _stop) = serve_with(toml).await;
    let id = "00010203-0405-0607-0809-0a0b0c0d0e0f";
    let mut conn = tokio::net::TcpStream::connect(audiosocket).await.unwrap();
    let mut frames = vec![0x01, 0, 16];
    frames.extend(0u8..16);
    conn.write_all(&frames).await.unwrap();
    let mut client = CallAnalyzerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let events = client
        .watch_call(proto::WatchCallRequest { call_id: id.into() })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..secs * 50 {
        let mut audio = vec![0x10, 0x01, 0x40];
        audio.extend([0u8; 320]);
        conn.write_all(&audio).await.unwrap();
    }
    conn.write_all(&[0x00, 0, 0]).await.unwrap();
    long_silences(events).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_alert_settings_reach_every_call() {
    // 4 s of silence: under the default 10 s, over the file's 1 s.
    let file = "[alerts]\nlong_silence_ms = 1000\n";
    assert_eq!(long_silence_alerts("", 4).await, 0);
    assert_eq!(long_silence_alerts(file, 4).await, 1);
    assert_eq!(long_silence_alerts_of_a_leg("", 4).await, 0);
    assert_eq!(long_silence_alerts_of_a_leg(file, 4).await, 1);
}

#[test]
fn rtp_allow_takes_networks_and_refuses_a_wrong_one_by_its_value() {
    let s = setup("[legs]\nrtp_allow = \"10.0.0.0/8\"\n");
    let (ok, out, err) = run(check(&s.model)
        .arg("--config")
        .arg(&s.file)
        .args(["--rtp-allow", "127.0.0.1, 192.0.2.0/24"]));
    assert!(ok, "{err}");
    assert!(
        line(&out, "legs", "rtp_allow").contains("\"127.0.0.1/32,192.0.2.0/24\""),
        "{out}"
    );
    // serve refuses a wrong network at start, naming it, before any model loads
    let (ok, _, err) =
        run(callmood(&["serve"], &s.model).args(["--rtp-allow", "10.0.0.0/8,10.1/16"]));
    assert!(!ok);
    assert!(err.contains("\"10.1/16\" is not a network"), "{err}");
    let err = env_refused(&s.model, "CALLMOOD_RTP_ALLOW", "192.0.2.1/24");
    assert!(err.contains("\"192.0.2.1/24\" has host bits set"), "{err}");
}
