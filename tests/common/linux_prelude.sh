# The shell functions every real-Linux session script starts with (tests/common/linux.rs
# puts them after the session's variables: MICROVM, GUEST, WORK, RUN, GUEST_TIMEOUT).
stage() { [ "$RUN" = "$WORK" ] || cp "$WORK/$1" "$RUN/$1"; }
unstage() { [ "$RUN" = "$WORK" ] || cp "$RUN/$1" "$WORK/$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# Steps (Session::step): a re-run of the session after the nested host died skips the steps
# that finished, printing the output they left in $WORK/.steps instead.
mkdir -p "$WORK/.steps"
step_begin() {
  [ -f "$WORK/.steps/$1.out" ] || return 0
  cat "$WORK/.steps/$1.out"
  return 1
}
step_end() {
  mv "$WORK/.steps/$1.part" "$WORK/.steps/$1.out" && cat "$WORK/.steps/$1.out"
}
# Network helpers run in the background for the next boot only: they never write to the
# script's output (an orphan must not hold it open), get 5 s after that boot ends, are then
# killed, and the main shell reports what they got. `listen` and `send_to_guest` only note
# them; `arm` starts them before each run of the boot, `disarm` stops them, so a boot that
# is run again gets fresh ones (each serves a single connection).
BG=""; REPORTS=""; HELPERS=""
# listen NAME PORT: receive one TCP stream on the host side; reported as
# "HOST NAME port=PORT bytes=N sha=S".
listen() {
  HELPERS="$HELPERS start_listen:$2"
  REPORTS="$REPORTS rx:$1:$2"
}
# busybox nc ends the connection when its stdin ends, so its stdin is a FIFO held open
# meanwhile.
start_listen() {
  rm -f "$RUN/hold$1" "$RUN/rx$1"; mkfifo "$RUN/hold$1"
  sleep "$GUEST_TIMEOUT" > "$RUN/hold$1" 2>/dev/null &
  BG="$BG $!"
  nc -l -p "$1" < "$RUN/hold$1" > "$RUN/rx$1" 2>/dev/null &
  BG="$BG $!"
}
# send_to_guest FILE PORT: send FILE to 10.0.2.2:PORT once the guest listens; reported as
# "HOST sent port=PORT" or "HOST send-failed port=PORT".
send_to_guest() {
  cp "$1" "$RUN/tosend$2"
  HELPERS="$HELPERS start_send:$2"
  REPORTS="$REPORTS tx:sent:$2"
}
start_send() {
  rm -f "$RUN/sent$1"
  ( while :; do nc 10.0.2.2 "$1" < "$RUN/tosend$1" && { echo ok > "$RUN/sent$1"; exit 0; }; sleep 0.5; done ) >/dev/null 2>&1 &
  BG="$BG $!"
}
arm() {
  for h in $HELPERS; do "${h%%:*}" "${h#*:}"; done
}
disarm() {
  for p in $BG; do kill "$p" 2>/dev/null; done
  for p in $BG; do wait "$p" 2>/dev/null; done
  BG=""
}
settle() {
  i=0
  while [ $i -lt 50 ]; do
    alive=""
    for p in $BG; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1; i=$((i + 1))
  done
  disarm
  for r in $REPORTS; do
    kind=${r%%:*}; rest=${r#*:}; name=${rest%%:*}; port=${rest#*:}
    if [ "$kind" = rx ]; then
      echo "HOST $name port=$port bytes=$(wc -c < "$RUN/rx$port") sha=$(sha "$RUN/rx$port")"
    elif [ -f "$RUN/sent$port" ]; then
      echo "HOST sent port=$port"
    else
      echo "HOST send-failed port=$port"
    fi
  done
  REPORTS=""; HELPERS=""
}
# boot NAME MICROVM-ARGS...: one microvm run, reported as @@ lines. A run that ends in a
# guest triple fault (exit 3, KVM_EXIT_SHUTDOWN), or is stopped at GUEST_TIMEOUT while every
# vCPU thread was inside KVM_RUN (a guest hang, with or without an RCU stall report), is run
# again, at most MAX_RETRIES times; each discarded run is reported as
# "@@RETRY NAME why=.. rc=.. secs=.." plus its last console lines: under the nested host's
# emulated SVM a stock guest kernel now and then does either at random points, even before
# it loads any virtio driver (docs/linux-guests.md, "Flaky nested host"). A hang with a
# vCPU thread anywhere else (microvm's own code) is not retried.
MAX_RETRIES=3
# in_kvm_run THREADS-FILE: the watchdog fired, and then every vCPU thread was running or in
# ioctl(KVM_RUN) (system call 16, request 0xae80). The state letter and the system call are
# read one after the other, so a vCPU that a halted guest CPU wakes in between shows as
# "S [running] kvm_vcpu_block": "[running]" counts whatever the letter before it.
in_kvm_run() {
  [ -s "$1" ] && grep -q '^  vcpu' "$1" || return 1
  ! grep '^  vcpu' "$1" | grep -qv ' [A-Z] \[running\]\| \[16 0x[0-9a-f]* 0xae80 '
}
# watchdog PID: stops microvm PID after GUEST_TIMEOUT seconds, first printing what each of
# its threads is doing (state, current system call, kernel wait channel, and the user and
# system CPU ticks it used in the last second: a vCPU spinning in microvm's own code shows
# user ticks, one looping inside KVM system ticks), so a hung guest shows whether a vCPU
# thread was in KVM_RUN or stuck in microvm. SIGTERM first (exit 143;
# every vCPU then logs where it stopped in the guest: halted or running, RIP, interrupts),
# SIGKILL 5 s later if it is still there (exit 137). Ends by itself within a second of PID
# ending.
# ticks_since "TID UTIME STIME" "UTIME STIME": "user=N sys=M", the ticks between the two.
ticks_since() {
  set -- $1 $2
  [ "$#" = 5 ] && echo "user=$(($4 - $2)) sys=$(($5 - $3))"
}
watchdog() {
  i=0
  while [ "$i" -lt "$GUEST_TIMEOUT" ]; do
    sleep 1
    kill -0 "$1" 2>/dev/null || return 0
    i=$((i + 1))
  done
  for t in /proc/"$1"/task/*; do
    echo "${t##*/} $(cut -d' ' -f14,15 "$t/stat" 2>/dev/null)"
  done > "$RUN/watchdog.cpu"
  sleep 1
  echo "killed after ${GUEST_TIMEOUT}s; its threads (name, state, syscall, wchan, CPU ticks in the last second):"
  for t in /proc/"$1"/task/*; do
    ticks=$(ticks_since "$(grep "^${t##*/} " "$RUN/watchdog.cpu")" "$(cut -d' ' -f14,15 "$t/stat" 2>/dev/null)")
    echo "  $(cat "$t/comm" 2>/dev/null) $(cut -d' ' -f3 "$t/stat" 2>/dev/null) [$(cat "$t/syscall" 2>/dev/null)] $(cat "$t/wchan" 2>/dev/null) $ticks"
  done
  kill -TERM "$1" 2>/dev/null
  i=0
  while [ "$i" -lt 5 ] && kill -0 "$1" 2>/dev/null; do sleep 1; i=$((i + 1)); done
  kill -KILL "$1" 2>/dev/null
}
boot() {
  name=$1; shift
  tries=0
  while :; do
    arm
    s=$(date +%s)
    "$MICROVM" "$@" > "$RUN/$name.out" 2> "$RUN/$name.err" < /dev/null &
    pid=$!
    watchdog "$pid" > "$RUN/$name.threads" 2>&1 &
    wait "$pid"
    rc=$?
    secs=$(( $(date +%s) - s ))
    why=""
    [ "$rc" = 3 ] && grep -q 'triple-faulted' "$RUN/$name.err" && why=triple-fault
    if in_kvm_run "$RUN/$name.threads"; then
      why=guest-hang
      grep -q 'rcu: INFO: rcu_.* detected stall' "$RUN/$name.out" && why=rcu-stall
    fi
    [ -n "$why" ] && [ "$tries" -lt "$MAX_RETRIES" ] || break
    disarm
    tries=$((tries + 1))
    echo "@@RETRY $name why=$why rc=$rc secs=$secs"
    sed "s/^/@@RETRYLOG $name /" "$RUN/$name.threads"
    tail -n 12 "$RUN/$name.out" | tr -d '\r' | sed "s/^/@@RETRYLOG $name /"
    sed "s/^/@@RETRYLOG $name /" "$RUN/$name.err"
  done
  echo "@@BOOT $name rc=$rc secs=$secs"
  sed "s/^/@@ERR $name /" "$RUN/$name.threads"
  tr -d '\r' < "$RUN/$name.out" | sed "s/^/@@OUT $name /"
  sed "s/^/@@ERR $name /" "$RUN/$name.err"
  settle
}
