"""Pure rules for usernames and passwords, shared by every API surface."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from functools import lru_cache

MIN_PASSWORD_LENGTH = 8
# The spec caps a whole user id at 255 bytes; this leaves room for the server name.
MAX_LOCALPART_LENGTH = 64
# Matrix user id localparts (client-server spec, "User Identifiers").
_MATRIX_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+$")


class PolicyViolation(ValueError):
    """A username or password breaks a rule; the message is for the user."""


def check_matrix_localpart(localpart: str) -> None:
    if not localpart:
        raise PolicyViolation("The username must not be empty")
    if len(localpart) > MAX_LOCALPART_LENGTH:
        raise PolicyViolation(f"The username may have at most {MAX_LOCALPART_LENGTH} characters")
    if not _MATRIX_LOCALPART.match(localpart):
        raise PolicyViolation("The username may contain only a-z, 0-9 and the characters . _ = - / +")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    # zxcvbn ships a frequency-ranked list of 30,000 leaked passwords.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, username: str) -> list[str]:
    """Every reason the password is too weak, as messages; empty when it is fine."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"This password is too short. It must contain at least {MIN_PASSWORD_LENGTH} characters.")
    if password.lower() in common_passwords():
        problems.append("This password is too common.")
    if password.isdigit():
        problems.append("This password is entirely numeric.")
    if username and _too_similar(password.lower(), username.lower()):
        problems.append("The password is too similar to the username.")
    return problems


def _too_similar(password: str, username: str) -> bool:
    matcher = SequenceMatcher(a=password, b=username)
    return matcher.quick_ratio() >= 0.7 and matcher.ratio() >= 0.7
