#!/usr/bin/env bash
# Pillarbox post-update: run by the root helper after the update. Picks up new unit files,
# users and directories, checks the config with the new code, restarts the services.
# Exits non-zero (and leaves the daemon stopped) when the new code rejects the config, so
# the caller can roll back instead of running a half-working box.
set -euo pipefail

readonly FLAG=/run/pillarbox-update-in-progress
readonly CONFIG=/etc/pillarbox/pillarbox.toml

systemctl daemon-reload
systemd-sysusers
systemd-tmpfiles --create
if ! runuser -u pillarbox -- /opt/pillarbox/bin/pillarbox config check --config "$CONFIG"; then
	echo "pillarbox-update: the updated daemon rejects $CONFIG; not starting it" >&2
	exit 1
fi
systemctl start pillarbox.service pillarbox-backup.timer
# The web UI may be the one that asked for the update: restart it without waiting.
systemctl --no-block restart pillarbox-web.service
# New Roundcube config from the new code; a no-op when webmail is off (ExecCondition).
systemctl --no-block restart pillarbox-webmail.service
rm -f "$FLAG"
for _ in $(seq 30); do
	if systemctl --quiet is-active pillarbox.service; then
		echo "pillarbox-update: daemon running again"
		exit 0
	fi
	sleep 1
done
echo "pillarbox-update: the daemon did not come back; see journalctl -u pillarbox" >&2
exit 1
