"""Secrets out of log lines: text that may embed credentials is masked before it is logged."""

from __future__ import annotations

import re

_URI_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/@\s]*@")


def mask_credentials(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` in it masked.

    >>> mask_credentials("registry http://ops:hunter2@mlflow:5000 down")
    'registry http://ops:***@mlflow:5000 down'
    """
    return _URI_PASSWORD.sub(r"\1***@", text)
