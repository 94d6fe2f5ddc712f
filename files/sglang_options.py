"""Runs on the host with the venv's python (no arguments): the installed SGLang's own parser.

    VENV/bin/python -c "$(cat sglang_options.py)"

prints one JSON line, {"version": sglang.__version__, "options": every option string its
server accepts, sorted}.
"""

import argparse
import json

import sglang
from sglang.srt.server_args import ServerArgs

parser = argparse.ArgumentParser()
ServerArgs.add_cli_args(parser)
print(json.dumps({"version": sglang.__version__,
                  "options": sorted(o for a in parser._actions for o in a.option_strings)}))
