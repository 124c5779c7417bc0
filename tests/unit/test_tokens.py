"""Stream tokens (sync/tokens.py): history tokens reach backfilled history
at negative positions; sync tokens never go below the stream's start."""

from __future__ import annotations

import pytest

from atomchat_server.errors import MatrixError
from atomchat_server.sync import tokens


@pytest.mark.parametrize("position", [0, 1, 41, -1, -42, 10**18 - 1, -(10**18) + 1])
def test_a_history_token_names_its_position(position):
    assert tokens.parse(tokens.make(position)) == position


def test_a_sync_token_carries_its_typing_mark():
    assert tokens.parse_sync(tokens.make_sync(7, "0a1b2c.3")) == (7, "0a1b2c.3")
    assert tokens.parse_sync("s7") == (7, None)


@pytest.mark.parametrize("token", ["s-1", "s-42_0a1b2c.3"])
def test_a_sync_token_is_never_negative(token):
    with pytest.raises(MatrixError) as refused:
        tokens.parse_sync(token)
    assert refused.value.status == 400


@pytest.mark.parametrize("token", ["", "s", "s-", "s--1", "s+1", "-1", "s1-", "s" + "9" * 19, "s-" + "9" * 19])
def test_a_malformed_token_is_refused(token):
    with pytest.raises(MatrixError):
        tokens.parse(token)
