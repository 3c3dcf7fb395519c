//! Twilio Media Streams (`/twilio`), and the platforms that copy its frames as they are
//! (SignalWire, ...; not Telnyx, whose `start` differs): JSON text frames `connected`, `start`, `media`,
//! `dtmf`, `mark`, `stop`. The inbound track is the caller, the outbound track the agent;
//! each is a leg of the call named by `start.callSid` (or by a `customParameters` value,
//! [`super::WsConfig::twilio_call_id_param`]).
//!
//! Media frames carry base64 G.711 μ-law at 8 kHz with a per-track `chunk` counter and a
//! `timestamp` (ms since the stream began); not every platform keeps them in order. Each
//! frame becomes an RTP packet (sequence number = chunk, timestamp = ms × 8 snapped to
//! the frame's own length) and goes through the leg's jitter buffer, so frames are
//! reordered, duplicates dropped and missing chunks concealed over their exact
//! length, as for any RTP leg. The protocol is receive-only here: events are
//! watched with `WatchCall`.
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{
    any_closed, count_malformed, end_legs, hold_to_pace, join_tracks, next_message,
    text_before_start, MediaWs, Next, Track, WsConfig, WsError,
};
use crate::call::Transport;
use crate::core::codec::Encoding;
use crate::core::rtp;
use crate::proto::Role;
use crate::server::legs::{Calls, Leg};
use crate::server::security::{shown, MediaCredential};
use crate::server::session::{now_ms, Input, TICK};

/// Media Streams' one audio format: 8 kHz.
const RATE_HZ: u32 = 8000;
/// The RTP synchronisation source given to each track's packets (any fixed value).
const SSRC: [u32; 2] = [0x7711_0001, 0x7711_0002];
/// Jitter buffer depth of a Media Streams track, ms: more than an RTP leg's 80, since
/// frames come over TCP, where a lost segment holds everything behind it for at least
/// the 200 ms of Linux's shortest retransmission timeout; a frame later than this is
/// dropped and concealed like a lost one.
const JITTER_MS: u32 = 250;
/// Largest decoded payload of one media frame, bytes (1 s of μ-law; Twilio sends 160).
const MAX_PAYLOAD: usize = 8000;

/// A message of the protocol, as far as callmood reads it.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Msg {
    Connected {},
    Start {
        start: Start,
    },
    Media {
        media: Media,
    },
    Dtmf {
        dtmf: Dtmf,
    },
    Mark {},
    Stop {},
    /// Any other `event`: dropped and counted.
    #[serde(other)]
    Unknown,
}

/// `start`: who the stream belongs to and what it carries.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    #[serde(default)]
    pub stream_sid: String,
    pub call_sid: String,
    /// `inbound`, `outbound`; missing: the inbound track alone.
    #[serde(default)]
    pub tracks: Vec<String>,
    #[serde(default)]
    pub custom_parameters: HashMap<String, String>,
    pub media_format: Option<MediaFormat>,
}

/// `start.mediaFormat`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    #[serde(default = "one")]
    pub channels: u32,
}

fn one() -> u32 {
    1
}

/// `media`: one frame of one track.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Media {
    #[serde(default = "inbound")]
    pub track: String,
    #[serde(deserialize_with = "number")]
    pub chunk: u64,
    #[serde(deserialize_with = "number")]
    pub timestamp: u64,
    pub payload: String,
}

fn inbound() -> String {
    "inbound".into()
}

/// `dtmf`: a key the caller pressed.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Dtmf {
    #[serde(default = "inbound")]
    pub track: String,
    pub digit: String,
}

/// The protocol writes numbers as strings (`"chunk": "2"`); some platforms do not.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        N(u64),
    }
    match N::deserialize(d)? {
        N::N(n) => Ok(n),
        N::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Msg, serde_json::Error> {
    serde_json::from_str(text)
}

/// Which track a `track` value names: 0 inbound (caller), 1 outbound (agent).
pub fn track_index(track: &str) -> Option<usize> {
    match track.strip_suffix("_track").unwrap_or(track) {
        "inbound" => Some(0),
        "outbound" => Some(1),
        _ => None,
    }
}

impl Start {
    /// The call id: the named custom parameter when given and present, else `callSid`.
    pub fn call_id(&self, param: Option<&str>) -> &str {
        param
            .and_then(|p| self.custom_parameters.get(p))
            .filter(|v| !v.is_empty())
            .unwrap_or(&self.call_sid)
    }

    /// The tracks the stream carries (indices of [`track_index`]), or why it is unusable.
    pub fn check(&self) -> Result<Vec<usize>, String> {
        if let Some(f) = &self.media_format {
            if !f.encoding.eq_ignore_ascii_case("audio/x-mulaw")
                || f.sample_rate != RATE_HZ
                || f.channels != 1
            {
                return Err(format!(
                    "media format {:?} {} Hz x{} (only audio/x-mulaw 8000 Hz mono)",
                    shown(&f.encoding),
                    f.sample_rate,
                    f.channels
                ));
            }
        }
        if self.tracks.is_empty() {
            return Ok(vec![0]);
        }
        let mut out = Vec::new();
        for t in &self.tracks {
            let i = track_index(t).ok_or_else(|| format!("unknown track {:?}", shown(t)))?;
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// The RTP packet of a media frame: sequence number from the chunk counter, timestamp
/// from the ms timestamp at 8 kHz, snapped to a multiple of the frame's length so that a
/// millisecond of jitter in the platform's timestamps does not open a gap or an overlap.
pub fn media_packet(
    first: bool,
    ssrc: u32,
    chunk: u64,
    timestamp_ms: u64,
    payload: &[u8],
) -> Vec<u8> {
    let samples = payload.len().max(1) as u64;
    // RTP timestamps wrap at 2^32, so a timestamp from the wire may wrap too.
    let ts = (timestamp_ms.wrapping_mul(RATE_HZ as u64 / 1000)).wrapping_add(samples / 2) / samples
        * samples;
    rtp::build(
        first,
        rtp::leg::PT_PCMU,
        chunk as u16,
        ts as u32,
        ssrc,
        payload,
    )
}

/// What one media frame is, once checked.
#[derive(Debug, PartialEq)]
pub enum MediaFrame {
    /// An RTP packet for the track's leg.
    Packet { track: usize, packet: Vec<u8> },
    /// Dropped (unknown track, bad base64, empty or oversized payload).
    Bad,
}

/// Checks and converts one media frame; `first` says whether the track has had one.
pub fn media_frame(m: &Media, first: bool) -> MediaFrame {
    let Some(track) = track_index(&m.track) else {
        return MediaFrame::Bad;
    };
    if m.payload.len() > MAX_PAYLOAD.div_ceil(3) * 4 {
        return MediaFrame::Bad;
    }
    match base64::engine::general_purpose::STANDARD.decode(&m.payload) {
        Ok(p) if !p.is_empty() && p.len() <= MAX_PAYLOAD => MediaFrame::Packet {
            track,
            packet: media_packet(first, SSRC[track], m.chunk, m.timestamp, &p),
        },
        _ => MediaFrame::Bad,
    }
}

/// A key of the dtmf message, if it is one.
pub fn dtmf_digit(d: &Dtmf) -> Option<char> {
    let mut cs = d.digit.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) if matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D') => {
            Some(c.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// The stream's legs once `start` has named the call.
struct Started {
    legs: Vec<Leg>,
    /// Leg index of track 0 (inbound) and 1 (outbound), where carried.
    by_track: [Option<usize>; 2],
}

impl Started {
    fn leg(&self, track: usize) -> Option<&Leg> {
        self.by_track[track].map(|i| &self.legs[i])
    }

    /// The leg that takes counts that belong to no track.
    fn first(&self) -> &Leg {
        &self.legs[0]
    }
}

/// Serves one Media Streams socket.
/// `path_id`: the call id the URL's path named (`/twilio/ID`), over the start message's.
pub(super) async fn run(
    mut ws: MediaWs,
    calls: &Arc<Calls>,
    cfg: &WsConfig,
    path_id: Option<String>,
    credential: Option<&MediaCredential>,
) -> Result<(), WsError> {
    let join = calls.config().join_timeout;
    let idle = calls.config().idle_timeout;
    // Until `start`: frames that cannot be used yet, counted on the first leg later.
    let mut dropped_before = 0u64;
    let deadline = tokio::time::Instant::now() + join;
    let mut st = loop {
        let text = text_before_start(&mut ws, deadline, join, &mut dropped_before).await?;
        match parse(&text) {
            Ok(Msg::Connected {}) => {}
            Ok(Msg::Start { start }) => {
                let tracks = start.check().map_err(WsError::BadStart)?;
                let specs: Vec<Track> = tracks
                    .iter()
                    .map(|&t| Track {
                        role: if t == 0 { Role::Caller } else { Role::Agent },
                        encoding: Encoding::Mulaw,
                        sample_rate_hz: RATE_HZ,
                        jitter_ms: JITTER_MS,
                    })
                    .collect();
                let call_id = path_id
                    .as_deref()
                    .unwrap_or_else(|| start.call_id(cfg.twilio_call_id_param.as_deref()));
                let legs =
                    join_tracks(calls, call_id, &specs, Transport::TwilioWs, credential).await?;
                let mut by_track = [None; 2];
                for (i, &t) in tracks.iter().enumerate() {
                    by_track[t] = Some(i);
                }
                break Started { legs, by_track };
            }
            _ => dropped_before += 1,
        }
    };
    if !count_malformed(st.first(), dropped_before).await {
        end_legs(st.legs).await;
        return Err(WsError::CallEnded);
    }
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pace = calls.pace(&st.legs);
    // Whether each track has had a frame (its first is a talkspurt start).
    let mut seen = [false; 2];
    let mut last = tokio::time::Instant::now();
    let result = loop {
        let next = tokio::select! {
            n = next_message(&mut ws, last + idle, idle, true) => {
                last = tokio::time::Instant::now();
                n
            }
            _ = ticks.tick() => {
                // Held frames play out while none comes.
                if st.first().input.send(Input::Tick { now_ms: now_ms() }).await.is_err() {
                    break Err(WsError::CallEnded);
                }
                continue;
            }
            _ = any_closed(&st.legs) => break Ok(()),
        };
        let text = match next {
            Ok(Next::Closed) => break Ok(()),
            Ok(Next::Message(WsMessage::Text(t))) => t,
            Ok(Next::Message(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            Ok(Next::Message(_)) => {
                if !count_malformed(st.first(), 1).await {
                    break Err(WsError::CallEnded);
                }
                continue;
            }
            Err(e) => {
                // A message over the limit or a broken frame: the socket cannot go on.
                if matches!(e, WsError::Socket(_)) {
                    count_malformed(st.first(), 1).await;
                }
                break Err(e);
            }
        };
        let input = match parse(&text) {
            Ok(Msg::Media { media }) => match media_frame(&media, !seen[track_of(&media)]) {
                MediaFrame::Packet { track, packet } => match st.leg(track) {
                    Some(leg) => {
                        seen[track] = true;
                        Some((
                            leg,
                            Input::Rtp {
                                channel_id: leg.channel_id,
                                now_ms: now_ms(),
                                packet,
                            },
                        ))
                    }
                    None => None, // a track the start did not announce
                },
                MediaFrame::Bad => None,
            },
            Ok(Msg::Dtmf { dtmf }) => {
                match (
                    dtmf_digit(&dtmf),
                    track_index(&dtmf.track).and_then(|t| st.leg(t)),
                ) {
                    (Some(digit), Some(leg)) => Some((
                        leg,
                        Input::Dtmf {
                            channel_id: leg.channel_id,
                            digit,
                        },
                    )),
                    _ => None,
                }
            }
            Ok(Msg::Connected {} | Msg::Mark {}) => continue,
            Ok(Msg::Stop {}) => break Ok(()),
            // A second start, an unknown event, or malformed JSON.
            Ok(Msg::Start { .. } | Msg::Unknown) | Err(_) => None,
        };
        let (leg, mut input) = match input {
            Some(x) => x,
            None => (
                st.first(),
                Input::Malformed {
                    channel_id: st.first().channel_id,
                },
            ),
        };
        if let Input::Rtp {
            now_ms: arrival,
            packet,
            ..
        } = &mut input
        {
            let audio = packet.len().saturating_sub(rtp::FIXED_HEADER_LEN);
            hold_to_pace(&mut pace, leg, audio).await;
            // The jitter buffer takes it as arriving now, after any wait.
            *arrival = now_ms();
        }
        if leg.input.send(input).await.is_err() {
            break Err(WsError::CallEnded);
        }
    };
    end_legs(std::mem::take(&mut st.legs)).await;
    let _ = ws.close(None).await;
    result
}

/// The track index of a media frame for the first-packet flag (0 when unknown: the
/// frame is dropped anyway).
fn track_of(m: &Media) -> usize {
    track_index(&m.track).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{"crm":"42"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#;

    #[test]
    fn start_names_the_call_and_its_tracks() {
        let Msg::Start { start } = parse(START).unwrap() else {
            panic!("start")
        };
        assert_eq!(start.call_id(None), "CA1");
        assert_eq!(start.call_id(Some("crm")), "42");
        assert_eq!(start.call_id(Some("absent")), "CA1");
        assert_eq!(start.check(), Ok(vec![0, 1]));
        let one = parse(r#"{"event":"start","start":{"callSid":"CA2"}}"#).unwrap();
        let Msg::Start { start } = one else { panic!() };
        assert_eq!(start.check(), Ok(vec![0]));
        let wrong = START.replace("audio/x-mulaw", "audio/l16");
        let Msg::Start { start } = parse(&wrong).unwrap() else {
            panic!()
        };
        assert!(start.check().is_err());
    }

    #[test]
    fn media_numbers_as_strings_or_numbers() {
        let a = parse(r#"{"event":"media","sequenceNumber":"3","media":{"track":"outbound","chunk":"2","timestamp":"25","payload":"//8A"},"streamSid":"MZ1"}"#).unwrap();
        let b = parse(r#"{"event":"media","media":{"track":"outbound","chunk":2,"timestamp":25,"payload":"//8A"}}"#).unwrap();
        assert_eq!(a, b);
        let Msg::Media { media } = a else { panic!() };
        assert_eq!((media.chunk, media.timestamp), (2, 25));
        let MediaFrame::Packet { track, packet } = media_frame(&media, true) else {
            panic!("a good frame")
        };
        assert_eq!(track, 1);
        let p = rtp::parse(&packet).unwrap();
        assert_eq!(p.sequence, 2);
        assert!(p.marker);
        assert_eq!(p.payload, &[0xff, 0xff, 0x00]);
        // 25 ms = 200 samples, snapped to the 3-sample frame grid: 201.
        assert_eq!(p.timestamp, 201);
    }

    #[test]
    fn timestamps_snap_to_the_frame_grid() {
        let payload = [0u8; 160];
        for (ms, ts) in [
            (0, 0),
            (20, 160),
            (21, 160),
            (39, 320),
            (41, 320),
            (60, 480),
        ] {
            let p = media_packet(false, 1, 1, ms, &payload);
            assert_eq!(rtp::parse(&p).unwrap().timestamp, ts, "{ms} ms");
        }
        // Numbers from the wire cannot overflow it.
        let p = media_packet(false, 1, u64::MAX, u64::MAX, &payload);
        assert!(rtp::parse(&p).is_ok());
    }

    #[test]
    fn bad_input_is_recognised() {
        assert!(parse("{not json").is_err());
        assert!(
            parse(r#"{"event":"media","media":{"chunk":"x","timestamp":"1","payload":""}}"#)
                .is_err()
        );
        assert_eq!(parse(r#"{"event":"clear"}"#).unwrap(), Msg::Unknown);
        let bad64 = Media {
            track: "inbound".into(),
            chunk: 1,
            timestamp: 0,
            payload: "!!!!".into(),
        };
        assert_eq!(media_frame(&bad64, true), MediaFrame::Bad);
        let empty = Media {
            payload: String::new(),
            ..bad64
        };
        assert_eq!(media_frame(&empty, true), MediaFrame::Bad);
        let big = Media {
            payload: "A".repeat(20_000),
            ..empty
        };
        assert_eq!(media_frame(&big, true), MediaFrame::Bad);
        let odd = Media {
            track: "both".into(),
            payload: "//8A".into(),
            ..big
        };
        assert_eq!(media_frame(&odd, true), MediaFrame::Bad);
    }

    #[test]
    fn dtmf_digits() {
        let d = |s: &str| Dtmf {
            track: "inbound_track".into(),
            digit: s.into(),
        };
        assert_eq!(dtmf_digit(&d("7")), Some('7'));
        assert_eq!(dtmf_digit(&d("#")), Some('#'));
        assert_eq!(dtmf_digit(&d("a")), Some('A'));
        assert_eq!(dtmf_digit(&d("77")), None);
        assert_eq!(dtmf_digit(&d("x")), None);
        assert_eq!(track_index("inbound_track"), Some(0));
    }
}
