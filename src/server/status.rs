//! The one place where an error becomes a gRPC `Status`.
//!
//! The shell's operations return [`ServerError`], typed, with the context in its
//! variants; the core's [`CallError`]s ride inside it. [`status`] picks the code and the
//! message for every one of them, so that a client reads the same code for the same
//! fault on every RPC and transport.
use tonic::Status;

use crate::call::CallError;
use crate::core::codec::{AudioFileError, WavError};

/// Errors of the service's requests: all are fatal for the request (or the call) they
/// end, none for the service.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The call itself is wrong or broken (config, audio, limits).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The cap on calls in flight is reached.
    #[error("{max} calls are in flight, the limit: retry later")]
    CallsInFlight { max: usize },
    /// A `StreamCall` sent no config in time.
    #[error("no config within {secs} s of opening the stream")]
    ConfigTimeout { secs: u64 },
    /// A `StreamCall` ended before its config.
    #[error("the stream ended before its config")]
    NoConfig,
    /// An RPC that names a call got no call id.
    #[error("call_id: required")]
    CallIdRequired,
    /// A leg (RTP, AudioSocket) got no call id to join.
    #[error("call_id: required to join legs")]
    CallIdRequiredToJoin,
    /// `AnalyzeRecording`'s `left_role` is no `Role`.
    #[error("left_role: {0} is no Role (0 ROLE_UNSPECIFIED, 1 CALLER, 2 AGENT)")]
    UnknownLeftRole(i32),
    /// `AnalyzeRecording`'s recording has more channels than a call may.
    #[error("{field}: {got} channels, at most {max} are analysed")]
    RecordingChannels {
        field: &'static str,
        got: usize,
        max: usize,
    },
    /// `AnalyzeRecording` without audio.
    #[error("audio: a file, wav or raw recording is required")]
    NoRecording,
    /// `AnalyzeRecording`'s file (or WAV) bytes do not decode.
    #[error("audio: {0}")]
    BadAudio(#[from] AudioFileError),
    /// A call already has as many legs as it may.
    #[error("call {call_id}: at most {max} legs per call")]
    TooManyLegs { call_id: String, max: usize },
    /// The call ended while a leg was joining it.
    #[error("call {call_id} ended while the leg joined")]
    EndedWhileJoining { call_id: String },
    /// No live or recently ended call has this id.
    #[error("no call {call_id:?}")]
    NoCall { call_id: String },
    /// The call has no open leg with this channel id.
    #[error("call {call_id:?} has no open leg {channel_id}")]
    NoOpenLeg { call_id: String, channel_id: u32 },
    /// `WatchCall` waited for a call id that got no leg in time.
    #[error("no call {call_id:?} (none started within {secs} s)")]
    NotStarted { call_id: String, secs: u64 },
    /// Every even UDP port of the RTP range is taken.
    #[error("no free even UDP port in {lo}-{hi} for an RTP leg")]
    NoFreePort { lo: u32, hi: u32 },
    /// The service is draining (shutting down): it takes no new call or leg.
    #[error("the service is shutting down: retry on another replica")]
    Draining,
    /// The service requires a bearer token and the request has no known one (the
    /// message never repeats what was sent).
    #[error("authorization: a valid `Bearer` token is required")]
    Unauthenticated,
    /// A reload of the token file took away the token (or certificate) that opened this
    /// stream or leg.
    #[error("the token of this stream was revoked by a reload of the token file")]
    Revoked,
    /// With tokens: a leg named a call whose first leg proved a credential when it proved
    /// none (an open `/fork` naming a token holder's RTP call), or the other way round. A
    /// call's legs all prove who they are or none does, so media that proved nothing can
    /// neither add audio to an authenticated client's call nor hear one join its own.
    #[error("call {call_id:?}: {}", if *.proved {
        "started by media that proved no credential; a leg with credentials may not join it"
    } else {
        "started by a client with credentials; media that proved none may not join it"
    })]
    MixedCredentials { call_id: String, proved: bool },
    /// A call id that is too long or holds other characters than ids may (shown cut
    /// short).
    #[error("call_id: {why} ({bytes} bytes; at most 128 of A-Z a-z 0-9 . _ : @ + = -): {shown:?}")]
    BadCallId {
        shown: String,
        bytes: usize,
        why: &'static str,
    },
    /// With tokens: the tenant has no call with this id. The same whether the id is
    /// another tenant's or nobody's.
    #[error("call {call_id:?}: no such call of this tenant")]
    NotPermitted { call_id: String },
    /// The tenant's cap on calls in flight is reached.
    #[error("this tenant has {max} calls in flight, its limit: retry later")]
    TenantCallsInFlight { max: usize },
    /// The cap on `AnalyzeRecording` calls in flight is reached (refused before the
    /// recording is read).
    #[error("{max} recordings are being analysed, the limit (server.max_recordings): retry later")]
    RecordingsInFlight { max: usize },
    /// The tenant's cap on `AnalyzeRecording` calls in flight is reached.
    #[error(
        "this tenant has {max} recordings being analysed, its limit \
         (security.tenant_max_recordings): retry later"
    )]
    TenantRecordingsInFlight { max: usize },
    /// The client's own stream failed (bad protobuf, a message over the limit, a
    /// transport error): tonic's status, passed on as it is.
    #[error("{}", .0.message())]
    Stream(Status),
    /// A request message over the size limit (refused before it was buffered).
    #[error("message over the size limit of {max} bytes, server.max_message_bytes ({detail}); send live audio in chunks of milliseconds to seconds")]
    MessageTooLarge { detail: String, max: usize },
    /// A request message that is no protobuf message of its type.
    #[error("malformed message: {0}")]
    BadMessage(String),
    /// One `AudioChunk` carries more audio than a chunk may.
    #[error("audio.data: {ms} ms of audio in one AudioChunk of channel {channel_id}; at most {max_ms} ms")]
    ChunkTooLong {
        channel_id: u32,
        ms: u64,
        max_ms: u64,
    },
    /// The thread decoding an `AnalyzeRecording` file died (a bug, not the client's
    /// fault: the decoders return errors for bad bytes).
    #[error("the recording's decoder failed: {0}")]
    DecoderFailed(String),
}

/// Maps every error a client can cause to its gRPC status: the one place that does.
pub fn status(e: impl Into<ServerError>) -> Status {
    let e = e.into();
    let msg = e.to_string();
    match e {
        ServerError::Call(c) => match c {
            CallError::CallTooLong { .. } => Status::resource_exhausted(msg),
            CallError::IdleTimeout { .. } => Status::deadline_exceeded(msg),
            CallError::Stopped => Status::internal(msg),
            CallError::ConfigFirst
            | CallError::ConfigTwice
            | CallError::EmptyMessage
            | CallError::NoChannels
            | CallError::TooManyChannels { .. }
            | CallError::DuplicateChannel(_)
            | CallError::Channel { .. }
            | CallError::UnsupportedLanguage(_)
            | CallError::UnknownChannel(_)
            | CallError::MixedInput { .. }
            | CallError::ChannelEnded(_)
            | CallError::Resample { .. } => Status::invalid_argument(msg),
        },
        ServerError::Unauthenticated | ServerError::Revoked => Status::unauthenticated(msg),
        ServerError::NotPermitted { .. } | ServerError::MixedCredentials { .. } => {
            Status::permission_denied(msg)
        }
        ServerError::CallsInFlight { .. }
        | ServerError::BadAudio(AudioFileError::TooLong { .. })
        | ServerError::TenantCallsInFlight { .. }
        | ServerError::RecordingsInFlight { .. }
        | ServerError::TenantRecordingsInFlight { .. }
        | ServerError::TooManyLegs { .. }
        | ServerError::NoFreePort { .. }
        | ServerError::MessageTooLarge { .. }
        | ServerError::ChunkTooLong { .. } => Status::resource_exhausted(msg),
        ServerError::ConfigTimeout { .. } => Status::deadline_exceeded(msg),
        ServerError::NoConfig
        | ServerError::CallIdRequired
        | ServerError::CallIdRequiredToJoin
        | ServerError::NoRecording
        | ServerError::UnknownLeftRole(_)
        | ServerError::RecordingChannels { .. }
        | ServerError::BadCallId { .. }
        | ServerError::BadMessage(_)
        | ServerError::BadAudio(_) => Status::invalid_argument(msg),
        ServerError::EndedWhileJoining { .. } | ServerError::Draining => Status::unavailable(msg),
        ServerError::NoCall { .. }
        | ServerError::NoOpenLeg { .. }
        | ServerError::NotStarted { .. } => Status::not_found(msg),
        ServerError::Stream(s) => s,
        ServerError::DecoderFailed(_) => Status::internal(msg),
    }
}

impl From<WavError> for ServerError {
    fn from(e: WavError) -> Self {
        ServerError::BadAudio(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn codes_follow_the_fault() {
        let cases: Vec<(ServerError, Code)> = vec![
            (
                CallError::CallTooLong { max_ms: 1 }.into(),
                Code::ResourceExhausted,
            ),
            (
                CallError::IdleTimeout { secs: 2 }.into(),
                Code::DeadlineExceeded,
            ),
            (CallError::ConfigTwice.into(), Code::InvalidArgument),
            (
                ServerError::CallsInFlight { max: 3 },
                Code::ResourceExhausted,
            ),
            (
                ServerError::ConfigTimeout { secs: 10 },
                Code::DeadlineExceeded,
            ),
            (ServerError::NoRecording, Code::InvalidArgument),
            (
                ServerError::MessageTooLarge {
                    detail: "found 2 bytes".into(),
                    max: 1,
                },
                Code::ResourceExhausted,
            ),
            (
                ServerError::ChunkTooLong {
                    channel_id: 0,
                    ms: 11_000,
                    max_ms: 10_000,
                },
                Code::ResourceExhausted,
            ),
            (ServerError::BadMessage("x".into()), Code::InvalidArgument),
            (WavError::NoFmtChunk.into(), Code::InvalidArgument),
            (
                AudioFileError::Unrecognised(b"abcd".to_vec()).into(),
                Code::InvalidArgument,
            ),
            (
                AudioFileError::TooLong {
                    format: "MP3".into(),
                    max: 1,
                    hours: 1.0,
                }
                .into(),
                Code::ResourceExhausted,
            ),
            (
                ServerError::EndedWhileJoining {
                    call_id: "c".into(),
                },
                Code::Unavailable,
            ),
            (ServerError::Draining, Code::Unavailable),
            (
                ServerError::NotStarted {
                    call_id: "c".into(),
                    secs: 10,
                },
                Code::NotFound,
            ),
            (
                ServerError::Stream(Status::out_of_range("too big")),
                Code::OutOfRange,
            ),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let s = status(e);
            assert_eq!(s.code(), code, "{text}");
            assert_eq!(s.message(), text);
        }
    }

    #[test]
    fn messages_name_the_limit() {
        let s = status(ServerError::CallsInFlight { max: 64 });
        assert_eq!(
            s.message(),
            "64 calls are in flight, the limit: retry later"
        );
        let s = status(WavError::NoDataChunk);
        assert_eq!(s.message(), "audio: no data chunk");
    }
}
