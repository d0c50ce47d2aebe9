"""MIME parsing for IMAP: one streaming pass per message at delivery (see summary.py)."""
