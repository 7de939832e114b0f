#!/usr/bin/env python3
"""The night's Fly machine, as the Machines API wants it, from the repository's fly.toml.

    python3 deploy/fly/machine.py get app               # a value of fly.toml (app, region, ...)
    python3 deploy/fly/machine.py config --date D --image IMAGE --volume-id VOL
                                                        # the JSON body of POST /machines

train_adapters.yml creates the machine with this body, and tests/test_fly_rehearsal.py runs the
same command with the same environment on this machine, so the two cannot drift apart. Standard
library only: the workflow runs it on a bare runner before anything is installed.

The GPU is not written in fly.toml: PRIA_GPU_TIER in its [env] names a tier of
pria_ml/assets/gpu_tiers.toml, whose fly_gpu_kind is the GPU the machine gets and whose price
and memory pria-ml plans the night with. One setting, both sides.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLY_TOML = ROOT / "fly.toml"
GPU_TIERS = ROOT / "pria_ml" / "assets" / "gpu_tiers.toml"
PROCESS = "night"


def load(path: Path = FLY_TOML) -> dict:
    return tomllib.loads(path.read_text())


def command(fly: dict, date: str) -> list[str]:
    """The container command of the night of ``date`` (the image's entrypoint is pria-ml)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise SystemExit(f"--date {date!r} is not YYYY-MM-DD")
    return [*shlex.split(fly["processes"][PROCESS]), "--date", date]


def environment(fly: dict) -> dict[str, str]:
    """The machine's environment from fly.toml's [env] (secrets are added by Fly)."""
    return {name: str(value) for name, value in fly["env"].items()}


def gpu_kind(fly: dict) -> str:
    tier = fly["env"]["PRIA_GPU_TIER"]
    tiers = tomllib.loads(GPU_TIERS.read_text())
    if tier not in tiers or not tiers[tier].get("fly_gpu_kind"):
        raise SystemExit(f"PRIA_GPU_TIER={tier!r} has no fly_gpu_kind in {GPU_TIERS}")
    return tiers[tier]["fly_gpu_kind"]


def _megabytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)\s*(gb|mb)", size.lower()).groups()
    return int(number) * (1024 if unit == "gb" else 1)


def config(fly: dict, *, date: str, image: str, volume_id: str) -> dict:
    """The Machines API body: restart policy "no" so the exit code is the night's, and the
    volume mounted where fly.toml says, so weights and checkpoints outlive the machine."""
    (vm,) = fly["vm"]
    (mount,) = fly["mounts"]
    return {
        "region": fly["primary_region"],
        "config": {
            "image": image,
            "init": {"cmd": command(fly, date)},
            "env": environment(fly),
            "guest": {
                "gpu_kind": gpu_kind(fly),
                "gpus": vm["gpus"],
                "cpu_kind": vm["cpu_kind"],
                "cpus": vm["cpus"],
                "memory_mb": _megabytes(vm["memory"]),
            },
            "mounts": [{"volume": volume_id, "path": mount["destination"]}],
            "restart": {"policy": "no"},
            "auto_destroy": False,
        },
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    get = sub.add_parser("get", help="print one value of fly.toml")
    get.add_argument("key", choices=["app", "region", "volume", "volume-size-gb"])
    body = sub.add_parser("config", help="print the Machines API body of the night")
    body.add_argument("--date", required=True)
    body.add_argument("--image", required=True)
    body.add_argument("--volume-id", required=True)
    args = parser.parse_args(argv)
    fly = load()
    if args.what == "get":
        (mount,) = fly["mounts"]
        print(
            {
                "app": fly["app"],
                "region": fly["primary_region"],
                "volume": mount["source"],
                "volume-size-gb": _megabytes(mount["initial_size"]) // 1024,
            }[args.key]
        )
        return
    print(json.dumps(config(fly, date=args.date, image=args.image, volume_id=args.volume_id)))


if __name__ == "__main__":
    main(sys.argv[1:])
