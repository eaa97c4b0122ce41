"""The web console in headless Debian Chromium (selenium + chromedriver): log in with the
token, see a live SMB session held by impacket, press Delete, and the session is gone
from the page, from the API, and for the client."""

from __future__ import annotations

import contextlib
import json
import urllib.request

import pytest
from impacket.smbconnection import SessionError, SMBConnection

from .conftest import require_binary, require_module

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

TOKEN = "console-test-token"
STATUS_USER_SESSION_DELETED = 0xC0000203
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage")


@pytest.fixture
def browser(tmp_path):
    chromium = require_binary("chromium")
    chromedriver = require_binary("chromedriver")
    require_module("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def api_sessions(emu):
    request = urllib.request.Request(emu.admin_url + "/api/sessions",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def test_log_in_see_a_live_session_delete_it_and_it_is_gone(emulator, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # SMB2 (--no-smb1): the deleted session's next request is answered as SMB2 answers it.
    emu = emulator("xp-pro", args=("--admin-port", "0", "--admin-token", TOKEN,
                                   "--no-force-guest", "--no-smb1"))
    wait = WebDriverWait(browser, 20)
    conn = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
    conn.login("alice", emu.users["alice"])
    try:
        [session] = api_sessions(emu)
        browser.get(emu.admin_url + "/")
        # A wrong token is refused; the page says so and stays on the form.
        wait.until(ec.visibility_of_element_located((By.ID, "token"))).send_keys("wrong")
        browser.find_element(By.ID, "login-button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "login-error")))
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "login-button").click()

        row_selector = f'#sessions-smb tr[data-session-id="{session["id"]}"]'
        row = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, row_selector)))
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1:5] == ["alice", session["client"], "127.0.0.1", "active"]
        assert cells[6] == "0"  # opens
        limits = browser.find_element(By.CSS_SELECTOR, '#limits tr[data-protocol="smb"]')
        assert limits.text.split()[:3] == ["SMB", "1", "10"]
        wait.until(lambda d: "4624" in d.find_element(By.ID, "events").text)
        # The login is an HttpOnly cookie: the page's scripts cannot read it.
        assert browser.execute_script("return document.cookie") == ""

        row.find_element(By.CSS_SELECTOR, 'button[data-action="delete"]').click()
        wait.until(ec.alert_is_present()).accept()  # "Delete session N (alice ...)?"
        wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, row_selector)))
        assert api_sessions(emu) == []
        with pytest.raises(SessionError) as info:
            conn.listPath("docs", "*")
        assert info.value.getErrorCode() == STATUS_USER_SESSION_DELETED
        assert [e["outcome"] for e in emu.events(id=102)] == ["admin-delete"]
        wait.until(lambda d: "102" in d.find_element(By.ID, "events").text)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def test_a_labs_console_lists_its_hosts_and_opens_each(browser, tmp_path):
    """As Terminal Services Manager lists servers in its left pane: a lab's console shows
    its hosts, and the limits and sessions of the one picked."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from emulator.harness.hosts import ServerProcess

    (tmp_path / "lab.toml").write_text(
        'smb_port = 0\nnetbios_port = 0\nrdp_port = 0\nnbns_port = -1\n'
        f'admin_token = "{TOKEN}"\n[users]\nuser = "password"\n'
        '[[host]]\nname = "home"\naddress = "127.0.0.1"\nedition = "xp-home"\n'
        '[[host]]\nname = "pro"\naddress = "127.0.0.2"\nedition = "win10"\n')
    lab = ServerProcess(["lab", str(tmp_path / "lab.toml"), "--admin-port", "0"],
                        stderr_path=tmp_path / "stderr.log")
    try:
        home = dict(w.split("=", 1) for w in lab.host_lines[0].split()[1:])
        host, port = home["smb"].rsplit(":", 1)
        conn = SMBConnection(host, host, sess_port=int(port), timeout=20)
        conn.login("user", "password")
        from selenium.common.exceptions import StaleElementReferenceException

        # The console redraws a table it polls: an element read mid-redraw is stale; read
        # it again.
        wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
        browser.get(lab.listeners["admin"] + "/")
        wait.until(ec.visibility_of_element_located((By.ID, "token"))).send_keys(TOKEN)
        browser.find_element(By.ID, "login-button").click()
        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR,
                                                     'button[data-host="PRO"]')))
        names = [b.get_attribute("data-host")
                 for b in browser.find_elements(By.CSS_SELECTOR, "#host-list button")]
        assert names == ["HOME", "PRO"]
        smb_row = '#limits tr[data-protocol="smb"]'
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, smb_row).text.split()[:3]
                   == ["SMB", "1", "5"])  # HOME: xp-home, its one session
        browser.find_element(By.CSS_SELECTOR, 'button[data-host="PRO"]').click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, smb_row).text.split()[:3]
                   == ["SMB", "0", "20"])  # PRO: win10, nothing in use
        conn.close()
    finally:
        assert lab.stop() == []
