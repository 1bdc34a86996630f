"""hwlib.check: the one check table and its engine, the file protocol, the oracle and the sandbox runner.

Every target's public check passes on the reference and a broken implementation fails, naming the
output; the table is explicit (no registration on import, no student module or PyTorch imported with
it); the protocol round-trips and refuses what the trusted side must not read; the sandbox runner,
run as the grader runs it (minus the sandbox), earns the reference every point of its groups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from grading.autograde import hidden

from hwlib import check, layers
from grading.autograde import protocol
from hwlib.check import engine

REPO = check.__file__.rsplit("/hwlib/", 1)[0]


@pytest.fixture(autouse=True)
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the table -----------------------------------------------------------------------------------

def test_the_table_is_assembled_from_the_family_modules():
    families = (check.layers, check.rnn, check.models, check.transfer, check.optim)
    assert list(check.TARGETS) == [t.name for f in families for t in f.TARGETS]
    assert {"fc", "rnn", "SoftmaxClassifier.loss", "CaptioningRNN.sample", "train_model", "finetune",
            "freeze"} <= set(check.TARGETS)
    assert check.select(["ConvNet"]) == ["ConvNet.init", "ConvNet.loss"]
    assert check.select([]) == list(check.TARGETS)
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        check.select(["nope"])


def test_importing_the_checks_imports_no_student_module_and_no_torch():
    """The sandbox imports hwlib.check before it replaces layers (oracle): nothing may bind them early."""
    code = ("import sys, hwlib.check; "
            "bad = [m for m in ('hwlib.layers', 'hwlib.rnn_layers', 'hwlib.classifiers', 'hwlib.captioning', "
            "'hwlib.transfer') if m in sys.modules]; "
            "print(bad, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.split("] ")[0] == "[" and out.strip().endswith("False"), out


@pytest.mark.parametrize("name", list(check.TARGETS))
def test_every_public_check_passes_on_the_reference(name, capsys):
    check.check(name)
    assert name.partition(".")[0] in capsys.readouterr().out


def test_a_broken_layer_fails_naming_its_output(monkeypatch):
    original = layers.fc_backward
    monkeypatch.setattr(layers, "fc_backward", lambda dout, cache: (lambda g: (g[0], g[1], 2 * g[2]))(original(dout, cache)))
    with pytest.raises(AssertionError, match="fc db: worst relative error"):
        check.check("fc", verbose=False)


def test_a_broken_model_fails_naming_its_parameter(monkeypatch):
    from hwlib.classifiers import SoftmaxClassifier
    original = SoftmaxClassifier.loss

    def loss(self, X, y=None):
        out = original(self, X, y)
        if y is None:
            return out
        return out[0], {**out[1], "b1": 0 * out[1]["b1"]}

    monkeypatch.setattr(SoftmaxClassifier, "loss", loss)
    with pytest.raises(AssertionError, match=r"SoftmaxClassifier.loss grads\['b1'\]"):
        check.check("SoftmaxClassifier.loss", verbose=False)


def test_a_wrong_initialisation_fails():
    inputs = check.draw("ConvNet.init", 3, "float32", weight_scale=1e-2)
    outputs = check.run("ConvNet.init", inputs)
    expected = check.reference("ConvNet.init", inputs)
    assert check.judge("ConvNet.init", outputs, expected, inputs)
    with pytest.raises(AssertionError, match="standard deviation"):
        check.judge("ConvNet.init", {**outputs, "params/W2": outputs["params/W2"] * 2}, expected, inputs)
    with pytest.raises(AssertionError, match=r"params\['b2'\] must start at 0"):
        check.judge("ConvNet.init", {**outputs, "params/b2": outputs["params/b2"] + 1}, expected, inputs)
    wider = {**outputs, "params/W1": outputs["params/W1"].astype(np.float64)}
    check.judge("ConvNet.init", wider, expected, inputs)     # a dtype change is a note (tests/test_check_dtypes.py)
    with pytest.raises(AssertionError, match="ConvNet.init params/W1 has dtype float64; expected float32"):
        check.judge("ConvNet.init", wider, expected, inputs, strict_dtypes=True)


def test_model_draws_build_the_reference_model_once():
    models = check.models
    models._reference_model.cache_clear()
    inputs = check.draw("CaptioningRNN.loss", 11, "float64", vocab_size=8, input_dim=4, wordvec_dim=3, hidden_dim=5,
                        N=2, T=4)
    check.reference("CaptioningRNN.loss", inputs)
    assert models._reference_model.cache_info().misses == 1
    assert inputs["init"]["word_to_idx"]["<END>"] == 2 and len(inputs["init"]["word_to_idx"]) == 8


def test_the_command_line(monkeypatch, capsys):
    from hwlib.check.__main__ import main
    assert main(["fc", "relu"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2/2 checks pass"

    def missing(*args):
        raise NotImplementedError
    monkeypatch.setattr(layers, "relu_forward", missing)
    assert main(["fc", "relu"]) == 1
    out = capsys.readouterr().out
    assert "relu: NOT IMPLEMENTED yet" in out and out.splitlines()[-1] == "1/2 checks pass; failing: relu"
    assert main(["nope"]) == 2


# --- the file protocol ---------------------------------------------------------------------------

def test_protocol_round_trip(tmp_path):
    inputs = check.draw("pool", 5, "float32")
    protocol.write_job(tmp_path, {"g1": {"oracle": ["fc"], "cases": [{"id": "c1", "target": "pool", "inputs": inputs}]}})
    job = protocol.read_job(tmp_path)
    got = job["g1"]["cases"][0]
    assert job["g1"]["oracle"] == ["fc"] and got["target"] == "pool" and got["inputs"]["pool_param"] == inputs["pool_param"]
    assert all(np.array_equal(got["inputs"][k], inputs[k]) and got["inputs"][k].dtype == inputs[k].dtype
               for k in ("x", "dout"))
    outputs = {"c1": protocol.flatten({"out": np.ones(3), "grads": {"W": np.zeros(2)}, "pair": (np.ones(1), np.ones(2)),
                                       "loss": 1.5, "ids": [1, 2]})}
    assert sorted(outputs["c1"]) == ["grads/W", "ids", "loss", "out", "pair/0", "pair/1"]
    errors = {"c2": protocol.error_record(ValueError("boom")), "c3": {"type": "X" * 500, "message": 7}}
    protocol.write_outputs(tmp_path, "g1", outputs, errors)
    back, errs, problem = hidden.read_outputs(tmp_path, "g1")
    assert problem == "" and sorted(back["c1"]) == sorted(outputs["c1"]) and back["c1"]["loss"] == 1.5
    assert errs["c2"]["type"] == "ValueError" and errs["c2"]["message"] == "boom"
    assert len(errs["c3"]["type"]) == 200 and errs["c3"]["message"] == "7"


def test_outputs_are_read_as_hostile_data(tmp_path, monkeypatch):
    """Objects (pickles), oversize payloads, decompression bombs, links, named pipes and garbage each
    become a problem naming what the sandbox did, never a crash, a hang or a read through a link."""
    with pytest.raises(TypeError, match="not an array of numbers"):
        protocol.flatten({"out": [object(), object()]})
    (tmp_path / "g.errors.json").write_text("{}")
    np.savez(tmp_path / "g.npz", **{"c/out": np.array([{"a": 1}], dtype=object)})   # needs a pickle to read
    assert "object array" in hidden.read_outputs(tmp_path, "g")[2]
    np.savez(tmp_path / "g.npz", **{"c/out": np.ones(10)})
    monkeypatch.setattr(protocol, "MAX_OUTPUT_BYTES", 100)
    assert hidden.read_outputs(tmp_path, "g")[:2] == ({}, {})
    assert "over the limit of" in hidden.read_outputs(tmp_path, "g")[2]
    monkeypatch.undo()
    # 64 MiB of zeros in a 65 kB file: refused from the member's declared size, before decompressing.
    np.savez_compressed(tmp_path / "g.npz", **{"c/out": np.zeros(64 << 20, dtype=np.uint8)})
    monkeypatch.setattr(protocol, "MAX_OUTPUT_BYTES", 1 << 20)
    assert (tmp_path / "g.npz").stat().st_size < 1 << 20
    assert "decompression bomb" in hidden.read_outputs(tmp_path, "g")[2]
    monkeypatch.undo()
    (tmp_path / "g.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert "not an .npz archive" in hidden.read_outputs(tmp_path, "g")[2]
    (tmp_path / "g.npz").unlink()
    (tmp_path / "g.npz").symlink_to(os.path.join(REPO, "README.md"))
    assert hidden.read_outputs(tmp_path, "g")[2] == "the result file was replaced by a symbolic link"
    (tmp_path / "g.npz").unlink()
    os.mkfifo(tmp_path / "g.npz")             # an open() of it would never return
    assert hidden.read_outputs(tmp_path, "g")[2] == "the result file was replaced by a named pipe"
    (tmp_path / "g.npz").unlink()
    assert hidden.read_outputs(tmp_path, "g")[2] == "the result file is missing"


# --- the oracle and the sandbox runner -----------------------------------------------------------

def test_oracle_layers_are_the_reference_and_nothing_else(tmp_path):
    """The oracle module of a model check holds the reference layers of its families and no other task."""
    from grading.autograde import oracle
    folder = oracle.build(tmp_path, ["fc", "relu"])
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import hw4_oracle as o; "
            "print(json.dumps(sorted(n for n in dir(o) if n.endswith(('_forward', '_backward', '_loss')))))")
    names = json.loads(subprocess.run([sys.executable, "-I", "-c", code, str(folder)], capture_output=True, text=True,
                                      check=True).stdout)
    assert names == ["fc_backward", "fc_forward", "relu_backward", "relu_forward"]
    sys.path.insert(0, str(folder))
    try:
        import hw4_oracle
        inputs = check.draw("fc", 4, "float64")
        out, cache = hw4_oracle.fc_forward(inputs["x"], inputs["w"], inputs["b"])
        dx, dw, db = hw4_oracle.fc_backward(inputs["dout"], cache)
        engine.compare("fc", {"out": out, "dx": dx, "dw": dw, "db": db}, check.reference("fc", inputs))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("hw4_oracle", None)
    with pytest.raises(ValueError, match="unknown oracle families"):
        oracle.source(["attention"])


def test_the_sandbox_runner_earns_the_reference_every_point(tmp_path):
    """sandbox_runner.py as the grader starts it (isolated Python, the submission first on the path),
    minus the sandbox: a layer group, and a model group whose oracle replaces fc and ReLU."""
    from grading.autograde import oracle
    from grading.autograde.sandbox import site_packages
    job_dir, out_dir = tmp_path / "job", tmp_path / "out"
    job_dir.mkdir(), out_dir.mkdir()
    groups = [g for gid, g in hidden.load().items() if gid in ("q1-relu-test", "q2-model")]
    inputs_of = hidden.draw_inputs(groups)
    protocol.write_job(job_dir, hidden.job(groups, inputs_of))
    env = {"PATH": os.environ.get("PATH", ""), "HW4_SITE_PACKAGES": os.pathsep.join(site_packages()),
           "OMP_NUM_THREADS": "1", "HWLIB_QUIET": "1",
           "HW4_ORACLE": str(oracle.build(tmp_path / "oracle", ["fc", "relu"]))}
    subprocess.run([sys.executable, "-I", "-S", f"{REPO}/grading/autograde/sandbox_runner.py", str(job_dir),
                    str(out_dir), REPO, *(g.grade_id for g in groups)], env=env, check=True, timeout=300)
    for group in groups:
        assert (out_dir / f"{group.grade_id}.done").is_file()
        outputs, errors, problem = hidden.read_outputs(out_dir, group.grade_id)
        assert not problem and not errors, (problem, errors)
        res = hidden.evaluate(group, inputs_of, outputs, errors)
        assert res.points == group.points, [(c.id, c.message) for c in res.cases if not c.passed]
    assert json.loads((job_dir / "job.json").read_text())["q2-model"]["oracle"] == ["fc", "relu"]


# --- beyond the returned values: inputs unchanged, any memory layout, dtypes kept (hwlib.check.watch) ---

def test_layouts_keep_the_values_and_change_the_memory(tmp_path):
    plain = check.draw("conv", 8, "float32")
    fortran, strided = (check.draw("conv", 8, "float32", layout=layout) for layout in ("fortran", "strided"))
    for inputs in (fortran, strided):
        assert all(np.array_equal(inputs[k], plain[k]) and inputs[k].dtype == plain[k].dtype for k in ("x", "w", "dout"))
    assert fortran["x"].flags.f_contiguous and not fortran["x"].flags.c_contiguous
    assert not strided["x"].flags.c_contiguous and not strided["x"].flags.f_contiguous
    assert "Fortran-ordered" in check.describe(fortran) and "strided views" in check.describe(strided)
    # The job's .npz keeps no views: the side that runs the student's code re-makes the layout from the tag.
    protocol.write_job(tmp_path, {"g": {"cases": [{"id": "c", "target": "conv", "inputs": strided}]}})
    sent = protocol.read_job(tmp_path)["g"]["cases"][0]["inputs"]
    assert sent["x"].flags.c_contiguous and sent["_layout"] == "strided"
    given = check.watch.private(sent)
    assert not given["x"].flags.c_contiguous and np.array_equal(given["x"], plain["x"])
    assert given["x"] is not sent["x"]                       # the student's code gets its own copies
    with pytest.raises(ValueError, match="unknown layout 'diagonal'"):
        check.draw("conv", 8, "float32", layout="diagonal")


def test_first_change_is_bit_for_bit():
    first_change = check.watch.first_change
    assert first_change(np.array([[1.0, -0.41]]), np.array([[1.0, 0.0]])) == "at (0, 1): -0.41 became 0.0"
    assert first_change(np.array([0.0, 1.0]), np.array([-0.0, 1.0])) == "at (0,): 0.0 became -0.0"
    assert first_change(np.array([np.nan, 2.0]), np.array([np.nan, 2.0])) is None
    assert first_change(np.zeros((4, 5)), np.zeros(20)) == "(its shape (4, 5) became (20,))"
    assert first_change(np.array(2), np.array(3)) == "2 became 3"


def _relu_inplace(x):
    x[x < 0] = 0
    return x, x


def _conv_backward_zeroes_dout(dout, cache):
    grads = _CONV_BACKWARD(dout, cache)
    dout[...] = 0
    return grads


def _conv_forward_c_order_only(x, w):
    """im2col by as_strided with strides computed from the shape: right for C-ordered x only."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    s = x.itemsize
    windows = np.lib.stride_tricks.as_strided(x, shape=(N, C, H - HH + 1, W - WW + 1, HH, WW),
                                              strides=(C * H * W * s, H * W * s, W * s, s, W * s, s))
    return np.einsum("nchwij,fcij->nfhw", windows, w), _CONV_FORWARD(x, w)[1]


def _pool_forward_float64(x, pool_param):
    out, cache = _POOL_FORWARD(x, pool_param)
    return out.astype(np.float64), cache


def _pool_forward_edits_pool_param(x, pool_param):
    out, cache = _POOL_FORWARD(x, pool_param)
    pool_param["stride"] = 7
    return out, cache


def _relu_backward_clamps_the_cache(dout, cache):
    cache[cache < 0] = 0
    return dout * (cache > 0)


def _conv_backward_scales_its_cache(dout, cache):
    grads = _CONV_BACKWARD(dout, cache)
    cache[2][...] *= 2      # the reference's im2col matrix: an array of the cache that is no input
    return grads


_CONV_FORWARD, _CONV_BACKWARD, _POOL_FORWARD = layers.conv_forward, layers.conv_backward, layers.max_pool_forward


@pytest.mark.parametrize("function, replacement, name, message", [
    ("relu_forward", _relu_inplace, "relu",
     r"relu_forward changed its input x in place at \(0, 0, 1\): -0.182105 became 0.0; return a new array"),
    ("conv_backward", _conv_backward_zeroes_dout, "conv", r"conv_backward changed its input dout in place at \(0, 0, 0, 0\)"),
    ("conv_forward", _conv_forward_c_order_only, "conv", r"conv out: worst relative error .*Fortran-ordered"),
    ("max_pool_forward", _pool_forward_edits_pool_param, "pool",
     r"max_pool_forward changed its input pool_param\['stride'\] in place 2 became 7"),
    ("relu_backward", _relu_backward_clamps_the_cache, "relu",
     r"relu_backward changed x \(an input of relu_forward, held in the cache\) in place at"),
    ("conv_backward", _conv_backward_scales_its_cache, "conv", r"conv_backward changed cache\[2\], an array of its cache"),
])
def test_the_public_checks_look_beyond_the_returned_values(monkeypatch, capsys, function, replacement, name, message):
    monkeypatch.setattr(layers, function, replacement)
    with pytest.raises(AssertionError, match=message):
        check.check(name, verbose=False)
    from hwlib.check.__main__ import main
    assert main([name]) == 1
    assert f"{name}: FAIL: AssertionError: " in capsys.readouterr().out


def test_the_verdict_is_the_trusted_sides(monkeypatch):
    """The record travels as outputs; the judge compares it with the inputs it sent itself, so a
    record that is missing fails as surely as one that shows the change."""
    inputs = check.draw("relu", 3, "float64")
    monkeypatch.setattr(layers, "relu_forward", _relu_inplace)
    outputs = check.run("relu", inputs)
    assert np.all(inputs["x"] == check.draw("relu", 3, "float64")["x"])   # the caller's inputs are untouched
    expected = check.reference("relu", inputs)
    with pytest.raises(AssertionError, match="relu_forward changed its input x"):
        check.judge("relu", outputs, expected, inputs)
    clean = {k: v for k, v in outputs.items() if not k.startswith("_inputs/")}
    with pytest.raises(AssertionError, match="the record of x after relu_forward is missing"):
        check.judge("relu", clean, expected, inputs)
    forged = {**outputs, "_cache/relu_backward/0/before": np.ones(2), "_cache/relu_backward/0/after": np.ones(2)}
    with pytest.raises(AssertionError, match="relu_forward changed its input x"):   # a forged entry changes nothing
        check.judge("relu", forged, expected, inputs)


def test_models_leave_their_parameters_and_data_unchanged(monkeypatch):
    from hwlib.classifiers import SoftmaxClassifier
    original = SoftmaxClassifier.loss

    def scales_X(self, X, y=None):
        X *= 1.5
        return original(self, X, y)

    def nudges_W2(self, X, y=None):
        out = original(self, X, y)
        self.params["W2"][1, 0] += 1.0
        return out

    monkeypatch.setattr(SoftmaxClassifier, "loss", scales_X)
    with pytest.raises(AssertionError, match=r"SoftmaxClassifier.loss changed its input X in place at \(0, 0, 0\)"):
        check.check("SoftmaxClassifier.loss", verbose=False)
    monkeypatch.setattr(SoftmaxClassifier, "loss", nudges_W2)
    inputs = check.draw("SoftmaxClassifier.loss", 4, "float64", input_dim=6, hidden_dim=5, num_classes=3, X=(4, 6))
    with pytest.raises(AssertionError, match=r"changed model.params\['W2'\] in place at \(1, 0\).*leave model.params"):
        check.judge("SoftmaxClassifier.loss", check.run("SoftmaxClassifier.loss", inputs),
                    check.reference("SoftmaxClassifier.loss", inputs), inputs)
    with pytest.raises(AssertionError, match=r"changed model.params\['W2'\]"):
        check.check("SoftmaxClassifier.loss", verbose=False)


def test_model_outputs_keep_the_models_dtype(monkeypatch):
    for name, kw in (("SoftmaxClassifier.loss", dict(input_dim=6, hidden_dim=5, num_classes=3, X=(4, 6))),
                     ("CaptioningRNN.loss", dict(vocab_size=7, input_dim=4, wordvec_dim=3, hidden_dim=5, N=2, T=3))):
        inputs = check.draw(name, 5, "float32", **kw)                 # the models' float32 paths
        expected = check.reference(name, inputs)
        assert {v.dtype for k, v in expected.items() if k != "loss"} == {np.dtype(np.float32)}, name
        check.judge(name, check.run(name, inputs), expected, inputs)
    inputs = check.draw("ConvNet.loss", 2, "float32", input_dim=(1, 8, 8), num_filters=2, filter_size=3, hidden_dim=4,
                        num_classes=3, X=(2, 1, 8, 8))
    outputs, expected = check.run("ConvNet.loss", inputs), check.reference("ConvNet.loss", inputs)
    assert expected["scores"].dtype == expected["grads/W1"].dtype == np.float32
    check.judge("ConvNet.loss", outputs, expected, inputs)
    wider = {**outputs, "grads/W3": outputs["grads/W3"].astype(np.float64)}
    with pytest.raises(AssertionError, match="ConvNet.loss grads/W3 has dtype float64; expected float32"):
        check.judge("ConvNet.loss", wider, expected, inputs, strict_dtypes=True)
    from hwlib import classifiers
    monkeypatch.setattr(classifiers, "max_pool_forward", _pool_forward_float64)   # the model binds it on import
    with pytest.raises(AssertionError, match="float32"):
        check.check("ConvNet.loss", verbose=False, strict_dtypes=True)
