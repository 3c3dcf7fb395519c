//! Twilio's request signature on the Media Streams upgrade request (`X-Twilio-Signature`).
//!
//! Twilio signs every request it makes, the WebSocket upgrade of a `<Stream>` included,
//! with the account's auth token: the base64 HMAC-SHA1 of the request's full URL (for a
//! POST, followed by each form parameter's name and value in name order; an upgrade has
//! none). For a stream the URL is the `wss://` one the TwiML named. A server that checks it
//! knows the audio comes from that Twilio account; without it, anyone who can reach the
//! port can open a stream. Twilio's own validators accept the URL with or without the
//! default port (`:443`), and so does [`verify`].
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use tokio_tungstenite::tungstenite::handshake::server::Request;

/// Twilio's signature of `url` (and form `params`, sorted here by name) under `auth_token`.
pub fn sign(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// The HMAC-SHA1 under `auth_token` of `url` and then each of `params`' names and values,
/// sorted by name, as Twilio computes it.
fn mac(auth_token: &str, url: &str, params: &[(&str, &str)]) -> Hmac<Sha1> {
    let mut params = params.to_vec();
    params.sort_unstable();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The URL Twilio signed for this upgrade request: `public_url` (the `wss://` origin the
/// TwiML names, as configured) or `wss://` and the request's `Host`, followed by its
/// request target (path and query).
pub fn signed_url(req: &Request, public_url: Option<&str>) -> Option<String> {
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path(), |p| p.as_str());
    match public_url {
        Some(base) => Some(format!("{base}{target}")),
        None => {
            let host = req.headers().get("host")?.to_str().ok()?.trim();
            Some(format!("wss://{host}{target}"))
        }
    }
}

/// `url` as given, and with the default port added or taken away: the forms Twilio's
/// validators try.
fn port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some(rest) = url.strip_prefix("wss://") else {
        return out;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if let Some(host) = authority.strip_suffix(":443") {
        out.push(format!("wss://{host}{path}"));
    } else if !authority.contains(':') || authority.ends_with(']') {
        out.push(format!("wss://{authority}:443{path}"));
    }
    out
}

/// Why an upgrade request was refused (answered 401, logged and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no X-Twilio-Signature")]
    Unsigned,
    #[error("X-Twilio-Signature matches no auth token")]
    Mismatch,
}

/// Checks the request's `X-Twilio-Signature` against each of `auth_tokens` (several for a
/// token being rotated, or several accounts), over the URL of [`signed_url`] in each of
/// its port forms; the comparison is constant-time.
pub fn verify(
    req: &Request,
    auth_tokens: &[String],
    public_url: Option<&str>,
) -> Result<usize, Refusal> {
    let given = req
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or(Refusal::Unsigned)?;
    let given = base64::engine::general_purpose::STANDARD
        .decode(given)
        .map_err(|_| Refusal::Mismatch)?;
    let url = signed_url(req, public_url).ok_or(Refusal::Mismatch)?;
    for url in port_variants(&url) {
        for (i, token) in auth_tokens.iter().enumerate() {
            if mac(token, &url, &[]).verify_slice(&given).is_ok() {
                return Ok(i);
            }
        }
    }
    Err(Refusal::Mismatch)
}

/// Checks a configured public URL: `wss://` and an authority, optionally a path prefix,
/// no query and no trailing `/`.
pub fn check_public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("wss://")
        .ok_or("must start with wss:// (Twilio streams only to wss://)")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host".into());
    }
    if url.contains('?') || url.contains('#') {
        return Err("must have no query or fragment".into());
    }
    if url.ends_with('/') {
        return Err("must not end with /".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(target: &str, host: &str, signature: Option<&str>) -> Request {
        let mut b = Request::builder().uri(target).header("Host", host);
        if let Some(s) = signature {
            b = b.header("X-Twilio-Signature", s);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_documented_example_signs_as_twilio_says() {
        // Twilio's "Webhooks security" page: auth token 12345, a POST to this URL with
        // these parameters, signature 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ];
        assert_eq!(
            sign(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn a_stream_upgrade_verifies_with_or_without_the_default_port() {
        // Signatures computed independently (Python's hmac) for these URLs and token 12345.
        let tokens = vec!["other-token".to_string(), "12345".to_string()];
        let plain = "pM+Fyl76CH3HI37VUDSe34y6R+k="; // wss://callmood.example.com/twilio
        let req = upgrade("/twilio", "callmood.example.com", Some(plain));
        assert_eq!(verify(&req, &tokens, None), Ok(1));
        let req = upgrade("/twilio", "callmood.example.com:443", Some(plain));
        assert_eq!(
            verify(&req, &tokens, None),
            Ok(1),
            "port given, signed without"
        );
        let ported = "jr2ee3kqbgXl5rCp4MU8Lr/PD8w="; // wss://callmood.example.com:443/twilio/CA42
        let req = upgrade("/twilio/CA42", "callmood.example.com", Some(ported));
        assert_eq!(verify(&req, &tokens, None), Ok(1), "signed with the port");
        // Behind a proxy that rewrites Host: the configured public URL is what was signed.
        let req = upgrade("/twilio", "127.0.0.1:8080", Some(plain));
        assert_eq!(verify(&req, &tokens, None), Err(Refusal::Mismatch));
        assert_eq!(
            verify(&req, &tokens, Some("wss://callmood.example.com")),
            Ok(1)
        );
    }

    #[test]
    fn unsigned_wrongly_signed_and_moved_requests_are_refused() {
        let tokens = vec!["12345".to_string()];
        let plain = "pM+Fyl76CH3HI37VUDSe34y6R+k=";
        assert_eq!(
            verify(
                &upgrade("/twilio", "callmood.example.com", None),
                &tokens,
                None
            ),
            Err(Refusal::Unsigned)
        );
        assert_eq!(
            verify(
                &upgrade("/twilio", "callmood.example.com", Some(plain)),
                &["54321".to_string()],
                None
            ),
            Err(Refusal::Mismatch)
        );
        for (target, host) in [
            ("/twilio/CA42", "callmood.example.com"),
            ("/twilio", "evil.example.com"),
        ] {
            assert_eq!(
                verify(&upgrade(target, host, Some(plain)), &tokens, None),
                Err(Refusal::Mismatch),
                "{host}{target}"
            );
        }
        assert_eq!(
            verify(
                &upgrade("/twilio", "callmood.example.com", Some("not base64!")),
                &tokens,
                None
            ),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn public_urls_are_checked() {
        assert!(check_public_url("wss://callmood.example.com").is_ok());
        assert!(check_public_url("wss://callmood.example.com:8443/media").is_ok());
        for bad in [
            "https://callmood.example.com",
            "wss://",
            "wss://callmood.example.com/",
            "wss://callmood.example.com?x=1",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }
}
