"""The web client (atomchat_server/web/), served by the server and driven in
a real Chromium by Playwright: two people in two browser contexts sign up,
make a room, invite and chat live; history, scrolling back, a moderator's
lock, the long-poll fallback and a server restart under an open page. The
system's Chromium is used (never a downloaded browser). Screenshots of the
main screens are saved under the test's temporary directory; the figures
(first-load bytes, send-to-display latency) are printed."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright, expect
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.testing import bind_unused_port

from atomchat_server import config
from atomchat_server.api.web import CSP, WEB_ROOT, WebFiles
from atomchat_server.app import AtomChat, http_server
from atomchat_server.config import ConfigError

from ..support.client import DEFAULT_PASSWORD, MATRIX, ApiClient, path_param
from ..support.servers import RunningServer, truncate_all

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=360, height=740)
WAIT_MS = 15000

pytestmark = pytest.mark.timeout(300)
expect.set_options(timeout=WAIT_MS)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def person(browser: Browser, base_url: str, viewport: ViewportSize = DESKTOP) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport=viewport)
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    await page.goto(base_url + "/")
    return context, page


async def sign_up(page: Page, name: str) -> None:
    await page.get_by_role("button", name="Create an account").click()
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.locator("#me")).to_have_text(f"@{name}:test.local")


async def sign_in(page: Page, name: str) -> None:
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#me")).to_have_text(f"@{name}:test.local")


async def send(page: Page, text: str) -> None:
    await page.locator("#composer").fill(text)
    await page.locator("#composer").press("Enter")


def message(page: Page, text: str):
    return page.locator("#timeline .msg .body", has_text=text)


async def session_token(page: Page) -> str:
    return await page.evaluate("JSON.parse(localStorage.getItem('atomchat.session')).access_token")


async def shot(page: Page, folder: Path, name: str) -> None:
    folder.mkdir(exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"))


FIRST_LOAD_BYTES = """() => {
    const [nav] = performance.getEntriesByType("navigation");
    return performance.getEntriesByType("resource").reduce((sum, entry) => sum + entry.transferSize,
                                                           nav.transferSize);
}"""

# Resolves with the time (ms since the epoch, sub-millisecond) at which a
# message with the given text is in the timeline.
WAIT_FOR_TEXT = """(text) => new Promise((resolve) => {
    const found = () => [...document.querySelectorAll("#timeline .msg .body")]
        .some((node) => node.textContent === text);
    if (found()) { resolve(performance.timeOrigin + performance.now()); return; }
    const observer = new MutationObserver(() => {
        if (found()) { observer.disconnect(); resolve(performance.timeOrigin + performance.now()); }
    });
    observer.observe(document.getElementById("timeline"), {childList: true, subtree: true});
})"""

SEND_NOW = """(text) => {
    const box = document.getElementById("composer");
    box.value = text;
    const sent = performance.timeOrigin + performance.now();
    document.getElementById("composer-form").requestSubmit();
    return sent;
}"""


async def latency_ms(sender: Page, receiver: Page, text: str) -> float:
    """Time from the sender's submit to the message showing in the receiver's timeline."""
    arrived = asyncio.ensure_future(receiver.evaluate(WAIT_FOR_TEXT, text))
    await asyncio.sleep(0)  # kept: one turn of the loop, no wait: the receiver's watch starts first
    sent = await sender.evaluate(SEND_NOW, text)
    return float(await asyncio.wait_for(arrived, WAIT_MS / 1000)) - float(sent)


async def create_room(page: Page, name: str) -> None:
    await page.locator("#new-room").click()
    await page.get_by_label("Room name").fill(name)
    await page.locator("#create-room").click()
    await expect(page.locator("#room-title")).to_have_text(name)


async def invite(page: Page, name: str) -> None:
    await page.locator("#invite").click()
    await page.get_by_label("Find people by name").fill(name)
    await page.locator(f'#user-results button[data-user="@{name}:test.local"]').click()
    await expect(page.get_by_role("alert").filter(has_text=f"Invited @{name}:test.local")).to_be_visible()


async def test_two_people_sign_up_invite_and_chat_live(server, api, tmp_path):
    shots = tmp_path / "screenshots"
    async with chromium() as browser:
        _, alice = await person(browser, server.base_url)
        first_load = await alice.evaluate(FIRST_LOAD_BYTES)
        await shot(alice, shots, "sign-in")
        _, bob = await person(browser, server.base_url, PHONE)
        await sign_up(alice, "alice")
        await sign_up(bob, "bob")

        await create_room(alice, "Tea")
        await invite(alice, "bob")
        invitation = bob.locator("#room-list .room-item", has_text="Tea")
        await expect(invitation).to_contain_text("Invitation from @alice:test.local")
        await invitation.click()
        await shot(bob, shots, "invitation-phone")
        await bob.locator("#accept-invite").click()
        await expect(bob.locator("#composer")).to_be_visible()

        await send(alice, "hello bob")
        await expect(message(bob, "hello bob")).to_be_visible()
        await send(bob, "hi alice")
        await expect(message(alice, "hi alice")).to_be_visible()
        # One's own message: shown at once, then sent.
        own = alice.locator("#timeline .msg.mine", has_text="hello bob")
        await expect(own.locator(".pending-label")).to_have_count(0)

        latencies = [await latency_ms(alice if i % 2 else bob, bob if i % 2 else alice, f"ping {i}") for i in range(24)]
        median = statistics.median(latencies)
        print(
            f"\nweb client: first load {first_load} bytes; send-to-display latency over {len(latencies)} "
            f"messages: median {median:.1f} ms, max {max(latencies):.1f} ms"
        )
        assert 0 < first_load < 200_000
        assert median < 250, latencies
        await shot(alice, shots, "room-desktop")
        await shot(bob, shots, "room-phone")

        # History: after a reload everything is there, once, in order.
        await bob.reload()
        await expect(message(bob, "ping 23")).to_be_visible()
        bodies = await bob.locator("#timeline .msg .body").all_text_contents()
        assert bodies[-3:] == ["ping 21", "ping 22", "ping 23"]

        # Scrolling back through 200 more messages, sent meanwhile.
        token = await session_token(alice)
        room_id = await alice.evaluate("decodeURIComponent(location.hash.slice(6))")
        for i in range(200):
            await api.request(
                "PUT",
                f"{MATRIX}/rooms/{path_param(room_id)}/send/m.room.message/h{i}",
                {"msgtype": "m.text", "body": f"history {i}"},
                token=token,
                schema="matrix/event_id.response",
            )
        await bob.reload()
        await expect(message(bob, "history 199")).to_be_visible()
        timeline = bob.locator("#timeline")
        for _ in range(40):
            if await timeline.locator(".start").count():
                break
            await timeline.evaluate("node => { node.scrollTop = 0; node.dispatchEvent(new Event('scroll')); }")
            await bob.wait_for_timeout(150)
        await expect(timeline.locator(".start")).to_be_visible()
        bodies = await bob.locator("#timeline .msg .body").all_text_contents()
        history = [body for body in bodies if body.startswith("history ")]
        assert history == [f"history {i}" for i in range(200)]
        assert bodies[:2] == ["hello bob", "hi alice"]
        pings = [body for body in bodies if body.startswith("ping ")]
        assert pings == [f"ping {i}" for i in range(24)]

        # A moderator locks bob from the console: bob is signed out and told why.
        await api.register("mod")
        await server.atomchat.ctx.moderation.set_moderator(None, "@mod:test.local", True)
        _, mod = await person(browser, server.base_url)
        await sign_in(mod, "mod")
        await mod.locator("#open-console").click()
        await mod.get_by_role("tab", name="Users").click()
        row = mod.locator('#console-users tr[data-user="@bob:test.local"]')
        await row.get_by_label("Reason for @bob:test.local").fill("spam")
        await row.get_by_role("button", name="Lock").click()
        await expect(row.locator(".state")).to_have_text("locked")
        await expect(bob.locator("#signed-out")).to_have_text(
            "Your account has been locked by a moderator. You have been signed out."
        )
        await shot(bob, shots, "locked-phone")
        await mod.get_by_role("tab", name="Audit log").click()
        await expect(mod.locator("#console-audit")).to_contain_text("locked @bob:test.local")
        await expect(mod.locator("#console-audit")).to_contain_text("spam")
        await mod.get_by_role("tab", name="Rooms").click()
        await mod.locator("#console-rooms button", has_text="Tea").click()
        await expect(mod.locator("#console-messages")).to_contain_text("history 199")
        await shot(mod, shots, "console")
        assert await bob.evaluate("localStorage.getItem('atomchat.session')") is None
    print(f"screenshots: {shots}")


def room_item(page: Page, name: str):
    """The room list's entry of the room called ``name``."""
    return page.locator("#room-list .room-item").filter(has=page.locator(".room-name").get_by_text(name, exact=True))


def accept_dialogs(page: Page) -> None:
    """Answers "OK" to the page's confirm() questions (deleting, leaving)."""
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))


async def test_edits_deletions_typing_receipts_settings_and_direct_messages(server, api, tmp_path):
    alice_token = (await api.register("alice"))["access_token"]
    await api.register("bob")
    await api.register("carol")
    room = (
        await api.request(
            "POST",
            f"{MATRIX}/createRoom",
            {"name": "Den", "invite": ["@bob:test.local"]},
            token=alice_token,
            schema="matrix/createRoom.response",
        )
    )["room_id"]
    async with chromium() as browser:
        _, alice = await person(browser, server.base_url)
        _, bob = await person(browser, server.base_url)
        for page, name in ((alice, "alice"), (bob, "bob")):
            accept_dialogs(page)
            await sign_in(page, name)
            await page.locator("#room-list .room-item", has_text="Den").click()
        await bob.locator("#accept-invite").click()
        await expect(alice.locator("#timeline")).to_contain_text("bob joined")
        await expect(bob.locator("#composer")).to_be_visible()

        await bob.locator("#composer").press_sequentially("first")
        await expect(alice.locator("#typing")).to_have_text("bob is typing…")
        await bob.locator("#composer").fill("first draft")
        await bob.locator("#composer").press("Enter")
        await expect(message(alice, "first draft")).to_be_visible()
        await expect(alice.locator("#typing")).to_have_text("")

        await bob.locator("#timeline .msg", has_text="first draft").get_by_role("button", name="Edit").click()
        await bob.get_by_label("Message", exact=True).last.fill("final text")
        await bob.get_by_role("button", name="Save").click()
        edited = alice.locator("#timeline .msg", has_text="final text")
        await expect(edited.locator(".edited")).to_have_text("(edited)")
        await expect(message(alice, "first draft")).to_have_count(0)
        await bob.locator("#timeline .msg", has_text="final text").get_by_role("button", name="Delete").click()
        await expect(alice.locator("#timeline .msg .body.deleted")).to_have_text("Message deleted")

        await send(alice, "read me")
        await expect(message(bob, "read me")).to_be_visible()
        await expect(alice.locator("#seen")).to_have_text("Seen by bob")

        # Room settings: alice (admin) renames the room and sets a topic, then removes bob.
        await alice.locator("#settings").click()
        await alice.get_by_label("Name", exact=True).fill("Den 2")
        await alice.get_by_label("Topic", exact=True).fill("cosy")
        await alice.get_by_role("button", name="Save").click()
        await expect(bob.locator("#room-title")).to_have_text("Den 2")
        await expect(bob.locator("#room-topic")).to_have_text("cosy")
        member = alice.locator(".members li", has_text="@bob:test.local")
        await expect(member).to_contain_text("member · power 0")
        await shot(alice, tmp_path / "screenshots", "settings")
        await alice.get_by_role("button", name="Close").click()
        await bob.locator("#settings").click()
        await expect(bob.get_by_label("Name", exact=True)).to_be_disabled()
        await expect(bob.locator(".members li", has_text="@alice:test.local")).to_contain_text("admin · power 100")
        await expect(bob.locator(".members button")).to_have_count(0)
        await bob.get_by_role("button", name="Close").click()

        # A direct conversation: bob finds alice by name; she accepts; unread counts show in the list.
        await bob.locator("#new-dm").click()
        await bob.get_by_label("Find a person by name").fill("alic")
        await bob.locator('#user-results button[data-user="@alice:test.local"]').click()
        await expect(bob.locator("#room-title")).to_have_text("alice")
        await send(bob, "psst")
        direct = alice.locator("#room-list .room-item", has_text="Invitation from @bob:test.local")
        await direct.click()
        await alice.locator("#accept-invite").click()
        await expect(message(alice, "psst")).to_be_visible()
        await bob.locator("#room-list .room-item", has_text="Den 2").click()
        await send(alice, "are you there?")
        await expect(room_item(bob, "alice").locator(".badge")).to_have_text("1")
        await room_item(bob, "alice").click()
        await expect(message(bob, "are you there?")).to_be_visible()
        await expect(room_item(bob, "alice").locator(".badge")).to_have_count(0)

        # alice kicks bob from Den 2; it leaves his list.
        await alice.locator("#room-list .room-item", has_text="Den 2").click()
        await alice.locator("#settings").click()
        await alice.locator(".members li", has_text="@bob:test.local").get_by_role("button", name="Kick").click()
        await expect(bob.locator("#room-list .room-item", has_text="Den 2")).to_have_count(0)
        await alice.get_by_role("button", name="Close").click()

        # carol declines an invitation, then leaves a room she joined.
        await api.request(
            "POST",
            f"{MATRIX}/rooms/{path_param(room)}/invite",
            {"user_id": "@carol:test.local"},
            token=alice_token,
            schema="matrix/empty.response",
        )
        _, carol = await person(browser, server.base_url)
        accept_dialogs(carol)
        await sign_in(carol, "carol")
        await carol.locator("#room-list .room-item", has_text="Den 2").click()
        await carol.locator("#decline-invite").click()
        await expect(carol.locator("#room-list .room-item")).to_have_count(0)
        await expect(alice.locator("#timeline")).to_contain_text("carol left")


@pytest.mark.settings(access_token_lifetime_seconds=2)
async def test_a_page_stays_signed_in_as_its_token_is_refreshed(server, api):
    await api.register("bob")
    async with chromium() as browser:
        _, alice = await person(browser, server.base_url)
        await sign_up(alice, "alice")
        first = await session_token(alice)
        await create_room(alice, "Loft")
        await alice.wait_for_timeout(4500)  # past two lifetimes of the token
        assert await session_token(alice) != first
        await send(alice, "still here")
        await expect(alice.locator("#timeline .msg", has_text="still here").locator(".pending-label")).to_have_count(0)
        await alice.reload()
        await expect(message(alice, "still here")).to_be_visible()
        await expect(alice.locator(".connection")).to_have_text("Online")
        await invite(alice, "bob")
        _, bob = await person(browser, server.base_url)
        await sign_in(bob, "bob")
        await bob.locator("#room-list .room-item", has_text="Loft").click()
        await bob.locator("#accept-invite").click()
        await alice.wait_for_timeout(2500)
        await send(bob, "hello after a refresh")
        await expect(message(alice, "hello after a refresh")).to_be_visible()


async def serve(settings, dsn: str, passwords, port: int, sock=None) -> RunningServer:
    """A server on 127.0.0.1:port (on ``sock`` when given), as conftest.start_server makes one."""
    atomchat = AtomChat(settings, dsn, passwords=passwords)
    http = http_server(await atomchat.start(), settings)
    if sock is not None:
        http.add_sockets([sock])
    else:
        http.listen(port, "127.0.0.1")
    return RunningServer(atomchat, f"http://127.0.0.1:{port}", http)


async def test_pages_show_offline_and_resume_after_a_server_restart(database_dsn, settings, test_passwords):
    """Alice reads the stream, Bob long-polls /sync (the fallback); the server
    stops under both pages and starts again on the same port."""
    await truncate_all(database_dsn)
    sock, port = bind_unused_port()
    running: RunningServer | None = await serve(settings, database_dsn, test_passwords, port, sock)
    try:
        api = ApiClient(running.base_url)
        alice_id = (await api.register("alice"))["user_id"]
        bob_token = (await api.register("bob"))["access_token"]
        alice_token = (await api.login(alice_id))["access_token"]
        room = (
            await api.request(
                "POST",
                f"{MATRIX}/createRoom",
                {"name": "Porch", "invite": ["@bob:test.local"]},
                token=alice_token,
                schema="matrix/createRoom.response",
            )
        )["room_id"]
        await api.request(
            "POST", f"{MATRIX}/join/{path_param(room)}", {}, token=bob_token, schema="matrix/join.response"
        )
        async with chromium() as browser:
            _, alice = await person(browser, running.base_url)
            _, bob = await person(browser, running.base_url + "/?transport=poll")
            for page, name in ((alice, "alice"), (bob, "bob")):
                await sign_in(page, name)
                await page.locator("#room-list .room-item", has_text="Porch").click()
            await send(alice, "before restart")
            await expect(message(bob, "before restart")).to_be_visible()

            await running.stop()
            running = None
            for page in (alice, bob):
                await expect(page.locator("#status")).to_have_text("Offline: reconnecting…")
                await expect(page.locator(".connection")).to_have_text("Offline")
            await send(alice, "while offline")
            await expect(alice.locator("#timeline .msg", has_text="while offline")).to_contain_text("Sending…")
            await alice.screenshot(path=str(Path(settings.data_dir).parent / "offline.png"))

            running = await serve(settings, database_dsn, test_passwords, port)
            for page in (alice, bob):
                await expect(page.locator("#status")).to_be_hidden()
                await expect(page.locator(".connection")).to_have_text("Online")
            await expect(message(bob, "while offline")).to_be_visible()
            await expect(
                alice.locator("#timeline .msg", has_text="while offline").locator(".pending-label")
            ).to_have_count(0)
            await send(bob, "after restart")
            await expect(message(alice, "after restart")).to_be_visible()
            for page in (alice, bob):
                bodies = await page.locator("#timeline .msg .body").all_text_contents()
                assert bodies == ["before restart", "while offline", "after restart"]
    finally:
        if running is not None:
            await running.stop()


async def test_sign_in_errors_say_what_is_wrong(server, api):
    await api.register("alice")
    await api.register("mod")
    await server.atomchat.ctx.moderation.set_moderator(None, "@mod:test.local", True)
    async with chromium() as browser:
        _, page = await person(browser, server.base_url)
        await page.get_by_role("button", name="Create an account").click()
        await page.get_by_label("Username").fill("alice")
        await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("#auth-error")).to_have_text("That name is taken. Choose another one.")
        # Keyboard only: the form's fields and button come in order.
        await page.get_by_label("Username").focus()
        order = []
        for _ in range(3):
            order.append(await page.evaluate("document.activeElement.id || document.activeElement.textContent"))
            await page.keyboard.press("Tab")
        assert order == ["username", "password", "Create account"]

        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Username").fill("alice")
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#auth-error")).to_have_text("Wrong username or password.")

        mod_token = (await api.login("mod"))["access_token"]
        await api.request(
            "PUT",
            "/_atomchat/admin/v1/users/@alice:test.local/lock",
            {"locked": True},
            token=mod_token,
            schema="admin/lock.response",
        )
        await page.get_by_label("Password").fill(DEFAULT_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#auth-error")).to_have_text("This account is locked by a moderator.")


# -- how the files are served ----------------------------------------------------


async def fetch(url: str, method: str = "GET"):
    request = HTTPRequest(
        url,
        method=method,
        follow_redirects=False,
        allow_nonstandard_methods=True,
        body=b"" if method == "POST" else None,
    )
    return await AsyncHTTPClient().fetch(request, raise_error=False)


def asset_version(page: bytes, base: str) -> str:
    match = re.search(rb'src="' + re.escape(base.encode()) + rb'assets/([0-9a-f]{16})/main\.js"', page)
    assert match, page
    return match.group(1).decode()


def assert_error(response, status: int, errcode: str) -> None:
    assert response.code == status
    assert json.loads(response.body)["errcode"] == errcode


async def test_the_page_is_never_cached_and_its_files_are_cached_by_version(server):
    page = await fetch(server.base_url + "/")
    assert page.code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    assert page.headers["Content-Security-Policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "<script>" not in page.body.decode() and " style=" not in page.body.decode()
    assert (page.headers["X-Content-Type-Options"], page.headers["X-Frame-Options"]) == ("nosniff", "DENY")
    version = asset_version(page.body, "/")
    assert version == WebFiles.load().version

    for name, kind in (
        ("main.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ):
        asset = await fetch(f"{server.base_url}/assets/{version}/{name}")
        assert asset.code == 200, name
        assert asset.headers["Content-Type"] == kind
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers["Content-Security-Policy"] == CSP
        assert asset.body == (WEB_ROOT / name).read_bytes()
    head = await fetch(server.base_url + "/", "HEAD")
    assert (head.code, head.body, head.headers["Content-Length"]) == (200, b"", str(len(page.body)))

    # Another version, a file that is not there, a path that leaves the folder: 404 in JSON.
    assert_error(await fetch(f"{server.base_url}/assets/0123456789abcdef/main.js"), 404, "M_NOT_FOUND")
    assert_error(await fetch(f"{server.base_url}/assets/{version}/nothing.js"), 404, "M_NOT_FOUND")
    assert_error(await fetch(f"{server.base_url}/assets/{version}/../web.py"), 404, "M_NOT_FOUND")
    assert_error(await fetch(f"{server.base_url}/assets/{version}/%2e%2e/index.html"), 404, "M_UNRECOGNIZED")
    assert_error(await fetch(server.base_url + "/", "POST"), 405, "M_UNRECOGNIZED")


@pytest.mark.settings(web_client_enabled=False)
async def test_the_web_client_can_be_turned_off(server):
    assert_error(await fetch(server.base_url + "/"), 404, "M_UNRECOGNIZED")
    assert_error(await fetch(f"{server.base_url}/assets/{WebFiles.load().version}/main.js"), 404, "M_UNRECOGNIZED")


@pytest.mark.settings(web_client_path="/chat/")
async def test_the_web_client_can_live_under_another_path(server):
    page = await fetch(server.base_url + "/chat/")
    assert page.code == 200
    version = asset_version(page.body, "/chat/")
    assert (await fetch(f"{server.base_url}/chat/assets/{version}/main.js")).code == 200
    bare = await fetch(server.base_url + "/chat")
    assert (bare.code, bare.headers["Location"]) == (302, "/chat/")
    assert_error(await fetch(server.base_url + "/"), 404, "M_UNRECOGNIZED")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/", "/"),
        ("/chat", "/chat/"),
        ("/team/chat/", "/team/chat/"),
        ("chat/", None),
        ("/_matrix/", None),
        ("/api/web/", None),
        ("/a b/", None),
        ("/../", None),
        ("/_atomchat/x/", None),
    ],
)
def test_the_web_client_path_setting(value, expected):
    if expected is None:
        with pytest.raises(ConfigError, match="web_client_path"):
            config.load({"web_client_path": value}, environ={})
    else:
        assert config.load({}, environ={"ATOMCHAT_WEB_CLIENT_PATH": value}).web_client_path == expected
    assert config.load({}, environ={"ATOMCHAT_WEB_CLIENT_ENABLED": "no"}).web_client_enabled is False
