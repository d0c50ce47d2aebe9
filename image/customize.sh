#!/usr/bin/env bash
# mmdebstrap customize hook (runs on the build host, as root, after all packages are in):
#   customize.sh ROOT WORK
# ROOT is the Debian tree, WORK holds ids.env and wheel/ from build.sh. Installs Pillarbox
# into /opt/pillarbox (venv, dependencies from PyPI), the firmware hooks, systemd units,
# udev rule, users and directories, and the per-architecture boot configuration.
set -euo pipefail

readonly ROOT=$1
readonly WORK=$2
IMAGE_DIR=$(cd "$(dirname "$0")" && pwd)
readonly IMAGE_DIR
HOOKS=$(dirname "$IMAGE_DIR")/firmware-hooks
readonly HOOKS
# shellcheck source=/dev/null
source "$WORK/ids.env"

log() {
	printf '%s customize[%s]: %s\n' "$(date +%T)" "$ARCH" "$*" >&2
}

in_root() {
	chroot "$ROOT" "$@"
}

build_initramfs() {
	if [[ -L $ROOT/usr/sbin/update-initramfs ]]; then
		rm "$ROOT/usr/sbin/update-initramfs"
		in_root dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
	fi
	if ! compgen -G "$ROOT/boot/initrd.img-*" >/dev/null; then
		log "building the initramfs"
		in_root update-initramfs -c -k all
	fi
}

install_pillarbox() {
	log "installing the pillarbox wheel and its dependencies into /opt/pillarbox"
	rm -rf "$ROOT/tmp/pillarbox-wheel"
	mkdir -p "$ROOT/tmp/pillarbox-wheel"
	cp "$WORK"/wheel/pillarbox-*.whl "$ROOT/tmp/pillarbox-wheel/"
	# systemd-resolved made resolv.conf a link into /run, empty in the chroot: lend pip
	# the host's resolver; build.sh puts the link back at the end.
	rm -f "$ROOT/etc/resolv.conf"
	cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
	# Trust what the build host trusts for this download (a TLS-inspecting proxy's CA, for
	# one); the image keeps its own Debian CA bundle.
	cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/tmp/pillarbox-wheel/host-ca.crt"
	in_root python3 -m venv /opt/pillarbox
	# A clean environment: the build host's pip settings (indexes, find-links, certificate
	# paths) name host paths that do not exist in the tree.
	in_root env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		/bin/sh -c 'exec /opt/pillarbox/bin/pip install --quiet --no-cache-dir \
		--disable-pip-version-check --prefer-binary --cert /tmp/pillarbox-wheel/host-ca.crt \
		/tmp/pillarbox-wheel/pillarbox-*.whl'
	rm -rf "$ROOT/tmp/pillarbox-wheel"
	ln -sf /opt/pillarbox/bin/pillarbox "$ROOT/usr/local/bin/pillarbox"
}

install_hooks() {
	log "installing firmware hooks, units, udev rule, users"
	local lib=$ROOT/usr/lib/pillarbox unit
	install -d "$lib/hooks"
	for hook in first-boot disk-attach pre-update post-update pre-shutdown; do
		install -m 0755 "$HOOKS/$hook.sh" "$lib/hooks/$hook.sh"
	done
	install -m 0644 "$HOOKS/firstboot_config.py" "$lib/firstboot_config.py"
	install -m 0644 "$HOOKS/state_perms.py" "$lib/state_perms.py"
	install -m 0755 "$HOOKS/root_helper.py" "$lib/root_helper.py"
	install -m 0755 "$HOOKS/root_helper_client.py" "$lib/root-helper-client"
	for unit in "$HOOKS"/systemd/*; do
		install -m 0644 "$unit" "$ROOT/usr/lib/systemd/system/$(basename "$unit")"
	done
	install -m 0644 "$HOOKS/udev/90-pillarbox-disk.rules" "$ROOT/usr/lib/udev/rules.d/"
	install -m 0644 "$HOOKS/conf/sysusers.conf" "$ROOT/usr/lib/sysusers.d/pillarbox.conf"
	install -m 0644 "$HOOKS/conf/tmpfiles.conf" "$ROOT/usr/lib/tmpfiles.d/pillarbox.conf"
	install -D -m 0644 "$HOOKS/conf/journald.conf" \
		"$ROOT/etc/systemd/journald.conf.d/pillarbox.conf"
	install -D -m 0644 "$HOOKS/conf/resolved.conf" \
		"$ROOT/etc/systemd/resolved.conf.d/pillarbox.conf"
	install -D -m 0644 "$HOOKS/conf/network-dhcp.network" \
		"$ROOT/etc/systemd/network/80-pillarbox-dhcp.network"
	install -D -m 0644 "$HOOKS/conf/avahi-pillarbox.service" \
		"$ROOT/etc/avahi/services/pillarbox.service"
	install -m 0644 "$HOOKS/conf/issue" "$ROOT/etc/issue"
	install -D -m 0644 "$IMAGE_DIR/README.md" "$ROOT/usr/share/doc/pillarbox/README.md"
	install -D -m 0644 "$IMAGE_DIR/pillarbox-seed.toml.example" \
		"$ROOT/usr/share/doc/pillarbox/pillarbox-seed.toml.example"

	in_root systemd-sysusers
	in_root systemd-tmpfiles --create /usr/lib/tmpfiles.d/pillarbox.conf
	in_root systemctl enable pillarbox.service pillarbox-web.service \
		pillarbox-firstboot.service pillarbox-shutdown.service pillarbox-backup.timer \
		pillarbox-root-helper.socket pillarbox-webmail.service systemd-networkd.service \
		systemd-resolved.service systemd-timesyncd.service avahi-daemon.service ssh.service
	# systemd-firstboot would stop the boot to ask for a locale and a root password.
	in_root systemctl mask systemd-firstboot.service
}

webmail() {
	log "webmail: Roundcube and php-fpm checked, Debian's service off, no secret shipped"
	# Every extension Roundcube's installer check requires, plus the ones its plugins use
	# (zip: zipdownload; fileinfo, exif, iconv: attachments) and the sieve client library.
	in_root php8.2 -r '
		$missing = [];
		foreach (["pcre", "dom", "session", "xml", "intl", "json", "PDO", "pdo_sqlite",
		          "mbstring", "openssl", "filter", "ctype", "fileinfo", "exif", "iconv",
		          "zip"] as $ext) {
		    if (!extension_loaded($ext)) { $missing[] = $ext; }
		}
		foreach (["Net/Sieve.php", "Net/SMTP.php", "Mail/mime.php", "Auth/SASL.php"] as $lib) {
		    if (stream_resolve_include_path($lib) === false) { $missing[] = $lib; }
		}
		if ($missing) { fwrite(STDERR, "missing: " . implode(" ", $missing) . "\n"); exit(1); }
	'
	# pillarbox-webmail.service runs its own php-fpm as its own user.
	in_root systemctl disable php8.2-fpm.service
	# The package wrote a random des_key into its config: the same one would be on every
	# box. Ours is made per box (<data_dir>/webmail); Roundcube's default stays a placeholder.
	local conf=$ROOT/etc/roundcube/config.inc.php key
	key=$(sed -nE "s/^\\\$config\['des_key'\][[:space:]]*=[[:space:]]*'([^']*)'.*/\1/p" "$conf")
	sed -i "/^\\\$config\['des_key'\]/d" "$conf"
	# ucf keeps a pristine copy of the generated file for its three-way merge.
	rm -f "$ROOT"/var/lib/ucf/cache/:etc:roundcube:config.inc.php "$conf".ucf-*
	if [[ -n $key ]] && grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev \
		-e "$key" "$ROOT"; then
		log "Roundcube's generated des_key is still in the files above"
		exit 1
	fi
	# No Roundcube database either (dbconfig-install is preseeded false).
	if compgen -G "$ROOT/var/lib/dbconfig-common/sqlite3/roundcube*" >/dev/null ||
		find "$ROOT/var/lib/roundcube" -name '*.db' -o -name '*.sqlite*' 2>/dev/null | grep -q .; then
		log "a Roundcube database is in the image"
		exit 1
	fi
}

system_identity() {
	log "system identity: host name, locale, time zone, fresh ids on first boot"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tpillarbox\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
		>"$ROOT/etc/hosts"
	echo 'LANG=C.UTF-8' >"$ROOT/etc/default/locale"
	ln -sf /usr/share/zoneinfo/Etc/UTC "$ROOT/etc/localtime"
	echo Etc/UTC >"$ROOT/etc/timezone"
	# Empty machine-id: systemd generates one per box on first boot (first-boot.sh commits it).
	: >"$ROOT/etc/machine-id"
	rm -f "$ROOT"/etc/ssh/ssh_host_*
	# Root logs in with SSH keys from the seed file only; no password exists.
	sed -i 's/^#\?PasswordAuthentication .*/PasswordAuthentication no/' "$ROOT/etc/ssh/sshd_config"
}

boot_amd64() {
	log "amd64: fstab, kernel update hook for the EFI system partition"
	local boot_uuid=${BOOT_VOLID:0:4}-${BOOT_VOLID:4:4}
	cat >"$ROOT/etc/fstab" <<-EOF
		# <file system>  <mount point>  <type>  <options>  <dump>  <pass>
		UUID=$ROOT_UUID  /  ext4  defaults,noatime,errors=remount-ro  0  1
		UUID=$boot_uuid  /boot/efi  vfat  umask=0077,nofail,x-systemd.device-timeout=15s  0  2
	EOF
	install -d "$ROOT/boot/efi"
	install -D -m 0755 "$HOOKS/esp-kernel-sync.sh" "$ROOT/etc/kernel/postinst.d/zz-pillarbox-esp"
	install -D -m 0755 "$HOOKS/esp-kernel-sync.sh" \
		"$ROOT/etc/initramfs/post-update.d/zz-pillarbox-esp"
}

boot_arm64() {
	log "arm64: fstab, raspi-firmware settings, config.txt and cmdline.txt"
	local boot_uuid=${BOOT_VOLID:0:4}-${BOOT_VOLID:4:4}
	cat >"$ROOT/etc/fstab" <<-EOF
		# <file system>  <mount point>  <type>  <options>  <dump>  <pass>
		UUID=$ROOT_UUID  /  ext4  defaults,noatime,errors=remount-ro  0  1
		UUID=$boot_uuid  /boot/firmware  vfat  umask=0077,nofail,x-systemd.device-timeout=15s  0  2
	EOF
	# raspi-firmware's kernel hook writes config.txt and cmdline.txt from these files, now
	# and on every kernel update on the box.
	cat >"$ROOT/etc/default/raspi-firmware" <<-EOF
		# Pillarbox: one image for Raspberry Pi 3, 4, 400 and Zero 2 W.
		ROOTPART=PARTUUID=$MBR_DISK_ID-02
		# Serial console on the GPIO UART (ttyS1 on 3/4/Zero 2 W) and the screen.
		CONSOLES="ttyS1,115200 tty0"
		# Headless: no contiguous memory for a GPU, valid on every model.
		CMA=0
	EOF
	cat >"$ROOT/etc/default/raspi-firmware-custom" <<-EOF
		# Pillarbox: headless mail appliance
		disable_splash=1
		dtparam=audio=off
	EOF
	echo "systemd.show_status=auto" >"$ROOT/etc/default/raspi-extra-cmdline"
	install -d "$ROOT/boot/firmware"
	in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
	install -m 0644 "$IMAGE_DIR/pillarbox-seed.toml.example" "$ROOT/boot/firmware/"
}

build_facts() {
	# Which protocol services the installed daemon has, for the boot test to expect.
	in_root /opt/pillarbox/bin/python - >"$WORK/services.json" <<-'EOF'
		import importlib.util
		import json

		from appliance import __version__
		from appliance.daemon import SERVICE_MODULES

		print(json.dumps({
		    "version": __version__,
		    "service_modules": list(SERVICE_MODULES),
		    "webui": importlib.util.find_spec("webui.__main__") is not None,
		    "webmail": importlib.util.find_spec("appliance.webmail.__main__") is not None,
		}))
	EOF
	# The installed Debian packages, for the manifest (and the boot test's webmail check).
	in_root dpkg-query -W -f '${Package}\t${Version}\t${Installed-Size}\n' >"$WORK/packages.tsv"
	local kernel
	kernel=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)
	echo "KERNEL_VERSION=${kernel#vmlinuz-}" >>"$WORK/ids.env"
}

build_initramfs
install_pillarbox
install_hooks
webmail
system_identity
"boot_$ARCH"
build_facts
log "done"
