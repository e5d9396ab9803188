#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a fresh sandbox with both specs.
#
#   crates/docsync-sandbox/scripts/conformance.sh [max-seconds-per-spec]
#
# Needs `schemathesis` on PATH (pip install schemathesis). Excluded checks, and why:
# - positive_data_acceptance: the specs cannot express content rules (magic bytes,
#   limits, duplicates), so schema-valid bodies are legitimately answered 400/409/422;
# - use_after_free: deleteImage disables, and a disabled image stays readable (documented);
# - ignored_auth on the attachments spec: uploadToSignedUrl is authorised by its token;
# - negative_data_rejection on the multipart operations only (see below).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
budget="${1:-60}"
data="$(mktemp -d)"
log="$data/sandbox.out"
cargo build -q -p docsync-sandbox --manifest-path "$root/Cargo.toml"
"$root/target/debug/docsync-sandbox" --addr 127.0.0.1:0 --data "$data/db" \
    --public-key pk_ci --secret-key sk_ci --api-key ak_ci --decision-delay 0.2 >"$log" 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 50); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/.*listening on //p' "$log" | head -n1)"
status=0
multipart='^(uploadFile|uploadImage|updateImage)$'
schemathesis run "$root/openapi/moov.yaml" -u "$url" -a pk_ci:sk_ci --max-time "$budget" \
    --exclude-operation-id-regex "$multipart" \
    --checks all --exclude-checks positive_data_acceptance,use_after_free || status=1
# Multipart operations: schemathesis sends an array-typed part with no items as no
# part at all, which a server cannot tell from the optional part being omitted, so
# negative_data_rejection reports a false positive there.
schemathesis run "$root/openapi/moov.yaml" -u "$url" -a pk_ci:sk_ci --max-time "$budget" \
    --include-operation-id-regex "$multipart" \
    --checks all --exclude-checks positive_data_acceptance,use_after_free,negative_data_rejection || status=1
schemathesis run "$root/openapi/attachments.yaml" -u "$url" -H "api-key: ak_ci" --max-time "$budget" \
    --checks all --exclude-checks positive_data_acceptance,ignored_auth || status=1
exit "$status"
