#!/usr/bin/env python3
"""Write image/build/pillarbox-<target>.json: the facts the boot test needs about a build.

Called by build.sh after the image is assembled. Reads WORK/ids.env (partition ids, the
kernel command line, the kernel version) and WORK/services.json (which protocol services
the installed daemon has), adds sizes and the build time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any


def read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, raw = line.partition("=")
        if sep and name.isidentifier():
            parts = shlex.split(raw)
            values[name] = parts[0] if parts else ""
    return values


def size(path: Path) -> int | None:
    return path.stat().st_size if path.exists() else None


def packages(path: Path) -> dict[str, str]:
    """Package -> version from dpkg-query's tab-separated list (customize.sh)."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, version, _ = line.split("\t")
        found[name] = version
    return dict(sorted(found.items()))


def manifest(work: Path, out: Path, target: str, build_seconds: int) -> dict[str, Any]:
    ids = read_env(work / "ids.env")
    services = json.loads((work / "services.json").read_text(encoding="utf-8"))
    img = out / f"pillarbox-{target}.img"
    boot_files = out / f"pillarbox-{target}-boot"
    root_partuuid = (
        ids["ROOT_PARTUUID_GPT"] if ids["ARCH"] == "amd64" else f"{ids['MBR_DISK_ID']}-02"
    )
    return {
        "target": target,
        "arch": ids["ARCH"],
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": build_seconds,
        "image": img.name,
        "image_bytes": size(img),
        "image_xz_bytes": size(img.with_name(img.name + ".xz")),
        "kernel_version": ids["KERNEL_VERSION"],
        "kernel_cmdline": ids["KERNEL_CMDLINE"],
        "kernel": str((boot_files / "vmlinuz").relative_to(out)),
        "initrd": str((boot_files / "initrd.img").relative_to(out)),
        "root_uuid": ids["ROOT_UUID"],
        "root_partuuid": root_partuuid,
        "pillarbox_version": services["version"],
        "service_modules": services["service_modules"],
        "webui": services["webui"],
        "webmail": services.get("webmail", False),
        "packages": packages(work / "packages.tsv"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--build-seconds", type=int, required=True)
    args = parser.parse_args()
    data = manifest(args.work, args.out, args.target, args.build_seconds)
    path = args.out / f"pillarbox-{args.target}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
