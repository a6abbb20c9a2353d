"""Pieces shared by several commands: the data options and loading."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--data-dir", type=Path, help="folder with the four IDX files "
                        "(default: $DISTNET_DATA_DIR/DATASET, then the user cache, then download)")
    parser.add_argument("--no-download", action="store_true", help="never download; fail if the files are missing")


def load_data(args, validation: int = 10_000):
    from ..data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download,
                        validation=validation)
