#!/usr/bin/env bash
# Builds the freestanding proof (no std, no alloc, no libc: its own _start,
# static, linked with -nostdlib) and runs it. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export CARGO_TARGET_DIR="$here/target"
# The link flags go to this crate only (not to build scripts), see RECIPES.md.
cargo rustc --release --quiet -- \
    -C link-arg=-nostartfiles -C link-arg=-nostdlib -C link-arg=-static -C relocation-model=static
bin="$CARGO_TARGET_DIR/release/carma-freestanding"
if command -v nm >/dev/null 2>&1 && [ -n "$(nm -u "$bin")" ]; then
    echo "freestanding: undefined symbols (needs a runtime):" >&2
    nm -u "$bin" >&2
    exit 1
fi
set +e
"$bin"
code=$?
set -e
if [ "$code" -ne 0 ]; then
    echo "freestanding: FAILED with exit code $code (see src/main.rs for the codes)" >&2
fi
exit "$code"
