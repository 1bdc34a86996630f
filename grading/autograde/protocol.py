"""The file protocol between the grader's trusted side and its sandbox, defined once for both.

The trusted side writes the job into a folder the sandbox can only read (``JOB_DIR``: ``/job``); the
sandbox runs the student's code on it and writes outputs into its own folder (``OUT_DIR``: ``/out``);
the trusted side reads them back as hostile data (:mod:`.untrusted`, in ``hidden.read_outputs``) and
judges::

    JOB_DIR/job.json                {grade_id: {"oracle": [family, ...],
                                        "cases": [{"id", "target", "inputs": {name: {"array": key} | {"json": value}}}]}}
    JOB_DIR/inputs.npz              the input arrays, keyed "<grade_id>/<case id>/<name>"
    OUT_DIR/<grade_id>.start        the sandbox began the group (its time budget runs from here)
    OUT_DIR/<grade_id>.npz          the outputs, keyed "<case id>/<output>" (numbers only: read without pickles)
    OUT_DIR/<grade_id>.errors.json  {case id or "*" (the whole group): {"type", "message", "where"}}
    OUT_DIR/<grade_id>.done         written last: the group's outputs are complete

Only the standard library and NumPy. The grader only: it is copied beside ``sandbox_runner.py`` into
the sandbox's tools folder (``compose.tools_dir``), which loads it before any student code; it never
ships to students.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import numpy as np

__all__ = ["MAX_OUTPUT_BYTES", "JOB", "INPUTS", "write_job", "read_job", "flatten", "error_record", "write_outputs",
           "mark"]

MAX_OUTPUT_BYTES = 200 << 20      # outputs or errors of one group larger than this are refused
JOB, INPUTS = "job.json", "inputs.npz"


# --- the job: trusted side -> sandbox ----------------------------------------------------------------

def write_job(io_dir, groups: dict) -> None:
    """Write ``{grade_id: {"oracle": [...], "cases": [{"id", "target", "inputs"}]}}``: arrays of the
    inputs go to ``inputs.npz``, other values (numbers, strings, lists, dicts) to ``job.json``."""
    io_dir = Path(io_dir)
    job, arrays = {}, {}
    for gid, group in groups.items():
        cases = []
        for case in group["cases"]:
            refs = {}
            for name, value in case["inputs"].items():
                if isinstance(value, np.ndarray):
                    key = f"{gid}/{case['id']}/{name}"
                    arrays[key] = value
                    refs[name] = {"array": key}
                else:
                    refs[name] = {"json": value}
            cases.append({"id": case["id"], "target": case["target"], "inputs": refs})
        job[gid] = {"oracle": list(group.get("oracle", ())), "cases": cases}
    (io_dir / JOB).write_text(json.dumps(job))
    np.savez(io_dir / INPUTS, **arrays)


def read_job(io_dir) -> dict:
    """The job as :func:`write_job` was given it (arrays loaded, JSON values as JSON gives them)."""
    io_dir = Path(io_dir)
    job = json.loads((io_dir / JOB).read_text())
    with np.load(io_dir / INPUTS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for group in job.values():
        for case in group["cases"]:
            case["inputs"] = {name: arrays[ref["array"]].copy() if "array" in ref else ref["json"]
                              for name, ref in case["inputs"].items()}
    return job


# --- the outputs: sandbox -> trusted side ------------------------------------------------------------

def flatten(outputs: dict) -> dict:
    """Outputs as flat arrays: dicts become ``key/sub``, tuples and lists of arrays ``key/0``, ``key/1``...

    Raises ``TypeError`` for anything that is no array of numbers (an object array would need a pickle).
    """
    flat = {}
    for key, value in outputs.items():
        _flatten(str(key), value, flat)
    return flat


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}", v, out)
    elif isinstance(value, (tuple, list)) and not all(isinstance(v, (int, float, complex, bool)) for v in value):
        for k, v in enumerate(value):
            _flatten(f"{prefix}/{k}", v, out)
    else:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{prefix} is not an array of numbers (got {type(value).__name__})")
        out[prefix] = arr


def error_record(exc: BaseException) -> dict:
    """What the feedback shows of an exception: its type, message, and the innermost line of the
    student's ``hwlib`` it came from (the checks' own frames left out)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in reversed(frames)
                  if "/hwlib/" in f.filename.replace(os.sep, "/")
                  and "/hwlib/check/" not in f.filename.replace(os.sep, "/")), "")
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "where": where}


def write_outputs(io_dir, gid: str, outputs: dict, errors: dict) -> None:
    """Save one group's ``{case id: flat outputs}`` and ``{case id or "*": error record}``."""
    io_dir = Path(io_dir)
    np.savez(io_dir / f"{gid}.npz", **{f"{cid}/{k}": v for cid, flat in outputs.items() for k, v in flat.items()})
    (io_dir / f"{gid}.errors.json").write_text(json.dumps(errors))


# --- markers -----------------------------------------------------------------------------------------

def mark(io_dir, gid: str, stage: str) -> None:
    """Write the ``stage`` marker ("start" or "done") of group ``gid``."""
    (Path(io_dir) / f"{gid}.{stage}").touch()
