"""Q4: image captioning with a vanilla RNN, trained by the shared :class:`hwlib.solver.Solver`.

:class:`CaptioningRNN`: image features -> initial hidden state -> RNN over the words of a caption
-> scores over the vocabulary at every step (the seed's model and signature). Training it through
the Solver, measuring its captions and showing them is given code, in
:mod:`hwlib.captioning_tools`.

Captions are (N, T + 1) integer arrays of word ids: ``<START> w_1 ... w_k <END> <NULL> ...``.
The model reads ``captions[:, :-1]`` and learns to predict ``captions[:, 1:]``; the padding
positions (target ``<NULL>``) do not count in the loss.

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write.
"""

from __future__ import annotations

import numpy as np

from .layers import fc_backward, fc_forward
from .rnn_layers import (rnn_backward, rnn_forward, rnn_step_forward, temporal_fc_backward,
                         temporal_fc_forward, temporal_softmax_loss, word_embedding_backward,
                         word_embedding_forward)
from .validation import as_generator, float_dtype, positive_int, require, require_ids, require_ndim

__all__ = ["CaptioningRNN", "SPECIAL_TOKENS"]

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
