"""The inbound PDU service: what becomes of the events other servers send.

For now no room here takes part in federation, so every PDU of a
transaction is answered with an error and nothing is stored; the checks
(signatures, hashes, auth rules) and persisting take this class's place.
"""

from __future__ import annotations

from typing import Any

from ..events.room_versions import V10
from ..events.signing import event_id


class FederationEvents:
    async def receive_pdus(self, origin: str, pdus: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The /send answer's "pdus" map: event id -> {} (accepted) or {"error": ...}."""
        return {event_id(pdu, V10): {"error": "this server is not in the room of this event"} for pdu in pdus}
