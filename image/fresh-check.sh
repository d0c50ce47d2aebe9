#!/usr/bin/env bash
# `make fresh-check`: the README's two commands on a fresh Debian 12, so a missing install
# step fails here and not on a user's machine.
#
# 1. A minimal Debian 12 tree (mmdebstrap --variant=minbase) with only what README.md says
#    a user brings: make, python3, git (to clone) and ca-certificates. The tree is cached
#    as a tarball in image/build/cache/ (rebuilt when older than a week or when the
#    package list below changes); every run unpacks a new copy of it.
# 2. `git clone` of this repository's committed HEAD into the tree's /srv/pillarbox
#    (uncommitted changes are not checked). Not /root (0700): as root the suite drops to
#    nobody (setpriv) to check the root helper refuses it, running the checkout's venv
#    python and firmware-hooks/root_helper.py, which nobody must be able to reach.
# 3. Inside the tree, as root, in its own PID and mount namespace (unshare; every process
#    a test starts there, daemons included, dies with it and every mount goes with the
#    namespace): `make run` until the "running" banner appears, then `make test`.
#
# Downloaded .deb files and pip wheels are cached between runs (image/build/cache/); the
# installs themselves always happen. The network is the host's (apt and PyPI are needed);
# `make run` uses the fixed dev ports (README.md), which must be free on the host.
# Services never start at package install in the tree (policy-rc.d), as in a container.
#
# Lives in image/ because it shares the image build's machinery: mmdebstrap (listed in
# image/apt-packages.txt), the Debian mirror settings and image/build/ for caches.
#
# Environment: PILLARBOX_MIRROR, PILLARBOX_SECURITY_MIRROR (as image/build.sh),
# FRESH_KEEP=1 keeps the tree (image/build/fresh/root) for a look after a failure,
# FRESH_RUN_TIMEOUT (seconds to the banner, default 900), FRESH_TEST_TIMEOUT (default 2700),
# FRESH_PYTEST_ARGS (passed as PYTEST_ARGS to `make test` inside), FRESH_ONLY_RUN=1 stops
# after the `make run` part (a quick check of the first command), FRESH_WORK (work
# directory, default image/build/fresh).
set -euo pipefail

IMAGE_DIR=$(cd "$(dirname "$0")" && pwd)
readonly IMAGE_DIR
REPO=$(dirname "$IMAGE_DIR")
readonly REPO
readonly OUT=$IMAGE_DIR/build
readonly CACHE=$OUT/cache
readonly WORK=${FRESH_WORK:-$OUT/fresh}
readonly ROOT=$WORK/root
readonly SUITE=bookworm
readonly MIRROR=${PILLARBOX_MIRROR:-http://deb.debian.org/debian}
readonly SECURITY_MIRROR=${PILLARBOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What README.md "Two commands" asks of a machine, plus git to clone and the CA bundle.
readonly BASE_PACKAGES=make,python3,git,ca-certificates
readonly RUN_TIMEOUT=${FRESH_RUN_TIMEOUT:-900}
readonly TEST_TIMEOUT=${FRESH_TEST_TIMEOUT:-2700}
readonly BANNER='Pillarbox is running'

log() {
	printf '%s fresh-check: %s\n' "$(date +%T)" "$*" >&2
}

ensure_tools() {
	local missing=() pkg
	for pkg in mmdebstrap util-linux git; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$pkg")
	done
	if ((${#missing[@]})); then
		log "installing host tools: ${missing[*]}"
		apt-get -o DPkg::Lock::Timeout=600 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
			--no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# The cached base tree: rebuilt when missing, older than 7 days or for another package list.
base_tarball() {
	local tarball=$CACHE/fresh-$SUITE-$(dpkg --print-architecture).tar
	local stamp=$tarball.packages
	if [[ -s $tarball && -f $stamp && $(cat "$stamp") == "$BASE_PACKAGES" ]] &&
		[[ -z $(find "$tarball" -mtime +7) ]]; then
		log "base tree: cached $tarball"
		echo "$tarball"
		return 0
	fi
	log "base tree: mmdebstrap $SUITE minbase + $BASE_PACKAGES"
	mkdir -p "$CACHE"
	rm -rf "$tarball" "$stamp" "$tarball.tmp"
	mmdebstrap --mode=root --variant=minbase --format=tar --include="$BASE_PACKAGES" \
		--aptopt='Acquire::Retries "5"' \
		"$SUITE" "$tarball.tmp" \
		"deb $MIRROR $SUITE main" \
		"deb $MIRROR $SUITE-updates main" \
		"deb $SECURITY_MIRROR $SUITE-security main" >&2
	mv "$tarball.tmp" "$tarball"
	echo "$BASE_PACKAGES" >"$stamp"
	echo "$tarball"
}

INNER_PID=""

cleanup() {
	local rc=$?
	if [[ -n $INNER_PID ]]; then
		kill -TERM "$INNER_PID" 2>/dev/null || true
		wait "$INNER_PID" 2>/dev/null || true
	fi
	# The namespace took its mounts with it; these catch a namespace that never started.
	local m
	for m in dev/shm dev/pts dev sys proc root/.cache/pip var/cache/apt/archives; do
		if mountpoint -q "$ROOT/$m" 2>/dev/null; then
			umount -l "$ROOT/$m" || true
		fi
	done
	if [[ ${FRESH_KEEP:-0} != 1 && -d $ROOT ]]; then
		rm -rf --one-file-system "$ROOT"
	fi
	if ((rc == 0)); then
		log "PASSED"
	else
		log "FAILED (exit $rc); logs in $WORK/"
	fi
	exit "$rc"
}

prepare_tree() {
	local tarball=$1
	rm -rf --one-file-system "$ROOT"
	mkdir -p "$ROOT" "$CACHE/apt-archives/partial" "$CACHE/pip"
	tar -C "$ROOT" -xf "$tarball"
	# As in a container: package installs do not start services in the tree.
	printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
	chmod 755 "$ROOT/usr/sbin/policy-rc.d"
	cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
	# Every installed machine (and container) has these; mmdebstrap leaves them out.
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
		>"$ROOT/etc/hosts"
	echo fresh-check >"$ROOT/etc/hostname"
	trust_host_cas
	local head
	head=$(git -C "$REPO" rev-parse HEAD)
	log "cloning $REPO at $head"
	git clone --quiet --no-hardlinks "$REPO" "$ROOT/srv/pillarbox"
	git -C "$ROOT/srv/pillarbox" -c advice.detachedHead=false checkout --quiet "$head"
}

# The host's network, not an install step: a TLS-intercepting proxy's CA that the host
# trusts (in its system bundle) is trusted in the tree too, and pip uses the system bundle
# (Debian's pip 23 in a new venv would use its own certifi copy).
trust_host_cas() {
	local bundle=/etc/ssl/certs/ca-certificates.crt added
	[[ -f $bundle ]] || return 0
	added=$(python3 - "$bundle" "$ROOT$bundle" "$ROOT/usr/local/share/ca-certificates" <<-'EOF'
		import pathlib, re, sys
		pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
		host = pem.findall(pathlib.Path(sys.argv[1]).read_text())
		tree = set(pem.findall(pathlib.Path(sys.argv[2]).read_text()))
		out = pathlib.Path(sys.argv[3])
		new = [c for c in host if c not in tree]
		for i, cert in enumerate(new):
		    (out / f"host-{i}.crt").write_text(cert + "\n")
		print(len(new))
	EOF
	)
	if ((added)); then
		log "trusting $added CA certificate(s) of the host in the tree"
		chroot "$ROOT" update-ca-certificates >/dev/null 2>&1
	fi
	printf '[global]\ncert = %s\n' "$bundle" >"$ROOT/etc/pip.conf"
}

# The script run inside the namespaces (PID 1 of the new PID namespace is unshare's child).
inner_script() {
	cat <<-'EOF'
		set -euo pipefail
		root=$1; cache=$2; run_timeout=$3; test_timeout=$4; banner=$5; pytest_args=$6
		only_run=$7
		mount --make-rprivate /
		mount -t proc proc "$root/proc"
		mount -t sysfs sysfs "$root/sys"
		mount -t tmpfs -o mode=755 tmpfs "$root/dev"
		for d in null zero full random urandom tty; do
			touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"
		done
		mkdir -p "$root/dev/pts" "$root/dev/shm"
		mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts"
		ln -s pts/ptmx "$root/dev/ptmx"
		mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
		ln -s /proc/self/fd "$root/dev/fd"
		mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
		mkdir -p "$root/root/.cache/pip"
		mount --bind "$cache/pip" "$root/root/.cache/pip"
		echo "== make run (until '$banner')"
		# Its own process group, so the stop below is what Ctrl-C in a terminal does.
		setsid chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			DEBIAN_FRONTEND=noninteractive /bin/bash -c 'cd /srv/pillarbox && exec make run' \
			>"$root/../run.log" 2>&1 </dev/null &
		run_pid=$!
		deadline=$((SECONDS + run_timeout))
		until grep -q "$banner" "$root/../run.log"; do
			if ! kill -0 "$run_pid" 2>/dev/null; then
				echo "make run exited before its banner:"; tail -n 40 "$root/../run.log"; exit 1
			fi
			if ((SECONDS > deadline)); then
				echo "no banner after ${run_timeout}s:"; tail -n 40 "$root/../run.log"; exit 1
			fi
			sleep 1
		done
		sleep 1
		grep -A12 "$banner" "$root/../run.log" | head -n 14
		echo "== make run: banner after $SECONDS s; Ctrl-C"
		kill -INT -- "-$run_pid" 2>/dev/null || true
		stopped=0
		for _ in $(seq 30); do
			kill -0 "$run_pid" 2>/dev/null || { stopped=1; break; }
			sleep 1
		done
		((stopped)) || { echo "make run still running 30 s after Ctrl-C"; exit 1; }
		# /proc is this PID namespace's own (unshare --mount-proc); nothing in the tree may
		# be left behind (the web process included): it would hold the dev ports.
		for pid in $(ls /proc | grep -E '^[0-9]+$'); do
			[[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$root" ]] || continue
			echo "left behind by make run: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
			exit 1
		done
		if grep -n -E 'Traceback|Warning|WARNING' "$root/../run.log"; then
			echo "make run printed a warning or a traceback (above)"; exit 1
		fi
		if [[ $only_run == 1 ]]; then
			echo "== FRESH_ONLY_RUN=1: not running make test"
			exit 0
		fi
		echo "== make test"
		start=$SECONDS
		timeout --signal=TERM --kill-after=60 "$test_timeout" \
			chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			DEBIAN_FRONTEND=noninteractive PYTEST_ARGS="$pytest_args" \
			/bin/bash -c 'cd /srv/pillarbox && make test'
		echo "== make test passed in $((SECONDS - start)) s"
	EOF
}

main() {
	if [[ $(id -u) != 0 ]]; then
		echo "$0: run as root (mmdebstrap --mode=root, chroot)" >&2
		exit 1
	fi
	ensure_tools
	mkdir -p "$WORK"
	local tarball
	tarball=$(base_tarball)
	trap cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	prepare_tree "$tarball"
	log "make run, then make test, inside the tree (log: $WORK/check.log)"
	# --kill-child: when unshare ends (or is killed, below) its child, PID 1 of the new
	# namespace, is killed, and with it every process started inside (daemons included);
	# the mount namespace and its mounts go too.
	unshare --mount --pid --fork --kill-child --mount-proc --propagation private \
		/bin/bash -c "$(inner_script)" inner "$ROOT" "$CACHE" "$RUN_TIMEOUT" \
		"$TEST_TIMEOUT" "$BANNER" "${FRESH_PYTEST_ARGS:-}" "${FRESH_ONLY_RUN:-0}" > >(tee "$WORK/check.log") 2>&1 &
	INNER_PID=$!
	local rc=0
	wait "$INNER_PID" || rc=$?
	INNER_PID=""
	return "$rc"
}

main "$@"
