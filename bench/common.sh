# Sourced by the bench scripts after they set $work (a folder of their
# own): the process groups they start (`pids+=($!)` after a `setsid ... &`)
# are stopped and $work removed when the script ends, however it ends.
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
