#!/usr/bin/env bash
# A private single-node SLURM (munge, slurmctld, slurmd) for the cluster profile's test, run
# only when asked (`python -m pytest -m slurm`). Everything it writes lives in DIR: its own
# slurm.conf, munge key and socket, state, logs and pid files; its daemons listen on their own
# ports, so a SLURM the machine already runs, and /etc/slurm, are left as they are. Clients
# find the config through SLURM_CONF=DIR/slurm.conf, or through DIR/bin, whose srun, sbatch,
# squeue, ... set it first: put DIR/bin first on PATH (Snakemake's SLURM jobstep executor
# drops SLURM_* variables before its nested srun, PATH it keeps). Needs root; installs
# Debian's slurm-wlm and munge when they are missing.
#
#   cluster.sh start DIR    prints the partition name once the node is idle
#   cluster.sh stop DIR     stops the daemons that `start DIR` started
set -euo pipefail
action=${1:?usage: cluster.sh start|stop DIR}
dir=${2:?usage: cluster.sh start|stop DIR}
PARTITION=hflow

stop() {
  for name in slurmd slurmctld munged; do
    pidfile="$dir/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [ "$action" = stop ]; then stop; exit 0; fi
[ "$action" = start ] || { echo "usage: cluster.sh start|stop DIR" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then echo "cluster.sh needs root" >&2; exit 1; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p "$dir/ctld" "$dir/d" "$dir/log"
trap 'stop' ERR  # a start that fails leaves nothing running

if [ ! -s "$dir/munge.key" ]; then
  dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$dir/munge.key"
fi
/usr/sbin/munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=hflow-test
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue for 10 minutes: the snakemake plugin's status checks.
MinJobAge=600
KillWait=10
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
mkdir -p "$dir/bin"
for client in srun sbatch squeue scancel sinfo sacct scontrol; do
  real=$(command -v "$client") || continue
  printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$real" > "$dir/bin/$client"
  chmod +x "$dir/bin/$client"
done
/usr/sbin/slurmctld -f "$SLURM_CONF" -c
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  if sinfo -h -p "$PARTITION" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    echo "$PARTITION"; exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "SLURM did not come up; see $dir/log/*.log" >&2
tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
stop
exit 1
