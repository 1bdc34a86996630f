"""Sandbox side of the hidden checks: run the student's hwlib on given inputs, save the outputs.

Runs inside the sandbox (``python -I -S sandbox_runner.py IO_DIR SUBMISSION_DIR GROUP...``), as the
student's code can rewrite anything in this process. It computes no verdict and holds no expected
value: it reads inputs the trusted side wrote (``IO_DIR/job.json`` + ``IO_DIR/inputs.npz``), calls the
student's functions, and writes what they return (``IO_DIR/<group>.npz``, errors in
``IO_DIR/<group>.errors.json``), then ``IO_DIR/<group>.done``. The trusted side compares.

Only the standard library, NumPy and the submission's ``hwlib`` are imported (PyTorch too when a
group replaces other questions' layers by PyTorch versions built from the public ``hwlib.check``
references, so that a bug in Q1 cannot cost points in Q2).
"""

import importlib
import json
import os
import sys
import traceback
import types


def _setup_path(submission):
    site = [p for p in os.environ.get("HW4_SITE_PACKAGES", "").split(os.pathsep) if p]
    sys.path[:] = [submission] + [p for p in sys.path if p] + site


# --- oracle layers: other questions' layers, computed by PyTorch through the public references ----

def _oracle_layers(names):
    """Replace the named layer families in ``hwlib.layers`` by PyTorch-backed versions."""
    import numpy as np
    try:
        layers = importlib.import_module("hwlib.layers")
    except BaseException:  # the student's module does not import: build one from scratch
        import hwlib
        layers = types.ModuleType("hwlib.layers")
        sys.modules["hwlib.layers"] = layers
        hwlib.layers = layers
    from hwlib.check import torch_reference

    def ref(spec, **inputs):
        return torch_reference(spec, inputs)

    def common(*arrays):  # PyTorch wants one dtype where NumPy would promote
        dtype = np.result_type(*arrays)
        return [np.asarray(a, dtype=dtype) for a in arrays]

    def fc_forward(x, w, b):
        x, w, b = common(x, w, b)
        zero = np.zeros((x.shape[0], w.shape[1]), dtype=x.dtype)
        return ref("fc", x=x, w=w, b=b, dout=zero)["out"], ("fc", x, w, b)

    def fc_backward(dout, cache):
        _, x, w, b = cache
        r = ref("fc", x=x, w=w, b=b, dout=np.asarray(dout, dtype=np.result_type(x, w)))
        return r["dx"], r["dw"], r["db"]

    def relu_forward(x):
        x = np.asarray(x)
        return ref("relu", x=x, dout=np.zeros_like(x))["out"], ("relu", x)

    def relu_backward(dout, cache):
        x = cache[1]
        return ref("relu", x=x, dout=np.asarray(dout, dtype=x.dtype))["dx"]

    def softmax_loss(x, y):
        r = ref("softmax", x=np.asarray(x), y=np.asarray(y))
        return float(r["loss"]), r["dx"]

    def conv_forward(x, w):
        x, w = common(x, w)
        shape = (x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1)
        return ref("conv", x=x, w=w, dout=np.zeros(shape, dtype=np.result_type(x, w)))["out"], ("conv", x, w)

    def conv_backward(dout, cache):
        _, x, w = cache
        r = ref("conv", x=x, w=w, dout=np.asarray(dout, dtype=np.result_type(x, w)))
        return r["dx"], r["dw"]

    def max_pool_forward(x, pool_param):
        x = np.asarray(x)
        p = dict(pool_param)
        S = p["stride"]
        shape = (x.shape[0], x.shape[1], (x.shape[2] - p["pool_height"]) // S + 1, (x.shape[3] - p["pool_width"]) // S + 1)
        out = ref("pool", x=x, pool_param=p, dout=np.zeros(shape, dtype=x.dtype))["out"]
        return out, ("pool", x, p)

    def max_pool_backward(dout, cache):
        _, x, p = cache
        return ref("pool", x=x, pool_param=p, dout=np.asarray(dout, dtype=x.dtype))["dx"]

    families = {"fc": (fc_forward, fc_backward), "relu": (relu_forward, relu_backward), "softmax": (softmax_loss,),
                "conv": (conv_forward, conv_backward), "pool": (max_pool_forward, max_pool_backward)}
    for name in names:
        for func in families[name]:
            setattr(layers, func.__name__, func)


# --- targets -----------------------------------------------------------------------------------

def _resolve(dotted):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _flatten(prefix, value, out):
    """Outputs as flat arrays: dicts become prefix/key, tuples prefix/0, prefix/1, ..."""
    import numpy as np
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}", v, out)
    elif isinstance(value, (tuple, list)) and not _is_numeric_sequence(value):
        for k, v in enumerate(value):
            _flatten(f"{prefix}/{k}", v, out)
    else:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{prefix} is not an array of numbers (got {type(value).__name__})")
        out[prefix] = arr


def _is_numeric_sequence(value):
    return all(isinstance(v, (int, float, complex, bool)) for v in value)


def run_layer(spec, inputs, options, case):
    from hwlib.check import run_layer as run
    try:  # the recurrent layers' specs register themselves into hwlib.check.SPECS
        rnn_specs = importlib.import_module("hwlib.checks_rnn").RNN_LAYERS
    except (ImportError, AttributeError):
        rnn_specs = ()
    # Recurrent layers run from hwlib.rnn_layers directly: Q4 must not depend on Q1's module.
    module = importlib.import_module("hwlib.rnn_layers") if spec in rnn_specs else None
    return run(spec, inputs, module)


def run_model(spec, inputs, options, case):
    """Build ``options['class']`` from the case's constructor arguments; either return its initial
    parameters ("init"), or load the given parameters and return scores, loss and gradients ("loss")."""
    import numpy as np
    cls = _resolve(options["class"])
    init = {k: tuple(v) if isinstance(v, list) else v for k, v in case["init"].items()}
    init["dtype"] = np.dtype(init["dtype"])
    model = cls(**init, rng=np.random.default_rng(case["seed"]))
    if case["check"] == "init":
        return {"params": dict(model.params)}
    for key, value in inputs.items():
        if key not in ("X", "y", "features", "captions", "max_length"):
            if key not in model.params:
                raise KeyError(f"model.params has no {key!r} (it has {sorted(model.params)})")
            model.params[key] = np.array(value, copy=True)
    if case["check"] == "sample":
        return {"captions": model.sample(inputs["features"], inputs["max_length"])}
    outputs = {}
    if "captions" in inputs:
        loss, grads = model.loss(inputs["features"], inputs["captions"])
    else:
        outputs["scores"] = model.loss(inputs["X"])
        loss, grads = model.loss(inputs["X"], inputs["y"])
    if not isinstance(grads, dict):
        raise TypeError(f"loss must return (loss, grads) with grads a dict; got {type(grads).__name__}")
    return {**outputs, "loss": np.asarray(loss, dtype=np.float64), "grads": dict(grads)}


def run_transfer(spec, inputs, options, case):
    """Observe the student's ``freeze`` / ``finetune`` / ``train_model`` (Q5) with the public checks'
    ``observe_*`` half (``hwlib.checks_transfer``); the trusted side applies its ``judge`` half."""
    import numpy as np
    checks = importlib.import_module("hwlib.checks_transfer")
    seed = int(case["seed"])
    if spec == "train_model":
        obs = checks.observe_train_model(int(inputs["num_epochs"]), seed)
    else:
        obs = checks.observe_head(spec, int(inputs["num_classes"]), seed)
    return {k: np.asarray(v) for k, v in obs.items()}


TARGETS = {"layer": run_layer, "model": run_model, "transfer": run_transfer}


# --- main --------------------------------------------------------------------------------------

def _forget_hwlib():
    for name in [m for m in sys.modules if m == "hwlib" or m.startswith("hwlib.")]:
        del sys.modules[name]


def _load_inputs(case, arrays):
    inputs = {}
    for name, ref in case["inputs"].items():
        inputs[name] = arrays[ref["array"]].copy() if "array" in ref else ref["json"]
    return inputs


def main():
    io_dir, submission, groups = sys.argv[1], sys.argv[2], sys.argv[3:]
    _setup_path(submission)
    os.chdir(submission)
    import numpy as np
    with open(os.path.join(io_dir, "job.json")) as fh:
        job = json.load(fh)
    with np.load(os.path.join(io_dir, "inputs.npz"), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for gid in groups:
        group = job["groups"][gid]
        open(os.path.join(io_dir, f"{gid}.start"), "w").close()
        outputs, errors = {}, {}
        if group.get("oracle"):
            _forget_hwlib()  # fresh modules: the patched layers must not leak into other groups
            try:
                _oracle_layers(group["oracle"])
            except BaseException as exc:  # noqa: BLE001 (student code can raise anything)
                errors["*"] = {"type": type(exc).__name__, "message": str(exc)[:2000]}
        for case in group["cases"]:
            kind, _, spec = case.get("target", group["target"]).partition(":")
            try:
                result = TARGETS[kind](spec, _load_inputs(case, arrays), group.get("options", {}), case)
                flat = {}
                for key, value in result.items():
                    _flatten(key, value, flat)
                outputs.update({f"{case['id']}/{k}": v for k, v in flat.items()})
            except BaseException as exc:  # noqa: BLE001
                tb = traceback.extract_tb(exc.__traceback__)
                where = next((f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in reversed(tb)
                              if "/hwlib/" in f.filename.replace(os.sep, "/")), "")
                errors[case["id"]] = {"type": type(exc).__name__, "message": str(exc)[:2000], "where": where}
        if group.get("oracle"):
            _forget_hwlib()
        np.savez(os.path.join(io_dir, f"{gid}.npz"), **outputs)
        with open(os.path.join(io_dir, f"{gid}.errors.json"), "w") as fh:
            json.dump(errors, fh)
        open(os.path.join(io_dir, f"{gid}.done"), "w").close()


if __name__ == "__main__":
    main()
