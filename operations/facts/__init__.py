"""Facts the stages read from a host, by what they read. Each is read-only and exits 0, so a
missing tool or a failing import is data for the stage to judge, not a pyinfra error. Import
from the module that has it:

- ``gpu``: the GPUs (NvidiaGpus: nvidia-smi) and the driver as the kernel and apt see it
  (NvidiaDriver).
- ``host``: the host itself: FreeDisk, PortListener, Login (the SSH login and sudo), Pid1,
  UserExists, LibnumaLinked, ProcessInfo.
- ``venv``: the venv: VenvExists, Distributions (its dist-info names), and the programs that
  ask its torch, kernel package and SGLang (TORCH_KERNEL_CODE, SGLANG_OPTIONS_CODE,
  SGLANG_DRY_PARSE_CODE; refusal_line reads a dry-parse's refusal).
- ``service``: the SGLang service: UnitState, JournalTail (JOURNAL_LINES), and the programs
  that ask its HTTP endpoints (HEALTH_CODE, ROUTER_CODE, WAIT_CODE).
- ``python``: PythonJson, which runs any of those programs with a given python and reads the
  JSON it prints; PYTHON_BATCH_CODE and python_batch_command run several of the system
  python3's in one interpreter (the survey).
- ``status``: what the facts share: a command's exit status after its output (with_status,
  split_status, END) and a yes/no test (YesNo).

The programs themselves are files under files/ (each one's docstring says what it prints and
how it is run); the constants are their text, run with ``python -c``.

Example::

    from pyinfra import host
    from operations.facts.gpu import NvidiaGpus
    gpus = host.get_fact(NvidiaGpus)   # {"driver": "570.153.02", "cuda": "12.8", "gpus": [...]}
"""
