//! Fuzzes the WebSocket listener's parsers: the request target (`Route::parse`) and the
//! JSON text frames of Twilio Media Streams (`twilio::parse`), the fork's metadata
//! (`fork::parse_metadata`) and AudioHook (`audiohook::parse`), with what the service
//! does next to what parses (`media_frame`, `Start::check`, `dtmf_digit`,
//! `choose_media`, `duration_ms`, `check_call_id`, `deinterleave`).
//!
//! The whole input, read as UTF-8 with bad bytes replaced (tungstenite only passes UTF-8
//! text frames), is given to every parser. It checks that nothing panics and that what
//! parses is bounded, as the unit test
//! `server::ws::tests::mutated_messages_never_panic_and_what_parses_is_bounded` does.
#![no_main]

use base64::Engine as _;
use callmood::core::rtp;
use callmood::server::security::{check_call_id, MAX_CALL_ID_BYTES};
use callmood::server::ws::{audiohook, deinterleave, fork, twilio, Route};
use libfuzzer_sys::fuzz_target;

/// A refused call id's error shows at most 32 characters of it, `{:?}`-escaped (at most
/// 10 characters each, `\u{10ffff}`); the rest of the text is fixed but for a byte count,
/// so the message stays short whatever the id.
const MAX_ERROR_CHARS: usize = 512;

fn call_id(id: &str) {
    match check_call_id(id) {
        Ok(()) => {
            assert!(id.len() <= MAX_CALL_ID_BYTES);
            assert!(id.is_ascii());
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.chars().count() <= MAX_ERROR_CHARS,
                "a refused id's error is {} characters",
                text.chars().count()
            );
        }
    }
}

fn duration(s: &str) {
    if let Some(ms) = audiohook::duration_ms(s) {
        assert!(s.starts_with("PT") && s.ends_with('S'));
        // `secs * 1000` rounded, saturating: any finite non-negative value is fine, but
        // "PT0S" must be 0.
        if s == "PT0S" {
            assert_eq!(ms, 0);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    // The request target.
    if let Some((route, id)) = Route::parse(text) {
        assert!(text.starts_with('/'));
        let path = text.split_once('?').map_or(text, |(p, _)| p);
        let name = match route {
            Route::Twilio => "twilio",
            Route::Fork { events } => {
                if events {
                    assert!(text.contains("events=1") || text.contains("events=true"));
                }
                "fork"
            }
            Route::AudioHook => "audiohook",
        };
        assert!(path[1..].starts_with(name));
        if let Some(id) = &id {
            assert!(!id.is_empty() && !id.contains('/') && !id.contains('?'));
            assert!(path.contains(id.as_str()));
            call_id(id);
        }
    }

    // Twilio Media Streams.
    match twilio::parse(text) {
        Ok(twilio::Msg::Media { media }) => {
            for first in [true, false] {
                match twilio::media_frame(&media, first) {
                    twilio::MediaFrame::Packet { track, packet } => {
                        let p = rtp::parse(&packet).expect("a valid RTP packet");
                        assert!(track < 2);
                        assert_eq!(Some(track), twilio::track_index(&media.track));
                        assert!(!p.payload.is_empty() && p.payload.len() <= 8000);
                        assert_eq!(p.sequence, media.chunk as u16);
                        assert_eq!(p.marker, first);
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(&media.payload)
                            .expect("the payload was base64");
                        assert_eq!(p.payload, &decoded[..]);
                    }
                    twilio::MediaFrame::Bad => {}
                }
            }
        }
        Ok(twilio::Msg::Start { start }) => {
            if let Ok(tracks) = start.check() {
                assert!(!tracks.is_empty() && tracks.len() <= 2);
                assert!(tracks.iter().all(|&t| t < 2));
                assert!(tracks.windows(2).all(|w| w[0] < w[1]));
            }
            for param in [None, Some("callId"), Some("k")] {
                call_id(start.call_id(param));
            }
        }
        Ok(twilio::Msg::Dtmf { dtmf }) => {
            if let Some(c) = twilio::dtmf_digit(&dtmf) {
                assert!(matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'));
            }
        }
        _ => {}
    }

    // The fork's metadata.
    if let Ok(m) = fork::parse_metadata(text) {
        assert!(!m.call_id.is_empty() && matches!(m.channels, 1 | 2));
        assert!((8000..=48_000).contains(&m.sample_rate_hz));
        call_id(&m.call_id);
    }

    // AudioHook.
    if let Ok(m) = audiohook::parse(text) {
        if let Some(media) = audiohook::choose_media(&m.parameters) {
            assert!((1..=2).contains(&media.channels.len()));
            assert!(media.format == "PCMU" && media.kind == "audio" && media.rate == 8000);
            assert!(media
                .channels
                .iter()
                .all(|c| c == "external" || c == "internal"));
        }
        for key in ["discarded", "start"] {
            if let Some(d) = m.parameters.get(key).and_then(|d| d.as_str()) {
                duration(d);
            }
        }
        if let Some(p) = m.position.as_deref() {
            duration(p);
        }
        if let Some(c) = m.parameters.get("conversationId").and_then(|c| c.as_str()) {
            call_id(c);
        }
    }

    // Binary frames: interleaved stereo split into two channels.
    for width in [1, 2] {
        let (l, r) = deinterleave(data, width);
        let whole = data.len() / (2 * width) * width;
        assert_eq!((l.len(), r.len()), (whole, whole));
    }
});
