//! HTTP message signatures on AudioHook's upgrade request (RFC 9421, the part Genesys Cloud
//! uses). Besides its `X-API-KEY`, an AudioHook integration has a client secret; Genesys
//! Cloud signs the WebSocket upgrade request with it: `Signature-Input` names the covered
//! components and the parameters (`keyid`, `nonce`, `alg`, `created`, `expires`),
//! `Signature` carries the HMAC-SHA256 of the signature base under the secret (base64
//! decoded). An API key alone is a bearer secret that every proxy log may hold; a
//! signature proves the caller holds the client secret, binds the organisation, session
//! and correlation ids of this one request, and expires within seconds.
//!
//! What [`verify`] asks of a request, as the protocol's reference server does:
//! - one signature (the first label of `Signature-Input`), with a byte sequence of the
//!   same label in `Signature`;
//! - covering at least [`REQUIRED`]; covered components may be `@request-target`,
//!   `@authority`, `@method`, `@path`, `@query` and header fields, without component
//!   parameters;
//! - `keyid` equal to the `X-API-KEY`, a `nonce` of at least [`MIN_NONCE_CHARS`]
//!   characters, `alg` absent or `hmac-sha256`, `created` present and within
//!   [`MAX_AGE_S`] (plus [`MAX_SKEW_S`] of clock difference either way), `expires` not past;
//! - the HMAC, compared in constant time;
//! - a nonce not seen before within its signature's lifetime ([`Nonces`]), so a captured
//!   request cannot be replayed while it is fresh.
//!
//! The signature base is rebuilt from the parsed header, one line per covered component
//! (`"name": value`, header values trimmed and joined with `", "`) and a last line
//! `"@signature-params": ` with the inner list re-serialised, as RFC 9421 section 2.5 has it.
use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sfv::{Dictionary, FieldType, ListEntry, Parser};
use sha2::Sha256;
use tokio_tungstenite::tungstenite::handshake::server::Request;

/// Components every AudioHook signature must cover (those Genesys Cloud signs).
pub const REQUIRED: [&str; 6] = [
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
];
/// Oldest signature accepted, s after its `created`.
pub const MAX_AGE_S: i64 = 10;
/// Clock difference allowed between the client and this server, s.
pub const MAX_SKEW_S: i64 = 3;
/// Shortest `nonce` accepted, characters (the reference server's limit: 16 random bytes
/// in base64).
pub const MIN_NONCE_CHARS: usize = 22;
/// Most nonces remembered at once; a verified request that finds the memory full of
/// unexpired nonces is refused (fails closed).
pub const MAX_NONCES: usize = 100_000;

/// Why a request's signature was not accepted (logged and counted; the client gets a
/// plain 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no Signature and Signature-Input headers")]
    Unsigned,
    #[error("Signature or Signature-Input malformed")]
    Malformed,
    #[error("a required component is not covered")]
    NotCovered,
    #[error("a covered component is missing from the request or not supported")]
    Component,
    #[error("keyid is not the X-API-KEY")]
    KeyId,
    #[error("nonce missing or shorter than {MIN_NONCE_CHARS} characters")]
    Nonce,
    #[error("algorithm other than hmac-sha256")]
    Algorithm,
    #[error("created missing, in the future or older than {MAX_AGE_S} s, or expires past")]
    Time,
    #[error("the signature does not match")]
    Mismatch,
    #[error("nonce seen before")]
    Replay,
}

/// Nonces of verified requests, each until its signature could no longer be accepted.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: Mutex<HashMap<String, i64>>,
}

impl Nonces {
    /// Records `nonce` until `until_s` (Unix seconds); false if it is already there and
    /// not yet expired, or if the memory is full of unexpired nonces.
    pub fn first_use(&self, nonce: &str, until_s: i64, now_s: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(nonce).is_some_and(|&t| t >= now_s) {
            return false;
        }
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, t| *t >= now_s);
            if seen.len() >= MAX_NONCES {
                return false;
            }
        }
        seen.insert(nonce.to_string(), until_s);
        true
    }
}

/// The values of header `name` (case-insensitive), each trimmed, joined with `", "`;
/// `None` when absent or not visible ASCII.
fn header_value(req: &Request, name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for v in req.headers().get_all(name) {
        parts.push(v.to_str().ok()?.trim().to_string());
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The value a covered component has in `req`.
fn component(req: &Request, name: &str) -> Result<String, Refusal> {
    let uri = req.uri();
    let value = match name {
        "@request-target" => uri.path_and_query().map(|p| p.as_str().to_string()),
        "@authority" => header_value(req, "host")
            .or_else(|| uri.authority().map(|a| a.as_str().to_string()))
            .map(|a| a.to_ascii_lowercase()),
        "@method" => Some(req.method().as_str().to_string()),
        "@path" => Some(uri.path().to_string()),
        "@query" => Some(format!("?{}", uri.query().unwrap_or(""))),
        n if n.starts_with('@') => None,
        n if !n.is_empty()
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
            }) =>
        {
            header_value(req, n)
        }
        _ => None,
    };
    value.ok_or(Refusal::Component)
}

/// Checks the signature of an AudioHook upgrade request made with `api_key`, whose client
/// secret is `secret`, at Unix time `now_s`; records its nonce in `nonces` when it passes.
pub fn verify(
    req: &Request,
    api_key: &str,
    secret: &[u8],
    now_s: i64,
    nonces: &Nonces,
) -> Result<(), Refusal> {
    let (input, signature) = (
        header_value(req, "signature-input"),
        header_value(req, "signature"),
    );
    let (input, signature) = match (input, signature) {
        (None, None) => return Err(Refusal::Unsigned),
        (Some(i), Some(s)) => (i, s),
        _ => return Err(Refusal::Malformed),
    };
    let inputs: Dictionary = Parser::new(&input)
        .parse()
        .map_err(|_| Refusal::Malformed)?;
    let signatures: Dictionary = Parser::new(&signature)
        .parse()
        .map_err(|_| Refusal::Malformed)?;
    let (label, entry) = inputs.first().ok_or(Refusal::Malformed)?;
    let ListEntry::InnerList(list) = entry else {
        return Err(Refusal::Malformed);
    };
    let sig = match signatures.get(label) {
        Some(ListEntry::Item(item)) => item
            .bare_item
            .as_byte_sequence()
            .ok_or(Refusal::Malformed)?,
        _ => return Err(Refusal::Malformed),
    };

    // The covered components, in order, each once.
    let mut names: Vec<&str> = Vec::with_capacity(list.items.len());
    for item in &list.items {
        let name = item.bare_item.as_string().ok_or(Refusal::Malformed)?;
        if !item.params.is_empty() {
            return Err(Refusal::Component);
        }
        if names.contains(&name.as_str()) || name.as_str() == "@signature-params" {
            return Err(Refusal::Malformed);
        }
        names.push(name.as_str());
    }
    if REQUIRED.iter().any(|r| !names.contains(r)) {
        return Err(Refusal::NotCovered);
    }

    // The parameters.
    let (mut keyid, mut nonce, mut alg, mut created, mut expires) = (None, None, None, None, None);
    for (key, value) in &list.params {
        let string = || {
            value
                .as_string()
                .map(|s| s.as_str())
                .ok_or(Refusal::Malformed)
        };
        let integer = || {
            value
                .as_integer()
                .map(i64::from)
                .filter(|&v| v >= 0)
                .ok_or(Refusal::Malformed)
        };
        match key.as_str() {
            "keyid" => keyid = Some(string()?),
            "nonce" => nonce = Some(string()?),
            "alg" => alg = Some(string()?),
            "created" => created = Some(integer()?),
            "expires" => expires = Some(integer()?),
            _ => return Err(Refusal::Malformed),
        }
    }
    if keyid != Some(api_key) {
        return Err(Refusal::KeyId);
    }
    let nonce = nonce
        .filter(|n| n.chars().count() >= MIN_NONCE_CHARS)
        .ok_or(Refusal::Nonce)?;
    if alg.is_some_and(|a| a != "hmac-sha256") {
        return Err(Refusal::Algorithm);
    }
    let created = created.ok_or(Refusal::Time)?;
    if created > now_s + MAX_SKEW_S
        || now_s > created + MAX_AGE_S + MAX_SKEW_S
        || expires.is_some_and(|e| now_s > e + MAX_SKEW_S)
    {
        return Err(Refusal::Time);
    }

    // The signature base, and the HMAC over it.
    let params = single_member(label, entry).ok_or(Refusal::Malformed)?;
    mac(secret, &signature_base(req, &names, &params)?)
        .verify_slice(sig)
        .map_err(|_| Refusal::Mismatch)?;

    let until = expires.map_or(created + MAX_AGE_S + MAX_SKEW_S, |e| {
        e.min(created + MAX_AGE_S) + MAX_SKEW_S
    });
    if !nonces.first_use(nonce, until, now_s) {
        return Err(Refusal::Replay);
    }
    Ok(())
}

/// The signature base of RFC 9421 section 2.5: a line `"name": value` for each covered
/// component of `req`, then `"@signature-params": ` and the serialised parameters.
fn signature_base(req: &Request, names: &[&str], params: &str) -> Result<String, Refusal> {
    let mut base = String::new();
    for name in names {
        base.push_str(&format!("\"{name}\": {}\n", component(req, name)?));
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    Ok(base)
}

/// HMAC-SHA256 of `base` under `secret`.
fn mac(secret: &[u8], base: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(base.as_bytes());
    mac
}

/// `entry` serialised as a dictionary member's value (the inner list and its parameters).
fn single_member(label: &sfv::Key, entry: &ListEntry) -> Option<String> {
    let mut one = Dictionary::new();
    one.insert(label.clone(), entry.clone());
    let text = one.serialize()?;
    text.strip_prefix(label.as_str())?
        .strip_prefix('=')
        .map(str::to_string)
}

/// Unix time now, s.
pub fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Signs an AudioHook upgrade request as Genesys Cloud does (for tests and the client
/// side of test tools): covers [`REQUIRED`], with `nonce` and `created`, and sets the
/// `Signature-Input` and `Signature` headers. The request must already carry the
/// headers it covers (`Host`, `X-API-KEY`, the three `Audiohook-*` ids).
pub fn sign(req: &mut Request, api_key: &str, secret: &[u8], nonce: &str, created: i64) {
    use base64::Engine;
    let covered = REQUIRED
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let params = format!(
        "({covered});keyid=\"{api_key}\";nonce=\"{nonce}\";alg=\"hmac-sha256\";created={created};expires={}",
        created + MAX_AGE_S
    );
    let base = signature_base(req, &REQUIRED, &params)
        .expect("the request carries every header the signature covers");
    let sig = base64::engine::general_purpose::STANDARD
        .encode(mac(secret, &base).finalize().into_bytes());
    let h = req.headers_mut();
    h.insert(
        "signature-input",
        format!("sig1={params}").parse().expect("visible ASCII"),
    );
    h.insert(
        "signature",
        format!("sig1=:{sig}:").parse().expect("visible ASCII"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET_B64: &str = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=";
    const KEY: &str = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";

    fn secret() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(SECRET_B64)
            .unwrap()
    }

    /// The upgrade request of the AudioHook protocol's own example (session walkthrough,
    /// "Establishing connection"), with its documented signature.
    fn documented() -> Request {
        let mut req = Request::builder()
            .method("GET")
            .uri("/api/v1/voicebiometrics/ws")
            .header("Host", "audiohook.example.com")
            .header(
                "Audiohook-Organization-Id",
                "d7934305-0972-4844-938e-9060eef73d05",
            )
            .header(
                "Audiohook-Correlation-Id",
                "e160e428-53e2-487c-977d-96989bf5c99d",
            )
            .header(
                "Audiohook-Session-Id",
                "30b0e395-84d3-4570-ac13-9a62d8f514c0",
            )
            .header("X-API-KEY", KEY)
            .body(())
            .unwrap();
        let h = req.headers_mut();
        h.insert(
            "Signature",
            "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:"
                .parse()
                .unwrap(),
        );
        h.insert(
            "Signature-Input",
            "sig1=(\"@request-target\" \"@authority\" \"audiohook-organization-id\" \
             \"audiohook-session-id\" \"audiohook-correlation-id\" \"x-api-key\");\
             keyid=\"SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh\";nonce=\"VGhpc0lzQVVuaXF1ZU5vbmNl\";\
             alg=\"hmac-sha256\";created=1641013200;expires=3282026430"
                .parse()
                .unwrap(),
        );
        req
    }

    const CREATED: i64 = 1_641_013_200;

    #[test]
    fn the_protocols_documented_example_verifies() {
        let n = Nonces::default();
        assert_eq!(
            verify(&documented(), KEY, &secret(), CREATED + 1, &n),
            Ok(())
        );
    }

    #[test]
    fn a_replayed_request_is_refused_while_fresh_and_an_old_one_is_too_old() {
        let n = Nonces::default();
        let req = documented();
        assert_eq!(verify(&req, KEY, &secret(), CREATED + 1, &n), Ok(()));
        assert_eq!(
            verify(&req, KEY, &secret(), CREATED + 2, &n),
            Err(Refusal::Replay)
        );
        let late = CREATED + MAX_AGE_S + MAX_SKEW_S + 1;
        assert_eq!(
            verify(&req, KEY, &secret(), late, &Nonces::default()),
            Err(Refusal::Time)
        );
        assert_eq!(
            verify(&req, KEY, &secret(), CREATED - MAX_SKEW_S - 1, &n),
            Err(Refusal::Time),
            "created in the future"
        );
    }

    #[test]
    fn any_change_to_a_covered_header_or_the_secret_breaks_the_signature() {
        let now = CREATED + 1;
        let mut req = documented();
        req.headers_mut().insert(
            "Audiohook-Session-Id",
            "00000000-84d3-4570-ac13-9a62d8f514c0".parse().unwrap(),
        );
        assert_eq!(
            verify(&req, KEY, &secret(), now, &Nonces::default()),
            Err(Refusal::Mismatch)
        );
        let mut req = documented();
        req.headers_mut()
            .insert("Host", "evil.example.com".parse().unwrap());
        assert_eq!(
            verify(&req, KEY, &secret(), now, &Nonces::default()),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(
                &documented(),
                KEY,
                b"another secret",
                now,
                &Nonces::default()
            ),
            Err(Refusal::Mismatch)
        );
        // The same request under another API key: keyid no longer matches.
        assert_eq!(
            verify(
                &documented(),
                "other-key",
                &secret(),
                now,
                &Nonces::default()
            ),
            Err(Refusal::KeyId)
        );
    }

    #[test]
    fn unsigned_malformed_and_weak_signatures_are_refused_with_their_reason() {
        let now = CREATED + 1;
        let check = |edit: &dyn Fn(&mut Request)| {
            let mut req = documented();
            edit(&mut req);
            verify(&req, KEY, &secret(), now, &Nonces::default())
        };
        let set = |name: &'static str, value: String| {
            move |r: &mut Request| {
                r.headers_mut().insert(name, value.parse().unwrap());
            }
        };
        assert_eq!(
            check(&|r| {
                r.headers_mut().remove("Signature");
                r.headers_mut().remove("Signature-Input");
            }),
            Err(Refusal::Unsigned)
        );
        assert_eq!(
            check(&|r| {
                r.headers_mut().remove("Signature");
            }),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            check(&set("Signature", "sig1=:not base64!:".into())),
            Err(Refusal::Malformed)
        );
        let input = |covered: &str, params: &str| format!("sig1=({covered});{params}");
        let all = "\"@request-target\" \"@authority\" \"audiohook-organization-id\" \
                   \"audiohook-session-id\" \"audiohook-correlation-id\" \"x-api-key\"";
        let good = format!("keyid=\"{KEY}\";nonce=\"VGhpc0lzQVVuaXF1ZU5vbmNl\";alg=\"hmac-sha256\";created={CREATED}");
        assert_eq!(
            check(&set(
                "Signature-Input",
                input("\"@request-target\" \"@authority\" \"x-api-key\"", &good)
            )),
            Err(Refusal::NotCovered)
        );
        assert_eq!(
            check(&set(
                "Signature-Input",
                input(all, &good.replace("VGhpc0lzQVVuaXF1ZU5vbmNl", "short"))
            )),
            Err(Refusal::Nonce)
        );
        assert_eq!(
            check(&set(
                "Signature-Input",
                input(all, &good.replace("hmac-sha256", "rsa-v1_5-sha256"))
            )),
            Err(Refusal::Algorithm)
        );
        assert_eq!(
            check(&set(
                "Signature-Input",
                input(all, &good.replace(&format!(";created={CREATED}"), ""))
            )),
            Err(Refusal::Time)
        );
        assert_eq!(
            check(&set(
                "Signature-Input",
                input(&format!("{all} \"x-not-sent\""), &good)
            )),
            Err(Refusal::Component)
        );
        assert_eq!(
            check(&set(
                "Signature-Input",
                input(&format!("{all} \"@scheme\""), &good)
            )),
            Err(Refusal::Component)
        );
        assert_eq!(
            check(&set(
                "Signature-Input",
                input(all, &format!("{good};tag=\"x\""))
            )),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn a_request_signed_here_verifies_and_only_once() {
        let mut req = documented();
        req.headers_mut().remove("Signature");
        req.headers_mut().remove("Signature-Input");
        let now = 1_800_000_000;
        sign(&mut req, KEY, &secret(), "MDEyMzQ1Njc4OWFiY2RlZmdoaWo", now);
        let n = Nonces::default();
        assert_eq!(verify(&req, KEY, &secret(), now, &n), Ok(()));
        assert_eq!(verify(&req, KEY, &secret(), now, &n), Err(Refusal::Replay));
    }

    #[test]
    fn the_nonce_memory_forgets_expired_nonces_and_fails_closed_when_full() {
        let n = Nonces::default();
        assert!(n.first_use("a", 10, 0));
        assert!(!n.first_use("a", 10, 5));
        assert!(n.first_use("a", 30, 11), "expired: usable again");
        {
            let mut seen = n.seen.lock().unwrap();
            for i in 0..MAX_NONCES {
                seen.insert(format!("n{i}"), 100);
            }
        }
        assert!(!n.first_use("b", 100, 50), "full of unexpired nonces");
        assert!(n.first_use("b", 300, 101), "after they expire, room again");
    }
}
