#!/bin/sh
# On a GPU host itself (local connection): what the host is, the deploy's preflight, and the
# fleet verification. Changes nothing on the host. Extra arguments go to pytest, e.g.
#   scripts/verify_on_gpu_host.sh --sglang-data venv_path=/opt/torch/.venv --junitxml=v.xml
cd "$(dirname "$0")/.." || exit 1
run() { echo "\$ $*"; "$@" 2>&1; echo "(exit $?)"; }
date -u
run uname -srm
run sh -c 'grep PRETTY_NAME /etc/os-release'
run cat /proc/driver/nvidia/version
run nvidia-smi
run nvidia-smi --query-gpu=index,name,memory.total,memory.used,driver_version,compute_cap --format=csv
run cat /proc/1/comm
run sh -c 'command -v systemctl ss netstat || true'
run python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_capability(), torch.cuda.get_arch_list())'
echo '== preflight: pyinfra @local preflight.py'
run python3 -m pyinfra -y @local preflight.py
echo '== verification: pytest tests/verify --hosts=local://'
run python3 -m pytest -p no:cacheprovider tests/verify --hosts=local:// -q -rf "$@"
