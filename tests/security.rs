//! Issue 20: tokens and tenants, call id limits (and TLS). The server runs in-process
//! without any model (prosody only): no audio needs to be understood here.
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use callmood::call::CallSettings;
use callmood::core::dsp::DspPlan;
use callmood::proto::call_analyzer_client::CallAnalyzerClient;
use callmood::proto::{self, stream_call_request, StreamCallRequest};
use callmood::server::security::SecurityConfig;
use callmood::server::session::Analyzer;
use callmood::server::{serve_on, ServeConfig};
use common::{token_client, AddToken};
use tokio_rustls::rustls;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const TOKEN_A: &str = "acme-0123456789abcdef";
const TOKEN_B: &str = "globex-0123456789abcdef";
const TOKEN_MEDIA: &str = "media-0123456789abcdef";
/// How long `WatchCall` waits for a call that has no leg yet, in these tests.
const JOIN_TIMEOUT: Duration = Duration::from_millis(500);

fn config(addr: SocketAddr, security: SecurityConfig) -> ServeConfig {
    ServeConfig {
        addr,
        model: Default::default(),
        emotion_model: None,
        words_model: None,
        asr: Default::default(),
        max_calls: 16,
        max_message_bytes: callmood::server::DEFAULT_MAX_MESSAGE_BYTES,
        max_recording_bytes: callmood::server::DEFAULT_MAX_RECORDING_BYTES,
        max_recordings: callmood::server::DEFAULT_MAX_RECORDINGS,
        max_ahead: callmood::server::DEFAULT_MAX_AHEAD,
        idle_timeout: Duration::from_secs(30),
        config_timeout: callmood::server::DEFAULT_CONFIG_TIMEOUT,
        call: CallSettings::default(),
        alerts: Default::default(),
        legs: callmood::server::legs::LegsConfig {
            rtp_addr: [127, 0, 0, 1].into(),
            advertise_addr: None,
            rtp_ports: 42000..=42999,
            rtp_allow: Vec::new(),
            idle_timeout: Duration::from_secs(30),
            join_timeout: JOIN_TIMEOUT,
        },
        audiosocket_addr: None,
        metrics_addr: None,
        drain_timeout: Duration::from_secs(1),
        ws_addr: None,
        ws: Default::default(),
        security,
    }
}

/// A server on loopback with the token file `tokens` (tenants acme and globex) and
/// `tenant_max_calls`; it stops when the sender drops.
async fn start(
    dir: &Path,
    tenant_max_calls: Option<usize>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        format!("# test tenants\n{TOKEN_A} acme\n\n{TOKEN_B}   globex\n"),
    )
    .unwrap();
    let security = SecurityConfig {
        auth_tokens: Some(tokens),
        tenant_max_calls,
        ..Default::default()
    };
    start_with(security).await
}

/// A server on loopback with these security settings.
async fn start_with(security: SecurityConfig) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_serving(security, None, None, Default::default()).await
}

/// A server on loopback with these security settings, and AudioSocket and WebSocket
/// media listeners if given.
async fn start_serving(
    security: SecurityConfig,
    audiosocket: Option<tokio::net::TcpListener>,
    websocket: Option<tokio::net::TcpListener>,
    ws: callmood::server::ws::WsConfig,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ServeConfig {
        ws,
        ..config(addr, security)
    };
    let analyzer = Analyzer {
        plan: DspPlan::new(),
        asr: None,
        voice: None,
        words: None,
        metrics: Default::default(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve_on(listener, audiosocket, websocket, analyzer, &cfg, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx)
}

/// A media listener of the tests.
enum Media {
    AudioSocket,
    WebSocket,
}

/// A server on loopback with these security settings and one media listener: the gRPC
/// address, the media listener's, and the stop sender.
async fn start_media(
    security: SecurityConfig,
    media: Media,
) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media_addr = l.local_addr().unwrap();
    let (addr, stop) = match media {
        Media::AudioSocket => start_serving(security, Some(l), None, Default::default()).await,
        Media::WebSocket => start_serving(security, None, Some(l), Default::default()).await,
    };
    (addr, media_addr, stop)
}

fn rtp_leg(call_id: &str) -> proto::OpenRtpLegRequest {
    proto::OpenRtpLegRequest {
        call_id: call_id.into(),
        encoding: proto::Encoding::Mulaw as i32,
        ..Default::default()
    }
}

/// A `StreamCall` config of one 8 kHz μ-law channel.
fn mulaw_config(call_id: &str, channel_id: u32, role: i32) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(stream_call_request::Request::Config(proto::CallConfig {
            call_id: call_id.into(),
            channels: vec![proto::ChannelConfig {
                channel_id,
                role,
                encoding: proto::Encoding::Mulaw as i32,
                sample_rate_hz: 8000,
                ..Default::default()
            }],
            ..Default::default()
        })),
    }
}

fn watch(call_id: &str) -> proto::WatchCallRequest {
    proto::WatchCallRequest {
        call_id: call_id.into(),
    }
}

fn close(call_id: &str, channel_id: u32) -> proto::CloseLegRequest {
    proto::CloseLegRequest {
        call_id: call_id.into(),
        channel_id,
    }
}

#[tokio::test]
async fn requests_without_a_known_token_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start(dir.path(), None).await;
    for token in [None, Some("acme-0123456789abcdeX"), Some("")] {
        let mut c = token_client(addr, token).await;
        let e = c.watch_call(watch("c1")).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
        assert_eq!(
            e.message(),
            "authorization: a valid `Bearer` token is required"
        );
        let e = c.open_rtp_leg(rtp_leg("c1")).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = c.close_leg(close("c1", 0)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let (tx, rx) = tokio::sync::mpsc::channel::<StreamCallRequest>(1);
        drop(tx);
        let e = c
            .stream_call(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = c
            .analyze_recording(proto::AnalyzeRecordingRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // A token of another scheme is no bearer token.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let basic: AddToken = Box::new(|mut req: Request<()>| {
        let v = format!("Basic {TOKEN_A}").parse().unwrap();
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    });
    let e = CallAnalyzerClient::with_interceptor(channel, basic)
        .watch_call(watch("c1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // The token itself is the whole secret: a right token opens the door.
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    a.open_rtp_leg(rtp_leg("c1")).await.unwrap();
    a.close_leg(close("c1", 0)).await.unwrap();
}

#[tokio::test]
async fn another_tenants_call_is_out_of_reach_and_looks_like_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start(dir.path(), None).await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    let mut b = token_client(addr, Some(TOKEN_B)).await;
    let leg = a
        .open_rtp_leg(rtp_leg("shared-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(leg.channel_id, 0);

    // WatchCall: the same code, message and wait for A's id as for an id nobody has.
    let t = Instant::now();
    let theirs = b.watch_call(watch("shared-1")).await.unwrap_err();
    let waited_theirs = t.elapsed();
    let t = Instant::now();
    let nobodys = b.watch_call(watch("nobody-1")).await.unwrap_err();
    let waited_nobodys = t.elapsed();
    assert_eq!(theirs.code(), Code::PermissionDenied, "{theirs:?}");
    assert_eq!(nobodys.code(), Code::PermissionDenied, "{nobodys:?}");
    assert_eq!(
        theirs.message(),
        nobodys.message().replace("nobody-1", "shared-1")
    );
    assert_eq!(
        theirs.message(),
        "call \"shared-1\": no such call of this tenant"
    );
    for w in [waited_theirs, waited_nobodys] {
        assert!(w >= JOIN_TIMEOUT && w < JOIN_TIMEOUT * 3, "{w:?}");
    }

    // CloseLeg: refused alike, and A's leg stays open.
    let theirs = b.close_leg(close("shared-1", 0)).await.unwrap_err();
    let nobodys = b.close_leg(close("nobody-1", 0)).await.unwrap_err();
    assert_eq!(theirs.code(), Code::PermissionDenied);
    assert_eq!(
        theirs.message(),
        nobodys.message().replace("nobody-1", "shared-1")
    );

    // OpenRtpLeg on A's id starts B's own call of that name (channel 0), exactly as
    // for an id nobody has; nothing joins A's call: A's next leg is its channel 1.
    let bs = b
        .open_rtp_leg(rtp_leg("shared-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bs.channel_id, 0);
    assert_ne!(bs.port, leg.port);
    let a2 = a
        .open_rtp_leg(rtp_leg("shared-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a2.channel_id, 1);

    // Each tenant watches its own call of that id: A's summary lists A's two legs.
    let mut wa = a.watch_call(watch("shared-1")).await.unwrap().into_inner();
    let mut wb = b.watch_call(watch("shared-1")).await.unwrap().into_inner();
    for ch in [0, 1] {
        a.close_leg(close("shared-1", ch)).await.unwrap();
    }
    b.close_leg(close("shared-1", 0)).await.unwrap();
    let legs_in_summary = |events: Vec<proto::CallEvent>| {
        events
            .into_iter()
            .find_map(|e| match e.event {
                Some(proto::call_event::Event::Summary(s)) => Some(s.legs.len()),
                _ => None,
            })
            .expect("a summary")
    };
    let mut all_a = Vec::new();
    while let Some(e) = wa.message().await.unwrap() {
        all_a.push(e);
    }
    let mut all_b = Vec::new();
    while let Some(e) = wb.message().await.unwrap() {
        all_b.push(e);
    }
    assert_eq!(legs_in_summary(all_a), 2);
    assert_eq!(legs_in_summary(all_b), 1);
}

#[tokio::test]
async fn each_tenant_has_its_own_cap_on_calls_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start(dir.path(), Some(2)).await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    let mut b = token_client(addr, Some(TOKEN_B)).await;
    a.open_rtp_leg(rtp_leg("a1")).await.unwrap();
    a.open_rtp_leg(rtp_leg("a2")).await.unwrap();
    // A second leg of a call in flight is no new call.
    a.open_rtp_leg(rtp_leg("a2")).await.unwrap();
    let e = a.open_rtp_leg(rtp_leg("a3")).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(
        e.message(),
        "this tenant has 2 calls in flight, its limit: retry later"
    );
    // StreamCall counts too.
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamCallRequest>(1);
    drop(tx);
    let e = a
        .stream_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The other tenant is not held up.
    b.open_rtp_leg(rtp_leg("b1")).await.unwrap();
    b.open_rtp_leg(rtp_leg("b2")).await.unwrap();
    // A call that ends gives its place back.
    a.close_leg(close("a1", 0)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.open_rtp_leg(rtp_leg("a3")).await {
            Ok(_) => break,
            Err(e) if e.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// RTP ports are not handed out in order: were they, tenant B could send RTP to the port
/// after its own leg's, be latched as the sender of A's next leg, and put its audio in A's
/// call. Eight legs in a row do not take eight ports in a row (by chance: under 1 in 10^18
/// over the 500 even ports of the range).
#[tokio::test]
async fn the_next_rtp_port_cannot_be_guessed_from_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start(dir.path(), None).await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    let mut ports = Vec::new();
    for k in 0..8 {
        let leg = a
            .open_rtp_leg(rtp_leg(&format!("p{k}")))
            .await
            .unwrap()
            .into_inner();
        assert!(
            (42000..=42999).contains(&leg.port) && leg.port % 2 == 0,
            "{leg:?}"
        );
        ports.push(leg.port);
    }
    let in_order = ports.windows(2).all(|w| w[1] == w[0] + 2);
    assert!(!in_order, "ports handed out in order: {ports:?}");
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "a port handed out twice: {ports:?}"
    );
}

#[tokio::test]
async fn call_ids_are_limited_and_never_echoed_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = start(dir.path(), None).await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    // 1 MB: under the 1 MiB message limit, so that the id check answers.
    let huge = "x".repeat(1_000_000);
    let check = |e: Status| {
        assert_eq!(e.code(), Code::InvalidArgument, "{}", &e.message()[..100]);
        assert!(e.message().len() < 200, "{} bytes", e.message().len());
        assert!(e.message().contains("1000000 bytes"), "{}", e.message());
    };
    check(a.watch_call(watch(&huge)).await.unwrap_err());
    check(a.open_rtp_leg(rtp_leg(&huge)).await.unwrap_err());
    check(a.close_leg(close(&huge, 0)).await.unwrap_err());
    let config = mulaw_config(&huge, 0, proto::Role::Caller as i32);
    let s = a
        .stream_call(tokio_stream::iter(vec![config]))
        .await
        .unwrap_err();
    check(s);
    // A bad character is refused whatever the length.
    let e = a.watch_call(watch("a/../b")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("a character outside"),
        "{}",
        e.message()
    );
    // Ids of the connectors pass: a Twilio call SID, a UUID, a SIP Call-ID.
    for id in [
        "CA5f6e1a2b3c4d5e6f708192a3b4c5d6e7",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "a84b4c76e66710@pc33.example.com",
    ] {
        a.open_rtp_leg(rtp_leg(id)).await.unwrap();
        a.close_leg(close(id, 0)).await.unwrap();
    }
}

#[tokio::test]
async fn tls_clients_connect_and_plaintext_ones_do_not() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let (addr, _stop) = start_with(SecurityConfig {
        tls: Some(callmood::server::security::TlsFiles {
            cert: cert_pem.clone(),
            key: key_pem,
            client_ca: None,
        }),
        ..Default::default()
    })
    .await;

    // The crate's own client (`callmood stream` and the others) with --tls-ca.
    let access = callmood::client::stream::Access {
        tls_ca: Some(cert_pem.clone()),
        token: None,
        ..Default::default()
    };
    let mut c = callmood::client::stream::connect(&format!("https://{addr}"), &access)
        .await
        .unwrap();
    c.open_rtp_leg(rtp_leg("tls-1")).await.unwrap();
    c.close_leg(close("tls-1", 0)).await.unwrap();
    // By name too.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    CallAnalyzerClient::new(channel)
        .open_rtp_leg(rtp_leg("tls-2"))
        .await
        .unwrap();

    // Plaintext gets no answer from a TLS listener.
    let plain = async {
        let mut c = CallAnalyzerClient::connect(format!("http://{addr}")).await?;
        c.open_rtp_leg(rtp_leg("plain-1")).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    let r = tokio::time::timeout(Duration::from_secs(10), plain)
        .await
        .expect("a plaintext client is refused, not left hanging");
    assert!(r.is_err(), "a plaintext client got through");
    // A client that trusts another certificate is refused too.
    let other_ca = dir.path().join("other.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let untrusted = callmood::client::stream::connect(
        &format!("https://{addr}"),
        &callmood::client::stream::Access {
            tls_ca: Some(other_ca),
            token: None,
            ..Default::default()
        },
    )
    .await;
    assert!(untrusted.is_err());
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificate_get_in() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let pki = test_pki(true);
    let (addr, _stop) = start_with(SecurityConfig {
        tls: Some(pki.files.clone()),
        ..Default::default()
    })
    .await;
    let try_call = |identity: Option<Identity>| {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&pki.ca_pem))
            .domain_name("localhost");
        if let Some(id) = identity {
            tls = tls.identity(id);
        }
        async move {
            let channel = Endpoint::from_shared(format!("https://{addr}"))?
                .tls_config(tls)?
                .connect()
                .await?;
            CallAnalyzerClient::new(channel)
                .open_rtp_leg(rtp_leg("mtls-1"))
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    let with = tokio::time::timeout(
        Duration::from_secs(10),
        try_call(Some(Identity::from_pem(&pki.client.0, &pki.client.1))),
    )
    .await
    .unwrap();
    assert!(with.is_ok(), "{with:?}");
    let without = tokio::time::timeout(Duration::from_secs(10), try_call(None))
        .await
        .unwrap();
    assert!(without.is_err(), "a client without a certificate got in");
}

#[tokio::test]
async fn calls_of_transports_without_tokens_belong_to_the_media_tenant() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN_A} acme\n{TOKEN_B} globex\n")).unwrap();
    let (addr, as_addr, _stop) = start_media(
        SecurityConfig {
            auth_tokens: Some(tokens),
            media_tenant: Some("acme".into()),
            ..Default::default()
        },
        Media::AudioSocket,
    )
    .await;
    // An AudioSocket call: its UUID, 200 ms of silence, then a hang-up.
    let uuid: Vec<u8> = (0u8..16).collect();
    let id = "00010203-0405-0607-0809-0a0b0c0d0e0f";
    let mut conn = tokio::net::TcpStream::connect(as_addr).await.unwrap();
    let mut frames = vec![0x01, 0, 16];
    frames.extend(&uuid);
    conn.write_all(&frames).await.unwrap();
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    let mut b = token_client(addr, Some(TOKEN_B)).await;
    let mut watched = a.watch_call(watch(id)).await.unwrap().into_inner();
    let e = b.watch_call(watch(id)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = b.close_leg(close(id, 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    for _ in 0..10 {
        let mut audio = vec![0x10, 0x01, 0x40];
        audio.extend(vec![0u8; 320]);
        conn.write_all(&audio).await.unwrap();
    }
    conn.write_all(&[0x00, 0, 0]).await.unwrap();
    let mut summary = false;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), watched.message())
        .await
        .unwrap()
        .unwrap()
    {
        assert_eq!(ev.call_id, id);
        summary |= matches!(ev.event, Some(proto::call_event::Event::Summary(_)));
    }
    assert!(summary, "the media tenant watched the call to its summary");
}

/// A certificate for `localhost` and 127.0.0.1 signed by a CA made here, written as PEM
/// files; `client`: also a client certificate of that CA, and the CA as `tls_client_ca`.
struct TestPki {
    _dir: tempfile::TempDir,
    files: callmood::server::security::TlsFiles,
    ca: rustls::pki_types::CertificateDer<'static>,
    ca_pem: String,
    /// A client certificate for `pbx.acme` (PEM cert, key).
    client: (String, String),
    /// Client certificates for `qa.globex` and for `stranger.example`.
    globex: (String, String),
    stranger: (String, String),
}

fn test_pki(client_ca: bool) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = signed(vec!["localhost".into(), "127.0.0.1".into()]);
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let files = callmood::server::security::TlsFiles {
        cert: path("server.pem", &server_cert),
        key: path("server.key", &server_key),
        client_ca: client_ca.then(|| path("ca.pem", &ca.pem())),
    };
    TestPki {
        files,
        ca: ca.der().clone(),
        ca_pem: ca.pem(),
        client: signed(vec!["pbx.acme".into()]),
        globex: signed(vec!["qa.globex".into()]),
        stranger: signed(vec!["stranger.example".into()]),
        _dir: dir,
    }
}

/// A TLS connection to `addr` as `localhost`, trusting `ca` only, with the client
/// certificate (PEM cert, key) if given: rustls on ring, as the server.
async fn tls_connect(
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    client: Option<&(String, String)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    #[allow(deprecated)] // ring, as the server (see src/server/tls.rs)
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
}

/// A gRPC client of a TLS server whose certificate `pki` made.
async fn tls_client(addr: SocketAddr, pki: &TestPki) -> CallAnalyzerClient<Channel> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if pki.files.client_ca.is_some() {
        tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    CallAnalyzerClient::new(channel)
}

/// The call's events to its summary (10 s at most between two).
async fn to_summary(
    mut events: tonic::Streaming<proto::CallEvent>,
    call_id: &str,
) -> proto::CallSummary {
    let mut summary = None;
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("events within 10 s")
        .unwrap()
    {
        assert_eq!(ev.call_id, call_id);
        if let Some(proto::call_event::Event::Summary(s)) = ev.event {
            summary = Some(s);
        }
    }
    summary.expect("a summary")
}

/// 8 kHz samples as 16-bit little-endian PCM in 20 ms frames.
fn pcm_frames(samples: &[i16]) -> Vec<Vec<u8>> {
    samples
        .chunks(160)
        .map(|c| c.iter().flat_map(|s| s.to_le_bytes()).collect())
        .collect()
}

/// 200 ms of a 440 Hz tone at 8 kHz as 16-bit little-endian PCM, in 20 ms frames.
fn tone_frames() -> Vec<Vec<u8>> {
    let samples: Vec<i16> = (0..1600)
        .map(|n| (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 8000.0).sin()) as i16)
        .collect();
    pcm_frames(&samples)
}

/// A WebSocket media client's proved credential named in the token file (`fork:USER
/// TENANT`) starts its calls as that tenant's: each tenant watches its own fork call, the
/// other tenant and the media tenant are refused as for an id nobody has, two tenants' forks
/// with one call id are two calls with their own audio, and a credential the file does not
/// name still belongs to the media tenant.
#[tokio::test]
async fn websocket_media_credentials_named_in_the_token_file_are_their_tenants() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!(
            "{TOKEN_A} acme\n{TOKEN_B} globex\n{TOKEN_MEDIA} media\n\
             fork:acme-fs acme\nfork:globex-fs globex\n"
        ),
    )
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = l.local_addr().unwrap();
    let ws = callmood::server::ws::WsConfig {
        fork_basic_auth: vec![
            "acme-fs:pass-a".into(),
            "globex-fs:pass-b".into(),
            "lab-fs:pass-c".into(),
        ],
        ..Default::default()
    };
    let security = SecurityConfig {
        auth_tokens: Some(tokens),
        media_tenant: Some("media".into()),
        ..Default::default()
    };
    let (addr, _stop) = start_serving(security, None, Some(l), ws).await;
    let fork = |creds: &'static str, call_id: &'static str| {
        fork_socket(ws_addr, "/fork", Some(creds), call_id)
    };
    let mut acme_sock = fork("acme-fs:pass-a", "same-id").await;
    let mut globex_sock = fork("globex-fs:pass-b", "same-id").await;
    let mut lab_sock = fork("lab-fs:pass-c", "lab-1").await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    let mut b = token_client(addr, Some(TOKEN_B)).await;
    let mut m = token_client(addr, Some(TOKEN_MEDIA)).await;
    let acme_events = a.watch_call(watch("same-id")).await.unwrap().into_inner();
    let globex_events = b.watch_call(watch("same-id")).await.unwrap().into_inner();
    let lab_events = m.watch_call(watch("lab-1")).await.unwrap().into_inner();
    // The media tenant does not own the mapped credentials' calls, nor acme the lab's.
    for (c, id) in [(&mut m, "same-id"), (&mut a, "lab-1")] {
        let e = c.watch_call(watch(id)).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{id}");
        assert!(e.message().contains("no such call of this tenant"), "{e:?}");
    }
    // Acme's fork sends 200 ms, globex's 600 ms, the lab's 400 ms: each summary counts
    // its own socket's audio alone.
    let frames = tone_frames();
    for (sock, times) in [
        (&mut acme_sock, 1),
        (&mut globex_sock, 3),
        (&mut lab_sock, 2),
    ] {
        for _ in 0..times {
            for f in &frames {
                sock.send(Message::Binary(f.clone().into())).await.unwrap();
            }
        }
        sock.close(None).await.unwrap();
    }
    for (events, id, ms) in [
        (acme_events, "same-id", 200),
        (globex_events, "same-id", 600),
        (lab_events, "lab-1", 400),
    ] {
        let s = to_summary(events, id).await;
        assert_eq!(s.legs.len(), 1, "{id}: one leg, its own");
        let heard = s.duration_ms;
        assert!(
            heard.abs_diff(ms) <= 40,
            "{id}: {heard} ms heard where its socket sent {ms} ms"
        );
    }
}

#[tokio::test]
async fn websocket_media_is_wss_with_the_server_certificate_and_plain_ws_is_refused() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let pki = test_pki(false);
    let (addr, ws_addr, _stop) = start_media(
        SecurityConfig {
            tls: Some(pki.files.clone()),
            ..Default::default()
        },
        Media::WebSocket,
    )
    .await;
    let mut grpc = tls_client(addr, &pki).await;

    // An audio fork over wss://: TLS by rustls trusting the test CA, then the WebSocket.
    let tls = tls_connect(ws_addr, &pki.ca, None).await.unwrap();
    let url = format!("wss://localhost:{}/fork", ws_addr.port());
    let (mut sock, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let meta = r#"{"callId":"wss-1","sampleRate":8000,"channels":1}"#;
    sock.send(Message::Text(meta.into())).await.unwrap();
    let events = grpc.watch_call(watch("wss-1")).await.unwrap().into_inner();
    let frames = tone_frames();
    for f in &frames {
        sock.send(Message::Binary(f.clone().into())).await.unwrap();
    }
    sock.close(None).await.unwrap();
    let summary = to_summary(events, "wss-1").await;
    let leg = &summary.legs[0];
    assert_eq!(leg.transport, "audio-fork");
    assert_eq!(leg.packets_received, frames.len() as u64);
    assert_eq!(leg.packets_malformed, 0);
    assert!((150..=250).contains(&summary.duration_ms), "{summary:?}");

    // Plain ws:// gets no WebSocket from the TLS listener.
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(format!("ws://{ws_addr}/fork")),
    )
    .await
    .expect("a plain client is refused, not left hanging");
    assert!(plain.is_err(), "a plain ws:// client got a WebSocket");
    // Nor does a TLS client that trusts another CA.
    let other = test_pki(false);
    assert!(tls_connect(ws_addr, &other.ca, None).await.is_err());
}

#[tokio::test]
async fn with_ws_plaintext_websocket_media_stays_plain_next_to_grpc_tls() {
    let pki = test_pki(false);
    let (_addr, ws_addr, _stop) = start_media(
        SecurityConfig {
            tls: Some(pki.files.clone()),
            ws_plaintext: true,
            ..Default::default()
        },
        Media::WebSocket,
    )
    .await;
    let (sock, _) = tokio_tungstenite::connect_async(format!("ws://{ws_addr}/fork"))
        .await
        .expect("plain ws:// behind a TLS-terminating proxy");
    drop(sock);
    assert!(tls_connect(ws_addr, &pki.ca, None).await.is_err());
}

/// AudioSocket frames: the call's UUID, 20 ms of audio each, a hang-up.
fn audiosocket_call(uuid: &[u8; 16], frames: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![0x01, 0, 16];
    b.extend(uuid);
    for f in frames {
        b.extend([0x10, (f.len() >> 8) as u8, f.len() as u8]);
        b.extend(f);
    }
    b.extend([0x00, 0, 0]);
    b
}

/// A server with the token file `tokens`, TLS from `pki` (client certificates of its CA)
/// for gRPC and AudioSocket, and the media tenant `media`: its gRPC and AudioSocket addresses.
async fn start_tls_audiosocket(
    tokens: &Path,
    pki: &TestPki,
) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_media(
        SecurityConfig {
            auth_tokens: Some(tokens.to_path_buf()),
            tls: Some(pki.files.clone()),
            audiosocket_tls: true,
            media_tenant: Some("media".into()),
            ..Default::default()
        },
        Media::AudioSocket,
    )
    .await
}

/// An AudioSocket call over TLS with `pki`'s client certificate, as stunnel would send
/// it: the UUID frame is sent now; the connection and the rest of the call (the audio, a
/// hang-up) are returned.
async fn tls_audiosocket_begin(
    as_addr: SocketAddr,
    pki: &TestPki,
    uuid: [u8; 16],
    frames: &[Vec<u8>],
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    use tokio::io::AsyncWriteExt;
    let mut conn = tls_connect(as_addr, &pki.ca, Some(&pki.client))
        .await
        .unwrap();
    let call = audiosocket_call(&uuid, frames);
    conn.write_all(&call[..19]).await.unwrap();
    conn.flush().await.unwrap();
    (conn, call[19..].to_vec())
}

#[tokio::test]
async fn audiosocket_tls_takes_tls_clients_with_a_certificate_of_the_client_ca_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = test_pki(true);
    let (addr, as_addr, _stop) = start_media(
        SecurityConfig {
            tls: Some(pki.files.clone()),
            audiosocket_tls: true,
            ..Default::default()
        },
        Media::AudioSocket,
    )
    .await;
    let mut grpc = tls_client(addr, &pki).await;
    // AudioSocket's audio is 8 kHz signed linear: 320 bytes a 20 ms frame.
    let frames = tone_frames();

    // As stunnel would: TLS with the client certificate, then AudioSocket's frames.
    let id = "11111111-1111-1111-1111-111111111111";
    let (mut conn, rest) = tls_audiosocket_begin(as_addr, &pki, [0x11; 16], &frames).await;
    let events = grpc.watch_call(watch(id)).await.unwrap().into_inner();
    conn.write_all(&rest).await.unwrap();
    conn.flush().await.unwrap();
    let summary = to_summary(events, id).await;
    let leg = &summary.legs[0];
    assert_eq!(leg.transport, "audiosocket");
    assert_eq!(leg.packets_received, frames.len() as u64);
    assert!((150..=250).contains(&summary.duration_ms), "{summary:?}");

    // Plain TCP: the server's TLS handshake fails on the UUID frame and closes.
    let plain_id = "22222222-2222-2222-2222-222222222222";
    let mut plain = tokio::net::TcpStream::connect(as_addr).await.unwrap();
    plain
        .write_all(&audiosocket_call(&[0x22; 16], &frames))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), plain.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "the plain connection is closed"
    );
    // TLS without a client certificate is refused too.
    let no_cert = async {
        let mut c = tls_connect(as_addr, &pki.ca, None).await?;
        c.write_all(&audiosocket_call(&[0x22; 16], &frames)).await?;
        c.flush().await?;
        let mut b = [0u8; 8];
        c.read(&mut b).await
    };
    let r = tokio::time::timeout(Duration::from_secs(10), no_cert)
        .await
        .expect("refused, not left hanging");
    assert!(
        r.is_err() || r.unwrap() == 0,
        "a client without a certificate got in"
    );
    // Neither became a call (WatchCall waits the join timeout for one to appear).
    let e = grpc.watch_call(watch(plain_id)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
}

#[tokio::test]
async fn unknown_enum_values_are_refused_naming_the_field() {
    let (addr, _stop) = start_with(SecurityConfig::default()).await;
    let mut c = token_client(addr, None).await;
    let check = |e: Status, field: &str| {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().contains(&format!("{field}: 99 is no Role")),
            "{e:?}"
        );
    };
    // OpenRtpLeg is checked as a StreamCall channel, under its own field names.
    let leg = proto::OpenRtpLegRequest {
        role: 99,
        ..rtp_leg("enum-1")
    };
    let e = c.open_rtp_leg(leg).await.unwrap_err();
    assert!(e.message().starts_with("role: 99"), "{e:?}");
    check(e, "role");
    let leg = proto::OpenRtpLegRequest {
        jitter_buffer_ms: 100_000,
        ..rtp_leg("enum-1")
    };
    let e = c.open_rtp_leg(leg).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("jitter_buffer_ms: jitter buffer of"),
        "{e:?}"
    );
    // RTP fields under OpenRtpLeg's names, not ChannelConfig's
    let leg = proto::OpenRtpLegRequest {
        payload_type: 200,
        ..rtp_leg("enum-1")
    };
    let e = c.open_rtp_leg(leg).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("payload_type: payload type 200"),
        "{e:?}"
    );
    let config = mulaw_config("enum-2", 3, 99);
    let e = c
        .stream_call(tokio_stream::iter(vec![config]))
        .await
        .unwrap_err();
    check(e, "config.channels[3].role");
    let rec = proto::AnalyzeRecordingRequest {
        call_id: "enum-3".into(),
        left_role: 99,
        audio: Some(proto::analyze_recording_request::Audio::Wav(Vec::new())),
        ..Default::default()
    };
    check(c.analyze_recording(rec).await.unwrap_err(), "left_role");
    // A recording's channel count is refused under its own field's name.
    let mut wav = Vec::new();
    let spec = hound::WavSpec {
        channels: 9,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).unwrap();
    for _ in 0..9 * 80 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let raw = proto::RawAudio {
        encoding: proto::Encoding::Mulaw as i32,
        channels: 9,
        data: vec![0xff; 9 * 80],
        ..Default::default()
    };
    for (audio, field) in [
        (
            proto::analyze_recording_request::Audio::Wav(wav),
            "wav: 9 channels",
        ),
        (
            proto::analyze_recording_request::Audio::Raw(raw),
            "raw.channels: 9 channels",
        ),
    ] {
        let rec = proto::AnalyzeRecordingRequest {
            audio: Some(audio),
            ..Default::default()
        };
        let e = c.analyze_recording(rec).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{e:?}");
    }
    // The known values still pass.
    let leg = proto::OpenRtpLegRequest {
        role: proto::Role::Agent as i32,
        ..rtp_leg("enum-4")
    };
    c.open_rtp_leg(leg).await.unwrap();
}

#[tokio::test]
async fn client_certificates_named_in_the_token_file_are_their_tenants() {
    use callmood::client::stream::{connect, Access};
    use tokio::io::AsyncWriteExt;
    let pki = test_pki(true);
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    // Names compare without regard to case.
    std::fs::write(
        &tokens,
        format!(
            "cert:PBX.acme acme\ncert:qa.globex globex\n{TOKEN_A} acme\n{TOKEN_B} globex\n\
             {TOKEN_MEDIA} media\n"
        ),
    )
    .unwrap();
    let (addr, as_addr, _stop) = start_tls_audiosocket(&tokens, &pki).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = format!("https://{addr}");
    let as_client = |name: &str, pem: &(String, String), token: Option<&str>| {
        let (cert, key) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(name),
        );
        std::fs::write(&cert, &pem.0).unwrap();
        std::fs::write(&key, &pem.1).unwrap();
        let access = Access {
            tls_ca: Some(ca.clone()),
            token: token.map(str::to_string),
            client_cert: Some((cert, key)),
        };
        let url = url.clone();
        async move { connect(&url, &access).await.unwrap() }
    };

    // acme's PBX by its certificate alone opens a leg of acme's call.
    let mut acme = as_client("acme", &pki.client, None).await;
    acme.open_rtp_leg(rtp_leg("cert-1")).await.unwrap();
    // globex, by its certificate, cannot reach it: the answer for an id nobody has.
    let mut globex = as_client("globex", &pki.globex, None).await;
    let e = globex.close_leg(close("cert-1", 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let nobody = globex
        .close_leg(close("no-such-call", 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), nobody.code());
    assert_eq!(
        e.message().replace("cert-1", "X"),
        nobody.message().replace("no-such-call", "X")
    );
    // A token of another tenant than the certificate's, or a wrong token, is refused.
    let mut mixed = as_client("mixed", &pki.client, Some(TOKEN_B)).await;
    let e = mixed.open_rtp_leg(rtp_leg("cert-2")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let mut wrong = as_client("wrong", &pki.client, Some("not-a-token-at-all-0000")).await;
    let e = wrong.open_rtp_leg(rtp_leg("cert-2")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    // A certificate the file does not name needs a token, which then names the tenant.
    let mut stranger = as_client("stranger", &pki.stranger, None).await;
    let e = stranger.open_rtp_leg(rtp_leg("cert-2")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let mut stranger_a = as_client("stranger-a", &pki.stranger, Some(TOKEN_A)).await;
    // An unmapped certificate with acme's token is acme: it closes acme's leg.
    stranger_a.close_leg(close("cert-1", 0)).await.unwrap();

    // AudioSocket over TLS with acme's certificate: the call is acme's, not the media
    // tenant's.
    let id = "33333333-3333-3333-3333-333333333333";
    let frames = tone_frames();
    let (mut conn, rest) = tls_audiosocket_begin(as_addr, &pki, [0x33; 16], &frames).await;
    let events = acme.watch_call(watch(id)).await.unwrap().into_inner();
    let e = globex.watch_call(watch(id)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    let mut media = as_client("media", &pki.stranger, Some(TOKEN_MEDIA)).await;
    let e = media.watch_call(watch(id)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    conn.write_all(&rest).await.unwrap();
    conn.flush().await.unwrap();
    let summary = to_summary(events, id).await;
    assert_eq!(summary.legs[0].packets_received, frames.len() as u64);
}

/// A voiced sound at 8 kHz as 16-bit little-endian PCM in 20 ms frames: `ms` of a 150 Hz
/// buzz (harmonics falling off) whose level rises and falls four times a second, as
/// syllables do, then `ms` of silence, so the segmenter ends an utterance.
fn voiced_frames(ms: usize) -> Vec<Vec<u8>> {
    let n = ms * 8;
    let samples: Vec<i16> = (0..2 * n)
        .map(|i| {
            if i >= n {
                return 0;
            }
            let t = i as f32 / 8000.0;
            let buzz: f32 = (1..=12)
                .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                .sum();
            let syllables = 0.3 + 0.7 * (std::f32::consts::PI * 4.0 * t).sin().abs();
            (6000.0 * syllables * buzz) as i16
        })
        .collect();
    pcm_frames(&samples)
}

type WsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type WsReader = futures_util::stream::SplitStream<WsSocket>;

/// How many utterances came back on a fork socket until none came for 300 ms.
async fn utterances_back(rx: &mut WsReader) -> usize {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut n = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_millis(300), rx.next()).await {
        if let Message::Text(t) = m {
            n += usize::from(t.contains("\"utterance\""));
        }
    }
    n
}

/// A socket on `path` (`/fork`, `/fork?events=1`), with HTTP Basic credentials `creds` if
/// any, that has named its call.
async fn fork_socket(
    ws_addr: SocketAddr,
    path: &str,
    creds: Option<&str>,
    call_id: &str,
) -> WsSocket {
    use base64::Engine;
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut req = format!("ws://{ws_addr}{path}")
        .into_client_request()
        .unwrap();
    if let Some(creds) = creds {
        let basic = base64::engine::general_purpose::STANDARD.encode(creds);
        req.headers_mut()
            .insert("Authorization", format!("Basic {basic}").parse().unwrap());
    }
    let meta = format!(r#"{{"callId":"{call_id}","sampleRate":8000,"channels":1}}"#);
    let (mut sock, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    sock.send(Message::Text(meta.into())).await.unwrap();
    sock
}

/// Sends SIGHUP to this process every 300 ms until `done` resolves (the server has acted
/// on a reload), for at most 10 s.
async fn hup_until<T>(done: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(done);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "nothing came of the reload");
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        if let Ok(v) = tokio::time::timeout(Duration::from_millis(300), &mut done).await {
            return v;
        }
    }
}

/// A reload of the token file that maps a WebSocket media credential elsewhere (here: to no
/// tenant, so to the media tenant) ends the sockets it opened as the old tenant's, while a
/// socket whose credential's tenant did not change goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_remaps_a_media_credential_ends_its_sockets() {
    use tokio::signal::unix::{signal, SignalKind};
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN_A} acme\nfork:acme-fs acme\n")).unwrap();
    // This process must not die of a SIGHUP that comes before the server listens for it.
    let _ours = signal(SignalKind::hangup()).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = l.local_addr().unwrap();
    let ws = callmood::server::ws::WsConfig {
        fork_basic_auth: vec!["acme-fs:pass-a".into(), "lab-fs:pass-c".into()],
        ..Default::default()
    };
    let security = SecurityConfig {
        auth_tokens: Some(tokens.clone()),
        media_tenant: Some("media".into()),
        ..Default::default()
    };
    let (addr, _stop) = start_serving(security, None, Some(l), ws).await;
    let mut mapped = fork_socket(ws_addr, "/fork", Some("acme-fs:pass-a"), "m1").await;
    let mut unmapped = fork_socket(ws_addr, "/fork", Some("lab-fs:pass-c"), "m2").await;
    // The mapped socket has joined, as acme's, before the file changes (WatchCall waits
    // for the call a while).
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    a.watch_call(watch("m1")).await.unwrap();
    let new = dir.path().join("tokens.new");
    std::fs::write(&new, format!("{TOKEN_A} acme\n")).unwrap();
    std::fs::rename(&new, &tokens).unwrap();
    assert!(
        hup_until(closed(&mut mapped, Duration::from_secs(10))).await,
        "the socket of the remapped credential outlived the reload"
    );
    assert!(
        !closed(&mut unmapped, Duration::from_secs(1)).await,
        "the socket whose tenant stayed was closed"
    );
}

/// The same for AudioSocket over TLS: a reload that takes its certificate's `cert:` line
/// away (the connection then names the media tenant) ends the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_remaps_an_audiosocket_certificate_ends_its_connection() {
    use tokio::io::AsyncReadExt;
    use tokio::signal::unix::{signal, SignalKind};
    // This process must not die of a SIGHUP that comes before the server listens for it.
    let _ours = signal(SignalKind::hangup()).unwrap();
    let pki = test_pki(true);
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("cert:PBX.acme acme\n{TOKEN_MEDIA} media\n"),
    )
    .unwrap();
    let (addr, as_addr, _stop) = start_tls_audiosocket(&tokens, &pki).await;
    let id = "44444444-4444-4444-4444-444444444444";
    let (mut conn, _rest) = tls_audiosocket_begin(as_addr, &pki, [0x44; 16], &tone_frames()).await;
    // Joined, as acme's, before the file changes.
    let mut acme = tls_client(addr, &pki).await;
    acme.watch_call(watch(id)).await.unwrap();
    let new = dir.path().join("tokens.new");
    std::fs::write(&new, format!("{TOKEN_MEDIA} media\n")).unwrap();
    std::fs::rename(&new, &tokens).unwrap();
    let mut buf = [0u8; 64];
    hup_until(async {
        while let Ok(n) = conn.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A server with the token `TOKEN_A` of acme, the media tenant, and WebSocket media with
/// `/fork` open (no Basic credentials): its gRPC and WebSocket addresses.
async fn start_with_open_fork(
    dir: &Path,
) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("{TOKEN_A} acme\n")).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = l.local_addr().unwrap();
    let security = SecurityConfig {
        auth_tokens: Some(tokens),
        media_tenant: Some("acme".into()),
        ..Default::default()
    };
    let (addr, stop) = start_serving(security, None, Some(l), Default::default()).await;
    (addr, ws_addr, stop)
}

/// On a server with tokens, a socket on an open `/fork` (no Basic credentials configured)
/// that asks for events gets them for a call its own track started, and none for a call it
/// joined (the media tenant's call of that id, which holds other clients' words): no
/// utterance of the call reaches it, though the socket that started the call gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_fork_socket_reads_no_events_of_a_call_it_joined() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let (_addr, ws_addr, _stop) = start_with_open_fork(dir.path()).await;
    let open = |path: &'static str| async move {
        fork_socket(ws_addr, path, None, "shared").await.split()
    };
    let (mut first_tx, mut first_rx) = open("/fork?events=1").await;
    // The second socket joins only once the first one's call is live.
    first_tx
        .send(Message::Binary(vec![0u8; 320].into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut joined_tx, mut joined_rx) = open("/fork?events=1").await;
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let (mut from_first, mut from_joined) = (0, 0);
    // Both sockets speak, twice, each time reading what came back.
    for _ in 0..2 {
        for f in voiced_frames(1500) {
            ticks.tick().await;
            first_tx
                .send(Message::Binary(f.clone().into()))
                .await
                .unwrap();
            joined_tx.send(Message::Binary(f.into())).await.unwrap();
        }
        from_first += utterances_back(&mut first_rx).await;
        from_joined += utterances_back(&mut joined_rx).await;
    }
    assert!(
        from_first > 0,
        "the socket that started the call gets its utterances"
    );
    assert_eq!(from_joined, 0, "the socket that joined gets none");
}

/// With tokens, media that proved no credential (an open `/fork`) cannot join a call of the
/// media tenant that a token holder started, knowing only its id: it is refused (the
/// socket closed, counted), while such a socket that names an id of its own starts its
/// call, which the media tenant's token watches; and a token holder's leg cannot join that
/// call, whose starter would hear its words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_takes_legs_with_credentials_or_without_never_both() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let (addr, ws_addr, _stop) = start_with_open_fork(dir.path()).await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    a.open_rtp_leg(rtp_leg("shared")).await.unwrap();
    let open = |call_id: &'static str| fork_socket(ws_addr, "/fork", None, call_id);
    let mut intruder = open("shared").await;
    assert!(
        closed(&mut intruder, Duration::from_secs(5)).await,
        "the socket joined the token holder's call"
    );
    let mut own = open("own").await;
    own.send(Message::Binary(vec![0u8; 320].into()))
        .await
        .unwrap();
    a.watch_call(watch("own")).await.unwrap();
    let e = a.open_rtp_leg(rtp_leg("own")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    a.close_leg(close("shared", 0)).await.unwrap();
    let e = a.close_leg(close("shared", 1)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "no leg 1 joined: {e:?}");
    // Ended, the call is kept a while for late watchers: a socket without credentials
    // naming it does not replace it (and feed those watchers) either.
    let mut late = open("shared").await;
    assert!(
        closed(&mut late, Duration::from_secs(5)).await,
        "the socket replaced the ended call"
    );
}

/// Whether the server closes the socket within `within`.
async fn closed(sock: &mut WsSocket, within: Duration) -> bool {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(within, async {
        loop {
            match sock.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A reload of the token file that takes a token away ends what was opened with it: its
/// `WatchCall` and `StreamCall` streams (`UNAUTHENTICATED`) and its RTP legs, and the token
/// is refused from then on, while a leg and a watcher whose token stays go on to the call's
/// summary. The reload is a real SIGHUP to this process, sent until the server has seen it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_ends_the_streams_and_legs_it_opened() {
    use tokio::signal::unix::{signal, SignalKind};
    const KEPT: &str = "acme-kept-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN_A} acme\n{KEPT} acme\n")).unwrap();
    // This process must not die of a SIGHUP that comes before the server listens for it.
    let _ours = signal(SignalKind::hangup()).unwrap();
    let (addr, _stop) = start_with(SecurityConfig {
        auth_tokens: Some(tokens.clone()),
        ..Default::default()
    })
    .await;
    let mut a = token_client(addr, Some(TOKEN_A)).await;
    let mut kept = token_client(addr, Some(KEPT)).await;
    a.open_rtp_leg(rtp_leg("rv")).await.unwrap();
    kept.open_rtp_leg(rtp_leg("rv")).await.unwrap();
    let (audio, rx) = tokio::sync::mpsc::channel(1);
    audio.send(mulaw_config("sc", 0, 1)).await.unwrap();
    let mut streamed = a
        .stream_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut revoked = a.watch_call(watch("rv")).await.unwrap().into_inner();
    let staying = kept.watch_call(watch("rv")).await.unwrap().into_inner();
    // The new file is written beside the old one and renamed into place.
    let new = dir.path().join("tokens.new");
    std::fs::write(&new, format!("{KEPT} acme\n")).unwrap();
    std::fs::rename(&new, &tokens).unwrap();
    let ended = hup_until(revoked.message()).await;
    let e = ended.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = a.watch_call(watch("rv")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = tokio::time::timeout(Duration::from_secs(10), streamed.message())
        .await
        .expect("the StreamCall outlived the reload")
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // The revoked token's leg (0) has ended: closing the kept one's ends the call, which
    // would otherwise wait for leg 0's 30 s idle timeout, past `to_summary`'s 10 s.
    kept.close_leg(close("rv", 1)).await.unwrap();
    to_summary(staying, "rv").await;
    drop(audio);
}
