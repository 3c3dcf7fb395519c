//! Prometheus metrics of the service, and the `/metrics` endpoint that serves them in
//! the text exposition format (`callmood serve --metrics-addr`).
//!
//! The shell counts as messages pass: calls start and end in [`super::session`], events
//! leave its pump, packet counts come from each call's leg statistics about once a
//! second. The recogniser's queue is read when Prometheus scrapes.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `callmood_calls_in_flight` | gauge | `transport`: grpc, recording, rtp-udp, audiosocket |
//! | `callmood_calls_total` | counter | `transport` |
//! | `callmood_calls_refused_total` | counter | `reason`: calls_in_flight, tenant_calls_in_flight, recordings_in_flight, tenant_recordings_in_flight, draining |
//! | `callmood_utterances_total` | counter | |
//! | `callmood_alerts_total` | counter | `kind` |
//! | `callmood_transcripts_dropped_total` | counter | |
//! | `callmood_client_faults_total` | counter | `fault`: message_too_large, chunk_too_long, stream_broken, too_fast, config_timeout, listener_gone, audiohook_key (an AudioHook upgrade without a known `X-API-KEY`), audiohook_signature (one without a valid signature where the key has a client secret), twilio_signature (a `/twilio` upgrade without a valid `X-Twilio-Signature` where auth tokens are set), fork_auth (a `/fork` upgrade without accepted Basic credentials where some are set) |
//! | `callmood_event_latency_seconds` | histogram | `event`: prosody, utterance |
//! | `callmood_packets_total` | counter | `transport` (as `LegStats.transport`), `outcome`: received, lost, late, malformed, not_allowed (from outside `--rtp-allow`), ssrc_change (a packet of a new SSRC, played on), ahead_dropped (UDP RTP beyond `max_ahead_s` ahead of the clock) |
//! | `callmood_asr_queue_depth` | gauge | |
//! | `callmood_asr_queue_wait_seconds_total` | counter | |
//! | `callmood_asr_jobs_total` | counter | |
//! | `callmood_asr_windows_total` | counter | |
//! | `callmood_asr_audio_seconds_total` | counter | |
//! | `callmood_asr_straddling_words_total` | counter | |
//! | `callmood_asr_repeat_redecodes_total` | counter | |
//! | `callmood_asr_low_confidence_redecodes_total` | counter | |
//! | `callmood_asr_shared_windows_total` | counter | |
//! | `callmood_draining` | gauge | |
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Counter, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::asr::AsrPool;
use crate::proto;

/// Upper bounds of the event latency buckets, s: from the prosody fast path (tens of ms)
/// to a transcription behind a busy recogniser (seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0,
];
/// Longest scrape request read, bytes (a Prometheus GET is a few hundred).
const MAX_REQUEST: usize = 8192;
/// A scrape connection that sends no full request within this long is closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The service's metrics, in their own registry (so tests may run several services).
pub struct Metrics {
    registry: Registry,
    calls_in_flight: IntGaugeVec,
    calls_total: IntCounterVec,
    calls_refused: IntCounterVec,
    utterances: IntCounter,
    alerts: IntCounterVec,
    transcripts_dropped: IntCounter,
    client_faults: IntCounterVec,
    latency: HistogramVec,
    packets: IntCounterVec,
    asr_queue_depth: IntGauge,
    asr_queue_wait: Counter,
    asr_jobs: IntCounter,
    asr_windows: IntCounter,
    asr_audio: Counter,
    asr_straddling: IntCounter,
    asr_shared_windows: IntCounter,
    asr_repeats: IntCounter,
    asr_low_confidence: IntCounter,
    draining: IntGauge,
    /// Held while a scrape adds the recogniser's counts (two at once would add twice).
    refresh: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `m` and hands it back (names are fixed, so registering cannot clash).
fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone()))
        .expect("metric names are distinct and valid");
    m
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let r = Registry::new();
        let opts = |name: &str, help: &str| Opts::new(name, help);
        let m = Self {
            calls_in_flight: reg(
                &r,
                IntGaugeVec::new(
                    opts("callmood_calls_in_flight", "Calls being analysed now."),
                    &["transport"],
                )
                .expect("valid"),
            ),
            calls_total: reg(
                &r,
                IntCounterVec::new(
                    opts("callmood_calls_total", "Calls started."),
                    &["transport"],
                )
                .expect("valid"),
            ),
            calls_refused: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "callmood_calls_refused_total",
                        "Calls refused: over the cap on calls in flight (all, a tenant's, \
                         or recordings'), or while draining.",
                    ),
                    &["reason"],
                )
                .expect("valid"),
            ),
            utterances: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_utterances_total",
                    "Utterances finished (full results sent).",
                ))
                .expect("valid"),
            ),
            alerts: reg(
                &r,
                IntCounterVec::new(opts("callmood_alerts_total", "Alerts raised."), &["kind"])
                    .expect("valid"),
            ),
            client_faults: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "callmood_client_faults_total",
                        "What broken or hostile clients did: a message over the size \
                         limit, an AudioChunk over its length limit, a stream that broke \
                         mid-call, live audio held back (or, over UDP, dropped) for running \
                         ahead of real time (once per call, connection or leg), no config in \
                         time, a listener gone before the summary.",
                    ),
                    &["fault"],
                )
                .expect("valid"),
            ),
            transcripts_dropped: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_transcripts_dropped_total",
                    "Utterances sent without words: the recogniser queue was full or they \
                     waited in it too long.",
                ))
                .expect("valid"),
            ),
            latency: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "callmood_event_latency_seconds",
                        "From the arrival of the audio that ended an utterance to its event \
                         leaving the call (prosody: fast path; utterance: full result).",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["event"],
                )
                .expect("valid"),
            ),
            packets: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "callmood_packets_total",
                        "Packets (RTP, or AudioSocket/gRPC messages) of call legs by outcome.",
                    ),
                    &["transport", "outcome"],
                )
                .expect("valid"),
            ),
            asr_queue_depth: reg(
                &r,
                IntGauge::with_opts(opts(
                    "callmood_asr_queue_depth",
                    "Recogniser jobs waiting for a worker.",
                ))
                .expect("valid"),
            ),
            asr_queue_wait: reg(
                &r,
                Counter::with_opts(opts(
                    "callmood_asr_queue_wait_seconds_total",
                    "Time recogniser jobs waited in the queue, summed (divide by \
                     callmood_asr_jobs_total for the mean).",
                ))
                .expect("valid"),
            ),
            asr_jobs: reg(
                &r,
                IntCounter::with_opts(opts("callmood_asr_jobs_total", "Recogniser jobs answered."))
                    .expect("valid"),
            ),
            asr_windows: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_asr_windows_total",
                    "Whisper runs (one per packed window).",
                ))
                .expect("valid"),
            ),
            asr_audio: reg(
                &r,
                Counter::with_opts(opts(
                    "callmood_asr_audio_seconds_total",
                    "Audio transcribed, s (window fill: this over 30 s x windows).",
                ))
                .expect("valid"),
            ),
            asr_straddling: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_asr_straddling_words_total",
                    "Words dropped because their times straddled two calls' pieces of one window.",
                ))
                .expect("valid"),
            ),
            asr_shared_windows: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_asr_shared_windows_total",
                    "Windows that held pieces of two or more calls (packing across calls, one tenant's).",
                ))
                .expect("valid"),
            ),
            asr_repeats: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_asr_repeat_redecodes_total",
                    "Pieces decoded again alone because their window repeated an earlier piece's words.",
                ))
                .expect("valid"),
            ),
            asr_low_confidence: reg(
                &r,
                IntCounter::with_opts(opts(
                    "callmood_asr_low_confidence_redecodes_total",
                    "Pieces of a shared window decoded again alone because Whisper was unsure of their words there.",
                ))
                .expect("valid"),
            ),
            draining: reg(
                &r,
                IntGauge::with_opts(opts(
                    "callmood_draining",
                    "1 once SIGTERM began the drain: new calls are refused.",
                ))
                .expect("valid"),
            ),
            registry: r,
            refresh: std::sync::Mutex::new(()),
        };
        for reason in ["calls_in_flight", "recordings_in_flight", "draining"] {
            m.calls_refused.with_label_values(&[reason]);
        }
        for event in ["prosody", "utterance"] {
            m.latency.with_label_values(&[event]);
        }
        m
    }

    /// A call started on `transport`; the guard counts it out when dropped.
    pub fn call_started(self: &Arc<Self>, transport: impl Into<String>) -> CallGuard {
        let transport = transport.into();
        self.calls_total.with_label_values(&[&transport]).inc();
        self.calls_in_flight.with_label_values(&[&transport]).inc();
        CallGuard {
            metrics: self.clone(),
            transport,
        }
    }

    /// A call was refused before it started.
    pub fn call_refused(&self, reason: &str) {
        self.calls_refused.with_label_values(&[reason]).inc();
    }

    /// An event left a call; `since` is when the audio that ended its utterance
    /// arrived (for the latency of prosody and utterance events).
    pub fn event_sent(&self, event: &proto::call_event::Event, since: Option<std::time::Instant>) {
        use proto::call_event::Event;
        let latency = |name: &str| {
            if let Some(t) = since {
                self.latency
                    .with_label_values(&[name])
                    .observe(t.elapsed().as_secs_f64());
            }
        };
        match event {
            Event::UtteranceProsody(_) => latency("prosody"),
            Event::Utterance(_) => {
                self.utterances.inc();
                latency("utterance");
            }
            Event::Alert(a) => self.alerts.with_label_values(&[&a.kind]).inc(),
            _ => {}
        }
    }

    /// An utterance went on without words.
    pub fn transcript_dropped(&self) {
        self.transcripts_dropped.inc();
    }

    /// A client broke a limit or the call (`fault`: one of the labels in the table above).
    pub fn client_fault(&self, fault: &str) {
        self.client_faults.with_label_values(&[fault]).inc();
    }

    /// Adds packets of a leg since its last report.
    pub fn packets(&self, transport: &str, d: &PacketCounts) {
        for (outcome, n) in [
            ("received", d.received),
            ("lost", d.lost),
            ("late", d.late),
            ("malformed", d.malformed),
            ("not_allowed", d.not_allowed),
            ("ssrc_change", d.ssrc_changes),
            ("ahead_dropped", d.ahead_dropped),
        ] {
            if n > 0 {
                self.packets
                    .with_label_values(&[transport, outcome])
                    .inc_by(n);
            }
        }
    }

    /// Marks the service as draining.
    pub fn set_draining(&self) {
        self.draining.set(1);
    }

    /// The exposition: every metric in Prometheus text format, the recogniser's
    /// queue read now.
    pub fn render(&self, asr: Option<&AsrPool>) -> String {
        if let Some(pool) = asr {
            let _one = self.refresh.lock().unwrap_or_else(|e| e.into_inner());
            self.asr_queue_depth.set(pool.queued() as i64);
            let s = pool.stats();
            // Counters only go up: add what the pool counted since the last scrape.
            let up = |c: &IntCounter, total: u64| c.inc_by(total.saturating_sub(c.get()));
            let add = |c: &Counter, total: f64| c.inc_by((total - c.get()).max(0.0));
            up(&self.asr_jobs, s.jobs);
            up(&self.asr_windows, s.windows);
            add(&self.asr_audio, s.audio_ms as f64 / 1000.0);
            up(&self.asr_straddling, s.straddling_words);
            up(&self.asr_shared_windows, s.shared_windows);
            up(&self.asr_repeats, s.repeat_redecodes);
            up(&self.asr_low_confidence, s.low_confidence_redecodes);
            add(&self.asr_queue_wait, s.queue_wait_us as f64 / 1e6);
        }
        let mut out = Vec::new();
        // Writing text into a Vec fails only on metric families the registry never holds.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Packet counts of one leg (totals or a difference of two totals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounts {
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub malformed: u64,
    pub not_allowed: u64,
    pub ssrc_changes: u64,
    pub ahead_dropped: u64,
}

impl PacketCounts {
    /// The counts of a leg's statistics.
    pub fn of(s: &proto::LegStats) -> Self {
        Self {
            received: s.packets_received,
            lost: s.packets_lost,
            late: s.packets_late,
            malformed: s.packets_malformed,
            not_allowed: s.packets_not_allowed,
            ssrc_changes: u64::from(s.ssrc_changes),
            ahead_dropped: s.packets_ahead_dropped,
        }
    }

    /// What `self` counted beyond `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            received: self.received.saturating_sub(before.received),
            lost: self.lost.saturating_sub(before.lost),
            late: self.late.saturating_sub(before.late),
            malformed: self.malformed.saturating_sub(before.malformed),
            not_allowed: self.not_allowed.saturating_sub(before.not_allowed),
            ssrc_changes: self.ssrc_changes.saturating_sub(before.ssrc_changes),
            ahead_dropped: self.ahead_dropped.saturating_sub(before.ahead_dropped),
        }
    }
}

/// Counts a call out of `callmood_calls_in_flight` when dropped.
pub struct CallGuard {
    metrics: Arc<Metrics>,
    transport: String,
}

impl CallGuard {
    /// The metrics the call counts in.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.metrics
            .calls_in_flight
            .with_label_values(&[&self.transport])
            .dec();
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. A hand-written
/// HTTP/1.1 responder: one request per connection, then close (all a scraper needs).
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    asr: Option<Arc<AsrPool>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (metrics, asr) = (metrics.clone(), asr.clone());
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &metrics, asr.as_deref()).await {
                        tracing::debug!(%peer, error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Binds the metrics listener (before serving, so a bad address fails at start).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    asr: Option<&AsrPool>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || buf.len() + n > MAX_REQUEST {
                return Err(std::io::Error::other("incomplete or oversized request"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    })
    .await;
    match head {
        Err(_) => return Err(std::io::Error::other("request timed out")),
        Ok(r) => r?,
    }
    let (status, content_type, body) = match request_target(&buf) {
        Some(("GET", "/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(asr),
        ),
        Some(("GET", _)) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Method and path (without query) of an HTTP request head.
fn request_target(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    Some((method, target.split('?').next().unwrap_or(target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn exposition_counts_calls_events_and_packets() {
        let m = Arc::new(Metrics::new());
        let guard = m.call_started("rtp-udp");
        let _other = m.call_started("grpc");
        m.call_refused("draining");
        let t = std::time::Instant::now();
        m.event_sent(
            &proto::call_event::Event::UtteranceProsody(Default::default()),
            Some(t),
        );
        m.event_sent(
            &proto::call_event::Event::Utterance(Default::default()),
            Some(t),
        );
        m.event_sent(
            &proto::call_event::Event::Alert(proto::Alert {
                kind: "escalate".into(),
                ..Default::default()
            }),
            None,
        );
        let before = PacketCounts::default();
        let now = PacketCounts {
            received: 50,
            lost: 2,
            late: 1,
            malformed: 0,
            not_allowed: 3,
            ssrc_changes: 4,
            ahead_dropped: 5,
        };
        m.packets("rtp-udp", &now.since(&before));
        let expect = |text: &str, series: &[(&str, f64)]| {
            for (name, want) in series {
                assert_eq!(value(text, name), Some(*want), "{name}");
            }
        };
        let text = m.render(None);
        expect(
            &text,
            &[
                ("callmood_calls_in_flight{transport=\"rtp-udp\"}", 1.0),
                ("callmood_utterances_total", 1.0),
                ("callmood_alerts_total{kind=\"escalate\"}", 1.0),
                ("callmood_calls_refused_total{reason=\"draining\"}", 1.0),
                (
                    "callmood_packets_total{outcome=\"lost\",transport=\"rtp-udp\"}",
                    2.0,
                ),
                (
                    "callmood_packets_total{outcome=\"not_allowed\",transport=\"rtp-udp\"}",
                    3.0,
                ),
                (
                    "callmood_packets_total{outcome=\"ssrc_change\",transport=\"rtp-udp\"}",
                    4.0,
                ),
                (
                    "callmood_packets_total{outcome=\"ahead_dropped\",transport=\"rtp-udp\"}",
                    5.0,
                ),
                (
                    "callmood_event_latency_seconds_count{event=\"utterance\"}",
                    1.0,
                ),
                (
                    "callmood_event_latency_seconds_bucket{event=\"prosody\",le=\"+Inf\"}",
                    1.0,
                ),
            ],
        );
        assert!(text.contains("# TYPE callmood_event_latency_seconds histogram"));
        drop(guard);
        expect(
            &m.render(None),
            &[
                ("callmood_calls_in_flight{transport=\"rtp-udp\"}", 0.0),
                ("callmood_calls_total{transport=\"rtp-udp\"}", 1.0),
            ],
        );
    }

    #[test]
    fn request_lines_parse() {
        assert_eq!(
            request_target(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_target(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_target(b"\xff\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn endpoint_answers_get_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::new());
        let _g = m.call_started("audiosocket");
        let task = tokio::spawn(serve_metrics(listener, m, None));
        let get = |path: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("callmood_calls_in_flight{transport=\"audiosocket\"} 1"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        task.abort();
    }
}
