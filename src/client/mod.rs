//! Clients of the service, beside it rather than above it: they talk gRPC and share no
//! state with the server.
//!
//! - [`loadtest`]: N live calls at once at real-time pace, with event latency.
//! - [`listen`]: the microphone (cpal) as a call's audio; its `ChunkAdapter`, device
//!   samples to 20 ms 16 kHz chunks, is sans-I/O.

pub mod listen;
pub mod loadtest;
