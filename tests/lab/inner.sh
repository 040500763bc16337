#!/bin/bash
# The lab's PID 1. Runs inside `unshare --user --map-root-user --net --mount --propagation private --pid --fork
# --kill-child` (see run and fixture.py; never run it on the host directly: it mounts over /etc, /usr/bin and /var).
#
#   inner.sh RUN_DIR PYTHON SCENARIO_FILE --serve          labd in the foreground (long-lived lab; enter with nsenter)
#   inner.sh RUN_DIR PYTHON SCENARIO_FILE -- COMMAND...    run COMMAND in the lab, exit with its status
#
# Sets up what does not depend on the scenario: a fresh /proc for the PID namespace, overlays so agent files can be
# written at their real paths, /etc/resolv.conf, loopback addresses and the dead default route. labd does the rest
# (extra ENI addresses, nft, the CA bundle, servers) and writes RUN_DIR/ready.json when up.
set -euo pipefail

RUN=$1 PY=$2 SCENARIO=$3
shift 3
MODE=$1
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CALLER_CWD=$PWD

if [[ $$ -ne 1 ]]; then
    echo "inner.sh: must be PID 1 of the lab's PID namespace (use tests/lab/run)" >&2
    exit 125
fi

trap 'echo "lab: setting up the namespaces failed (line $LINENO)" >&2; exit 125' ERR

# A fresh /proc: processes entering the PID namespace (nsenter -p) then see the lab's processes, and psutil works.
mount -t proc proc /proc

# Overlays (upper layers on a tmpfs that dies with the namespace) let the lab write at real paths while the host's
# files stay untouched. Files under them are written, not bind-mounted: a mount inside /etc would be a "locked"
# child for a lab nested in this one (tests/lab/run inside tests/lab/run), and overlayfs refuses such a lower dir.
mkdir -p "$RUN/ov"
mount -t tmpfs -o mode=0755 vpclab-overlays "$RUN/ov"
for dir in /etc /usr/bin /var; do
    layer="$RUN/ov/${dir//\//_}"
    mkdir -p "$layer/upper" "$layer/work"
    if ! mount -t overlay overlay -o "userxattr,lowerdir=$dir,upperdir=$layer/upper,workdir=$layer/work" "$dir" \
            2>"$RUN/overlay.err"; then
        echo "lab: cannot overlay $dir ($(cat "$RUN/overlay.err"); does it have submounts?)" >&2
        exit 125
    fi
done

# rm first: in the overlay that only hides the host's file, and never follows a symlink out of the overlay.
rm -f /etc/resolv.conf /etc/hosts
printf 'nameserver 10.0.0.2\nsearch ap-northeast-1.compute.internal\n' >/etc/resolv.conf
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n10.0.1.100 ip-10-0-1-100.ap-northeast-1.compute.internal ip-10-0-1-100\n' >/etc/hosts

# Network: service addresses on lo; the instance on a veth whose peer stays here too, with a default route to a
# gateway that never answers (permanent neighbour entry), so every other destination silently times out.
ip -batch - <<'EOF'
link set lo up
addr add 10.0.0.2/32 dev lo
addr add 169.254.169.254/32 dev lo
addr add 10.0.1.10/32 dev lo
addr add 10.0.1.11/32 dev lo
addr add 10.0.1.12/32 dev lo
addr add 10.0.1.13/32 dev lo
addr add 10.0.1.14/32 dev lo
addr add 10.0.1.15/32 dev lo
addr add 10.0.1.16/32 dev lo
addr add 10.0.1.17/32 dev lo
addr add 52.216.8.10/32 dev lo
link add eth0 type veth peer name vpcrtr0
addr add 10.0.1.100/24 dev eth0
link set eth0 up
link set vpcrtr0 up
route add default via 10.0.1.1 dev eth0
neigh add 10.0.1.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
addr add fd00:ec2::253/128 dev lo nodad
addr add fd00:ec2::254/128 dev lo nodad
addr add 2001:db8:1200:1::100/64 dev eth0 nodad
route add ::/0 via fe80::1 dev eth0
neigh add fe80::1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent
EOF

"$PY" "$HERE/labd.py" --run "$RUN" --scenario "$SCENARIO" --python "$PY" </dev/null >"$RUN/labd.log" 2>&1 &
LABD=$!
echo $LABD >"$RUN/labd.pid"
trap - ERR

if [[ $MODE == --serve ]]; then
    wait $LABD
    exit $?
fi

while [[ ! -e $RUN/ready.json ]]; do
    if ! kill -0 $LABD 2>/dev/null; then
        echo "lab: labd failed to start; its log ($RUN/labd.log) ends with:" >&2
        tail -n 20 "$RUN/labd.log" >&2
        exit 125
    fi
    sleep 0.02
done

cd "$CALLER_CWD" 2>/dev/null || cd /   # re-resolve the cwd, in case it lies under an overlaid directory
export VPCLAB_RUN=$RUN
set +e
"$@"
rc=$?
exit $rc   # PID 1 exiting kills every process in the lab
