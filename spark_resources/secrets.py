"""Provider credentials at rest: encrypted with Fernet (the `cryptography` package) under a key from the environment.

`SPARK_FERNET_KEY` holds the key in production (see .env.example). For the embedded, local setup only (no DATABASE_URL),
a key is generated once into `$SPARK_HOME/fernet.key` (mode 0600, in a directory only its owner can read) so the offline
demo needs no setup; a database given by DATABASE_URL never falls back to a file.

`Secret` wraps a decrypted value so it cannot end up in a log, an exception or Dagster metadata by accident: its str and
repr are masked, and the value is only read through `.reveal()` at the point of use (an HTTP header).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_VARIABLE = "SPARK_FERNET_KEY"


class SecretKeyError(RuntimeError):
    """No usable encryption key, or a ciphertext that this key cannot open."""


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _key(home: Path | None = None) -> bytes:
    configured = os.environ.get(KEY_VARIABLE)
    if configured:
        return configured.encode()
    if os.environ.get("DATABASE_URL"):
        raise SecretKeyError(
            f"{KEY_VARIABLE} is not set: generate one with "
            "`python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`"
        )
    from spark_resources.database import private_directory, spark_home

    path = (home or spark_home()) / "fernet.key"
    if not path.exists():
        private_directory(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


def encrypt(plaintext: str) -> str:
    try:
        return Fernet(_key()).encrypt(plaintext.encode()).decode()
    except ValueError:
        raise SecretKeyError(f"{KEY_VARIABLE} is not a valid Fernet key (32 url-safe base64 bytes)") from None


def decrypt(ciphertext: str) -> Secret:
    try:
        return Secret(Fernet(_key()).decrypt(ciphertext.encode()).decode())
    except InvalidToken:
        raise SecretKeyError(
            f"a stored credential cannot be decrypted with the current {KEY_VARIABLE}: was the key changed?"
        ) from None
    except ValueError:
        raise SecretKeyError(f"{KEY_VARIABLE} is not a valid Fernet key (32 url-safe base64 bytes)") from None
