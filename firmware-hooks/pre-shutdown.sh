#!/usr/bin/env bash
# Pillarbox pre-shutdown: ExecStop of pillarbox-shutdown.service, which is ordered so that
# on poweroff/reboot it stops after the daemon and the web UI have drained and exited, and
# before the mail disk and the root filesystem are unmounted. Flushes everything to stable
# storage so that pulling the plug after the LED goes dark loses nothing.
set -euo pipefail

readonly MOUNT=/var/lib/pillarbox/mail

echo "pillarbox-shutdown: flushing mail, accounts and the journal"
if mountpoint -q "$MOUNT"; then
	sync -f "$MOUNT"
fi
sync -f /var/lib/pillarbox
journalctl --sync || true
journalctl --flush || true
sync
echo "pillarbox-shutdown: done"
