"""CaptioningRNN (loss, gradients, greedy sampling), its training through the Solver, and the metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwlib.captioning import CaptioningRNN
from hwlib.captioning_tools import (bleu_score, caption_batch_sampler, caption_words, evaluate_captioning,
                                    exact_match_rate, references_by_image, show_captions, train_captioning)
from hwlib.gradient_check import assert_close, eval_numerical_gradient
from hwlib.solver import Solver

VOCAB = {"<NULL>": 0, "<START>": 1, "<END>": 2, "<UNK>": 3, "a": 4, "red": 5, "cat": 6, "dog": 7}


def _random_model(seed, V=8, D=6, W=5, H=7, dtype=np.float64, scale=0.5):
    """A small model whose parameters (biases included) are all random."""
    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, **{f"w{i}": i for i in range(3, V)}}
    model = CaptioningRNN(words, input_dim=D, wordvec_dim=W, hidden_dim=H, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 100)
    for name, value in model.params.items():
        model.params[name] = (scale * rng.standard_normal(value.shape)).astype(dtype)
    return model


def _random_captions(rng, N, T1, V, min_len=1):
    """Captions <START> w ... <END> <NULL> ... of random lengths (so the mask matters)."""
    captions = np.zeros((N, T1), dtype=np.int64)
    for n in range(N):
        k = int(rng.integers(min_len, T1 - 1))  # number of words
        captions[n, 0] = 1
        captions[n, 1:1 + k] = rng.integers(3, V, size=k)
        captions[n, 1 + k] = 2
    return captions


# --- construction --------------------------------------------------------------------------------------

def test_parameters_have_the_seed_shapes_and_dtype():
    model = CaptioningRNN(VOCAB, input_dim=12, wordvec_dim=5, hidden_dim=7, rng=0)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W_embed": (8, 5), "W_proj": (12, 7), "b_proj": (7,), "Wx": (5, 7), "Wh": (7, 7), "b": (7,),
                      "W_vocab": (7, 8), "b_vocab": (8,)}
    assert all(v.dtype == np.float32 for v in model.params.values())
    again = CaptioningRNN(VOCAB, input_dim=12, wordvec_dim=5, hidden_dim=7, rng=0)
    other = CaptioningRNN(VOCAB, input_dim=12, wordvec_dim=5, hidden_dim=7, rng=1)
    assert all(np.array_equal(model.params[k], again.params[k]) for k in shapes)
    assert not np.array_equal(model.params["Wh"], other.params["Wh"])
    assert "CaptioningRNN(vocabulary=8 words" in repr(model)


@pytest.mark.parametrize("kwargs, match", [
    ({"cell_type": "lstm"}, "cell_type must be 'rnn'"),
    ({"word_to_idx": {"<NULL>": 0, "<START>": 1}}, "must contain <NULL>, <START>, <END>; missing <END>"),
    ({"word_to_idx": {"<NULL>": 0, "<START>": 1, "<END>": 3}}, "must number its 3 words 0 ... 2"),
    ({"hidden_dim": 0}, "hidden_dim must be a positive integer"),
    ({"dtype": np.int32}, "dtype must be np.float32 or np.float64"),
])
def test_bad_construction(kwargs, match):
    args = {"word_to_idx": VOCAB, **kwargs}
    with pytest.raises(ValueError, match=match):
        CaptioningRNN(**args)


# --- the loss ------------------------------------------------------------------------------------------

def test_loss_published_value():
    """cs231n's RNN_Captioning notebook: this model and data give a loss of 9.83235591003."""
    N, D, W, H, T = 10, 20, 30, 40, 13
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2}, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          dtype=np.float64, rng=0)
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)
    features = np.linspace(-1.5, 0.3, num=N * D).reshape(N, D)
    captions = (np.arange(N * T) % 3).reshape(N, T)
    loss, _ = model.loss(features, captions)
    assert abs(loss - 9.83235591003) < 1e-9


def _torch_loss_and_grads(model, features, captions):
    """The same network written with PyTorch operations, differentiated by autograd."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    captions_in, captions_out = torch.as_tensor(captions[:, :-1]), torch.as_tensor(captions[:, 1:])
    N, T = captions_in.shape
    h = torch.tensor(features) @ p["W_proj"] + p["b_proj"]
    words = torch.nn.functional.embedding(captions_in, p["W_embed"])
    scores = []
    for t in range(T):
        h = torch.tanh(words[:, t] @ p["Wx"] + h @ p["Wh"] + p["b"])
        scores.append(h @ p["W_vocab"] + p["b_vocab"])
    scores = torch.stack(scores, dim=1)
    target = torch.where(captions_out == 0, torch.full_like(captions_out, -100), captions_out)
    loss = torch.nn.functional.cross_entropy(scores.reshape(N * T, -1), target.reshape(-1), reduction="sum",
                                             ignore_index=-100) / N
    names = list(p)
    grads = torch.autograd.grad(loss, [p[k] for k in names])
    return loss.item(), {k: g.numpy() for k, g in zip(names, grads)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradients_match_pytorch(seed):
    model = _random_model(seed)
    rng = np.random.default_rng(seed)
    features, captions = rng.standard_normal((5, 6)), _random_captions(rng, 5, 7, 8)
    loss, grads = model.loss(features, captions)
    ref_loss, ref_grads = _torch_loss_and_grads(model, features, captions)
    assert abs(loss - ref_loss) <= 1e-10 * abs(ref_loss)
    assert set(grads) == set(model.params)
    for name, expected in ref_grads.items():
        assert grads[name].shape == model.params[name].shape
        assert_close(grads[name], expected, name=name, threshold=1e-8, floor=1e-8 * np.abs(expected).max(),
                     expected_label="torch")


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_gradients_match_numerical_gradients(seed):
    """Every parameter's gradient against centred differences of the float64 loss."""
    model = _random_model(seed, V=7, D=4, W=3, H=5)
    rng = np.random.default_rng(10 + seed)
    features, captions = rng.standard_normal((3, 4)), _random_captions(rng, 3, 6, 7)
    loss, grads = model.loss(features, captions)
    for name in model.params:
        numerical = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name], h=1e-5)
        assert_close(grads[name], numerical, name=name, threshold=1e-6, floor=1e-5 * max(np.abs(numerical).max(), 1e-8),
                     expected_label="numerical")


def test_padding_does_not_count():
    """Extra <NULL> columns, and whatever the model would predict there, do not change the loss."""
    model = _random_model(3)
    rng = np.random.default_rng(3)
    features, captions = rng.standard_normal((4, 6)), _random_captions(rng, 4, 6, 8)
    padded = np.concatenate([captions, np.zeros((4, 3), dtype=captions.dtype)], axis=1)
    (loss, grads), (loss_padded, grads_padded) = model.loss(features, captions), model.loss(features, padded)
    assert abs(loss - loss_padded) < 1e-12 * loss
    for name in grads:
        assert_close(grads_padded[name], grads[name], name=name, threshold=1e-10, floor=1e-12)


def test_float32_model_computes_in_float32():
    model = CaptioningRNN(VOCAB, input_dim=6, wordvec_dim=4, hidden_dim=5, rng=0)
    rng = np.random.default_rng(0)
    loss, grads = model.loss(rng.standard_normal((3, 6)), _random_captions(rng, 3, 5, 8))
    assert math.isfinite(loss) and all(g.dtype == np.float32 for g in grads.values())
    assert model.sample(rng.standard_normal((2, 6)), max_length=4).shape == (2, 4)


def test_bad_loss_inputs():
    model = CaptioningRNN(VOCAB, input_dim=6, wordvec_dim=4, hidden_dim=5, rng=0)
    features = np.zeros((3, 6))
    good = np.ones((3, 5), dtype=int)
    with pytest.raises(ValueError, match=r"features must have shape \(N, 6\).*got shape \(3, 5\)"):
        model.loss(np.zeros((3, 5)), good)
    with pytest.raises(ValueError, match=r"features must have 2 dimensions.*got shape \(6,\)"):
        model.loss(np.zeros(6), good)
    with pytest.raises(ValueError, match=r"captions must have shape \(3, T \+ 1\).*got shape \(2, 5\)"):
        model.loss(features, good[:2])
    with pytest.raises(ValueError, match=r"captions must hold ids in \[0, 8\).*got 8"):
        model.loss(features, np.full((3, 5), 8))
    with pytest.raises(ValueError, match=r"captions must have 2 dimensions \(N, T \+ 1\); got shape \(5,\)"):
        model.loss(features, good[0])
    with pytest.raises(ValueError, match=r"T \+ 1 >= 2.*got shape \(3, 1\)"):
        model.loss(features, good[:, :1])


# --- greedy sampling -----------------------------------------------------------------------------------

def _greedy_reference(model, features, max_length):
    """One image at a time, the recurrence written out, stopping at <END>."""
    p = model.params
    result = np.zeros((len(features), max_length), dtype=np.int64)
    for n, f in enumerate(features):
        h, word = f @ p["W_proj"] + p["b_proj"], 1
        for t in range(max_length):
            h = np.tanh(p["W_embed"][word] @ p["Wx"] + h @ p["Wh"] + p["b"])
            word = int(np.argmax(h @ p["W_vocab"] + p["b_vocab"]))
            result[n, t] = word
            if word == 2:
                break
    return result


def test_sample_is_greedy_and_stops_at_end():
    ended_early = ran_full = 0
    for seed in range(4):
        model = _random_model(seed, scale=1.0)
        model.params["b_vocab"][2] += 0.8  # make <END> likely enough that some rows stop early
        model.params["b_vocab"][0] = -50.0  # and <NULL> never chosen, so only the padding is <NULL>
        features = np.random.default_rng(seed).standard_normal((12, 6))
        sampled = model.sample(features, max_length=9)
        assert sampled.shape == (12, 9) and np.issubdtype(sampled.dtype, np.integer)
        assert np.array_equal(sampled, _greedy_reference(model, features, 9))
        for row in sampled:
            ends = np.flatnonzero(row == 2)
            if ends.size:
                assert np.all(row[ends[0] + 1:] == 0), f"tokens after <END>: {row}"
                ended_early += ends[0] < 8
            else:
                ran_full += 1
                assert np.all(row != 0)
    assert ended_early and ran_full, "the test needs rows that stop and rows that do not"


def test_sample_bad_input():
    model = CaptioningRNN(VOCAB, input_dim=6, wordvec_dim=4, hidden_dim=5, rng=0)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        model.sample(np.zeros((2, 6)), max_length=0)
    with pytest.raises(ValueError, match=r"features must have shape \(N, 6\)"):
        model.sample(np.zeros((2, 7)))


# --- training through the shared Solver -----------------------------------------------------------------

def _tiny_data(seed=0, num_images=6, D=10, V=9, T1=7):
    rng = np.random.default_rng(seed)
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + [f"w{i}" for i in range(4, V)]
    captions = _random_captions(rng, num_images, T1, V, min_len=2).astype(np.int32)
    return {"train_captions": captions, "train_image_idxs": np.arange(num_images, dtype=np.int32),
            "train_features": rng.standard_normal((num_images, D)).astype(np.float32),
            "train_urls": np.array([f"u{i}" for i in range(num_images)]),
            "val_captions": captions[:2], "val_image_idxs": np.arange(2, dtype=np.int32),
            "val_features": rng.standard_normal((2, D)).astype(np.float32), "val_urls": np.array(["v0", "v1"]),
            "idx_to_word": words, "word_to_idx": {w: i for i, w in enumerate(words)}}


def test_train_captioning_overfits_a_few_captions():
    data = _tiny_data()
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=16, hidden_dim=32, rng=0)
    solver = train_captioning(model, data, optim_config={"learning_rate": 1e-2}, batch_size=6, num_epochs=150,
                              verbose=False, seed=0)
    assert isinstance(solver, Solver) and len(solver.loss_history) == 150
    assert solver.val_acc_history == [] and solver.loss_history[-1] < 0.02 * solver.loss_history[0]
    result = evaluate_captioning(model, data, "train")
    assert result["exact_match"] == 1.0 and result["bleu4"] == 1.0, result["candidates"]


def test_training_is_reproducible_and_uses_the_solver_generator():
    data = _tiny_data(1)
    histories = []
    for seed in (5, 5, 6):
        model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=8, hidden_dim=8, rng=0)
        histories.append(train_captioning(model, data, batch_size=3, num_epochs=3, verbose=False, seed=seed).loss_history)
    assert histories[0] == histories[1] and histories[0] != histories[2]


def test_batch_sampler_pairs_captions_with_their_features():
    data = _tiny_data(2)
    features, captions = caption_batch_sampler(data)(np.random.default_rng(0), 20)
    assert features.shape == (20, 10) and captions.shape == (20, 7)
    for f, c in zip(features, captions):
        i = int(np.flatnonzero((data["train_captions"] == c).all(axis=1))[0])
        assert np.array_equal(f, data["train_features"][data["train_image_idxs"][i]])


# --- metrics --------------------------------------------------------------------------------------------

def test_caption_words_stops_at_end():
    idx_to_word = ["<NULL>", "<START>", "<END>", "a", "cat"]
    assert caption_words(np.array([[1, 3, 4, 2, 3, 0], [3, 0, 4, 0, 0, 0]]), idx_to_word) == [["a", "cat"], ["a", "cat"]]
    assert caption_words(np.array([3, 2, 4]), idx_to_word) == [["a"]]


def test_exact_match_rate():
    refs = [["a red circle", "a circle"], ["a blue square"], ["x"]]
    assert exact_match_rate(["a circle", "a blue square", "y"], refs) == pytest.approx(2 / 3)
    assert exact_match_rate([["a", "red", "circle"], "a blue", "x"], refs) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same length"):
        exact_match_rate(["a"], refs)


def test_bleu_hand_values():
    # p1..p4 = 5/6, 4/5, 3/4, 2/3 and equal lengths (no brevity penalty): BLEU = (1/3)^(1/4).
    assert bleu_score(["a b c d e f"], [["a b c d e g"]]) == pytest.approx((1 / 3) ** 0.25, rel=1e-12)
    assert bleu_score(["a b c d"], [["x y", "a b c d"]]) == 1.0
    # Clipping: "the" counts once, as in the reference -> p1 = 1/4 (BLEU-1), no brevity penalty (c > r).
    assert bleu_score(["the the the the"], [["the cat"]], max_n=1) == pytest.approx(0.25)
    # Brevity penalty: candidate of 2 words, closest reference has 4: BP = exp(1 - 4/2).
    assert bleu_score(["a b"], [["a b c d"]], max_n=2) == pytest.approx(math.exp(-1.0))
    # Corpus level: counts are pooled before the ratio (2 + 1 matches out of 2 + 2 unigrams).
    assert bleu_score(["a b", "c d"], [["a b"], ["c e"]], max_n=1) == pytest.approx(3 / 4)
    assert bleu_score(["a b c"], [["x y z"]]) == 0.0


def test_references_and_evaluation_with_a_perfect_model():
    data = _tiny_data(3)
    data["train_image_idxs"] = np.array([0, 0, 1, 2, 2, 2], dtype=np.int32)  # several captions per image
    images, refs = references_by_image(data, "train")
    assert images.tolist() == [0, 1, 2] and [len(r) for r in refs] == [2, 1, 3]

    class Oracle:  # "generates" the first reference caption of each image, from its features
        def sample(self, features, max_length):
            rows = [int(np.flatnonzero((data["train_features"] == f).all(axis=1))[0]) for f in features]
            first = {i: data["train_captions"][list(data["train_image_idxs"]).index(i)] for i in rows}
            return np.stack([first[i][1:1 + max_length] for i in rows])

    result = evaluate_captioning(Oracle(), data, "train", max_length=6)
    assert result["exact_match"] == 1.0 and result["bleu4"] == 1.0 and result["num_images"] == 3


def test_show_captions_draws_one_panel_per_image():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = _tiny_data(4)
    fig = show_captions(data, "train", [0, 2, 3], ["w4 w5", "w6", "w7"], references=["w4", "w5", "w6"], ncols=2)
    assert sum(ax.get_title(loc="left").startswith("generated:") for ax in fig.axes) == 3
    data["train_images"] = np.zeros((6, 8, 8, 3), dtype=np.uint8)
    fig2 = show_captions(data, "train", [1], ["w4"])
    assert len(fig2.axes[0].images) == 1
    plt.close("all")


# --- the public check of the model ---------------------------------------------------------------------

def test_public_model_check_passes():
    from hwlib.check import check

    for seed in range(3):
        check("CaptioningRNN", seed=seed, verbose=False)


@pytest.mark.parametrize("mistake", ["no_mask", "no_dh0", "tokens_after_end"])
def test_public_model_check_catches_mistakes(mistake, monkeypatch):
    import hwlib.captioning as C
    from hwlib.check import check

    if mistake == "no_mask":  # every position counts, <NULL> targets included
        original = C.temporal_softmax_loss
        monkeypatch.setattr(C, "temporal_softmax_loss", lambda x, y, mask: original(x, y, np.ones_like(mask)))
    elif mistake == "no_dh0":  # the image features get no gradient through h0
        original = C.rnn_backward
        monkeypatch.setattr(C, "rnn_backward", lambda dh, cache: (lambda g: (g[0], 0 * g[1], *g[2:]))(original(dh, cache)))
    else:  # sampling that keeps writing words after <END>
        monkeypatch.setattr(C.CaptioningRNN, "sample", lambda self, features, max_length=30:
                            np.tile(np.array([3, 2, 4] + [0] * (max_length - 3)), (len(features), 1)))
    with pytest.raises(AssertionError):
        check("CaptioningRNN", verbose=False)


def test_train_captioning_limits_blas_threads_only_while_training(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = lambda: [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]  # noqa: E731
    before, seen, train = blas(), [], Solver.train
    monkeypatch.setattr(Solver, "train", lambda self: (seen.append(blas()), train(self))[1])
    data = _tiny_data(5)
    model = CaptioningRNN(data["word_to_idx"], input_dim=10, wordvec_dim=4, hidden_dim=4, rng=0)
    train_captioning(model, data, batch_size=3, num_epochs=1, verbose=False)
    assert seen and all(n == 1 for n in seen[0]) and blas() == before
    train_captioning(model, data, batch_size=3, num_epochs=1, verbose=False, blas_threads=None)
    assert seen[1] == before
    with pytest.raises(ValueError, match="blas_threads must be a positive integer or None; got 0"):
        train_captioning(model, data, num_epochs=1, verbose=False, blas_threads=0)
