#!/usr/bin/env bash
# Pillarbox disk attach: pillarbox-disk-attach@<kernel name>.service runs this when udev
# reports a filesystem on a block device (udev/90-pillarbox-disk.rules), and again with
# "detach" when the device goes away.
#
#   disk-attach.sh attach sdb1   fsck, mount by UUID at the mail mount point, reload daemon
#   disk-attach.sh detach sdb1   lazy-unmount if it was the mail disk, reload the daemon
#
# The mail disk is the one /etc/fstab names for /var/lib/pillarbox/mail (the daemon's
# mail_dir): the root helper's disk.mount action writes that line when the wizard adopts
# or formats a disk. At boot systemd mounts it from fstab (nofail); this hook covers a
# disk plugged in later or re-plugged. Every other disk is left alone.
set -euo pipefail

readonly MOUNT=/var/lib/pillarbox/mail

say() {
	echo "pillarbox-disk: $*"
}

# UUID of the fstab entry for the mail mount point, empty when no disk was chosen.
chosen_uuid() {
	awk -v mp="$MOUNT" '$1 !~ /^#/ && $2 == mp && $1 ~ /^UUID=/ { sub(/^UUID=/, "", $1); print $1; exit }' \
		/etc/fstab
}

reload_daemon() {
	if systemctl --quiet is-active pillarbox.service; then
		# ExecReload sends SIGHUP: the daemon re-reads its config and the store. Queued
		# without waiting: this unit is ordered before the daemon, so the reload job runs
		# once this one has finished.
		systemctl --no-block reload pillarbox.service || say "daemon reload failed"
	fi
}

attach() {
	local kname=$1 dev=/dev/$1 uuid fstype chosen
	uuid=$(blkid -o value -s UUID "$dev" || true)
	fstype=$(blkid -o value -s TYPE "$dev" || true)
	chosen=$(chosen_uuid)
	if [[ -z $uuid || $uuid != "$chosen" ]]; then
		say "$kname (${uuid:-no uuid}, ${fstype:-no filesystem}) is not the mail disk; left alone"
		return 0
	fi
	if findmnt --noheadings --source "$dev" --mountpoint "$MOUNT" >/dev/null; then
		say "mail disk $kname ($uuid) is already mounted at $MOUNT"
	else
		if mountpoint -q "$MOUNT"; then
			say "$MOUNT is in use by another filesystem; $kname not mounted"
			return 1
		fi
		# fsck exit codes: 0 clean, 1 errors corrected, 2 corrected and reboot advised,
		# 4 and up errors left: refuse to put mail on a damaged filesystem.
		local rc=0
		fsck -a -T -t "$fstype" "/dev/disk/by-uuid/$uuid" || rc=$?
		if ((rc >= 4)); then
			say "fsck of $kname ($uuid) failed with code $rc; not mounting it"
			return 1
		fi
		install -d -m 2770 -o pillarbox -g pillarbox "$MOUNT"
		mount -t "$fstype" -o noatime,nodev,nosuid,noexec "UUID=$uuid" "$MOUNT"
		say "mounted $kname ($uuid) at $MOUNT"
	fi
	chown pillarbox:pillarbox "$MOUNT"
	chmod 2770 "$MOUNT"
	say "mail disk: $(df --output=avail -h "$MOUNT" | tail -n 1 | tr -d ' ') free"
	reload_daemon
}

detach() {
	local kname=$1 source
	source=$(findmnt --noheadings --output SOURCE --mountpoint "$MOUNT" || true)
	if [[ -n $source && $(readlink -f "$source") == "/dev/$kname" ]]; then
		sync -f "$MOUNT" 2>/dev/null || true
		umount --lazy "$MOUNT"
		say "mail disk $kname detached from $MOUNT"
		reload_daemon
	fi
}

case ${1:-} in
attach) attach "${2:?kernel device name}" ;;
detach) detach "${2:?kernel device name}" ;;
*)
	echo "usage: $0 attach|detach KERNEL-NAME" >&2
	exit 2
	;;
esac
