"""Command line of :mod:`helpers.data`.

``python -m helpers.data synth --out DIR --n N --size S --seed K
[--positive-fraction F] [--confounder-strength C] [--label-noise P] [--overwrite]``
writes a synthetic dataset in the RSNA and SIIM layouts (see
:func:`helpers.data.writer.synth`).
"""

from __future__ import annotations

import argparse
import sys

from helpers.data.errors import DataError
from helpers.data.writer import read_synth_params, synth


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description="Data tools of the saliency trust book.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "synth",
        help="write a synthetic chest radiograph dataset (DICOM + RSNA CSV + SIIM RLE)",
        description="Write N synthetic chest radiographs as DICOM files with RSNA box and SIIM run-length tables.",
    )
    p.add_argument("--out", required=True, help="dataset folder to create (must not exist or be empty)")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--size", type=int, required=True, help="image size in pixels (64..512)")
    p.add_argument("--seed", type=int, required=True, help="master seed (non-negative)")
    p.add_argument("--positive-fraction", type=float, default=0.5, help="probability of opacities per image (default 0.5)")
    p.add_argument("--confounder-strength", type=float, default=0.0, help="label correlation of a corner lead marker, 0..1 (default 0: none)")
    p.add_argument("--label-noise", type=float, default=0.0, help="probability of a flipped recorded label, 0..0.5 (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        out = synth(
            args.out,
            n=args.n,
            size=args.size,
            seed=args.seed,
            positive_fraction=args.positive_fraction,
            confounder_strength=args.confounder_strength,
            label_noise=args.label_noise,
            overwrite=args.overwrite,
            progress=False if args.quiet else None,
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = read_synth_params(out)
    print(f"wrote {params['n']} images ({params['n_positive']} with opacities) of {params['size']} px to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
