"""Reporting over real HTTP: users report events they can see, rooms and
users; moderators list the reports newest first, in pages, and resolve or
dismiss them; everyone else is refused, and bad input changes nothing."""

from urllib.parse import urlencode

from ..support.client import path_param
from ..support.moderation_steps import admin, moderator_and
from ..support.room_steps import SERVER, room_of

EMPTY = "matrix/empty.response"


async def report_event(user, room_id, event_id, body, *, status=200):
    return await user.call("POST", f"/rooms/{room_id}/report/{path_param(event_id)}", body, status=status, schema=EMPTY)


async def report_room(user, room_id, body, *, status=200):
    return await user.call("POST", f"/rooms/{path_param(room_id)}/report", body, status=status, schema=EMPTY)


async def report_user(user, user_id, body, *, status=200):
    return await user.call("POST", f"/users/{path_param(user_id)}/report", body, status=status, schema=EMPTY)


async def reports(mod, **params):
    query = urlencode(params)
    return await admin(mod, "GET", "/reports" + (f"?{query}" if query else ""), schema="admin/reports.response")


async def test_reports_reach_the_moderators_who_handle_them(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await room_of(alice, bob)
    rude = await bob.say(room_id, "something rude")
    await report_event(alice, room_id, rude, {"reason": "rude", "score": -80})
    await report_room(alice, room_id, {"reason": "a bad room"})
    await report_user(alice, bob.user_id, {"reason": ""})

    listed = (await reports(mod))["reports"]
    assert [r["kind"] for r in listed] == ["user", "room", "event"]  # newest first
    user_report, room_report, event_report = listed
    assert event_report == {
        **event_report,
        "reporter": alice.user_id,
        "room_id": room_id,
        "event_id": rude,
        "user_id": bob.user_id,
        "reason": "rude",
        "score": -80,
        "status": "open",
    }
    assert event_report["event"]["content"]["body"] == "something rude"
    assert room_report == {**room_report, "room_id": room_id, "reason": "a bad room"}
    assert "event_id" not in room_report and "user_id" not in room_report
    assert user_report == {**user_report, "user_id": bob.user_id, "reason": ""}

    done = (
        await admin(
            mod,
            "PUT",
            f"/reports/{event_report['report_id']}",
            {"status": "resolved", "note": "warned"},
            schema="admin/report.response",
        )
    ).body
    assert done == {**done, "status": "resolved", "handled_by": mod.user_id, "note": "warned"}
    assert done["handled_ts"] >= done["received_ts"]
    await admin(
        mod, "PUT", f"/reports/{user_report['report_id']}", {"status": "dismissed"}, schema="admin/report.response"
    )
    assert [r["kind"] for r in (await reports(mod))["reports"]] == ["room"]  # open ones by default
    assert [r["kind"] for r in (await reports(mod, status="resolved"))["reports"]] == ["event"]
    assert [r["kind"] for r in (await reports(mod, status="all"))["reports"]] == ["user", "room", "event"]
    reopened = await admin(
        mod, "PUT", f"/reports/{event_report['report_id']}", {"status": "open"}, schema="admin/report.response"
    )
    assert "handled_by" not in reopened.body and reopened["status"] == "open"

    # A redacted event shows pruned in its report.
    await bob.redact(room_id, rude)
    fetched = await admin(mod, "GET", f"/reports/{event_report['report_id']}", schema="admin/report.response")
    assert fetched["event"]["content"] == {} and "redacted_because" in fetched["event"]["unsigned"]


async def test_reports_are_paged(server, api):
    mod, alice = await moderator_and(server, api, "alice")
    room_id = await alice.create_room()
    for n in range(7):
        await report_room(alice, room_id, {"reason": f"#{n}"})
    seen, start = [], None
    while True:
        page = await reports(mod, limit=3, **({"from": start} if start else {}))
        assert len(page["reports"]) <= 3
        seen += [r["reason"] for r in page["reports"]]
        start = page.get("next_from")
        if start is None:
            break
    assert seen == [f"#{n}" for n in reversed(range(7))]


async def test_only_what_the_reporter_can_see_may_be_reported(server, api):
    mod, alice, bob, eve = await moderator_and(server, api, "alice", "bob", "eve")
    room_id = await room_of(alice, bob)
    await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    secret = await alice.say(room_id, "before eve")
    # Eve is not in the room: the event is as unknown to her as a made-up one.
    for event_id in (secret, "$madeup"):
        answer = await report_event(eve, room_id, event_id, {"reason": "x"}, status=404)
        assert answer["errcode"] == "M_NOT_FOUND"
    await alice.invite(room_id, eve)
    await eve.join(room_id)
    await report_event(eve, room_id, secret, {"reason": "x"}, status=404)  # from before she joined
    later = await alice.say(room_id, "after eve")
    await report_event(eve, room_id, later, {"reason": "seen"})
    other = await alice.create_room()
    await report_event(alice, other, later, {"reason": "wrong room"}, status=404)
    await report_room(alice, f"!nowhere:{SERVER}", {"reason": "x"}, status=404)
    await report_room(alice, "not-a-room", {"reason": "x"}, status=404)
    await report_user(alice, f"@nobody:{SERVER}", {"reason": "x"}, status=404)
    assert (await report_user(alice, "nobody", {"reason": "x"}, status=400))["errcode"] == "M_INVALID_PARAM"
    assert [r["reason"] for r in (await reports(mod, status="all"))["reports"]] == ["seen"]


async def test_bad_reports_and_non_moderators_are_refused(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await room_of(alice, bob)
    said = await bob.say(room_id, "hello")
    for body in ({"reason": 5}, {"score": -101}, {"score": 1}, {"score": "low"}, {"reason": "x" * 2001}):
        assert (await report_event(alice, room_id, said, body, status=400))["errcode"] == "M_BAD_JSON"
    assert (await report_room(alice, room_id, {}, status=400))["errcode"] == "M_MISSING_PARAM"
    assert (await report_user(alice, bob.user_id, {}, status=400))["errcode"] == "M_MISSING_PARAM"
    await api.request("POST", f"/_matrix/client/v3/users/{path_param(bob.user_id)}/report", {"reason": "x"}, status=401)
    await report_event(alice, room_id, said, {})  # reason and score are optional for an event
    report_id = (await reports(mod))["reports"][0]["report_id"]

    for method, path, payload in (
        ("GET", "/reports", None),
        ("GET", f"/reports/{report_id}", None),
        ("PUT", f"/reports/{report_id}", {"status": "dismissed"}),
    ):
        answer = await admin(alice, method, path, payload, status=403)
        assert answer["errcode"] == "M_FORBIDDEN"
    for bad in ({"status": "gone"}, {}, {"status": "resolved", "extra": 1}):
        await admin(mod, "PUT", f"/reports/{report_id}", bad, status=400)
    for missing in ("999999", "abc", "-1"):
        assert (await admin(mod, "GET", f"/reports/{missing}", status=404))["errcode"] == "M_NOT_FOUND"
        await admin(mod, "PUT", f"/reports/{missing}", {"status": "resolved"}, status=404)
    for params in ({"status": "pending"}, {"from": "x"}, {"limit": "many"}):
        answer = await admin(mod, "GET", "/reports?" + urlencode(params), status=400)
        assert answer["errcode"] == "M_INVALID_PARAM"
    assert [(r["status"], r["reason"]) for r in (await reports(mod, status="all"))["reports"]] == [("open", "")]
