#!/usr/bin/env bash
# Bring up / tear down a throwaway one-node SLURM cluster on this machine,
# so tests can drive Hydra multiruns through hydra-submitit-launcher.
#
#   cluster.sh up      install (if needed) + start munged, slurmctld, slurmd;
#                      wait until the node is idle.         Idempotent.
#   cluster.sh down    stop exactly the daemons `up` started (PIDs in the
#                      state file) after cancelling our jobs. Idempotent.
#   cluster.sh status  print what is running; exit 0 iff the node is usable.
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 "cannot run here" (not root, no
# apt-get, install impossible, foreign slurm already running) -> tests skip.
#
# Environment knobs (all optional):
#   PINSWEEP_SLURM_STATE   state dir (PIDs, logs, spool)  [/run/pinsweep-slurm]
#   PINSWEEP_SLURM_WAIT    seconds to wait for node idle  [60]
#
# Note: slurm.conf is written to /etc/slurm/slurm.conf (where Debian's
# slurm 22.05 looks by default), so sbatch/srun/sinfo work without setting
# SLURM_CONF.  A slurm.conf we did not write is never overwritten.

set -u

STATE_DIR=${PINSWEEP_SLURM_STATE:-/run/pinsweep-slurm}
WAIT_S=${PINSWEEP_SLURM_WAIT:-60}
PIDS_FILE=$STATE_DIR/pids          # lines: "<name> <pid>"
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARKER="# managed-by: pinsweep tests/slurm/cluster.sh"
CLUSTER=pinsweep
PARTITION=debug
MUNGE_SOCKET=/run/munge/munge.socket.2

log() { echo "cluster.sh: $*" >&2; }
skip() { echo "slurm unavailable: $*"; exit 3; }
die() { echo "slurm error: $*"; exit 1; }

# ---------------------------------------------------------------- helpers
# pid_is <pid> <comm>: true iff process <pid> is alive and named <comm>
pid_is() {
    local pid=$1 name=$2 comm
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    # a zombie / exiting process does not count as alive
    local st
    st=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [[ $st != Z && $st != X ]]
}

recorded_pid() {  # recorded_pid <name>
    [[ -f $PIDS_FILE ]] || return 0
    awk -v n="$1" '$1 == n { print $2 }' "$PIDS_FILE" | tail -n1
}

record_pid() {  # record_pid <name> <pid>
    mkdir -p "$STATE_DIR"
    local tmp=$PIDS_FILE.tmp
    { [[ -f $PIDS_FILE ]] && awk -v n="$1" '$1 != n' "$PIDS_FILE"; echo "$1 $2"; } >"$tmp"
    mv "$tmp" "$PIDS_FILE"
}

forget_pid() {
    [[ -f $PIDS_FILE ]] || return 0
    local tmp=$PIDS_FILE.tmp
    awk -v n="$1" '$1 != n' "$PIDS_FILE" >"$tmp"
    mv "$tmp" "$PIDS_FILE"
}

ours_alive() {  # ours_alive <name>: recorded pid still alive with right comm
    pid_is "$(recorded_pid "$1")" "$1"
}

# pids of processes named <comm> (exact match), excluding nothing
pids_named() {
    local d
    for d in /proc/[0-9]*; do
        pid_is "${d#/proc/}" "$1" && echo "${d#/proc/}"
    done
}

# forget_dead <name>: our recorded daemon is gone (or dying): wait for it to
# vanish from /proc (a SIGKILLed process lingers briefly), then forget it.
forget_dead() {
    local pid i
    pid=$(recorded_pid "$1")
    if [[ -n $pid ]]; then
        for i in $(seq 1 50); do
            [[ -e /proc/$pid ]] || break
            sleep 0.1
        done
    fi
    forget_pid "$1"
}

stop_pid() {  # stop_pid <name> <pid> [grace_s=15]: TERM, wait, then KILL
    local name=$1 pid=$2 grace=${3:-15} i
    pid_is "$pid" "$name" || return 0
    kill -TERM "$pid" 2>/dev/null
    for (( i = 0; i < grace * 10; i++ )); do
        pid_is "$pid" "$name" || break
        sleep 0.1
    done
    if ! pid_is "$pid" "$name"; then
        # let it vanish from /proc (bounded) so a following start sees no trace
        for i in $(seq 1 30); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
        return 0
    fi
    log "$name ($pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    sleep 0.2
}

read_pidfile() { [[ -f $1 ]] && tr -dc '0-9' <"$1"; }

wait_pidfile() {  # wait_pidfile <file> <comm> <seconds>: echo pid once alive
    local f=$1 name=$2 n=$(( $3 * 10 )) i pid
    for (( i = 0; i < n; i++ )); do
        pid=$(read_pidfile "$f")
        if pid_is "$pid" "$name"; then echo "$pid"; return 0; fi
        sleep 0.1
    done
    return 1
}

node_name() { hostname -s; }

node_state() {  # prints e.g. "idle", "down*", "" if sinfo fails
    # sinfo retries for a long time when slurmctld is unreachable: bound it
    timeout 5 sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n1
}

# ---------------------------------------------------------------- install
ensure_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null && command -v sinfo >/dev/null; then
        return 0
    fi
    command -v apt-get >/dev/null || skip "apt-get not available to install slurm"
    # apt-get update only if the package index does not know slurm-wlm
    if ! apt-cache policy slurm-wlm 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        log "apt-get update"
        apt-get update -qq >"$STATE_DIR/apt-update.log" 2>&1 \
            || skip "apt-get update failed (see $STATE_DIR/apt-update.log)"
    fi
    log "apt-get install slurm-wlm munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge \
        >"$STATE_DIR/apt-install.log" 2>&1 \
        || skip "apt-get install slurm-wlm munge failed (see $STATE_DIR/apt-install.log)"
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null || skip "slurm binaries missing after install"
}

# ---------------------------------------------------------------- munge
munge_works() {
    command -v munge >/dev/null && munge -n -S "$MUNGE_SOCKET" 2>/dev/null \
        | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1
}

start_munge() {
    if munge_works; then
        ours_alive munged || log "using already-running munged (not ours; will not stop it)"
        return 0
    fi
    forget_dead munged
    id munge >/dev/null 2>&1 || die "no 'munge' user (munge package broken?)"
    install -d -o munge -g munge -m 0700 /etc/munge
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    install -d -o munge -g munge -m 0700 /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key \
                || die "mungekey failed"
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0600 /etc/munge/munge.key
    # a stale pid file / socket from a dead munged makes it refuse to start
    local old
    old=$(read_pidfile /run/munge/munged.pid)
    if ! pid_is "$old" munged; then rm -f /run/munge/munged.pid "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"; fi
    runuser -u munge -- /usr/sbin/munged >"$STATE_DIR/munged.start.log" 2>&1 \
        || die "munged failed to start: $(tail -n3 "$STATE_DIR/munged.start.log" /var/log/munge/munged.log 2>/dev/null)"
    local pid
    pid=$(wait_pidfile /run/munge/munged.pid munged 10) || die "munged did not write its pid file"
    record_pid munged "$pid"
    local i
    for i in $(seq 1 50); do munge_works && return 0; sleep 0.1; done
    die "munged running (pid $pid) but munge -n | unmunge fails"
}

# ---------------------------------------------------------------- config
write_conf() {
    local node cpus mem sockets cores threads hw
    node=$(node_name)
    [[ -n $node ]] || die "hostname -s is empty"
    # slurmd -C prints the hardware exactly as slurmd will detect it;
    # declaring more than that puts the node into INVAL/drain state.
    hw=$(slurmd -C 2>/dev/null | head -n1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw");          cpus=${cpus:-$(nproc)}
    sockets=$(sed -n 's/.*SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
    cores=$(sed -n 's/.*CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
    threads=$(sed -n 's/.*ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [[ -n $mem ]] || mem=$(awk '/MemTotal/ { print int($2/1024) }' /proc/meminfo)
    # leave a little slack: MemTotal may shrink slightly between boots
    mem=$(( mem * 95 / 100 ))
    local topo=""
    [[ -n $sockets && -n $cores && -n $threads ]] \
        && topo=" Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads"

    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        skip "$CONF exists and was not written by this script; refusing to overwrite"
    fi
    install -d -m 0755 "$CONF_DIR"
    install -d -o slurm -g slurm -m 0755 "$STATE_DIR" "$STATE_DIR/ctld" "$STATE_DIR/log"
    install -d -m 0755 "$STATE_DIR/d"
    local tmp=$CONF.tmp
    cat >"$tmp" <<EOF
$MARKER
# Throwaway single-node cluster for tests. Regenerated on every \`up\`.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
KillWait=5
MinJobAge=300
SlurmdTimeout=60
InactiveLimit=60
EnforcePartLimits=ALL
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus$topo RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ -f $CONF ]] && cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; else mv "$tmp" "$CONF"; fi
    chmod 0644 "$CONF"
}

# ---------------------------------------------------------------- slurm
start_slurmctld() {
    if ours_alive slurmctld; then return 0; fi
    forget_dead slurmctld
    local foreign
    foreign=$(pids_named slurmctld | head -n1)
    [[ -z $foreign ]] || skip "a slurmctld not started by this script is running (pid $foreign)"
    rm -f "$STATE_DIR/slurmctld.pid"
    # -c: start from a clean slate (no jobs/node states recovered from an
    # earlier, possibly crashed, run).
    /usr/sbin/slurmctld -c >"$STATE_DIR/slurmctld.start.log" 2>&1 \
        || die "slurmctld failed: $(tail -n5 "$STATE_DIR/slurmctld.start.log" "$STATE_DIR/log/slurmctld.log" 2>/dev/null)"
    local pid
    pid=$(wait_pidfile "$STATE_DIR/slurmctld.pid" slurmctld 15) \
        || die "slurmctld did not stay up: $(tail -n5 "$STATE_DIR/log/slurmctld.log" 2>/dev/null)"
    record_pid slurmctld "$pid"
}

start_slurmd() {
    if ours_alive slurmd; then return 0; fi
    forget_dead slurmd
    local foreign
    foreign=$(pids_named slurmd | head -n1)
    [[ -z $foreign ]] || skip "a slurmd not started by this script is running (pid $foreign)"
    rm -f "$STATE_DIR/slurmd.pid"
    /usr/sbin/slurmd >"$STATE_DIR/slurmd.start.log" 2>&1 \
        || die "slurmd failed: $(tail -n5 "$STATE_DIR/slurmd.start.log" "$STATE_DIR/log/slurmd.log" 2>/dev/null)"
    local pid
    pid=$(wait_pidfile "$STATE_DIR/slurmd.pid" slurmd 15) \
        || die "slurmd did not stay up: $(tail -n5 "$STATE_DIR/log/slurmd.log" 2>/dev/null)"
    record_pid slurmd "$pid"
}

wait_idle() {
    local node st="" i=0 deadline=$(( SECONDS + WAIT_S ))
    node=$(node_name)
    while (( SECONDS < deadline )); do
        ours_alive slurmctld || die "slurmctld exited; see $STATE_DIR/log/slurmctld.log"
        ours_alive slurmd || die "slurmd exited; see $STATE_DIR/log/slurmd.log"
        st=$(node_state)
        case $st in
            idle|mixed|allocated|completing)
                echo "slurm up: node $node $st (partition $PARTITION)"; return 0 ;;
            down*|drain*|inval*|fail*)
                # a node remembered as DOWN from an earlier run: resume it
                (( i % 6 == 2 )) && timeout 5 scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 ;;
        esac
        i=$(( i + 1 ))
        sleep 0.5
    done
    die "node $node not idle after ${WAIT_S}s (state '${st:-?}'); logs: $STATE_DIR/log/"
}

# ---------------------------------------------------------------- commands
cmd_up() {
    [[ $(id -u) -eq 0 ]] || skip "cluster.sh up must run as root (uid $(id -u))"
    command -v apt-get >/dev/null || command -v slurmctld >/dev/null \
        || skip "apt-get not available"
    mkdir -p "$STATE_DIR"
    ensure_packages
    start_munge
    local before
    before=$(cat "$CONF" 2>/dev/null)
    write_conf
    # config changed under running daemons of ours -> restart them
    if [[ -n $before && $before != "$(cat "$CONF")" ]]; then
        if ours_alive slurmd || ours_alive slurmctld; then
            log "slurm.conf changed; restarting slurmctld/slurmd"
            cancel_jobs
            stop_pid slurmd "$(recorded_pid slurmd)"; forget_pid slurmd
            stop_pid slurmctld "$(recorded_pid slurmctld)"; forget_pid slurmctld
        fi
    fi
    start_slurmctld   # each start_* is a no-op if our daemon is alive
    start_slurmd
    wait_idle
}

cancel_jobs() {
    # only talk to slurmctld if it is ours; cancel every job (cluster is ours)
    ours_alive slurmctld || return 0
    timeout 10 scancel --full --quiet --partition="$PARTITION" >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 30); do
        [[ -z $(timeout 5 squeue -h -o %i 2>/dev/null) ]] && break
        sleep 0.5
    done
}

# stepd_pids: slurmstepd processes of OUR slurmd, i.e. those holding a unix
# socket that lives in our SlurmdSpoolDir (<node>_<jobid>.<stepid>).
stepd_pids() {
    local inodes fd d
    inodes=$(awk -v dir="$STATE_DIR/d/" 'index($NF, dir) == 1 { print $7 }' /proc/net/unix 2>/dev/null)
    [[ -n $inodes ]] || return 0
    for d in /proc/[0-9]*; do
        pid_is "${d#/proc/}" slurmstepd || continue
        for fd in "$d"/fd/*; do
            local l; l=$(readlink "$fd" 2>/dev/null) || continue
            [[ $l == socket:\[*\] ]] || continue
            l=${l#socket:[}; l=${l%]}
            if grep -qx "$l" <<<"$inodes"; then echo "${d#/proc/}"; break; fi
        done
    done
}

descendants() {  # descendants <pid>: all transitive children of <pid>
    local d line rest pid ppid
    local -a pairs=() fields
    for d in /proc/[0-9]*; do
        line=$(cat "$d/stat" 2>/dev/null) || continue
        rest=${line##*) }            # drop "pid (comm) ": comm may hold spaces
        read -r -a fields <<<"$rest"
        pairs+=("${d#/proc/}:${fields[1]}")
    done
    local -a todo=("$1")
    while (( ${#todo[@]} )); do
        local parent=${todo[0]}; todo=("${todo[@]:1}")
        for line in "${pairs[@]}"; do
            pid=${line%%:*}; ppid=${line#*:}
            if [[ $ppid == "$parent" ]]; then echo "$pid"; todo+=("$pid"); fi
        done
    done
}

stop_stepds() {  # job steps that outlived scancel (e.g. slurmctld was dead)
    local pid kids k i
    for pid in $(stepd_pids); do
        log "stopping leftover slurmstepd ($pid) and its job processes"
        # slurmstepd ignores SIGTERM and, with proctrack/linuxproc, killing it
        # orphans the job: kill the job's process tree first.
        kids=$(descendants "$pid")
        [[ -n $kids ]] && kill -TERM $kids 2>/dev/null
        for i in $(seq 1 20); do
            kids=$(for k in $kids; do [[ -e /proc/$k ]] && echo "$k"; done)
            [[ -z $kids ]] && break
            sleep 0.1
        done
        [[ -n $kids ]] && kill -KILL $kids 2>/dev/null
        stop_pid slurmstepd "$pid" 1
    done
}

cmd_down() {
    [[ $(id -u) -eq 0 ]] || skip "cluster.sh down must run as root"
    if [[ ! -f $PIDS_FILE ]]; then
        echo "slurm down: nothing recorded in $PIDS_FILE"
        return 0
    fi
    cancel_jobs
    stop_stepds
    local name pid
    # SIGTERM to slurmd and slurmctld at once, and munged once both have exited (they may need it until
    # then), instead of one after the other, each gone from /proc first (about a second or two each);
    # stop_pid below waits for what is still running and sends SIGKILL where one ignored SIGTERM
    local i signalled=()
    for name in slurmd slurmctld; do
        pid=$(recorded_pid "$name")
        pid_is "$pid" "$name" && kill -TERM "$pid" 2>/dev/null && signalled+=("$name $pid")
    done
    for (( i = 0; i < 150; i++ )); do
        ours_alive slurmd || ours_alive slurmctld || break
        sleep 0.1
    done
    for name in "${signalled[@]}"; do
        pid_is "${name#* }" "${name% *}" || echo "stopped ${name% *} (${name#* })"
    done
    for name in slurmd slurmctld munged; do
        pid=$(recorded_pid "$name")
        [[ -n $pid ]] || continue
        if pid_is "$pid" "$name"; then
            stop_pid "$name" "$pid"
            pid_is "$pid" "$name" && die "could not stop $name ($pid)"
            echo "stopped $name ($pid)"
        fi
        forget_pid "$name"
    done
    rm -f "$PIDS_FILE"
    echo "slurm down"
}

cmd_status() {
    local rc=0 name pid
    for name in munged slurmctld slurmd; do
        pid=$(recorded_pid "$name")
        if pid_is "$pid" "$name"; then echo "$name: running (pid $pid, ours)"
        elif [[ -n $(pids_named "$name") ]]; then echo "$name: running (pid $(pids_named "$name" | head -n1), NOT ours)"
        else echo "$name: not running"; rc=1
        fi
    done
    # with a daemon down the node is not usable, and sinfo would retry an absent slurmctld for 5 s
    if (( rc == 0 )) && command -v sinfo >/dev/null; then
        local st; st=$(node_state)
        echo "node $(node_name): ${st:-unknown}"
        [[ $st == idle || $st == mixed || $st == allocated ]] || rc=1
    fi
    return $rc
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
