"""Sandbox side of the hidden checks: run the student's hwlib on the job's inputs, save the outputs.

Runs inside the sandbox (``python -I -S sandbox_runner.py JOB_DIR OUT_DIR SUBMISSION_DIR GROUP...``), where
the student's code can rewrite anything in this process. The job is read from JOB_DIR (read-only), the
outputs go to OUT_DIR; the trusted side reads them back as hostile data (``untrusted.py``). It computes no verdict and holds no expected
value: for each group it runs every case's target with ``hwlib.check.run`` (the student's functions)
and writes what they return, through ``protocol.py`` (the file protocol, beside this script; the
trusted side writes the job with the same module and reads the outputs with ``untrusted.py``). ``hwlib.check.run`` gives the student's code fresh copies of the inputs
in the layout the job asks for, and adds to the outputs the record of what each call left of its
inputs; the trusted side judges that record against the inputs it sent. Both come from the submission, whose ``hwlib/check/`` the grader
resets to the kit's version (a given module) before anything runs.

Only the standard library, NumPy and the submission's ``hwlib`` are imported; PyTorch too for the
Q5 observers. A group whose ``oracle`` replaces other questions' layers (so that a bug in Q1 cannot
cost points in Q2) finds them in the module ``hw4_oracle`` on ``$HW4_ORACLE``, a read-only folder the
trusted side mounts for that group's run only, holding those layers and nothing else
(``oracle.py``). In a NumPy-only group PyTorch and the other frameworks are not there at all.

When the job's folder holds ``policy.json`` (``grading/autograde/policy.py``), :class:`Recorder`
notes the forbidden modules the student's own code imports (with the student's frames on the stack
at that moment) and, after each group, the student modules' globals bound to forbidden modules;
``<group>.imports.json`` holds them. Evidence only: the trusted side decides.
"""

import builtins
import importlib
import importlib.util
import json
import os
import sys
import types


def _setup_path(submission):
    site = [p for p in os.environ.get("HW4_SITE_PACKAGES", "").split(os.pathsep) if p]
    sys.path[:] = [submission] + [p for p in sys.path if p] + site


def _forget_hwlib():
    """Fresh modules on the next import: a group's replaced layers must not leak into other groups."""
    for name in [m for m in sys.modules if m == "hwlib" or m.startswith("hwlib.")]:
        del sys.modules[name]


class Recorder:
    """Forbidden imports made by the student's modules, and their globals bound to forbidden modules."""

    def __init__(self, forbidden, modules):
        self.forbidden, self.modules = tuple(forbidden), set(modules)
        self.imports, self.globals, self._busy = [], {}, False
        self._import = builtins.__import__

    def install(self):
        recorder = self

        def hooked_import(name, globals=None, locals=None, fromlist=(), level=0):
            module = recorder._import(name, globals, locals, fromlist, level)
            importer = (globals or {}).get("__name__") if isinstance(globals, dict) else None
            if importer in recorder.modules:
                base = importlib.util.resolve_name("." * level + name, globals.get("__package__")) if level else name
                for dotted in [base] + [f"{base}.{item}" for item in (fromlist or ()) if isinstance(item, str)]:
                    recorder.note(dotted, sys._getframe(1))
            return module

        def hooked_import_module(name, package=None):
            module = import_module(name, package)
            frame = sys._getframe(1)
            if frame.f_globals.get("__name__") in recorder.modules:
                recorder.note(importlib.util.resolve_name(name, package) if name.startswith(".") else name, frame)
            return module

        import_module = importlib.import_module
        builtins.__import__ = hooked_import         # every import statement, also of modules already loaded
        importlib.import_module = hooked_import_module
        sys.addaudithook(self._audit)               # any other way in, on first load

    def forbidden_of(self, dotted):
        return next((f for f in self.forbidden if dotted == f or dotted.startswith(f + ".")), None)

    def note(self, dotted, frame):
        """Record ``dotted`` with the chain of student frames from ``frame`` outwards (innermost first)."""
        if self._busy or not self.forbidden_of(dotted):
            return
        chain = []
        while frame is not None:
            module = frame.f_globals.get("__name__")
            if module in self.modules:
                chain.append([module, getattr(frame.f_code, "co_qualname", frame.f_code.co_name), frame.f_lineno])
            elif chain:
                break
            frame = frame.f_back
        record = {"module": dotted, "chain": chain[:50]}
        if chain and record not in self.imports and len(self.imports) < 1000:
            self.imports.append(record)

    def _audit(self, event, args):
        if event != "import" or self._busy or not self.forbidden_of(str(args[0])):
            return
        self._busy = True
        try:
            # Past the import machinery and this file's hook, the first frame says who imports: a
            # student module's frame counts; the forbidden package importing its own parts does not.
            frame = sys._getframe(1)
            while frame is not None and (frame.f_code.co_filename.startswith("<frozen importlib")
                                         or frame.f_code.co_filename == __file__
                                         or frame.f_globals.get("__name__") == "importlib"):
                frame = frame.f_back
            student = frame is not None and frame.f_globals.get("__name__") in self.modules
        finally:
            self._busy = False
        if student:
            self.note(str(args[0]), frame)

    def audit_globals(self, oracle_names=()):
        """The student modules' globals bound to forbidden modules (or to their functions and classes);
        the layers the grader's oracle put in (the kit's PyTorch versions) are not the student's."""
        self._busy = True
        try:
            oracle = sys.modules.get(ORACLE)
            for name in self.modules:
                module = sys.modules.get(name)
                for key, value in list(vars(module).items()) if module is not None else ():
                    if key in oracle_names and oracle is not None and value is getattr(oracle, key, None):
                        continue
                    try:
                        origin = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
                        origin = origin if isinstance(origin, str) else type(value).__module__
                    except Exception:  # noqa: BLE001 (student objects can raise anything)
                        continue
                    if self.forbidden_of(origin):
                        self.globals.setdefault(name, {})[str(key)] = origin
        finally:
            self._busy = False

    def save(self, io_dir, gid):
        with open(os.path.join(io_dir, f"{gid}.imports.json"), "w") as fh:
            json.dump({"imports": self.imports, "globals": self.globals}, fh)
        self.imports, self.globals = [], {}


def _recorder(job_dir):
    path = os.path.join(job_dir, "policy.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        watch = json.load(fh)
    recorder = Recorder(watch["forbidden"], watch["modules"])
    recorder.install()
    return recorder


ORACLE = "hw4_oracle"


def install_oracle(families):
    """Replace the oracle's layers in ``hwlib.layers`` (before any model module binds them); when the
    student's module does not import, an empty one takes its place first. Returns their names."""
    oracle_dir = os.environ.get("HW4_ORACLE", "")
    if oracle_dir and oracle_dir not in sys.path:
        sys.path.insert(0, oracle_dir)
    oracle = importlib.import_module(ORACLE)
    try:
        layers = importlib.import_module("hwlib.layers")
    except BaseException:  # noqa: BLE001 (a student's module can raise anything on import)
        import hwlib
        layers = types.ModuleType("hwlib.layers")
        sys.modules["hwlib.layers"] = layers
        hwlib.layers = layers
    names = set(oracle.__all__)
    for name in names:
        setattr(layers, name, getattr(oracle, name))
    return names


def run_group(group, protocol, recorder=None):
    """``({case id: flat outputs}, {case id or "*": error record})`` of one group of the job."""
    outputs, errors = {}, {}
    oracle_names = ()
    if group["oracle"]:
        _forget_hwlib()
        try:
            oracle_names = install_oracle(group["oracle"])
        except BaseException as exc:  # noqa: BLE001 (student code can raise anything)
            errors["*"] = protocol.error_record(exc)
    for case in group["cases"]:
        try:
            check = importlib.import_module("hwlib.check")
            outputs[case["id"]] = protocol.flatten(check.run(case["target"], case["inputs"]))
        except BaseException as exc:  # noqa: BLE001
            errors[case["id"]] = protocol.error_record(exc)
    if recorder is not None:
        recorder.audit_globals(oracle_names)
    if group["oracle"]:
        _forget_hwlib()
    return outputs, errors


def _protocol():
    """The file protocol (protocol.py beside this script), loaded by its path before any student code
    runs: a student module of the same name cannot take its place."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.py")
    spec = importlib.util.spec_from_file_location("hw4_protocol", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hw4_protocol"] = module
    spec.loader.exec_module(module)
    return module


def main():
    job_dir, out_dir, submission, groups = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    _setup_path(submission)
    protocol = _protocol()
    os.chdir(submission)

    recorder = _recorder(job_dir)
    job = protocol.read_job(job_dir)
    for gid in groups:
        protocol.mark(out_dir, gid, "start")
        outputs, errors = run_group(job[gid], protocol, recorder)
        protocol.write_outputs(out_dir, gid, outputs, errors)
        if recorder is not None:
            recorder.save(out_dir, gid)
        protocol.mark(out_dir, gid, "done")


if __name__ == "__main__":
    main()
