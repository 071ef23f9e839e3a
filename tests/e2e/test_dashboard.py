"""The dashboard in a real browser: headless Chromium (Debian's, driven by Selenium through
Debian's chromedriver) opens `quiver serve`'s page while users stream from Kafka through
the Spark job into Cassandra, and checks what a person would look at: the charts get
data, the lag, the rejects and the analytics fill, the SQL box answers and shows
DataFusion's error for a bad query, and a part that is down is named. Screenshots are
kept with the test logs ($QUIVER_STATE_DIR/logs/test/dashboard/).

Needs the stack (scripts/stack up), the built binary and Chromium (scripts/setup installs
all three).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from test_stream import _produce_bad_records, produce_users, start_stream

import conftest
from quiver_dev import stack
from quiver_dev.spark_job import stop_job

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(settings) -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.fail(f"{path} is missing: scripts/setup installs Debian's chromium and chromium-driver")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(settings, request) -> Callable[[webdriver.Chrome, str], Path]:
    """Saves a screenshot under the test logs, named after the test and the moment."""
    folder = settings.state / "logs" / "test" / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)

    def shot(driver: webdriver.Chrome, moment: str) -> Path:
        path = folder / f"{request.node.name}-{moment}.png"
        driver.save_screenshot(str(path))
        return path

    return shot


def wait_until(what: str, check: Callable[[], object], timeout: float = 120) -> object:
    """Polls `check` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except JavascriptException as error:
            last = error.msg
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"the dashboard never showed {what} within {timeout:.0f} s (last: {last!r})")


def js(driver: webdriver.Chrome, script: str, *args: object) -> object:
    return driver.execute_script(script, *args)


def part(driver: webdriver.Chrome, name: str) -> str | None:
    """The state a part's pill shows (ok, down, off, idle, unknown)."""
    return js(driver, "return document.querySelector(`#parts li[data-part='${arguments[0]}']`)?.className", name)


def parts(driver: webdriver.Chrome) -> dict[str, str]:
    """Every part's pill: its name and state, read in one script (the pills are redrawn
    every second)."""
    pills = "[...document.querySelectorAll('#parts li')]"
    return js(driver, f"return Object.fromEntries({pills}.map(li => [li.dataset.part, li.className]))")


def rows(driver: webdriver.Chrome, table: str) -> list[list[str]]:
    """The cells' text of a table's body rows, read in one script: the page redraws its
    tables every second, so element handles would go stale between reads."""
    script = "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)]"
    return js(driver, script + ".map(r => [...r.cells].map(c => c.textContent))", table)


def column(driver: webdriver.Chrome, table: str, index: int) -> list[str]:
    return [row[index] for row in rows(driver, table)]


def charted(driver: webdriver.Chrome, chart: str, series: int) -> bool:
    """Whether one series of a live chart holds a value above zero."""
    return js(
        driver,
        "const c = state.charts[arguments[0]]; return !!c && c.data[arguments[1]].some(v => v > 0)",
        chart,
        series,
    )


def run_sql(driver: webdriver.Chrome, query: str) -> None:
    box = driver.find_element(By.ID, "sql")
    box.clear()
    box.send_keys(query)
    driver.find_element(By.ID, "sql-run").click()
    wait_until("the SQL box's answer", lambda: driver.find_element(By.ID, "sql-status").text != "running…")


def test_the_dashboard_shows_a_live_stream(settings, unique_name, tmp_path, browser, shots):
    topic = keyspace = unique_name
    env = {
        **os.environ,
        "QUIVER_CASSANDRA_NODES": f"{settings.host}:{settings.cassandra_port}",
        "QUIVER_CASSANDRA_KEYSPACE": keyspace,
        "QUIVER_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "QUIVER_DASHBOARD_LINKS": f"Spark master=http://{settings.host}:{settings.spark_master_ui_port}",
        "QUIVER_SPARK_UI": f"http://{settings.host}:{stack.SPARK_DRIVER_UI_PORT}",
        "QUIVER_POSTGRES_URL": f"postgresql://{settings.postgres_user}@{settings.host}:{settings.postgres_port}/{settings.postgres_db}",
        "QUIVER_POSTGRES_PASSWORD_FILE": str(settings.postgres_password_file),
    }
    with conftest.running_serve(["--sink", "cassandra"], env, tmp_path / "serve.log") as serve:
        # The topic with its two partitions first: the bad records need it to exist.
        produce_users(str(conftest.quiver_bin()), settings, topic, count=100)
        bad = _produce_bad_records(settings, topic)
        engine = ["--engine", "flight", "--flight-endpoint", serve.location]
        job = start_stream(settings, topic, engine, tmp_path / "ckpt", tmp_path / "job.log")
        producer = subprocess.Popen(
            [str(conftest.quiver_bin()), "produce", "--source", "synthetic", "--count", "30000", "--rate", "400",
             "--topic", topic, "--partitions", "2", "--bootstrap-servers", settings.kafka_bootstrap],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            browser.get(f"{serve.http}/")
            paint = js(browser, "return performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)")
            print(f"first contentful paint: {paint} ms")
            wait_until("records written in the live chart", lambda: charted(browser, "rows", 2))
            wait_until("a latency p99", lambda: charted(browser, "latency", 3))
            wait_until("Spark's batch duration", lambda: charted(browser, "batches", 4))
            wait_until("both partitions' lag", lambda: column(browser, "lag", 1) == [topic, topic])
            rejects = wait_until("the three rejects", lambda: len(column(browser, "rejects", 4)) >= 3)
            assert set(column(browser, "rejects", 4)) >= {value.decode() for value in bad}, rejects
            wait_until("users by gender", lambda: len(browser.find_elements(By.CSS_SELECTOR, "#by-gender .row")) >= 2)
            wait_until("the stream as up", lambda: part(browser, "stream") == "ok")
            state = parts(browser)
            assert (state["Cassandra"], state["Kafka"], state["Spark job"], state["quiver serve"]) == ("ok",) * 4, state
            link = browser.find_element(By.CSS_SELECTOR, "#links a")
            assert link.get_attribute("href") == f"http://{settings.host}:{settings.spark_master_ui_port}/"
            shots(browser, "streaming")

            # The batch leg over partition 0 as it is now, into Postgres: the dashboard
            # finds the run and every one of its users in Cassandra once the stream has
            # written that far.
            run_id = f"{topic}-p0"
            batch = subprocess.run(
                [str(conftest.quiver_bin()), "batch", "--source", "kafka", "--topic", topic, "--partition", "0",
                 "--bootstrap-servers", settings.kafka_bootstrap, "--run-id", run_id],
                capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip
            assert batch.returncode == 0, batch.stderr[-3000:]

            def run_row() -> list[str] | None:
                return next((row for row in rows(browser, "runs") if row[0] == run_id), None)

            row = wait_until("the batch run with no user missing in Cassandra",
                             lambda: (r := run_row()) and r[6] == "0" and r)  # fmt: skip
            assert row[3] == row[4] == row[5] and int(row[3].replace(",", "")) > 0, row
            assert part(browser, "Postgres") == "ok"
            shots(browser, "batch-vs-stream")

            run_sql(browser, "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM users")
            cells = browser.find_elements(By.CSS_SELECTOR, "#sql-result tbody td")
            assert len(cells) == 2 and int(cells[0].text.replace(",", "")) > 0, [c.text for c in cells]
            assert "error" not in browser.find_element(By.ID, "sql-status").get_attribute("class")

            run_sql(browser, "SELECT no_such_column FROM users")
            status = browser.find_element(By.ID, "sql-status")
            assert status.get_attribute("class") == "error"
            assert "no_such_column" in status.text, status.text
            assert not browser.find_elements(By.CSS_SELECTOR, "#sql-result tr")
            shots(browser, "sql-error")
        finally:
            producer.kill()
            producer.wait()
            stop_job(job)


def test_the_dashboard_names_the_part_that_is_down(settings, tmp_path, browser, shots):
    """Kafka that does not answer, no Cassandra configured, then the service itself gone."""
    nothing_there = conftest.free_port()
    env = {
        **os.environ,
        "QUIVER_BOOTSTRAP_SERVERS": f"127.0.0.1:{nothing_there}",
        "QUIVER_SPARK_UI": f"http://127.0.0.1:{nothing_there}",
    }
    env.pop("QUIVER_TOKEN", None)
    with conftest.running_serve(["--sink", "none"], env, tmp_path / "serve.log") as serve:
        browser.get(f"{serve.http}/")
        wait_until("Kafka as down", lambda: part(browser, "Kafka") == "down")
        wait_until("the Spark job as down", lambda: part(browser, "Spark job") == "down")
        kafka = js(browser, "return document.querySelector('#parts li[data-part=Kafka]').textContent")
        assert f"127.0.0.1:{nothing_there}" in kafka, kafka
        state = parts(browser)
        assert (state["Cassandra"], state["quiver serve"], state["stream"]) == ("off", "ok", "idle"), state
        shots(browser, "kafka-down")
        serve.process.kill()
        serve.process.wait()
        wait_until("the service as down", lambda: part(browser, "quiver serve") == "down")
        shots(browser, "service-down")


def test_the_page_loads_nothing_from_elsewhere(tmp_path, browser):
    """Every request the page makes goes to the service itself: no CDN, works offline."""
    with conftest.running_serve(["--sink", "none"], {**os.environ}, tmp_path / "serve.log") as serve:
        browser.get(f"{serve.http}/")
        wait_until("the live charts", lambda: js(browser, "return state.charts.rows !== undefined"))
        urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        origin = serve.http
        assert urls and all(u.startswith(origin) for u in urls), json.dumps(urls)
