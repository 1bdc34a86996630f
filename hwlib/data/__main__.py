"""``python -m hwlib.data fetch NAME [--root DIR]`` and ``python -m hwlib.data list``."""

from __future__ import annotations

import argparse
import sys

from . import DATASETS, DataError, fetch
from ..paths import data_root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwlib.data", description="Download the course datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download and verify a dataset")
    p_fetch.add_argument("name", choices=sorted(DATASETS))
    p_fetch.add_argument("--root", default=None, help="data root (default: $HWLIB_DATA_ROOT or the kit's data/)")
    p_fetch.add_argument("--force", action="store_true", help="download again even if present")
    p_list = sub.add_parser("list", help="list datasets and whether they are present")
    p_list.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, ds in sorted(DATASETS.items()):
            state = "present" if ds.present(args.root) else "absent"
            print(f"{name:12s} {state:8s} {ds.path(args.root)}  {ds.description}")
        return 0
    try:
        folder = fetch(args.name, args.root, force=args.force)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: ready in {folder} (data root {data_root(args.root)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
