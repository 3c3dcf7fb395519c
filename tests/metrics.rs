//! `callmood serve --metrics-addr` scraped by a real Prometheus (Debian's `prometheus`,
//! installed by scripts/setup) on loopback every second, while a real call of speech
//! goes through as RTP inside `StreamCall` with packets lost; the numbers are read
//! back through Prometheus's HTTP API (`/api/v1/query`).
mod common;
mod ops;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callmood::proto::call_event::Event;
use common::*;
use ops::*;
use tokio_stream::wrappers::ReceiverStream;

/// A Prometheus server scraping `target` every second, with its data in `dir`.
fn start_prometheus(dir: &std::path::Path, target: SocketAddr) -> (Proc, SocketAddr) {
    let web: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: callmood\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .arg("--log.level=warn");
    let p = Proc::spawn(cmd);
    let end = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(web, "/-/ready"), Ok((200, _))) {
        assert!(
            Instant::now() < end,
            "prometheus did not get ready (scripts/setup installs it):\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (p, web)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of a PromQL expression now (summed over its series), or None while
/// Prometheus has no sample of it.
fn query(prometheus: SocketAddr, expr: &str) -> Option<f64> {
    let (code, body) = http_get(
        prometheus,
        &format!(
            "/api/v1/query?query={}",
            url_encode(&format!("sum({expr})"))
        ),
    )
    .ok()?;
    assert_eq!(code, 200, "{expr}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{body}");
    v["data"]["result"].get(0)?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// Polls `expr` until `ok` holds of its value, at most `limit`; the last value.
fn wait_for(prometheus: SocketAddr, expr: &str, limit: Duration, ok: impl Fn(f64) -> bool) -> f64 {
    let end = Instant::now() + limit;
    loop {
        let v = query(prometheus, expr);
        if let Some(v) = v.filter(|v| ok(*v)) {
            return v;
        }
        assert!(Instant::now() < end, "{expr}: {v:?} after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_call_as_it_happens() {
    let t0 = Instant::now();
    let server = Server::start(true, &[]);
    let metrics = server.metrics.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prom) = start_prometheus(dir.path(), metrics);
    let slow = Duration::from_secs(10);
    // Scraped, and at zero before the call.
    assert_eq!(
        wait_for(prom, "up{job=\"callmood\"}", slow, |v| v == 1.0),
        1.0
    );
    assert_eq!(
        wait_for(prom, "callmood_utterances_total", slow, |_| true),
        0.0
    );

    // Two real utterances as μ-law RTP at 2x real time, every 25th packet lost (4 %).
    let (call, _, _) = speech_call(&["0890", "0880"], 800);
    let messages = rtp_messages(&mulaw_8k_bytes(&call), 25);
    let lost = (call.len() / 320 / 25) as f64;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(rtp_call_config("metrics-call")).await.unwrap();
    let sender = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        for m in messages {
            ticks.tick().await;
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    let stream = client(server.grpc)
        .await
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let events = tokio::spawn(collect(stream));
    // While the call runs, Prometheus sees it in flight.
    let in_flight = tokio::task::spawn_blocking(move || {
        wait_for(
            prom,
            "callmood_calls_in_flight{transport=\"grpc\"}",
            slow,
            |v| v == 1.0,
        )
    });
    assert_eq!(in_flight.await.unwrap(), 1.0);
    sender.await.unwrap();
    let events = events.await.unwrap().unwrap();
    let utterances = utterances(&events).len() as f64;
    assert!(utterances >= 2.0, "{events:?}");
    let Some(Event::Summary(summary)) = &events.last().unwrap().event else {
        panic!("no summary");
    };
    let leg = &summary.legs[0];
    assert_eq!(leg.transport, "grpc-rtp");

    // After it, the counts Prometheus scraped are the call's own.
    let read = move |expr: &'static str, ok: Box<dyn Fn(f64) -> bool + Send>| {
        tokio::task::spawn_blocking(move || wait_for(prom, expr, slow, ok))
    };
    let n = read(
        "callmood_utterances_total",
        Box::new(move |v| v == utterances),
    );
    assert_eq!(n.await.unwrap(), utterances);
    let l = leg.packets_lost as f64;
    assert!((l - lost).abs() <= 1.0, "{leg:?}: {lost} left out");
    let got = read(
        "callmood_packets_total{transport=\"grpc-rtp\",outcome=\"lost\"}",
        Box::new(move |v| v == l),
    );
    assert_eq!(got.await.unwrap(), l);
    let r = leg.packets_received as f64;
    let got = read(
        "callmood_packets_total{transport=\"grpc-rtp\",outcome=\"received\"}",
        Box::new(move |v| v == r),
    );
    assert_eq!(got.await.unwrap(), r);
    let prosody = read(
        "callmood_event_latency_seconds_count{event=\"prosody\"}",
        Box::new(move |v| v == utterances),
    );
    assert_eq!(prosody.await.unwrap(), utterances);
    let full = read(
        "callmood_event_latency_seconds_count{event=\"utterance\"}",
        Box::new(move |v| v == utterances),
    );
    assert_eq!(full.await.unwrap(), utterances);
    let done = read("callmood_calls_in_flight", Box::new(|v| v == 0.0));
    assert_eq!(done.await.unwrap(), 0.0);
    let jobs = read(
        "callmood_asr_jobs_total",
        Box::new(move |v| v >= utterances),
    );
    assert!(jobs.await.unwrap() >= utterances);
    // The latencies as an operator reads them: the mean of each histogram.
    let mean = |event: &'static str| {
        let sum = query(
            prom,
            &format!("callmood_event_latency_seconds_sum{{event=\"{event}\"}}"),
        )
        .unwrap();
        sum / utterances
    };
    let (p, u) = (mean("prosody"), mean("utterance"));
    eprintln!(
        "metrics: {utterances} utterances, {l} packets lost of {}, mean latency prosody {:.3} s, \
         full result {:.3} s; test took {:.1} s",
        r + l,
        p,
        u,
        t0.elapsed().as_secs_f32()
    );
    assert!(p <= u, "the fast path is not slower than the full result");
    assert_eq!(
        query(prom, "callmood_calls_refused_total"),
        Some(0.0),
        "no call refused"
    );
}
