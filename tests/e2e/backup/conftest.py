from __future__ import annotations

from tests.e2e.backup.backup_box import new_box

__all__ = ["new_box"]
