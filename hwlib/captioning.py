"""Q4: image captioning with a vanilla RNN, trained by the shared :class:`hwlib.solver.Solver`.

* :class:`CaptioningRNN`: image features -> initial hidden state -> RNN over the words of a
  caption -> scores over the vocabulary at every step (the seed's model and signature);
* :func:`caption_batch_sampler` and :func:`train_captioning`: the Solver's ``batch_sampler``
  hook draws (features, captions) minibatches, so captioning needs no solver of its own;
* :func:`exact_match_rate`, :func:`bleu_score`, :func:`evaluate_captioning`: how good greedy
  captions are against the reference captions of each image.

Captions are (N, T + 1) integer arrays of word ids: ``<START> w_1 ... w_k <END> <NULL> ...``.
The model reads ``captions[:, :-1]`` and learns to predict ``captions[:, 1:]``; the padding
positions (target ``<NULL>``) do not count in the loss.

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter

import numpy as np

from .layers import fc_backward, fc_forward
from .rnn_layers import (rnn_backward, rnn_forward, rnn_step_forward, temporal_fc_backward,
                         temporal_fc_forward, temporal_softmax_loss, word_embedding_backward,
                         word_embedding_forward)
from .validation import as_generator, float_dtype, positive_int, require, require_ids, require_ndim

__all__ = [
    "CaptioningRNN", "caption_batch_sampler", "train_captioning",
    "caption_words", "exact_match_rate", "bleu_score", "references_by_image", "evaluate_captioning",
    "show_captions",
]

SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>")


class CaptioningRNN:
    """A captioning network: image features set the initial hidden state of a vanilla RNN.

    For N images with D-dimensional features, a vocabulary of V words, word vectors of size W,
    a hidden state of size H and captions of T + 1 tokens (so T steps):

    ``h0 = features @ W_proj + b_proj`` (N, H); the input words ``captions[:, :-1]`` are embedded
    with ``W_embed`` (N, T, W), run through the RNN (``Wx``, ``Wh``, ``b``) to hidden states
    (N, T, H), and mapped to scores over the vocabulary by ``W_vocab``, ``b_vocab`` (N, T, V).

    Parameters (``self.params``): W_proj (D, H), b_proj (H,), W_embed (V, W), Wx (W, H),
    Wh (H, H), b (H,), W_vocab (H, V), b_vocab (V,).

    There is no regularization. Only ``cell_type='rnn'`` (tanh) is part of this assignment.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128, cell_type="rnn",
                 dtype=np.float32, rng=None):
        """
        Inputs:
        - word_to_idx: dict word -> id for the V words of the vocabulary, ids 0 ... V - 1; must
          contain <NULL>, <START> and <END>
        - input_dim: D, the size of the image features
        - wordvec_dim: W, the size of the word vectors
        - hidden_dim: H, the size of the RNN's hidden state
        - cell_type: "rnn" (a vanilla tanh RNN)
        - dtype: np.float32 (training) or np.float64 (gradient checks)
        - rng: np.random.Generator (or int seed) for the initial weights; None draws a fresh one
        """
        owner = "CaptioningRNN"
        require(cell_type == "rnn", owner, f"cell_type must be 'rnn' (a vanilla tanh RNN); got {cell_type!r}")
        require(isinstance(word_to_idx, dict) and len(word_to_idx) > 0, owner,
                f"word_to_idx must be a non-empty dict word -> id; got {type(word_to_idx).__name__}")
        ids = sorted(word_to_idx.values())
        require(ids == list(range(len(ids))), owner,
                f"word_to_idx must number its {len(ids)} words 0 ... {len(ids) - 1}, each id once")
        missing = [t for t in SPECIAL_TOKENS if t not in word_to_idx]
        require(not missing, owner, f"word_to_idx must contain {', '.join(SPECIAL_TOKENS)}; missing {', '.join(missing)}")
        self.cell_type = cell_type
        self.word_to_idx = dict(word_to_idx)
        self.idx_to_word = {i: w for w, i in word_to_idx.items()}
        self._null, self._start, self._end = (word_to_idx[t] for t in SPECIAL_TOKENS)
        self.input_dim = positive_int(owner, "input_dim", input_dim)
        self.wordvec_dim = positive_int(owner, "wordvec_dim", wordvec_dim)
        self.hidden_dim = positive_int(owner, "hidden_dim", hidden_dim)
        self.dtype = float_dtype(owner, dtype)
        rng = as_generator(owner, rng)
        V, D, W, H = len(word_to_idx), self.input_dim, self.wordvec_dim, self.hidden_dim
        # cs231n's initialisation: small word vectors, weights scaled by 1/sqrt(fan-in), zero biases.
        # Drawn in float64 and cast, so a seed gives the same (rounded) weights in either dtype.
        p = {}
        p["W_embed"] = rng.standard_normal((V, W)) / 100
        p["W_proj"] = rng.standard_normal((D, H)) / np.sqrt(D)
        p["b_proj"] = np.zeros(H)
        p["Wx"] = rng.standard_normal((W, H)) / np.sqrt(W)
        p["Wh"] = rng.standard_normal((H, H)) / np.sqrt(H)
        p["b"] = np.zeros(H)
        p["W_vocab"] = rng.standard_normal((H, V)) / np.sqrt(H)
        p["b_vocab"] = np.zeros(V)
        self.params = {k: v.astype(self.dtype) for k, v in p.items()}

    def __repr__(self):
        return (f"CaptioningRNN(vocabulary={len(self.word_to_idx)} words, input_dim={self.input_dim}, "
                f"wordvec_dim={self.wordvec_dim}, hidden_dim={self.hidden_dim}, cell_type={self.cell_type!r}, "
                f"dtype={self.dtype.name})")

    def _features(self, owner, features):
        features = np.asarray(features)
        require(features.dtype != object and np.issubdtype(features.dtype, np.number), owner,
                f"features must be a numeric array; got dtype {features.dtype}")
        require_ndim(owner, "features", features, 2, f"(N, D) with D = {self.input_dim} (input_dim)")
        require(features.shape[1] == self.input_dim and features.shape[0] > 0, owner,
                f"features must have shape (N, {self.input_dim}) (input_dim = {self.input_dim}), N >= 1; "
                f"got shape {features.shape}")
        return features.astype(self.dtype, copy=False)

    def loss(self, features, captions):
        """Training loss and gradients for a minibatch of images and their captions.

        Inputs:
        - features: (N, D) image features
        - captions: (N, T + 1) integer word ids, T >= 1; each row starts with <START> and is
          padded with <NULL> after <END>

        Returns ``(loss, grads)``: loss a float (the temporal softmax loss: summed over the
        time steps whose target is not <NULL>, averaged over N), grads a dict keyed like
        ``self.params``.
        """
        owner = "CaptioningRNN.loss"
        features = self._features(owner, features)
        N = features.shape[0]
        V = len(self.word_to_idx)
        captions = require_ids(owner, "captions", captions, V, ndim=2, layout="(N, T + 1)",
                               of=f"the vocabulary size V = {V}")
        require(captions.shape[0] == N and captions.shape[1] >= 2, owner,
                f"captions must have shape ({N}, T + 1) with T + 1 >= 2 (one caption per image of features "
                f"{features.shape}); got shape {captions.shape}")
        # The RNN reads words 0 ... T - 1 and must predict words 1 ... T; <NULL> targets do not count.
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]
        grads = {}
        ### BEGIN SOLUTION
        # Forward. The RNN layers are time-major (T, N, .): transpose in and out of them.
        h0, proj_cache = fc_forward(features, W_proj, b_proj)                    # (N, H)
        words, embed_cache = word_embedding_forward(captions_in, W_embed)        # (N, T, W)
        h, rnn_cache = rnn_forward(words.transpose(1, 0, 2), h0, Wx, Wh, b)      # (T, N, H)
        scores, vocab_cache = temporal_fc_forward(h.transpose(1, 0, 2), W_vocab, b_vocab)  # (N, T, V)
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)

        # Backward, in reverse order.
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_fc_backward(dscores, vocab_cache)
        dwords, dh0, grads["Wx"], grads["Wh"], grads["b"] = rnn_backward(dh.transpose(1, 0, 2), rnn_cache)
        grads["W_embed"] = word_embedding_backward(dwords.transpose(1, 0, 2), embed_cache)
        _, grads["W_proj"], grads["b_proj"] = fc_backward(dh0, proj_cache)
        ### END SOLUTION
        return loss, grads

    def sample(self, features, max_length=30):
        """Greedy captions: at every step feed back the word with the highest score.

        Every row starts from <START> (not returned) and the initial hidden state of its image;
        once a row has produced <END>, its later positions are <NULL>.

        Inputs:
        - features: (N, D) image features
        - max_length: the most words to generate per image

        Returns captions (N, max_length) of integer word ids (<END> included where it was produced).
        """
        owner = "CaptioningRNN.sample"
        features = self._features(owner, features)
        max_length = positive_int(owner, "max_length", max_length)
        N = features.shape[0]
        captions = np.full((N, max_length), self._null, dtype=np.int64)
        W_proj, b_proj = self.params["W_proj"], self.params["b_proj"]
        W_embed = self.params["W_embed"]
        Wx, Wh, b = self.params["Wx"], self.params["Wh"], self.params["b"]
        W_vocab, b_vocab = self.params["W_vocab"], self.params["b_vocab"]
        ### BEGIN SOLUTION
        h, _ = fc_forward(features, W_proj, b_proj)
        word = np.full(N, self._start)
        done = np.zeros(N, dtype=bool)
        for t in range(max_length):
            h, _ = rnn_step_forward(W_embed[word], h, Wx, Wh, b)
            word = np.argmax(h @ W_vocab + b_vocab, axis=1)
            captions[~done, t] = word[~done]
            done |= word == self._end
            if done.all():
                break
        ### END SOLUTION
        return captions


# --- training through the shared Solver -----------------------------------------------------------

def caption_batch_sampler(data, split="train"):
    """A ``batch_sampler`` for :class:`hwlib.solver.Solver`: ``(rng, batch_size) -> (features, captions)``.

    Draws captions uniformly with replacement (as the seed's ``sample_coco_minibatch``) from
    ``data[split + "_captions"]``, with the features of their images.
    """
    from .data.coco import sample_coco_minibatch

    def sampler(rng, batch_size):
        captions, features, _ = sample_coco_minibatch(data, batch_size=batch_size, split=split, rng=rng)
        return features, captions

    return sampler


def train_captioning(model, data, *, update_rule="adam", optim_config=None, lr_decay=1.0, batch_size=100,
                     num_epochs=10, print_every=10, verbose=True, seed=0, show_progress=True, blas_threads=1):
    """Train ``model`` on ``data[train_captions]`` with the shared Solver; return the Solver.

    One epoch is ``len(data["train_captions"]) // batch_size`` minibatches (at least one). No
    validation accuracy is measured (captioning has no class accuracy): the final parameters are
    kept, and ``solver.loss_history`` holds the training loss of every iteration.

    ``blas_threads`` limits NumPy's BLAS threads while training (default 1; None: leave them
    alone). The RNN's matrix products are small and run one time step after the other, where one
    thread is about as fast as several -- and on a busy machine several threads that wait for
    each other are 10 to 30 times slower. (Needs ``threadpoolctl``; without it, a no-op.)
    """
    from .solver import Solver

    solver = Solver(model, {"num_train": len(data["train_captions"])}, update_rule=update_rule,
                    optim_config=optim_config, lr_decay=lr_decay, batch_size=batch_size, num_epochs=num_epochs,
                    print_every=print_every, verbose=verbose, seed=seed,
                    batch_sampler=caption_batch_sampler(data, "train"), show_progress=show_progress)
    with _blas_threads(blas_threads):
        return solver.train()


def _blas_threads(limit):
    """A context limiting BLAS to ``limit`` threads (threadpoolctl), or doing nothing."""
    import contextlib

    if limit is None:
        return contextlib.nullcontext()
    require(isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1, "train_captioning",
            f"blas_threads must be a positive integer or None; got {limit!r}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the kit's dependencies
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


# --- metrics ----------------------------------------------------------------------------------------

def caption_words(captions, idx_to_word) -> list[list[str]]:
    """The words of each caption, without <START>, <NULL> and <END> (reading stops at <END>).

    Inputs: captions (N, L) integer ids (or a single caption (L,)); idx_to_word a list or dict
    id -> word. Returns a list of N lists of words.
    """
    captions = np.asarray(captions)
    if captions.ndim == 1:
        captions = captions[None]
    require_ndim("caption_words", "captions", captions, 2, "(N, L)")
    null, start, end = SPECIAL_TOKENS
    result = []
    for row in captions:
        words = []
        for i in row:
            word = idx_to_word[int(i)]
            if word == end:
                break
            if word not in (null, start):
                words.append(word)
        result.append(words)
    return result


def _as_words(caption) -> tuple[str, ...]:
    return tuple(caption.split()) if isinstance(caption, str) else tuple(caption)


def exact_match_rate(candidates, references) -> float:
    """Fraction of candidates equal, word for word, to at least one of their references.

    Inputs:
    - candidates: list of N captions (a string or a list of words each)
    - references: list of N lists of reference captions (strings or lists of words)
    """
    require(len(candidates) == len(references) and len(candidates) > 0, "exact_match_rate",
            f"candidates and references must be non-empty and of the same length; got {len(candidates)} and {len(references)}")
    hits = sum(_as_words(c) in {_as_words(r) for r in refs} for c, refs in zip(candidates, references))
    return hits / len(candidates)


def _ngrams(words, n):
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def bleu_score(candidates, references, max_n: int = 4) -> float:
    """Corpus-level BLEU (Papineni et al., 2002) with uniform weights over 1- ... ``max_n``-grams.

    ``BLEU = BP * exp(mean_n log p_n)``: p_n is the modified n-gram precision over the whole corpus
    (each candidate n-gram counts at most as often as it occurs in one of that candidate's
    references), and the brevity penalty ``BP = min(1, exp(1 - r / c))`` compares the total
    candidate length c with the total length r of the references closest in length (the shorter
    one on a tie). Returns a number in [0, 1]; 0 when some p_n is 0 (no smoothing).

    Inputs as in :func:`exact_match_rate`.
    """
    require(len(candidates) == len(references) and len(candidates) > 0, "bleu_score",
            f"candidates and references must be non-empty and of the same length; got {len(candidates)} and {len(references)}")
    require(isinstance(max_n, int) and max_n >= 1, "bleu_score", f"max_n must be a positive integer; got {max_n!r}")
    matched, total = np.zeros(max_n), np.zeros(max_n)
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        cand, refs = _as_words(cand), [_as_words(r) for r in refs]
        require(len(refs) > 0, "bleu_score", "every candidate needs at least one reference")
        cand_len += len(cand)
        ref_len += min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(cand, n)
            max_ref = Counter()
            for r in refs:
                max_ref |= _ngrams(r, n)  # element-wise maximum of the counts
            matched[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            total[n - 1] += sum(counts.values())
    if cand_len == 0 or np.any(matched == 0):
        return 0.0
    log_precision = float(np.mean(np.log(matched / total)))
    brevity = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / cand_len)
    return brevity * math.exp(log_precision)


def references_by_image(data, split="val"):
    """The distinct images of a split and their reference captions.

    Returns ``(image_idxs, references)``: the sorted image indices that have captions in
    ``data[split + "_image_idxs"]``, and for each one the list of its captions as lists of words.
    """
    captions, image_idxs = data[f"{split}_captions"], np.asarray(data[f"{split}_image_idxs"])
    words = caption_words(captions, data["idx_to_word"])
    by_image: dict[int, list] = {}
    for idx, caption in zip(image_idxs.tolist(), words):
        by_image.setdefault(idx, []).append(caption)
    images = np.array(sorted(by_image), dtype=np.int64)
    return images, [by_image[i] for i in images.tolist()]


def evaluate_captioning(model, data, split="val", max_images=None, max_length=None, batch_size=500) -> dict:
    """Greedy captions for the images of a split, scored against their reference captions.

    Inputs:
    - model: a :class:`CaptioningRNN`
    - data: a captioning dict (:func:`hwlib.data.coco.load_coco_data`)
    - split: "train" or "val"
    - max_images: score only the first this many images (in index order); None: all
    - max_length: words generated per image (default: the caption length of the data)
    - batch_size: images per call of ``model.sample``

    Returns a dict: ``exact_match`` (fraction of images whose caption equals one of their
    references), ``bleu4`` (corpus BLEU-4), ``num_images``, and ``image_idxs``, ``candidates``,
    ``references`` (lists of words) for inspection.
    """
    images, references = references_by_image(data, split)
    if max_images is not None:
        images, references = images[:max_images], references[:max_images]
    if max_length is None:
        max_length = data[f"{split}_captions"].shape[1]
    features = data[f"{split}_features"]
    candidates = []
    for start in range(0, len(images), batch_size):
        sampled = model.sample(features[images[start:start + batch_size]], max_length=max_length)
        candidates += caption_words(sampled, data["idx_to_word"])
    return {"exact_match": exact_match_rate(candidates, references), "bleu4": bleu_score(candidates, references),
            "num_images": len(images), "image_idxs": images, "candidates": candidates, "references": references}


# --- showing captions -------------------------------------------------------------------------------

def show_captions(data, split, image_idxs, generated, references=None, ncols: int = 4, size: float = 2.8,
                  label: str = "generated", suptitle: str | None = None):
    """Images with their generated caption (and a reference caption), one panel per image.

    The embedded set has its pictures (``data[split + "_images"]``); for COCO, whose pictures are
    not in the files, the panel shows the image's URL instead (open it in a browser).

    Inputs:
    - data: a captioning dict; split: "train" or "val"
    - image_idxs: (K,) image indices into ``data[split + "_features"]``
    - generated: K generated captions (strings or lists of words)
    - references: K reference captions (strings or lists of words), or None
    - label: what the first caption is called in the panels ("generated", or e.g. "caption" to
      show the data's own captions)
    - suptitle: optional title of the whole figure

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # imported on use: importing hwlib stays light

    image_idxs = np.asarray(image_idxs).reshape(-1)
    require(len(generated) == len(image_idxs) and len(image_idxs) > 0, "show_captions",
            f"generated must hold one caption per image ({len(image_idxs)}); got {len(generated)}")
    require(references is None or len(references) == len(image_idxs), "show_captions",
            f"references must hold one caption per image ({len(image_idxs)}); got {len(references or [])}")
    images = data.get(f"{split}_images")
    as_text = lambda c: c if isinstance(c, str) else " ".join(c)  # noqa: E731
    n = len(image_idxs)
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.9) * nrows), squeeze=False,
                             layout="constrained")  # makes room for the multi-line titles and the suptitle
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, (ax, idx) in enumerate(zip(axes.ravel(), image_idxs.tolist())):
        lines = textwrap.wrap(f"{label}: " + as_text(generated[k]), 34)
        if references is not None:
            lines += textwrap.wrap("reference: " + as_text(references[k]), 34)
        if images is not None:
            ax.imshow(images[idx], interpolation="nearest")
        else:
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(str(data[f"{split}_urls"][idx]), 30)), ha="center",
                    va="center", fontsize=7, transform=ax.transAxes, wrap=True)
        ax.set_title("\n".join(lines), fontsize=8, loc="left")
    if suptitle:
        fig.suptitle(suptitle)
    return fig
