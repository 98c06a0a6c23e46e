#!/usr/bin/env bash
# The guide's example package (crates/example-package/src) in at most 250 lines of code, as
# counted by tokei after rustfmt (issue 15). Fails when the code is not rustfmt-formatted or
# is over the limit. Needs tokei (`cargo install tokei@15.0.0 --locked`; scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=250
SRC=crates/example-package/src
rustfmt --edition 2024 --check "$SRC"/*.rs
TOKEI="$(command -v tokei || echo "$HOME/.cargo/bin/tokei")"
code=$("$TOKEI" --output json "$SRC" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Rust"]["code"])')
echo "example package: $code lines of code (tokei $("$TOKEI" --version | cut -d' ' -f2), limit $LIMIT)"
if [ "$code" -gt "$LIMIT" ]; then
    echo "the example package is over $LIMIT lines of code" >&2
    exit 1
fi
