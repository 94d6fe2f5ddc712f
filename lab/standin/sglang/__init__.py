"""Lab stand-in for SGLang: the real flag table and HTTP surface, simulated inference.

Never installed by a real deploy. See sglang/srt/standin_server.py.
"""

import json
from pathlib import Path

__version__ = json.loads((Path(__file__).parent / "_build.json").read_text())["version"]
