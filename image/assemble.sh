#!/usr/bin/env bash
# Turn the root tree into a disk image with plain files only (no loop device, no mount):
#   assemble.sh WORK OUT
# WORK holds rootfs/ and ids.env (from build.sh); the image goes to OUT.
#
#   root:  mke2fs -t ext4 -d rootfs         (the tree minus the boot partition's content)
#   boot:  mkfs.vfat on a file + mtools      (amd64: ESP with systemd-boot, kernel, initrd;
#                                             arm64: Raspberry Pi firmware partition)
#   disk:  sfdisk on a sparse file (GPT for amd64, MBR for the Pi), partitions placed with dd
set -euo pipefail

readonly WORK=$1
readonly OUT=$2
readonly ROOTFS=$WORK/rootfs
readonly MIB=1048576
readonly SECTOR=512
# shellcheck source=/dev/null
source "$WORK/ids.env"

readonly BOOT_MIB=256
# First partition at 4 MiB: SD cards erase in blocks of up to 4 MiB.
readonly START_MIB=4
export MTOOLS_SKIP_CHECK=1

log() {
	printf '%s assemble[%s]: %s\n' "$(date +%T)" "$ARCH" "$*" >&2
}

make_boot_fs() {
	local img=$WORK/boot.vfat
	rm -f "$img"
	mkfs.vfat -F 32 -n "$1" -i "$BOOT_VOLID" -C "$img" $((BOOT_MIB * 1024)) >/dev/null
	echo "$img"
}

boot_amd64() {
	local img efi=$ROOTFS/usr/lib/systemd/boot/efi/systemd-bootx64.efi
	img=$(make_boot_fs PBEFI)
	local cmdline="root=PARTUUID=$ROOT_PARTUUID_GPT ro rootwait fsck.repair=yes"
	cmdline+=" console=ttyS0,115200 console=tty0"
	echo "KERNEL_CMDLINE=\"$cmdline\"" >>"$WORK/ids.env"
	mkdir -p "$WORK/esp/loader/entries"
	cat >"$WORK/esp/loader/loader.conf" <<-EOF
		default pillarbox.conf
		timeout 0
		console-mode keep
		editor no
	EOF
	cat >"$WORK/esp/loader/entries/pillarbox.conf" <<-EOF
		title   Pillarbox
		linux   /vmlinuz
		initrd  /initrd.img
		options $cmdline
	EOF
	mmd -i "$img" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries
	mcopy -i "$img" "$efi" ::/EFI/BOOT/BOOTX64.EFI
	mcopy -i "$img" "$efi" ::/EFI/systemd/systemd-bootx64.efi
	mcopy -i "$img" "$WORK/esp/loader/loader.conf" ::/loader/loader.conf
	mcopy -i "$img" "$WORK/esp/loader/entries/pillarbox.conf" ::/loader/entries/pillarbox.conf
	mcopy -i "$img" "$ROOTFS/boot/vmlinuz-$KERNEL_VERSION" ::/vmlinuz
	mcopy -i "$img" "$ROOTFS/boot/initrd.img-$KERNEL_VERSION" ::/initrd.img
	mcopy -i "$img" "$(dirname "$0")/pillarbox-seed.toml.example" ::/pillarbox-seed.toml.example
}

boot_arm64() {
	local img
	img=$(make_boot_fs PBFIRMWARE)
	if [[ ! -e $ROOTFS/boot/firmware/config.txt || ! -e $ROOTFS/boot/firmware/start4.elf ]]; then
		log "raspi-firmware did not populate /boot/firmware"
		exit 1
	fi
	mcopy -s -i "$img" "$ROOTFS"/boot/firmware/* ::/
	# The content lives on the FAT partition; the root keeps an empty mount point.
	find "$ROOTFS/boot/firmware" -mindepth 1 -delete
	local cmdline
	cmdline=$(mtype -i "$img" ::/cmdline.txt | tr -d '\r\n')
	echo "KERNEL_CMDLINE=\"$cmdline\"" >>"$WORK/ids.env"
}

make_root_fs() {
	local img=$WORK/root.ext4 used_mib size_mib
	used_mib=$(du -s --block-size=$MIB --one-file-system "$ROOTFS" | cut -f1)
	# Room for the first apt upgrade and logs; first boot grows it to the whole card.
	size_mib=$((used_mib * 5 / 4 + 512))
	rm -f "$img"
	truncate -s "${size_mib}M" "$img"
	mke2fs -q -F -t ext4 -L pillarbox-root -U "$ROOT_UUID" -d "$ROOTFS" \
		-E root_owner=0:0 "$img"
	e2fsck -fn "$img" >/dev/null 2>&1 || {
		log "the new root filesystem does not pass e2fsck"
		exit 1
	}
	echo "$img"
}

partition() {
	local disk=$1 boot_sectors=$2 root_sectors=$3 start=$((START_MIB * MIB / SECTOR))
	local root_start=$((start + boot_sectors))
	if [[ $ARCH == amd64 ]]; then
		sfdisk --quiet --no-reread --no-tell-kernel "$disk" <<-EOF
			label: gpt
			label-id: $DISK_GUID
			unit: sectors
			start=$start, size=$boot_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PARTUUID, name="EFI system"
			start=$root_start, size=$root_sectors, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_PARTUUID_GPT, name="pillarbox-root"
		EOF
	else
		sfdisk --quiet --no-reread --no-tell-kernel "$disk" <<-EOF
			label: dos
			label-id: 0x$MBR_DISK_ID
			unit: sectors
			start=$start, size=$boot_sectors, type=c, bootable
			start=$root_start, size=$root_sectors, type=83
		EOF
	fi
}

main() {
	local boot root disk
	log "boot partition (mkfs.vfat + mtools)"
	"boot_$ARCH"
	boot=$WORK/boot.vfat
	log "root filesystem (mke2fs -d)"
	root=$(make_root_fs)
	local boot_bytes root_bytes total
	boot_bytes=$(stat -c %s "$boot")
	root_bytes=$(stat -c %s "$root")
	# Leading gap, both partitions, 1 MiB at the end for the backup GPT.
	total=$((START_MIB * MIB + boot_bytes + root_bytes + MIB))
	disk=$OUT/pillarbox-$TARGET.img
	log "disk image $disk ($((total / MIB)) MiB)"
	rm -f "$disk" "$disk.xz"
	truncate -s "$total" "$disk"
	partition "$disk" $((boot_bytes / SECTOR)) $((root_bytes / SECTOR))
	dd if="$boot" of="$disk" bs=1M seek="$START_MIB" conv=notrunc,sparse status=none
	dd if="$root" of="$disk" bs=1M seek=$((START_MIB + boot_bytes / MIB)) conv=notrunc,sparse \
		status=none
	rm -f "$boot" "$root"
	sfdisk --dump "$disk" >&2
	# The arm64 boot test starts the generic kernel directly (qemu -M virt has no Pi firmware).
	local files=$OUT/pillarbox-$TARGET-boot
	rm -rf "$files"
	mkdir -p "$files"
	cp "$ROOTFS/boot/vmlinuz-$KERNEL_VERSION" "$files/vmlinuz"
	cp "$ROOTFS/boot/initrd.img-$KERNEL_VERSION" "$files/initrd.img"
}

main
