#!/usr/bin/env bash
# Build a flashable Pillarbox image without loop devices or mounts.
#
#   image/build.sh amd64    PC / VM: GPT, EFI system partition with systemd-boot, ext4 root
#   image/build.sh arm64    Raspberry Pi 3/4/400/Zero 2 W: MBR, FAT firmware partition, ext4 root
#
# Steps: build the project wheel on the host; mmdebstrap a Debian 12 tree (customize.sh
# installs the wheel into /opt/pillarbox from PyPI, the firmware hooks and the units);
# assemble.sh turns the tree into partitions (mke2fs -d, mkfs.vfat + mtools) and a disk
# image (sfdisk on a plain file, dd). Output in image/build/:
#   pillarbox-<target>.img            raw image (kept for `make image-test`)
#   pillarbox-<target>.img.xz         compressed, for flashing
#   pillarbox-<target>.img.xz.sha256  checksums of both
#   pillarbox-<target>.json           build facts for the boot test (ids, services, sizes)
#
# Environment: PILLARBOX_MIRROR (Debian mirror), PILLARBOX_XZ=0 (skip compression),
# PILLARBOX_KEEP_TREE=1 (keep the root tree in image/build/work-<arch>/rootfs).
set -euo pipefail

readonly ARCH=${1:-}
case $ARCH in
amd64) readonly TARGET=amd64 ;;
arm64) readonly TARGET=arm64-rpi ;;
*)
	echo "usage: $0 amd64|arm64" >&2
	exit 2
	;;
esac

IMAGE_DIR=$(cd "$(dirname "$0")" && pwd)
readonly IMAGE_DIR
REPO=$(dirname "$IMAGE_DIR")
readonly REPO
readonly OUT=$IMAGE_DIR/build
readonly WORK=$OUT/work-$ARCH
readonly CACHE=$OUT/cache/apt-$ARCH
readonly SUITE=bookworm
readonly MIRROR=${PILLARBOX_MIRROR:-http://deb.debian.org/debian}
readonly SECURITY_MIRROR=${PILLARBOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
readonly PIP=${PIP:-$REPO/.venv/bin/pip}

log() {
	printf '%s build[%s]: %s\n' "$(date +%T)" "$ARCH" "$*" >&2
}

ensure_tools() {
	local missing=() pkg
	while read -r pkg; do
		[[ -z $pkg || $pkg == \#* ]] && continue
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$pkg")
	done <"$IMAGE_DIR/apt-packages.txt"
	if ((${#missing[@]})); then
		log "installing build tools: ${missing[*]}"
		apt-get -o DPkg::Lock::Timeout=600 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
			--no-install-recommends "${missing[@]}" >/dev/null
	fi
	if [[ $ARCH == arm64 && $(dpkg --print-architecture) != arm64 ]]; then
		# Foreign-architecture maintainer scripts run through qemu-user via binfmt_misc.
		if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
			mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
		fi
		update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
		arch-test arm64 >/dev/null || {
			log "cannot run arm64 binaries here (binfmt_misc + qemu-user-static)"
			exit 1
		}
	fi
}

new_uuid() {
	cat /proc/sys/kernel/random/uuid
}

# Identifiers baked into fstab, the kernel command line and the partition table.
write_ids() {
	local disk_id
	disk_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
	cat >"$WORK/ids.env" <<-EOF
		ARCH=$ARCH
		TARGET=$TARGET
		ROOT_UUID=$(new_uuid)
		BOOT_VOLID=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ' | tr a-f A-F)
		DISK_GUID=$(new_uuid)
		ESP_PARTUUID=$(new_uuid)
		ROOT_PARTUUID_GPT=$(new_uuid)
		MBR_DISK_ID=$disk_id
	EOF
}

build_wheel() {
	log "building the pillarbox wheel"
	# From a copy of just the packaged sources: setuptools' package discovery would
	# otherwise walk image/build, root trees included.
	local src=$WORK/src item
	rm -rf "$WORK/wheel" "$src"
	mkdir -p "$src"
	for item in pyproject.toml README.md LICENSE appliance webui; do
		if [[ -e $REPO/$item ]]; then
			cp -a "$REPO/$item" "$src/"
		fi
	done
	find "$src" -name __pycache__ -prune -exec rm -rf {} +
	"$PIP" wheel --quiet --no-deps -w "$WORK/wheel" "$src" >&2
	rm -rf "$src"
	ls "$WORK"/wheel/pillarbox-*.whl >/dev/null
}

packages() {
	local common=(
		systemd systemd-sysv systemd-timesyncd systemd-resolved udev dbus
		kmod initramfs-tools zstd ca-certificates netbase tzdata
		iproute2 iputils-ping procps less nano
		openssh-server avahi-daemon libnss-mdns
		python3 python3-venv
		e2fsprogs dosfstools fdisk cloud-guest-utils util-linux
		restic smartmontools openssl
	)
	# Webmail (pillarbox-webmail.service): Roundcube under our own php-fpm. Recommends are
	# off, so every PHP extension Roundcube and its plugins load is named here (sqlite3:
	# its database; intl, mbstring, xml: required; zip: zipdownload; net-sieve: managesieve).
	local webmail=(
		php8.2-fpm php8.2-cli php8.2-sqlite3 php8.2-intl php8.2-mbstring php8.2-xml
		php8.2-zip php-net-sieve roundcube-core roundcube-sqlite3 roundcube-plugins
	)
	local extra=()
	if [[ $ARCH == amd64 ]]; then
		extra=(linux-image-amd64 systemd-boot-efi)
	else
		extra=(linux-image-arm64 raspi-firmware firmware-brcm80211 wpasupplicant)
	fi
	local IFS=,
	echo "${common[*]},${webmail[*]},${extra[*]}"
}

build_tree() {
	log "mmdebstrap $SUITE $ARCH (apt cache $CACHE)"
	rm -rf "$WORK/rootfs"
	mkdir -p "$CACHE"
	local components=main,non-free-firmware
	# Every kernel and trigger would rebuild the initramfs while packages go in (slow under
	# qemu-user): update-initramfs is a no-op until customize.sh builds it once.
	local divert="chroot \"\$1\" dpkg-divert --quiet --local --rename"
	divert+=" --divert /usr/sbin/update-initramfs.pillarbox --add /usr/sbin/update-initramfs"
	# Roundcube's package would make a database through dbconfig-common: ours is made per
	# box under the data dir by pillarbox-webmail.service at its first start.
	local preseed="echo 'roundcube-core roundcube/dbconfig-install boolean false'"
	preseed+=" | chroot \"\$1\" debconf-set-selections"
	mmdebstrap --mode=root --variant=minbase --architectures="$ARCH" \
		--include="$(packages)" \
		--aptopt='Acquire::Retries "5"' \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--skip=download/empty \
		--setup-hook="mkdir -p \"\$1/var/cache/apt/archives\"" \
		--setup-hook="sync-in '$CACHE' /var/cache/apt/archives" \
		--essential-hook="$divert" \
		--essential-hook="$preseed" \
		--essential-hook="ln -s /bin/true \"\$1/usr/sbin/update-initramfs\"" \
		--customize-hook="'$IMAGE_DIR/customize.sh' \"\$1\" '$WORK'" \
		--customize-hook="sync-out /var/cache/apt/archives '$CACHE'" \
		"$SUITE" "$WORK/rootfs" \
		"deb $MIRROR $SUITE ${components//,/ }" \
		"deb $MIRROR $SUITE-updates ${components//,/ }" \
		"deb $SECURITY_MIRROR $SUITE-security ${components//,/ }" >&2
}

# Plain file edits that must happen after mmdebstrap, which manages these files itself.
finish_tree() {
	local root=$WORK/rootfs
	echo pillarbox >"$root/etc/hostname"
	rm -f "$root/etc/resolv.conf"
	ln -s ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
	rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*_Packages \
		"$root/tmp/"* "$root/var/tmp/"*
}

compress() {
	local img=$OUT/pillarbox-$TARGET.img
	if [[ ${PILLARBOX_XZ:-1} == 0 ]]; then
		log "skipping xz (PILLARBOX_XZ=0)"
		rm -f "$img.xz" "$img.xz.sha256"
		return 0
	fi
	log "compressing with xz"
	xz --threads=0 -6 --keep --force "$img"
	(cd "$OUT" && sha256sum "$(basename "$img")" "$(basename "$img").xz" >"$img.xz.sha256")
}

main() {
	if [[ $(id -u) != 0 ]]; then
		echo "$0: run as root (mmdebstrap --mode=root, chroot)" >&2
		exit 1
	fi
	local start=$SECONDS
	ensure_tools
	mkdir -p "$WORK"
	write_ids
	build_wheel
	build_tree
	finish_tree
	"$IMAGE_DIR/assemble.sh" "$WORK" "$OUT"
	compress
	local seconds=$((SECONDS - start))
	"$IMAGE_DIR/manifest.py" --work "$WORK" --out "$OUT" --target "$TARGET" \
		--build-seconds "$seconds"
	if [[ ${PILLARBOX_KEEP_TREE:-0} != 1 ]]; then
		rm -rf "$WORK/rootfs"
	fi
	log "done in ${seconds}s:"
	du -h --apparent-size "$OUT/pillarbox-$TARGET".img* >&2
}

main "$@"
