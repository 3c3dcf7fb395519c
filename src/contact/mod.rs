//! The contact-centre layer over a call's finished utterances, sans-I/O like the core:
//!
//! - [`alerts`]: trends over recent utterances become alerts (escalate, anxious caller,
//!   long silence, cross-talk), with cue phrases and cool-downs.
//! - [`pii`]: redaction of card numbers, codes, expiry dates, SSNs, phone numbers and
//!   e-mail addresses in transcripts and their words.
//! - [`profile`]: a call's emotion over time, per-role means and peak moments (summary).

pub mod alerts;
pub mod pii;
pub mod profile;
