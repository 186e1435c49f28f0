"""The status page in a real headless Chromium (Debian's, driven by Playwright): live state, login, copy."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from cluster_kit import running_cluster
from merged_kit import names_of
from pins_kit import drifted
from playwright.sync_api import Browser, Page, expect, sync_playwright

from harness import fixture_server, mcp_client, running_proxy

CHROMIUM = os.environ.get("MCPMUX_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "admin-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A missing browser is a failure, never a skip: scripts/test installs Debian's chromium.
    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def whoami_pid(url: str, token: str | None) -> int:
    """The upstream's pid, asked through the proxy from another thread (Playwright owns this one)."""

    async def ask() -> int:
        with anyio.fail_after(20):
            async with mcp_client(url, token=token) as session:
                result = await session.call_tool("whoami", {})
                return int(result.structured_content["pid"])

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, ask).result()


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Show status").click()


def status_config(**proxy: Any) -> dict[str, Any]:
    server = {**fixture_server(), "options": {"restart": {"initialDelay": "1s"}}}
    return {
        "mcpProxy": {"name": "statustest", "type": "streamable-http", **proxy},
        "mcpServers": {"fx": server},
        "mcpGroups": {"team": {"servers": ["fx"]}},
    }


def test_status_page_shows_a_server_going_down_and_coming_back_ready(
    tmp_path: Path, browser: Browser
) -> None:
    config = status_config(options={"authTokens": [TOKEN]})
    with running_proxy(config, tmp_path) as proxy:
        page = browser.new_page()
        page.goto(proxy.url("/_status"))
        sign_in(page, TOKEN)
        card = page.locator('article[data-server="fx"]')
        state = card.locator('[data-field="state"]')
        expect(state).to_have_text("ready")
        expect(card.locator('[data-field="transport"]')).to_have_text("stdio")
        expect(card.locator('[data-field="restarts"]')).to_have_text("0")
        expect(card.locator('[data-field="mcp"]')).to_have_text(proxy.url("/fx/mcp"))
        expect(card.locator('[data-field="sse"]')).to_have_text(proxy.url("/fx/sse"))
        expect(card.locator(".tools li", has_text="echo").first).to_be_attached()
        expect(page.locator('#routes tr[data-route="team"]')).to_contain_text("fx")
        page.evaluate(
            """() => {
                const el = document.querySelector('article[data-server="fx"] [data-field="state"]');
                window.shownStates = [];
                new MutationObserver(() => window.shownStates.push(el.textContent))
                    .observe(el, {childList: true, characterData: true, subtree: true});
            }"""
        )

        os.kill(whoami_pid(proxy.url("/fx/mcp"), TOKEN), signal.SIGKILL)

        page.wait_for_function("() => window.shownStates.some((s) => s !== 'ready')", timeout=15_000)
        expect(state).to_have_text("ready", timeout=20_000)
        expect(card.locator('[data-field="restarts"]')).to_have_text("1")
        shown = page.evaluate("window.shownStates")
        assert shown[-1] == "ready"
        assert set(shown[:-1]) <= {"restarting", "connecting", "failed"}, shown
        expect(page.locator("#announcer")).to_have_text("fx is ready")


def test_copy_button_puts_the_servers_client_config_on_the_clipboard_as_json(
    tmp_path: Path, browser: Browser
) -> None:
    with running_proxy(status_config(), tmp_path) as proxy:
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.goto(proxy.url("/_status"))
        card = page.locator('article[data-server="fx"]')
        card.get_by_role("button", name="Copy client config for fx").click()
        expect(card.locator(".copy-status")).to_have_text("Copied to the clipboard")
        copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
        assert copied == {"mcpServers": {"fx": {"type": "http", "url": proxy.url("/fx/mcp")}}}

        page.locator('#routes tr[data-route="team"]').get_by_role("button").click()
        copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
        assert copied == {"mcpServers": {"team": {"type": "http", "url": proxy.url("/team/mcp")}}}
        context.close()


def test_status_data_needs_a_default_token_and_the_page_asks_for_one(
    tmp_path: Path, browser: Browser
) -> None:
    with running_proxy(status_config(options={"authTokens": [TOKEN]}), tmp_path) as proxy:
        shell = httpx2.get(proxy.url("/_status"))
        assert shell.status_code == 200 and "fx" not in shell.text  # the shell holds no data
        assert httpx2.get(proxy.url("/_status/api")).status_code == 401
        page = browser.new_page()
        page.goto(proxy.url("/_status"))
        expect(page.get_by_label("Access token")).to_be_focused()
        sign_in(page, "wrong")
        expect(page.locator("#login-error")).to_have_text("That token was not accepted.")
        expect(page.locator('article[data-server="fx"]')).to_have_count(0)
        page.get_by_label("Access token").fill(TOKEN)
        page.keyboard.press("Enter")
        expect(page.locator('article[data-server="fx"] [data-field="state"]')).to_have_text("ready")
        expect(page.locator("#login")).to_be_hidden()
        api = httpx2.get(proxy.url("/_status/api"), headers={"Authorization": f"Bearer {TOKEN}"})
        copied = api.json()["servers"][0]["clientConfig"]["mcpServers"]["fx"]
        assert copied["headers"] == {"Authorization": f"Bearer {TOKEN}"}


def test_the_first_view_is_rendered_on_the_server_and_readable_without_javascript(
    tmp_path: Path, browser: Browser
) -> None:
    with running_proxy(status_config(), tmp_path) as proxy:  # loopback, no token anywhere: open
        fetched = httpx2.get(proxy.url("/_status"))
        assert fetched.status_code == 200 and "Loading" not in fetched.text
        assert (
            'data-server="fx"' in fetched.text
            and ">ready<" in fetched.text
            and "<code>echo</code>" in fetched.text
        )
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(proxy.url("/_status"))
        card = page.locator('article[data-server="fx"]')
        expect(card.locator('[data-field="state"]')).to_have_text("ready")
        expect(card.locator('[data-field="mcp"]')).to_have_text(proxy.url("/fx/mcp"))
        expect(page.locator('#routes tr[data-route="team"]')).to_contain_text("fx")
        expect(page.locator("#login")).to_be_hidden()
        context.close()


def test_before_sign_in_nothing_but_the_form_shows_and_the_form_works_without_javascript(
    tmp_path: Path, browser: Browser
) -> None:
    with running_proxy(status_config(options={"authTokens": [TOKEN]}), tmp_path) as proxy:
        with_header = httpx2.get(proxy.url("/_status"), headers={"Authorization": f"Bearer {TOKEN}"})
        assert 'data-server="fx"' in with_header.text  # a no-JS client sending the token gets the data
        for javascript in (True, False):
            context = browser.new_context(java_script_enabled=javascript)
            page = context.new_page()
            page.goto(proxy.url("/_status"))
            expect(page.get_by_label("Access token")).to_be_visible()
            for hidden in ("#servers-section", "#routes-section", "a.skip"):
                expect(page.locator(hidden)).to_be_hidden()
            expect(page.locator('article[data-server="fx"]')).to_have_count(0)
            sign_in(page, "wrong")
            expect(page.locator("#login-error")).to_have_text("That token was not accepted.")
            expect(page.locator("#servers-section")).to_be_hidden()
            page.get_by_label("Access token").fill(TOKEN)
            page.keyboard.press("Enter")
            expect(page.locator('article[data-server="fx"] [data-field="state"]')).to_have_text("ready")
            expect(page.locator("#login")).to_be_hidden()
            expect(page.locator("#servers-section")).to_be_visible()
            context.close()


def test_without_operator_tokens_on_a_non_loopback_listener_the_page_says_why_it_shows_nothing(
    tmp_path: Path,
) -> None:
    with running_proxy(status_config(addr=":9090"), tmp_path) as proxy:
        fetched = httpx2.get(proxy.url("/_status"))
        assert fetched.status_code == 200 and "mcpProxy.operatorTokens" in fetched.text
        assert 'data-server="fx"' not in fetched.text
        assert httpx2.get(proxy.url("/_status/api")).status_code == 403


def test_a_failing_stdio_servers_last_stderr_lines_show_on_the_page(tmp_path: Path, browser: Browser) -> None:
    crash = "import sys; sys.stderr.write('ModuleNotFoundError: No module named missing_dep\\n'); sys.exit(1)"
    config = status_config()
    config["mcpServers"]["broken"] = {"command": sys.executable, "args": ["-c", crash]}
    with running_proxy(config, tmp_path) as proxy:
        fetched = httpx2.get(proxy.url("/_status"))
        assert "Recent stderr" in fetched.text and "No module named missing_dep" in fetched.text
        page = browser.new_page()
        page.goto(proxy.url("/_status"))
        card = page.locator('article[data-server="broken"]:not([data-ssr])')
        expect(card.locator('[data-field="stderr"]')).to_contain_text("No module named missing_dep")
        expect(page.locator('article[data-server="fx"]:not([data-ssr]) .stderr')).to_be_hidden()


def listed_tools(url: str, token: str | None) -> set[str]:
    """The tools a client of `url` is offered, asked from another thread (Playwright owns this one)."""

    async def ask() -> set[str]:
        with anyio.fail_after(20):
            async with mcp_client(url, token=token) as session:
                return set(await names_of(session))

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, ask).result()


def pinned_page(url: str) -> str:
    """The page as a no-JS client sending the token gets it, once pinning has checked the catalog."""
    text = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = httpx2.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).text
        if 'data-name="search"' in text:
            break
        time.sleep(0.05)  # polling pace, bounded by the deadline
    return text


def test_pending_pin_changes_show_as_a_diff_and_approving_on_the_page_lists_the_tool(
    tmp_path: Path, browser: Browser
) -> None:
    # docs was pinned at V1 and now publishes V2: search and fetch changed, delete renamed remove, upload new
    document = drifted(tmp_path, "enforce", options={"authTokens": [TOKEN]})
    with running_proxy(document, tmp_path) as proxy:
        fetched = pinned_page(proxy.url("/_status"))
        assert '<section class="pins" aria-label="Pending pin changes of docs">' in fetched
        for name, what in [
            ("search", "changed: description"),
            ("fetch", "changed: inputSchema"),
            ("remove", "new (not in the lock file)"),
            ("upload", "new (not in the lock file)"),
            ("delete", "removed"),
        ]:
            assert f'data-name="{name}">' in fetched and f'<span class="pin-what">{what}</span>' in fetched
        assert "<code>count</code>" in fetched and "<code>search</code> <span" in fetched
        assert listed_tools(proxy.url("/docs/mcp"), TOKEN) == {"count"}

        # Without JavaScript: sign in with the form, then the Approve form of one tool
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(proxy.url("/_status"))
        sign_in(page, TOKEN)
        pins = page.get_by_label("Pending pin changes of docs")
        expect(pins.locator('li[data-name="fetch"]')).to_contain_text("changed: inputSchema")
        pins.get_by_role("button", name="Approve tool fetch of docs").click()
        expect(page.locator("#connection")).to_contain_text("Approved tool 'fetch' of 'docs'")
        expect(pins.locator('li[data-name="fetch"]')).to_have_count(0)
        expect(page.locator('article[data-server="docs"] .tools li', has_text="fetch")).to_have_count(1)
        context.close()
        assert listed_tools(proxy.url("/docs/mcp"), TOKEN) == {"count", "fetch"}

        # With JavaScript: the live page shows the diff and its Approve buttons POST to /_pins/approve
        page = browser.new_page()
        page.goto(proxy.url("/_status"))
        sign_in(page, TOKEN)
        pins = page.get_by_label("Pending pin changes of docs")
        expect(pins.locator('li[data-name="search"]')).to_contain_text("search changed: description")
        tools = page.locator('article[data-server="docs"] .tools li')
        expect(tools.filter(has_text="search")).to_have_count(0)
        pins.get_by_role("button", name="Approve tool search of docs").click()
        expect(tools.filter(has_text="search")).to_have_count(1, timeout=15_000)
        expect(pins.locator('li[data-name="search"]')).to_have_count(0)
        expect(page.locator("#announcer")).to_have_text("Approved search of docs")
        assert listed_tools(proxy.url("/docs/mcp"), TOKEN) == {"count", "fetch", "search"}

        pins.get_by_role("button", name="Approve all changes of docs").click()
        expect(pins).to_be_hidden(timeout=15_000)  # nothing pending: no panel
        expect(tools.filter(has_text="upload")).to_have_count(1)
        page.close()
        assert listed_tools(proxy.url("/docs/mcp"), TOKEN) == {"count", "fetch", "search", "remove", "upload"}
        refused = httpx2.post(proxy.url("/_status"), data={"token": "wrong", "approve": "docs"})
        assert refused.status_code == 401 and "Approved" not in refused.text


def test_an_open_page_shows_pending_pin_changes_but_cannot_approve_them(tmp_path: Path) -> None:
    with running_proxy(drifted(tmp_path, "enforce"), tmp_path) as proxy:  # loopback, no token: open
        fetched = pinned_page(proxy.url("/_status"))
        assert 'data-name="upload"' in fetched and "Approve" not in fetched
        posted = httpx2.post(proxy.url("/_status"), data={"token": "", "approve": "docs"})
        assert "Approved" not in posted.text
        assert listed_tools(proxy.url("/docs/mcp"), None) == {"count"}


def signed_in_cluster_view(page: Page, url: str) -> Any:
    """The page's "Cluster replicas" section: hidden before signing in, then listing both replicas."""
    page.goto(url)
    section = page.locator("#cluster-section")
    expect(section).to_be_hidden()  # nothing before signing in
    sign_in(page, "tok-a")
    expect(section).to_be_visible()
    expect(section.locator("tbody tr")).to_have_count(2)
    return section


def test_in_cluster_mode_an_operator_sees_every_replica_on_the_status_page(
    tmp_path: Path, browser: Browser
) -> None:
    with running_cluster(tmp_path, 2) as (_url, _balancer, replicas):
        page = browser.new_page()
        section = signed_in_cluster_view(page, replicas[0].url("/_status"))
        expect(section.locator("tbody th", has_text="(this replica)")).to_have_count(1)
        expect(section.locator("tbody tr").first).to_contain_text("127.0.0.1")
        expect(section.locator("tbody td", has_text=re.compile("^ready$"))).to_have_count(2, timeout=15_000)
        page.close()

        # Without JavaScript: the replica renders the same view itself
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        section = signed_in_cluster_view(page, replicas[1].url("/_status"))
        this = section.locator("tbody tr", has=page.locator("th", has_text="(this replica)"))
        expect(this).to_have_count(1)
        expect(this).to_contain_text(replicas[1].base)
        expect(this).to_contain_text(re.compile(r"\d+(\.\d)?s ago"))
        context.close()
        # each replica's health comes from its heartbeat: ready once its servers are (bounded poll)
        deadline, text = time.monotonic() + 30, ""
        while text.count("<td>ready</td>") != 2:
            assert time.monotonic() < deadline, text
            time.sleep(0.2)  # polling pace, bounded by the deadline
            auth = {"authorization": "Bearer tok-a"}
            text = httpx2.get(replicas[1].url("/_status"), headers=auth).text
        assert text.count("(this replica)") == 1


def test_without_cluster_mode_the_page_has_no_cluster_view(tmp_path: Path, browser: Browser) -> None:
    with running_proxy(status_config(options={"authTokens": [TOKEN]}), tmp_path) as proxy:
        page = browser.new_page()
        page.goto(proxy.url("/_status"))
        sign_in(page, TOKEN)
        expect(page.locator('article[data-server="fx"] [data-field="state"]')).to_have_text("ready")
        assert page.locator("body").get_attribute("data-cluster") == ""
        expect(page.locator("#cluster-section")).to_be_hidden()
