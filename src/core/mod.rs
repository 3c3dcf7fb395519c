//! The signal and protocol core: sans-I/O primitives that take bytes, samples and
//! timestamps and return values. Nothing here reads a clock, spawns a task or opens a
//! socket, and nothing here imports a layer above it.
//!
//! - [`codec`]: G.711 μ-law/A-law, 16-bit PCM and WAV parsing: bytes become samples.
//! - [`rtp`]: RTP packet parsing, RFC 4733 DTMF events, the per-leg jitter buffer and one
//!   RTP leg ([`rtp::leg`]: payload types, jitter buffer, decode, DTMF).
//! - [`audiosocket`]: Asterisk AudioSocket framing: TCP bytes become hangup, UUID, DTMF
//!   and 8 kHz audio messages.
//! - [`dsp`]: FFT frame analysis on 10 ms hops (energy, F0 and voicing, spectral shape),
//!   and [`dsp::resample`], any input rate to the 16 kHz the analysis runs at.
//! - [`segment`]: endpointing: voice activity with hangover, utterances.
//! - [`prosody`]: per-utterance prosodic features and the speaker's running baseline.
//! - [`cidr`]: IP networks (`10.0.0.0/8`) and whether an address is in one.
//! - [`rng`]: a seeded generator for reproducible shuffles, noise and jitter.

pub mod audiosocket;
pub mod cidr;
pub mod codec;
pub mod dsp;
pub mod prosody;
pub mod rng;
pub mod rtp;
pub mod segment;
