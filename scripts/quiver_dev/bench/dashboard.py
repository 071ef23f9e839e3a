"""The dashboard's speed as a person sees it, in headless Chromium (Debian's, through
Selenium): with the stack up and the service's recent window full, how soon the page
paints, how soon it shows data, and how long its JSON calls take. Run it through
`scripts/bench dashboard`; it needs the stack up and the release build (it makes it).

Set-up: a release `quiver serve` writing Cassandra, with Kafka, the Spark driver's UI and
Postgres configured as `scripts/stack env` sets them; --users synthetic users produced to a
new topic and streamed into it by the Spark job (available-now), so that the window holds
them (100,000 rows, the default, is full at 100,000 users). Then --loads page loads, each
in a new tab with the browser's cache off, measured with the browser's own clocks (Paint
Timing, Resource Timing, performance.now()): first contentful paint; the first responses
of /api/overview and /api/series (the whole ten minutes of history); the four analytics
queries over the window; and the moment the live charts, the lag table and the analytics
all hold data. The page polls every second: the bench also counts /api/series calls over
10 s. Results: a table on stdout and JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from quiver_dev import paths, stack
from quiver_dev.serve_process import running_serve

ROOT = stack.ROOT
# Polled inside the page: true once every panel a person looks at first has data.
READY = """
return !!state.charts.rows && state.points.length > 0
  && document.querySelectorAll('#lag tbody tr').length > 0
  && document.querySelectorAll('#by-gender .row').length > 0
  && !!state.charts.year"""
TIMINGS = """
const res = performance.getEntriesByType('resource');
const first = (pred) => { const e = res.find(pred); return e ? e.responseEnd : null; };
const sql = res.filter(e => e.name.endsWith('/api/sql')).map(e => e.duration);
return {
  fcp: performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0] ?? null,
  dom_content_loaded: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
  overview_done: first(e => e.name.includes('/api/overview')),
  series_done: first(e => e.name.includes('/api/series')),
  series_ms: res.filter(e => e.name.includes('/api/series')).map(e => e.duration)[0] ?? null,
  sql_ms: sql,
};"""


def browser() -> webdriver.Chrome:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return driver


def load(driver: webdriver.Chrome, url: str, timeout: float = 30) -> dict:
    driver.switch_to.new_window("tab")
    driver.get(url)
    deadline = time.monotonic() + timeout
    while not driver.execute_script(READY):
        if time.monotonic() > deadline:
            raise SystemExit(f"the page at {url} showed no data within {timeout:.0f} s")
        time.sleep(0.02)
    timings = driver.execute_script(TIMINGS)
    # performance.now() counts from the navigation's start, like the entries above.
    timings["data_shown"] = driver.execute_script("return performance.now()")
    if len(driver.window_handles) > 1:
        driver.close()
        driver.switch_to.window(driver.window_handles[0])
    return timings


def med(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="users streamed into the window first")
    parser.add_argument("--loads", type=int, default=10, help="page loads measured")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    s = stack.Settings()
    quiver = paths.target_dir() / "release" / "quiver"
    if not quiver.is_file():
        parser.error(f"the release binary is missing ({quiver}): scripts/bench dashboard builds it")
    logs = s.logs("bench-dashboard")
    logs.mkdir(parents=True, exist_ok=True)
    name = f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **stack.stack_env(s), "QUIVER_CASSANDRA_KEYSPACE": name}
    with running_serve(quiver, ["--sink", "cassandra"], env, logs / "serve.log") as serve:
        produced = subprocess.run(
            [str(quiver), "produce", "--source", "synthetic", "--count", str(args.users), "--topic", name,
             "--partitions", "2", "--bootstrap-servers", s.kafka_bootstrap],
            capture_output=True, text=True,
        )  # fmt: skip
        if produced.returncode != 0:
            raise SystemExit(f"quiver produce failed:\n{produced.stderr[-3000:]}")
        streamed = subprocess.run(
            [str(ROOT / "scripts" / "spark-submit"), str(ROOT / "spark-app" / "stream_users.py"), "--topic", name,
             "--trigger", "available-now", "--checkpoint-location", str(logs / f"ckpt-{name}"),
             "--engine", "flight", "--flight-endpoint", serve.location],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        if streamed.returncode != 0:
            raise SystemExit(f"the Spark job failed:\n{streamed.stderr[-3000:]}")
        driver = browser()
        try:
            url = f"{serve.http}/"
            load(driver, url)  # the browser's own first start is not the page's
            runs = [load(driver, url) for _ in range(args.loads)]
            driver.switch_to.new_window("tab")
            driver.get(url)
            time.sleep(10)
            polls = driver.execute_script(
                "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/series')).length"
            )
        finally:
            driver.quit()
    sql = [ms for r in runs for ms in r["sql_ms"]]
    result = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores",
        "users_in_window": args.users,
        "loads": args.loads,
        "median_ms": {
            "first_contentful_paint": med([r["fcp"] for r in runs]),
            "dom_content_loaded": med([r["dom_content_loaded"] for r in runs]),
            "overview_response": med([r["overview_done"] for r in runs]),
            "series_response": med([r["series_done"] for r in runs]),
            "series_request": med([r["series_ms"] for r in runs]),
            "analytics_query": med(sql),
            "all_panels_with_data": med([r["data_shown"] for r in runs]),
        },
        "max_ms": {
            "first_contentful_paint": round(max(r["fcp"] for r in runs), 1),
            "analytics_query": round(max(sql), 1),
            "all_panels_with_data": round(max(r["data_shown"] for r in runs), 1),
        },
        "series_polls_in_10_s": polls,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
