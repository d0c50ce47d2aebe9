#!/usr/bin/env bash
# Pillarbox first boot: runs once (pillarbox-firstboot.service) before the mail daemon,
# the web UI and sshd start. Each step is idempotent so an interrupted first boot simply
# runs again on the next boot; the marker file is written only when every step succeeded.
#
#   1. grow the root partition and its ext4 filesystem to fill the card/disk
#   2. commit a machine-id unique to this box
#   3. generate SSH host keys
#   4. set the host name (default "pillarbox", so the wizard is at http://pillarbox.local)
#   5. write /etc/pillarbox/pillarbox.toml with the appliance defaults, create the
#      self-signed certificate, apply an optional seed file (firstboot_config.py)
#   6. print the first-boot secret that unlocks the setup wizard on the console
set -euo pipefail

readonly LIBDIR=/usr/lib/pillarbox
readonly PYTHON=/opt/pillarbox/bin/python
readonly CONFIG=/etc/pillarbox/pillarbox.toml
readonly STATE=/var/lib/pillarbox
readonly MARKER=/var/lib/pillarbox-firstboot/done
readonly ISSUE=/etc/issue.d/50-pillarbox.issue

say() {
	echo "pillarbox-firstboot: $*"
}

grow_root() {
	local source disk partnum part_sys
	source=$(findmnt --noheadings --output SOURCE --target /)
	part_sys=/sys/class/block/$(basename "$source")
	if [[ ! -e $part_sys/partition ]]; then
		say "root $source is not a partition; not growing it"
		return 0
	fi
	partnum=$(<"$part_sys/partition")
	disk=/dev/$(basename "$(readlink -f "$part_sys/..")")
	# growpart exits 1 with NOCHANGE when the partition already fills the disk.
	local out rc=0
	out=$(growpart "$disk" "$partnum" 2>&1) || rc=$?
	if [[ $rc -eq 0 ]]; then
		say "grew partition $partnum of $disk: $out"
	elif [[ $out == NOCHANGE* ]]; then
		say "root partition already fills $disk"
	else
		say "growpart $disk $partnum failed: $out"
		return 1
	fi
	resize2fs "$source" >/dev/null 2>&1 || {
		say "resize2fs $source failed"
		return 1
	}
	say "root filesystem is $(df --output=size -h / | tail -n 1 | tr -d ' ') on $source"
}

commit_machine_id() {
	# The image ships an empty /etc/machine-id: systemd generated a random one for this
	# boot; make it permanent (systemd-machine-id-commit does the same on a read-only root).
	if [[ ! -s /etc/machine-id ]] || mountpoint -q /etc/machine-id; then
		systemd-machine-id-setup --commit >/dev/null
	fi
	say "machine-id $(cat /etc/machine-id)"
}

ssh_host_keys() {
	ssh-keygen -A >/dev/null
	local key
	for key in /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_rsa_key.pub; do
		[[ -e $key ]] && say "ssh host key $(ssh-keygen -l -f "$key")"
	done
	return 0
}

set_hostname() {
	local name=${1:-pillarbox}
	echo "$name" >/etc/hostname
	hostname "$name"
	if grep -q '^127\.0\.1\.1' /etc/hosts; then
		sed -i "s/^127\.0\.1\.1.*/127.0.1.1\t$name/" /etc/hosts
	else
		printf '127.0.1.1\t%s\n' "$name" >>/etc/hosts
	fi
	say "host name $name (http://$name.local once avahi is up)"
}

find_seed() {
	# A seed file lets a box be provisioned headless (and lets the boot test create its
	# mail user): pillarbox-seed.toml at the root of a FAT/ext4 filesystem labelled
	# PBSEED, or on the firmware/EFI partition. It is read only when present.
	local dev
	dev=$(blkid --label PBSEED 2>/dev/null || true)
	if [[ -n $dev ]]; then
		local mnt
		mnt=$(mktemp -d)
		if mount -o ro "$dev" "$mnt"; then
			if [[ -f $mnt/pillarbox-seed.toml ]]; then
				install -m 0600 "$mnt/pillarbox-seed.toml" /run/pillarbox-seed.toml
			fi
			umount "$mnt"
		fi
		rmdir "$mnt"
	fi
	local candidate
	for candidate in /boot/firmware/pillarbox-seed.toml /boot/efi/pillarbox-seed.toml; do
		if [[ ! -e /run/pillarbox-seed.toml && -f $candidate ]]; then
			install -m 0600 "$candidate" /run/pillarbox-seed.toml
			# It may hold passwords: the readable FAT partition keeps no copy.
			rm -f "$candidate"
		fi
	done
	[[ -e /run/pillarbox-seed.toml ]]
}

show_secret() {
	local secret errors
	errors=$(mktemp)
	if ! secret=$(runuser -u pillarbox-web -- /opt/pillarbox/bin/pillarbox setup-secret \
		--config "$CONFIG" 2>"$errors"); then
		if grep -q "is set up" "$errors"; then
			# The seed file made an admin: the wizard is closed, there is no secret to show.
			rm -f "$errors"
			mkdir -p /etc/issue.d
			cat >"$ISSUE" <<-EOF
				Pillarbox mail appliance - \4 - \n
				  Dashboard:      http://\n.local/  or  http://\4/

			EOF
			say "set up by the seed file: no setup secret; dashboard at http://$(hostname).local/"
			return 0
		fi
		say "could not create the setup secret (pillarbox setup-secret failed: $(head -c 300 "$errors"))"
		rm -f "$errors"
		return 1
	fi
	rm -f "$errors"
	mkdir -p /etc/issue.d
	cat >"$ISSUE" <<-EOF
		Pillarbox mail appliance - \4 - \n
		  Setup wizard:   http://\n.local/  or  http://\4/
		  Setup secret:   $secret

	EOF
	say "setup wizard at http://$(hostname).local/ - setup secret: $secret"
	# Also straight onto every console: the getty may already have drawn its prompt.
	local tty
	for tty in /dev/console /dev/tty1; do
		[[ -w $tty ]] && printf '\nPillarbox setup secret: %s\n' "$secret" >"$tty" 2>/dev/null
	done
	return 0
}

main() {
	if [[ -e $MARKER ]]; then
		say "already done"
		return 0
	fi
	say "starting"
	grow_root
	commit_machine_id
	ssh_host_keys

	local seed_args=() seed_hostname=""
	if find_seed; then
		say "seed file found"
		seed_args=(--seed /run/pillarbox-seed.toml)
		seed_hostname=$("$PYTHON" "$LIBDIR/firstboot_config.py" --seed /run/pillarbox-seed.toml \
			--print-hostname)
	fi
	set_hostname "$seed_hostname"

	install -d -m 2775 -o root -g pillarbox /etc/pillarbox
	install -d -m 2770 -o pillarbox -g pillarbox "$STATE"
	"$PYTHON" "$LIBDIR/firstboot_config.py" --config "$CONFIG" "${seed_args[@]}"
	rm -f /run/pillarbox-seed.toml
	# Everything the config module and the accounts database created belongs to the
	# daemon; the web UI reaches it through the shared pillarbox group.
	chown -R pillarbox:pillarbox "$STATE"
	chmod -R g+rwX,o-rwx "$STATE"
	chmod 0640 "$STATE/tls/key.pem"
	chown root:pillarbox "$CONFIG"
	chmod 0660 "$CONFIG"
	# Privilege separation: accounts.sqlite to pillarbox-web (the daemon reads it),
	# the directory root-owned and sticky.
	"$PYTHON" "$LIBDIR/state_perms.py"
	# Roundcube's directory belongs to the webmail service alone (tmpfiles.conf), not to
	# the daemon like the rest; pillarbox-webmail.service fills it on its first start.
	chown pillarbox-webmail:pillarbox-webmail "$STATE/webmail"
	chmod 0750 "$STATE/webmail"

	show_secret || true
	mkdir -p "$(dirname "$MARKER")"
	date --utc +%FT%TZ >"$MARKER"
	sync
	say "done"
}

main "$@"
