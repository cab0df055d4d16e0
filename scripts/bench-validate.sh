#!/usr/bin/env bash
# Measures `runner validate`: on the shipped files (hyperfine when installed, else a
# loop), and at scale on N copies of workflows/worker-preflight.yaml (42 KB each, all
# referring to one lanes.yaml) for time and peak memory (GNU time's max RSS).
# Usage: scripts/bench-validate.sh [RUNNER] [N]   (defaults: target/release/runner, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
runner="${1:-target/release/runner}"
copies="${2:-1000}"
[ -x "$runner" ] || { echo "no $runner; build it first (cargo build --release)" >&2; exit 66; }

echo "== runner validate on the shipped files ($runner)"
if command -v hyperfine >/dev/null; then
    hyperfine --warmup 5 --runs 50 -N "$runner validate"
else
    start=$(date +%s%N)
    for _ in $(seq 50); do "$runner" validate >/dev/null; done
    echo "mean: $(( ($(date +%s%N) - start) / 50000 )) µs over 50 runs"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/workflows"
cp -r cron-prompts "$dir/"
cp workflows/lanes.yaml "$dir/workflows/"
for i in $(seq -w "$copies"); do cp workflows/worker-preflight.yaml "$dir/workflows/wp-$i.yaml"; done
echo "== $copies preflight-sized files ($(du -sh "$dir" | cut -f1)), time and peak RSS"
if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "wall %e s, user %U s, sys %S s, peak RSS %M KiB" "$runner" validate "$dir/workflows" | tail -1
else
    time "$runner" validate "$dir/workflows" | tail -1
fi
