//! Fuzzes the credential checks the WebSocket listener makes on an upgrade request before
//! the upgrade, on the request's attacker-controlled target and headers:
//! `audiohook::admit` (`X-API-KEY`, and for a key with a client secret the RFC 9421
//! `Signature-Input` / `Signature` headers, with the nonce replay memory),
//! `twilio_signature::verify` (`X-Twilio-Signature` over the `wss://` URL rebuilt from
//! `Host` or the public URL and the target) and `fork::basic_auth_user` (HTTP Basic).
//!
//! The input is `[public URL choice, request...]`: the request, split into lines at `\n`
//! (a trailing `\r` dropped), is the request target (the input is skipped where `http`
//! refuses it as a URI) and then `name: value` header lines (a line that is not a valid
//! header name and value is skipped; a repeated name adds a value). All three checks run on
//! every request under one fixed configuration. It checks that nothing panics and that a
//! request is admitted only with a configured credential it carries: AudioHook gives the
//! `X-API-KEY` of the request, a configured one, and for the key with a secret only with
//! both signature headers, once (the same request again is a replay), and not under another
//! secret; Twilio names a configured token whose HMAC-SHA1 of the signed URL (with or
//! without `:443`) is the header's signature; Basic gives the user of the configured pair
//! the header's credentials decode to.
#![no_main]

use std::sync::Arc;

use base64::Engine as _;
use callmood::server::ws::signature::{self, Nonces, Refusal};
use callmood::server::ws::{audiohook, fork, twilio_signature, WsConfig};
use http::header::{HeaderName, HeaderValue};
use http::Request;
use libfuzzer_sys::fuzz_target;

/// The AudioHook key with a client secret, and the secret: those of the AudioHook
/// protocol's documented example (as in `signature.rs`'s unit tests), so that example
/// request is a seed that verifies.
const SIGNED_KEY: &str = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";
const SECRET_B64: &str = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=";
/// An AudioHook key without a secret.
const PLAIN_KEY: &str = "plain-audiohook-key-0123456789";
/// Twilio auth tokens (a token being rotated: two).
const TWILIO_TOKENS: [&str; 2] = ["12345", "f00dfeedf00dfeedf00dfeedf00dfeed"];
/// Public URLs the first input byte chooses from (index modulo 3; 0 is none).
const PUBLIC_URLS: [Option<&str>; 3] = [
    None,
    Some("wss://callmood.example.com"),
    Some("wss://media.example.com:8443/callmood"),
];
/// Basic `user:password` pairs (the second password holds a `:`).
const BASIC: [&str; 2] = ["freeswitch:pa55word", "jambonz:s3cret:with:colons"];
/// The Unix time of the checks: one second after the documented example's `created`.
const NOW_S: i64 = 1_641_013_201;

fn config(public: Option<&str>) -> WsConfig {
    WsConfig {
        // The signed key listed as a plain key too: a secret must still be asked for.
        audiohook_api_keys: vec![PLAIN_KEY.to_string(), SIGNED_KEY.to_string()],
        audiohook_client_secrets: audiohook::ClientSecrets::parse(&[format!(
            "{SIGNED_KEY}:{SECRET_B64}"
        )])
        .expect("a valid secret entry"),
        // A fresh replay memory for each input, so a run is deterministic.
        audiohook_nonces: Arc::new(Nonces::default()),
        twilio_auth_tokens: TWILIO_TOKENS.iter().map(|t| t.to_string()).collect(),
        twilio_public_url: public.map(str::to_string),
        fork_basic_auth: BASIC.iter().map(|p| p.to_string()).collect(),
        ..WsConfig::default()
    }
}

/// The request the input describes, or None when its target is not a URI.
fn request(data: &[u8]) -> Option<Request<()>> {
    let mut lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let target = String::from_utf8_lossy(lines.next()?);
    let mut req = Request::builder()
        .method("GET")
        .uri(target.as_ref())
        .body(())
        .ok()?;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            req.headers_mut().append(name, value);
        }
    }
    Some(req)
}

fn first_header<'a>(req: &'a Request<()>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn audiohook_checks(req: &Request<()>, cfg: &WsConfig) {
    let given = first_header(req, "x-api-key");
    let configured = |k: &str| k == PLAIN_KEY || k == SIGNED_KEY;
    match audiohook::admit(req, cfg, NOW_S) {
        Ok(key) => {
            assert_eq!(Some(key.as_str()), given, "admitted under another key");
            assert!(configured(&key), "admitted an unknown key");
            if key == SIGNED_KEY {
                assert!(
                    req.headers().contains_key("signature")
                        && req.headers().contains_key("signature-input"),
                    "the key with a secret admitted unsigned"
                );
                // Its nonce is now used: the same request is a replay.
                assert_eq!(
                    audiohook::admit(req, cfg, NOW_S),
                    Err(audiohook::Unadmitted::Signature(Refusal::Replay))
                );
                // And it was signed with this secret, not any.
                assert_eq!(
                    signature::verify(req, &key, b"another secret", NOW_S, &Nonces::default()),
                    Err(Refusal::Mismatch)
                );
            } else {
                // A plain key is a bearer secret: admitted again.
                assert_eq!(audiohook::admit(req, cfg, NOW_S), Ok(key));
            }
        }
        Err(why) => {
            match why {
                audiohook::Unadmitted::Key => {
                    assert!(
                        !given.is_some_and(configured),
                        "a configured key refused as unknown"
                    )
                }
                audiohook::Unadmitted::Signature(_) => {
                    assert_eq!(given, Some(SIGNED_KEY), "a signature asked of a plain key")
                }
            }
            assert!(!why.fault().is_empty() && !why.answer().is_empty());
            assert!(!why.to_string().is_empty());
        }
    }
}

/// The URLs Twilio may have signed for `url`: as given, with one `:443` taken out, or
/// with `:443` added after the authority (a superset of what `verify` tries).
fn url_forms(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    for (i, _) in url.match_indices(":443") {
        out.push(format!("{}{}", &url[..i], &url[i + 4..]));
    }
    if let Some(rest) = url.strip_prefix("wss://") {
        let at = rest.find('/').unwrap_or(rest.len());
        out.push(format!("wss://{}:443{}", &rest[..at], &rest[at..]));
    }
    out
}

fn twilio_checks(req: &Request<()>, cfg: &WsConfig) {
    let tokens = &cfg.twilio_auth_tokens;
    let public = cfg.twilio_public_url.as_deref();
    match twilio_signature::verify(req, tokens, public) {
        Ok(i) => {
            assert!(i < tokens.len());
            let given = first_header(req, "x-twilio-signature").expect("admitted unsigned");
            let given = base64::engine::general_purpose::STANDARD
                .decode(given.trim())
                .expect("admitted with a signature that is not base64");
            let url = twilio_signature::signed_url(req, public).expect("admitted without a URL");
            let signed = url_forms(&url).iter().any(|u| {
                let s = twilio_signature::sign(&tokens[i], u, &[]);
                base64::engine::general_purpose::STANDARD.decode(s).unwrap() == given
            });
            assert!(
                signed,
                "admitted with a signature of no form of {url:?} under token {i}"
            );
        }
        Err(why) => {
            if why == twilio_signature::Refusal::Unsigned {
                assert!(first_header(req, "x-twilio-signature").is_none());
            }
            assert!(!why.to_string().is_empty());
        }
    }
    // Whatever the headers, the URL is the public one or wss:// and the Host.
    if let Some(url) = twilio_signature::signed_url(req, public) {
        assert!(url.starts_with(public.unwrap_or("wss://")));
    }
}

fn basic_checks(req: &Request<()>, cfg: &WsConfig) {
    if let Some(user) = fork::basic_auth_user(req, &cfg.fork_basic_auth) {
        let pair = BASIC
            .iter()
            .find(|p| p.split_once(':').map(|(u, _)| u) == Some(user.as_str()))
            .expect("admitted a user that is not configured");
        let header = first_header(req, "authorization").expect("admitted without Authorization");
        let (scheme, b64) = header.trim().split_once(' ').expect("no scheme");
        assert!(
            scheme.eq_ignore_ascii_case("basic"),
            "admitted under scheme {scheme:?}"
        );
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .expect("admitted credentials that are not base64");
        assert_eq!(decoded, pair.as_bytes(), "admitted with another password");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Some(req) = request(rest) else {
        return;
    };
    let cfg = config(PUBLIC_URLS[choice as usize % PUBLIC_URLS.len()]);
    audiohook_checks(&req, &cfg);
    twilio_checks(&req, &cfg);
    basic_checks(&req, &cfg);
});
