"""python -m sglang.launch_server (lab stand-in)."""

import sys

from sglang.srt.standin_server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
