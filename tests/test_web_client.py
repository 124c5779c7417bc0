"""The web client (atomchat_server/web/), served by the server and driven in
a real Chromium by Playwright: two people in two browser contexts sign up,
make a room, invite and chat live; history, scrolling back, a moderator's
lock, the long-poll fallback and a server restart under an open page. The
system's Chromium is used (never a downloaded browser). Screenshots of the
main screens are saved under the test's temporary directory; the figures
(first-load bytes, send-to-display latency) are printed."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.testing import bind_unused_port

from atomchat_server.app import AtomChat, http_server

from .client import DEFAULT_PASSWORD, MATRIX, ApiClient, path_param
from .conftest import RunningServer, truncate_all

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
WAIT_MS = 15000

pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
              pytest.mark.timeout(300)]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def person(browser: Browser, base_url: str, viewport: dict[str, int] = DESKTOP) -> tuple[BrowserContext, Page]:
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
    const found = () => [...document.querySelectorAll("#timeline .msg .body")].some((node) => node.textContent === text);
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
    await asyncio.sleep(0)
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
        await expect(alice.locator("#timeline .msg.mine", has_text="hello bob").locator(".pending-label")).to_have_count(0)

        latencies = [await latency_ms(alice if i % 2 else bob, bob if i % 2 else alice, f"ping {i}")
                     for i in range(24)]
        median = statistics.median(latencies)
        print(f"\nweb client: first load {first_load} bytes; send-to-display latency over {len(latencies)} "
              f"messages: median {median:.1f} ms, max {max(latencies):.1f} ms")
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
            await api.request("PUT", f"{MATRIX}/rooms/{path_param(room_id)}/send/m.room.message/h{i}",
                              {"msgtype": "m.text", "body": f"history {i}"}, token=token,
                              schema="matrix/event_id.response")
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
            "Your account has been locked by a moderator. You have been signed out.")
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
