"""Sandbox side of the hidden checks: run the student's hwlib on the job's inputs, save the outputs.

Runs inside the sandbox (``python -I -S sandbox_runner.py IO_DIR SUBMISSION_DIR GROUP...``), where the
student's code can rewrite anything in this process. It computes no verdict and holds no expected
value: for each group it runs every case's target with ``hwlib.check.run`` (the student's functions)
and writes what they return, through ``hwlib.check.protocol`` (the file protocol the trusted side
reads with the same module). ``hwlib.check.run`` gives the student's code fresh copies of the inputs
in the layout the job asks for, and adds to the outputs the record of what each call left of its
inputs; the trusted side judges that record against the inputs it sent. Both come from the submission, whose ``hwlib/check/`` the grader
resets to the kit's version (a given module) before anything runs.

Only the standard library, NumPy and the submission's ``hwlib`` are imported; PyTorch too for the
Q5 observers and for a group whose ``oracle`` replaces other questions' layers by PyTorch versions
(``hwlib.check.oracle``), so that a bug in Q1 cannot cost points in Q2.
"""

import importlib
import os
import sys


def _setup_path(submission):
    site = [p for p in os.environ.get("HW4_SITE_PACKAGES", "").split(os.pathsep) if p]
    sys.path[:] = [submission] + [p for p in sys.path if p] + site


def _forget_hwlib():
    """Fresh modules on the next import: a group's replaced layers must not leak into other groups."""
    for name in [m for m in sys.modules if m == "hwlib" or m.startswith("hwlib.")]:
        del sys.modules[name]


def run_group(group, protocol):
    """``({case id: flat outputs}, {case id or "*": error record})`` of one group of the job."""
    outputs, errors = {}, {}
    if group["oracle"]:
        _forget_hwlib()
        try:
            importlib.import_module("hwlib.check.oracle").install(group["oracle"])
        except BaseException as exc:  # noqa: BLE001 (student code can raise anything)
            errors["*"] = protocol.error_record(exc)
    for case in group["cases"]:
        try:
            check = importlib.import_module("hwlib.check")
            outputs[case["id"]] = protocol.flatten(check.run(case["target"], case["inputs"]))
        except BaseException as exc:  # noqa: BLE001
            errors[case["id"]] = protocol.error_record(exc)
    if group["oracle"]:
        _forget_hwlib()
    return outputs, errors


def main():
    io_dir, submission, groups = sys.argv[1], sys.argv[2], sys.argv[3:]
    _setup_path(submission)
    os.chdir(submission)
    from hwlib.check import protocol

    job = protocol.read_job(io_dir)
    for gid in groups:
        protocol.mark(io_dir, gid, "start")
        outputs, errors = run_group(job[gid], protocol)
        protocol.write_outputs(io_dir, gid, outputs, errors)
        protocol.mark(io_dir, gid, "done")


if __name__ == "__main__":
    main()
