#!/usr/bin/env bash
# (bash >= 5: EPOCHREALTIME)
# The by-hand baseline: what an operator does today, one command after another, to check what vpce-doctor checks
# in its default lab run (8 names, DNS + TCP 443 + TLS per name, then authenticated calls through the endpoints).
#
#   bench/by_hand.sh                 # on an instance, with the aws CLI on PATH
#   tests/lab/run healthy -- env AWS=bench/.venv-awscli/bin/aws AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
#       bench/by_hand.sh             # in the lab (bench/run.py does this; it makes bench/.venv-awscli)
#
# Environment (all optional):
#   REGION    ap-northeast-1                      the Region in the endpoint names and for the aws CLI
#   DOMAIN    amazonaws.com
#   SERVICES  "ssm ssmmessages ec2messages s3 sts logs kms ec2"
#   BUCKET    vpclab-probe                        s3 cp goes up and down under s3://BUCKET/bench/
#   AWS       aws                                 the aws CLI (v1 from PyPI: bench/.venv-awscli/bin/aws)
#   CONNECT_TIMEOUT 2                             seconds, for each TCP probe, TLS handshake and aws CLI connect
# Prints one line per step (ok / FAIL, milliseconds); exits 0 when every step passed, 1 otherwise.
set -u

REGION=${REGION:-ap-northeast-1}
DOMAIN=${DOMAIN:-amazonaws.com}
SERVICES=${SERVICES:-"ssm ssmmessages ec2messages s3 sts logs kms ec2"}
BUCKET=${BUCKET:-vpclab-probe}
AWS=${AWS:-aws}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-2}
# What an operator on a private subnet has to set: without a Region the CLI builds no endpoint name (the instance's
# shell has none), and STS must go to the regional name, never the global sts.amazonaws.com (unreachable without
# NAT). Recent CLI v1 releases already default to regional STS; pinning it keeps the result independent of that.
export AWS_DEFAULT_REGION=$REGION AWS_STS_REGIONAL_ENDPOINTS=regional

failed=0
ms_since() { echo $(( (${EPOCHREALTIME/./} - ${1/./}) / 1000 )); }
step() {  # step LABEL COMMAND...: run it, print ok/FAIL and how long it took
    local label=$1 t0=$EPOCHREALTIME; shift
    if "$@" >/dev/null 2>&1; then echo "ok   $label ($(ms_since "$t0") ms)"
    else echo "FAIL $label ($(ms_since "$t0") ms)"; failed=1; fi
}

resolve() {  # the A records of a name, one per line: dig if installed, else glibc
    if command -v dig >/dev/null 2>&1; then
        dig +short +time="$CONNECT_TIMEOUT" +tries=1 "$1" A | grep -E '^[0-9.]+$'
    else
        getent ahostsv4 "$1" | awk '$2 == "STREAM" {print $1}'
    fi
}

tcp443() { timeout "$CONNECT_TIMEOUT" bash -c ">/dev/tcp/$1/443"; }

tls() {  # tls IP NAME: a verified handshake with SNI = NAME, against the system trust store
    timeout "$CONNECT_TIMEOUT" openssl s_client -connect "$1:443" -servername "$2" -verify_hostname "$2" \
        -verify_return_error </dev/null 2>&1 | grep -q 'Verify return code: 0 (ok)'
}

for service in $SERVICES; do
    name=$service.$REGION.$DOMAIN
    t0=$EPOCHREALTIME
    addresses=$(resolve "$name")
    if [ -z "$addresses" ]; then echo "FAIL dns $name ($(ms_since "$t0") ms)"; failed=1; continue; fi
    echo "ok   dns $name -> $(echo $addresses) ($(ms_since "$t0") ms)"
    for ip in $addresses; do
        step "tcp $ip:443 ($service)" tcp443 "$ip"
    done
    step "tls $name" tls "$(echo "$addresses" | head -n1)" "$name"
done

cli=(--cli-connect-timeout "$CONNECT_TIMEOUT" --cli-read-timeout 5)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "vpce-doctor by-hand baseline $(date -u +%FT%TZ)" >"$tmp/up.txt"
step "aws sts get-caller-identity" "$AWS" "${cli[@]}" sts get-caller-identity
step "aws s3 cp (up)" "$AWS" "${cli[@]}" s3 cp "$tmp/up.txt" "s3://$BUCKET/bench/by-hand.txt"
step "aws s3 cp (down)" "$AWS" "${cli[@]}" s3 cp "s3://$BUCKET/bench/by-hand.txt" "$tmp/down.txt"
step "s3 round trip compares" cmp "$tmp/up.txt" "$tmp/down.txt"
step "aws ssm get-document" "$AWS" "${cli[@]}" ssm get-document --name SSM-SessionManagerRunShell
step "aws logs describe-log-groups" "$AWS" "${cli[@]}" logs describe-log-groups
exit $failed
