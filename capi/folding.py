"""How text is folded before a normaliser reads it (capi.normalize) or a table of places
looks it up (capi.places): Unicode composed the same way, case and punctuation gone."""

from __future__ import annotations

import unicodedata


def as_text(value: object) -> str:
    """NFC text, trimmed. NFC so that `é` typed as e + combining accent hashes like `é`."""
    if not isinstance(value, str):
        return ""
    return unicodedata.normalize("NFC", value).strip()


def compact(text: str) -> str:
    """Lowercase letters only: no spaces, punctuation, symbols, digits or control
    characters. UTF-8 letters (and their combining marks) stay: Meta hashes `valéry`, not
    `valery`."""
    kept = [char for char in text.lower() if unicodedata.category(char)[0] in "LM"]
    # NFC again: dropping a character can leave combining marks that compose (or reorder)
    # anew.
    return unicodedata.normalize("NFC", "".join(kept))


def country_key(text: str) -> str:
    """Lowercase ASCII-folded letters and digits (`Côte d'Ivoire` -> `cotedivoire`): how
    names of countries, and of US states, are looked up."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c)[0] in "LN" and c.isalnum())
