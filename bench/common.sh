# Sourced by the bench scripts after they set $work (a folder of their
# own): the process groups they start (`pids+=($!)` after a `setsid ... &`)
# are stopped and $work removed when the script ends, however it ends;
# start_groups starts worker groups (with $bin, $workers, $clients set).
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
# start_groups N PREFIX: N worker groups of 1 rank (PREFIX1..N) on
# $workers, logs in $work; returns once the broker at $clients knows them all.
start_groups() {
  local n=$1 prefix=$2 g
  for g in $(seq "$n"); do
    setsid mpiexec -n 1 "$bin/imgq-worker" --broker "$workers" --name "$prefix$g" >"$work/group$g.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 300); do
    "$bin/imgq" ping --broker "$clients" --json 2>/dev/null | grep -q "\"groups\":$n" && return
    sleep 0.1
  done
  echo "the groups did not connect" >&2
  exit 1
}
