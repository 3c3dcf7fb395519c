//! Helpers shared by the integration tests: the real model, real speech clips,
//! a server on a loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callmood::asr::{AsrConfig, AsrPool};
use callmood::call::CallSettings;
use callmood::dsp::DspPlan;
use callmood::server::{serve_on, ServeConfig};
use callmood::session::Analyzer;

/// Directory of the pocketsphinx-testdata clips (Debian package).
pub const PS_DATA: &str = "/usr/share/pocketsphinx/test/data";

/// The converted Whisper model; fails the test with what to do when absent.
pub fn model_path() -> PathBuf {
    let p = std::env::var_os("CALLMOOD_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en.bin"));
    assert!(
        p.is_file(),
        "Whisper model {} is missing: run scripts/setup (or models/fetch.sh) first",
        p.display()
    );
    p
}

/// One shared recogniser pool per test binary (the model loads once).
pub fn pool() -> Arc<AsrPool> {
    static POOL: std::sync::OnceLock<Arc<AsrPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cfg = AsrConfig {
            workers: 1,
            threads_per_worker: 2,
            ..AsrConfig::default()
        };
        Arc::new(AsrPool::new(&model_path(), cfg).expect("model loads"))
    })
    .clone()
}

/// A real speech clip from pocketsphinx-testdata and its transcript.
pub fn librivox(id: &str) -> (PathBuf, String) {
    let path = Path::new(PS_DATA).join(format!(
        "librivox/sense_and_sensibility_01_austen_64kb-{id}.wav"
    ));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup (installs pocketsphinx-testdata)",
        path.display()
    );
    let trans = std::fs::read_to_string(Path::new(PS_DATA).join("librivox/transcription")).unwrap();
    let line = trans
        .lines()
        .find(|l| l.contains(&format!("-{id})")))
        .expect("transcript line");
    let text = line
        .replace("<s>", "")
        .replace("</s>", "")
        .split('(')
        .next()
        .unwrap()
        .trim()
        .to_string();
    (path, text)
}

/// 16 kHz mono samples of a 16-bit WAV.
pub fn read_samples(path: &Path) -> (u32, Vec<f32>) {
    let wav = callmood::codec::wav::read_wav_file(path).expect("wav reads");
    (wav.sample_rate, wav.samples.into_iter().next().unwrap())
}

/// Writes samples to a 16-bit mono WAV.
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// Telephone audio: the WAV at `input` as 8 kHz G.711 μ-law WAV (via sox).
pub fn to_mulaw_8k(input: &Path, output: &Path) {
    let st = std::process::Command::new("sox")
        .arg(input)
        .args(["-r", "8000", "-e", "u-law", "-b", "8", "-c", "1"])
        .arg(output)
        .status()
        .expect("sox runs (scripts/setup installs it)");
    assert!(st.success(), "sox failed");
}

/// Starts a server on a loopback port; it stops when the returned sender drops.
pub async fn start_server(
    max_calls: usize,
    with_asr: bool,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let analyzer = Analyzer {
        plan: DspPlan::new(),
        asr: with_asr.then(pool),
    };
    let cfg = ServeConfig {
        addr,
        model: PathBuf::new(),
        asr: AsrConfig::default(),
        max_calls,
        max_message_bytes: callmood::server::DEFAULT_MAX_MESSAGE_BYTES,
        call: CallSettings::default(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve_on(listener, analyzer, &cfg, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx)
}

/// Normalised word error rate.
pub fn wer(reference: &str, hypothesis: &str) -> f32 {
    callmood::asr::wer::word_error_rate(reference, hypothesis)
}
