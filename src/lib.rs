//! callmood: live emotion and prosody analysis of phone calls.
//!
//! # Layout
//!
//! The core is sans-I/O: it is told the time (sample counts) and returns values.
//! - [`codec`]: G.711 μ-law/A-law, 16-bit PCM and WAV parsing: bytes become samples.
//! - [`rtp`]: RTP packet parsing, RFC 4733 DTMF events and the per-leg jitter buffer.
//! - [`audiosocket`]: Asterisk AudioSocket framing: TCP bytes become hangup, UUID, DTMF
//!   and 8 kHz audio messages.
//! - [`degrade`]: a simulated phone line (band limit, 8 kHz, noise, μ-law) for training.
//! - [`rng`]: a seeded generator for reproducible shuffles and noise.
//! - [`resample`]: any input rate to the 16 kHz the analysis runs at (rubato).
//! - [`dsp`]: FFT frame analysis on 10 ms hops: energy, F0 and voicing, spectral shape.
//! - [`segment`]: endpointing: voice activity with hangover, utterances.
//! - [`prosody`]: per-utterance prosodic features and the speaker's running baseline.
//! - [`emotion`]: the trained voice and words models, their fusion, and the cues that
//!   explain a score.
//! - [`ingest`]: one RTP leg: payload types, jitter buffer, G.711/L16 decode, DTMF.
//! - [`call`]: one call: channels, utterances, turn-taking, the events it emits.
//! - [`profile`]: a call's emotion over time, per-role means and peak moments (summary).
//! - [`pii`]: redaction of card numbers, codes, expiry dates, SSNs, phone numbers and e-mail
//!   addresses in transcripts and their words.
//! - [`alerts`]: call state: trends over recent utterances become alerts (escalate,
//!   anxious caller, long silence, cross-talk), with cue phrases and cool-downs.
//!
//! The shell owns threads, sockets and time:
//! - [`asr`]: Whisper (whisper-rs): the CTranslate2 → GGML model converter and the
//!   worker pool that transcribes utterances off the async reactor.
//! - [`server`]: the tonic gRPC service (`callmood.v1.CallAnalyzer`), health and reflection.
//! - [`legs`]: calls whose legs come over RTP/UDP or AudioSocket/TCP, joined by call id.
//! - [`corpus`]: labelled speech corpora (`manifest.csv` plus WAV/FLAC) for `train`/`eval`.
//! - [`report`]: JSON lines output of events; the QA reports built from them (a call's
//!   digest and risk score, CSV, self-contained HTML).
//! - [`replay`]: bulk `analyze`: many recordings in parallel on one recogniser pool, into
//!   a results directory that a second run resumes.
//! - [`listen`]: the microphone (cpal) as a call's audio; its `ChunkAdapter`, device
//!   samples to 20 ms 16 kHz chunks, is sans-I/O.
//! - [`cli`]: the `callmood` command line.
#![forbid(unsafe_code)]

pub mod asr;
pub mod call;
pub mod cli;
pub mod client;
pub mod contact;
pub mod core;
pub mod emotion;
pub mod replay;
pub mod report;
pub mod server;
pub mod train;

/// Generated protobuf/gRPC types of `callmood.v1`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("callmood.v1");
    include!(concat!(env!("OUT_DIR"), "/callmood.v1.serde.rs"));

    /// Encoded `FileDescriptorSet` for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/callmood_descriptor.bin"));
}

/// Sample rate of all analysis, Hz.
pub const SAMPLE_RATE: u32 = 16_000;
/// Analysis hop: 10 ms at [`SAMPLE_RATE`], in samples.
pub const HOP: usize = 160;
