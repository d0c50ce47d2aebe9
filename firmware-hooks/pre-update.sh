#!/usr/bin/env bash
# Pillarbox pre-update: run by the root helper before it replaces software (apt upgrade
# or a new wheel in /opt/pillarbox). Stops the mail daemon so it drains: SIGTERM makes it
# stop accepting, finish the sessions and deliveries in flight, then exit. Mail that
# arrives meanwhile is retried by the sending servers (SMTP 4xx/connection refused).
set -euo pipefail

readonly FLAG=/run/pillarbox-update-in-progress

echo "pillarbox-update: draining the mail daemon"
date --utc +%FT%TZ >"$FLAG"
systemctl stop pillarbox.service
systemctl stop pillarbox-backup.timer pillarbox-backup.service
sync
echo "pillarbox-update: ready for the update"
