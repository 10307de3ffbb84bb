#!/usr/bin/env bash
# Start or stop a multi-node Ray cluster on this machine's loopback, for testing sweeps that
# span nodes: a head that runs no trials (0 CPUs) and N worker nodes with C CPUs each.
#   cluster/local_cluster.sh start [NODES=2] [CPUS_PER_NODE=1] [PORT=6390]
#   hkmr sweep table2 --preset smoke --address 127.0.0.1:6390 --storage /tmp/hkmr_shared
#   cluster/local_cluster.sh stop
# All nodes share this machine's disk, so a plain folder works as shared --storage; on a real
# cluster use NFS or a cloud URI.
set -euo pipefail
cmd=${1:-}
nodes=${2:-2}
cpus=${3:-1}
port=${4:-6390}
ray_bin=${RAY:-ray}
# token authentication: RAY_AUTH_MODE=token cluster/local_cluster.sh start ... (then run the
# sweep with RAY_AUTH_MODE=token too; the token is ~/.ray/auth_token, made here if missing)
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
case "$cmd" in
  start)
    if [ "$RAY_AUTH_MODE" = token ]; then "$ray_bin" get-auth-token --generate >/dev/null; fi
    "$ray_bin" start --head --node-ip-address=127.0.0.1 --port="$port" --num-cpus=0 \
      --include-dashboard=false --disable-usage-stats
    for i in $(seq 1 "$nodes"); do
      "$ray_bin" start --address="127.0.0.1:$port" --node-ip-address=127.0.0.1 \
        --num-cpus="$cpus" --resources="{\"node_$i\": 1}" --disable-usage-stats
    done
    echo "cluster up: --address 127.0.0.1:$port ($nodes nodes x $cpus CPUs)"
    ;;
  stop)
    "$ray_bin" stop --force
    ;;
  *)
    echo "usage: $0 start [NODES] [CPUS_PER_NODE] [PORT] | stop" >&2
    exit 2
    ;;
esac
