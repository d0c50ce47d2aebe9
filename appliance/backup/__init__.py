"""Backups and restores with restic (Debian package ``restic``) as the engine.

Targets (``[backup]`` in pillarbox.toml): ``local`` (a directory, e.g. a USB disk mount),
``sftp`` (key-based ssh, ``user@host:/path``) and ``s3`` (any S3-compatible service;
the secret key lives in a file). The repository password is generated on ``init``
(140 bits), kept 0600 under ``<data_dir>/backup/`` and shown once plus on a printable
recovery sheet until an admin confirms it is stored.

Modules:
  restic.py      typed driver for the restic binary (argv lists, --json progress, cancel)
  password.py    generating and keeping the repository password; recovery sheet state
  initialize.py  ``restic init`` with a new password, or connecting with a typed one (DR)
  staging.py     the tree a snapshot is made of (accounts via SQLite's backup API, Maildirs
                 under the store's locks with their index, config, DKIM, TLS, queue, Sieve)
  store_lock.py  holding a user's MaildirStore locks (tree + every mailbox) while staging
  runner.py      one run: stage, back up, forget --prune; status.json; the run lock
  restore.py     whole-box disaster recovery; one user's mail into Restored/<date>/
  schedule.py    when the next daily run is due (catch-up after downtime)
  service.py     the daemon service: ctl commands and the dev-mode scheduler
  cli.py         ``pillarbox backup init|run|list|status|check|restore``

Restore policy for a single user: never overwrite or merge. Backed-up messages are
appended through the live store to ``Restored/<snapshot date>/<mailbox>`` with their
flags (except \\Deleted) and internal dates; live mail is left exactly as it is.
"""
