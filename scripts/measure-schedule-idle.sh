#!/usr/bin/env bash
# Idle cost of `runner schedule`: CPU share and memory of a scheduler with three
# entries that do not fire during the measurement. Linux only (reads /proc).
#   scripts/measure-schedule-idle.sh [RUNNER_BINARY] [SECONDS]
# Default binary target/release/runner, default 60 s. Prints CPU %, RSS and peak RSS,
# then stops the scheduler with SIGTERM and checks that it exits 143.
set -euo pipefail
bin="${1:-target/release/runner}"
seconds="${2:-60}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
printf 'name: quiet\nsteps:\n  - type: emit\n    text: hi\n' >"$dir/quiet.yaml"
printf 'kind: schedule\nentries:\n  - {id: nightly, workflow: quiet.yaml, cron: "0 3 * * *"}\n  - {id: weekly, workflow: quiet.yaml, cron: "0 6 * * MON", time_zone: Europe/Berlin}\n  - {id: yearly, workflow: quiet.yaml, cron: "@yearly"}\n' >"$dir/schedule.yaml"
RUNNER_STATE_DIR="$dir/state" "$bin" schedule "$dir/schedule.yaml" 2>"$dir/log" &
pid=$!
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
start="$(ticks)"
sleep "$seconds"
end="$(ticks)"
rss="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")"
kill -TERM "$pid"
set +e
wait "$pid"
code=$?
set -e
awk -v t="$((end - start))" -v hz="$hz" -v s="$seconds" -v rss="$rss" -v hwm="$hwm" -v code="$code" 'BEGIN {
  printf "runner schedule idle over %d s: CPU %.3f%% (%d ticks at %d Hz), RSS %.1f MB, peak RSS %.1f MB, exit after SIGTERM %d\n",
    s, 100 * t / hz / s, t, hz, rss / 1024, hwm / 1024, code }'
