"""Instructor commands: ``python -m grading COMMAND`` (see grading/README.md for the workflow).

  release              build/release/: student notebooks, student hwlib, README, install files, zip
  autograde DIR        grade the submissions in DIR (nbgrader layout or per-student zips);
                       --student ID (repeatable) regrades those students only; --scheduler ADDRESS
                       grades on a Dask cluster's workers
  feedback             regenerate feedback (after the TAs graded the derivations, or a changed late
                       policy), the grade files, summary
  export               the grade files: --format plain,canvas,gradescope (default all; see
                       grading/autograde/export.py)
  samples DIR          write the generated sample submissions (for trying the pipeline)
  isolation            print which sandbox isolation this machine gives
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from course.paths import COURSE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="build the student release")
    ag = sub.add_parser("autograde", help="grade a folder of submissions")
    ag.add_argument("source", type=Path, help="submissions: <student>/hw4/ folders or <student>_....zip files")
    ag.add_argument("--course", type=Path, default=COURSE)
    defaults = _settings_defaults()
    ag.add_argument("--workers", type=int, default=defaults.workers,
                    help="submissions graded in parallel (default: %(default)s)")
    ag.add_argument("--no-execute", action="store_true", help="do not run the notebooks (hidden checks only)")
    ag.add_argument("--cell-timeout", type=float, default=defaults.cell_timeout,
                    help="seconds per notebook cell (default: %(default)s)")
    ag.add_argument("--notebook-budget", type=float, default=defaults.notebook_budget,
                    help="seconds per notebook (default: %(default)s)")
    ag.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="notebook parameter for the run, over the defaults "
                         f"{', '.join(f'{k}={v}' for k, v in defaults.parameters.items())}; repeat for more")
    ag.add_argument("--notebooks", default=None, help="comma-separated notebook stems to run (default: all)")
    ag.add_argument("--execute-only", default=None, metavar="STUDENTS",
                    help="comma-separated students whose notebooks run (default: everyone's); the hidden "
                         "checks and the scores cover every submission")
    ag.add_argument("--budget-scale", type=float, default=defaults.budget_scale,
                    help="multiply the hidden checks' time budgets (default: %(default)s)")
    ag.add_argument("--reuse-checks", action="store_true",
                    help="keep each student's saved hidden-check results (re-run the notebooks and feedback only)")
    ag.add_argument("--no-nbgrader-feedback", action="store_true", help="only grading_report.html (faster)")
    ag.add_argument("--data-root", type=Path, default=None, help="data folder, mounted read-only at /data")
    ag.add_argument("--keep-sandboxes", action="store_true", help="keep the sandbox folders (debugging)")
    ag.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="grade on the workers of this Dask scheduler (e.g. tcp://host:8786; grading/README.md, "
                         "'Grading on a Dask cluster'): one task per submission, the gradebook and course folder "
                         "written here only; workers with another kit version are refused, and so are those "
                         "without full isolation unless --allow-weak-isolation. --workers then counts the local "
                         "processes preparing submissions and writing feedback")
    ag.add_argument("--allow-weak-isolation", action="store_true",
                    help="grade where the sandbox is weaker than full isolation (no bubblewrap here, or Dask "
                         "workers without it); each student graded so is flagged. By default such grading is "
                         "refused: student code would run able to read the hidden checks")
    ag.add_argument("--student", action="append", default=None, metavar="ID",
                    help="grade only this student (the id as grades.csv spells it); repeat for more. The "
                         "others' results, feedback and grades stay as they are")
    _export_options(ag)
    fb = sub.add_parser("feedback", help="regenerate feedback, grade files and summary")
    fb.add_argument("--course", type=Path, default=COURSE)
    _export_options(fb)
    ex = sub.add_parser("export", help="write the grade files")
    ex.add_argument("--course", type=Path, default=COURSE)
    _export_options(ex)
    sp = sub.add_parser("samples", help="write the generated sample submissions")
    sp.add_argument("dest", type=Path)
    sp.add_argument("--zip", action="store_true", help="as per-student zips instead of folders")
    sp.add_argument("--no-hostile", action="store_true",
                    help="leave out the samples whose code attacks the grader (for a machine without full isolation)")
    sub.add_parser("isolation", help="print the sandbox isolation available here")
    fg = sub.add_parser("formgrader", help="JupyterLab in the course folder with the course's settings, for "
                                           "formgrader (Nbgrader > Formgrader); other options go to jupyter lab")
    fg.add_argument("--course", type=Path, default=COURSE)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "formgrader":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command == "release":
        from .release.build import build_release
        print(f"release: {build_release()}")
    elif args.command == "autograde":
        if not args.source.is_dir():   # one line, not intake's traceback
            why = "is not a folder" if args.source.exists() else "does not exist"
            ag.exit(2, f"{ag.prog}: error: {args.source} {why}: expected a folder of submissions "
                       f"(<student>/hw4/ folders or <student>_....zip files)\n")
        from .autograde.job import Settings, autograde
        params = dict(Settings().parameters)
        for item in args.param:
            name, _, value = item.partition("=")
            params[name] = _literal(value)
        settings = Settings(course=args.course, workers=args.workers, execute=not args.no_execute,
                            cell_timeout=args.cell_timeout, notebook_budget=args.notebook_budget,
                            parameters=params, data_root=args.data_root, keep_sandboxes=args.keep_sandboxes,
                            notebooks=tuple(args.notebooks.split(",")) if args.notebooks else None,
                            execute_students=tuple(args.execute_only.split(",")) if args.execute_only else None,
                            budget_scale=args.budget_scale, nbgrader_feedback=not args.no_nbgrader_feedback,
                            reuse_checks=args.reuse_checks, scheduler=args.scheduler,
                            allow_weak_isolation=args.allow_weak_isolation or os.environ.get("HW4_ALLOW_WEAK_ISOLATION") == "1",
                            students=tuple(args.student) if args.student else None, exports=args.formats,
                            roster=args.roster, canvas_assignment=args.canvas_assignment)
        autograde(args.source, settings)
    elif args.command in ("feedback", "export"):
        from .autograde import export
        from .autograde.feedback import class_summary, generate
        from .autograde.gradebook import load_results
        if args.command == "feedback":
            generate(args.course, sorted(load_results(args.course)))
        try:
            written = export.write(args.course, args.formats, roster=args.roster,
                                   canvas_assignment=args.canvas_assignment)
        except ValueError as exc:
            parser.error(str(exc))
        print("grades: " + ", ".join(str(p) for p in written.values())
              + (f"; summary: {class_summary(args.course)}" if args.command == "feedback" else ""))
    elif args.command == "samples":
        from .samples import write_samples
        for sample in write_samples(args.dest, as_zip=args.zip, hostile=not args.no_hostile):
            print(f"{sample.student}: {sample.description}")
    elif args.command == "formgrader":
        from .nbgrader.course_root import formgrader_command
        course = args.course.resolve()
        if not (course / "nbgrader_config.py").is_file():
            parser.error(f"{course} holds no nbgrader course: build it first (python -m grading release)")
        command = formgrader_command(course, rest)
        print("starting:", " ".join(command[2:]), flush=True)
        os.chdir(course)   # nbgrader reads nbgrader_config.py from the working folder only
        os.execv(command[0], command)
    elif args.command == "isolation":
        from .autograde.sandbox import isolation
        for key, value in isolation().items():
            print(f"{key}: {value}")
    return 0


def _settings_defaults():
    """The autograder's defaults: its settings object, the one place they are written."""
    from .autograde.job import Settings
    return Settings()


def _export_options(parser, flag: str = "--format") -> None:
    """The grade files' options (grading/autograde/export.py): the same names under every command."""
    from .autograde.export import parse_formats
    parser.add_argument(flag, dest="formats", type=_checked(parse_formats), default="all",
                        metavar="FORMATS", help="grade files: plain (grades.csv), canvas, gradescope, "
                                                "comma-separated, or all (the default)")
    parser.add_argument("--roster", type=Path, default=None,
                        help="the LMS's roster CSV (Canvas: Grades -> Export): names, SIS ids, sections, emails")
    parser.add_argument("--canvas-assignment", default=None, metavar="COLUMN",
                        help="Canvas's column of the assignment, 'HW4 (123456)' or just its id 123456 "
                             "(default: found in the roster)")


def _checked(parse):
    """An argparse type from a parser raising ValueError (its message becomes the usage error)."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _literal(text: str):
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


if __name__ == "__main__":
    sys.exit(main())
