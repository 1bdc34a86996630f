"""Where a measurement runs: a fresh command-line process, or a fresh notebook kernel.

Both start from nothing (no library imported, no thread pool or heap warmed by another
implementation) and return what :func:`bench.worker.measure_json` printed, parsed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .worker import MARKER

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 3 * 3600  # the longest suite (full-MNIST training) takes minutes; a hung process must not hang make bench


def _parse(text: str, where: str) -> dict:
    for line in text.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise RuntimeError(f"bench: {where} printed no result; its output ends with:\n{text[-3000:]}")


def command_line(suite: str, impl: str, quick: bool, baton: str | None = None) -> dict:
    """Run the measurement in ``python -m bench.worker`` (a fresh interpreter); ``baton``: in
    lock-step with another process (:mod:`bench.baton`)."""
    cmd = ([sys.executable, "-m", "bench.worker", suite, impl] + (["--quick"] if quick else [])
           + (["--baton", baton] if baton else []))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"bench: `{' '.join(cmd[1:])}` failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return _parse(done.stdout, f"`{' '.join(cmd[1:])}`")


def notebook_kernel(suite: str, impl: str, quick: bool, baton: str | None = None) -> dict:
    """Run the measurement as a one-cell notebook executed headless in a fresh IPython kernel
    (nbclient, the kernel JupyterLab starts for a student's notebook); ``baton`` as above."""
    import nbclient
    import nbformat

    source = f"from bench.worker import measure_json\nprint(measure_json({suite!r}, {impl!r}, {quick!r}, {baton!r}))"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    text = "".join(out.get("text", "") for out in nb.cells[0].outputs if out.get("output_type") == "stream")
    return _parse(text, f"a kernel running {suite} {impl}")


LAUNCHERS = {"command line": command_line, "notebook kernel": notebook_kernel}
