//! Output of events for people and tools: JSON lines (proto3 JSON mapping with
//! the proto's snake_case field names, the oneof member as the key).
use std::io::Write;

use crate::proto::CallEvent;

/// Writes one event as one line of JSON.
pub fn write_jsonl(out: &mut impl Write, event: &CallEvent) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{call_event::Event, Utterance};

    #[test]
    fn oneof_member_is_the_key_and_names_are_snake_case() {
        let ev = CallEvent {
            call_id: "c1".into(),
            event: Some(Event::Utterance(Utterance {
                utterance_id: "u0001".into(),
                start_ms: 1200,
                transcript: "hello".into(),
                role: crate::proto::Role::Caller as i32,
                ..Default::default()
            })),
        };
        let mut buf = Vec::new();
        write_jsonl(&mut buf, &ev).unwrap();
        let s = String::from_utf8(buf).unwrap();
        assert!(s.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["call_id"], "c1");
        assert_eq!(v["utterance"]["start_ms"], 1200);
        assert_eq!(v["utterance"]["utterance_id"], "u0001");
        assert_eq!(v["utterance"]["transcript"], "hello");
        assert_eq!(v["utterance"]["role"], "CALLER");
        // Round trip through the same mapping.
        let back: CallEvent = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ev);
    }
}
