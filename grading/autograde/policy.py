"""The code policy of a task: a NumPy-only homework is graded as one.

The hidden checks compare values, so a ``conv_forward`` that calls ``torch.nn.functional.conv2d``
would earn every point of a task whose point is to write the convolution in NumPy. A question's
file in ``course/questions/`` may set a policy for its tasks::

    [policy]
    rule = "numpy-only"      # or a list of forbidden modules: ["torch", "tensorflow"]
    consequence = "zero"     # "zero": no points for a task that breaks it; "flag": points kept, flagged
    tasks = ["conv"]         # optional: the question's tasks it covers (default: all of them)

``numpy-only`` forbids the deep-learning frameworks (:data:`NUMPY_ONLY`) and the kit's own checks
(``hwlib.check``, whose references are PyTorch); NumPy, SciPy and the standard library stay allowed.

A task breaks its policy when its code reaches a forbidden module, seen two ways:

* **statically** (trusted, :mod:`.policy_scan`, on the source as handed in, before any of it runs):
  an import in the task's functions or the helpers they use, or a module-level name bound to a
  forbidden module that they read. Code whose effect the source cannot tell (``exec``, ``__import__``
  of a computed name...) flags the task for review, whatever the consequence;
* **while the hidden checks run** (``sandbox_runner.py``): an import hook and an audit hook record
  each forbidden module that the student's own code imports (the innermost student function on the
  stack says which task), and after each group the student modules' globals bound to forbidden
  modules. Imports made by the kit's code are not the student's: the grader's PyTorch oracle loads
  PyTorch inside a model check without counting against it. This record comes from the sandbox, so
  it can add evidence, never remove the static one (a student who forges it only hides what the
  source already shows).

A violation goes into the group's result (``GroupResult.policy``), the feedback and ``grades.csv``
(the problems column); with ``zero`` the task's cell gets no points.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from course.paths import COURSE_PACKAGE
from course.registry import RegistryError, load as load_registry

from . import untrusted
from .policy_scan import matches, module_name, reach, read_modules

__all__ = ["NUMPY_ONLY", "CONSEQUENCES", "Rule", "Violation", "load", "read_modules", "write_watch", "read_records", "check",
           "apply", "flags", "WATCH"]

NUMPY_ONLY = ("torch", "torchvision", "torchaudio", "tensorflow", "keras", "jax", "jaxlib", "flax", "cupy",
              "mxnet", "paddle", "mindspore", "hwlib.check")
CONSEQUENCES = {"zero": "no points for this task", "flag": "points kept, flagged for review"}
WATCH = "policy.json"                  # in the job's folder: what the sandbox records
RECORD = "{gid}.imports.json"          # what it recorded while group gid ran
MAX_RECORD = 1 << 20


@dataclass(frozen=True)
class Rule:
    """The policy of one task."""
    task: str
    question: str
    module: str                        # "hwlib/layers.py"
    functions: tuple
    cell: str                          # the autograded cell awarding the task's points
    forbidden: tuple
    consequence: str                   # a key of CONSEQUENCES
    label: str                         # "NumPy only", or "without torch, jax"


def load(registry=None, folder: Path = COURSE_PACKAGE) -> list[Rule]:
    """Every task's rule, from the ``[policy]`` tables of the question files in ``folder``."""
    registry = registry or load_registry(folder)
    rules = []
    for question in registry.questions.values():
        path = Path(folder) / "questions" / Path(question.source).name
        data = tomllib.loads(path.read_text())
        table = data.get("policy")
        if table is None:
            continue
        where = f"{path.name}: [policy]"
        if not isinstance(table, dict) or set(table) - {"rule", "consequence", "tasks"}:
            raise RegistryError(f"{where}: expected the keys rule, consequence and (optionally) tasks")
        rule = table.get("rule")
        if rule == "numpy-only":
            forbidden, label = NUMPY_ONLY, "NumPy only"
        elif isinstance(rule, list) and rule and all(isinstance(m, str) and m.strip() for m in rule):
            forbidden, label = tuple(m.strip() for m in rule), "without " + ", ".join(rule)
        else:
            raise RegistryError(f"{where}: rule must be \"numpy-only\" or a list of module names "
                                f"(e.g. [\"torch\", \"jax\"]); got {rule!r}")
        consequence = table.get("consequence")
        if consequence not in CONSEQUENCES:
            raise RegistryError(f"{where}: consequence must be one of {', '.join(map(repr, CONSEQUENCES))}; "
                                f"got {consequence!r}")
        tasks = {t.name: t for t in registry.tasks_of(question.name)}
        chosen = table.get("tasks", list(tasks))
        unknown = sorted(set(chosen) - set(data.get("tasks", {})))
        if unknown:
            raise RegistryError(f"{where}: tasks {unknown} are not tasks of {question.name}; "
                                f"expected some of {sorted(data.get('tasks', {}))}")
        rules += [Rule(t.name, question.name, t.module, t.functions, t.cell, forbidden, consequence, label)
                  for name, t in tasks.items() if name in chosen]
    return rules


# --- the sandbox's record ------------------------------------------------------------------------

def write_watch(job_dir: Path, rules: list[Rule], registry=None) -> None:
    """Tell the sandbox what to record (in the job's folder, read-only there): the forbidden
    modules, and which modules are the student's."""
    registry = registry or load_registry()
    watch = {"forbidden": sorted({m for r in rules for m in r.forbidden}),
             "modules": sorted({module_name(t.module) for t in registry.tasks})}
    (Path(job_dir) / WATCH).write_text(json.dumps(watch))


def submission_modules(submission: Path) -> set[str]:
    """Every Python module of the submission's ``hwlib`` (as paths like ``hwlib/layers.py``): the
    static scan reads them all, so a helper module the task's code imports is read too."""
    root = Path(submission)
    return {p.relative_to(root).as_posix() for p in (root / "hwlib").rglob("*.py")
            if p.is_file() and not p.is_symlink() and "check" not in p.relative_to(root / "hwlib").parts[:1]}


def read_records(out_dir: Path, gids) -> dict:
    """What the sandbox recorded in every group: ``{"imports": [{"module", "chain"}],
    "globals": {(module, name): dotted}}``; hostile data, so read with :mod:`.untrusted`, checked and
    capped (bad entries dropped)."""
    imports, bound = [], {}
    for gid in gids:
        try:
            data = untrusted.read_json(Path(out_dir) / RECORD.format(gid=gid), MAX_RECORD, "the import record")
            for rec in data.get("imports", [])[:1000]:
                chain = [(str(m), str(q).split(".<locals>")[0], int(line)) for m, q, line in rec["chain"][:50]]
                imports.append({"module": str(rec["module"]), "chain": chain})
            for mod, names in data.get("globals", {}).items():
                bound.update({(str(mod), str(name)): str(dotted) for name, dotted in list(names.items())[:1000]})
        except (untrusted.Untrusted, ValueError, TypeError, KeyError, AttributeError):
            continue
    return {"imports": imports, "globals": bound}


# --- the verdict ---------------------------------------------------------------------------------

@dataclass
class Violation:
    rule: Rule
    uses: list = field(default_factory=list)      # (dotted, where) in the source that the task's code reaches
    seen: list = field(default_factory=list)      # (dotted, where) recorded while the hidden checks ran
    review: list = field(default_factory=list)    # what the source cannot tell, where

    @property
    def consequence(self) -> str:
        """The rule's consequence on evidence; a flag for review on doubt alone."""
        return self.rule.consequence if self.uses or self.seen else "flag"

    @property
    def message(self) -> str:
        head = f"{self.rule.task} ({self.rule.question}, {self.rule.label})"
        if self.uses or self.seen:
            found = self.uses or self.seen
            names = ", ".join(sorted({dotted.split(".")[0] for dotted, _ in found}))
            text = f"{head} uses {names}: " + _list([where for _, where in found])
            if self.uses and self.seen:
                text += " (also seen while the hidden checks ran)"
            elif self.seen:
                text += " (seen while the hidden checks ran)"
        else:
            text = f"{head}: cannot tell from the source what {_list(self.review)} runs"
        return f"{text}: {CONSEQUENCES[self.consequence]}"


def _list(items, most: int = 3) -> str:
    items = list(dict.fromkeys(items))
    return "; ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def check(submission: Path, rules: list[Rule], records: dict | None = None, registry=None, modules=None) -> list[Violation]:
    """The violations of ``rules`` in the submission folder ``submission``: its source (``modules``,
    the scans when already made) and the sandbox's ``records`` (:func:`read_records`)."""
    registry = registry or load_registry()
    records = records or {"imports": [], "globals": {}}
    modules = modules if modules is not None else read_modules(submission, submission_modules(submission))
    every = {(module_name(t.module), f) for t in registry.tasks for f in t.functions}
    out = []
    for rule in rules:
        mod = module_name(rule.module)
        own = {(mod, f) for f in rule.functions}
        reached = reach(modules, mod, rule.functions, every - own)
        uses = [(dotted, where) for dotted, where in reached.evidence if matches(dotted, rule.forbidden)]
        seen = []
        for rec in records["imports"]:
            if not matches(rec["module"], rule.forbidden):
                continue
            # The innermost task function on the stack made the import (or a helper only this task reaches).
            owner = next(((m, q) for m, q, _ in rec["chain"] if (m, q) in every), None)
            if owner in own or (owner is None and any((m, q) in reached.functions for m, q, _ in rec["chain"])):
                m, q, line = rec["chain"][0]
                seen.append((rec["module"], f"{m.replace('.', '/')}.py:{line} in {q}"))
        seen += [(dotted, f"{name} in {m.replace('.', '/')}.py is {dotted}") for (m, name), dotted
                 in records["globals"].items() if (m, name) in reached.reads and matches(dotted, rule.forbidden)]
        review = [f"{what} ({where})" for what, where in reached.dynamic]
        if uses or seen or review:
            out.append(Violation(rule, list(dict.fromkeys(uses)), list(dict.fromkeys(seen)),
                                 list(dict.fromkeys(review))))
    return out


def apply(results: dict, violations: list[Violation]) -> None:
    """Record each violation in its cell's group result (``GroupResult.policy``); with ``zero``, the
    cell's cases lose their points (those that passed say why)."""
    for v in violations:
        group = results.get(v.rule.cell)
        if group is None:
            continue
        group.policy.append({"task": v.rule.task, "question": v.rule.question, "rule": v.rule.label,
                             "consequence": v.consequence, "evidence": bool(v.uses or v.seen), "message": v.message})
        if v.consequence == "zero":
            for case in group.cases:      # a case that failed anyway keeps its own message
                if case.passed:
                    case.points, case.passed, case.message = 0, False, f"policy: {v.message}"
            group.points = 0


def flags(saved: dict) -> list[str]:
    """One short line per violation in a saved result (``results/<student>.json``), alike for every
    student who breaks the same rule (the class summary counts them); the details are in the report."""
    return [f"policy: {entry['question']} {entry['task']} {'breaks' if entry.get('evidence') else 'to review for'} "
            f"{entry['rule']} ({CONSEQUENCES[entry['consequence']]})"
            for group in saved.get("groups", {}).values() for entry in group.get("policy", [])
            if entry.get("consequence") in CONSEQUENCES]
