"""Bad input to the layers (issue 25, item 6): one clear, one-line error at once, never a raw Python or
NumPy error, never a silent wrong answer; and right input still gives the right answer.

* a cache from the wrong layer (another layer's, a tuple of the wrong length, None, the (out, cache)
  pair) -> ``ValueError`` naming the backward function, what it expected and what it got;
* a call that would need more memory than the machine has -> ``MemoryError`` before anything is
  allocated, naming the function, the GiB needed and the input shape;
* a bool where an integer is expected (``stride=True``) -> ``ValueError``;
* a complex, string, object or datetime array -> ``ValueError`` naming function, argument, dtype.
"""

from __future__ import annotations

import copy
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest

from hwlib import layers, validation
from hwlib import rnn_layers as R

HWLIB = Path(layers.__file__).resolve().parent
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
BOUND_S = 5.0   # a sanity bound, not a benchmark: each refusal takes well under a millisecond


def refused(exc_type, call):
    """Run ``call``; assert it raises ``exc_type`` within BOUND_S seconds, in one line, from hwlib's own
    frames (the innermost frame is hwlib's, no frame is NumPy's). Returns the message."""
    start = time.perf_counter()
    with pytest.raises(exc_type) as info:
        call()
    elapsed = time.perf_counter() - start
    assert elapsed < BOUND_S, f"took {elapsed:.2f} s"
    message = str(info.value)
    assert "\n" not in message, message
    frames = [Path(entry.path).resolve() for entry in info.traceback]
    assert HWLIB in frames[-1].parents, f"raised from {frames[-1]}"
    assert not any("numpy" in frame.parts for frame in frames), frames
    assert info.value.__cause__ is None and info.value.__context__ is None, "no chained raw error"
    return message


# --- the caches of every layer, built once per test -----------------------------------------------

@pytest.fixture
def caches():
    """``{forward: (out, cache)}`` for every layer, on small inputs."""
    x4 = np.arange(32.0).reshape(2, 1, 4, 4)
    return {
        "fc_forward": layers.fc_forward(np.ones((2, 3)), np.ones((3, 4)), np.ones(4)),
        "relu_forward": layers.relu_forward(np.array([[-1.0, 2.0, 0.5]])),
        "conv_forward": layers.conv_forward(x4, np.ones((3, 1, 2, 2))),
        "max_pool_forward": layers.max_pool_forward(x4, POOL),
        "rnn_step_forward": R.rnn_step_forward(np.ones((2, 3)), np.zeros((2, 4)), np.ones((3, 4)), np.ones((4, 4)), np.zeros(4)),
        "rnn_forward": R.rnn_forward(np.ones((5, 2, 3)), np.zeros((2, 4)), np.ones((3, 4)), np.ones((4, 4)), np.zeros(4)),
        "word_embedding_forward": R.word_embedding_forward(np.array([[0, 1], [2, 0]]), np.ones((3, 4))),
        "temporal_fc_forward": R.temporal_fc_forward(np.ones((2, 5, 3)), np.ones((3, 4)), np.ones(4)),
    }


BACKWARD = {   # backward function -> its module and its forward
    "fc_backward": (layers, "fc_forward"),
    "relu_backward": (layers, "relu_forward"),
    "conv_backward": (layers, "conv_forward"),
    "max_pool_backward": (layers, "max_pool_forward"),
    "rnn_step_backward": (R, "rnn_step_forward"),
    "rnn_backward": (R, "rnn_forward"),
    "word_embedding_backward": (R, "word_embedding_forward"),
    "temporal_fc_backward": (R, "temporal_fc_forward"),
}

# (backward, what is passed as its cache, a fragment of the "got" part of the message)
WRONG_CACHES = [
    ("fc_backward", "relu_forward", "got an array of shape (1, 3)"),
    ("fc_backward", "conv_forward", "got the cache of conv_forward (a tuple of 4 items)"),
    ("fc_backward", "temporal_fc_forward", "got the cache of temporal_fc_forward (a tuple of 3 items)"),
    ("fc_backward", None, "got None"),
    ("fc_backward", "two arrays", "got a tuple of 2 items (an array of shape (2, 3), an array of shape (3, 4))"),
    ("fc_backward", "pair", "got a tuple of 2 items (an array of shape (2, 4), the cache of fc_forward (a tuple of 3 items)); "
                            "that is the (out, cache) pair fc_forward returns: pass its second item"),
    ("relu_backward", "fc_forward", "got the cache of fc_forward (a tuple of 3 items)"),
    ("relu_backward", None, "got None"),
    ("relu_backward", "a list", "got a list of 1 item (an array of shape (1, 3))"),
    ("conv_backward", "max_pool_forward", "got the cache of max_pool_forward (a tuple of 5 items)"),
    ("conv_backward", "relu_forward", "got an array of shape (1, 3)"),
    ("conv_backward", None, "got None"),
    ("conv_backward", "two arrays", "got a tuple of 2 items"),
    ("max_pool_backward", "conv_forward", "got the cache of conv_forward (a tuple of 4 items)"),
    ("max_pool_backward", "fc_forward", "got the cache of fc_forward (a tuple of 3 items)"),
    ("max_pool_backward", None, "got None"),
    ("max_pool_backward", "two arrays", "got a tuple of 2 items"),
    ("rnn_step_backward", "rnn_forward", "got the cache of rnn_forward (a tuple of 5 items)"),
    ("rnn_backward", "rnn_step_forward", "got the cache of rnn_step_forward (a tuple of 5 items)"),
    ("rnn_backward", "two arrays", "got a tuple of 2 items"),
    ("word_embedding_backward", None, "got None"),
    ("word_embedding_backward", "fc_forward", "got the cache of fc_forward"),
    ("temporal_fc_backward", "fc_forward", "got the cache of fc_forward (a tuple of 3 items)"),
]
EXPECTED = {
    "fc_backward": "(a tuple (x, w, b))",
    "relu_backward": "(the array x)",
    "conv_backward": "(here a tuple of 4 items)",
    "max_pool_backward": "(here a tuple of 5 items)",
    "rnn_step_backward": "(a tuple (x, prev_h, Wx, Wh, next_h))",
    "rnn_backward": "(a tuple (x, h0, Wx, Wh, h))",
    "word_embedding_backward": "(a tuple (x, W))",
    "temporal_fc_backward": "(a tuple (x, w, b))",
}


def _bad_cache(kind, caches):
    if kind is None:
        return None
    if kind == "two arrays":
        return (np.ones((2, 3)), np.ones((3, 4)))
    if kind == "pair":
        return caches["fc_forward"]
    if kind == "a list":
        return [caches["relu_forward"][1]]
    return caches[kind][1]


@pytest.mark.parametrize("backward, kind, got", WRONG_CACHES, ids=[f"{b}-{k}" for b, k, _ in WRONG_CACHES])
def test_a_wrong_cache_is_refused_naming_the_function_what_it_expected_and_what_it_got(backward, kind, got, caches):
    module, forward = BACKWARD[backward]
    out, _ = caches[forward]
    cache = _bad_cache(kind, caches)
    message = refused(ValueError, lambda: getattr(module, backward)(np.ones_like(out), cache))
    assert message.startswith(f"{backward}: cache must be the cache {forward} returned {EXPECTED[backward]}; "), message
    assert got in message, message


def test_the_right_caches_still_work_and_are_tuples(caches):
    """Each backward accepts its own cache; a marked cache is a tuple in every respect, and a copy,
    a pickle and (for caches the given code builds) a rebuilt plain tuple are accepted too."""
    for backward, (module, forward) in BACKWARD.items():
        out, cache = caches[forward]
        if forward != "relu_forward":
            assert isinstance(cache, tuple) and type(cache) is validation.LayerCache
            assert cache == tuple(cache) and repr(cache) == repr(tuple(cache)) and len(cache) == len(tuple(cache))
        for same in (cache, copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
            assert getattr(same, "forward", forward) == forward
            getattr(module, backward)(np.ones_like(out), same)
    # fc's cache is (x, w, b), given code: a plain tuple of the right structure is accepted.
    dx, dw, db = layers.fc_backward(np.ones((2, 4)), tuple(caches["fc_forward"][1]))
    np.testing.assert_array_equal(dw, np.full((3, 4), 2.0))
    with pytest.raises(ValueError, match=r"fc_backward: cache must be .*got a tuple of 3 items \(an array of shape \(3,\)"):
        layers.fc_backward(np.ones((2, 4)), (np.ones(3), np.ones((3, 4)), np.ones(4)))   # x must have 2+ dims


def test_a_cache_without_its_mark_is_judged_by_the_layouts_its_forward_returned(caches):
    """conv's and pool's caches are what the solution builds: without the mark, a cache must have the
    type and length of one its forward returned (here a tuple of 4 and 5 items)."""
    out, cache = caches["conv_forward"]
    dx, dw = layers.conv_backward(np.ones_like(out), tuple(cache))       # same layout: accepted
    assert dx.shape == (2, 1, 4, 4) and dw.shape == (3, 1, 2, 2)
    message = refused(ValueError, lambda: layers.conv_backward(np.ones_like(out), tuple(cache)[:3]))
    assert message == ("conv_backward: cache must be the cache conv_forward returned (here a tuple of 4 items); "
                       "got a tuple of 3 items (a tuple of 4 items, an array of shape (3, 1, 2, 2), an array of shape (4, 18))")
    out, cache = caches["max_pool_forward"]
    message = refused(ValueError, lambda: layers.max_pool_backward(np.ones_like(out), list(cache)))
    assert "got a list of 5 items" in message and "(here a tuple of 5 items)" in message


# --- memory: refused at once -----------------------------------------------------------------------

HUGE = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(400000, 64, 32, 32), strides=(0, 0, 0, 0))


def _gib_needed(message: str) -> float:
    match = re.search(r"would need about ([\d,.]+) GiB", message)
    assert match, message
    return float(match.group(1).replace(",", ""))


@pytest.fixture
def memory(monkeypatch):
    """Pretend the machine has ``memory.available`` bytes (default 8 GiB) available."""

    class Memory:
        available = 8 * 2**30

    def fake():
        return Memory.available, "a test's figure"

    monkeypatch.setattr(validation, "available_memory", fake)
    return Memory


def test_max_pool_on_a_huge_zero_stride_view_is_refused_at_once(memory):
    """The example of the issue: it used to run 33 s and take 6.3 GB before a MemoryError."""
    message = refused(MemoryError, lambda: layers.max_pool_forward(HUGE, POOL))
    assert message.startswith("max_pool_forward: x of shape (400000, 64, 32, 32) would need about "), message
    assert message.endswith("more than the 6.4 GiB one call may use (80% of the 8 GiB available, a test's figure); "
                            "use a smaller batch"), message
    output_gib = 400000 * 64 * 16 * 16 * 8 / 2**30                      # the output alone: 48.8 GiB
    assert output_gib < _gib_needed(message) < 4 * output_gib, message


def test_a_size_no_machine_holds_is_refused_with_the_real_figure():
    """Without the test's figure: /proc/meminfo (or the machine's memory) is read, and 36 TiB is too much."""
    x = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(10**8, 64, 32, 32), strides=(0, 0, 0, 0))
    for call in (lambda: layers.max_pool_forward(x, POOL), lambda: layers.relu_forward(x),
                 lambda: layers.conv_forward(x, np.ones((2, 64, 3, 3)))):
        message = refused(MemoryError, call)
        assert "x of shape (100000000, 64, 32, 32)" in message and _gib_needed(message) > 10_000, message
    limit, available, source = validation.memory_limit()
    assert 0 < limit == int(validation.MEMORY_FRACTION * available) and source


def test_every_layer_checks_its_memory_before_allocating(memory, monkeypatch, caches):
    """Forward passes check from their inputs, backward passes from the shapes their cache records."""
    # 8 GiB as float64, none of it allocated: each forward pass needs more than the 6.4 GiB allowed.
    x = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(16384, 64, 32, 32), strides=(0, 0, 0, 0))
    calls = {
        "fc_forward": lambda: layers.fc_forward(x, np.ones((65536, 10)), np.ones(10)),   # flattening x copies it
        "relu_forward": lambda: layers.relu_forward(x),
        "conv_forward": lambda: layers.conv_forward(x, np.ones((64, 64, 3, 3))),
        "max_pool_forward": lambda: layers.max_pool_forward(x, {"pool_height": 3, "pool_width": 3, "stride": 1}),
        "softmax_loss": lambda: layers.softmax_loss(x.reshape(16384, -1), np.zeros(16384, dtype=int)),
    }
    for func, call in calls.items():
        message = refused(MemoryError, call)
        assert message.startswith(f"{func}: x of shape (") and _gib_needed(message) > 6.4, message
    # The backward passes: nothing is refused under 32 MiB; with none allowed, each refuses.
    memory.available = 0
    monkeypatch.setattr(validation, "MEMORY_UNCHECKED", 0)
    for backward, (module, forward) in BACKWARD.items():
        if module is layers:
            out, cache = caches[forward]
            message = refused(MemoryError, lambda: getattr(module, backward)(np.ones_like(out), cache))  # noqa: B023 (called at once)
            assert message.startswith(f"{backward}: dout of shape {out.shape}"), message
            assert "more than the 0 GiB one call may use (80% of the 0 GiB available" in message


def test_small_calls_never_read_the_machines_memory(monkeypatch, caches):
    """The hot path: below 32 MiB no file is read (available_memory is not even called)."""

    def boom():
        raise AssertionError("available_memory was called")

    monkeypatch.setattr(validation, "available_memory", boom)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((50, 1, 28, 28)), rng.standard_normal((32, 1, 7, 7))
    out, cache = layers.conv_forward(x, w)
    layers.conv_backward(np.ones(out.shape), cache)
    p, pc = layers.max_pool_forward(out, POOL)
    layers.max_pool_backward(np.ones(p.shape), pc)
    r, rc = layers.relu_forward(p)
    layers.relu_backward(np.ones(r.shape), rc)
    f, fc = layers.fc_forward(r, rng.standard_normal((32 * 11 * 11, 10)), np.zeros(10))
    layers.fc_backward(np.ones(f.shape), fc)
    layers.softmax_loss(f, np.zeros(50, dtype=int))


# --- booleans are no integers -----------------------------------------------------------------------

@pytest.mark.parametrize("key, value, got", [
    ("stride", True, "got True (a bool, not an integer)"),
    ("pool_height", True, "got True (a bool, not an integer)"),
    ("pool_width", np.True_, "got np.True_ (a bool, not an integer)"),
    ("stride", 2.0, "got 2.0"),
    ("stride", 0, "got 0"),
    ("stride", "2", "got '2'"),
])
def test_a_bool_or_non_integer_pool_parameter_is_refused(key, value, got):
    param = {**POOL, key: value}
    message = refused(ValueError, lambda: layers.max_pool_forward(np.ones((1, 1, 4, 4)), param))
    assert message == f"max_pool_forward: pool_param['{key}'] must be a positive integer; {got}", message


def test_numpy_integer_pool_parameters_still_work():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, cache = layers.max_pool_forward(x, {"pool_height": np.int64(2), "pool_width": np.int32(2), "stride": np.uint8(2)})
    np.testing.assert_array_equal(out[0, 0], [[5.0, 7.0], [13.0, 15.0]])
    np.testing.assert_array_equal(layers.max_pool_backward(np.ones((1, 1, 2, 2)), cache)[0, 0],
                                  [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]])


def test_positive_int_refuses_booleans_everywhere():
    for value in (True, False, np.True_):
        with pytest.raises(ValueError, match=r"^f: n must be a positive integer; got .* \(a bool, not an integer\)$"):
            validation.positive_int("f", "n", value)
    assert validation.positive_int("f", "n", np.int16(3)) == 3 and type(validation.positive_int("f", "n", np.int16(3))) is int


# --- complex, string, object, datetime arrays -------------------------------------------------------

C = np.array([[1 + 2j, 3.0]])
BAD_DTYPE_CALLS = [
    ("fc_forward", "x", lambda: layers.fc_forward(C, np.ones((2, 3)), np.ones(3))),
    ("fc_forward", "w", lambda: layers.fc_forward(np.ones((1, 2)), np.ones((2, 3)) * 1j, np.ones(3))),
    ("fc_forward", "b", lambda: layers.fc_forward(np.ones((1, 2)), np.ones((2, 3)), np.ones(3, dtype=np.complex64))),
    ("relu_forward", "x", lambda: layers.relu_forward(C)),
    ("relu_forward", "x", lambda: layers.relu_forward([1 + 0j, 2.0])),
    ("conv_forward", "x", lambda: layers.conv_forward(np.ones((1, 1, 3, 3)) + 0j, np.ones((1, 1, 2, 2)))),
    ("conv_forward", "w", lambda: layers.conv_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2), dtype=np.clongdouble))),
    ("max_pool_forward", "x", lambda: layers.max_pool_forward(np.ones((1, 1, 4, 4)) * 1j, POOL)),
    ("softmax_loss", "x", lambda: layers.softmax_loss(C, np.array([0]))),
    ("temporal_fc_forward", "x", lambda: R.temporal_fc_forward(np.ones((1, 2, 3)) * 1j, np.ones((3, 2)), np.ones(2))),
    ("rnn_step_forward", "prev_h", lambda: R.rnn_step_forward(np.ones((1, 2)), np.ones((1, 3)) * 1j, np.ones((2, 3)),
                                                               np.ones((3, 3)), np.ones(3))),
]


@pytest.mark.parametrize("func, name, call", BAD_DTYPE_CALLS, ids=[f"{f}-{n}-{i}" for i, (f, n, _) in enumerate(BAD_DTYPE_CALLS)])
def test_a_complex_input_is_refused_not_silently_made_real(func, name, call):
    message = refused(ValueError, call)
    assert re.fullmatch(rf"{func}: {name} must be a numeric array of real floating or integer numbers; got dtype "
                        r"complex\d+ \(a complex array: its imaginary part would be lost\)", message), message


def test_a_complex_dout_is_refused_too(caches):
    for backward, (module, forward) in BACKWARD.items():
        out, cache = caches[forward]
        name = {"rnn_step_backward": "dnext_h", "rnn_backward": "dh"}.get(backward, "dout")
        message = refused(ValueError, lambda: getattr(module, backward)(np.ones(out.shape, dtype=complex), cache))  # noqa: B023
        assert message.startswith(f"{backward}: {name} must be a numeric array of real floating or integer numbers; "
                                  "got dtype complex128"), message


@pytest.mark.parametrize("x, dtype", [
    (np.array([["a", "b"]]), "<U1"),
    (np.array([[b"a", b"b"]]), "|S1"),
    (np.array([[1.0, None]], dtype=object), "object"),
    (np.array([[1, 2]], dtype="datetime64[s]"), "datetime64[s]"),
    (np.array([[1, 2]], dtype="timedelta64[s]"), "timedelta64[s]"),
])
def test_string_object_and_time_arrays_are_refused(x, dtype):
    for func, call in (("relu_forward", lambda: layers.relu_forward(x)),
                       ("fc_forward", lambda: layers.fc_forward(x, np.ones((2, 1)), np.ones(1)))):
        message = refused(ValueError, call)
        assert message == f"{func}: x must be a numeric array of real floating or integer numbers; got dtype {dtype}", message


def test_real_inputs_of_every_kind_still_work():
    """bool and integer inputs become float64; float32 stays float32; the values are right."""
    out, cache = layers.fc_forward(np.array([[1, 2]], dtype=np.int8), np.array([[1.0], [2.0]]), np.array([0.5]))
    np.testing.assert_array_equal(out, [[5.5]])
    out, _ = layers.relu_forward(np.array([True, False]))
    assert out.dtype == np.float64 and out.tolist() == [1.0, 0.0]
    out, _ = layers.relu_forward(np.array([-1.5, 2.5], dtype=np.float32))
    assert out.dtype == np.float32 and out.tolist() == [0.0, 2.5]
    loss, dx = layers.softmax_loss(np.zeros((2, 4), dtype=np.uint8), np.array([0, 3]))
    np.testing.assert_allclose(loss, np.log(4.0))
    np.testing.assert_allclose(dx, [[-0.375, 0.125, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])


def test_a_network_pass_by_hand_still_gives_the_right_numbers():
    """conv -> relu -> pool -> fc on numbers worked by hand, and the gradients back through the caches."""
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)             # [[1..4], [5..8], [9..12], [13..16]]
    k = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])              # y[i, j] = x[i, j] - x[i + 1, j + 1] = -5
    a, conv_cache = layers.conv_forward(x, k)
    np.testing.assert_array_equal(a[0, 0], np.full((3, 3), -5.0))
    r, relu_cache = layers.relu_forward(-a)                  # 5 everywhere
    p, pool_cache = layers.max_pool_forward(r, {"pool_height": 2, "pool_width": 2, "stride": 1})
    np.testing.assert_array_equal(p[0, 0], np.full((2, 2), 5.0))
    out, fc_cache = layers.fc_forward(p, np.ones((4, 1)), np.array([1.0]))
    np.testing.assert_array_equal(out, [[21.0]])
    dp, dw, db = layers.fc_backward(np.array([[1.0]]), fc_cache)
    np.testing.assert_array_equal(dw, np.full((4, 1), 5.0))
    dr = layers.max_pool_backward(dp, pool_cache)            # ties: each window's first entry
    np.testing.assert_array_equal(dr[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    da = -layers.relu_backward(dr, relu_cache)
    dx, dk = layers.conv_backward(da, conv_cache)
    np.testing.assert_array_equal(dk[0, 0], -np.array([[1 + 2 + 5 + 6, 2 + 3 + 6 + 7], [5 + 6 + 9 + 10, 6 + 7 + 10 + 11]]))
    assert dx.shape == x.shape
