#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine (Debian slurmctld + slurmd + munge, no systemd),
# for the integration test and for trying `snakemake --profile slurm` without a cluster.
#   bash slurm/cluster.sh start | stop | status | env | offline | online
# Everything it writes lives in its state folder ($HEADSTART_SLURM_STATE, default /var/tmp/headstart-slurm):
# its slurm.conf and gres.conf, its own munge key and socket, the daemons' logs and pid files. It touches no
# file of the machine's (/etc/slurm, /etc/munge, /etc/hosts). SLURM's commands reach this cluster through
# its bin/ folder, which holds each of them set to its slurm.conf (SLURM_CONF alone is not enough: Snakemake's
# job steps clear every SLURM_ variable before they call srun inside a job):
#   export PATH=$HEADSTART_SLURM_STATE/bin:$PATH    (`bash slurm/cluster.sh env` prints the line)
# `offline` makes the node like many clusters' compute nodes, without internet: every job step gets a
# proxy that nothing answers (http_proxy, https_proxy), so a download inside a job fails; `online` undoes it.
# Needs root (it starts daemons that run jobs as their users).
set -euo pipefail
state=$(realpath -m "${HEADSTART_SLURM_STATE:-/var/tmp/headstart-slurm}")
host=$(hostname -s)
conf="$state/slurm.conf"
export SLURM_CONF="$conf"  # this script's own sinfo and scontrol
munge_socket="$state/munge/munge.socket"

running() {  # a pid file whose process exists and is not a zombie (stopped daemons linger as zombies)
  local pidfile=$1 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1  # the daemon may remove it meanwhile
  [ -r "/proc/$pid/stat" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat")" != "Z" ]
}

stop_daemon() {  # TERM, then wait up to 10 s for it to go
  local pidfile=$1
  running "$pidfile" || return 0
  kill "$(cat "$pidfile")" 2>/dev/null || true
  for _ in $(seq 40); do running "$pidfile" || break; sleep 0.25; done
}

install_packages() {
  local missing=()
  for deb in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  fi
}

start() {
  [ "$(id -u)" -eq 0 ] || { echo "cluster.sh: needs root" >&2; exit 1; }
  install_packages
  # munge's socket must be reachable by every user that submits: the state folder and its munge/ are 755
  mkdir -p "$state/ctld" "$state/d" "$state/munge" "$state/gpus"
  chmod 755 "$state" "$state/munge"
  # munge: the cluster's own key and daemon (as root), not the machine's
  [ -s "$state/munge/munge.key" ] || mungekey --create --keyfile="$state/munge/munge.key"
  chmod 400 "$state/munge/munge.key"
  if ! running "$state/munge/munged.pid"; then
    rm -f "$state/munge/munged.pid"
    munged --socket="$munge_socket" --key-file="$state/munge/munge.key" --pid-file="$state/munge/munged.pid" \
      --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
  fi
  local cpus memory
  # The node advertises what a GPU cluster node of the profile's shape has (16 CPUs, 64 GB, 16 GPU
  # slots), whatever this machine has: `snakemake --profile slurm all` then schedules as typed
  # (extract and finetune ask for gpu=1, 8 CPUs, 32 GB). The "GPUs" are stand-in device files (the
  # null device under other names; Slurm drops GPUs without a file): jobs find no CUDA and run on
  # the CPU (device: auto). CPUs and memory are oversubscribed (config_overrides: slurmd trusts
  # these numbers; memory is not a consumable).
  cpus=$(nproc)
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  for i in $(seq 0 15); do [ -c "$state/gpus/gpu$i" ] || mknod "$state/gpus/gpu$i" c 1 3; done
  # a job's tasks take the exports this prints (SLURM's TaskProlog); none unless the node is `offline`
  cat > "$state/task_prolog.sh" <<'PROLOG'
#!/bin/sh
if [ -e "$(dirname "$0")/offline" ]; then
  for name in http_proxy https_proxy HTTP_PROXY HTTPS_PROXY; do echo "export $name=http://127.0.0.1:9"; done
  echo "export no_proxy=" && echo "export NO_PROXY="
fi
PROLOG
  chmod 755 "$state/task_prolog.sh"
  # the cluster's client commands: SLURM's own, set to this cluster's slurm.conf
  mkdir -p "$state/bin"
  local tool real
  for tool in sbatch srun squeue scontrol sinfo scancel sacct salloc sattach sstat; do
    real=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$state/bin" | paste -sd:) command -v "$tool") || continue
    printf '#!/bin/sh\n# %s for the test cluster of slurm/cluster.sh\nSLURM_CONF=%s exec %s "$@"\n' \
      "$tool" "$conf" "$real" > "$state/bin/$tool"
    chmod 755 "$state/bin/$tool"
  done
  local before
  before=$({ cat "$conf" "$state/gres.conf" 2>/dev/null || true; } | sha256sum)
  # (gres.conf is read from slurm.conf's folder)
  printf 'NodeName=%s Name=gpu File=%s/gpus/gpu[0-15]\n' "$host" "$state" > "$state/gres.conf"
  # the controller and the node at 127.0.0.1: no name to resolve, no /etc/hosts entry needed
  cat > "$conf" <<CONF
# Written by headstart's slurm/cluster.sh: a single-node test cluster.
ClusterName=headstart
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$state/task_prolog.sh
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
GresTypes=gpu
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
# a finished job's record stays a day (no slurmdbd, so no sacct: scontrol and squeue are all there is), so a
# run's jobs can be inspected after it however long it took (at 600 s the first jobs of a slow run were gone)
MinJobAge=86400
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=16 RealMemory=65536 Gres=gpu:16 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  if [ "$(cat "$conf" "$state/gres.conf" | sha256sum)" != "$before" ]; then
    # daemons still running from an older configuration would keep its node (no GPU slots): restart them
    stop_daemon "$state/slurmd.pid"
    stop_daemon "$state/slurmctld.pid"
  fi
  running "$state/slurmctld.pid" || { rm -f "$state/slurmctld.pid"; slurmctld -f "$conf"; }
  running "$state/slurmd.pid" || { rm -f "$state/slurmd.pid"; slurmd -f "$conf"; }
  for _ in $(seq 60); do
    node=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case "$node" in
      idle*|mixed*|allocated*)
        echo "cluster.sh: node $host $node (advertises 16 CPUs, 64 GB, gpu:16; has $cpus CPUs, ${memory} MB, no GPU)"
        echo "cluster.sh: SLURM's commands reach it with: export PATH=$state/bin:\$PATH"
        return 0 ;;
      down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  echo "cluster.sh: node $host did not become ready; see $state/slurmctld.log and $state/slurmd.log" >&2
  exit 1
}

stop() {
  for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/munged.pid"; do
    stop_daemon "$pidfile"
    rm -f "$pidfile"
  done
  echo "cluster.sh: stopped"
}

status() {
  for pidfile in "$state/munge/munged.pid" "$state/slurmctld.pid" "$state/slurmd.pid"; do
    if running "$pidfile"; then echo "$(basename "$pidfile" .pid): running"; else echo "$(basename "$pidfile" .pid): stopped"; fi
  done
  sinfo 2>/dev/null || true
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export PATH=$state/bin:\$PATH" ;;
  offline) mkdir -p "$state" && touch "$state/offline" && echo "cluster.sh: jobs have no network" ;;
  online) rm -f "$state/offline" && echo "cluster.sh: jobs have the network" ;;
  *) echo "usage: $0 start|stop|status|env|offline|online" >&2; exit 2 ;;
esac
