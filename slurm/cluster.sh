#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine (Debian slurmctld + slurmd + munge, no systemd),
# for the integration test and for trying `snakemake --profile slurm` without a cluster.
#   bash slurm/cluster.sh start | stop | status | offline | online
# `offline` makes the node like many clusters' compute nodes, without internet: every job step gets a
# proxy that nothing answers (http_proxy, https_proxy), so a download inside a job fails; `online` undoes it.
# Needs root (it writes /etc/slurm/slurm.conf and starts daemons). State: $HEADSTART_SLURM_STATE.
set -euo pipefail
state=${HEADSTART_SLURM_STATE:-/var/tmp/headstart-slurm}
host=$(hostname -s)
marker="Written by headstart's slurm/cluster.sh"

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
  getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts
  mkdir -p "$state/ctld" "$state/d" /etc/slurm /run/munge
  # munge: one key, daemon as the munge user
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key /run/munge && chmod 400 /etc/munge/munge.key
  if ! running /run/munge/munged.pid; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- munged --force
  fi
  local cpus memory
  # keep a slurm.conf that is not ours, to put back on stop
  if [ -f /etc/slurm/slurm.conf ] && ! grep -q "$marker" /etc/slurm/slurm.conf; then
    cp /etc/slurm/slurm.conf "$state/slurm.conf.orig"
  fi
  # The node advertises what a GPU cluster node of the profile's shape has (16 CPUs, 64 GB, 16 GPU
  # slots), whatever this machine has: `snakemake --profile slurm all` then schedules as typed
  # (extract and finetune ask for gpu=1, 8 CPUs, 32 GB). The "GPUs" are stand-in device files (the
  # null device under other names; Slurm drops GPUs without a file): jobs find no CUDA and run on
  # the CPU (device: auto). CPUs and memory are oversubscribed (config_overrides: slurmd trusts
  # these numbers; memory is not a consumable).
  cpus=$(nproc)
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  if [ -f /etc/slurm/gres.conf ] && ! grep -q "$marker" /etc/slurm/gres.conf; then
    cp /etc/slurm/gres.conf "$state/gres.conf.orig"
  fi
  mkdir -p "$state/gpus"
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
  local before
  before=$({ cat /etc/slurm/slurm.conf /etc/slurm/gres.conf 2>/dev/null || true; } | sha256sum)
  printf '# %s\nNodeName=%s Name=gpu File=%s/gpus/gpu[0-15]\n' "$marker" "$host" "$state" > /etc/slurm/gres.conf
  cat > /etc/slurm/slurm.conf <<CONF
# $marker: a single-node test cluster.
ClusterName=headstart
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
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
NodeName=$host CPUs=16 RealMemory=65536 Gres=gpu:16 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  if [ "$(cat /etc/slurm/slurm.conf /etc/slurm/gres.conf | sha256sum)" != "$before" ]; then
    # daemons still running from an older configuration would keep its node (no GPU slots): restart them
    stop_daemon "$state/slurmd.pid"
    stop_daemon "$state/slurmctld.pid"
  fi
  running "$state/slurmctld.pid" || { rm -f "$state/slurmctld.pid"; slurmctld; }
  running "$state/slurmd.pid" || { rm -f "$state/slurmd.pid"; slurmd; }
  for _ in $(seq 60); do
    node=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case "$node" in
      idle*|mixed*|allocated*) echo "cluster.sh: node $host $node (advertises 16 CPUs, 64 GB, gpu:16; has $cpus CPUs, ${memory} MB, no GPU)"; return 0 ;;
      down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  echo "cluster.sh: node $host did not become ready; see $state/slurmctld.log and $state/slurmd.log" >&2
  exit 1
}

stop() {
  for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" /run/munge/munged.pid; do
    stop_daemon "$pidfile"
    rm -f "$pidfile"
  done
  # Without its controller our slurm.conf makes every SLURM client call wait ~10 s for a connection,
  # and the Snakemake SLURM plugin calls scontrol whenever snakemake starts: take it away.
  if [ -f /etc/slurm/slurm.conf ] && grep -q "$marker" /etc/slurm/slurm.conf; then
    if [ -f "$state/slurm.conf.orig" ]; then mv "$state/slurm.conf.orig" /etc/slurm/slurm.conf; else rm -f /etc/slurm/slurm.conf; fi
  fi
  if [ -f /etc/slurm/gres.conf ] && grep -q "$marker" /etc/slurm/gres.conf; then
    if [ -f "$state/gres.conf.orig" ]; then mv "$state/gres.conf.orig" /etc/slurm/gres.conf; else rm -f /etc/slurm/gres.conf; fi
  fi
  echo "cluster.sh: stopped"
}

status() {
  for pidfile in /run/munge/munged.pid "$state/slurmctld.pid" "$state/slurmd.pid"; do
    if running "$pidfile"; then echo "$(basename "$pidfile" .pid): running"; else echo "$(basename "$pidfile" .pid): stopped"; fi
  done
  sinfo 2>/dev/null || true
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  offline) mkdir -p "$state" && touch "$state/offline" && echo "cluster.sh: jobs have no network" ;;
  online) rm -f "$state/offline" && echo "cluster.sh: jobs have the network" ;;
  *) echo "usage: $0 start|stop|status|offline|online" >&2; exit 2 ;;
esac
