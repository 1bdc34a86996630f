"""Deadlines and the late policy: when each submission came in, and what lateness costs.

The policy is the ``[deadline]`` table of ``course/course.toml`` (``$HW4_DEADLINE_FILE`` names another
TOML file whose ``[deadline]`` table is used instead: a second section, a test)::

    [deadline]
    due = 2026-04-10T23:59:00           # read in `timezone` (or give an offset: ...T23:59:00-04:00)
    timezone = "America/Detroit"        # an IANA name
    grace_minutes = 15
    percent_per_day = 10                # of the points earned, per started day late
    max_percent = 50                    # the cap
    overrides = "submission_times.toml" # disputed times (next to course.toml; a missing file: none)
    [deadline.extensions]
    doejane_12345 = 2                   # days, or a new due date: 2026-04-14T12:00:00

**The rule.** A submission is late by the number of *started* 24-hour periods after its due date (the
course's, or the student's extension) plus the grace period; it loses ``percent_per_day`` percent of
the points it earned (every question, extra credit and graded derivations included) per day late, at
most ``max_percent``. This module is the only late penalty: nbgrader's own (``LateSubmissionPlugin``)
stays at ``none``, so no penalty applies twice.

**Submission times**, first found: the overrides file (the instructor's word, with a reason); the
``timestamp.txt`` nbgrader's exchange writes beside a submission; for a zip, its newest entry (in UTC
when the zip carries Info-ZIP's extended timestamps, else the zip's local time read in the course's
timezone). The latter two come from the student's machine; the LMS's ``LATE`` marker (Canvas names a
late file ``name_LATE_...``) is the cross-check: a zip the LMS calls late whose time says on time is
flagged for the instructor, who settles it in the overrides file::

    [doejane_12345]
    submitted = 2026-04-11T00:40:00     # read in the course's timezone
    reason = "Canvas shows 00:40; the student's clock was off"

The time is recorded when the submission is graded; the penalty is worked out whenever grades are
written, from the policy as it is then: granting an extension needs ``python -m grading feedback``,
not a regrade.
"""

from __future__ import annotations

import math
import os
import struct
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, UTC
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from course.paths import COURSE_PACKAGE

__all__ = ["POLICY_ENV", "Policy", "Lateness", "load_policy", "assess", "late_fields", "describe",
           "nbgrader_time", "zip_time", "write_timestamp", "NBGRADER_TIMESTAMP"]

POLICY_ENV = "HW4_DEADLINE_FILE"
NBGRADER_TIMESTAMP = "timestamp.txt"
_KEYS = {"due", "timezone", "grace_minutes", "percent_per_day", "max_percent", "overrides", "extensions"}
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Policy:
    due: datetime | None = None                    # timezone-aware; None: no deadline, no penalty
    tz: ZoneInfo | timezone = UTC
    grace: timedelta = timedelta(0)
    percent_per_day: float = 0.0
    max_percent: float = 0.0
    extensions: dict = field(default_factory=dict)  # student -> their due date (aware)
    overrides: dict = field(default_factory=dict)   # student -> (submission time (aware), reason)
    source: str = ""                                # the file it was read from (for messages)

    def due_for(self, student: str) -> datetime | None:
        return self.extensions.get(student, self.due)

    def local(self, when: datetime) -> str:
        return when.astimezone(self.tz).strftime("%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True)
class Lateness:
    submitted: datetime | None
    source: str                  # where the time came from ("" when unknown)
    due: datetime | None         # the student's due date (None: the course has no deadline)
    days: int = 0
    percent: float = 0.0
    extension: bool = False
    capped: bool = False
    flags: tuple = ()            # what the instructor should look at

    def penalty(self, earned: float) -> float:
        return round(max(earned, 0.0) * self.percent / 100, 2)


# --- the policy ---------------------------------------------------------------------------------

def _when(value, tz, where: str) -> datetime:
    """A TOML date-time (local: read in ``tz``; with an offset: as it is) or an ISO 8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime):                    # (a date alone is not enough)
        raise ValueError(f"{where}: expected a date and time such as 2026-04-10T23:59:00, got {value!r}")
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _number(table: dict, key: str, where: str, top: float | None = None) -> float:
    value = table.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (top and value > top):
        bound = f"0 to {top:g}" if top else "0 or more"
        raise ValueError(f"{where}: {key} must be a number, {bound}; got {value!r}")
    return float(value)


def load_policy(path: Path | None = None) -> Policy:
    """The late policy: ``[deadline]`` of ``path`` (default: ``$HW4_DEADLINE_FILE``, else course.toml)."""
    path = Path(path or os.environ.get(POLICY_ENV) or COURSE_PACKAGE / "course.toml")
    try:
        table = tomllib.loads(path.read_text()).get("deadline")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read the late policy from {path}: {exc}") from None
    if not table or "due" not in table:
        return Policy(source=str(path))
    where = f"{path} [deadline]"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    try:
        tz = ZoneInfo(table.get("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown timezone {table['timezone']!r}; use an IANA name such as "
                         f"'America/Detroit'") from None
    due = _when(table["due"], tz, f"{where} due")
    extensions = {}
    for student, value in table.get("extensions", {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            extensions[student] = due + value * _DAY
        else:
            extensions[student] = _when(value, tz, f"{where} extensions.{student} (days, or a due date)")
    overrides = {}
    if "overrides" in table:
        overrides = _read_overrides(path.parent / table["overrides"], tz)
    return Policy(due, tz, timedelta(minutes=_number(table, "grace_minutes", where)),
                  _number(table, "percent_per_day", where, 100), _number(table, "max_percent", where, 100),
                  extensions, overrides, str(path))


def _read_overrides(path: Path, tz) -> dict:
    """``[student] submitted = ..., reason = "..."`` per disputed submission (no file: no override)."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    out = {}
    for student, entry in data.items():
        if not isinstance(entry, dict) or not str(entry.get("reason", "")).strip() or "submitted" not in entry:
            raise ValueError(f"{path}: [{student}] needs `submitted = <date and time>` and `reason = \"...\"` "
                             "(why the recorded time is replaced)")
        out[student] = (_when(entry["submitted"], tz, f"{path} [{student}] submitted"), str(entry["reason"]))
    return out


# --- submission times ---------------------------------------------------------------------------

def nbgrader_time(folder: Path) -> datetime | None:
    """The time in nbgrader's ``timestamp.txt`` in ``folder`` (None if absent or unreadable)."""
    from nbgrader.utils import parse_utc
    path = Path(folder) / NBGRADER_TIMESTAMP
    if not path.is_file() or path.is_symlink() or path.stat().st_size > 200:
        return None
    try:
        return parse_utc(path.read_text().strip()).replace(tzinfo=UTC)
    except (ValueError, OverflowError, TypeError):
        return None


def write_timestamp(folder: Path, when: datetime) -> None:
    """Write ``timestamp.txt`` as nbgrader's exchange does (UTC), so nbgrader records the time too."""
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    (Path(folder) / NBGRADER_TIMESTAMP).write_text(text)


def _extended_mtime(extra: bytes) -> int | None:
    """The UTC modification time of Info-ZIP's extended-timestamp field (0x5455), if present."""
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        data = extra[4:4 + size]
        if kind == 0x5455 and len(data) >= 5 and data[0] & 1:
            return struct.unpack("<I", data[1:5])[0]
        extra = extra[4 + size:]
    return None


def zip_time(infos, tz) -> datetime | None:
    """The newest modification time among zip entries (``ZipInfo`` list); local times read in ``tz``."""
    times = []
    for info in infos:
        if info.is_dir():
            continue
        stamp = _extended_mtime(info.extra)
        if stamp is not None:
            times.append(datetime.fromtimestamp(stamp, UTC))
        else:
            times.append(datetime(*info.date_time, tzinfo=tz))
    return max(times) if times else None


# --- lateness and its penalty -------------------------------------------------------------------

def assess(policy: Policy, student: str, submission: dict) -> Lateness:
    """How late ``student``'s submission is (``submission``: what intake recorded, see job.py)."""
    flags = []
    if student in policy.overrides:
        when, reason = policy.overrides[student]
        source = f"overrides file: {reason}"
    else:
        text = submission.get("submitted_at")
        when = datetime.fromisoformat(text) if text else None
        source = submission.get("time_source", "") if when else ""
    due = policy.due_for(student)
    if due is None:
        return Lateness(when, source, None)
    days = 0
    if when is None:
        flags.append("no submission time found: graded as on time")
    elif when > due + policy.grace:
        days = math.ceil((when - due - policy.grace) / _DAY)
    if submission.get("lms_late") and days == 0 and student not in policy.overrides:
        flags.append("the LMS marks it late but its time says on time: check the LMS and set the time in "
                     "the overrides file")
    percent = min(policy.max_percent, days * policy.percent_per_day)
    capped = days > 0 and days * policy.percent_per_day >= policy.max_percent
    return Lateness(when, source, due, days, percent, student in policy.extensions, capped, tuple(flags))


def late_fields(policy: Policy, student: str, submission: dict, earned: float) -> dict:
    """The grade-row fields of the late policy; ``total`` is ``earned`` less the penalty."""
    late = assess(policy, student, submission)
    penalty = late.penalty(earned)
    return {"points_before_penalty": earned, "late_days": late.days, "late_percent": late.percent,
            "late_penalty": penalty, "total": round(earned - penalty, 2), "late_capped": late.capped,
            "submitted": policy.local(late.submitted) if late.submitted else "", "time_source": late.source,
            "extension": late.extension, "late_flags": list(late.flags),
            "late_summary": describe(policy, late, earned)}


def describe(policy: Policy, late: Lateness, earned: float) -> str:
    """One sentence for the student: when, the due date, and what the policy took."""
    when = f"Submitted {policy.local(late.submitted)} ({late.source})" if late.submitted else "No submission time"
    if late.due is None:
        return f"{when}; the assignment has no deadline." if late.submitted else ""
    due = f"due {policy.local(late.due)}" + (" (your extension)" if late.extension else "")
    grace = f" with {policy.grace.total_seconds() / 60:g} minutes' grace" if policy.grace else ""
    if late.days == 0:
        return f"{when}; {due}{grace}: on time" + ("." if late.submitted else " (graded as on time).")
    cap = " (the cap)" if late.capped else ""
    return (f"{when}; {due}{grace}: {late.days} day(s) late, {late.percent:g}%{cap} of the "
            f"{earned:g} points earned: -{late.penalty(earned):g} points.")
