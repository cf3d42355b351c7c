"""Screenshots of the MLflow UI on a lure tracking store: the runs table, the compare view and a training stage's
loss curves, as PNGs, to check what a person sees after ``dvc repro`` / ``dvc exp run`` (docs/pipeline.md,
"Tracking").

It starts ``mlflow ui`` on the store on a free loopback port, finds the experiment's pipeline runs (the parent
runs), and has headless Chromium load each page and save it (``chromium --headless --screenshot``; the pages are
React apps, so Chromium is given a virtual-time budget to fetch and render the runs before the capture, and a first
throwaway capture warms the fresh server up). Nothing is written to the store.

Needs a Chromium binary (Debian: ``apt-get install -y chromium``; or pass ``--chromium PATH``)::

    python scripts/mlflow_screenshots.py                                  # .mlflow/mlflow.db, experiment "lure"
    python scripts/mlflow_screenshots.py --store sqlite:////tmp/x/mlflow.db --experiment lure-test --out /tmp/shots

Prints the paths of the PNGs it wrote; stops with the reason (exit status 1) when Chromium, the store or the
experiment is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lure.tracking import SHARED_VIEW_KEY, SHARED_VIEW_TAG  # the runs-table view track stores

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium(explicit: str | None) -> str:
    """The Chromium binary to drive: ``--chromium``, else the first of :data:`CHROMIUM_NAMES` on PATH."""
    for name in (explicit,) if explicit else CHROMIUM_NAMES:
        path = shutil.which(name) if name else None
        if path:
            return path
    wanted = explicit or " / ".join(CHROMIUM_NAMES)
    raise SystemExit(f"error: no Chromium found ({wanted}); install it (Debian: apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_ui(store: str, port: int, timeout: float = 120.0) -> Iterator[str]:
    """``mlflow ui`` on ``store`` at ``127.0.0.1:port`` for the duration of the block; yields its base URL."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    with urllib.request.urlopen(base + "/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise SystemExit(f"error: mlflow ui did not start on {store}:\n{tail}") from None
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def api(base: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def pages(base: str, experiment: str, compare: int) -> dict[str, str]:
    """The UI pages to capture, by file stem: the runs table (with the headline metrics as columns when the
    experiment has lure's shared view), the compare view of the newest ``compare`` pipeline
    runs, and the charts of the newest run's stage with a ``loss`` curve and the most metrics (a training stage;
    GDRT, with its group losses and weights, over SFT), if any."""
    try:
        exp = api(
            base, "/api/2.0/mlflow/experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": experiment})
        )
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"error: no experiment {experiment!r} in this store ({exc.code})") from None
    exp_id = exp["experiment"]["experiment_id"]
    body = {"experiment_ids": [exp_id], "max_results": 1000, "order_by": ["attributes.start_time DESC"]}
    runs = api(base, "/api/2.0/mlflow/runs/search", body).get("runs", [])
    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    if not parents:
        raise SystemExit(f"error: experiment {experiment!r} has no pipeline run")
    app = f"{base}/#/experiments/{exp_id}"
    ids = [r["info"]["run_id"] for r in parents[:compare]]
    query = urllib.parse.urlencode({"runs": json.dumps(ids), "experiments": json.dumps([exp_id])})
    exp_tags = {t["key"]: t["value"] for t in exp["experiment"].get("tags", [])}
    table = f"{app}/runs?viewStateShareKey={SHARED_VIEW_KEY}" if SHARED_VIEW_TAG in exp_tags else f"{app}/runs"
    found = {"runs-table": table, "compare": f"{base}/#/compare-runs?{query}"}
    newest = parents[0]["info"]["run_id"]
    children = [r for r in runs if tags(r).get("mlflow.parentRunId") == newest]
    curves = [r for r in children if any(m["key"] == "loss" for m in r["data"].get("metrics", []))]
    if curves:
        child = max(curves, key=lambda r: (len(r["data"]["metrics"]), tags(r).get("stage", "")))  # GDRT: + Q(g)
        found["train-curves"] = f"{app}/runs/{child['info']['run_id']}/model-metrics"
    return found


def screenshot(chromium: str, url: str, png: Path, size: str, budget_ms: int) -> None:
    """One page as a PNG through headless Chromium (``--no-sandbox``: it refuses to run as root otherwise)."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            f"--virtual-time-budget={budget_ms}",
            "--run-all-compositor-stages-before-draw",
            f"--screenshot={png}",
            url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if out.returncode != 0 or not png.is_file():
        raise SystemExit(f"error: chromium could not capture {url} ({out.returncode}):\n{out.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="tracking store URI (default: sqlite:///<cwd>/.mlflow/mlflow.db)")
    parser.add_argument("--experiment", default="lure", help="MLflow experiment (the spec's tracking.experiment)")
    parser.add_argument("--out", type=Path, default=Path(".mlflow/screenshots"), help="folder for the PNGs")
    parser.add_argument("--compare", type=int, default=3, help="how many of the newest pipeline runs to compare")
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: found on PATH)")
    parser.add_argument("--size", default="1800,1200", help="window size W,H in pixels")
    parser.add_argument("--budget-ms", type=int, default=30000, help="virtual time Chromium gives a page to render")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    store = args.store or f"sqlite:///{Path.cwd() / '.mlflow' / 'mlflow.db'}"
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise SystemExit(f"error: no tracking store at {store} (run the pipeline with tracking.enabled: true first)")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the server reads --backend-store-uri only
    with mlflow_ui(store, free_port()) as base:
        found = pages(base, args.experiment, args.compare)
        with tempfile.TemporaryDirectory() as scratch:  # a fresh server answers its first page late: warm it up
            screenshot(chromium, next(iter(found.values())), Path(scratch) / "warm-up.png", args.size, args.budget_ms)
        for stem, url in found.items():
            png = args.out / f"{stem}.png"
            screenshot(chromium, url, png, args.size, args.budget_ms)
            print(png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
