"""Every file a comment or docstring points at is there for its reader.

Students get ``hwlib/`` (and the notebooks) only: the code they read never sends them to the kit's
other folders. The maintainers' code and documents name files of the kit that exist.
"""

from __future__ import annotations

import re

from course.paths import REPO

KIT_ONLY = re.compile(r"(?<![\w/.<])((?:grading|course|bench|tests)/|DESIGN\.md|STYLE\.md|TOOLCHAIN\.md|\.\./shared)")
FILE = re.compile(r"(?<![\w/.<-])((?:hwlib|grading|course|bench|notebooks|jupyter)/[\w/.-]*\.(?:py|md|toml|json|ipynb))\b")
# Files a sample submission creates, or the instructor (disputed submission times, optional).
NOT_KIT_FILES = {"hwlib/fastconv.py", "course/submission_times.toml"}


def _sources(*folders: str):
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".toml") and "__pycache__" not in path.parts and path.is_file():
                yield path


def test_the_students_code_points_at_nothing_they_lack():
    bad = [f"{path.relative_to(REPO)}:{i}: {m.group(1)}" for path in _sources("hwlib")
           for i, line in enumerate(path.read_text().splitlines(), 1) for m in KIT_ONLY.finditer(line)]
    assert not bad, "student files name kit-only files:\n" + "\n".join(bad)


def test_every_file_named_in_the_kits_code_and_documents_exists():
    sources = list(_sources("hwlib", "grading", "course", "bench")) + [REPO / "README.md"]
    bad = [f"{path.relative_to(REPO)}:{i}: {m.group(1)}" for path in sources
           for i, line in enumerate(path.read_text().splitlines(), 1) for m in FILE.finditer(line)
           if m.group(1) not in NOT_KIT_FILES and not (REPO / m.group(1)).exists()]
    assert not bad, "pointers to nothing:\n" + "\n".join(bad)
