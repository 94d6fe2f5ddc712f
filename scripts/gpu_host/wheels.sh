#!/bin/sh
# Here (a machine with a package index): every wheel the GPU host needs for the cu13-0.5.16 stack
# and for the toolkit's own verification there, for its Python 3.12, in chunks of at most
# 62.5 MB under .whl/c1 .. .whl/c4 (the GPU host has no index and takes 64 MiB a transfer).
#   sh scripts/gpu_host/wheels.sh
# The list is what SGLang 0.5.16 imports to serve (its ~70 requirements less those it loads only
# for features our profiles do not use), and what the host lacks next to its own torch 2.11.0.
set -eu
cd "$(dirname "$0")/../.."
dl=$(mktemp -d)
get() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64 \
        --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 --platform any -d "$1" "$2"
}
for spec in sglang==0.5.16 sglang-kernel==0.4.5 flashinfer-python==0.6.14 apache-tvm-ffi==0.1.11 \
    transformers==5.12.1 tokenizers==0.22.2 xgrammar==0.2.1 torchao==0.17.0 'llguidance<2,>=1.7.6' \
    compressed-tensors loguru gguf blobfile==3.0.0 pycryptodomex fastapi opentelemetry-api \
    opentelemetry-sdk opentelemetry-semantic-conventions importlib-metadata zipp starlette uvicorn \
    pydantic pydantic-core annotated-types typing-inspection orjson pyzmq msgspec setproctitle \
    pybase64 partial_json_parser interegular python-multipart openai==2.6.1 jiter distro sniffio \
    openai-harmony==0.0.4 torch_memory_saver cuda-python cuda-bindings cuda-pathfinder dill \
    multiprocess datasets grpcio grpcio-health-checking grpcio-reflection smg-grpc-proto \
    smg-grpc-servicer jsonschema jsonschema-specifications referencing rpds-py soundfile==0.13.1 \
    cffi pycparser watchfiles zstandard outlines==0.1.11 outlines_core lark diskcache nest_asyncio \
    airportsdata pycountry anthropic docstring-parser easydict mistral-common pydantic-extra-types \
    py-spy 'kernels<0.15,>=0.14.1' torchcodec==0.11.1 nvidia-cudnn-frontend cuda-tile modelscope \
    quack-kernels tokenspeed-mla==0.1.8 sgl-deep-gemm==0.1.4.post1 ipython decorator jedi \
    matplotlib-inline pexpect prompt_toolkit pygments stack_data traitlets ipython-pygments-lexers \
    parso asttokens executing pure_eval wcwidth ptyprocess prometheus-client nvidia-ml-py \
    pyinfra==3.10.0 pytest-testinfra==10.2.2 pytest pluggy iniconfig click gevent greenlet \
    zope.event zope.interface jinja2 markupsafe packaging paramiko bcrypt cryptography pynacl \
    invoke python-dateutil six typeguard typing-extensions; do
    get "$dl" "$spec"
done
mkdir -p "$dl/k10"
get "$dl/k10" sglang-kernel==0.4.10  # built for torch 2.14: the ABI-mismatch case
# The kernel wheels without FlashAttention 3, FlashMLA, InfLLM and the sm100 build (1.1 GB of
# the 1.2 GB unpacked): no profile of ours loads them on Hopper.
for wheel in "$dl"/sglang_kernel-*.whl "$dl"/k10/sglang_kernel-*.whl; do
    python3 scripts/gpu_host/strip_wheel.py "$wheel" "$(dirname "$wheel")/stripped" \
        'sgl_kernel/flash_ops*' 'sgl_kernel/flashmla_ops*' 'sgl_kernel/infllm_ops*' \
        'sgl_kernel/sm100/*'
    mv "$(dirname "$wheel")/stripped/$(basename "$wheel")" "$wheel"
done
rm -rf .whl && python3 - "$dl" <<'PY'
import os, shutil, sys
source = sys.argv[1]
files = sorted(((os.path.getsize(os.path.join(d, f)), os.path.join(d, f))
                for d in (source, os.path.join(source, "k10")) for f in os.listdir(d)
                if f.endswith(".whl")), reverse=True)
chunks = [[0, []] for _ in range(4)]
for size, path in files:  # largest first, into the emptiest chunk
    chunk = min(chunks, key=lambda c: c[0])
    assert chunk[0] + size <= 62_500_000, f"{path} does not fit"
    chunk[0] += size
    chunk[1].append(path)
for number, (_, paths) in enumerate(chunks, 1):
    for path in paths:
        target = os.path.join(".whl", f"c{number}", "k10" if "/k10/" in path else "")
        os.makedirs(target, exist_ok=True)
        shutil.copy(path, target)
PY
du -sh .whl/*
