"""``python -m hwlib.lab [jupyter lab options]``: JupyterLab with the course's settings, README first.

The course's JupyterLab defaults live in ``jupyter/settings/overrides.json`` beside the ``hwlib``
folder (in the kit and in the student release alike; ``jupyter/README.md`` says what each one does).
This starts ``jupyter lab`` in the folder above ``hwlib`` with ``--LabApp.app_settings_dir`` pointing
there and ``README.md`` as the first page; any other option is passed on (``--no-browser``,
``--port 8899``...). Plain ``jupyter lab`` works too, with JupyterLab's own defaults.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["ROOT", "SETTINGS", "lab_command"]

ROOT = Path(__file__).resolve().parent.parent      # the kit, or the student's hw4 folder
SETTINGS = ROOT / "jupyter" / "settings"


def lab_command(extra: list[str] | None = None, root: Path = ROOT) -> list[str]:
    """The ``jupyter lab`` command line with the course's settings (``extra`` options appended)."""
    if not (SETTINGS / "overrides.json").is_file():
        raise FileNotFoundError(f"the course's JupyterLab settings are missing: {SETTINGS / 'overrides.json'}")
    first = "/lab/tree/README.md" if (root / "README.md").is_file() else "/lab"
    return [sys.executable, "-m", "jupyter", "lab", f"--LabApp.app_settings_dir={SETTINGS}",
            f"--LabApp.default_url={first}", f"--ServerApp.root_dir={root}", *(extra or [])]


def main(argv: list[str] | None = None) -> None:
    command = lab_command(sys.argv[1:] if argv is None else argv)
    print("starting:", " ".join(command[2:]), flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
