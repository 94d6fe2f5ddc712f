#!/bin/sh
# On the GPU host, from the repository root: install the cu13-0.5.16 stack into the host's venv
# (the wheels in /tmp/wheels, no index there) and run what docs/serving-on-real-gpu.md records.
#   sh scripts/gpu_host/run_all.sh install|healthy|failures RESULTS_DIR
# The parts are separate runs because one run is bounded to 10 minutes there.
set -u
part=$1 results=$2
mkdir -p "$results"
export PYTHONUNBUFFERED=1
py=/opt/torch/.venv/bin/python
serve() { echo "== $*"; $py scripts/gpu_host/serve_real.py --out "$results" "$@"; }
data_tiny="--data model=/tmp/tiny-awq --data stack=cu13-0.5.16"
# The fleet verification against the server left running, with this host's settings.
verify() {
    label=$1
    shift
    echo "== pytest tests/verify --hosts local:// ($label)"
    $py -m pytest -p no:cacheprovider tests/verify --hosts=local:// -q -rA \
        --sglang-data venv_path=/opt/torch/.venv --sglang-data model=/tmp/tiny-awq \
        --sglang-data stack=cu13-0.5.16 --sglang-data bind_address=127.0.0.1 \
        --sglang-data service_user=root --sglang-data install_dir=/tmp/sglang \
        --sglang-data model_cache_dir=/tmp/sglang-hf --sglang-data min_free_disk_gb=10 \
        "$@" --junitxml="$results/$label-junit.xml" > "$results/$label.txt" 2>&1
    tail -25 "$results/$label.txt"
}

case $part in
install)
    # Every wheel but the kernel built for another torch, which goes to a directory of its own
    # (the ABI-mismatch case puts it first on PYTHONPATH).
    $py -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
        /tmp/wheels/*.whl
    $py -m pip install -q --no-index --no-deps --target /tmp/k10 /tmp/wheels/k10/*.whl
    python3 scripts/make_tiny_model.py /tmp/tiny-awq --awq --seed 1
    python3 scripts/make_tiny_model.py /tmp/tiny --seed 1
    $py -m pip list --format=freeze > "$results/venv-freeze.txt"
    nvidia-smi > "$results/nvidia-smi.txt"
    ;;
healthy)
    serve kernel-check kernel-ok $data_tiny
    serve serve minimal-stable $data_tiny --data profile=minimal-stable --short-wait 5 --keep
    verify verify
    serve stop
    serve serve debugging $data_tiny --data profile=debugging
    serve serve fast $data_tiny --data profile=fast
    ;;
failures)
    serve serve oom $data_tiny --data mem_fraction_static=0.99 --data max_total_tokens=99999999 \
        --timeout 300
    serve validate awq-on-plain --data model=/tmp/tiny --data stack=cu13-0.5.16 \
        --data 'extra_flags=["--quantization","awq"]'
    serve serve plain-model --data model=/tmp/tiny --data stack=cu13-0.5.16
    serve kernel-check kernel-other-torch $data_tiny --pythonpath /tmp/k10
    serve serve kernel-other-torch $data_tiny --pythonpath /tmp/k10 --timeout 120 \
        --start-anyway
    serve serve missing-snapshot --data model=Qwen/Qwen3-32B-AWQ --data stack=cu13-0.5.16 \
        --data model_revision=0123456789abcdef0123456789abcdef01234567 \
        --config-from /tmp/tiny-awq/config.json --timeout 120 --start-anyway
    serve validate tp-2-on-1-gpu $data_tiny --data tp_size=2
    serve validate gptq-on-awq $data_tiny --data 'extra_flags=["--quantization","gptq"]'
    ;;
again)
    serve serve fast $data_tiny --data profile=fast --timeout 400
    serve serve minimal-stable-2 $data_tiny --keep
    verify verify-2 --sglang-data 'gpu_compute_capability="9.0"'
    serve stop
    serve serve fraction-1 $data_tiny --data mem_fraction_static=1 --timeout 180
    ;;
esac
tar czf "$OUT/results-$part.tgz" -C "$results" .
