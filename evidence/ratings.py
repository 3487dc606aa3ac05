"""The leaderboard's numbers: Bradley-Terry ratings from pairwise votes, kind against kind, and automatic scores.

Everything here is numpy over a :class:`VoteTable` (the votes as arrays, built once); nothing knows the database
or Gradio. ``docs/evidence.md`` ("Ratings") explains the model in words.

- :func:`bradley_terry`: the maximum-likelihood Bradley-Terry fit (no prior) over contestants (a model in one
  precision), on the Elo scale (400·log10 of the odds) centred so that the mean rating is 1000, with 95 %
  percentile-bootstrap intervals; ties count half a win to each side; "both bad" is counted and shown, never
  fitted. A contestant whose maximum-likelihood rating is infinite (it never lost, or never won, against the rest)
  is reported as unbounded, never as a huge number; separate groups of contestants that never met are each
  centred on 1000 and flagged. With ``length_control``, the length-controlled ratings (LMArena's style control:
  the normalised length difference of the two answers as a covariate, fitted jointly) sit next to the plain ones.
- :func:`boards`: the board overall and per task, from one table (what the tab and ``/leaderboard`` show).
- :func:`kind_vs_kind` / :func:`plain_sentence`: how often the seq2seq side beat the causal side, per task, with a
  95 % Wilson interval, and the sentence on top of the tab.
- :func:`score_board`: prompt-set scores (chrF, ROUGE-L, exact, contains) per model, precision and task: mean,
  95 % bootstrap interval and rows; a separate board, never mixed with votes.

Example:
    >>> a, b = Contestant("t5", "float32", "seq2seq"), Contestant("gpt", "float32", "causal")
    >>> votes = [PairVote(a, b, "left", "translate", True)] * 3 + [PairVote(a, b, "right", "translate", True)]
    >>> [round(r.rating) for r in bradley_terry(votes, bootstrap=0).rows]
    [1095, 905]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

import numpy as np

from .types import CHOICES, KINDS, SET_TASKS, TASKS, Contestant, PairVote, ScoreRow

ELO = 400 / math.log(10)  # Elo points per unit of natural log-odds
CENTRE = 1000.0  # the mean rating of a group of rated contestants
BOOTSTRAP = 200  # resamples for the rating intervals
SCORE_BOOTSTRAP = 1000  # resamples for the automatic-score intervals
LEVEL = 0.95
Z = 1.959963984540054  # the normal quantile of (1 + LEVEL) / 2
FEW_VOTES = 10  # kind against kind: fewer votes than this get no verdict in plain words
ALL = "all"  # the task of a board over every task
MAX_STEP = 3.0  # the largest Newton step, in log-odds (keeps the first steps of a lopsided fit in range)
MAX_ITER = 100
TOL = 1e-9  # score equations: |observed - expected| wins, in votes
MAX_LENGTH_COEFFICIENT = 20.0  # log-odds per unit of (L - R) / (L + R): beyond it the lengths separate the outcomes

RATED, ABOVE, BELOW, UNRATED = "rated", "unbounded above", "unbounded below", "not enough votes"
_STATUS_ORDER = {ABOVE: 0, RATED: 1, BELOW: 2, UNRATED: 3}
_CHOICE = {choice: code for code, choice in enumerate(CHOICES)}  # left 0, right 1, tie 2, both_bad 3
_TASK = {task: code for code, task in enumerate(TASKS)}
_KIND = {kind: code for code, kind in enumerate(KINDS)}  # seq2seq 0, causal 1; anything else -1
#: a task in the sentence on top of the tab: "On translation, ..."
TASK_PHRASES = {"summarize": "summaries", "translate": "translation", "answer a question": "questions",
                "follow an instruction": "instructions", "continue a text": "continuing a text",
                "other": "other tasks", ALL: "all tasks"}


# ----------------------------------------------------------------------------------------------- the votes as arrays


@dataclass(frozen=True, eq=False)
class VoteTable:
    """Votes as arrays, one entry per vote; contestants sorted by (model, precision), so the order of the votes and
    which side a contestant sat on change nothing. Build it once (:meth:`from_votes`) and compute every board from it.

    Args:
        contestants: everyone who appears, sorted by (model, precision).
        left / right: index of each vote's sides in ``contestants``.
        choice: 0 left, 1 right, 2 tie, 3 both bad (the order of :data:`~evidence.types.CHOICES`).
        task: index in :data:`~evidence.types.TASKS`.
        blind: the names were hidden until the vote.
        left_chars / right_chars: answer lengths in characters (0 when unknown).
    """

    contestants: tuple[Contestant, ...]
    left: np.ndarray
    right: np.ndarray
    choice: np.ndarray
    task: np.ndarray
    blind: np.ndarray
    left_chars: np.ndarray
    right_chars: np.ndarray

    @classmethod
    def from_votes(cls, votes: Iterable[PairVote]) -> "VoteTable":
        """The table of ``votes``. A contestant is its model and precision; its kind is the first one seen.

        Raises:
            ValueError: for a choice not in ``CHOICES`` or a task not in ``TASKS`` (the store parses both).
        """
        votes = list(votes)
        n = len(votes)
        seen: dict[tuple[str, str], int] = {}  # (model, precision) -> order of first sight
        left = np.fromiter((seen.setdefault((v.left.model, v.left.precision), len(seen)) for v in votes), np.int64, n)
        right = np.fromiter((seen.setdefault((v.right.model, v.right.precision), len(seen)) for v in votes),
                            np.int64, n)
        try:
            choice = np.fromiter((_CHOICE[v.choice] for v in votes), np.int64, n)
            task = np.fromiter((_TASK[v.task] for v in votes), np.int64, n)
        except KeyError as exc:
            raise ValueError(f"unknown choice or task {exc.args[0]!r}: choices are {CHOICES}, tasks {TASKS}") from None
        kinds: dict[tuple[str, str], str] = {}
        for side, indices in (("left", left), ("right", right)):
            _, first = np.unique(indices, return_index=True)
            for at in first.tolist():
                c = getattr(votes[at], side)
                kinds.setdefault((c.model, c.precision), c.kind)
        order = sorted(seen)
        rank = np.empty(len(seen), dtype=np.int64)
        rank[[seen[key] for key in order]] = np.arange(len(order))
        return cls(tuple(Contestant(model, precision, kinds[(model, precision)]) for model, precision in order),
                   rank[left], rank[right], choice, task, np.fromiter((v.blind for v in votes), bool, n),
                   np.fromiter((v.left_chars for v in votes), float, n),
                   np.fromiter((v.right_chars for v in votes), float, n))

    def __len__(self) -> int:
        return len(self.choice)

    def select(self, *, blind_only: bool = True, task: str | None = None) -> np.ndarray:
        """The mask of the votes a board counts: blind ones only (unless not ``blind_only``), of ``task``
        (``None`` or ``"all"``: every task)."""
        mask = self.blind.copy() if blind_only else np.ones(len(self), dtype=bool)
        if task not in (None, ALL):
            if task not in _TASK:
                raise ValueError(f"unknown task {task!r}: tasks are {TASKS}")
            mask &= self.task == _TASK[task]
        return mask

    @property
    def kinds(self) -> np.ndarray:
        """Each contestant's kind: 0 seq2seq, 1 causal, -1 other."""
        return np.array([_KIND.get(c.kind, -1) for c in self.contestants], dtype=np.int64)


Votes = Union[VoteTable, Iterable[PairVote]]


def _table(votes: Votes) -> VoteTable:
    return votes if isinstance(votes, VoteTable) else VoteTable.from_votes(votes)


# ----------------------------------------------------------------------------------------------- the fit


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for any x


def fit_bradley_terry(i: np.ndarray, j: np.ndarray, a_ij: np.ndarray, a_ji: np.ndarray, k: int) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry strengths (natural log-odds, summing to 0) by Newton's method.

    Each pair of contestants ``(i[p], j[p])`` has ``a_ij[..., p]`` wins of ``i`` over ``j`` and ``a_ji[..., p]`` the
    other way (ties already split in halves). Leading axes of ``a_ij`` / ``a_ji`` are independent fits (bootstrap
    resamples), solved together. The fitted strengths satisfy the score equations: each contestant's observed wins
    equal the sum of its fitted win probabilities, to :data:`TOL` votes.

    The maximum exists only when the "beat" graph (an edge i→j when i has a win over j) is strongly connected;
    callers check (:func:`_reach`) and never pass a fit without one.
    """
    a_ij, a_ji = np.asarray(a_ij, float), np.asarray(a_ji, float)
    batch = a_ij.shape[:-1]
    a_ij, a_ji = a_ij.reshape(-1, len(i)), a_ji.reshape(-1, len(i))
    n = a_ij + a_ji
    fits = len(a_ij)
    theta = np.zeros((fits, k))
    offset = (np.arange(fits) * k)[:, None]
    at_i, at_j = (offset + i).ravel(), (offset + j).ravel()  # each pair's place in the flattened (B, k) sums

    def per_contestant(values: np.ndarray, sign: float) -> np.ndarray:
        flat = values.ravel()
        return (np.bincount(at_i, flat, fits * k) + sign * np.bincount(at_j, flat, fits * k)).reshape(fits, k)

    for _ in range(MAX_ITER):
        s = _sigmoid(theta[:, i] - theta[:, j])
        g = per_contestant(a_ij - n * s, -1.0)  # observed minus expected wins, per contestant
        if np.abs(g).max(initial=0.0) < TOL:
            break
        w = n * s * (1 - s)
        h = np.ones((fits, k, k))  # the Laplacian of w plus 11ᵀ: invertible, and its steps keep sum(theta) = 0
        h[:, i, j] -= w
        h[:, j, i] -= w
        h[:, np.arange(k), np.arange(k)] += per_contestant(w, 1.0)
        step = np.linalg.solve(h, g[..., None])[..., 0]
        biggest = np.abs(step).max(axis=1)
        theta += step * np.minimum(1.0, MAX_STEP / np.maximum(biggest, 1e-300))[:, None]
    return theta.reshape(*batch, k)


def _reach(beats: np.ndarray) -> np.ndarray:
    """Reachability (``reach[..., a, b]``: a path of wins from a to b, a to itself included) of a boolean
    adjacency ``beats[..., a, b]`` (a beat b), by repeated squaring."""
    k = beats.shape[-1]
    reach = (beats | np.eye(k, dtype=bool)).astype(np.float32)
    for _ in range(max(1, math.ceil(math.log2(max(k, 2))))):
        reach = np.minimum(reach @ reach, 1.0)
    return reach > 0


def fit_length_controlled(left: np.ndarray, right: np.ndarray, y: np.ndarray, d: np.ndarray, k: int,
                          start: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray] | None:
    """Bradley-Terry with a covariate (logistic regression, Newton/IRLS): P(left wins) = σ(θ_left − θ_right + β·d).

    Args:
        left / right: each vote's contestants (indices below ``k``).
        y: 1 the left side won, 0 the right side, 0.5 a tie.
        d: the covariate, here the normalised length difference (L − R) / (L + R).
        start: strengths to start from (summing to 0; the plain fit's saves a few steps).

    Returns:
        ``(theta, beta, cov)``: strengths summing to 0, the covariate's coefficient, and the covariance of
        ``(theta, beta)`` from the inverse Fisher information on the sum-zero subspace; ``None`` when the fit does
        not converge, or converges beyond :data:`MAX_LENGTH_COEFFICIENT` (the covariate separates the outcomes:
        the coefficient's maximum is at infinity).
    """
    phi = np.zeros(k + 1) if start is None else np.r_[start, 0.0]
    v = np.r_[np.ones(k), 0.0]  # the direction the likelihood cannot see: every strength moved together
    pair = left * k + right
    for _ in range(MAX_ITER):
        p = _sigmoid(phi[left] - phi[right] + phi[k] * d)
        r = y - p
        g = np.r_[np.bincount(left, r, k) - np.bincount(right, r, k), np.einsum("i,i->", r, d)]
        w = p * (1 - p)
        counts = np.bincount(pair, w, k * k).reshape(k, k)
        h = np.zeros((k + 1, k + 1))
        h[:k, :k] = np.diag(np.bincount(left, w, k) + np.bincount(right, w, k)) - counts - counts.T
        h[:k, k] = h[k, :k] = np.bincount(left, w * d, k) - np.bincount(right, w * d, k)
        h[k, k] = np.einsum("i,i,i->", w, d, d)
        if np.abs(g).max() < TOL:
            if abs(phi[k]) > MAX_LENGTH_COEFFICIENT:  # converged only as far as a likelihood flat at infinity
                return None
            cov = np.linalg.inv(h + np.outer(v, v)) - np.outer(v, v) / (v @ v) ** 2  # the pseudo-inverse of h
            return phi[:k], float(phi[k]), cov
        try:
            step = np.linalg.solve(h + np.outer(v, v), g)
        except np.linalg.LinAlgError:
            return None
        phi += step * min(1.0, MAX_STEP / max(np.abs(step).max(), 1e-300))
    return None


# ----------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelRating:
    """One contestant on a board.

    Args:
        rating: Elo-scale rating (its group's mean is 1000); ``None`` when unbounded or not rated (see ``status``).
        ci_low / ci_high: the 95 % bootstrap interval; ``None`` for a side the interval leaves open (in some
            resamples the contestant never lost, or never won) or when there is no rating.
        votes: every vote it appears in (wins + losses + ties + both_bad).
        both_bad: votes that said both answers were bad (shown, never fitted).
        length_controlled_rating / lc_ci_low / lc_ci_high: the rating with the answers' length difference as a
            covariate, and its 95 % interval (from the fit's information matrix); ``None`` when not computed.
        status: ``"rated"``, ``"unbounded above"`` (never lost to the rated group: its maximum-likelihood rating
            is infinite), ``"unbounded below"`` (never beat it) or ``"not enough votes"``.
        group: the group of contestants compared with each other (1 = the group with the most votes); ratings of
            different groups cannot be compared; 0 for a contestant with no fitted vote.
        why: the status in words, for a contestant without a rating.
    """

    model: str
    precision: str
    kind: str
    rating: float | None
    ci_low: float | None
    ci_high: float | None
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    length_controlled_rating: float | None = None
    lc_ci_low: float | None = None
    lc_ci_high: float | None = None
    status: str = RATED
    group: int = 1
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``/leaderboard`` model entry (ratings to one decimal), plus its status."""
        return {"model": self.model, "precision": self.precision, "kind": self.kind, "rating": _round(self.rating),
                "ci_low": _round(self.ci_low), "ci_high": _round(self.ci_high), "votes": self.votes,
                "status": self.status}


@dataclass(frozen=True)
class KindRow:
    """Votes between one seq2seq and one causal side, for one task (or ``"all"``).

    Args:
        win_rate: the seq2seq side's share, ties counting half (both_bad left out); ``None`` without votes.
        ci_low / ci_high: its 95 % Wilson interval.
    """

    task: str
    seq2seq_wins: int
    causal_wins: int
    ties: int
    both_bad: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    blind_only: bool = True

    @property
    def votes(self) -> int:
        """The votes the win rate counts (both_bad left out)."""
        return self.seq2seq_wins + self.causal_wins + self.ties

    def to_dict(self) -> dict[str, Any]:
        """The ``/leaderboard`` kinds entry (shares to 4 decimals), plus both_bad."""
        return {"task": self.task, "seq2seq_wins": self.seq2seq_wins, "causal_wins": self.causal_wins,
                "ties": self.ties, "both_bad": self.both_bad, "win_rate": _round(self.win_rate, 4),
                "ci_low": _round(self.ci_low, 4), "ci_high": _round(self.ci_high, 4)}


@dataclass(frozen=True)
class Board:
    """A leaderboard: every contestant of the chosen votes, best first within each group.

    Args:
        task: ``"all"`` or one task.
        blind_only: only blind votes were counted.
        rows: the contestants (rated ones by rating, unbounded above before, unbounded below and unrated after).
        kinds: kind against kind for the same votes (every task and ``"all"`` on an ``"all"`` board).
        votes: votes counted (both_bad and a contestant against itself included).
        bootstrap: resamples behind the intervals (0: no intervals).
        length_coefficient: log-odds a vote gains per unit of (L − R) / (L + R) in the length-controlled fit of
            group 1, with its 95 % interval; ``None`` when length control was off or could not be fitted.
        notes: what a reader must know to read the board (groups, unbounded contestants, open intervals).
    """

    task: str
    blind_only: bool
    rows: list[ModelRating]
    kinds: list[KindRow] = field(default_factory=list)
    votes: int = 0
    bootstrap: int = BOOTSTRAP
    length_coefficient: float | None = None
    length_coefficient_ci: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def groups(self) -> int:
        """How many separately centred groups hold ratings."""
        return len({r.group for r in self.rows if r.status == RATED})

    def row(self, model: str, precision: str) -> ModelRating:
        """The row of one contestant (``KeyError`` if absent)."""
        for r in self.rows:
            if (r.model, r.precision) == (model, precision):
                return r
        raise KeyError((model, precision))

    def to_dict(self) -> dict[str, Any]:
        """The ``/leaderboard`` answer: ``{"models": [...], "kinds": [...]}``."""
        return {"models": [r.to_dict() for r in self.rows], "kinds": [k.to_dict() for k in self.kinds]}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _elo(theta: float) -> float:
    return CENTRE + ELO * float(theta)


# ----------------------------------------------------------------------------------------------- Bradley-Terry


@dataclass
class _Pairs:
    """The fitted votes of a selection, per unordered pair ``i < j``: counts of i wins, j wins, ties."""

    k: int  # contestants
    i: np.ndarray
    j: np.ndarray
    counts: np.ndarray  # (P, 3)

    def effective(self, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Wins each way with ties split in halves."""
        c = self.counts if counts is None else counts
        return c[..., 0] + c[..., 2] / 2, c[..., 1] + c[..., 2] / 2

    def subset(self, members: np.ndarray) -> "_Pairs":
        """The pairs with both sides in ``members`` (sorted indices), re-indexed 0..len(members)-1."""
        where = np.full(self.k, -1)
        where[members] = np.arange(len(members))
        keep = (where[self.i] >= 0) & (where[self.j] >= 0)
        return _Pairs(len(members), where[self.i[keep]], where[self.j[keep]], self.counts[keep])


def _tally(table: VoteTable, mask: np.ndarray) -> tuple[_Pairs, np.ndarray, int]:
    """The selection's pairs, each contestant's wins, losses, ties and both_bad (``(K, 4)``) and the votes of a
    contestant against itself (left out: they say nothing about strength)."""
    k = len(table.contestants)
    left, right, choice = table.left[mask], table.right[mask], table.choice[mask]
    same = left == right
    left, right, choice = left[~same], right[~same], choice[~same]
    record = np.zeros((k, 4), dtype=np.int64)  # wins, losses, ties, both_bad
    for code, (l_col, r_col) in enumerate(((0, 1), (1, 0), (2, 2), (3, 3))):
        chosen = choice == code
        record[:, l_col] += np.bincount(left[chosen], minlength=k)
        record[:, r_col] += np.bincount(right[chosen], minlength=k)
    i, j = np.minimum(left, right), np.maximum(left, right)
    code = np.where(left > right, np.array([1, 0, 2, 3])[choice], choice)  # as seen from i
    fitted = code < 3
    cells = np.bincount((i[fitted] * k + j[fitted]) * 3 + code[fitted], minlength=k * k * 3).reshape(k * k, 3)
    present = np.flatnonzero(cells.sum(axis=1))
    return _Pairs(k, present // k, present % k, cells[present]), record, int(same.sum())


def _components(pairs: _Pairs, k: int) -> list[np.ndarray]:
    """The contestants that met, split into groups that never met each other (each sorted)."""
    met = np.zeros((k, k), dtype=bool)
    met[pairs.i, pairs.j] = met[pairs.j, pairs.i] = True
    reach = _reach(met)
    seen: set[int] = set()
    out = []
    for a in np.flatnonzero(met.any(axis=1)):
        if a not in seen:
            members = np.flatnonzero(reach[a])
            seen.update(members.tolist())
            out.append(members)
    return out


def _beats(pairs: _Pairs, k: int, counts: np.ndarray | None = None) -> np.ndarray:
    """``beats[..., a, b]``: a has a win (or half of a tie) over b."""
    a_ij, a_ji = pairs.effective(counts)
    beats = np.zeros((*a_ij.shape[:-1], k, k), dtype=bool)
    beats[..., pairs.i, pairs.j] = a_ij > 0
    beats[..., pairs.j, pairs.i] = a_ji > 0
    return beats


@dataclass
class _Group:
    """One group of contestants that met: who is rated, and the statuses of the others."""

    members: np.ndarray  # every contestant of the group
    core: np.ndarray  # the rated ones (empty: none)
    status: dict[int, tuple[str, str]]  # contestant -> (status, why) for the others


def _group(pairs: _Pairs, members: np.ndarray) -> _Group:
    """Split a group into its rated core (the strongly connected part of the beat graph with the most votes) and the
    contestants whose rating is infinite relative to it, or undetermined."""
    sub = pairs.subset(members)
    m = len(members)
    reach = _reach(_beats(sub, m))
    strong = reach & reach.T
    if strong.all():
        return _Group(members, members, {})
    votes_in = {}
    for a in range(m):
        part = np.flatnonzero(strong[a])
        if len(part) > 1 and part[0] == a:
            inside = strong[a][sub.i] & strong[a][sub.j]
            votes_in[a] = (int(sub.counts[inside].sum()), len(part))
    status: dict[int, tuple[str, str]] = {}
    if votes_in:
        top = max(votes_in, key=lambda a: (votes_in[a], -a))
        core = np.flatnonzero(strong[top])
        for a in range(m):
            if strong[top, a]:
                continue
            up, down = reach[a, top], reach[top, a]
            if up and not down:
                status[int(members[a])] = (ABOVE, "never lost to the rated group (its rating is infinite)")
            elif down and not up:
                status[int(members[a])] = (BELOW, "never beat the rated group (its rating is infinite below)")
            else:
                status[int(members[a])] = (UNRATED, "its votes do not connect it to the rated group both ways")
        return _Group(members, members[core], status)
    for a in range(m):  # no two contestants beat each other both ways: nobody has a finite rating
        beaten = (reach[:, a] & ~reach[a, :]).any()  # someone above it
        beats_someone = (reach[a, :] & ~reach[:, a]).any()
        if beats_someone and not beaten:
            status[int(members[a])] = (ABOVE, "never lost (not enough votes for a rating)")
        elif beaten and not beats_someone:
            status[int(members[a])] = (BELOW, "never won (not enough votes for a rating)")
        else:
            status[int(members[a])] = (UNRATED, "not enough votes for a rating")
    return _Group(members, members[:0], status)


def _bootstrap(pairs: _Pairs, k: int, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Strengths of ``resamples`` bootstrap replicates of a strongly connected group's votes, ``(B, k)``: the votes
    resampled with replacement, as a multinomial draw over the distinct (pair, outcome) cells. A replicate whose beat
    graph is not strongly connected (someone never lost, or never won, in it) gets +inf for the contestants on top,
    -inf for those at the bottom and NaN for the others (no finite maximum exists). Also returns how many replicates
    were so."""
    total = int(pairs.counts.sum())
    draws = rng.multinomial(total, pairs.counts.ravel() / total, size=resamples).reshape(resamples, *pairs.counts.shape)
    reach = _reach(_beats(pairs, k, draws))
    connected = reach.all(axis=(1, 2))
    out = np.full((resamples, k), np.nan)
    if connected.any():
        a_ij, a_ji = pairs.effective(draws[connected])
        out[connected] = fit_bradley_terry(pairs.i, pairs.j, a_ij, a_ji, k)
    broken = ~connected
    if broken.any():
        r = reach[broken]
        has_above = (r.transpose(0, 2, 1) & ~r).any(axis=2)  # someone reaches it that it does not reach
        has_below = (r & ~r.transpose(0, 2, 1)).any(axis=2)  # it reaches someone who does not reach it
        values = np.full(has_above.shape, np.nan)
        values[has_below & ~has_above] = np.inf
        values[has_above & ~has_below] = -np.inf
        out[broken] = values
    return out, int(broken.sum())


def _interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of each column (NaN dropped), on the Elo scale; ±inf marks an open side."""
    with np.errstate(all="ignore"):
        low, high = np.nanquantile(samples, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0, method="inverted_cdf")
    return CENTRE + ELO * low, CENTRE + ELO * high


def _length_covariate(table: VoteTable, mask: np.ndarray) -> np.ndarray:
    lc, rc = table.left_chars[mask], table.right_chars[mask]
    total = lc + rc
    return np.divide(lc - rc, total, out=np.zeros_like(total), where=total > 0)


def bradley_terry(votes: Votes, *, blind_only: bool = True, task: str | None = None, bootstrap: int = BOOTSTRAP,
                  seed: int = 0, length_control: bool = False) -> Board:
    """The leaderboard of ``votes``: maximum-likelihood Bradley-Terry ratings per model and precision.

    Args:
        votes: the votes (:class:`~evidence.types.PairVote`) or a :class:`VoteTable` of them.
        blind_only: count blind votes only (the default); ``False`` counts sighted ones too.
        task: one of :data:`~evidence.types.TASKS`; ``None`` or ``"all"``: every task.
        bootstrap: resamples for the 95 % intervals (0: no intervals).
        seed: the resamples' seed (the same votes and seed give the same board).
        length_control: also fit the length-controlled ratings.

    Returns:
        A :class:`Board`; its ``notes`` say what cannot be read from the numbers alone.
    """
    table = _table(votes)
    return _board(table, table.select(blind_only=blind_only, task=task), task or ALL, blind_only, bootstrap,
                  np.random.default_rng(seed), length_control)


def boards(votes: Votes, *, blind_only: bool = True, bootstrap: int = BOOTSTRAP, seed: int = 0,
           length_control: bool = True) -> dict[str, Board]:
    """The board over every task (``"all"``) and one per task, from one :class:`VoteTable`."""
    table = _table(votes)
    kinds = _kind_rows(table, table.select(blind_only=blind_only), blind_only, None)
    out = {}
    for number, task in enumerate((ALL, *TASKS)):
        out[task] = _board(table, table.select(blind_only=blind_only, task=task), task, blind_only, bootstrap,
                           np.random.default_rng([seed, number]), length_control,
                           kinds if task == ALL else [k for k in kinds if k.task == task])
    return out


def _board(table: VoteTable, mask: np.ndarray, task: str, blind_only: bool, bootstrap: int,
           rng: np.random.Generator, length_control: bool, kinds: list[KindRow] | None = None) -> Board:
    k = len(table.contestants)
    pairs, record, self_votes = _tally(table, mask)
    notes: list[str] = []
    if kinds is None:
        kinds = _kind_rows(table, mask, blind_only, None if task == ALL else task)
    if not mask.any():
        return Board(task, blind_only, [], kinds, 0, bootstrap,
                     notes=[f"No {'blind ' if blind_only else ''}votes yet{_on(task)}."])
    groups = sorted((_group(pairs, members) for members in _components(pairs, k)),
                    key=lambda g: (-int(pairs.subset(g.core).counts.sum()) if len(g.core) else 1, g.members[0]))
    rating = np.full(k, np.nan)
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    lc = np.full((k, 3), np.nan)
    group_of = np.zeros(k, dtype=np.int64)
    status: dict[int, tuple[str, str]] = {}
    coefficient: tuple[float, tuple[float, float]] | None = None
    covariate = _length_covariate(table, mask) if length_control else None
    if covariate is not None and not covariate.any():
        notes.append("No answer lengths differ in these votes: no length-controlled ratings.")
        covariate = None
    for number, group in enumerate(groups, start=1):
        group_of[group.members] = number
        status.update(group.status)
        if not len(group.core):
            continue
        sub = group.core
        core_pairs = pairs.subset(sub)
        a_ij, a_ji = core_pairs.effective()
        theta = fit_bradley_terry(core_pairs.i, core_pairs.j, a_ij, a_ji, len(sub))
        rating[sub] = CENTRE + ELO * theta
        if bootstrap:
            samples, broken = _bootstrap(core_pairs, len(sub), bootstrap, rng)
            low[sub], high[sub] = _interval(samples)
            if broken:
                notes.append(f"In {broken} of {bootstrap} resamples someone in group {number} never lost or never won "
                             "(no finite rating there): an interval that reaches such a resample is left open.")
        if covariate is not None:
            fitted = _length_fit(table, mask, covariate, sub, theta)
            if fitted is None:
                notes.append(f"Group {number}: the length-controlled fit does not converge (the answers' lengths "
                             "alone separate the outcomes): no length-controlled ratings.")
            else:
                lc[sub], beta = fitted
                coefficient = coefficient or beta
    rows = []
    for c in range(k):
        wins, losses, ties, both_bad = (int(x) for x in record[c])
        if not record[c].any():
            continue
        contestant = table.contestants[c]
        state, why = status.get(c, (RATED, "") if not math.isnan(rating[c]) else (UNRATED, ""))
        if not (wins or losses or ties):
            why = "only 'both bad' votes: nothing to rate"
        rows.append(ModelRating(
            contestant.model, contestant.precision, contestant.kind, _finite(rating[c]), _finite(low[c]),
            _finite(high[c]), wins + losses + ties + both_bad, wins, losses, ties, both_bad, _finite(lc[c, 0]),
            _finite(lc[c, 1]), _finite(lc[c, 2]), state, int(group_of[c]), why))
    rows.sort(key=lambda r: (r.group or len(groups) + 1, _STATUS_ORDER[r.status], -(r.rating or 0.0),
                             r.model, r.precision))
    notes += _notes(rows, groups, self_votes, int(record[:, 3].sum()) // 2)
    return Board(task, blind_only, rows, kinds, int(mask.sum()), bootstrap,
                 coefficient[0] if coefficient else None, coefficient[1] if coefficient else None, notes)


def _length_fit(table: VoteTable, mask: np.ndarray, covariate: np.ndarray, core: np.ndarray,
                start: np.ndarray) -> tuple[np.ndarray, tuple[float, tuple[float, float]]] | None:
    """The length-controlled ratings of a group's core (``(len(core), 3)``: rating, low, high) and the length
    coefficient with its interval."""
    where = np.full(len(table.contestants), -1)
    where[core] = np.arange(len(core))
    left, right, choice = where[table.left[mask]], where[table.right[mask]], table.choice[mask]
    keep = (left >= 0) & (right >= 0) & (left != right) & (choice < 3)
    y = np.array([1.0, 0.0, 0.5])[choice[keep]]
    fitted = fit_length_controlled(left[keep], right[keep], y, covariate[keep], len(core), start)
    if fitted is None:
        return None
    theta, beta, cov = fitted
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    out = np.stack([CENTRE + ELO * theta, CENTRE + ELO * (theta - Z * se[:-1]), CENTRE + ELO * (theta + Z * se[:-1])],
                   axis=1)
    return out, (beta, (beta - Z * se[-1], beta + Z * se[-1]))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _on(task: str) -> str:
    return "" if task == ALL else f" on {TASK_PHRASES.get(task, task)}"


def _notes(rows: list[ModelRating], groups: list[_Group], self_votes: int, both_bad: int) -> list[str]:
    notes = []
    rated = {r.group for r in rows if r.status == RATED}
    if len(rated) > 1:
        notes.append(f"The votes form {len(rated)} groups of contestants that never met: each group is centred on "
                     "1000 and ratings compare only within a group.")
    for r in rows:
        if r.status != RATED:
            notes.append(f"{r.model} ({r.precision}): {r.status}: {r.why or 'not enough votes'} "
                         f"({r.wins} won, {r.losses} lost, {r.ties} tied).")
    if both_bad:
        notes.append(f"{both_bad} 'both bad' vote{'s' if both_bad != 1 else ''}: counted per contestant, not fitted.")
    if self_votes:
        notes.append(f"{self_votes} vote{'s' if self_votes != 1 else ''} between a model and itself (same precision) "
                     "left out.")
    return notes


# ----------------------------------------------------------------------------------------------- kind against kind


def wilson_interval(successes: float, n: float, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / n`` (``successes`` may be fractional: ties count half)."""
    if n <= 0:
        raise ValueError("no trials")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def kind_vs_kind(votes: Votes, *, blind_only: bool = True) -> list[KindRow]:
    """Per task (in :data:`~evidence.types.TASKS` order, then ``"all"``): among votes with one seq2seq and one causal
    side, the seq2seq side's wins, the causal side's wins, ties and both_bad, and the seq2seq win rate (ties half)
    with its 95 % Wilson interval."""
    table = _table(votes)
    return _kind_rows(table, table.select(blind_only=blind_only), blind_only, None)


def _kind_rows(table: VoteTable, mask: np.ndarray, blind_only: bool, task: str | None) -> list[KindRow]:
    kinds = table.kinds
    lk = kinds[table.left] if len(kinds) else np.zeros(0, np.int64)
    rk = kinds[table.right] if len(kinds) else np.zeros(0, np.int64)
    mixed = mask & (lk >= 0) & (rk >= 0) & (lk != rk)
    seq_left = lk == 0
    choice = table.choice
    outcome = np.where(choice == 0, np.where(seq_left, 0, 1), np.where(choice == 1, np.where(seq_left, 1, 0), choice))
    n_tasks = len(TASKS)
    counts = np.bincount(table.task[mixed] * 4 + outcome[mixed], minlength=n_tasks * 4).reshape(n_tasks, 4)
    wanted = list(TASKS) + [ALL] if task is None else [task]
    rows = []
    for name in wanted:
        s, c, t, b = (int(x) for x in (counts.sum(axis=0) if name == ALL else counts[_TASK[name]]))
        n = s + c + t
        rate, (low, high) = ((s + t / 2) / n, wilson_interval(s + t / 2, n)) if n else (None, (None, None))
        rows.append(KindRow(name, s, c, t, b, rate, low, high, blind_only))
    return rows


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def plain_sentence(row: KindRow) -> str:
    """The kind-against-kind verdict in plain words, e.g. "On translation, visitors preferred the encoder-decoder in
    64 % of 120 blind votes (95 % interval 55–72 %)." Fewer than :data:`FEW_VOTES` votes give no verdict."""
    where = "Over all tasks" if row.task == ALL else f"On {TASK_PHRASES.get(row.task, row.task)}"
    blind = "blind " if row.blind_only else ""
    between = "between an encoder-decoder and a decoder-only model"
    bad = (f" {row.both_bad} more said both answers were bad." if row.both_bad else "")
    n = row.votes
    if n == 0:
        return f"{where}, no {blind}votes yet {between}." + bad
    if n < FEW_VOTES or row.win_rate is None:
        return (f"{where}, only {n} {blind}vote{'s' if n != 1 else ''} so far {between}: too few to tell which "
                "visitors prefer." + bad)
    if row.win_rate >= 0.5:
        preferred, share, low, high = "the encoder-decoder", row.win_rate, row.ci_low, row.ci_high
    else:
        preferred, share, low, high = "the decoder-only model", 1 - row.win_rate, 1 - row.ci_high, 1 - row.ci_low
    interval = f"95 % interval {100 * low:.0f}–{_percent(high)}"
    if low <= 0.5:
        return (f"{where}, visitors preferred {preferred} in {_percent(share)} of {n} {blind}votes, not clearly more "
                f"than half ({interval})." + bad)
    return f"{where}, visitors preferred {preferred} in {_percent(share)} of {n} {blind}votes ({interval})." + bad


# ----------------------------------------------------------------------------------------------- automatic scores


@dataclass(frozen=True)
class ScoreCell:
    """One score of one contestant on one task, over the prompt-set rows that had it.

    Args:
        score: ``"chrf"``, ``"rouge_l"``, ``"exact"`` or ``"contains"``.
        mean: the mean of the row scores (chrF: of sentence-level chrF, which is not the set's corpus chrF).
        ci_low / ci_high: 95 % percentile-bootstrap interval of the mean (rows resampled); ``None`` for one row.
        n: rows scored.
    """

    model: str
    precision: str
    kind: str
    task: str
    score: str
    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "precision": self.precision, "kind": self.kind, "task": self.task,
                "score": self.score, "mean": round(self.mean, 4), "ci_low": _round(self.ci_low, 4),
                "ci_high": _round(self.ci_high, 4), "n": self.n}


def score_board(rows: Iterable[ScoreRow], *, bootstrap: int = SCORE_BOOTSTRAP, seed: int = 0) -> list[ScoreCell]:
    """The board of automatic scores: per model and precision, task and score, the mean over the rows, its 95 %
    bootstrap interval and the number of rows; sorted by task, score, then best mean first. Votes never enter it.

    Args:
        rows: scored prompt-set rows (one per side and row); rows without scores are skipped.
        bootstrap: resamples of the rows per cell.
        seed: the resamples' seed.
    """
    values: dict[tuple[str, str, str, str], list[float]] = {}
    kinds: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row.contestant.model, row.contestant.precision)
        kinds.setdefault(key, row.contestant.kind)
        for name, value in row.scores.items():
            values.setdefault((*key, row.task, name), []).append(float(value))
    rng = np.random.default_rng(seed)
    cells = []
    for (model, precision, task, name), found in sorted(values.items()):
        data = np.asarray(found)
        low = high = None
        if len(data) > 1 and bootstrap:
            means = data[rng.integers(0, len(data), size=(bootstrap, len(data)))].mean(axis=1)
            low, high = (float(x) for x in np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]))
        cells.append(ScoreCell(model, precision, kinds[(model, precision)], task, name, float(data.mean()), low, high,
                               len(data)))
    cells.sort(key=lambda c: (c.task, c.score, -c.mean, c.model, c.precision))
    return cells


def score_rows(result: Mapping[str, Any] | Any, left: Contestant, right: Contestant,
               task: str | None = None) -> list[ScoreRow]:
    """The scored rows of one prompt-set run (a :class:`models.sets.compare.SetResult` or its ``to_dict()``): each
    row's ``scores`` per side, as :func:`models.sets.scores.score_row` made them.

    Args:
        result: the set's result.
        left / right: the contestants of its two sides.
        task: the vote task (or a set task such as ``"qa"``); default: the result summary's task.
    """
    data = result if isinstance(result, Mapping) else result.to_dict()
    task = task or data["summary"]["task"]
    task = SET_TASKS.get(task, task)
    if task not in _TASK:
        raise ValueError(f"unknown task {task!r}: tasks are {TASKS}")
    out = []
    for row in data["rows"]:
        for side, contestant in (("left", left), ("right", right)):
            scores = (row.get("scores") or {}).get(side) or {}
            if scores:
                out.append(ScoreRow(contestant, task, dict(scores)))
    return out


__all__ = ["ALL", "Board", "KindRow", "ModelRating", "ScoreCell", "VoteTable", "boards", "bradley_terry",
           "fit_bradley_terry", "fit_length_controlled", "kind_vs_kind", "plain_sentence", "score_board", "score_rows",
           "wilson_interval"]
