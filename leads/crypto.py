"""Encryption at rest for Meta tokens (Fernet: AES-128-CBC with HMAC-SHA256).

The key is TOKEN_ENCRYPTION_KEY when set (any string; it is stretched to a Fernet key),
else derived from SECRET_KEY. Several comma-separated keys may be given to rotate: the
first encrypts, all decrypt.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class TokenDecryptionError(Exception):
    """The stored ciphertext does not open with the configured keys."""


def _fernet_key(secret: str) -> bytes:
    # HKDF would do as well; a domain-separated SHA-256 keeps this dependency-free and
    # never equals the raw SECRET_KEY, so a leaked token key reveals nothing else.
    digest = hashlib.sha256(b"leadloop-token-encryption\x00" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k.strip())) for k in keys.split(",") if k.strip()])


def _current() -> MultiFernet:
    return _fernet(settings.TOKEN_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        # Never include the ciphertext or key in the message.
        raise TokenDecryptionError(
            "A stored token cannot be decrypted: TOKEN_ENCRYPTION_KEY or SECRET_KEY changed."
        ) from exc


def fingerprint(token: str) -> str:
    """A stable, non-reversible identifier of a token, safe to store and compare."""
    return hashlib.sha256(token.encode()).hexdigest() if token else ""
