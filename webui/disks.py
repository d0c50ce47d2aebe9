"""Disks attached to the box, read from udev (no root needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

SKIP_PREFIXES = ("loop", "ram", "zram", "sr", "dm-", "md", "fd")


@dataclass(frozen=True)
class Partition:
    name: str
    fstype: str
    uuid: str
    label: str
    mountpoint: str


@dataclass(frozen=True)
class Disk:
    name: str  # sdb
    path: str  # /dev/sdb
    size: int
    model: str
    serial: str
    bus: str
    removable: bool
    fstype: str  # a file system directly on the whole disk (what our format makes)
    uuid: str
    mountpoint: str
    partitions: tuple[Partition, ...]
    holds_system: bool

    @property
    def in_use(self) -> bool:
        return bool(self.mountpoint) or any(p.mountpoint for p in self.partitions)


def list_disks() -> list[Disk]:
    import pyudev

    mounts = {p.device: p.mountpoint for p in psutil.disk_partitions(all=False)}
    root_dev = os.stat("/").st_dev
    ctx = pyudev.Context()
    disks: list[Disk] = []
    for dev in ctx.list_devices(subsystem="block", DEVTYPE="disk"):
        name = str(dev.sys_name)
        if name.startswith(SKIP_PREFIXES):
            continue
        try:
            size = int(dev.attributes.asint("size")) * 512
        except (KeyError, ValueError):
            size = 0
        if size == 0:
            continue
        parts = []
        holds = dev.device_number == root_dev
        for child in ctx.list_devices(subsystem="block", DEVTYPE="partition", parent=dev):
            node = str(child.device_node or "")
            parts.append(
                Partition(
                    name=str(child.sys_name),
                    fstype=str(child.properties.get("ID_FS_TYPE", "")),
                    uuid=str(child.properties.get("ID_FS_UUID", "")),
                    label=str(child.properties.get("ID_FS_LABEL", "")),
                    mountpoint=mounts.get(node, ""),
                )
            )
            holds = holds or child.device_number == root_dev
        node = str(dev.device_node or f"/dev/{name}")
        mountpoint = mounts.get(node, "")
        holds = holds or mountpoint == "/" or any(p.mountpoint == "/" for p in parts)
        try:
            removable = dev.attributes.asbool("removable")
        except (KeyError, ValueError):
            removable = False
        disks.append(
            Disk(
                name=name,
                path=node,
                size=size,
                model=str(dev.properties.get("ID_MODEL", "")).replace("_", " "),
                serial=str(dev.properties.get("ID_SERIAL_SHORT", "")),
                bus=str(dev.properties.get("ID_BUS", "")),
                removable=removable,
                fstype=str(dev.properties.get("ID_FS_TYPE", "")),
                uuid=str(dev.properties.get("ID_FS_UUID", "")),
                mountpoint=mountpoint,
                partitions=tuple(parts),
                holds_system=holds,
            )
        )
    return disks
