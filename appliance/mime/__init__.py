"""MIME parsing for IMAP: one streaming pass per message at delivery (see summary.py);
the DSN builder (dsn.py) for bounces and delay warnings."""
