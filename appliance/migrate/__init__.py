"""Moving in and out: import mail from another IMAP server, an mbox or a Maildir, and
export a user's mail as Maildir or mbox (issue 24).

Every write goes through the MailStore API. Where an import runs:

* inside the daemon, as a job started over the ctl socket (``migrate_*`` commands,
  :mod:`appliance.migrate.service`): the web UI (unprivileged on the appliance) and the
  CLI use this whenever the daemon runs, so IMAP IDLE clients see new mail at once
  (the daemon's store publishes MailboxChanged);
* in the CLI process itself when no daemon answers: the CLI runs as the mail user and
  the store's file locks (flock, :mod:`appliance.store.locking`) keep it safe.

The engine (:mod:`.engine`, :mod:`.files`) is blocking code over a MailStore and is the
same in both places.
"""
