//! callmood: live emotion and prosody analysis of phone calls.
//!
//! # Layout
//!
//! Layers, lowest first: a module uses only modules listed before it (primitives below,
//! wiring above), and no two modules import each other.
//!
//! Sans-I/O (told the time as sample counts and RTP timestamps; no clock, thread or socket):
//! - [`core`]: signal and protocol primitives: [`core::codec`] (G.711, 16-bit PCM, WAV:
//!   where a byte becomes a sample), [`core::rtp`] (RTP parsing, DTMF, jitter buffer, one
//!   RTP leg), [`core::audiosocket`] (Asterisk AudioSocket framing), [`core::dsp`] (FFT frame
//!   analysis, resampling to 16 kHz), [`core::segment`] (endpointing), [`core::prosody`]
//!   (per-utterance features, the speaker's baseline), [`core::rng`].
//! - [`asr`]: Whisper's file formats and words ([`asr::convert`], [`asr::ggml`],
//!   [`asr::words`], [`asr::wer`]); its engine and worker pool ([`asr::engine`],
//!   [`asr::pool`]) own threads and are used only by the shell.
//! - [`emotion`]: the trained models, inference only: voice features and encoder
//!   embedding, the voice and words models, their fusion and the cues that explain it.
//! - [`call`]: one call: channels, utterances, turn-taking, the events it emits.
//! - [`contact`]: the contact-centre layer: [`contact::finish`] finishes every utterance
//!   (words in call time, fusion, alerts, redaction, profile); [`contact::alerts`],
//!   [`contact::pii`], [`contact::profile`].
//! - [`report`]: a call's digest and risk score, JSON lines, CSV and the HTML report.
//!
//! The shell (threads, sockets, time):
//! - [`server`]: the gRPC service ([`server::grpc`]), calls whose legs arrive over RTP or
//!   AudioSocket ([`server::legs`]), one call's thread and pump ([`server::session`], which
//!   only moves messages), and [`server::status`], the one error-to-`Status` mapping.
//! - [`config`]: `serve`'s one typed configuration (file, environment, flags) and how it
//!   becomes a [`server::ServeConfig`].
//! - [`replay`]: bulk `analyze`: many recordings on one recogniser pool, resumable.
//!
//! Beside it:
//! - [`client`]: gRPC clients: `stream`, `loadtest`, and `listen` (the microphone, behind
//!   the default `listen` feature).
//! - [`train`]: training and evaluation of the emotion models (corpora, the simulated
//!   phone line, cross-validation); the service never runs it.
//! - [`cli`]: the `callmood` command line, one file per group of subcommands.
#![forbid(unsafe_code)]

pub mod asr;
pub mod call;
pub mod cli;
pub mod client;
pub mod config;
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
