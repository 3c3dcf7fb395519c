//! Clients of the service, beside it rather than above it: they talk gRPC and share no
//! state with the server.
//!
//! - [`stream`]: the `StreamCall` client the others are built on: a recording's channels
//!   in their wire encoding, chunked and sent at real-time pace, events read back.
//! - [`loadtest`]: N live calls at once at real-time pace, with event latency.
//! - [`listen`]: the microphone (cpal, with the default `listen` feature) as a call's
//!   audio; its `ChunkAdapter`, device samples to 20 ms 16 kHz chunks, is sans-I/O and
//!   always built.
//! - [`ari`]: `asterisk-ari`, an Asterisk ARI application that snoops each call's caller
//!   and agent to callmood over AudioSocket (REST and the events WebSocket, no gRPC).

pub mod ari;
pub mod listen;
pub mod loadtest;
pub mod stream;
