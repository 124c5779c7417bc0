"""The stream invariant under load: many concurrent senders, many syncing
receivers, and every receiver sees every message exactly once, in one global
order that is the same for all of them."""

import asyncio
from urllib.parse import quote

from ..support.client import MATRIX
from ..support.sync_steps import assert_each_once_in_one_order, long_polls_waiting, sync_until

SENDERS = 6
RECEIVERS = 6
MESSAGES_PER_SENDER = 40


async def test_concurrent_senders_and_receivers_see_each_message_once_in_one_order(api, server):
    owner = await api.register("owner")
    room_id = (
        await api.request(
            "POST",
            f"{MATRIX}/createRoom",
            {"preset": "public_chat"},
            token=owner["access_token"],
            schema="matrix/createRoom.response",
        )
    )["room_id"]
    senders = [await api.register(f"sender{i}") for i in range(SENDERS)]
    receivers = [await api.register(f"receiver{i}") for i in range(RECEIVERS)]
    for user in senders + receivers:
        await api.request(
            "POST", f"{MATRIX}/join/{quote(room_id)}", token=user["access_token"], schema="matrix/join.response"
        )

    total = SENDERS * MESSAGES_PER_SENDER
    receiving = [asyncio.ensure_future(sync_until(api, r["access_token"], room_id, total)) for r in receivers]
    await long_polls_waiting(server, RECEIVERS)  # the receivers are in their long-polls

    async def send_all(index, user):
        ids = []
        for n in range(MESSAGES_PER_SENDER):
            response = await api.request(
                "PUT",
                f"{MATRIX}/rooms/{quote(room_id)}/send/m.room.message/t{n}",
                {"msgtype": "m.text", "body": f"{index}-{n}"},
                token=user["access_token"],
                schema="matrix/event_id.response",
            )
            ids.append(response["event_id"])
        return ids

    sent = await asyncio.gather(*(send_all(i, u) for i, u in enumerate(senders)))
    received = await asyncio.gather(*receiving)

    reference = assert_each_once_in_one_order(sent, received, total)

    # History agrees with what sync delivered.
    history = await api.request(
        "GET",
        f"{MATRIX}/rooms/{quote(room_id)}/messages?dir=f&limit=1000",
        token=receivers[0]["access_token"],
        schema="matrix/messages.response",
    )
    assert [e["event_id"] for e in history["chunk"] if e["type"] == "m.room.message"] == reference
