"""The code the sample submissions put into a student's folder (grading/samples.py builds them).

* correct variants that must get full marks: the naive loop layers of ``bench/naive.py`` (read as
  text, the one home of those loops), the convolution by the given Q6 formulas;
* the convolution by PyTorch: right values, but against the NumPy-only policy of Q3;
* ``BUGS``: one classic mistake per task, as the body of its solution region;
* hostile code (tries to leave the sandbox, then cheats if anything worked) and forged Q5 observers
  (a given module edited to report a perfect freeze / finetune).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from course.paths import REPO

__all__ = ["NAIVE_CALLS", "naive_body", "LOOP_BODIES", "FORMULA_CONV", "TORCH_CONV", "BUGS", "HOSTILE_TARGETS", "hostile_prelude",
           "HOSTILE_CHEAT", "FORGED", "forged_checks", "SYMLINK_WAS_HERE", "trusted_side_attack", "HELPER_MODULE",
           "TORCH_HELPER", "CONV_BY_HELPER", "CONV_BY_REFERENCE", "HOG"]


# --- variants that must get full marks ---------------------------------------------------------

NAIVE = REPO / "bench" / "naive.py"   # the naive loop layers, kept once (bench times them)
# What each solution region does with the naive layer defined in front of it. bench/naive.py's ReLU and
# softmax loops compute in float64 whatever the input (np.zeros allocates float64): the sample casts their
# results back to the input's dtype, as the checks require (float32 in gives float32 out).
NAIVE_CALLS = {
    "fc_forward": "out, _ = naive_fc_forward(x, w, b)",
    "fc_backward": "dx, dw, db = naive_fc_backward(dout, cache)",
    "relu_forward": "out, _ = naive_relu_forward(x)\nout = out.astype(x.dtype)",
    "relu_backward": "dx = naive_relu_backward(dout, cache).astype(dout.dtype)",
    "softmax_loss": "loss, dx = naive_softmax_loss(x, y)\ndx = dx.astype(x.dtype)",
    "conv_forward": "out, cache = naive_conv_forward(x, w)",
    "conv_backward": "dx, dw = naive_conv_backward(dout, cache)",
}


def naive_body(function: str, call: str | None = None) -> str:
    """A solution region holding bench/naive.py's loop version of ``function`` and the call of it.

    The source is read as text (importing ``bench`` would pin the thread counts of this process)
    and defined in place as ``naive_<function>``: a submission has no ``bench/`` to import from.
    """
    source = NAIVE.read_text()
    node = next((n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if node is None:
        raise ValueError(f"{NAIVE.relative_to(REPO)} has no function {function}")
    definition = ast.get_source_segment(source, node).replace(f"def {function}(", f"def naive_{function}(", 1)
    return definition + "\n" + (call or NAIVE_CALLS[function]) + "\n"


def _changed(body: str, old: str, new: str) -> str:
    """``body`` with ``old`` replaced by ``new``; raises if ``old`` is not there (the bug would silently vanish)."""
    if old not in body:
        raise ValueError(f"cannot plant a bug: {old!r} is not in\n{body}")
    return body.replace(old, new)


LOOP_BODIES = {function: naive_body(function) for function in NAIVE_CALLS}

# The convolution by the Q6 formulas of the given module hwlib/conv_formulas.py (a student may call them).
FORMULA_CONV = {
    "conv_forward": """
        from .conv_formulas import conv_by_definition
        out, cache = conv_by_definition(x, w), (x, w)
    """,
    "conv_backward": """
        from .conv_formulas import dk_by_formula, dx_by_formula
        x, w = cache
        dx, dw = dx_by_formula(dout, w), dk_by_formula(x, dout)
    """,
}

# Right values by the wrong means: the convolution by PyTorch, which Q3's NumPy-only policy forbids
# (course/questions/q3_cnn_mnist.toml; grading/autograde/policy.py): the values pass every hidden case.
TORCH_CONV = {
    "conv_forward": """
        import torch
        dtype = np.result_type(x, w)
        xt, wt = (torch.from_numpy(np.array(a, dtype=dtype)) for a in (x, w))
        out, cache = torch.nn.functional.conv2d(xt, wt).numpy(), (x, w)
    """,
    "conv_backward": """
        import torch
        x, w = cache
        dtype = np.result_type(x, w, dout)
        xt, wt = (torch.from_numpy(np.array(a, dtype=dtype)).requires_grad_() for a in (x, w))
        torch.nn.functional.conv2d(xt, wt).backward(torch.from_numpy(np.array(dout, dtype=dtype)))
        dx, dw = xt.grad.numpy(), wt.grad.numpy()
    """,
}

# Bugs, each the body of one solution region (our own code: the samples do not depend on how the
# reference is written, only on the function signatures and the given code around the regions).
BUGS = {
    "fc_db": ("layers.py", {"fc_backward": LOOP_BODIES["fc_backward"] + "db = dout  # BUG: not summed over the batch\n"}),
    "conv_dw": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"], "conv_backward": _changed(
        LOOP_BODIES["conv_backward"], "dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]",
        "dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW] if n == 0 else 0  # BUG: first sample only")}),
    "softmax_shift": ("layers.py", {"softmax_loss": """
        N = x.shape[0]
        probs = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)  # BUG: no max shift (overflows)
        loss = float(-np.log(probs[np.arange(N), y]).mean())
        dx = probs.copy()
        dx[np.arange(N), y] -= 1
        dx /= N
    """}),
    "hang": ("layers.py", {"relu_forward": """
        while True:  # BUG: never returns
            pass
    """}),
    "crash": ("layers.py", {"fc_backward": """
        import os
        os._exit(3)  # BUG: kills its own process
    """}),
    "temporal_fc_db": ("rnn_layers.py", {"temporal_fc_backward": """
        dx = dout @ w.T
        dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
        db = dout[:, -1].sum(axis=0)  # BUG: the last time step only, not summed over time
    """}),
    "caption_mask": ("rnn_layers.py", {"temporal_softmax_loss": """
        shifted = x - x.max(axis=2, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        picked = np.take_along_axis(log_probs, y[..., None], axis=2)[..., 0]
        loss = float(-picked.sum() / N)  # BUG: the mask is ignored: <NULL> targets count
        dx = np.exp(log_probs)
        np.put_along_axis(dx, y[..., None], np.take_along_axis(dx, y[..., None], axis=2) - 1, axis=2)
        dx /= N
    """}),
    "freeze_all_params": ("transfer.py", {"freeze": """
        model = pretrained()
        for param in model.parameters():
            param.requires_grad = False
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        model = model.to(device)
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)  # BUG: not the new head's only
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
        model = train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler,
                            num_epochs=num_epochs, verbose=verbose)
    """}),
    "train_model_grads": ("transfer.py", {"train_model": """
        model.train(phase == "train")
        for inputs, labels in batches:
            inputs, labels = inputs.to(device), labels.to(device)
            with torch.set_grad_enabled(phase == "train"):  # BUG: the gradients are never zeroed
                outputs = model(inputs)
                loss = criterion(outputs, labels)
                if phase == "train":
                    loss.backward()
                    optimizer.step()
            running_loss += loss.item() * inputs.size(0)
            running_corrects += int((outputs.argmax(dim=1) == labels).sum())
        if phase == "train" and scheduler is not None:
            scheduler.step()
    """}),
    # Right values, but the caller's arrays are destroyed, or only C-ordered inputs work, or the dtype
    # is lost: the checks look beyond the returned values (hwlib/check/watch.py).
    "relu_inplace": ("layers.py", {"relu_forward": """
        x[x < 0] = 0  # BUG: clamps the caller's array in place
        return x, x
    """}),
    "conv_dout": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"],
                                "conv_backward": LOOP_BODIES["conv_backward"] + "dout[...] = 0  # BUG: zeroes the caller's dout\n"}),
    "conv_c_order": ("layers.py", {"conv_forward": """
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        s = x.itemsize  # BUG: strides computed from the shape (right for a C-ordered x only; x.strides is right)
        windows = np.lib.stride_tricks.as_strided(x, shape=(N, C, H - HH + 1, W - WW + 1, HH, WW),
                                                  strides=(C * H * W * s, H * W * s, W * s, s, W * s, s))
        out = np.einsum("nchwij,fcij->nfhw", windows, w)
        cache = (x, w)
    """, "conv_backward": LOOP_BODIES["conv_backward"]}),
    "pool_float64": ("layers.py", {
        "max_pool_forward": _changed(
            naive_body("max_pool_forward", "out, cache = naive_max_pool_forward(x, pool_param)"),
            "out = np.empty((N, C, Ho, Wo), dtype=x.dtype)", "out = np.zeros((N, C, Ho, Wo))  # BUG: float64 always"),
        "max_pool_backward": naive_body("max_pool_backward", "dx = naive_max_pool_backward(dout, cache)")}),
}

HOSTILE_TARGETS = ("course/questions/q1_layers.toml", "grading/autograde/hidden.py", "hwlib/layers.py",
                   "build/course/gradebook.db")


def hostile_prelude(repo: Path) -> str:
    """Code run on import of the hostile layers.py: it tries to get out; if anything works, it cheats.

    Every attempt is harmless where it succeeds by mistake (a signal 0 to init only tests permission).
    """
    reads = [str(repo / t) for t in HOSTILE_TARGETS] + ["../../perfect/submission/hwlib/layers.py", "/etc/shadow"]
    writes = [str(repo / "HOSTILE_WAS_HERE"), str(repo / "build" / "course" / "HOSTILE_WAS_HERE"),
              "../../HOSTILE_WAS_HERE", "../../perfect/submission/hwlib/layers.py"]
    return textwrap.dedent(f'''
        # --- a hostile submission: each attempt below must fail in the grading sandbox -----------
        import os as _os, signal as _signal, socket as _socket
        _BREACHED = []

        def _attempt(what, action, breach=True):
            try:
                action()
                if breach:
                    _BREACHED.append(what)
                print("HOSTILE: succeeded:", what)
            except BaseException as exc:  # noqa: BLE001
                print("HOSTILE: blocked:", what, type(exc).__name__)

        for _path in {reads!r}:
            _attempt("read " + _path, lambda p=_path: print(open(p, "rb").read(200)))
        for _path in {writes!r}:
            _attempt("write " + _path, lambda p=_path: open(p, "w").write("pwned"))
        _attempt("write /tmp (private to the sandbox)", lambda: open("/tmp/HOSTILE_WAS_HERE", "w").write("x"), breach=False)
        _attempt("connect 1.1.1.1:53", lambda: _socket.create_connection(("1.1.1.1", 53), timeout=2))
        _attempt("connect 10.0.0.1:80", lambda: _socket.create_connection(("10.0.0.1", 80), timeout=2))
        _attempt("signal init (permission probe)", lambda: _os.kill(1, 0))
        _attempt("allocate 64 GB", lambda: bytearray(64 << 30))
        _attempt("become root", lambda: _os.setuid(0))
        # -------------------------------------------------------------------------------------------
    ''')


HOSTILE_CHEAT = """

if _BREACHED:  # something got out: the hostile code now tries to cheat, which would show in its score
    def fc_forward(x, w, b):
        return None, None
"""


FORGED = "hwlib/check/transfer_observe.py"   # the given module the forged-checks sample edits


def forged_checks() -> bytes:
    """The kit's hwlib/check/transfer_observe.py with an observer that reports a perfect freeze / finetune
    without calling anything. The sandbox runs the observers, so the grader must reset the given
    modules (those without solution regions) to the kit's version before it runs anything."""
    forged = '''

def observe_scenario(func, settings, seed):  # FORGED: reports what a correct implementation shows
    head = ["fc.weight", "fc.bias"]
    names = ["features.0.weight", "features.1.weight", "features.1.bias"] + head
    lr, gamma, step_size, epochs = settings["lr"], settings["gamma"], settings["step_size"], settings["num_epochs"]
    return {"calls": 1, "pretrained_calls": 1, "from_pretrained": True, "not_loaded": [], "returned_is_trained": True,
            "head_is_linear": True, "head_type": "Linear", "head_is_new": True, "names": names,
            "head_shape": [settings["num_ftrs"], settings["num_classes"]], "foreign": 0, "passed_through": True,
            "trainable": head if func == "freeze" else names, "optimized": head if func == "freeze" else names,
            "is_sgd": True, "optimizer_type": "SGD", "group_lr": [lr], "group_momentum": [settings["momentum"]],
            "criterion_type": "CrossEntropyLoss", "criterion_error": 0.0, "criterion_problem": "", "train_error": "",
            "epochs_passed": epochs, "epoch_lr": [lr * gamma ** (e // step_size) for e in range(epochs)]}
'''
    return ((REPO / FORGED).read_text() + forged).encode()


# --- attacks on the trusted side (grading/autograde/untrusted.py, sandbox.py) ----------------------
# Each replaces the result files the runner writes (through numpy.savez, which the runner's protocol
# module calls: patched on import of layers.py, it stays patched for every later group of that
# sandboxed process) and plants links where the trusted side once wrote notebooks. Contained, each
# costs exactly the groups whose process imported layers.py, with a message naming what it did.

SYMLINK_WAS_HERE = "SYMLINK_WAS_HERE"


def trusted_side_attack(kind: str, repo: Path) -> str:
    """Module-level code for layers.py: ``kind`` is "symlink", "fifo" or "bomb"."""
    targets = [str(repo / SYMLINK_WAS_HERE), str(repo / "README.md")]
    return textwrap.dedent(f'''
        # --- a hostile submission: it replaces the files the grader reads back ------------------------
        import os as _os, zipfile as _zipfile
        _KIND, _TARGETS = {kind!r}, {targets!r}
        for _folder in ("/out", "/sandbox/io", "/sandbox", "io"):
            for _name in ("01_layers.in.ipynb", "02_softmax_mnist.in.ipynb", "job.json", "policy.json"):
                try:
                    _os.makedirs(_folder, exist_ok=True)
                    _os.symlink(_TARGETS[hash(_name) % 2], _os.path.join(_folder, _name))
                except OSError:
                    pass

        def _hostile_savez(file, *args, **kwds):
            path = _os.fspath(file)
            if _KIND == "symlink":
                _os.symlink(_TARGETS[1], path)          # the grader would read a host file through it
            elif _KIND == "fifo":
                _os.mkfifo(path)                        # an open() of it never returns
            else:                                       # 300 MiB of zeros in a few hundred kB
                with _zipfile.ZipFile(path, "w", _zipfile.ZIP_DEFLATED) as zf:
                    with zf.open("c/out.npy", "w", force_zip64=True) as fh:
                        np.lib.format.write_array_header_1_0(
                            fh, {{"descr": "|u1", "fortran_order": False, "shape": (300 << 20,)}})
                        zeros = bytes(1 << 22)
                        for _ in range(75):
                            fh.write(zeros)

        np.savez = _hostile_savez
        # -------------------------------------------------------------------------------------------
    ''')


# The convolution by PyTorch from a helper module of the student's own (the static scan reads every
# module; the sandbox of a NumPy-only group has no PyTorch to import).
HELPER_MODULE = "hwlib/fastconv.py"
TORCH_HELPER = '''"""My fast convolution."""
import numpy as np


def conv2d(x, w):
    import torch
    return torch.nn.functional.conv2d(torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(w))).numpy()


def conv2d_grads(x, w, dout):
    import torch
    xt, wt = torch.from_numpy(np.array(x)).requires_grad_(), torch.from_numpy(np.array(w)).requires_grad_()
    torch.nn.functional.conv2d(xt, wt).backward(torch.from_numpy(np.array(dout)))
    return xt.grad.numpy(), wt.grad.numpy()
'''
CONV_BY_HELPER = {
    "conv_forward": """
        from .fastconv import conv2d
        out, cache = conv2d(x, w), (x, w)
    """,
    "conv_backward": """
        from .fastconv import conv2d_grads
        x, w = cache
        dx, dw = conv2d_grads(x, w, dout)
    """,
}
# The convolution by the kit's own references: the public checks' (PyTorch) and the grader's oracle.
CONV_BY_REFERENCE = {
    "conv_forward": """
        try:
            import hw4_oracle
            out, cache = hw4_oracle.conv_forward(x, w)
        except ImportError:
            from hwlib import check
            shape = (x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1)
            out = check.reference("conv", {"x": x, "w": w, "dout": np.zeros(shape, x.dtype)})["out"]
            cache = (x, w)
    """,
    "conv_backward": """
        from hwlib import check
        x, w = cache
        ref = check.reference("conv", {"x": x, "w": w, "dout": dout})
        dx, dw = ref["dx"], ref["dw"]
    """,
}
# A CPU hog: relu_forward starts every process it may and spins in each, forever.
HOG = {"relu_forward": """
        import os
        for _ in range(60):
            try:
                if os.fork() == 0:
                    while True:
                        pass
            except OSError:
                break
        while True:
            pass
    """}


# --- value bugs whose wrong output the checks' diagnosis names (hwlib/check/diagnose.py) -----------------
# Appended to BUGS: each a classic mistake whose output is a known transform of the right one (a factor,
# a transpose, one sample only, the kernel flipped...), or, for the last ones, a mistake outside that
# family, which must get no diagnosis. tests/test_check_diagnose.py runs each through the public check
# and the grader's judge and checks the sentence.
_POOL_LOOPS = {"max_pool_forward": naive_body("max_pool_forward", "out, cache = naive_max_pool_forward(x, pool_param)")}
VALUE_BUGS = {
    "fc_db_mean": ("layers.py", {"fc_backward": """
        x_flat = x.reshape(x.shape[0], -1)
        dx = (dout @ w.T).reshape(x.shape)
        dw = x_flat.T @ dout
        db = dout.mean(axis=0)  # BUG: averaged over the batch, not summed
    """}),
    "fc_dw_transposed": ("layers.py", {"fc_backward": """
        x_flat = x.reshape(x.shape[0], -1)
        dx = (dout @ w.T).reshape(x.shape)
        dw = dout.T @ x_flat  # BUG: (M, D), the transpose of x_flat.T @ dout
        db = dout.sum(axis=0)
    """}),
    "fc_dx_fortran": ("layers.py", {"fc_backward": """
        x_flat = x.reshape(x.shape[0], -1)
        dx = (dout @ w.T).reshape(x.shape, order="F")  # BUG: x was flattened in C order
        dw = x_flat.T @ dout
        db = dout.sum(axis=0)
    """}),
    "relu_mask_inverted": ("layers.py", {"relu_backward": """
        dx = dout * (x < 0)  # BUG: the mask inverted
    """}),
    "conv_dx_first_sample": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"], "conv_backward": _changed(
        LOOP_BODIES["conv_backward"], "dx[n, :, i:i + HH, j:j + WW] += dout[n, f, i, j] * w[f]",
        "dx[n, :, i:i + HH, j:j + WW] += dout[n, f, i, j] * w[f] * (n == 0)  # BUG: the first sample only")}),
    "conv_true_convolution": ("layers.py", {"conv_forward": _changed(
        LOOP_BODIES["conv_forward"], "* w[f])", "* w[f, :, ::-1, ::-1])  # BUG: the kernel flipped (true convolution)"),
        "conv_backward": LOOP_BODIES["conv_backward"]}),
    "conv_dw_overwritten": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"], "conv_backward": _changed(
        LOOP_BODIES["conv_backward"], "dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]",
        "dw[f] = dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]  # BUG: = where += belongs")}),
    "pool_dx_whole_window": ("layers.py", {**_POOL_LOOPS, "max_pool_backward": _changed(
        naive_body("max_pool_backward", "dx = naive_max_pool_backward(dout, cache)"),
        "dx[n, c, i * S + a, j * S + b] += dout[n, c, i, j]",
        "dx[n, c, i * S:i * S + HH, j * S:j * S + WW] += dout[n, c, i, j]  # BUG: the whole window, not its maximum")}),
    "softmax_dx_sign": ("layers.py", {"softmax_loss": """
        N = x.shape[0]
        shifted = x - x.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_probs[np.arange(N), y].mean())
        dx = -np.exp(log_probs)
        dx[np.arange(N), y] += 1  # BUG: one-hot minus softmax: the gradient's sign flipped
        dx /= N
    """}),
    "softmax_loss_summed": ("layers.py", {"softmax_loss": """
        N = x.shape[0]
        shifted = x - x.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_probs[np.arange(N), y].sum())  # BUG: summed over the batch, not averaged
        dx = np.exp(log_probs)
        dx[np.arange(N), y] -= 1
        dx /= N
    """}),
    "rnn_off_by_one": ("rnn_layers.py", {"rnn_forward": """
        xw = x @ Wx + b
        h = np.empty((T, N, H), dtype=np.result_type(xw, h0, Wh))
        prev_h = h0
        for t in range(T):
            h[t] = prev_h  # BUG: stores the state before the step: off by one time step
            prev_h = np.tanh(xw[t] + prev_h @ Wh)
    """}),
    "rnn_h0_ignored": ("rnn_layers.py", {"rnn_forward": """
        xw = x @ Wx + b
        h = np.empty((T, N, H), dtype=np.result_type(xw, h0, Wh))
        prev_h = np.zeros_like(h0)  # BUG: starts from zeros, not from h0
        for t in range(T):
            prev_h = h[t] = np.tanh(xw[t] + prev_h @ Wh)
    """}),
    "rnn_step_db_mean": ("rnn_layers.py", {"rnn_step_backward": """
        da = dnext_h * (1 - next_h ** 2)
        dx = da @ Wx.T
        dprev_h = da @ Wh.T
        dWx = x.T @ da
        dWh = prev_h.T @ da
        db = da.mean(axis=0)  # BUG: averaged over the batch, not summed
    """}),
    # Outside the family: no transform of the right answer; the diagnosis must stay silent.
    "word_embedding_assigned": ("rnn_layers.py", {"word_embedding_backward": """
        dW = np.zeros(W.shape, dtype=np.result_type(dout, W))
        dW[x.ravel()] = dout.reshape(-1, W.shape[1])  # BUG: repeated words overwrite, not add up
    """}),
    "rnn_no_carry": ("rnn_layers.py", {"rnn_backward": """
        T, N, H = h.shape
        da = dh * (1 - h ** 2)  # BUG: no gradient carried back from step t + 1
        dh0 = da[0] @ Wh.T
        h_prev = np.concatenate([h0[None], h[:-1]], axis=0)
        da_rows = da.reshape(T * N, H)
        dx = da @ Wx.T
        dWx = x.reshape(T * N, -1).T @ da_rows
        dWh = h_prev.reshape(T * N, H).T @ da_rows
        db = da_rows.sum(axis=0)
    """}),
    "softmax_no_log": ("layers.py", {"softmax_loss": """
        N = x.shape[0]
        shifted = x - x.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = float(-probs[np.arange(N), y].mean())  # BUG: the probability, not its log
        dx = probs.copy()
        dx[np.arange(N), y] -= 1
        dx /= N
    """}),
}
BUGS.update(VALUE_BUGS)
__all__ += ["VALUE_BUGS"]


# --- Q5 by ResNet-18's parameter names and children ---------------------------------------------------
# The checks run finetune and freeze on torchvision's ResNet-18 too (hwlib/check/transfer_observe.py), so
# that code written by its parameter names (conv1.weight ... layer4.1.bn2.bias, fc.weight) or children is
# judged on them. Correct ways to write each (full marks), and the partial freeze that trains layer4 (a
# name the small stand-in network has not): tests/test_check_transfer_names.py runs every one of them
# through the public check and the hidden cases; the samples grade one of each end to end.
_TRAIN = """
model = model.to(device)
criterion = nn.CrossEntropyLoss()
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
model = train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler,
                    num_epochs=num_epochs, verbose=verbose)
"""
FREEZE_VARIANTS = {
    "named_parameters": """
model = pretrained()
for name, param in model.named_parameters():
    param.requires_grad = False
model.fc = nn.Linear(model.fc.in_features, num_classes)
head = [param for name, param in model.named_parameters() if name.startswith("fc.")]
optimizer = torch.optim.SGD(head, lr=lr, momentum=momentum)
""" + _TRAIN,
    "children": """
model = pretrained()
for child in model.children():
    for param in child.parameters():
        param.requires_grad = False
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=lr, momentum=momentum)
""" + _TRAIN,
    "requires_grad_": """
model = pretrained().requires_grad_(False)
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD(model.fc.parameters(), lr=lr, momentum=momentum)
""" + _TRAIN,
    "parameter_list": """
model = pretrained()
model.fc = nn.Linear(model.fc.in_features, num_classes)
head = list(model.fc.parameters())
for param in model.parameters():
    param.requires_grad = any(param is p for p in head)
optimizer = torch.optim.SGD(head, lr=lr, momentum=momentum)
""" + _TRAIN,
    "by_name_after_the_head": """
model = pretrained()
model.fc = nn.Linear(model.fc.in_features, num_classes)
for name, param in model.named_parameters():
    param.requires_grad = name.startswith("fc.")
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum)
""" + _TRAIN,
}
FINETUNE_VARIANTS = {
    "named_parameters": """
model = pretrained()
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD([param for name, param in model.named_parameters()], lr=lr, momentum=momentum)
""" + _TRAIN,
    "children": """
model = pretrained()
model.fc = nn.Linear(model.fc.in_features, num_classes)
params = [param for child in model.children() for param in child.parameters()]
optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
""" + _TRAIN,
    "requires_grad_": """
model = pretrained().requires_grad_(True)
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=lr, momentum=momentum)
""" + _TRAIN,
    "parameter_groups": """
model = pretrained()
model.fc = nn.Linear(model.fc.in_features, num_classes)
backbone = [param for name, param in model.named_parameters() if not name.startswith("fc.")]
optimizer = torch.optim.SGD([{"params": backbone}, {"params": model.fc.parameters()}], lr=lr, momentum=momentum)
""" + _TRAIN,
}
TRANSFER_BUGS = {
    # Right on the stand-in (no parameter of it is called layer4*), wrong on ResNet-18: layer4 trains too.
    "freeze_layer4": ("transfer.py", {"freeze": """
model = pretrained()
for name, param in model.named_parameters():
    if not name.startswith("layer4"):  # BUG: layer4 stays trainable: not a frozen feature extractor
        param.requires_grad = False
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum)
""" + _TRAIN}),
    "freeze_layer4_head_optimized": ("transfer.py", {"freeze": """
model = pretrained()
for name, param in model.named_parameters():
    if not name.startswith("layer4"):  # BUG: layer4 keeps requires_grad (its gradients are computed)
        param.requires_grad = False
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD(model.fc.parameters(), lr=lr, momentum=momentum)
""" + _TRAIN}),
    "finetune_stem_frozen": ("transfer.py", {"finetune": """
model = pretrained()
for name, param in model.named_parameters():
    if name.startswith(("conv1.", "bn1.")):  # BUG: the stem frozen: fine-tuning trains every parameter
        param.requires_grad = False
model.fc = nn.Linear(model.fc.in_features, num_classes)
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum)
""" + _TRAIN}),
}
BUGS.update(TRANSFER_BUGS)
__all__ += ["FREEZE_VARIANTS", "FINETUNE_VARIANTS", "TRANSFER_BUGS"]
