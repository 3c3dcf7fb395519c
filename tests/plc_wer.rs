//! A measurement, not a check (ignored by default): word error rate of held-out read
//! speech (Common Voice clips of /work/shared/data/read-speech, with their prompts) sent
//! as 8 kHz μ-law RTP through a leg with 5 % of packets lost and 10 % reordered (20-40 ms
//! late, inside the 80 ms jitter buffer), concealed by pitch repetition (the leg as it is)
//! and by silence (what the leg did before: the same packets lost, their time zeroed),
//! against the clean packets; each through the `analyze` pipeline (endpointing,
//! Whisper tiny.en).
//!
//! ```sh
//! PLC_WER_CLIPS=60 cargo test --test plc_wer -- --ignored --nocapture
//! ```
mod common;

use std::path::Path;
use std::sync::Arc;

use callmood::core::codec::g711::ulaw_decode;
use callmood::core::codec::wav::{WavAudio, WavEncoding};
use callmood::core::codec::Encoding;
use callmood::core::rng::SplitMix64;
use callmood::core::rtp::{self, leg::LegOut, leg::RtpLeg, leg::RtpSettings};
use callmood::proto::{self, call_event::Event};
use callmood::server::session::Analyzer;

const CORPUS: &str = "/work/shared/data/read-speech";
const LOSS: f64 = 0.05;
const REORDER: f64 = 0.10;

/// The clip as 8 kHz μ-law bytes (sox, as a phone line would carry it).
fn mulaw(path: &Path) -> Vec<u8> {
    let out = std::process::Command::new("sox")
        .arg("-D") // no random dither: the same bytes every run
        .arg(path)
        .args([
            "-r", "8000", "-e", "u-law", "-b", "8", "-c", "1", "-t", "raw", "-",
        ])
        .output()
        .expect("sox runs");
    assert!(out.status.success(), "sox on {}", path.display());
    out.stdout
}

/// The three versions of one clip at 8 kHz: clean, lost packets silent, lost packets
/// concealed by the leg.
fn through_a_leg(bytes: &[u8], seed: u64) -> [Vec<f32>; 3] {
    let mut rng = SplitMix64::new(seed);
    let decode =
        |b: &[u8]| -> Vec<f32> { b.iter().map(|&c| ulaw_decode(c) as f32 / 32768.0).collect() };
    let clean = decode(bytes);
    let mut silent = clean.clone();
    // (arrival ms, datagram)
    let mut arrivals = Vec::new();
    let n = bytes.len().div_ceil(160);
    for (i, chunk) in bytes.chunks(160).enumerate() {
        // The first and last packets always arrive (a loss there is invisible).
        let lose = i > 0 && i + 1 < n && (rng.next_u64() as f64 / u64::MAX as f64) < LOSS;
        let late = (rng.next_u64() as f64 / u64::MAX as f64) < REORDER;
        let extra = 20 + rng.next_u64() % 21;
        if lose {
            silent[i * 160..i * 160 + chunk.len()].fill(0.0);
            continue;
        }
        let at = i as u64 * 20 + if late { extra } else { 0 };
        let p = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 1234, chunk);
        arrivals.push((at, i, p));
    }
    arrivals.sort_by_key(|(at, i, _)| (*at, *i));
    let mut leg = RtpLeg::new(
        Encoding::Mulaw,
        8000,
        RtpSettings::for_encoding(Encoding::Mulaw),
    );
    let mut out = Vec::new();
    for (at, _, p) in &arrivals {
        leg.tick(*at, &mut out);
        leg.push(*at, p, &mut out).unwrap();
    }
    leg.flush(&mut out);
    let concealed: Vec<f32> = out
        .into_iter()
        .flat_map(|o| match o {
            LegOut::Samples(s) => s,
            _ => Vec::new(),
        })
        .collect();
    let st = leg.stats(0, proto::Role::Caller, "rtp");
    assert_eq!(st.packets_late, 0, "reordering within the buffer");
    assert_eq!(concealed.len(), clean.len(), "audio time stays true");
    // Received packets play as they are, but for the fade-in after a loss.
    for i in 1..n {
        let (a, b) = (i * 160, ((i + 1) * 160).min(clean.len()));
        if silent[a..b] != clean[a..b] || silent[a - 160..a] != clean[a - 160..a] {
            continue;
        }
        assert_eq!(concealed[a..b], clean[a..b], "packet {i}");
    }
    if std::env::var_os("PLC_WER_VERBOSE").is_some() {
        let lost: Vec<usize> = (0..n)
            .filter(|&i| {
                silent[i * 160..((i + 1) * 160).min(clean.len())]
                    != clean[i * 160..((i + 1) * 160).min(clean.len())]
            })
            .collect();
        let span = |v: &[f32]| -> f32 {
            lost.iter()
                .map(|&i| {
                    let r = i * 160..((i + 1) * 160).min(clean.len());
                    v[r.clone()]
                        .iter()
                        .zip(&clean[r])
                        .map(|(x, c)| (x - c) * (x - c))
                        .sum::<f32>()
                })
                .sum()
        };
        let energy: f32 = span(&vec![0.0; clean.len()]);
        eprintln!(
            "lost {} packets; error energy in them: silence {:.3}, concealed {:.3} ({:+.1} dB)",
            lost.len(),
            energy,
            span(&concealed),
            10.0 * (energy / span(&concealed).max(1e-9)).log10()
        );
    }
    [clean, silent, concealed]
}

async fn transcribe(analyzer: &Analyzer, samples: Vec<f32>, id: String) -> String {
    let wav = WavAudio {
        sample_rate: 8000,
        channels: 1,
        encoding: WavEncoding::PcmI16,
        samples: vec![samples],
    };
    let mut utterances = Vec::new();
    let finish = callmood::contact::finish::FinishOptions {
        redact_pii: false,
        ..Default::default()
    };
    callmood::replay::analyze_recording(analyzer, wav, id, proto::Role::Caller, finish, |ev| {
        if let Some(Event::Utterance(u)) = &ev.event {
            utterances.push((u.start_ms, u.transcript.clone()));
        }
        Ok(())
    })
    .await
    .unwrap();
    utterances.sort_by_key(|(s, _)| *s);
    utterances
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: minutes of Whisper"]
async fn wer_with_loss_concealed_and_silent() {
    let clips: usize = std::env::var("PLC_WER_CLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let manifest = std::fs::read_to_string(Path::new(CORPUS).join("manifest.csv"))
        .expect("the read-speech corpus");
    let mut rows = csv::Reader::from_reader(manifest.as_bytes());
    let items: Vec<(String, String)> = rows
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r[0].starts_with("commonvoice/") && !r[3].trim().is_empty())
        .map(|r| (r[0].to_string(), r[3].to_string()))
        .take(clips)
        .collect();
    let analyzer = Analyzer {
        plan: callmood::core::dsp::DspPlan::new(),
        asr: Some(Arc::new(
            callmood::asr::AsrPool::new(
                &common::model_path(),
                callmood::asr::AsrConfig {
                    workers: std::env::var("PLC_WER_WORKERS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                    threads_per_worker: 2,
                    max_queue_wait_s: 600.0,
                    ..Default::default()
                },
            )
            .unwrap(),
        )),
        voice: None,
        words: None,
        metrics: Default::default(),
    };
    let analyzer = Arc::new(analyzer);
    // Each version of every clip joined into one long recording per condition, 1 s of
    // silence between clips: utterances share Whisper windows, as in a call.
    let mut joined: [Vec<f32>; 3] = Default::default();
    let mut reference = Vec::new();
    let t0 = std::time::Instant::now();
    for (k, (file, text)) in items.iter().enumerate() {
        let versions = through_a_leg(&mulaw(&Path::new(CORPUS).join(file)), k as u64 + 1);
        for (j, v) in versions.into_iter().enumerate() {
            joined[j].extend(v);
            joined[j].extend(std::iter::repeat_n(0.0, 8000));
        }
        reference.push(text.clone());
    }
    let reference = reference.join(" ");
    let mut tasks = Vec::new();
    for (j, v) in joined.into_iter().enumerate() {
        let a = analyzer.clone();
        tasks.push(tokio::spawn(async move {
            transcribe(&a, v, format!("condition-{j}")).await
        }));
    }
    let mut errors = [0usize; 3];
    let mut words = 0usize;
    for (j, t) in tasks.into_iter().enumerate() {
        let hyp = t.await.unwrap();
        let (e, w) = callmood::asr::wer::word_errors(&reference, &hyp);
        if std::env::var_os("PLC_WER_VERBOSE").is_some() {
            eprintln!("{j} ({e} errors): {hyp}");
        }
        errors[j] = e;
        words = w;
    }
    let pct = |e: usize| 100.0 * e as f64 / words.max(1) as f64;
    eprintln!(
        "{} clips, {words} words, 5 % lost + 10 % reordered: clean {:.2} % ({}), \
         silence {:.2} % ({}), concealed {:.2} % ({}); loss costs {:.2} points silent, \
         {:.2} concealed ({:.0} s)",
        items.len(),
        pct(errors[0]),
        errors[0],
        pct(errors[1]),
        errors[1],
        pct(errors[2]),
        errors[2],
        pct(errors[1]) - pct(errors[0]),
        pct(errors[2]) - pct(errors[0]),
        t0.elapsed().as_secs_f32()
    );
}
