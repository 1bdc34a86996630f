"""The benchmark's method: one fresh process per implementation, per-round ratios, honest refusals.

No figure is asserted here (timings belong to ``make bench``, never to tests on a shared machine):
these tests check how figures are taken and combined.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bench
from bench import __main__ as bench_main
from bench import baton, launch, layers, models


def test_a_worker_times_one_implementation_alone_in_a_fresh_process():
    envelope = launch.command_line("layers", "hwlib f64", quick=True)
    assert envelope["pid"] != __import__("os").getpid()
    assert envelope["torch_loaded"] is False            # hwlib's figure is taken without PyTorch loaded
    assert set(envelope["result"]) == {label for label, *_ in layers.CASES}
    assert all(t["fwd"] > 0 and t["fwdbwd"] > t["fwd"] * 0.5 for t in envelope["result"].values())


def test_a_notebook_kernel_gives_the_same_kind_of_result():
    envelope = launch.notebook_kernel("models", "hwlib f64", quick=True)
    assert envelope["torch_loaded"] is False
    assert set(envelope["result"]) == {f"SoftmaxClassifier train step batch {b}" for b in models.BATCH_SIZES}


def _fake_layers(rounds):
    """Synthetic results: hwlib f64 = factor(round) x torch f64 for every case."""
    results = {impl: [] for impl in layers.IMPLS}
    for factor in rounds:
        for impl in layers.IMPLS:
            base = {"torch f64": 1.0, "hwlib f64": factor, "torch f32": 1.0, "hwlib f32": 1.0, "naive f64": 500.0}[impl]
            results[impl].append({label: {"fwd": base * 1e-3, "fwdbwd": base * 2e-3, "note": ""} for label, *_ in layers.CASES})
    results["naive f64"] = results["naive f64"][:1]
    return results


def test_ratios_are_medians_of_per_round_ratios_and_targets_are_judged_on_them():
    # Per-round ratios 1.0, 1.5, 1.1: the median is 1.1 (a ratio of medians could be anything else).
    rows, checks = layers.report(_fake_layers([1.0, 1.5, 1.1]))
    conv = next(r for r in rows if r.impl == "hwlib f64" and r.case.startswith("conv"))
    assert conv.ratio_fwdbwd == pytest.approx(1.1) and "rounds 1.00-1.50" in conv.note
    targets = {c.name: c for c in checks}
    assert all(c.passed for c in targets.values())
    rows, checks = layers.report(_fake_layers([1.3, 1.25, 1.4]))   # 1.3x PyTorch misses the 1.2x target
    failed = [c.name for c in checks if not c.passed]
    assert failed and all("hwlib/torch f64" in name for name in failed)


def test_the_model_suite_refuses_to_compare_two_different_networks():
    results = {impl: [{f"{name} train step batch {b}": {"fwd": 1.0, "fwdbwd": 2.0, "loss": 2.30}
                       for name, tag, _ in models.CASES if impl.endswith(tag) for b in models.BATCH_SIZES}]
               for impl in models.IMPLS}
    models.report(results)                                             # same losses: fine
    results["torch f32"][0]["ConvNet train step batch 100"]["loss"] = 2.5
    with pytest.raises(RuntimeError, match="not the same network"):
        models.report(results)


@pytest.mark.parametrize("name,dtype", [("ConvNet", np.float32), ("SoftmaxClassifier", np.float64)])
def test_the_pytorch_copy_of_a_network_computes_the_same_loss(name, dtype, torch_one_thread):
    import torch

    model = models.hwlib_model(name, dtype, seed=3)
    net = models.torch_model(torch, model)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((7, 1, 28, 28)).astype(dtype), rng.integers(0, 10, 7)
    theirs = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y)).item()
    assert model.loss(X, y)[0] == pytest.approx(theirs, rel=1e-5)


def test_an_hwlib_figure_taken_beside_pytorch_is_refused(monkeypatch):
    def fake(suite, impl, quick, baton=None):
        return {"pid": hash(impl) % 10_000 + 50_000, "torch_loaded": True, "result": {}}
    monkeypatch.setitem(launch.LAUNCHERS, "command line", fake)
    monkeypatch.setattr(bench_main, "LAUNCHERS", launch.LAUNCHERS)
    with pytest.raises(RuntimeError, match="loaded PyTorch"):
        bench_main.run_suite("layers", ["command line"], rounds=1, quick=True)


def test_every_round_runs_every_implementation_in_a_new_process_in_a_rotating_order(monkeypatch):
    calls = []

    def fake(suite, impl, quick, baton=None):
        calls.append(impl)
        return {"pid": 60_000 + len(calls), "torch_loaded": impl.startswith("torch"), "result": {"impl": impl}}
    monkeypatch.setitem(launch.LAUNCHERS, "command line", fake)
    results = bench_main.run_suite("layers", ["command line"], rounds=3, quick=True)["command line"]
    assert {impl: len(r) for impl, r in results.items()} == {**{i: 3 for i in layers.IMPLS}, "naive f64": 1}
    firsts = [calls[0], calls[5], calls[9]]                 # round 1 has 5 processes, later rounds 4
    assert len(set(firsts)) == 3


def test_with_kernels_each_implementation_runs_under_both_launchers_in_lockstep(monkeypatch):
    pairs = []

    def fake_lockstep(runs):
        pairs.append(list(runs))
        return {launcher: {"pid": 70_000 + 2 * len(pairs) + i, "torch_loaded": False, "result": {"n": len(pairs)}}
                for i, launcher in enumerate(runs)}
    monkeypatch.setattr(bench_main, "lockstep", fake_lockstep)
    results = bench_main.run_suite("models", ["command line", "notebook kernel"], rounds=2, quick=True)
    assert all(sorted(p) == ["command line", "notebook kernel"] for p in pairs)
    assert len({p[0] for p in pairs}) == 2                  # which one starts alternates
    for name in ("command line", "notebook kernel"):
        assert {impl: len(r) for impl, r in results[name].items()} == {impl: 2 for impl in models.IMPLS}


_TURNS = textwrap.dedent("""
    import json, sys, time
    from bench import baton
    baton.attach(sys.argv[1])
    spans = []
    for _ in range(12):
        baton.checkpoint()
        start = time.monotonic()
        while time.monotonic() - start < 0.1:
            pass
        spans.append((start, time.monotonic()))
    baton.detach()
    print(json.dumps(spans))
""")


def test_processes_in_lockstep_take_turns_and_never_compute_at_once():
    def worker(path):
        done = subprocess.run([sys.executable, "-c", _TURNS, path], cwd=launch.REPO, capture_output=True, text=True, check=True, timeout=120)
        return json.loads(done.stdout)
    spans = baton.lockstep({"a": worker, "b": worker})
    a, b = spans["a"], spans["b"]
    assert len(a) == len(b) == 12
    assert not any(s < e2 and s2 < e for s, e in a for s2, e2 in b)     # never both at once
    turns = sorted([(s, "a") for s, _ in a] + [(s, "b") for s, _ in b])
    switches = sum(x[1] != y[1] for x, y in zip(turns, turns[1:]))
    assert switches >= 2                                                 # they alternated, not one then the other


def test_a_worker_that_dies_does_not_hang_the_lockstep_run():
    def dies(path):
        subprocess.run([sys.executable, "-c", "import sys; sys.exit(3)"], check=True)

    def works(path):
        done = subprocess.run([sys.executable, "-c", _TURNS, path], cwd=launch.REPO, capture_output=True,
                              text=True, check=True, timeout=120)
        return json.loads(done.stdout)
    with pytest.raises(subprocess.CalledProcessError):
        baton.lockstep({"dies": dies, "works": works})


# --- the allocator setting ------------------------------------------------------------------------

_FAULTS = textwrap.dedent("""
    import resource, sys
    if sys.argv[1] == "hwlib":
        import hwlib
        from hwlib.allocator import keep_freed_memory
        assert keep_freed_memory()
    import numpy as np
    x = np.ones((1, 1))
    for _ in range(3):                                   # warm-up: the heap grows once
        a = np.ones((1200, 1000)); b = a * 2.0; del a, b
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = np.ones((1200, 1000)); b = a * 2.0; del a, b  # 9.6 MB each, as a conv's im2col matrix
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's")
def test_importing_hwlib_keeps_freed_memory_so_repeated_temporaries_cost_no_page_faults():
    def faults(mode):
        done = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return int(done.stdout)
    plain, with_hwlib = faults("plain"), faults("hwlib")
    # Without the setting every 9.6 MB temporary is fresh memory: thousands of faults (fewer with huge
    # pages, still one per 2 MB per array); with it, the warm-up's pages are reused.
    assert plain >= 40, plain
    assert with_hwlib <= plain / 10, (plain, with_hwlib)


def test_bench_pins_the_thread_counts_before_numpy_loads():
    done = subprocess.run([sys.executable, "-c", "import bench, os; print(os.environ['OPENBLAS_NUM_THREADS'])"],
                          capture_output=True, text=True, check=True, env={"BENCH_THREADS": "1", "PATH": "/usr/bin"})
    assert done.stdout.strip() == "1" and bench.THREADS >= 1


def test_the_kernel_figures_are_judged_on_lockstep_pairs_round_by_round():
    case = "conv"
    times = {  # two rounds; hwlib is 5 % slower in the kernel, PyTorch 20 % slower in round 2's kernel
        "command line": {"hwlib f64": [2.0, 4.0], "torch f64": [2.0, 2.0]},
        "notebook kernel": {"hwlib f64": [2.1, 4.2], "torch f64": [2.0, 2.4]},
    }
    results = {launcher: {impl: [{case: {"fwdbwd": t}} for t in ts] for impl, ts in impls.items()}
               for launcher, impls in times.items()}
    target = bench.Check("conv: hwlib/torch f64 fwd+bwd", 1.0, "<=", 1.2, case=case, impl="hwlib f64", ref="torch f64")
    checks = {(c.name, c.op): c for c in bench_main._kernel_checks(results, [target])}
    time_ratio = checks[("conv hwlib f64: time in a notebook kernel / on the command line", "<=")]
    assert time_ratio.value == pytest.approx(1.05) and time_ratio.passed
    figure = checks[("conv: hwlib/torch f64 fwd+bwd: the figure in a notebook kernel / on the command line", "<=")]
    assert figure.value == pytest.approx(np.median([1.05, 1.05 / 1.2]))      # (hk/hc) / (tk/tc) per round
    assert figure.passed and checks[(figure.name, ">=")].passed
    # A check without a PyTorch reference (naive/hwlib) is not compared across launchers.
    assert bench_main._kernel_checks(results, [bench.Check("naive", 900.0, ">=", 300, case=case, impl="hwlib f64")]) == []
