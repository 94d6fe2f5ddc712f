#!/bin/sh
# On the GPU host, from the repository root: the toolkit's own deploy of the host itself
# (scripts/gpu_host/gpu_fleet.py), in parts (a run there is bounded to 10 minutes):
#   sh scripts/gpu_host/deploy_here.sh receive DIR   # a carried folder of wheels -> /tmp/wheels
#   sh scripts/gpu_host/deploy_here.sh prepare OUT   # the image: its venv's stack, supervisord
#   sh scripts/gpu_host/deploy_here.sh deploy OUT    # pyinfra inventory.py deploy.py
#   sh scripts/gpu_host/deploy_here.sh again OUT     # again (a no-op), verify, diagnose
set -u
part=$1 where=$2
py=/opt/torch/.venv/bin/python
export PYTHONUNBUFFERED=1 SGLANG_FLEET="$PWD/scripts/gpu_host/gpu_fleet.py"
run() { echo "== $*"; "$@"; echo "== exit $?"; }
case $part in
receive)
    mkdir -p /tmp/wheels /tmp/empty-index && cp "$where"/*.whl /tmp/wheels/ && ls /tmp/wheels | wc -l
    ;;
prepare)
    mkdir -p "$where"
    # What the deploy finds there: the stack in the host's venv (as docs/serving-on-real-gpu.md
    # installed it) and, as a Vast.ai image has it, supervisor (PyPI's, no package index) with
    # the distribution's config layout; supervisord is not running.
    $py -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        $(ls /tmp/wheels/*.whl | grep -v supervisor-)
    python3 -m venv /opt/supervisor
    /opt/supervisor/bin/pip install -q --no-index /tmp/wheels/supervisor-*.whl
    ln -sf /opt/supervisor/bin/supervisord /opt/supervisor/bin/supervisorctl /usr/local/bin/
    mkdir -p /etc/supervisor/conf.d /var/log/supervisor
    cat > /etc/supervisor/supervisord.conf <<'CONF'
[unix_http_server]
file=/var/run/supervisor.sock
chmod=0700

[supervisord]
logfile=/var/log/supervisor/supervisord.log
pidfile=/var/run/supervisord.pid
childlogdir=/var/log/supervisor

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix:///var/run/supervisor.sock

[include]
files = /etc/supervisor/conf.d/*.conf
CONF
    python3 scripts/make_tiny_model.py /tmp/tiny-awq --awq --seed 1
    chmod -R a+rX /tmp/tiny-awq
    stat -c '%n %U %a' /opt/torch /opt/torch/.venv /tmp/tiny-awq
    ;;
deploy)
    mkdir -p "$where"
    run $py -m pyinfra -y inventory.py deploy.py > "$where/deploy-1.txt" 2>&1
    tail -40 "$where/deploy-1.txt"
    ;;
again)
    mkdir -p "$where"
    run $py -m pyinfra -y inventory.py deploy.py > "$where/deploy-2.txt" 2>&1
    tail -12 "$where/deploy-2.txt"
    supervisorctl status sglang
    curl -s -m 60 http://127.0.0.1:8000/generate -H 'Content-Type: application/json' \
        -d '{"text": "The capital of France is", "sampling_params": {"max_new_tokens": 8}}' \
        > "$where/generate.json"; echo; head -c 400 "$where/generate.json"; echo
    run $py -m pytest -p no:cacheprovider tests/verify -q -rA \
        --junitxml="$where/verify-junit.xml" > "$where/verify.txt" 2>&1
    tail -30 "$where/verify.txt"
    run $py -m pyinfra -y inventory.py diagnose.py > "$where/diagnose.txt" 2>&1
    tail -12 "$where/diagnose.txt"
    cp /etc/supervisor/conf.d/sglang.conf "$where/sglang.conf"
    tail -60 /var/log/sglang/sglang.log > "$where/sglang-log-tail.txt"
    ;;
esac
