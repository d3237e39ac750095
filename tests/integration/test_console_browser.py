"""The web console in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver, against a real 3-node cluster with real containers.

Signs in with the cluster's token (a wrong one is refused on the page), opens every view, sees a
task submitted through the Python client appear and run without a reload, and reads its logs
and the event feed live (or, on a node without those routes, sees them named unavailable).
A screenshot of each page goes to ``test-artifacts/console/`` (git-ignored) for a person to
look at; the browser's console must hold no errors (a Content-Security-Policy violation is one).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from orion.model import TaskState
from orion.testing.localcluster import LocalCluster
from tests.integration.conftest import IMAGE
from tests.integration.services_support import V1, published_port

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 60.0
GREETING = "hello from the console test"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium (installed by tools/docker_setup.py; missing is a failure, not a skip)."""
    assert shutil.which("chromium") or Path(CHROMIUM).exists(), "chromium missing: run tools/docker_setup.py"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> Path:
    page = driver.find_element(By.TAG_NAME, "body").text
    assert "[object" not in page and "undefined" not in page and "NaN" not in page, page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {name} not written"
    return path


def until(driver: WebDriver, what: str, condition: object) -> object:
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition, message=what)


def click(driver: WebDriver, by: str, value: str) -> None:
    """Click an element of a live view, finding it again if the view redrew it before the click."""

    def clicked(d: WebDriver) -> bool:
        try:
            d.find_element(by, value).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    until(driver, f"a clickable {value!r}", clicked)


def text_of(driver: WebDriver, css: str) -> str:
    try:
        return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
    except WebDriverException:  # the view was redrawn between find and read
        return ""


def served(cluster: LocalCluster, base: str, path: str) -> bool:
    """Whether the node has a route for ``path`` (not whether it has data there)."""
    request = urllib.request.Request(base + path, headers=cluster.auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as error:
        return not (error.code == 404 and json.loads(error.read())["error"].startswith("no route"))


def sign_in(driver: WebDriver, token: str) -> None:
    field = until(driver, "the token field", lambda d: d.find_element(By.ID, "token"))
    field.clear()
    field.send_keys(token)
    click(driver, By.CSS_SELECTOR, "#login-form button")


def test_console_pages_load_and_update_live_in_chromium(make_cluster, docker_engine, browser) -> None:
    cluster: LocalCluster = make_cluster(3)
    assert cluster.token, "the cluster is secured: the console must sign in"
    base = f"http://127.0.0.1:{cluster.nodes[0].http_port}"
    events_served = served(cluster, base, "/events?follow=0")
    with cluster.client() as client:
        port = published_port(cluster)
        client.create_service("web", V1, replicas=2, ports=[f"{port}:80"], memory="256MiB", cpu=0.25)
        leader = client.raft().leader_id

    browser.get(base + "/ui")
    until(browser, "the sign-in form", lambda d: d.find_element(By.ID, "login").is_displayed())
    sign_in(browser, "not-the-token")
    until(browser, "the refusal", lambda d: "token" in text_of(d, "#login-error").lower())
    shot(browser, "01-login-refused")

    sign_in(browser, cluster.token)
    until(browser, "the overview", lambda d: leader in text_of(d, "#overview-cards"))
    assert cluster.token not in browser.current_url
    assert browser.execute_script("return window.localStorage.length") == 0  # sessionStorage only
    until(browser, "3 members", lambda d: len(d.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 3)
    shot(browser, "02-overview")

    browser.get(base + "/ui#nodes")  # a new page load: the tab's session keeps the sign-in
    until(browser, "capacity bars", lambda d: len(d.find_elements(By.CSS_SELECTOR, ".bar .fill")) >= 3)
    assert all(node.node_id in text_of(browser, "main") for node in cluster.nodes)
    shot(browser, "03-nodes")

    browser.get(base + "/ui#services")
    until(browser, "the service running", lambda d: "2 / 2" in text_of(d, "main tbody"))
    shot(browser, "04-services")
    click(browser, By.LINK_TEXT, "web")
    until(browser, "the service's tasks", lambda d: text_of(d, "main tbody").count("web.") == 2)
    shot(browser, "05-service")

    browser.get(base + "/ui#tasks")
    until(browser, "the tasks table", lambda d: "web.1" in text_of(d, "main tbody"))
    with cluster.client() as client:  # submitted while the page is open: no reload follows
        command = ["sh", "-c", f"echo {GREETING}; sleep 3600"]
        task = client.submit(IMAGE, name="console-demo", command=command, memory="64MiB", cpu=0.5)
    row = f'tr[data-task="{task.id}"]'
    until(browser, "the new task in the table", lambda d: d.find_elements(By.CSS_SELECTOR, row))
    until(browser, "the task running", lambda d: TaskState.RUNNING.lower() in text_of(d, row).lower())
    shot(browser, "06-tasks")

    click(browser, By.CSS_SELECTOR, f"{row} a")
    until(browser, "the task's history", lambda d: "History" in text_of(d, "main h3"))
    logs_served = served(cluster, base, f"/tasks/{task.id}/logs")
    if logs_served:
        until(browser, "the task's output", lambda d: GREETING in text_of(d, "#task-logs"))
    else:
        until(browser, "logs named unavailable", lambda d: "unavailable" in text_of(d, "#task-logs"))
    shot(browser, "07-task")

    click(browser, By.LINK_TEXT, "Events")
    if events_served:
        until(browser, "the task's events", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-event]"))
        until(browser, "an event of the new task", lambda d: task.id[:12] in text_of(d, "main tbody"))
        assert "live" in text_of(browser, "#feed-status")
    else:
        until(browser, "the feed named unavailable", lambda d: d.find_elements(By.ID, "events-unavailable"))
    shot(browser, "08-events")

    click(browser, By.ID, "sign-out")
    until(browser, "the sign-in form again", lambda d: d.find_element(By.ID, "login").is_displayed())
    assert browser.execute_script("return window.sessionStorage.length") == 0

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    # The refused sign-in's 401 is the one error the browser logs by itself.
    unexpected = [e for e in errors if "401" not in e["message"]]
    assert not unexpected, unexpected
    assert len(list(ARTIFACTS.glob("*.png"))) >= 8
