#!/usr/bin/env bash
# Instructions per W1 call and per W4 actor of the ray and tokio columns, by
# callgrind, for each commit given (default: HEAD): the full size minus the
# --tiny size, divided by the difference in calls (199,800) or actors (9,990).
# User-space instructions only, so the figures do not move with machine noise.
#
#   bench/scripts/icount.sh 63030f8 HEAD
#
# Each commit is built in a temporary worktree (with this checkout's
# bench/src/main.rs, which has --cols) into its own target dir.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${ICOUNT_DIR:-/tmp/ray-icount}"
mkdir -p "$work"
[ $# -gt 0 ] || set -- HEAD
total() {
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>&1
  callgrind_annotate "$work/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
for c in "$@"; do
  wt="$work/wt"
  git -C "$repo" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
  git -C "$repo" worktree add -q "$wt" "$c"
  cp "$repo/bench/src/main.rs" "$wt/bench/src/main.rs"
  (cd "$wt" && CARGO_TARGET_DIR="$work/target" cargo build -q -p ray-bench --release)
  bin="$work/target/release/ray-bench"
  for col in ray tokio; do
    w1=$(( ($(total "$bin" --only W1 --rounds 1 --cols $col) - $(total "$bin" --only W1 --tiny --cols $col)) / 199800 ))
    w4=$(( ($(total "$bin" --only W4 --rounds 1 --cols $col) - $(total "$bin" --only W4 --tiny --cols $col)) / 9990 ))
    echo "$c $col: W1 $w1 instructions/call, W4 $w4 instructions/actor"
  done
  git -C "$repo" worktree remove --force "$wt"
done
