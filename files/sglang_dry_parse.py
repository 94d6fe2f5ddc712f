"""Runs on the host with the venv's python and the unit's environment (HF_HUB_OFFLINE, HF_HOME,
so the model resolves as the server would resolve it): a dry run of the server's argv.

    VENV/bin/python -c "$(cat sglang_dry_parse.py)" ARG...   # the launch_server argv

Parses the argv with the installed SGLang's parser (argparse exits 2 with its message), then
runs SGLang's own validation of the parsed arguments: ServerArgs.__post_init__ resolves and
checks them (it reads the model's config.json, and the GPU's memory where there is one) and
check_server_args() is what launch_server calls next. Prints {"ok": true}; a refusal is the
traceback and a non-zero exit. An argv real SGLang refuses at startup, after 40 s of imports, is
refused here in seconds.
"""

import argparse
import json
import sys

from sglang.srt.server_args import ServerArgs

parser = argparse.ArgumentParser(prog="sglang.launch_server")
ServerArgs.add_cli_args(parser)
server_args = ServerArgs.from_cli_args(parser.parse_args(sys.argv[1:]))
server_args.check_server_args()
print(json.dumps({"ok": True}))
