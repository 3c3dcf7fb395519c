//! Audio fork (`/fork`): FreeSWITCH `mod_audio_fork` (`uuid_audio_fork ... start URL
//! stereo 8k METADATA`) and jambonz `listen`. The first text frame is JSON metadata (the
//! call id, sample rate and channels); every later binary frame is 16-bit little-endian
//! PCM, mono, or stereo interleaved with the caller on the left and the agent on the
//! right. With `?events=1` on the URL, each `Alert` and `Utterance` of the call goes back
//! on the socket as a JSON text frame (a `CallEvent` as `analyze` writes it).
use std::sync::Arc;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{
    any_closed, count_malformed, end_legs, feed, join_tracks, next_message, text_before_start,
    MediaWs, Next, Track, WsError,
};
use crate::call::{CallError, Transport};
use crate::core::codec::Encoding;
use crate::core::rtp::leg::RtpSettings;
use crate::proto::{call_event::Event, CallEvent, Role};
use crate::server::legs::Calls;
use crate::server::security::{constant_time_find, shown, MediaCredential};

/// The user name of the request's `Authorization: Basic` credentials if they are one of
/// `accepted` (`user:password` each, compared in time independent of where they differ),
/// else None.
/// `mod_audio_fork` sends them from the channel variables `MOD_AUDIO_BASIC_AUTH_USERNAME`
/// and `MOD_AUDIO_BASIC_AUTH_PASSWORD`, jambonz `listen` from its `wsAuth`.
pub fn basic_auth_user(
    req: &tokio_tungstenite::tungstenite::handshake::server::Request,
    accepted: &[String],
) -> Option<String> {
    use base64::Engine;
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())?;
    let pairs = accepted.iter().map(|a| (a.as_bytes(), a));
    constant_time_find(pairs, &given).map(|a| user_of(a).to_string())
}

/// The user of an accepted `user:password` pair (split at its first `:`).
pub fn user_of(pair: &str) -> &str {
    pair.split_once(':').map_or(pair, |(user, _)| user)
}

/// Sample rate when the metadata names none, Hz (`mod_audio_fork`'s `8k`).
const DEFAULT_RATE_HZ: u32 = 8000;
/// How long the events still due are sent after the audio has ended (the last
/// utterances' transcripts and the alerts they raise).
const EVENTS_AFTER_END: std::time::Duration = std::time::Duration::from_secs(30);

/// The first frame of a fork, as read.
#[derive(Debug, PartialEq)]
pub struct Metadata {
    pub call_id: String,
    pub sample_rate_hz: u32,
    /// 1 or 2.
    pub channels: usize,
}

/// Reads the metadata frame. Names taken: the call id from `callId`, `call_id`,
/// `callSid` (jambonz) or `uuid`; the rate from `sampleRate` or `sample_rate` (8000 if
/// none); the channels from `channels`, or `mixType`/`mix_type` (`stereo` is 2, `mono`
/// and `mixed` 1).
pub fn parse_metadata(text: &str) -> Result<Metadata, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("metadata: {e}"))?;
    let field = |names: &[&str]| names.iter().find_map(|n| v.get(*n));
    let number = |x: &Value| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
    };
    let call_id = field(&["callId", "call_id", "callSid", "uuid"])
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("metadata names no call (callId, callSid or uuid)")?
        .to_string();
    let sample_rate_hz = match field(&["sampleRate", "sample_rate"]) {
        None => DEFAULT_RATE_HZ,
        Some(x) => number(x)
            .filter(|r| (8000..=48_000).contains(r))
            .ok_or_else(|| format!("sample rate {} (8000-48000 Hz)", shown(&x.to_string())))?
            as u32,
    };
    let channels = match (field(&["channels"]), field(&["mixType", "mix_type"])) {
        (Some(x), _) => number(x)
            .filter(|c| matches!(c, 1 | 2))
            .ok_or_else(|| format!("channels {} (1 or 2)", shown(&x.to_string())))?
            as usize,
        (None, Some(Value::String(m))) if m == "stereo" => 2,
        (None, Some(Value::String(m))) if m == "mono" || m == "mixed" => 1,
        (None, Some(m)) => {
            return Err(format!(
                "mix type {} (mono, mixed or stereo)",
                shown(&m.to_string())
            ))
        }
        (None, None) => 1,
    };
    Ok(Metadata {
        call_id,
        sample_rate_hz,
        channels,
    })
}

/// Serves one fork socket; `events`: send the call's Alerts and Utterances back.
/// `path_id`: the call id the URL's path named (`/fork/ID`), over the metadata's.
pub(super) async fn run(
    ws: MediaWs,
    calls: &Arc<Calls>,
    events: bool,
    path_id: Option<String>,
    credential: Option<&MediaCredential>,
) -> Result<(), WsError> {
    let (sink, mut ws) = ws.split();
    let join = calls.config().join_timeout;
    let idle = calls.config().idle_timeout;
    let mut dropped_before = 0u64;
    let deadline = tokio::time::Instant::now() + join;
    let text = text_before_start(&mut ws, deadline, join, &mut dropped_before).await?;
    let meta = parse_metadata(&text).map_err(WsError::BadStart)?;
    let track = |role| Track {
        role,
        encoding: Encoding::Linear16,
        sample_rate_hz: meta.sample_rate_hz,
        jitter_ms: RtpSettings::for_encoding(Encoding::Linear16).jitter_ms, // unused: no RTP
    };
    let tracks: Vec<Track> = match meta.channels {
        2 => vec![track(Role::Caller), track(Role::Agent)],
        _ => vec![track(Role::Caller)],
    };
    let call_id = path_id.unwrap_or(meta.call_id);
    let legs = join_tracks(calls, &call_id, &tracks, Transport::AudioFork, credential).await?;
    // On a server with tokens, a socket that proved no credential (an open `/fork`) gets
    // the events of a call its own first track started, never of one it joined: that call
    // (another such socket's) holds other clients' words. It gets no events then, and no
    // error. A call that legs with credentials started it cannot join at all, nor can
    // such legs join its call (`Calls::join_as`).
    let started = legs[0].channel_id == 0;
    let events = events && (credential.is_some() || !calls.has_tokens() || started);
    let writer = if events {
        let rx = legs[0].call.clone().watch();
        Some(tokio::spawn(send_events(rx, sink)))
    } else {
        drop(sink);
        None
    };
    let mut pace = calls.pace(&legs);
    let result = async {
        if !count_malformed(&legs[0], dropped_before).await {
            return Err(WsError::CallEnded);
        }
        let mut last = tokio::time::Instant::now();
        loop {
            let next = tokio::select! {
                n = next_message(&mut ws, last + idle, idle, true) => {
                    last = tokio::time::Instant::now();
                    n
                }
                _ = any_closed(&legs) => return Ok(()),
            };
            let data = match next {
                Ok(Next::Closed) => return Ok(()),
                Ok(Next::Message(WsMessage::Binary(b))) => b,
                Ok(Next::Message(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                // Text after the metadata.
                Ok(Next::Message(_)) => {
                    if !count_malformed(&legs[0], 1).await {
                        return Err(WsError::CallEnded);
                    }
                    continue;
                }
                Err(e) => {
                    if matches!(e, WsError::Socket(_)) {
                        count_malformed(&legs[0], 1).await;
                    }
                    return Err(e);
                }
            };
            if !feed(&legs, &data, 2, &mut pace).await? && !count_malformed(&legs[0], 1).await {
                return Err(WsError::CallEnded);
            }
        }
    }
    .await;
    end_legs(legs).await;
    if let Some(mut w) = writer {
        // The call's last events come after its audio; the peer may still read them, for
        // a while: a peer that stops reading must not hold the socket and the call's
        // events any longer.
        if tokio::time::timeout(EVENTS_AFTER_END, &mut w)
            .await
            .is_err()
        {
            w.abort();
        }
    }
    result
}

/// Sends the call's Alerts and Utterances as JSON text frames until the call ends or
/// the peer goes.
async fn send_events(
    mut rx: mpsc::Receiver<Result<CallEvent, CallError>>,
    mut sink: SplitSink<MediaWs, WsMessage>,
) {
    while let Some(Ok(ev)) = rx.recv().await {
        if !matches!(ev.event, Some(Event::Alert(_) | Event::Utterance(_))) {
            continue;
        }
        let Ok(serde_json::Value::Object(mut json)) = serde_json::to_value(&ev) else {
            continue;
        };
        // mod_audio_fork takes only text frames with a `type` (any other it logs in full
        // at ERROR level, transcript and all); `json` is the type it hands on whole, as
        // the event `mod_audio_fork::json`.
        json.insert("type".into(), "json".into());
        let text = serde_json::Value::Object(json).to_string();
        if sink.send(WsMessage::Text(text.into())).await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_takes_only_an_accepted_pair() {
        let accepted = vec!["fs1:pa55:word".to_string(), "jambonz:other".to_string()];
        let req = |auth: Option<&str>| {
            let mut b =
                tokio_tungstenite::tungstenite::handshake::server::Request::builder().uri("/fork");
            if let Some(a) = auth {
                b = b.header("Authorization", a);
            }
            b.body(()).unwrap()
        };
        // base64("fs1:pa55:word") = ZnMxOnBhNTU6d29yZA==, base64("jambonz:other") =
        // amFtYm9uejpvdGhlcg==, base64("fs1:wrong") = ZnMxOndyb25n.
        // The user of the pair that matched is the credential a token file maps.
        assert_eq!(
            basic_auth_user(&req(Some("Basic ZnMxOnBhNTU6d29yZA==")), &accepted).as_deref(),
            Some("fs1")
        );
        assert_eq!(
            basic_auth_user(&req(Some("basic  amFtYm9uejpvdGhlcg== ")), &accepted).as_deref(),
            Some("jambonz")
        );
        for bad in [
            None,
            Some("Basic ZnMxOndyb25n"),
            Some("Bearer ZnMxOnBhNTU6d29yZA=="),
            Some("Basic not-base64!"),
            Some("Basic"),
        ] {
            assert_eq!(basic_auth_user(&req(bad), &accepted), None, "{bad:?}");
        }
        assert_eq!(
            basic_auth_user(&req(Some("Basic ZnMxOnBhNTU6d29yZA==")), &[]),
            None
        );
    }

    #[test]
    fn metadata_of_freeswitch_and_jambonz() {
        assert_eq!(
            parse_metadata(r#"{"callId":"c1","sampleRate":16000,"channels":2}"#),
            Ok(Metadata {
                call_id: "c1".into(),
                sample_rate_hz: 16000,
                channels: 2
            })
        );
        // jambonz listen
        assert_eq!(
            parse_metadata(
                r#"{"callSid":"j1","sampleRate":"8000","mixType":"stereo","from":"+1"}"#
            ),
            Ok(Metadata {
                call_id: "j1".into(),
                sample_rate_hz: 8000,
                channels: 2
            })
        );
        assert_eq!(
            parse_metadata(r#"{"uuid":"u"}"#).map(|m| (m.sample_rate_hz, m.channels)),
            Ok((8000, 1))
        );
        for bad in [
            "not json",
            r#"{"sampleRate":8000}"#,
            r#"{"callId":""}"#,
            r#"{"callId":"c","channels":3}"#,
            r#"{"callId":"c","sampleRate":100}"#,
            r#"{"callId":"c","mixType":"quad"}"#,
        ] {
            assert!(parse_metadata(bad).is_err(), "{bad}");
        }
    }
}
