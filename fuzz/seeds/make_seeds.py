#!/usr/bin/env python3
"""Writes the seed corpora fuzz/README.md describes into fuzz/corpus/<target>/.

Run from fuzz/: python3 seeds/make_seeds.py. The corpus directories are not committed;
this script is, so the seeds can be made again.
"""
import math, os, struct

def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# --- rtp_parse -------------------------------------------------------------------
def rtp(seq, ts, ssrc, pt=0, marker=False, payload=b"\xff" * 160):
    b0 = 0x80
    b1 = (0x80 if marker else 0) | pt
    return struct.pack(">BBHII", b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload

put("rtp_parse", "plain_packet", rtp(1, 160, 0x1234, marker=True))
script = bytearray([80])  # jitter depth, ms
def rec(dgram, dt, flags):
    # a record's datagram is at most 255 bytes
    script.extend([len(dgram), dt, flags])
    script.extend(dgram)
payload = b"\xd5" * 80  # 10 ms of PCMU silence-ish, short records
for i in range(12):
    rec(rtp(100 + i, 1000 + 80 * i, 0xABCD, marker=(i == 0), payload=payload), 10, 2 | 4)
# two telephone-events (RFC 4733): digit 5, then its end
ev = struct.pack(">BBH", 5, 0x0A, 400)
rec(rtp(112, 1960, 0xABCD, pt=101, marker=True, payload=ev), 20, 0 | 4)
ev_end = struct.pack(">BBH", 5, 0x8A, 800)
rec(rtp(113, 1960, 0xABCD, pt=101, payload=ev_end), 20, 0 | 4 | 8)
# a new SSRC
rec(rtp(7, 50_000, 0x5555, marker=True, payload=payload), 10, 2 | 4 | 8)
put("rtp_parse", "script", bytes(script))

# --- wav_parse -------------------------------------------------------------------
def wav(fmt_tag, channels, rate, bits, frames, extensible=False, extra_chunks=b"",
        data_len=None, sub_tag=None):
    block = channels * bits // 8
    samples = []
    for i in range(frames):
        for c in range(channels):
            samples.append(0.5 * math.sin(2 * math.pi * 440 * i / rate + c))
    if fmt_tag == 3:
        fmtc = "<f" if bits == 32 else "<d"
        data = b"".join(struct.pack(fmtc, s) for s in samples)
    elif fmt_tag in (6, 7):
        data = bytes((int(s * 100) & 0xFF) for s in samples)
    elif bits == 8:
        data = bytes(int(128 + s * 100) for s in samples)
    elif bits == 16:
        data = b"".join(struct.pack("<h", int(s * 30000)) for s in samples)
    elif bits == 24:
        data = b"".join(struct.pack("<i", int(s * 8_000_000))[:3] for s in samples)
    else:
        data = b"".join(struct.pack("<i", int(s * 2_000_000_000)) for s in samples)
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub_tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    dl = len(data) if data_len is None else data_len
    body += b"data" + struct.pack("<I", dl) + data
    riff_len = 0xFFFFFFFF if data_len is not None else len(body)
    return b"RIFF" + struct.pack("<I", riff_len) + body

put("wav_parse", "pcm8_8k", wav(1, 1, 8000, 8, 40))
put("wav_parse", "pcm16_16k", wav(1, 1, 16000, 16, 40))
put("wav_parse", "pcm16_stereo_44k", wav(1, 2, 44100, 16, 40))
put("wav_parse", "pcm24_48k", wav(1, 1, 48000, 24, 40))
put("wav_parse", "pcm32_32k", wav(1, 1, 32000, 32, 40))
put("wav_parse", "float32_ext_22k", wav(3, 1, 22050, 32, 40, extensible=True, sub_tag=3))
put("wav_parse", "float64_16k", wav(3, 1, 16000, 64, 40))
put("wav_parse", "mulaw_8k", wav(7, 1, 8000, 8, 40))
put("wav_parse", "alaw_3ch_8k", wav(6, 3, 8000, 8, 40))
put("wav_parse", "odd_list_12k", wav(1, 1, 12000, 16, 40,
                                      extra_chunks=b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"))
put("wav_parse", "streaming_len_11k", wav(1, 1, 11025, 16, 40, data_len=0xFFFFFFFF))

# --- audiosocket_frames ----------------------------------------------------------
def frame(kind, payload=b""):
    return struct.pack(">BH", kind, len(payload)) + payload

call = (frame(0x01, bytes(range(16))) + frame(0x10, b"\x01\x00" * 160) + frame(0x03, b"5")
        + frame(0x10, b"\xff\x7f" * 160) + frame(0x42, b"xyz") + frame(0xFF, b"\x02")
        + frame(0x00))
put("audiosocket_frames", "call", b"\x00\x00\x00" + call)
put("audiosocket_frames", "call_max640", b"\x85\x02\x80" + call)
put("audiosocket_frames", "bad_dtmf", b"\x00\x00\x00" + frame(0x03, b"x"))
put("audiosocket_frames", "audio_over_max320",
    b"\x80\x01\x40" + struct.pack(">BH", 0x10, 640) + b"\x00" * 64)

# --- ws_messages -----------------------------------------------------------------
ws = {
    "twilio_connected": '{"event":"connected","protocol":"Call","version":"1.0.0"}',
    "twilio_start": '{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ1","callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{"k":"v"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}',
    "twilio_media": '{"event":"media","media":{"track":"outbound","chunk":"7","timestamp":"140","payload":"//8A//8A"}}',
    "twilio_media_numbers": '{"event":"media","media":{"chunk":2,"timestamp":20,"payload":"fn5+fn5+fn5+fn5+"}}',
    "twilio_dtmf": '{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}',
    "twilio_mark_stop": '{"event":"stop","stop":{"callSid":"CA1"}}',
    "fork_metadata": '{"callSid":"j1","sampleRate":"16000","mixType":"stereo"}',
    "fork_metadata_uuid": '{"uuid":"abc-123","sample_rate":8000,"channels":1}',
    "audiohook_open": '{"version":"2","type":"open","seq":1,"serverseq":0,"id":"s","position":"PT0S","parameters":{"conversationId":"c","media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000},{"type":"audio","format":"PCMU","channels":["external"],"rate":8000}]}}',
    "audiohook_resumed": '{"version":"2","type":"resumed","seq":4,"parameters":{"start":"PT1S","discarded":"PT2.5S"}}',
    "audiohook_ping": '{"version":"2","type":"ping","seq":2,"serverseq":1,"id":"s","position":"PT1.25S","parameters":{}}',
    "route_twilio": "/twilio/CA42",
    "route_fork_events": "/fork?events=1",
    "route_audiohook": "/audiohook/",
}
for name, text in ws.items():
    put("ws_messages", name, text.encode())

# --- ws_upgrade ------------------------------------------------------------------
# The input is [public URL choice, request target \n header lines...]; the target's
# configuration (fuzz_targets/ws_upgrade.rs): AudioHook key SIGNED_KEY with the client
# secret SECRET (the AudioHook protocol's documented example's), a plain key, Twilio tokens
# "12345" and another, Basic pairs freeswitch:pa55word and jambonz:s3cret:with:colons, the
# checks made at Unix time NOW (one second after the documented example's `created`).
import base64, hashlib, hmac

SIGNED_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
SECRET = base64.b64decode("TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=")
PLAIN_KEY = "plain-audiohook-key-0123456789"
NOW = 1_641_013_201
COVERED = ["@request-target", "@authority", "audiohook-organization-id",
           "audiohook-session-id", "audiohook-correlation-id", "x-api-key"]

def upgrade(choice, target, headers):
    ws = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
    lines = [target] + ["%s: %s" % h for h in headers + ws]
    return bytes([choice]) + "\r\n".join(lines).encode()

def audiohook_signature(target, headers, key, secret, nonce, created, expires):
    """Signature-Input and Signature as signature.rs signs (RFC 9421, HMAC-SHA256)."""
    h = {n.lower(): v for n, v in headers}
    value = {"@request-target": target, "@authority": h["host"].lower()}
    params = "(%s);keyid=\"%s\";nonce=\"%s\";alg=\"hmac-sha256\";created=%d;expires=%d" % (
        " ".join('"%s"' % c for c in COVERED), key, nonce, created, expires)
    base = "".join('"%s": %s\n' % (c, value.get(c, h.get(c))) for c in COVERED)
    base += '"@signature-params": ' + params
    sig = base64.b64encode(hmac.new(secret, base.encode(), hashlib.sha256).digest()).decode()
    return [("Signature-Input", "sig1=" + params), ("Signature", "sig1=:%s:" % sig)]

ah_headers = [("Host", "audiohook.example.com"),
              ("Audiohook-Organization-Id", "d7934305-0972-4844-938e-9060eef73d05"),
              ("Audiohook-Correlation-Id", "e160e428-53e2-487c-977d-96989bf5c99d"),
              ("Audiohook-Session-Id", "30b0e395-84d3-4570-ac13-9a62d8f514c0"),
              ("X-API-KEY", SIGNED_KEY)]
# The documented example, whose signature signature.rs's unit test checks: this code must
# give it too.
doc_sig = audiohook_signature("/api/v1/voicebiometrics/ws", ah_headers, SIGNED_KEY, SECRET,
                              "VGhpc0lzQVVuaXF1ZU5vbmNl", 1641013200, 3282026430)
assert doc_sig[1][1] == "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:", doc_sig
put("ws_upgrade", "audiohook_documented",
    upgrade(0, "/api/v1/voicebiometrics/ws", ah_headers + doc_sig))
# Signed here, on callmood's path, created NOW and expiring 10 s later.
put("ws_upgrade", "audiohook_signed",
    upgrade(0, "/audiohook/c-42", ah_headers + audiohook_signature(
        "/audiohook/c-42", ah_headers, SIGNED_KEY, SECRET, "MDEyMzQ1Njc4OWFiY2RlZmdoaWo",
        NOW, NOW + 10)))
put("ws_upgrade", "audiohook_plain_key",
    upgrade(0, "/audiohook", [("Host", "callmood.example.com"), ("X-API-KEY", PLAIN_KEY)]))

def twilio_signature(token, url):
    return base64.b64encode(hmac.new(token.encode(), url.encode(), hashlib.sha1).digest()).decode()

# Signed for wss:// and the Host (second token); and, behind a proxy that rewrites Host,
# for the public URL (choice 1: wss://callmood.example.com), signed with :443.
put("ws_upgrade", "twilio_signed",
    upgrade(0, "/twilio/CA42", [("Host", "callmood.example.com"), ("X-Twilio-Signature",
        twilio_signature("f00dfeedf00dfeedf00dfeedf00dfeed",
                         "wss://callmood.example.com/twilio/CA42"))]))
assert twilio_signature("12345", "wss://callmood.example.com/twilio") == \
    "pM+Fyl76CH3HI37VUDSe34y6R+k="  # twilio_signature.rs's unit test
put("ws_upgrade", "twilio_signed_public_url",
    upgrade(1, "/twilio", [("Host", "127.0.0.1:8080"), ("X-Twilio-Signature",
        twilio_signature("12345", "wss://callmood.example.com:443/twilio"))]))
put("ws_upgrade", "fork_basic",
    upgrade(0, "/fork?events=1", [("Host", "callmood.example.com"), ("Authorization",
        "Basic " + base64.b64encode(b"jambonz:s3cret:with:colons").decode())]))
# Malformed: a Signature-Input that is no dictionary, a Signature that is no byte
# sequence, a Twilio signature that is not base64, Basic credentials that are not base64
# under a lower-case scheme, and a second X-API-KEY.
put("ws_upgrade", "malformed_signature",
    upgrade(0, "/audiohook", [("Host", "audiohook.example.com"), ("X-API-KEY", SIGNED_KEY),
        ("Signature-Input", 'sig1=("@request-target" "@authority";keyid=1'),
        ("Signature", "sig1=NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=")]))
put("ws_upgrade", "malformed_twilio_basic",
    upgrade(2, "/twilio?x=%41&y", [("Host", "CallMood.example.com:443"),
        ("X-Twilio-Signature", "not base64!"), ("authorization", "basic ??=="),
        ("X-API-KEY", PLAIN_KEY), ("X-API-KEY", "another")]))
