"""Command line of :mod:`helpers.audit`.

Every :class:`helpers.config.Settings` field can be given as ``--param NAME=VALUE`` (a YAML
literal, as ``python -m helpers.book execute``); ``--model`` may be repeated. Bad input (an
unknown parameter, a missing file, a wrong channel count or class index) exits with status 2
and one line naming the parameter and the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any, Sequence

import yaml

from helpers.audit._run import run_audit
from helpers.audit.report import REPORT_NAME, write_audit
from helpers.config import PRESETS, ConfigError, Settings, _closest, resolve
from helpers.data import DataError
from helpers.models import ModelError
from helpers.randomization import RandomizationError
from helpers.saliency import SaliencyError

__all__ = ["main", "parse_audit_params", "build_parser"]

_FIELDS = [f.name for f in dataclasses.fields(Settings) if f.name not in ("preset", "model")]


def parse_audit_params(items: Sequence[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` strings -> settings overrides (any :class:`~helpers.config.Settings` field but ``preset``/``model``).

    Raises
    ------
    ConfigError
        Malformed item, unknown name (the message lists the valid ones), a name given twice, or a value that
        is no YAML literal.
    """
    params: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--param {item!r} must have the form NAME=VALUE, e.g. image_size=64")
        name, text = (part.strip() for part in item.split("=", 1))
        if name == "preset":
            raise ConfigError("the preset is chosen with --preset, not --param preset=...")
        if name == "model":
            raise ConfigError("models are given with --model SPEC (repeatable), not --param model=...")
        if name not in _FIELDS:
            raise ConfigError(f"unknown parameter {name!r}; valid parameters: {', '.join(_FIELDS)}."
                              f"{_closest(name, _FIELDS)}")
        if name in params:
            raise ConfigError(f"--param {name} is given twice")
        try:
            params[name] = yaml.safe_load(text) if text else None
        except yaml.YAMLError as error:
            raise ConfigError(f"--param {item!r}: the value is not a YAML literal ({error})") from None
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.audit",
        description="Audit a chest X-ray classifier's saliency maps with the book's criteria (localization utility, "
                    "cascading randomization, repeatability, reproducibility) under the book's and the paper's rules.",
        epilog="Model forms: ARCH=WEIGHTS (a zoo architecture and its state dict), FILE.ts (TorchScript), "
               "package.module:function[=WEIGHTS]. Example: python -m helpers.audit --model resnet18=w.pt "
               "--param eval_dataset=folder --param eval_data_dir=/data/eval --out audit/",
    )
    parser.add_argument("--model", action="append", required=True, metavar="SPEC",
                        help="a model to audit (repeat for repeatability/reproducibility; the first is the primary)")
    parser.add_argument("--preset", default="default", choices=list(PRESETS), help="settings preset (default: default)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any setting, e.g. model_channels=3, model_normalization=imagenet, model_class_index=8, "
                             "eval_dataset=folder, eval_data_dir=DIR, methods=[GRAD,GCAM], n_images=50")
    parser.add_argument("--eval-data", metavar="DIR",
                        help="folder of the evaluation images (same as --param eval_data_dir=DIR); default: the test "
                             "split of the preset's dataset")
    parser.add_argument("--eval-dataset", choices=("folder", "rsna", "siim"),
                        help="layout of --eval-data (default folder: boxes.csv + PNG/JPEG/TIFF/DICOM)")
    parser.add_argument("--out", required=True, help="folder for the tables and the report (created)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 2 bad input)."""
    args = build_parser().parse_args(argv)
    start = time.monotonic()

    def say(line: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - start:6.1f} s] {line}", file=sys.stderr, flush=True)

    try:
        params = parse_audit_params(args.param)
        for option, name, value in (("--eval-data", "eval_data_dir", args.eval_data),
                                    ("--eval-dataset", "eval_dataset", args.eval_dataset)):
            if value is not None:
                if name in params:
                    raise ConfigError(f"{option} and --param {name} are both given; give one")
                params[name] = value
        if params.get("eval_data_dir") is not None and params.get("eval_dataset") is None:
            params["eval_dataset"] = "folder"
        settings = resolve(args.preset, model=list(args.model), **params)
        result = run_audit(settings, progress=say)
        paths = write_audit(result, args.out)
    except (ConfigError, ModelError, DataError, SaliencyError, RandomizationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    say(f"wrote {len(paths)} files")
    print(paths[REPORT_NAME])
    return 0
