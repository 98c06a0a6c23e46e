#!/usr/bin/env bash
# Runs cargo-mutants on the connector guide's example package (crates/example-package) with
# the conformance kit as its only test (crates/example-package/tests/kit.rs), and prints how
# many of the viable mutants the kit catches. Not part of the test command: it builds and
# tests every mutant one after the other (about 80 mutants; 30 to 60 minutes on these 2-core
# machines).
#
#   bash scripts/mutants.sh            # run, then print the summary
#   bash scripts/mutants.sh --summary  # only print the summary of the last run
#
# A mutant that times out counts as caught (the kit did not let it pass); an unviable one (it
# does not compile) is left out of the rate. The missed ones are listed: they go into the
# "Mutants" section of crates/connector/README.md, never deleted to make the figure. Exits 1
# when the kit catches less than 95 % of the viable mutants.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${MUTANTS_OUT:-target/mutants}
if [ "${1:-}" != "--summary" ]; then
    if ! command -v cargo-mutants >/dev/null 2>&1; then
        cargo install --locked cargo-mutants@27.1.0
    fi
    mkdir -p "$out"
    # cargo-mutants exits 2 when some mutants are missed and 3 when some time out: the
    # summary below judges those; anything else (a failing baseline) stops here.
    rc=0
    cargo mutants -p autoprov-example-package --test-package autoprov-example-package \
        -j 1 --output "$out" || rc=$?
    case $rc in 0 | 2 | 3) ;; *) echo "mutants: cargo-mutants exited $rc" >&2; exit "$rc" ;; esac
fi
dir="$out/mutants.out"
[ -d "$dir" ] || { echo "mutants: no results in $dir; run without --summary" >&2; exit 1; }
count() { if [ -f "$dir/$1.txt" ]; then grep -c . "$dir/$1.txt" || true; else echo 0; fi; }
caught=$(count caught)
missed=$(count missed)
timeout=$(count timeout)
unviable=$(count unviable)
viable=$((caught + missed + timeout))
if [ "$viable" -eq 0 ]; then
    echo "mutants: no viable mutant was tested" >&2
    exit 1
fi
rate=$(python3 -c "print(f'{100 * ($caught + $timeout) / $viable:.1f}')")
echo "mutants: $viable viable ($caught caught, $timeout timed out, $missed missed; $unviable unviable)"
echo "FIGURE kit_mutants: the kit catches $((caught + timeout)) of $viable viable mutants of the guide's example package ($rate %)"
if [ "$missed" -gt 0 ]; then
    echo "missed:"
    sed 's/^/  /' "$dir/missed.txt"
fi
python3 -c "import sys; sys.exit(0 if ($caught + $timeout) * 100 >= 95 * $viable else 1)"
