"""``python -m hwlib.check [names...]``: the public checks of Q1-Q5 from a terminal.

Names are targets (``fc``, ``rnn``, ``SoftmaxClassifier.loss``, ``freeze``...) or a model's name for
all of its checks (``ConvNet``); without names, every check runs. Exit status 1 when one fails or
is not implemented yet, 2 for an unknown name. An output whose dtype is not the inputs' is a note
(``note: ...``), or a failure with ``--strict-dtypes``.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from . import TARGETS, check, select


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwlib.check", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"checks to run (default: all of {', '.join(TARGETS)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict-dtypes", action="store_true",
                        help="fail an output whose dtype is not the inputs' (default: a note)")
    args = parser.parse_args(argv)
    try:
        names = select(args.names)
    except ValueError as exc:
        print(exc)
        return 2
    failed = []
    for name in names:
        print(f"{name}:")
        try:
            check(name, seed=args.seed, strict_dtypes=args.strict_dtypes)
            print(f"{name}: PASS")
        except NotImplementedError:
            failed.append(name)
            print(f"{name}: NOT IMPLEMENTED yet")
        except Exception as exc:  # a check failure or a crash in your code: report it and go on
            failed.append(name)
            print(f"{name}: FAIL: {type(exc).__name__}: {exc}")
            if not isinstance(exc, AssertionError):
                traceback.print_exc(limit=-2)
    print(f"{len(names) - len(failed)}/{len(names)} checks pass" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
