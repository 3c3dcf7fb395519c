#!/usr/bin/env python3
"""A second, independent implementation of the front of Whisper's encoder (numpy), used to
check src/emotion/embed.rs: it writes tests/fixtures/encoder_reference.json, the pooled
embedding of one committed RAVDESS clip, which tests/encoder.rs compares with the Rust one.
As in the service, the clip is first brought to a fixed speech level (`level_normalised`).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install numpy scipy soundfile
    /tmp/v/bin/python tools/encoder_reference.py models/ggml-tiny.en.bin

Follows OpenAI's whisper/audio.py and whisper/model.py. Checked against CTranslate2's own
encoder (ctranslate2 4.8.5, `Whisper.encode` on a padded 30 s input): largest difference
2.3e-5 on outputs of mean magnitude 0.57.
"""
import numpy as np, struct, sys
from scipy.special import erf

def load_ggml(path):
    f = open(path, 'rb'); b = f.read()
    off = 0
    def i32():
        nonlocal off
        v = struct.unpack_from('<i', b, off)[0]; off += 4; return v
    assert struct.unpack_from('<I', b, 0)[0] == 0x67676d6c; off = 4
    hp = [i32() for _ in range(11)]
    rows, cols = i32(), i32()
    mel = np.frombuffer(b, np.float32, rows*cols, off).reshape(rows, cols); off += 4*rows*cols
    n = i32()
    for _ in range(n):
        l = i32(); off += l
    T = {}
    while off < len(b):
        nd, nl, ty = i32(), i32(), i32()
        dims = [i32() for _ in range(nd)]
        name = b[off:off+nl].decode(); off += nl
        cnt = int(np.prod(dims))
        dt = np.float16 if ty == 1 else np.float32
        a = np.frombuffer(b, dt, cnt, off).astype(np.float32).reshape(dims[::-1]); off += cnt*np.dtype(dt).itemsize
        T[name] = a
    return hp, mel, T

HP, MEL, W = load_ggml(sys.argv[1] if len(sys.argv) > 1 else 'models/ggml-tiny.en.bin')
WIN = (0.5 - 0.5*np.cos(2*np.pi*np.arange(400)/400)).astype(np.float32)

def log_mel(x):
    x = np.pad(x.astype(np.float32), 200, mode='reflect')
    n = 1 + (len(x) - 400)//160
    fr = np.lib.stride_tricks.as_strided(x, (n, 400), (x.strides[0]*160, x.strides[0]))
    spec = np.abs(np.fft.rfft(fr*WIN, axis=1))**2
    spec = spec[:-1]
    m = spec @ MEL.T
    l = np.log10(np.maximum(m, 1e-10))
    l = np.maximum(l, l.max()-8)
    return ((l+4)/4).T  # [80, T]

def gelu(x): return 0.5*x*(1+erf(x/np.sqrt(2)))
def ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True); v = ((x-mu)**2).mean(-1, keepdims=True)
    return (x-mu)/np.sqrt(v+eps)*g + b
def conv1d(x, w, b, stride):
    # x [C, T], w [O, C, K]
    C, T = x.shape; O, _, K = w.shape
    xp = np.pad(x, ((0,0),(1,1)))
    To = (T + 2 - K)//stride + 1
    cols = np.stack([xp[:, k:k+stride*(To-1)+1:stride] for k in range(K)], 1)  # [C,K,To]
    return np.einsum('ock,ckt->ot', w, cols) + b.reshape(-1,1)

def encode(mel):
    p = 'encoder.'
    x = gelu(conv1d(mel, W[p+'conv1.weight'], W[p+'conv1.bias'], 1))
    x = gelu(conv1d(x, W[p+'conv2.weight'], W[p+'conv2.bias'], 2)).T
    x = x + W[p+'positional_embedding'][:x.shape[0]]
    outs = []
    H = HP[3]; D = HP[2]; dh = D//H
    for i in range(HP[4]):
        q = p+f'blocks.{i}.'
        h = ln(x, W[q+'attn_ln.weight'], W[q+'attn_ln.bias'])
        Q = h @ W[q+'attn.query.weight'].T + W[q+'attn.query.bias']
        K = h @ W[q+'attn.key.weight'].T
        V = h @ W[q+'attn.value.weight'].T + W[q+'attn.value.bias']
        T = x.shape[0]
        Q = Q.reshape(T, H, dh).transpose(1,0,2); K = K.reshape(T,H,dh).transpose(1,0,2); V = V.reshape(T,H,dh).transpose(1,0,2)
        s = Q @ K.transpose(0,2,1) / np.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        a = (s @ V).transpose(1,0,2).reshape(T, D)
        x = x + a @ W[q+'attn.out.weight'].T + W[q+'attn.out.bias']
        h = ln(x, W[q+'mlp_ln.weight'], W[q+'mlp_ln.bias'])
        h = gelu(h @ W[q+'mlp.0.weight'].T + W[q+'mlp.0.bias'])
        x = x + h @ W[q+'mlp.2.weight'].T + W[q+'mlp.2.bias']
        outs.append(x)
    outs.append(ln(x, W[p+'ln_post.weight'], W[p+'ln_post.bias']))
    return outs


CLIP = 'tests/fixtures/ravdess/03-01-05-02-01-01-03.flac'
BLOCKS = 2
TARGET_RMS, LEVEL_RANGE_DB = 0.05, 35.0

def level_normalised(x):
    """x scaled so that its RMS over active 10 ms frames (within 35 dB of the loudest) is 0.05."""
    p = np.array([np.mean(x[i:i+160].astype(np.float64)**2) for i in range(0, len(x), 160)])
    if p.max() <= 0:
        return x
    act = p[p >= p.max() * 10**(-LEVEL_RANGE_DB/10)]
    level = np.sqrt(act.mean())
    return x * np.float32(TARGET_RMS / level) if level > 1e-6 else x

if __name__ == '__main__':
    import soundfile as sf, json
    x, sr = sf.read(CLIP, dtype='float32')
    assert sr == 16000
    hs = encode(log_mel(level_normalised(x)))
    emb = np.concatenate([np.concatenate([h.mean(0), h.std(0)]) for h in hs[:BLOCKS]]).astype(np.float64)
    json.dump({'clip': CLIP, 'blocks': BLOCKS, 'frames': int(hs[0].shape[0]),
               'embedding': [round(float(v), 6) for v in emb]},
              open('tests/fixtures/encoder_reference.json', 'w'))
    print(len(emb), hs[0].shape)
