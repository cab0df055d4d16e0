#!/usr/bin/env bash
# Measures `runner validate`, every file checked (`--no-cache`) and with the result
# cache filled: on the shipped files (hyperfine when installed, else a loop), and at scale on N copies of workflows/worker-preflight.yaml (42 KB each, all
# referring to one lanes.yaml) for time and peak memory (GNU time's max RSS).
# Usage: scripts/bench-validate.sh [RUNNER] [N]   (defaults: target/release/runner, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
runner="${1:-target/release/runner}"
copies="${2:-1000}"
[ -x "$runner" ] || { echo "no $runner; build it first (cargo build --release)" >&2; exit 66; }

# The result cache goes to a folder of this script's own (removed at the end).
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export RUNNER_CACHE_DIR="$dir/cache"

for args in "--no-cache" ""; do
    echo "== runner validate $args on the shipped files ($runner)"
    if command -v hyperfine >/dev/null; then
        hyperfine --warmup 5 --runs 50 -N "$runner validate $args"
    else
        for _ in $(seq 5); do "$runner" validate $args >/dev/null; done
        start=$(date +%s%N)
        for _ in $(seq 50); do "$runner" validate $args >/dev/null; done
        echo "mean: $(( ($(date +%s%N) - start) / 50000 )) µs over 50 runs"
    fi
done

mkdir -p "$dir/workflows"
cp -r cron-prompts "$dir/"
cp workflows/lanes.yaml "$dir/workflows/"
for i in $(seq -w "$copies"); do cp workflows/worker-preflight.yaml "$dir/workflows/wp-$i.yaml"; done
echo "== $copies preflight-sized files ($(du -sh "$dir/workflows" | cut -f1)), time and peak RSS"
# Every file checked; then the run that fills the cache; then one that finds it all.
for args in "--no-cache" "" ""; do
    echo "-- runner validate $args"
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KiB" "$runner" validate $args "$dir/workflows" | tail -1
    else
        time "$runner" validate $args "$dir/workflows" | tail -1
    fi
done
