#!/usr/bin/env bash
# amd64 image: systemd-boot loads /vmlinuz and /initrd.img from the EFI system partition
# (mounted at /boot/efi). Installed as a kernel postinst hook and an initramfs
# post-update hook so that a kernel or initramfs update reaches the ESP. Copies go to a
# temporary name first, so a power cut never leaves a half-written kernel in place.
set -euo pipefail

readonly ESP=/boot/efi

if ! mountpoint -q "$ESP"; then
	echo "pillarbox-esp: $ESP is not mounted; kernel not copied" >&2
	exit 0
fi
# shellcheck disable=SC2012
version=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1)
if [[ -z $version || ! -e /boot/initrd.img-$version ]]; then
	echo "pillarbox-esp: no kernel with an initramfs in /boot yet" >&2
	exit 0
fi
for pair in "vmlinuz-$version:vmlinuz" "initrd.img-$version:initrd.img"; do
	src=/boot/${pair%%:*}
	dst=$ESP/${pair##*:}
	cp "$src" "$dst.new"
	sync -f "$ESP"
	mv "$dst.new" "$dst"
done
sync -f "$ESP"
echo "pillarbox-esp: kernel $version installed on the EFI system partition"
