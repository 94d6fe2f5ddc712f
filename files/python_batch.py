"""Runs on the host (system python3): several snippets in one interpreter, as the survey reads
them (one interpreter start per host, not one per snippet).

    python3 -c "$(cat python_batch.py)" MARK END SNIPPETS

SNIPPETS (JSON): [[index, code, [args...]], ...]. Each snippet runs as ``python3 -c CODE ARGS``
would: as __main__ with its own globals and sys.argv, its output (stdout and stderr) and exit
status captured. For each it prints what ``PythonJson().command`` prints (the output, then END
and the exit status on a line of its own) between the markers "MARK<index>" before and
"MARK<index> 0" after.
"""

import contextlib
import io
import json
import sys
import traceback

mark, end, snippets = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
for index, code, args in snippets:
    out, status = io.StringIO(), 0
    sys.argv = ["-c", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            exec(compile(code, "<string>", "exec", dont_inherit=True), {"__name__": "__main__"})
        except SystemExit as stop:
            if isinstance(stop.code, int) or stop.code is None:
                status = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                status = 1
        except BaseException:
            traceback.print_exc()
            status = 1
    text = out.getvalue()
    if text and not text.endswith("\n"):
        text += "\n"
    sys.stdout.write(f"{mark}{index}\n{text}{end}{status}\n{mark}{index} 0\n")
    sys.stdout.flush()
