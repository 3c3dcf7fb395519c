//! One call: its channels, their utterances, turn-taking between them, and the
//! events that describe them.
//!
//! Sans-I/O: [`CallCore`] takes audio bytes or samples per channel and hands
//! back every utterance that ended, with its prosody and the 16 kHz audio the
//! recogniser needs. Time is the sample count of each channel. It never reads
//! a clock, spawns a thread or touches a socket; the shell ([`crate::server::session`])
//! does that.
use std::collections::VecDeque;
use std::sync::Arc;

use crate::core::codec::{Decoder, Encoding};
use crate::core::dsp::resample::Resampler;
use crate::core::dsp::{DspPlan, Frame, FrameAnalyzer};
use crate::core::prosody::{self, Baseline};
use crate::core::rtp::leg::{LegOut, RtpLeg, RtpSettings};
use crate::core::segment::{Endpointer, Segment, SegmentConfig};
use crate::emotion::embed::Encoder;
use crate::emotion::features::{voice_features, VoiceVector};
use crate::emotion::voice::{SpeakerBaseline, VoiceModel, VoiceScore};
use crate::proto::{self, Role};
use crate::{HOP, SAMPLE_RATE};

/// Most channels one call may have.
pub const MAX_CHANNELS: usize = 8;
/// Default longest call, ms (4 h): longer streams are refused, not buffered.
pub const DEFAULT_MAX_CALL_MS: u64 = 4 * 3600 * 1000;
/// Lowest and highest LINEAR16 sample rates accepted, Hz.
pub const MIN_RATE_HZ: u32 = 8_000;
pub const MAX_RATE_HZ: u32 = 48_000;
/// G.711 sample rate, Hz.
pub const G711_RATE_HZ: u32 = 8_000;

/// Errors of a call. All are the caller's fault and fatal for the call
/// (`INVALID_ARGUMENT` or `RESOURCE_EXHAUSTED`), except where noted.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CallError {
    #[error("config.channels: at least one channel is required")]
    NoChannels,
    #[error("config.channels: at most {max} channels per call, got {got}")]
    TooManyChannels { max: usize, got: usize },
    #[error("config.channels: channel_id {0} appears twice")]
    DuplicateChannel(u32),
    #[error("config.channels[{channel_id}].{}: {source}", source.field().in_channel_config())]
    Channel {
        channel_id: u32,
        #[source]
        source: ChannelError,
    },
    #[error("config.language: {0:?} is not supported (the model is English-only: use \"en\")")]
    UnsupportedLanguage(String),
    #[error("audio for channel_id {0}, which the config does not declare")]
    UnknownChannel(u32),
    #[error("the call is longer than the limit of {max_ms} ms")]
    CallTooLong { max_ms: u64 },
    #[error("the first message must be a config")]
    ConfigFirst,
    #[error("a second config arrived in the middle of the call")]
    ConfigTwice,
    #[error("channel_id {channel_id} takes {had}; it cannot also take {got}")]
    MixedInput {
        channel_id: u32,
        had: &'static str,
        got: &'static str,
    },
    #[error("channel_id {0} has ended")]
    ChannelEnded(u32),
    #[error("empty request message")]
    EmptyMessage,
    #[error("no message for {secs} s: the call was ended")]
    IdleTimeout { secs: u64 },
    /// The call's work stopped before its summary without saying why (a bug, not the
    /// client's fault): the call ends with this error, never as if it had succeeded.
    #[error("the call's analysis stopped unexpectedly; see the server's log")]
    Stopped,
    #[error("audio: {source}")]
    Resample {
        channel_id: u32,
        #[source]
        source: crate::core::dsp::resample::ResampleError,
    },
}

/// One channel (call leg) as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    pub id: u32,
    pub role: Role,
    pub encoding: Encoding,
    /// Hz of the bytes or samples pushed for this channel.
    pub sample_rate_hz: u32,
    /// How RTP packets for this channel are read, if it gets any.
    pub rtp: RtpSettings,
}

/// What is wrong with one channel's settings; [`ChannelError::field`] says which field, so
/// each RPC names it the way its own message does.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ChannelError {
    #[error("must be LINEAR16, MULAW or ALAW")]
    UnspecifiedEncoding,
    #[error("{0} is no Role (0 ROLE_UNSPECIFIED, 1 CALLER, 2 AGENT)")]
    UnknownRole(i32),
    #[error("{rate} Hz is not supported for {encoding} (expected {expected})")]
    BadSampleRate {
        rate: u32,
        encoding: &'static str,
        expected: &'static str,
    },
    #[error(transparent)]
    Rtp(#[from] crate::core::rtp::leg::RtpSettingsError),
}

/// A field of a channel's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelField {
    Encoding,
    Role,
    SampleRate,
    PayloadType,
    DtmfPayloadType,
    JitterBuffer,
}

impl ChannelField {
    /// Its name in a `ChannelConfig` (`StreamCall`).
    pub fn in_channel_config(self) -> &'static str {
        match self {
            Self::Encoding => "encoding",
            Self::Role => "role",
            Self::SampleRate => "sample_rate_hz",
            Self::PayloadType => "rtp_payload_type",
            Self::DtmfPayloadType => "rtp_dtmf_payload_type",
            Self::JitterBuffer => "jitter_buffer_ms",
        }
    }

    /// Its name in an `OpenRtpLegRequest`.
    pub fn in_open_rtp_leg(self) -> &'static str {
        match self {
            Self::PayloadType => "payload_type",
            Self::DtmfPayloadType => "dtmf_payload_type",
            other => other.in_channel_config(),
        }
    }
}

impl ChannelError {
    /// The field at fault.
    pub fn field(&self) -> ChannelField {
        use crate::core::rtp::leg::RtpSettingsError as R;
        match self {
            Self::UnspecifiedEncoding => ChannelField::Encoding,
            Self::UnknownRole(_) => ChannelField::Role,
            Self::BadSampleRate { .. } => ChannelField::SampleRate,
            Self::Rtp(R::PayloadType { .. }) => ChannelField::PayloadType,
            Self::Rtp(R::DtmfPayloadType(_) | R::SharedPayloadType(_)) => {
                ChannelField::DtmfPayloadType
            }
            Self::Rtp(R::JitterTooLong { .. }) => ChannelField::JitterBuffer,
        }
    }
}

/// How a channel's audio reaches the service (for `LegStats.transport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `StreamCall` (or a recording): `AudioChunk`s or `RtpPacket`s.
    Grpc,
    /// RTP over UDP, a leg opened with `OpenRtpLeg`.
    RtpUdp,
    /// Asterisk AudioSocket over TCP.
    AudioSocket,
    /// Twilio Media Streams (and the platforms that copy it) over WebSocket.
    TwilioWs,
    /// FreeSWITCH `mod_audio_fork` / jambonz `listen` over WebSocket.
    AudioFork,
    /// Genesys Cloud AudioHook over WebSocket.
    AudioHook,
}

impl ChannelSpec {
    /// A channel with the RTP defaults of its encoding.
    pub fn new(id: u32, role: Role, encoding: Encoding, sample_rate_hz: u32) -> Self {
        Self {
            id,
            role,
            encoding,
            sample_rate_hz,
            rtp: RtpSettings::for_encoding(encoding),
        }
    }

    /// Validates one `ChannelConfig` from the wire; errors name the field as
    /// `config.channels[ID].FIELD`.
    pub fn from_proto(c: &proto::ChannelConfig) -> Result<Self, CallError> {
        Self::check(c).map_err(|source| CallError::Channel {
            channel_id: c.channel_id,
            source,
        })
    }

    /// [`ChannelSpec::from_proto`] with the bare reason; [`ChannelError::field`] names the
    /// field for the RPC at hand.
    pub fn check(c: &proto::ChannelConfig) -> Result<Self, ChannelError> {
        let encoding = match proto::Encoding::try_from(c.encoding) {
            Ok(proto::Encoding::Linear16) => Encoding::Linear16,
            Ok(proto::Encoding::Mulaw) => Encoding::Mulaw,
            Ok(proto::Encoding::Alaw) => Encoding::Alaw,
            _ => return Err(ChannelError::UnspecifiedEncoding),
        };
        // An unknown value is refused, not read as unspecified: the client meant something.
        let role = Role::try_from(c.role).map_err(|_| ChannelError::UnknownRole(c.role))?;
        let rate = c.sample_rate_hz;
        let sample_rate_hz = match encoding {
            Encoding::Linear16 if (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate) => rate,
            Encoding::Linear16 => {
                return Err(ChannelError::BadSampleRate {
                    rate,
                    encoding: "LINEAR16",
                    expected: "8000..=48000",
                })
            }
            Encoding::Mulaw | Encoding::Alaw if rate == 0 || rate == G711_RATE_HZ => G711_RATE_HZ,
            Encoding::Mulaw | Encoding::Alaw => {
                return Err(ChannelError::BadSampleRate {
                    rate,
                    encoding: if encoding == Encoding::Mulaw {
                        "MULAW"
                    } else {
                        "ALAW"
                    },
                    expected: "8000 (or 0)",
                })
            }
        };
        let rtp = RtpSettings::from_wire(
            encoding,
            c.rtp_payload_type,
            c.rtp_dtmf_payload_type,
            c.jitter_buffer_ms,
        )?;
        Ok(Self {
            id: c.channel_id,
            role,
            encoding,
            sample_rate_hz,
            rtp,
        })
    }
}

/// Validates a call's language: English or unspecified.
pub fn check_language(lang: &str) -> Result<(), CallError> {
    let l = lang.to_ascii_lowercase();
    if l.is_empty() || l == "en" || l.starts_with("en-") {
        Ok(())
    } else {
        Err(CallError::UnsupportedLanguage(lang.to_string()))
    }
}

/// Per-call settings.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSettings {
    pub segment: SegmentConfig,
    /// Longest call accepted, ms.
    pub max_call_ms: u64,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            segment: SegmentConfig::default(),
            max_call_ms: DEFAULT_MAX_CALL_MS,
        }
    }
}

/// Channels of a recording: the first is `left_role` (CALLER by default), the
/// second the other role, any further ones unspecified.
pub fn recording_channels(
    n_channels: usize,
    sample_rate_hz: u32,
    left_role: proto::Role,
) -> Vec<ChannelSpec> {
    let left = if left_role == proto::Role::Unspecified {
        proto::Role::Caller
    } else {
        left_role
    };
    let right = if left == proto::Role::Agent {
        proto::Role::Caller
    } else {
        proto::Role::Agent
    };
    (0..n_channels)
        .map(|i| {
            let role = match i {
                0 => left,
                1 => right,
                _ => proto::Role::Unspecified,
            };
            ChannelSpec::new(i as u32, role, Encoding::Linear16, sample_rate_hz)
        })
        .collect()
}

/// An utterance that just ended.
#[derive(Clone, Debug)]
pub struct Ended {
    /// The fast-path event (prosody only), ready to send.
    pub prosody: proto::UtteranceProsody,
    /// The full result without words: the recogniser fills those in.
    pub utterance: proto::Utterance,
    /// 16 kHz audio of the utterance with pre- and post-roll, for the recogniser.
    pub audio: Vec<f32>,
    /// Call time of `audio[0]`, ms: add it to word times relative to the audio.
    pub audio_start_ms: u32,
    /// Raw voice features of the utterance (the emotion model's input).
    pub voice: VoiceVector,
    /// The voice model's score (when the call has one), for fusion with the words.
    pub voice_score: Option<VoiceScore>,
}

/// Frames kept before an open utterance, for the onset window.
const FRAME_MARGIN: u64 = 16;

/// What a channel has been fed so far: one kind of input per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    None,
    Audio,
    Rtp,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::None => "nothing",
            Feed::Audio => "audio chunks",
            Feed::Rtp => "RTP packets",
        }
    }
}

struct Channel {
    spec: ChannelSpec,
    transport: Transport,
    feed: Feed,
    rtp: Option<RtpLeg>,
    leg_out: Vec<LegOut>,
    /// A channel that joined mid-call: at its first audio it is padded with
    /// silence up to the other channels' time, so times stay comparable.
    pad_pending: bool,
    ended: bool,
    /// Samples taken in at the channel's own rate (padding included).
    native_in: u64,
    /// Chunks / messages taken in (for `LegStats` of non-RTP legs).
    received: u64,
    malformed: u64,
    dtmf_events: u32,
    /// Call time (ms) where the current telephone-event began, by its RTP timestamp.
    dtmf_begin: Option<(u32, u64)>,
    decoder: Decoder,
    resampler: Resampler,
    analyzer: FrameAnalyzer,
    endpointer: Endpointer,
    baseline: Baseline,
    voice_baseline: SpeakerBaseline,
    // scratch, reused for every chunk
    native: Vec<f32>,
    resampled: Vec<f32>,
    new_frames: Vec<Frame>,
    // 16 kHz audio from absolute sample index `audio_base`
    audio: VecDeque<f32>,
    audio_base: u64,
    samples_16k: u64,
    // frames (with activity) from absolute frame index `frame_base`
    frames: VecDeque<(Frame, bool)>,
    frame_base: u64,
    // finished utterances, ms; and the running talk/overlap tallies
    intervals: Vec<(u64, u64)>,
    talk_ms: u64,
    overlap_ms: u64,
    latencies: Vec<i32>,
    utterances: u32,
}

impl Channel {
    /// The channel's RTP leg, made on first use from its spec.
    fn rtp_leg(&mut self) -> &mut RtpLeg {
        let spec = self.spec;
        self.rtp
            .get_or_insert_with(|| RtpLeg::new(spec.encoding, spec.sample_rate_hz, spec.rtp))
    }

    fn stats(&self) -> proto::LegStats {
        let transport = match (self.transport, self.feed) {
            (Transport::Grpc, Feed::Rtp) => "grpc-rtp",
            (Transport::Grpc, _) => "grpc",
            (Transport::RtpUdp, _) => "rtp-udp",
            (Transport::AudioSocket, _) => "audiosocket",
            (Transport::TwilioWs, _) => "twilio-ws",
            (Transport::AudioFork, _) => "audio-fork",
            (Transport::AudioHook, _) => "audiohook",
        };
        let mut s = match &self.rtp {
            Some(leg) => leg.stats(self.spec.id, self.spec.role, transport),
            None => proto::LegStats {
                channel_id: self.spec.id,
                role: self.spec.role as i32,
                transport: transport.to_string(),
                packets_received: self.received + self.malformed,
                ..Default::default()
            },
        };
        s.packets_malformed += self.malformed;
        if self.rtp.is_some() {
            s.packets_received += self.malformed;
        }
        s.dtmf_events += self.dtmf_events;
        s
    }
}

/// The sans-I/O analysis of one call.
pub struct CallCore {
    call_id: String,
    settings: CallSettings,
    channels: Vec<Channel>,
    next_utterance: u32,
    segments: Vec<(usize, Segment)>,
    voice_model: Option<Arc<VoiceModel>>,
    encoder: Option<Arc<Encoder>>,
    plan: Arc<DspPlan>,
    dtmf: Vec<proto::Dtmf>,
}

impl CallCore {
    /// A new call. Fails when the channel list is empty, too long, or has
    /// duplicate ids.
    pub fn new(
        call_id: impl Into<String>,
        specs: &[ChannelSpec],
        settings: CallSettings,
        plan: Arc<DspPlan>,
    ) -> Result<Self, CallError> {
        if specs.is_empty() {
            return Err(CallError::NoChannels);
        }
        if specs.len() > MAX_CHANNELS {
            return Err(CallError::TooManyChannels {
                max: MAX_CHANNELS,
                got: specs.len(),
            });
        }
        let mut core = Self {
            call_id: call_id.into(),
            settings,
            channels: Vec::with_capacity(specs.len()),
            next_utterance: 0,
            segments: Vec::new(),
            voice_model: None,
            encoder: None,
            plan,
            dtmf: Vec::new(),
        };
        for s in specs {
            core.add(s, Transport::Grpc, false)?;
        }
        Ok(core)
    }

    /// Marks the configured channels as legs of a live call that arrive on
    /// their own (RTP/UDP, AudioSocket): each starts, at its first audio,
    /// where the other legs are by then.
    pub fn set_joining(&mut self, transport: Transport) {
        for ch in &mut self.channels {
            ch.transport = transport;
            ch.pad_pending = true;
        }
    }

    /// Packet statistics of every channel so far, in channel order (as the summary's
    /// `legs`; the shell reports them as metrics while the call runs).
    pub fn leg_stats(&self) -> Vec<proto::LegStats> {
        self.channels.iter().map(Channel::stats).collect()
    }

    /// Adds a channel in the middle of the call (a leg that joined later).
    /// Its time starts where the other channels are when its first audio
    /// arrives.
    pub fn add_channel(
        &mut self,
        spec: &ChannelSpec,
        transport: Transport,
    ) -> Result<(), CallError> {
        self.add(spec, transport, true)
    }

    fn add(&mut self, s: &ChannelSpec, transport: Transport, pad: bool) -> Result<(), CallError> {
        if self.channels.iter().any(|o| o.spec.id == s.id) {
            return Err(CallError::DuplicateChannel(s.id));
        }
        if self.channels.len() >= MAX_CHANNELS {
            return Err(CallError::TooManyChannels {
                max: MAX_CHANNELS,
                got: self.channels.len() + 1,
            });
        }
        let resampler = Resampler::new(s.sample_rate_hz).map_err(|source| CallError::Resample {
            channel_id: s.id,
            source,
        })?;
        self.channels.push(Channel {
            spec: *s,
            transport,
            feed: Feed::None,
            rtp: None,
            leg_out: Vec::new(),
            pad_pending: pad,
            ended: false,
            native_in: 0,
            received: 0,
            malformed: 0,
            dtmf_events: 0,
            dtmf_begin: None,
            decoder: Decoder::new(s.encoding),
            resampler,
            analyzer: FrameAnalyzer::new(self.plan.clone()),
            endpointer: Endpointer::new(self.settings.segment.clone()),
            baseline: Baseline::default(),
            voice_baseline: SpeakerBaseline::default(),
            native: Vec::new(),
            resampled: Vec::new(),
            new_frames: Vec::new(),
            audio: VecDeque::new(),
            audio_base: 0,
            samples_16k: 0,
            frames: VecDeque::new(),
            frame_base: 0,
            intervals: Vec::new(),
            talk_ms: 0,
            overlap_ms: 0,
            latencies: Vec::new(),
            utterances: 0,
        });
        Ok(())
    }

    /// Scores every utterance with `model` from now on (each channel keeps its own running
    /// baseline); the scores go into `UtteranceProsody.emotion` and [`Ended::voice_score`].
    /// The model's encoder weights, when loaded, also become the call's encoder
    /// ([`CallCore::set_voice_encoder`]).
    pub fn set_voice_model(&mut self, model: Option<Arc<VoiceModel>>) {
        if let Some(e) = model.as_ref().and_then(|m| m.encoder()) {
            self.encoder = Some(e.clone());
        }
        self.voice_model = model;
    }

    /// Computes the encoder embedding part of every utterance's voice features with
    /// `encoder` (without one that part is NaN). Training sets it with no model.
    pub fn set_voice_encoder(&mut self, encoder: Option<Arc<Encoder>>) {
        self.encoder = encoder;
    }

    /// How far the call's audio has come, ms: the furthest channel.
    pub fn time_ms(&self) -> u64 {
        (0..self.channels.len())
            .map(|ci| self.channel_ms(ci))
            .max()
            .unwrap_or(0)
    }

    /// Whether an utterance is open on any channel now.
    pub fn speaking(&self) -> bool {
        self.channels
            .iter()
            .any(|c| c.endpointer.open_start().is_some())
    }

    /// The call id.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The configured channels.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelSpec> {
        self.channels.iter().map(|c| &c.spec)
    }

    /// Feeds encoded bytes for a channel; appends every utterance that ended.
    pub fn push_audio(
        &mut self,
        channel_id: u32,
        bytes: &[u8],
        out: &mut Vec<Ended>,
    ) -> Result<(), CallError> {
        let ci = self.feed(channel_id, Feed::Audio)?;
        let ch = &mut self.channels[ci];
        ch.received += 1;
        let mut native = std::mem::take(&mut ch.native);
        native.clear();
        ch.decoder.decode_into(bytes, &mut native);
        let r = self.push_native(ci, &native, out);
        self.channels[ci].native = native;
        r
    }

    /// Feeds decoded samples (-1..1, at the channel's rate) for a channel.
    pub fn push_samples(
        &mut self,
        channel_id: u32,
        samples: &[f32],
        out: &mut Vec<Ended>,
    ) -> Result<(), CallError> {
        let ci = self.feed(channel_id, Feed::Audio)?;
        self.channels[ci].received += 1;
        self.push_native(ci, samples, out)
    }

    /// Feeds one RTP datagram for a channel that arrived at `now_ms` (the
    /// shell's monotonic clock, the same for every leg of the call). It goes
    /// through the channel's jitter buffer; what is due is analysed. A packet
    /// that cannot be used is dropped and counted, never an error of the call.
    /// The datagram is moved into the jitter buffer, not copied.
    pub fn push_rtp(
        &mut self,
        channel_id: u32,
        now_ms: u64,
        datagram: Vec<u8>,
        out: &mut Vec<Ended>,
    ) -> Result<(), CallError> {
        let ci = self.feed(channel_id, Feed::Rtp)?;
        let ch = &mut self.channels[ci];
        let mut leg_out = std::mem::take(&mut ch.leg_out);
        leg_out.clear();
        // A dropped packet is counted in the leg's statistics; the call goes on.
        let _ = ch.rtp_leg().push_owned(now_ms, datagram, &mut leg_out);
        let r = self.play(ci, &leg_out, out);
        self.channels[ci].leg_out = leg_out;
        r
    }

    /// Plays out what the channels' jitter buffers hold that is due at
    /// `now_ms`. The shell calls it on a timer (e.g. every 20 ms) so the last
    /// packets before a pause are not held until the next packet.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Ended>) -> Result<(), CallError> {
        for ci in 0..self.channels.len() {
            let ch = &mut self.channels[ci];
            let Some(leg) = ch.rtp.as_mut() else {
                continue;
            };
            if ch.ended {
                continue;
            }
            let mut leg_out = std::mem::take(&mut ch.leg_out);
            leg_out.clear();
            leg.tick(now_ms, &mut leg_out);
            let r = self.play(ci, &leg_out, out);
            self.channels[ci].leg_out = leg_out;
            r?;
        }
        Ok(())
    }

    /// A DTMF key press reported by the transport itself (AudioSocket), at
    /// the channel's current time.
    pub fn push_dtmf(&mut self, channel_id: u32, digit: char) -> Result<(), CallError> {
        let ci = self.index(channel_id)?;
        let start_ms = self.channel_ms(ci);
        let ch = &mut self.channels[ci];
        ch.dtmf_events += 1;
        self.dtmf.push(proto::Dtmf {
            channel_id,
            role: ch.spec.role as i32,
            digit: digit.to_string(),
            start_ms: start_ms as u32,
            duration_ms: 0,
        });
        Ok(())
    }

    /// Counts an input of a channel that was dropped as malformed by the
    /// shell (e.g. an AudioSocket message of an unknown kind).
    pub fn count_malformed(&mut self, channel_id: u32) {
        if let Ok(ci) = self.index(channel_id) {
            self.channels[ci].malformed += 1;
        }
    }

    /// Counts a datagram for an RTP channel that came from another sender.
    pub fn count_foreign(&mut self, channel_id: u32) {
        if let Ok(ci) = self.index(channel_id) {
            self.channels[ci].rtp_leg().count_foreign();
        }
    }

    /// Counts a datagram for an RTP channel from outside the allowed networks.
    pub fn count_not_allowed(&mut self, channel_id: u32) {
        if let Ok(ci) = self.index(channel_id) {
            self.channels[ci].rtp_leg().count_not_allowed();
        }
    }

    /// Counts a datagram for an RTP channel dropped for running too far ahead of the
    /// wall clock.
    pub fn count_ahead_dropped(&mut self, channel_id: u32) {
        if let Ok(ci) = self.index(channel_id) {
            self.channels[ci].rtp_leg().count_ahead_dropped();
        }
    }

    /// Key presses seen since the last call, in the order they ended.
    pub fn take_dtmf(&mut self, out: &mut Vec<proto::Dtmf>) {
        out.append(&mut self.dtmf);
    }

    /// Ends one channel (its leg hung up or was closed): its jitter buffer is
    /// played out and its open utterance closed. Later input for it is an error.
    pub fn end_channel(&mut self, channel_id: u32, out: &mut Vec<Ended>) -> Result<(), CallError> {
        let ci = self.index(channel_id)?;
        self.end(ci, out);
        self.emit(out);
        Ok(())
    }

    /// End of the call: flushes every channel and closes open utterances.
    pub fn finish(&mut self, out: &mut Vec<Ended>) {
        for ci in 0..self.channels.len() {
            self.end(ci, out);
        }
        self.emit(out);
    }

    fn end(&mut self, ci: usize, out: &mut Vec<Ended>) {
        if self.channels[ci].ended {
            return;
        }
        let mut leg_out = Vec::new();
        if let Some(leg) = self.channels[ci].rtp.as_mut() {
            leg.flush(&mut leg_out);
        }
        // Over the length limit the rest is dropped: the error was already
        // reported when the limit was reached.
        let _ = self.play(ci, &leg_out, out);
        let ch = &mut self.channels[ci];
        ch.ended = true;
        ch.resampled.clear();
        ch.resampler.flush_into(&mut ch.resampled);
        let resampled = std::mem::take(&mut ch.resampled);
        self.analyse(ci, &resampled, true);
        self.channels[ci].resampled = resampled;
        if let Some(seg) = self.channels[ci].endpointer.finish() {
            self.segments.push((ci, seg));
        }
    }

    fn index(&self, channel_id: u32) -> Result<usize, CallError> {
        self.channels
            .iter()
            .position(|c| c.spec.id == channel_id)
            .ok_or(CallError::UnknownChannel(channel_id))
    }

    /// The channel for an input of kind `feed`: one kind per channel, none after its end.
    fn feed(&mut self, channel_id: u32, feed: Feed) -> Result<usize, CallError> {
        let ci = self.index(channel_id)?;
        let ch = &mut self.channels[ci];
        if ch.ended {
            return Err(CallError::ChannelEnded(channel_id));
        }
        match ch.feed {
            Feed::None => ch.feed = feed,
            f if f == feed => {}
            had => {
                return Err(CallError::MixedInput {
                    channel_id,
                    had: had.name(),
                    got: feed.name(),
                })
            }
        }
        Ok(ci)
    }

    /// Call time of the channel's next sample, ms.
    fn channel_ms(&self, ci: usize) -> u64 {
        let ch = &self.channels[ci];
        ch.native_in * 1000 / ch.spec.sample_rate_hz.max(1) as u64
    }

    /// Runs a leg's output through the channel.
    fn play(
        &mut self,
        ci: usize,
        leg_out: &[LegOut],
        out: &mut Vec<Ended>,
    ) -> Result<(), CallError> {
        for o in leg_out {
            match o {
                LegOut::Samples(s) => self.push_native(ci, s, out)?,
                LegOut::DtmfBegin { timestamp } => {
                    let ms = self.channel_ms(ci);
                    self.channels[ci].dtmf_begin = Some((*timestamp, ms));
                }
                LegOut::Dtmf(d) => {
                    let now = self.channel_ms(ci);
                    let ch = &mut self.channels[ci];
                    let start_ms = match ch.dtmf_begin {
                        Some((ts, ms)) if ts == d.timestamp => ms,
                        _ => now,
                    };
                    let rate = ch.spec.sample_rate_hz.max(1) as u64;
                    self.dtmf.push(proto::Dtmf {
                        channel_id: ch.spec.id,
                        role: ch.spec.role as i32,
                        digit: d.digit.to_string(),
                        start_ms: start_ms as u32,
                        duration_ms: (d.duration as u64 * 1000 / rate) as u32,
                    });
                }
            }
        }
        Ok(())
    }

    /// Silence for a channel that joined mid-call, up to where the other
    /// channels are, pushed in 1 s pieces.
    fn pad(&mut self, ci: usize, out: &mut Vec<Ended>) -> Result<(), CallError> {
        let target_ms = (0..self.channels.len())
            .filter(|&o| o != ci)
            .map(|o| self.channel_ms(o))
            .max()
            .unwrap_or(0);
        let rate = self.channels[ci].spec.sample_rate_hz as u64;
        let mut left = target_ms * rate / 1000;
        let zeros = vec![0.0f32; rate as usize];
        while left > 0 {
            let n = left.min(rate) as usize;
            self.push_native(ci, &zeros[..n], out)?;
            left -= n as u64;
        }
        Ok(())
    }

    fn push_native(
        &mut self,
        ci: usize,
        native: &[f32],
        out: &mut Vec<Ended>,
    ) -> Result<(), CallError> {
        if self.channels[ci].pad_pending {
            self.channels[ci].pad_pending = false;
            self.pad(ci, out)?;
        }
        self.channels[ci].native_in += native.len() as u64;
        let ch = &mut self.channels[ci];
        let max_samples = self.settings.max_call_ms * SAMPLE_RATE as u64 / 1000;
        if ch.samples_16k > max_samples {
            return Err(CallError::CallTooLong {
                max_ms: self.settings.max_call_ms,
            });
        }
        let mut resampled = std::mem::take(&mut ch.resampled);
        resampled.clear();
        ch.resampler.process_into(native, &mut resampled);
        self.analyse(ci, &resampled, false);
        self.channels[ci].resampled = resampled;
        self.emit(out);
        Ok(())
    }

    /// Runs 16 kHz samples through the channel's analyzer and endpointer;
    /// finished segments are queued in `self.segments`.
    /// With `last`, the analyzer is flushed: the frames whose centres lie in
    /// the last lookahead are emitted too.
    fn analyse(&mut self, ci: usize, samples: &[f32], last: bool) {
        let ch = &mut self.channels[ci];
        ch.audio.extend(samples.iter().copied());
        ch.samples_16k += samples.len() as u64;
        ch.new_frames.clear();
        ch.analyzer.push_into(samples, &mut ch.new_frames);
        if last {
            ch.analyzer.flush_into(&mut ch.new_frames);
        }
        for f in ch.new_frames.iter() {
            let (decision, seg) = ch.endpointer.push(f);
            ch.frames.push_back((*f, decision.active));
            if let Some(seg) = seg {
                self.segments.push((ci, seg));
            }
        }
        // Keep frames from the open utterance (or a short margin), and audio
        // from its pre-roll on; both are bounded by the maximum utterance.
        let now = ch.endpointer.frames_seen();
        let keep_from = ch
            .endpointer
            .open_start()
            .unwrap_or(now)
            .saturating_sub(FRAME_MARGIN);
        let keep_from = self
            .segments
            .iter()
            .filter(|(c, _)| *c == ci)
            .map(|(_, s)| s.start_frame)
            .fold(keep_from, u64::min);
        while ch.frame_base < keep_from && !ch.frames.is_empty() {
            ch.frames.pop_front();
            ch.frame_base += 1;
        }
        let pre_roll = self.settings.segment.pre_roll_ms as u64 * SAMPLE_RATE as u64 / 1000;
        let keep_audio = (keep_from * HOP as u64).saturating_sub(pre_roll);
        let drop = keep_audio
            .saturating_sub(ch.audio_base)
            .min(ch.audio.len() as u64);
        ch.audio.drain(..drop as usize);
        ch.audio_base += drop;
    }

    fn emit(&mut self, out: &mut Vec<Ended>) {
        let segments = std::mem::take(&mut self.segments);
        for (ci, seg) in segments {
            out.push(self.utterance(ci, &seg));
        }
    }

    fn utterance(&mut self, ci: usize, seg: &Segment) -> Ended {
        let id = format!("u{:04}", self.next_utterance);
        self.next_utterance += 1;
        let (start_ms, end_ms) = (seg.start_ms(), seg.end_ms());

        // Cross-channel timing against what the other channels said so far.
        let mut overlap = 0u64;
        let mut latency: Option<i64> = None;
        let own_last_end = self.channels[ci].intervals.last().map(|i| i.1);
        for (oi, other) in self.channels.iter().enumerate() {
            if oi == ci {
                continue;
            }
            let open = other.endpointer.open_start().map(|s| {
                let now = other.endpointer.frames_seen() * 10;
                (s * 10, now)
            });
            for &(os, oe) in other.intervals.iter().rev().take(64).chain(open.iter()) {
                overlap += oe.min(end_ms).saturating_sub(os.max(start_ms));
                // A response: the other party's speech began before ours and
                // came after our own previous utterance.
                if os < start_ms && own_last_end.is_none_or(|own| oe > own) {
                    let l = start_ms as i64 - oe as i64;
                    if latency.is_none_or(|cur| l < cur) {
                        latency = Some(l);
                    }
                }
            }
        }

        let ch = &mut self.channels[ci];
        let lo = (seg.start_frame.saturating_sub(ch.frame_base)) as usize;
        let hi = ((seg.end_frame.saturating_sub(ch.frame_base)) as usize).min(ch.frames.len());
        let (frames, active): (Vec<Frame>, Vec<bool>) =
            ch.frames.range(lo.min(hi)..hi).copied().unzip();
        // Audio with pre- and post-roll, clipped to what is buffered.
        let seg_cfg = &self.settings.segment;
        let rate = SAMPLE_RATE as u64;
        let a0 =
            (start_ms.saturating_sub(seg_cfg.pre_roll_ms as u64) * rate / 1000).max(ch.audio_base);
        let a1 = ((end_ms + seg_cfg.post_roll_ms as u64) * rate / 1000)
            .min(ch.audio_base + ch.audio.len() as u64)
            .max(a0);
        let audio: Vec<f32> = ch
            .audio
            .range((a0 - ch.audio_base) as usize..(a1 - ch.audio_base) as usize)
            .copied()
            .collect();

        let feats = prosody::features(&frames, &active);
        let embedding = self.encoder.as_ref().map(|e| e.embed(&audio));
        let voice = voice_features(
            &frames,
            &active,
            &feats,
            embedding.as_deref().unwrap_or(&[]),
        );
        let voice_score = self.voice_model.as_ref().map(|m| {
            let input = m.input(&voice);
            let s = m.score(&input, &ch.voice_baseline);
            ch.voice_baseline.push(&input);
            s
        });
        let rel = ch.baseline.compare_and_update(&feats);
        let mut prosody = feats.to_proto(rel);
        prosody.overlap_ms = overlap as u32;
        prosody.response_latency_ms =
            latency.map(|l| l.clamp(i32::MIN as i64, i32::MAX as i64) as i32);

        ch.intervals.push((start_ms, end_ms));
        ch.talk_ms += end_ms - start_ms;
        ch.overlap_ms += overlap;
        ch.utterances += 1;
        if let Some(l) = prosody.response_latency_ms {
            ch.latencies.push(l);
        }

        let role = ch.spec.role as i32;
        let channel_id = ch.spec.id;
        Ended {
            prosody: proto::UtteranceProsody {
                utterance_id: id.clone(),
                channel_id,
                role,
                start_ms: start_ms as u32,
                end_ms: end_ms as u32,
                prosody: Some(prosody),
                emotion: voice_score.as_ref().map(|s| s.emotion()),
            },
            utterance: proto::Utterance {
                utterance_id: id,
                channel_id,
                role,
                start_ms: start_ms as u32,
                end_ms: end_ms as u32,
                transcript: String::new(),
                words: Vec::new(),
                prosody: Some(prosody),
                emotion: None,
                cues: Vec::new(),
            },
            audio,
            audio_start_ms: (a0 * 1000 / rate) as u32,
            voice,
            voice_score,
        }
    }

    /// The call summary so far (normally sent once, after [`Self::finish`]).
    pub fn summary(&self) -> proto::CallSummary {
        let duration_ms = self
            .channels
            .iter()
            .map(|c| c.samples_16k * 1000 / SAMPLE_RATE as u64)
            .max()
            .unwrap_or(0);
        let mut all: Vec<(u64, u64)> = self
            .channels
            .iter()
            .flat_map(|c| c.intervals.iter().copied())
            .collect();
        all.sort_unstable();
        let mut union = 0u64;
        let mut cur: Option<(u64, u64)> = None;
        for (s, e) in all.iter().copied() {
            match cur {
                Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
                Some((cs, ce)) => {
                    union += ce - cs;
                    cur = Some((s, e));
                }
                None => cur = Some((s, e)),
            }
        }
        if let Some((cs, ce)) = cur {
            union += ce - cs;
        }
        let total_talk: u64 = all.iter().map(|(s, e)| e - s).sum();
        // Talk time by role (several channels may share a role).
        let mut roles: Vec<proto::RoleSummary> = Vec::new();
        for c in &self.channels {
            let role = c.spec.role as i32;
            let idx = match roles.iter().position(|r| r.role == role) {
                Some(i) => i,
                None => {
                    roles.push(proto::RoleSummary {
                        role,
                        ..Default::default()
                    });
                    roles.len() - 1
                }
            };
            let r = &mut roles[idx];
            r.interruptions += c.latencies.iter().filter(|&&l| l < 0).count() as u32;
            r.utterances += c.utterances;
            r.talk_ms += c.talk_ms as u32;
            r.overlap_ms += c.overlap_ms as u32;
        }
        for r in roles.iter_mut() {
            let lat: Vec<i32> = self
                .channels
                .iter()
                .filter(|c| c.spec.role as i32 == r.role)
                .flat_map(|c| c.latencies.iter().copied())
                .collect();
            if !lat.is_empty() {
                r.mean_response_latency_ms =
                    Some((lat.iter().map(|l| *l as i64).sum::<i64>() / lat.len() as i64) as i32);
                r.worst_response_latency_ms = lat.iter().copied().max();
            }
        }
        let all_lat: Vec<i64> = self
            .channels
            .iter()
            .flat_map(|c| c.latencies.iter().map(|&l| l as i64))
            .collect();
        proto::CallSummary {
            mean_response_latency_ms: (!all_lat.is_empty())
                .then(|| (all_lat.iter().sum::<i64>() / all_lat.len() as i64) as i32),
            worst_response_latency_ms: all_lat.iter().max().map(|&l| l as i32),
            interruptions: roles.iter().map(|r| r.interruptions).sum(),
            emotion_profile: Vec::new(),
            peaks: Vec::new(),
            duration_ms: duration_ms as u32,
            roles,
            silence_ms: duration_ms.saturating_sub(union) as u32,
            overlap_ms: total_talk.saturating_sub(union) as u32,
            utterances: self.next_utterance,
            alerts: Vec::new(),
            transcripts_dropped: 0,
            legs: self.channels.iter().map(Channel::stats).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: usize = 16_000;

    /// A voiced "talk spurt": a 150 Hz harmonic complex with 4 Hz syllabic
    /// amplitude modulation, written into `buf` from `t0` to `t1` seconds.
    fn talk(buf: &mut [f32], t0: f32, t1: f32) {
        let (a, b) = ((t0 * RATE as f32) as usize, (t1 * RATE as f32) as usize);
        for (i, s) in buf[a..b].iter_mut().enumerate() {
            let t = i as f32 / RATE as f32;
            let env = 0.55 - 0.45 * (2.0 * std::f32::consts::PI * 4.0 * t).cos();
            let x: f32 = (1..=6)
                .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                .sum();
            *s = 0.2 * env * x;
        }
    }

    fn spec(id: u32, role: Role) -> ChannelSpec {
        ChannelSpec::new(id, role, Encoding::Linear16, RATE as u32)
    }

    /// Runs two legs through a call in 20 ms steps, as a live stream would.
    fn run(caller: &[f32], agent: &[f32]) -> (Vec<Ended>, proto::CallSummary) {
        let mut core = CallCore::new(
            "t",
            &[spec(1, Role::Caller), spec(2, Role::Agent)],
            CallSettings::default(),
            DspPlan::new(),
        )
        .unwrap();
        let mut out = Vec::new();
        for (c, a) in caller.chunks(320).zip(agent.chunks(320)) {
            core.push_samples(1, c, &mut out).unwrap();
            core.push_samples(2, a, &mut out).unwrap();
        }
        core.finish(&mut out);
        let s = core.summary();
        (out, s)
    }

    #[test]
    fn turn_taking_latency_overlap_and_summary() {
        let mut caller = vec![0.0; 7 * RATE];
        let mut agent = vec![0.0; 7 * RATE];
        talk(&mut caller, 0.5, 2.5);
        talk(&mut agent, 3.1, 4.6); // answers 600 ms after the caller stops
        talk(&mut caller, 4.2, 5.5); // the caller cuts in 400 ms before the agent stops
        let (ended, s) = run(&caller, &agent);
        let by = |ch: u32| -> Vec<&Ended> {
            ended
                .iter()
                .filter(|e| e.utterance.channel_id == ch)
                .collect()
        };
        let (c, a) = (by(1), by(2));
        assert_eq!(
            (c.len(), a.len()),
            (2, 1),
            "{:?}",
            ended
                .iter()
                .map(|e| (
                    e.utterance.channel_id,
                    e.utterance.start_ms,
                    e.utterance.end_ms
                ))
                .collect::<Vec<_>>()
        );
        let near = |v: i64, want: i64| (v - want).abs() <= 80;
        for (e, (s0, e0)) in [
            (c[0], (500, 2500)),
            (a[0], (3100, 4600)),
            (c[1], (4200, 5500)),
        ] {
            assert!(
                near(e.utterance.start_ms as i64, s0) && near(e.utterance.end_ms as i64, e0),
                "{:?}",
                e.utterance
            );
        }
        let lat = |e: &Ended| e.utterance.prosody.as_ref().unwrap().response_latency_ms;
        assert_eq!(lat(c[0]), None, "nobody spoke before the caller");
        assert!(near(lat(a[0]).unwrap() as i64, 600), "{:?}", lat(a[0]));
        assert!(near(lat(c[1]).unwrap() as i64, -400), "{:?}", lat(c[1]));
        let overlap = |e: &Ended| e.utterance.prosody.as_ref().unwrap().overlap_ms as i64;
        assert!(near(overlap(c[1]), 400), "{}", overlap(c[1]));
        assert_eq!(overlap(c[0]), 0);

        // The recogniser gets the utterance with its pre- and post-roll.
        let want = (2000
            + crate::core::segment::DEFAULT_PRE_ROLL_MS
            + crate::core::segment::DEFAULT_POST_ROLL_MS) as f32
            / 1000.0
            * RATE as f32;
        assert!(
            (c[0].audio.len() as f32 - want).abs() < 0.1 * RATE as f32,
            "{}",
            c[0].audio.len()
        );
        assert_eq!(
            c[0].audio_start_ms,
            c[0].utterance.start_ms - crate::core::segment::DEFAULT_PRE_ROLL_MS
        );

        assert_eq!(s.duration_ms, 7000);
        assert_eq!(s.utterances, 3);
        assert!(near(s.overlap_ms as i64, 400), "{s:?}");
        // Speech covers 0.5-2.5, 3.1-5.5 s: 4.4 s of 7 s.
        assert!(near(s.silence_ms as i64, 2600), "{s:?}");
        let agent_sum = s
            .roles
            .iter()
            .find(|r| r.role == Role::Agent as i32)
            .unwrap();
        assert!(near(
            agent_sum.mean_response_latency_ms.unwrap() as i64,
            600
        ));
        let caller_sum = s
            .roles
            .iter()
            .find(|r| r.role == Role::Caller as i32)
            .unwrap();
        assert_eq!(caller_sum.utterances, 2);
        assert!(near(
            caller_sum.worst_response_latency_ms.unwrap() as i64,
            -400
        ));
    }

    #[test]
    fn g711_bytes_decode_to_the_same_utterances() {
        let mut pcm = vec![0.0; 3 * RATE];
        talk(&mut pcm, 0.8, 2.0);
        // Telephone version: 8 kHz μ-law, every other sample (the signal is below 1 kHz).
        let bytes: Vec<u8> = pcm
            .iter()
            .step_by(2)
            .map(|s| crate::core::codec::g711::ulaw_encode((s * 32767.0) as i16))
            .collect();
        let mulaw = ChannelSpec::new(5, Role::Caller, Encoding::Mulaw, 8000);
        let mut core =
            CallCore::new("g711", &[mulaw], CallSettings::default(), DspPlan::new()).unwrap();
        let mut out = Vec::new();
        for chunk in bytes.chunks(160) {
            core.push_audio(5, chunk, &mut out).unwrap();
        }
        core.finish(&mut out);
        assert_eq!(out.len(), 1);
        let u = &out[0].utterance;
        assert!(
            (u.start_ms as i64 - 800).abs() <= 80 && (u.end_ms as i64 - 2000).abs() <= 80,
            "{u:?}"
        );
        let f0 = u.prosody.as_ref().unwrap().f0_mean_hz;
        assert!((f0 - 150.0).abs() < 3.0, "{f0}");
    }

    #[test]
    fn config_errors_name_the_field() {
        let cfg = |enc: proto::Encoding, rate| proto::ChannelConfig {
            channel_id: 3,
            role: Role::Agent as i32,
            encoding: enc as i32,
            sample_rate_hz: rate,
            ..Default::default()
        };
        assert!(ChannelSpec::from_proto(&cfg(proto::Encoding::Linear16, 44_100)).is_ok());
        assert_eq!(
            ChannelSpec::from_proto(&cfg(proto::Encoding::Mulaw, 0))
                .unwrap()
                .sample_rate_hz,
            8000
        );
        let e = ChannelSpec::from_proto(&cfg(proto::Encoding::Linear16, 4000)).unwrap_err();
        assert!(
            e.to_string().contains("config.channels[3].sample_rate_hz"),
            "{e}"
        );
        // RTP settings are named by their field too
        let bad_pt = proto::ChannelConfig {
            rtp_payload_type: 200,
            ..cfg(proto::Encoding::Mulaw, 8000)
        };
        let e = ChannelSpec::from_proto(&bad_pt).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config.channels[3].rtp_payload_type: payload type 200"),
            "{e}"
        );
        let e = ChannelSpec::check(&bad_pt).unwrap_err();
        assert_eq!(e.field().in_open_rtp_leg(), "payload_type");
        let e = ChannelSpec::from_proto(&cfg(proto::Encoding::Alaw, 16_000)).unwrap_err();
        assert!(e.to_string().contains("ALAW"), "{e}");
        let e = ChannelSpec::from_proto(&cfg(proto::Encoding::Unspecified, 8000)).unwrap_err();
        assert!(e.to_string().contains("encoding"), "{e}");
        assert!(check_language("en-GB").is_ok() && check_language("").is_ok());
        assert!(check_language("de").is_err());
        let s = spec(1, Role::Caller);
        assert_eq!(
            CallCore::new("x", &[s, s], CallSettings::default(), DspPlan::new()).err(),
            Some(CallError::DuplicateChannel(1))
        );
        let mut core = CallCore::new("x", &[s], CallSettings::default(), DspPlan::new()).unwrap();
        assert_eq!(
            core.push_audio(2, &[0, 0], &mut Vec::new()),
            Err(CallError::UnknownChannel(2))
        );
    }

    #[test]
    fn a_leg_that_joins_later_starts_at_the_call_time_and_ends_on_its_own() {
        let mut caller = vec![0.0; 4 * RATE];
        talk(&mut caller, 0.5, 2.0);
        let mut agent = vec![0.0; 2 * RATE];
        talk(&mut agent, 0.6, 1.6); // at 2.6..3.6 s of the call
        let mut core = CallCore::new(
            "join",
            &[spec(1, Role::Caller)],
            CallSettings::default(),
            DspPlan::new(),
        )
        .unwrap();
        core.set_joining(Transport::RtpUdp);
        let mut out = Vec::new();
        for (i, c) in caller.chunks(320).enumerate() {
            if i == 100 {
                core.add_channel(&spec(2, Role::Agent), Transport::AudioSocket)
                    .unwrap();
            }
            core.push_samples(1, c, &mut out).unwrap();
            if i >= 100 {
                if let Some(a) = agent.chunks(320).nth(i - 100) {
                    core.push_samples(2, a, &mut out).unwrap();
                }
            }
        }
        // The agent hangs up: its channel ends, the caller's goes on.
        core.end_channel(2, &mut out).unwrap();
        assert_eq!(
            core.push_samples(2, &[0.0; 10], &mut out),
            Err(CallError::ChannelEnded(2))
        );
        assert_eq!(
            core.add_channel(&spec(1, Role::Agent), Transport::Grpc),
            Err(CallError::DuplicateChannel(1))
        );
        core.finish(&mut out);
        let agent_u = out
            .iter()
            .find(|e| e.utterance.channel_id == 2)
            .expect("the agent's utterance");
        let (s, e) = (agent_u.utterance.start_ms, agent_u.utterance.end_ms);
        assert!(s.abs_diff(2600) <= 80 && e.abs_diff(3600) <= 80, "{s}..{e}");
        let lat = agent_u
            .prosody
            .prosody
            .unwrap()
            .response_latency_ms
            .unwrap();
        assert!((lat - 600).abs() <= 80, "{lat}");
        let summary = core.summary();
        let legs: Vec<(&str, u32)> = summary
            .legs
            .iter()
            .map(|l| (l.transport.as_str(), l.channel_id))
            .collect();
        assert_eq!(legs, vec![("rtp-udp", 1), ("audiosocket", 2)]);
        assert_eq!(summary.legs[0].packets_received, 200);
        let mut mixed = CallCore::new(
            "mixed",
            &[spec(1, Role::Caller)],
            CallSettings::default(),
            DspPlan::new(),
        )
        .unwrap();
        mixed.push_samples(1, &[0.0; 10], &mut out).unwrap();
        let e = mixed
            .push_rtp(1, 0, vec![0x80, 0, 0, 0], &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("cannot also take RTP"), "{e}");
    }

    #[test]
    fn calls_over_the_length_limit_are_refused_not_buffered() {
        let settings = CallSettings {
            max_call_ms: 1000,
            ..CallSettings::default()
        };
        let mut core =
            CallCore::new("x", &[spec(1, Role::Caller)], settings, DspPlan::new()).unwrap();
        let chunk = vec![0.0; RATE / 10];
        let mut out = Vec::new();
        let mut err = None;
        for _ in 0..30 {
            if let Err(e) = core.push_samples(1, &chunk, &mut out) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(CallError::CallTooLong { max_ms: 1000 }));
    }
}
