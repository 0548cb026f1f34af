"""The annotation database: designers (a hash of each token, never the token), candidates, the pairs to compare,
what each designer was shown (the assignment, with its left/right order) and their labels. SQLite in WAL mode;
every write is one `BEGIN IMMEDIATE` transaction with synchronous=FULL, so a label acknowledged to a designer is
on disk, a killed server loses nothing acknowledged, and concurrent or repeated submissions store each label once
(a label is unique per pair and designer, and per client request id).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rlhf_ads.annotate.candidates import Candidate
from rlhf_ads.annotate.scoring import uncertainty
from rlhf_ads.errors import RlhfAdsError

CHOICES = ("a", "b", "tie", "unusable")  # a: the left ad is better, b: the right one
TOKEN_PREFIX = "rla_"
SCHEMA = """
CREATE TABLE IF NOT EXISTS designers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL, revoked_at REAL);
CREATE TABLE IF NOT EXISTS briefs (key TEXT PRIMARY KEY, brief TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT PRIMARY KEY, brief_key TEXT NOT NULL REFERENCES briefs(key), model TEXT NOT NULL, text TEXT NOT NULL,
    score REAL);
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY, brief_key TEXT NOT NULL, first_id TEXT NOT NULL REFERENCES candidates(id),
    second_id TEXT NOT NULL REFERENCES candidates(id), rank INTEGER NOT NULL, uncertainty REAL,
    UNIQUE (first_id, second_id));
CREATE INDEX IF NOT EXISTS pairs_order ON pairs (uncertainty, rank);
CREATE TABLE IF NOT EXISTS assignments (
    id TEXT PRIMARY KEY, pair_id TEXT NOT NULL REFERENCES pairs(id), designer_id INTEGER NOT NULL REFERENCES designers(id),
    left_id TEXT NOT NULL, right_id TEXT NOT NULL, offered_at REAL NOT NULL, UNIQUE (pair_id, designer_id));
CREATE INDEX IF NOT EXISTS assignments_pair ON assignments (pair_id);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, pair_id TEXT NOT NULL REFERENCES pairs(id),
    designer_id INTEGER NOT NULL REFERENCES designers(id), assignment_id TEXT NOT NULL REFERENCES assignments(id),
    left_id TEXT NOT NULL, right_id TEXT NOT NULL, choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'unusable')),
    reason TEXT NOT NULL DEFAULT '', request_id TEXT NOT NULL UNIQUE, offered_at REAL NOT NULL, created_at REAL NOT NULL,
    UNIQUE (pair_id, designer_id));
CREATE INDEX IF NOT EXISTS labels_pair ON labels (pair_id);
"""


class LabelConflict(RlhfAdsError):
    """A second, different label for a pair the designer already labelled."""


class UnknownAssignment(RlhfAdsError):
    """A label for a pair this designer was not shown."""


@dataclass(frozen=True)
class Designer:
    id: int
    name: str


@dataclass(frozen=True)
class Label:
    """One stored label: who, when, which two candidates in which order (left = A), and the choice."""

    id: int
    pair_id: str
    designer: str
    left_id: str
    right_id: str
    choice: str
    reason: str
    request_id: str
    offered_at: float
    created_at: float

    @property
    def winner_loser(self) -> tuple[str, str] | None:
        """(chosen id, rejected id) for 'a' or 'b'; None for a tie or both unusable."""
        return {"a": (self.left_id, self.right_id), "b": (self.right_id, self.left_id)}.get(self.choice)


def hash_token(token: str) -> str:
    """What is stored of a token: its SHA-256 (tokens are 256 random bits, so a fast hash suffices)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def pair_id(first: str, second: str) -> str:
    return hashlib.sha1(f"{first}\0{second}".encode("utf-8")).hexdigest()[:16]


def pair_rank(pid: str) -> int:
    """A pair's fixed place in the random order (a hash, so re-imports keep it)."""
    return int(hashlib.sha256(f"rank\0{pid}".encode()).hexdigest()[:12], 16)


class Store:
    """The annotation database at `path` (created on first use). Each call opens its own connection, so one
    Store serves any number of threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RlhfAdsError(f"{self.path}: SQLite could not switch to WAL mode (got {mode}); use a local disk")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def read(self):
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def write(self):
        """One write transaction, taken at its start (BEGIN IMMEDIATE): writers queue instead of deadlocking."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # designers
    def add_designer(self, name: str, rotate: bool = False) -> str:
        """A new token for designer `name` (printed once; only its hash is kept). `rotate`: replace an existing
        designer's token (the old one stops working) and lift a revocation."""
        name = name.strip()
        if not name or len(name) > 64 or any(c in name for c in "\0\n\r\t"):
            raise RlhfAdsError(f"designer name {name!r}: use 1-64 characters on one line")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.write() as db:
            exists = db.execute("SELECT id FROM designers WHERE name = ?", (name,)).fetchone()
            if exists and not rotate:
                raise RlhfAdsError(f"designer {name!r} exists; --rotate gives them a new token (the old one stops working)")
            if exists:
                db.execute("UPDATE designers SET token_hash = ?, revoked_at = NULL WHERE id = ?",
                           (hash_token(token), exists["id"]))
            else:
                db.execute("INSERT INTO designers (name, token_hash, created_at) VALUES (?, ?, ?)",
                           (name, hash_token(token), time.time()))
        return token

    def revoke_designer(self, name: str) -> None:
        with self.write() as db:
            if db.execute("UPDATE designers SET revoked_at = ? WHERE name = ?", (time.time(), name)).rowcount == 0:
                raise RlhfAdsError(f"no designer {name!r}")

    def designer_for_token(self, token: str | None) -> Designer | None:
        """The designer a token belongs to; None for a missing, unknown or revoked token."""
        if not token or len(token) > 200:
            return None
        with self.read() as db:
            row = db.execute("SELECT id, name FROM designers WHERE token_hash = ? AND revoked_at IS NULL",
                             (hash_token(token),)).fetchone()
        return Designer(row["id"], row["name"]) if row else None

    def designers(self) -> list[str]:
        with self.read() as db:
            return [r["name"] for r in db.execute("SELECT name FROM designers WHERE revoked_at IS NULL ORDER BY name")]

    # candidates and pairs
    def import_candidates(self, candidates: list[Candidate]) -> tuple[int, int, int]:
        """Store new candidates and pair each with the others of its brief -> (new candidates, new pairs, pairs
        skipped because both ads read the same). A stored candidate or brief that the file changes is an error:
        labels point at them."""
        new = pairs = same = 0
        with self.write() as db:
            for c in candidates:
                brief = json.dumps(c.brief, sort_keys=True, ensure_ascii=False)
                stored = db.execute("SELECT brief FROM briefs WHERE key = ?", (c.brief_key,)).fetchone()
                if stored is None:
                    db.execute("INSERT INTO briefs (key, brief) VALUES (?, ?)", (c.brief_key, brief))
                elif stored["brief"] != brief:
                    raise RlhfAdsError(f"brief {c.brief_key!r} differs from the one stored in {self.path}; labels "
                                       "point at it: give the changed brief a new brief_id")
                old = db.execute("SELECT brief_key, text FROM candidates WHERE id = ?", (c.id,)).fetchone()
                if old is not None:
                    if (old["brief_key"], old["text"]) != (c.brief_key, c.text):
                        raise RlhfAdsError(f"candidate {c.id!r} differs from the one stored in {self.path}; labels "
                                           "point at it: give the changed ad a new id")
                    continue
                others = db.execute("SELECT id, text FROM candidates WHERE brief_key = ?", (c.brief_key,)).fetchall()
                db.execute("INSERT INTO candidates (id, brief_key, model, text) VALUES (?, ?, ?, ?)",
                           (c.id, c.brief_key, c.model, c.text))
                new += 1
                for other in others:
                    if other["text"].casefold() == c.text.casefold():
                        same += 1
                        continue
                    first, second = sorted((other["id"], c.id))
                    pid = pair_id(first, second)
                    db.execute("INSERT INTO pairs (id, brief_key, first_id, second_id, rank) VALUES (?, ?, ?, ?, ?)",
                               (pid, c.brief_key, first, second, pair_rank(pid)))
                    pairs += 1
        return new, pairs, same

    def candidates(self, ids: tuple[str, ...] | None = None) -> dict[str, Candidate]:
        """Stored candidates by id (all, or those in `ids`), in the order they were imported."""
        where = f"WHERE c.id IN ({', '.join('?' * len(ids))})" if ids is not None else ""
        with self.read() as db:
            rows = db.execute("SELECT c.id, c.brief_key, b.brief, c.model, c.text FROM candidates c "
                              f"JOIN briefs b ON b.key = c.brief_key {where} ORDER BY c.rowid", ids or ()).fetchall()
        return {r["id"]: Candidate(r["id"], r["brief_key"], json.loads(r["brief"]), r["model"], r["text"]) for r in rows}

    def set_scores(self, scores: dict[str, float] | None) -> None:
        """Reward-model scores per candidate id, and each pair's uncertainty |P(first better) - 0.5| (Bradley-Terry:
        P = sigmoid(score difference)); None clears them, and pairs come in their random order."""
        scores = scores or {}
        with self.write() as db:
            db.execute("UPDATE candidates SET score = NULL")
            db.executemany("UPDATE candidates SET score = ? WHERE id = ?", [(s, c) for c, s in scores.items()])
            pairs = db.execute("SELECT id, first_id, second_id FROM pairs").fetchall()
            db.executemany("UPDATE pairs SET uncertainty = ? WHERE id = ?", [
                (uncertainty(scores[p["first_id"]], scores[p["second_id"]])
                 if p["first_id"] in scores and p["second_id"] in scores else None, p["id"]) for p in pairs])

    def pair_count(self) -> int:
        with self.read() as db:
            return db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]

    # labels
    def submit(self, designer: Designer, assignment_id: str, choice: str, reason: str, request_id: str) -> tuple[Label, bool]:
        """Store one label -> (the label, whether it was already stored). A repeated request (same request id, or
        the same choice for the same pair) returns the stored label; a different second choice is a LabelConflict."""
        if choice not in CHOICES:
            raise RlhfAdsError(f"choice must be one of {', '.join(CHOICES)}")
        with self.write() as db:
            done = db.execute("SELECT id, designer_id, assignment_id, choice, reason FROM labels WHERE request_id = ?",
                              (request_id,)).fetchone()
            if done is not None:
                if done["designer_id"] != designer.id:
                    raise LabelConflict("request id already used by another designer")
                if (done["assignment_id"], done["choice"], done["reason"]) != (assignment_id, choice, reason):
                    raise LabelConflict(f"request id {request_id!r} already stored a different label "
                                        f"({done['choice']} for assignment {done['assignment_id']!r}); send a new one")
                return self._label(db, done["id"]), True
            shown = db.execute("SELECT * FROM assignments WHERE id = ? AND designer_id = ?",
                               (assignment_id, designer.id)).fetchone()
            if shown is None:
                raise UnknownAssignment(f"no pair {assignment_id!r} was shown to {designer.name}")
            earlier = db.execute("SELECT id, choice, reason FROM labels WHERE pair_id = ? AND designer_id = ?",
                                 (shown["pair_id"], designer.id)).fetchone()
            if earlier is not None:
                if (earlier["choice"], earlier["reason"]) != (choice, reason):
                    raise LabelConflict(f"{designer.name} already labelled this pair ({earlier['choice']})")
                return self._label(db, earlier["id"]), True
            cursor = db.execute(
                "INSERT INTO labels (pair_id, designer_id, assignment_id, left_id, right_id, choice, reason, request_id, "
                "offered_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (shown["pair_id"], designer.id, assignment_id, shown["left_id"], shown["right_id"], choice, reason,
                 request_id, shown["offered_at"], time.time()))
            return self._label(db, cursor.lastrowid), False

    @staticmethod
    def _label(db, label_id: int) -> Label:
        row = db.execute("SELECT l.*, d.name AS designer FROM labels l JOIN designers d ON d.id = l.designer_id "
                         "WHERE l.id = ?", (label_id,)).fetchone()
        return _as_label(row)

    def labels(self) -> list[Label]:
        """Every label, oldest first."""
        with self.read() as db:
            rows = db.execute("SELECT l.*, d.name AS designer FROM labels l JOIN designers d ON d.id = l.designer_id "
                              "ORDER BY l.id").fetchall()
        return [_as_label(r) for r in rows]

    def integrity(self) -> str:
        with self.read() as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]


def _as_label(row) -> Label:
    return Label(row["id"], row["pair_id"], row["designer"], row["left_id"], row["right_id"], row["choice"],
                 row["reason"], row["request_id"], row["offered_at"], row["created_at"])
