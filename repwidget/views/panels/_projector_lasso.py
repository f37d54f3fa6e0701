"""The projector's points (which of the texts' tokens it shows: :func:`kept`) and its lasso in the selection:
``tokens`` (prompt positions) and ``points`` (the texts' points as ``[text, position]`` pairs in Python). On the
wire ``points`` is a bitset over the rows the projector shows (:func:`~repwidget.views.codec.encode_rows`): a lasso
of thousands of points is a few KB, not a list of pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...texts import token_ids
from ..codec import decode_rows, encode_rows
from ..protocol import index, short

#: the most dataset tokens the projector shows
MAX_POINTS = 20_000

Pairs = list[list[int]]
#: the session's cache entry of the last lasso seen: (its bitset, its pairs, how many), so that a selection change
#: that keeps the lasso (a layer, a token) neither decodes it nor builds its thousands of pairs again
LAST = "projector-lasso"


def kept(session) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """The points' token ids, and the texts whose tokens the projector shows: ``(text index, tokens after <bos>)``
    in order, until :data:`MAX_POINTS` tokens."""
    return session.of_clean(("projector-kept", MAX_POINTS), lambda: _choose(session))


def _choose(session) -> tuple[list[list[int]], list[tuple[int, int]]]:
    ids = token_ids(session.model, session.state["projector"].texts)
    keep, total = [], 0
    for i, x in enumerate(ids):
        take = min(len(x) - 1, MAX_POINTS - total)
        if take > 0:
            keep.append((i, take))
            total += take
        if total >= MAX_POINTS:
            break
    if not keep:
        raise ValueError("the projector's texts have no token after <bos>; give longer texts")
    return ids, keep


def _layout(session) -> tuple[np.ndarray, np.ndarray, int]:
    """Per text: the row of its first shown point (-1: none shown) and how many are shown; and the rows in all."""

    def make() -> tuple[np.ndarray, np.ndarray, int]:
        ids, keep = kept(session)
        first, take = np.full(len(ids), -1, dtype=np.int64), np.zeros(len(ids), dtype=np.int64)
        row = 0
        for text, n in keep:
            first[text], take[text] = row, n
            row += n
        return first, take, row

    return session.of_clean(("projector-rows", MAX_POINTS), make)


def _shown(session) -> bool:
    return session.state["projector"] is not None


def check_tokens(session, out, given) -> list[int]:
    """The selection's ``tokens`` (the prompt positions in the projector's lasso), sorted, without repeats."""
    tokens = out["tokens"]
    if not isinstance(tokens, (list, tuple)):
        raise ValueError(f"selection: tokens must be a list of positions, got {short(tokens, 40)}")
    return sorted({index({"tokens": t}, "tokens", session.n_tokens, "selection") for t in tokens})


def check_points(session, out, given) -> Pairs:
    """The selection's ``points`` (the texts' points in the projector's lasso): ``[text, position]`` pairs of points
    the projector shows (or their bitset from the browser), sorted, without repeats."""
    value = out["points"]
    if isinstance(value, dict):
        if not _shown(session):
            raise ValueError("selection: points are the projector's; open the explorer with points=texts")
        last = session.cached(LAST)
        if last is not None and last[0] == value:  # the lasso unchanged (e.g. a layer change): no new pairs
            return last[1]
        pairs = rows_to_pairs(session, decode_rows(value, _layout(session)[2], "selection: points"))
        session.cache(LAST, ({"n": value["n"], "bits": value["bits"]}, pairs, len(pairs)))
        return pairs
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"selection: points must be a list of [text, position] pairs, got {short(value, 40)}")
    if not value:
        return []
    if not _shown(session):
        raise ValueError("selection: points are the projector's; open the explorer with points=texts")
    return rows_to_pairs(session, pairs_to_rows(session, value))


def pairs_to_rows(session, pairs: Any) -> np.ndarray:
    """The rows of ``[text, position]`` pairs, sorted, without repeats; a pair the projector does not show raises
    ValueError naming it."""
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(type(v) is int for v in pair)):
            raise ValueError(f"selection: points are [text, position] pairs of ints, got {short(pair, 40)}")
    first, take, _ = _layout(session)
    both = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    text, pos = both[:, 0], both[:, 1]
    known = (text >= 0) & (text < len(first))
    n = np.where(known, take[np.where(known, text, 0)], 0)
    bad = np.flatnonzero((pos < 1) | (pos > n))
    if len(bad):
        t, p = both[bad[0]].tolist()
        raise ValueError(f"selection: the projector shows no point at text {t}, position {p}")
    return np.unique(first[text] + pos - 1)


def rows_to_pairs(session, rows: np.ndarray) -> Pairs:
    """``[text, position]`` of each row (rows sorted: pairs sorted)."""
    first, take, _ = _layout(session)
    texts = np.flatnonzero(take)
    of_row = texts[np.searchsorted(first[texts], rows, side="right") - 1]
    return np.stack([of_row, rows - first[of_row] + 1], 1).tolist()


def points_json(session, pairs: Any) -> Any:
    """``points`` as it travels: the bitset of the checked pairs (``[]`` for none)."""
    if not pairs or isinstance(pairs, dict) or not _shown(session):
        return pairs
    last = session.cached(LAST)
    if last is not None and last[1] is pairs and len(pairs) == last[2]:
        return last[0]
    wire = encode_rows(pairs_to_rows(session, pairs), _layout(session)[2])
    session.cache(LAST, (wire, pairs, len(pairs)))
    return wire


#: the most positions a request over the lasso names
MAX_LASSOED = 4096


def lassoed_field(content: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    """A request's ``tokens``: the lassoed prompt positions (a request's extra field: the predictions, features and
    probes views average over them), sorted, without repeats; bounded by the prompt in :func:`lassoed`."""
    tokens = content.get("tokens")
    if not isinstance(tokens, list) or not 0 < len(tokens) <= MAX_LASSOED:
        raise ValueError(f"tokens must be a list of 1..{MAX_LASSOED} prompt positions, got {short(tokens, 40)}")
    if not all(type(t) is int and t >= 0 for t in tokens):
        raise ValueError(f"tokens must be prompt positions (ints), got {short(tokens, 40)}")
    return {"tokens": sorted(set(tokens))}


def lassoed(session, args: dict[str, Any]) -> list[int]:
    """The request's lassoed positions, each checked against the prompt."""
    tokens = args["tokens"]
    if tokens[-1] >= session.n_tokens:
        raise ValueError(f"tokens: position {tokens[-1]} is out of range 0..{session.n_tokens - 1}")
    return tokens
