"""Typing notices, which live in one process's memory (notifier.TypingNotices)
with a position of their own.

The typers and the typing position are taken in one step, nothing awaited
between them: a notice changing while the rest of the answer is built is
then in the next answer, never in this one under a position that precedes
it (which made the next answer tell it again).
"""

from __future__ import annotations

from ..answer import Answer


async def provide(answer: Answer) -> None:
    """Steady rooms get the typers that changed after the client's typing
    position; rooms shown whole, everyone typing in them now."""
    notices = answer.typing
    answer.typing_at = notices.position
    typers = {
        **notices.changes(set(answer.steady), answer.typing_since),
        **notices.changes(set(answer.fresh), None),
    }
    for room_id, user_ids in typers.items():
        answer.ephemeral.setdefault(room_id, []).append({"type": "m.typing", "content": {"user_ids": user_ids}})
