"""Which pair a designer sees next. Each pair goes to `overlap` designers (so their agreement can be measured),
never twice to the same designer; the pairs the current reward model is least sure about come first (smallest
uncertainty, set by `Store.set_scores`), then the rest in a fixed random order, which all designers share, so
overlapping labels build up pair by pair. A pair shown counts toward its overlap until it is labelled or its
lease runs out; the ads' left/right order is drawn at random and recorded with the assignment (and the label).
"""

from __future__ import annotations

import math
import random
import secrets
import time
from dataclasses import dataclass

from rlhf_ads.annotate.candidates import Candidate
from rlhf_ads.annotate.store import Designer, Store

LEASE_SECONDS = 30 * 60  # a pair shown but not labelled stops holding its overlap place after this
# Shown to this designer (labelled or not) / holding a place: labelled, or shown within the lease.
SHOWN_TO = "EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = p.id AND a.designer_id = :designer)"
TAKEN = ("(SELECT COUNT(*) FROM assignments a WHERE a.pair_id = p.id AND (a.offered_at > :fresh OR "
         "EXISTS (SELECT 1 FROM labels l WHERE l.assignment_id = a.id)))")
LABELLED = "SELECT COUNT(*) FROM labels l WHERE l.pair_id = :pair"


@dataclass(frozen=True)
class Assignment:
    """A pair as one designer is shown it: `left` is ad A, `right` ad B."""

    id: str
    pair_id: str
    left: Candidate
    right: Candidate
    offered_at: float


@dataclass(frozen=True)
class Progress:
    labelled: int
    goal: int
    available: int  # pairs this designer may still be given

    def as_dict(self) -> dict:
        return {"labelled": self.labelled, "goal": self.goal, "available": self.available}


def next_assignment(store: Store, designer: Designer, overlap: int, rng: random.Random | None = None,
                    now: float | None = None) -> Assignment | None:
    """The pair to show `designer` now (the one shown and not yet labelled, if any), or None when none is left."""
    rng = rng or random.SystemRandom()
    now = time.time() if now is None else now
    with store.write() as db:
        shown = db.execute("SELECT * FROM assignments a WHERE a.designer_id = ? AND NOT EXISTS "
                           "(SELECT 1 FROM labels l WHERE l.assignment_id = a.id) ORDER BY a.offered_at",
                           (designer.id,)).fetchall()
        for row in shown:  # one that others filled meanwhile is passed over but kept: a label for it still counts
            if db.execute(LABELLED, {"pair": row["pair_id"]}).fetchone()[0] < overlap:
                return _assignment(store, row)
        pair = db.execute(f"SELECT p.id, p.first_id, p.second_id FROM pairs p WHERE NOT {SHOWN_TO} AND {TAKEN} < :overlap "
                          "ORDER BY p.uncertainty IS NULL, p.uncertainty, p.rank LIMIT 1",
                          {"designer": designer.id, "fresh": now - LEASE_SECONDS, "overlap": overlap}).fetchone()
        if pair is None:
            return None
        left, right = (pair["first_id"], pair["second_id"]) if rng.random() < 0.5 else (pair["second_id"], pair["first_id"])
        assignment_id = secrets.token_urlsafe(16)
        db.execute("INSERT INTO assignments (id, pair_id, designer_id, left_id, right_id, offered_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (assignment_id, pair["id"], designer.id, left, right, now))
        row = db.execute("SELECT * FROM assignments WHERE id = ?", (assignment_id,)).fetchone()
    return _assignment(store, row)


def _assignment(store: Store, row) -> Assignment:
    found = store.candidates((row["left_id"], row["right_id"]))
    return Assignment(row["id"], row["pair_id"], found[row["left_id"]], found[row["right_id"]], row["offered_at"])


def progress(store: Store, designer: Designer, overlap: int, goal: int | None = None) -> Progress:
    """Labels the designer gave, their goal (default: an equal share of pairs x overlap among the active
    designers, at most every pair) and the pairs they may still be given."""
    with store.read() as db:
        labelled = db.execute("SELECT COUNT(*) FROM labels WHERE designer_id = ?", (designer.id,)).fetchone()[0]
        available = db.execute(f"SELECT COUNT(*) FROM pairs p WHERE NOT {SHOWN_TO} AND {TAKEN} < :overlap",
                               {"designer": designer.id, "fresh": time.time() - LEASE_SECONDS,
                                "overlap": overlap}).fetchone()[0]
        pairs = db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
        designers = db.execute("SELECT COUNT(*) FROM designers WHERE revoked_at IS NULL").fetchone()[0]
    if goal is None:
        goal = min(pairs, math.ceil(pairs * overlap / max(1, designers)))
    return Progress(labelled, goal, available)
