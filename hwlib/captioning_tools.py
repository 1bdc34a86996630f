"""Given code around the captioner of :mod:`hwlib.captioning` (Q4): training, metrics, display.

* :func:`caption_batch_sampler` and :func:`train_captioning`: the Solver's ``batch_sampler`` hook
  draws (features, captions) minibatches, so captioning needs no solver of its own;
* :func:`caption_words`: word ids back to words (special tokens dropped);
* :func:`exact_match_rate`, :func:`bleu_score`, :func:`evaluate_captioning`: how good greedy
  captions are against the reference captions of each image;
* :func:`show_captions`: images with their generated and reference captions.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter

import numpy as np

from .captioning import SPECIAL_TOKENS
from .validation import require, require_ndim

__all__ = ["caption_batch_sampler", "train_captioning", "caption_words", "exact_match_rate", "bleu_score",
           "references_by_image", "evaluate_captioning", "show_captions"]


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
