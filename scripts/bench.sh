#!/usr/bin/env bash
# Runs every benchmark and regenerates the README's figures table (between
# `<!-- figures:begin -->` and `<!-- figures:end -->`) from this run alone, with the machine's
# load average before each benchmark and its core count.
#
#   bash scripts/bench.sh            # every benchmark, criterion's defaults
#   bash scripts/bench.sh --quick    # 10 samples, 3 s each: a rough table in a few minutes
#
# The benchmarks that need a server (workers: PostgreSQL; store_job_samba, ad_fulfill and
# ad_onboarding: Samba) use the test servers' env files when those servers run
# (`bash scripts/pg-test-server.sh start`, `bash scripts/ad-test-server.sh start`); without
# them they print SKIPPED and their rows say "not measured". Set AUTOPROV_BENCH_1M=1 for the
# million-identity planning rows.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
out="$target/bench-figures"
mkdir -p "$out"
: > "$out/loads"
quick=()
if [[ ${1:-} == --quick ]]; then
    quick=(--sample-size 10 --measurement-time 3 --warm-up-time 1)
fi
for s in ad pg; do
    env_file="/var/tmp/autoprov-$s/env"
    if [[ -f $env_file ]]; then
        # shellcheck disable=SC1090
        source "$env_file"
    fi
done
export AUTOPROV_BENCH_JOINERS=${AUTOPROV_BENCH_JOINERS:-50}
# The onboarding ways each start on the pristine domain (`ad-test-server.sh reset`, about a
# second): the tombstones a way leaves make Samba slower for the ways after it.
export AUTOPROV_BENCH_ONBOARD_RESET=${AUTOPROV_BENCH_ONBOARD_RESET:-1}

run() {
    local name=$1
    shift
    echo "$name|$(cut -d' ' -f1-3 /proc/loadavg)|$(nproc)|$(date +%s)" >> "$out/loads"
    echo "== $name: cargo bench $*"
    # A failing benchmark leaves its rows "not measured"; the others still run.
    cargo bench "$@" 2>&1 | tee "$out/$name.log" || true
}

run dispatch --bench dispatch -- "${quick[@]}"
run job --bench job -- "${quick[@]}"
run planning --bench planning -- "${quick[@]}"
run store --bench store -- "${quick[@]}"
if [[ ${#quick[@]} -gt 0 ]]; then
    run workers --bench workers -- "${quick[@]}"
else
    run workers --bench workers -- --measurement-time 5
fi
run ad_fulfill --features ad --bench ad_fulfill -- "${quick[@]}"
# The planner at 100,000 and 1,000,000 identities (`plan_synthetic`, system allocator): the
# median of PLAN_REPEAT full plans, the load and the peak memory (`time -v`, in KiB), printed
# as FIGURE lines for figures.py.
plan_synthetic() {
    echo "plan_synthetic|$(cut -d' ' -f1-3 /proc/loadavg)|$(nproc)|$(date +%s)" >> "$out/loads"
    echo "== plan_synthetic"
    cargo build --release -p autoprov-planner --features demo --example plan_synthetic
    local bin="$target/release/examples/plan_synthetic" log="$out/plan_synthetic.log"
    : > "$log"
    for n in 100000 1000000; do
        local repeat=5
        [[ $n == 1000000 ]] && repeat=3
        local line rss
        line=$(PLAN_REPEAT=$repeat /usr/bin/time -v "$bin" "$n" 2> "$out/plan_synthetic.$n.time") || {
            echo "plan_synthetic $n failed" | tee -a "$log"
            continue
        }
        rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/plan_synthetic.$n.time")
        echo "$line" | tee -a "$log"
        field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
        local incremental
        incremental=$(echo "$line" | sed -n 's/.*incremental: first=[^ ]* median=\([^ ]*\).*/\1/p')
        local figure="full plan **$(field median)** (median of $repeat; best $(field best)), peak memory **$((rss / 1024)) MiB** ($rss KiB), load $(field load) (planner's upserts $(field load_planner)), incremental median $incremental, $(field threads) threads"
        # The same organization streamed by reference (`PLAN_LOAD=ref`: one owner and one
        # resource refilled in place, `upsert_owner_ref` / `upsert_target`).
        if line=$(PLAN_LOAD=ref PLAN_REPEAT=$repeat /usr/bin/time -v "$bin" "$n" 2> "$out/plan_synthetic.$n.ref.time"); then
            rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/plan_synthetic.$n.ref.time")
            echo "$line" | tee -a "$log"
            figure="$figure; streamed by reference: load **$(field load)** (planner's calls $(field load_planner)), full plan $(field median), peak $((rss / 1024)) MiB"
        else
            echo "plan_synthetic $n (PLAN_LOAD=ref) failed" | tee -a "$log"
        fi
        echo "FIGURE plan_synthetic_$n: $figure" | tee -a "$log"
    done
}
plan_synthetic
# One run of its own (not criterion): 2,000 joiners, 500 movers, 200 leavers per way, ldap3
# swept over 1-32 connections; --quick: 300, 75, 30 and 1, 4, 16 connections.
if [[ ${#quick[@]} -gt 0 ]]; then
    AUTOPROV_BENCH_ONBOARD_JOINERS=${AUTOPROV_BENCH_ONBOARD_JOINERS:-300} \
        AUTOPROV_BENCH_ONBOARD_MOVERS=${AUTOPROV_BENCH_ONBOARD_MOVERS:-75} \
        AUTOPROV_BENCH_ONBOARD_LEAVERS=${AUTOPROV_BENCH_ONBOARD_LEAVERS:-30} \
        AUTOPROV_BENCH_ONBOARD_SWEEP=${AUTOPROV_BENCH_ONBOARD_SWEEP:-1,4,16} \
        run ad_onboarding --features ad --bench ad_onboarding
else
    run ad_onboarding --features ad --bench ad_onboarding
fi
how="bash scripts/bench.sh"
if [[ ${#quick[@]} -gt 0 ]]; then
    how="bash scripts/bench.sh --quick"
fi
python3 scripts/figures.py "$target/criterion" "$out" README.md "$how"
