"""``stock ui`` (SPEC section 11) in a real headless Chromium, driven by Playwright.

One repository for the module (3 branches and a remote-tracking one,
tags, a model, an image column, a training run with per-step metrics and
checkpoints made through ``stock.run``), served by ``stock ui`` in a
subprocess and exported with ``--export``. Screenshots of each page go to ``build/ui-screens/`` (a CI
artifact); with ``STOCK_UI_DOCS=1`` the README's two also go to ``docs/``.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stockroom.ui import data

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "build" / "ui-screens"
STOCK = shutil.which("stock", path=str(Path(sys.executable).parent)) or shutil.which("stock")
CHROMIUM = next(
    (
        p
        for p in (
            os.environ.get("STOCK_UI_CHROMIUM"),
            shutil.which("chromium"),
            shutil.which("chromium-browser"),
        )
        if p
    ),
    None,
)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - scripts/env.sh installs it
    sync_playwright = None  # type: ignore[assignment]

browser_needed = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None or STOCK is None,
    reason="needs Debian's chromium, Playwright for Python and the stock script (scripts/env.sh installs them)",
)

# Built in a subprocess: torch is imported there, not in pytest's process.
BUILD = r"""
import subprocess, numpy as np, torch, stockroom
def g(*a): subprocess.run(("git",) + a, check=True, capture_output=True)
stockroom.init_repo(install_hooks=False)
g("add", "-A"); g("commit", "-qm", "stock init")
rng = np.random.default_rng(0)
def commit(stock, msg, **tags):
    stock.tag.update(tags); stock.commit(msg); g("add", "-A"); g("commit", "-qm", msg)
with stockroom.StockRoom() as stock:
    stock.data["images"] = {i: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(4)}
    stock.data["labels"] = {i: np.array([i], dtype=np.int64) for i in range(4)}
    stock.model["net"] = {"fc.weight": torch.ones(8, 4), "fc.bias": torch.zeros(8)}
    commit(stock, "baseline", loss=1.0, lr=0.1, optim="sgd")
    commit(stock, "main: more epochs", loss=0.8, lr=0.1, optim="sgd")
    g("checkout", "-qb", "wide")
    stock.model["net"] = {"fc.weight": torch.ones(8, 4) * 1.5, "fc.bias": torch.zeros(8)}
    commit(stock, "wide: adam", loss=0.7, lr=0.05, optim="adam")
    commit(stock, "wide: longer", loss=0.4, lr=0.05, optim="adam")
    g("checkout", "-q", "main"); g("checkout", "-qb", "deep")
with stockroom.StockRoom() as stock:
    commit(stock, "deep: lr up", loss=0.9, lr=0.2, optim="sgd")
    commit(stock, "deep: warmup", loss=0.6, lr=0.2, optim="sgd")
    # A training run on `deep`: per-step metrics, three checkpoints; a git commit records the last.
    # background=False: a background save flushes the metric buffers from its thread while
    # run.log appends to them, and loses the points logged meanwhile (reported to runs).
    run = stock.run("cnn", monitor="val_loss", background=False)
    net = torch.nn.Linear(4, 2)
    for step in range(STEPS):
        run.log(step, loss=1.0 / (1 + 0.001 * step) + (8.0 if step == SPIKE else 0.0), acc=step / STEPS)
        if step in SAVES:
            run.save(step, metrics={"val_loss": 0.5 - step / 20000}, model=net)
    run.close()
    g("add", "-A"); g("commit", "-qm", "deep: cnn run")
g("checkout", "-q", "main")
# A remote-tracking branch: `deep` pushed to a bare clone named origin.
g("init", "-q", "--bare", "../origin.git"); g("remote", "add", "origin", "../origin.git")
g("push", "-q", "origin", "deep")
"""
STEPS, SPIKE, SAVES = 5000, 3333, (999, 2999, 4999)
BUILD = f"STEPS, SPIKE, SAVES = {STEPS}, {SPIKE}, {SAVES}\n" + BUILD


def cnn_loss(step: int) -> float:
    """What the run logged at ``step`` (computed as the build script does)."""
    return 1.0 / (1 + 0.001 * step) + (8.0 if step == SPIKE else 0.0)


# Tip of each branch: its last loss.
TIPS = {"main": 0.8, "wide": 0.4, "deep": 0.6, "origin/deep": 0.6}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(home / ".gitconfig"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("uihome")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = UI Tester\n\temail = ui@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    path = tmp_path_factory.mktemp("uirepo") / "project"
    path.mkdir()
    env = _env(home)
    subprocess.run(("git", "init", "-q"), cwd=path, check=True, env=env)
    subprocess.run((sys.executable, "-c", BUILD), cwd=path, check=True, env=env, timeout=120)
    return path, env


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        m = re.match(r"http://([^/]+)/\?token=(\S+)", url)
        assert m, url
        self.netloc, self.token = m.group(1), m.group(2)
        self.base = f"http://{self.netloc}"


def _serve(path: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[str], str]:
    assert STOCK is not None
    proc = subprocess.Popen(
        (STOCK, "ui", "--port", "0", "--no-browser", *extra),
        cwd=path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, m.group(1)


@pytest.fixture(scope="module")
def served(repo: tuple[Path, dict[str, str]]) -> Iterator[Served]:
    if STOCK is None:
        pytest.skip("the stock console script is not installed")
    proc, url = _serve(*repo)
    yield Served(proc, url)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or sync_playwright is None:
        pytest.skip("needs Debian's chromium and Playwright for Python (scripts/env.sh installs them)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    pg.goto(served.url)  # the token URL: sets the cookie, lands on Experiments
    ready(pg)
    yield pg
    ctx.close()


def ready(pg: Page) -> None:
    pg.wait_for_function("() => window.stockUI && window.stockUI.ready === true", timeout=15000)
    assert pg.evaluate("window.stockUI.error || null") is None


def shot(pg: Page, name: str, docs: str | None = None) -> Path:
    """Save a screenshot and check it is not blank (many colours, not one)."""
    from PIL import Image

    SCREENS.mkdir(parents=True, exist_ok=True)
    target = SCREENS / f"{name}.png"
    raw = pg.screenshot(full_page=False)
    target.write_bytes(raw)
    img = Image.open(io.BytesIO(raw)).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 20, f"{name} screenshot looks blank ({len(colours)} colours)"
    if docs and os.environ.get("STOCK_UI_DOCS"):
        (ROOT / "docs" / docs).write_bytes(raw)
    return target


def row_values(pg: Page, col: str) -> list[str]:
    idx = pg.evaluate(f"window.stockUI.columns.indexOf({json.dumps(col)})")
    return pg.eval_on_selector_all("#runs tbody tr", f"trs => trs.map(tr => tr.cells[{idx} + 1].textContent)")


# ------------------------------------------------------------ no browser
def test_minmax_downsample_keeps_spikes() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.zeros_like(x)
    y[1234], y[8765] = 50.0, -7.0
    out = data.minmax_downsample(x, y, 100, 0, 9999)
    assert out.size == 200
    assert np.nanmax(out) == 50.0 and np.nanmin(out) == -7.0


def test_curves_downsamples_past_points_only() -> None:
    class Source:
        def runs(self) -> list[str]:
            return ["a", "b"]

        def metrics(self) -> list[str]:
            return ["m"]

        def series(self, run: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
            n = 5000 if run == "a" else 10
            return np.arange(n, dtype=float), np.sin(np.arange(n, dtype=float))

    small = data.curves(Source(), ["b"], "m", points=100)
    assert small["exact"] and data.from_f64(small["x"]) == list(range(10))
    assert data.from_f64(small["series"][0]["y"]) == np.sin(np.arange(10.0)).tolist()  # bit for bit
    big = data.curves(Source(), ["a", "b"], "m", points=100)
    assert not big["exact"] and [s["points"] for s in big["series"]] == [5000, 10]
    # `a` goes into 50 buckets (a min and a max each); `b`, one point per bucket at most, stays exact.
    a_drawn = [v for v in data.from_f64(big["series"][0]["y"]) if v is not None]
    assert len(a_drawn) <= 100 and max(a_drawn) == pytest.approx(1.0, abs=1e-3)
    xs, bs = data.from_f64(big["x"]), data.from_f64(big["series"][1]["y"])
    b_pairs = [(x, y) for x, y in zip(xs, bs, strict=True) if y is not None]
    assert b_pairs == [(i, pytest.approx(float(np.sin(i)))) for i in range(10)]
    with pytest.raises(KeyError):
        data.curves(Source(), ["a"], "nope")


def test_png_is_a_real_image() -> None:
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    back = np.asarray(Image.open(io.BytesIO(data.png(img))))
    assert (back == img).all()


# -------------------------------------------------------------- security
def _get(
    served: Served, path: str, host: str | None = None, cookie: bool = True, method: str = "GET"
) -> tuple[int, str]:
    conn = http.client.HTTPConnection(served.netloc, timeout=10)
    headers = {"Host": host or served.netloc}
    if cookie:
        headers["Cookie"] = f"stock_ui_token_{served.netloc.rsplit(':', 1)[1]}={served.token}"
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, body


def test_refuses_no_token_foreign_host_paths_and_writes(served: Served) -> None:
    assert _get(served, "/")[0] == 200
    status, body = _get(served, "/", cookie=False)
    assert status == 403 and "token" in body
    status, _ = _get(served, "/api/experiments", cookie=False)
    assert status == 403
    status, body = _get(served, "/?token=wrong", cookie=False)
    assert status == 403
    # DNS rebinding: a name that resolves here but is not the bound address.
    port = served.netloc.rsplit(":", 1)[1]
    assert _get(served, "/", host=f"evil.example:{port}")[0] == 403
    assert _get(served, "/api/experiments", host=f"evil.example:{port}")[0] == 403
    for path in (
        "/../../etc/passwd",
        "/assets/../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets//etc/passwd",
    ):
        status, body = _get(served, path)
        assert status == 404, path
        assert "root:" not in body and "Traceback" not in body
    assert _get(served, "/api/experiments", method="POST")[0] == 405
    # The token in the URL becomes a cookie, and leaves the address bar.
    conn = http.client.HTTPConnection(served.netloc, timeout=10)
    conn.request("GET", f"/?token={served.token}")
    resp = conn.getresponse()
    assert resp.status == 303 and resp.getheader("Location") == "/"
    assert "HttpOnly" in (resp.getheader("Set-Cookie") or "")


def test_bad_revision_or_key_is_a_4xx_page(served: Served) -> None:
    for path in ("/compare?a=no-such-branch&b=main", "/data?rev=no-such-branch", "/data?rev=--output=x"):
        status, body = _get(served, path)
        assert 400 <= status < 500, (path, status)
        assert "Traceback" not in body and "<html" in body
    status, body = _get(served, "/api/data?rev=HEAD~99")
    assert status == 404 and json.loads(body)["error"].startswith("unknown git revision")
    status, body = _get(served, "/api/curves?metric=nope&runs=main")
    assert status == 404 and "no metric named 'nope'" in json.loads(body)["error"]
    status, body = _get(served, "/api/curves?metric=loss&runs=nobranch")
    assert status == 404 and "no run named" in body
    status, body = _get(served, "/compare?a=cnn@77&b=main")
    assert status == 404 and "no checkpoint at step 77" in body


@browser_needed
def test_bad_revision_page_in_browser(page: Page, served: Served) -> None:
    resp = page.goto(served.base + "/compare?a=nope&b=main")
    assert resp is not None and resp.status == 404
    assert "unknown git revision 'nope'" in page.inner_text("body")
    shot(page, "error-404")


def test_host_flag_warns(repo: tuple[Path, dict[str, str]]) -> None:
    proc, url = _serve(*repo, "--host", "0.0.0.0")
    try:
        assert url.startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert "stock: warning: serving on 0.0.0.0" in err and "Traceback" not in err


# ------------------------------------------------------------- the pages
@browser_needed
def test_experiments_table_shows_each_branch_tags(page: Page) -> None:
    branches = row_values(page, "branch")
    losses = row_values(page, "loss")
    assert {"main", "wide", "deep"} <= set(branches)
    tips = page.evaluate("window.stockUI.table.branches.map(b => [b.name, b.commit])")
    for name, sha in tips:
        cell = page.locator(f"#runs tbody tr[data-commit='{sha}']")
        assert cell.count() == 1
        assert str(TIPS[name]) in cell.inner_text()
    assert "0.4" in losses and "adam" in row_values(page, "optim")
    shot(page, "experiments", docs="ui-experiments.png")


@browser_needed
def test_sort_filter_and_columns(page: Page) -> None:
    page.click("th button.sort[data-col='loss']")
    losses = [float(v) for v in row_values(page, "loss") if v]
    assert losses == sorted(losses) and losses[0] == 0.4
    page.click("th button.sort[data-col='loss']")
    losses = [float(v) for v in row_values(page, "loss") if v]
    assert losses == sorted(losses, reverse=True)
    page.fill("#filter", "loss<0.7")
    # wide's tip; deep's tip, the commit recording cnn@4999 and the checkpoints cnn@999, cnn@2999 carry 0.6
    assert sorted(float(v) for v in row_values(page, "loss")) == [0.4, 0.6, 0.6, 0.6, 0.6]
    page.fill("#filter", "optim=adam")
    assert set(row_values(page, "branch")) == {"wide"} and len(row_values(page, "branch")) == 2
    page.fill("#filter", "")
    page.click("details.chooser summary >> text=Columns")
    page.uncheck("#cols input[value='lr']")
    assert "lr" not in page.evaluate("window.stockUI.columns")


@browser_needed
def test_experiments_shows_checkpoints_and_run_metrics(page: Page) -> None:
    rows = {r["id"]: r for r in page.evaluate("window.stockUI.table.rows")}
    # The checkpoints no git commit records are rows of their own, on their run's branch
    # and its remote-tracking namesake; the last one is the row of the commit recording it.
    checkpoints = {i for i, r in rows.items() if r["kind"] == "checkpoint"}
    assert checkpoints == {"cnn@999", "cnn@2999"}
    for i in checkpoints:
        assert rows[i]["branches"] == ["deep", "origin/deep"] and rows[i]["curve"] == "cnn"
    tips = dict(page.evaluate("window.stockUI.table.branches.map(b => [b.name, b.commit])"))
    assert tips["origin/deep"] == tips["deep"]
    tip = rows[tips["deep"]]
    assert (
        tip["checkpoint"] == "cnn@4999"
        and tip["curve"] == "cnn"
        and set(tip["branches"]) == {"deep", "origin/deep"}
    )
    assert {"cnn@999", "cnn@2999", "cnn@4999"} <= set(row_values(page, "run"))
    # Last/best metrics up to each checkpoint's step, from the run's metric store.
    assert rows["cnn@999"]["metrics"]["loss:last"] == cnn_loss(999)
    assert rows["cnn@2999"]["metrics"]["acc:last"] == 2999 / STEPS
    assert tip["metrics"]["loss:min"] == cnn_loss(4999) and tip["metrics"]["loss:max"] == cnn_loss(SPIKE)
    assert tip["metrics"]["val_loss:best"] == 0.5 - 4999 / 20000  # the monitor, given to save
    assert "0.50025" in page.locator("#runs tbody tr[data-commit='cnn@999']").inner_text()
    assert "loss:last" in page.evaluate("window.stockUI.columns")
    assert "loss:min" not in page.evaluate("window.stockUI.columns")  # shown from the Columns chooser
    # Per branch: without `deep` the checkpoints stay through origin/deep; without both they go.
    page.click("details.chooser summary >> text=Branches")
    page.uncheck("#branches input[value='deep']")
    assert "cnn@999" in page.evaluate("window.stockUI.rows")
    page.uncheck("#branches input[value='origin/deep']")
    assert not {"cnn@999", "cnn@2999", tips["deep"]} & set(page.evaluate("window.stockUI.rows"))
    page.fill("#filter", "cnn@2999")
    assert page.evaluate("window.stockUI.rows") == []
    page.check("#branches input[value='deep']")
    assert page.evaluate("window.stockUI.rows") == ["cnn@2999"]


@browser_needed
def test_selecting_two_runs_draws_two_curves(page: Page) -> None:
    """wide's tip: tags per commit (no run metrics); deep's tip records cnn@4999: the run's per-step loss."""
    tips = dict(page.evaluate("window.stockUI.table.branches.map(b => [b.name, b.commit])"))
    page.click("th button.sort[data-col='loss']")
    # Keyboard: focus the first row, move down to each tip, Space selects.
    order = page.evaluate("window.stockUI.rows")
    page.focus("#runs tbody tr:first-child")
    for _ in range(order.index(tips["wide"])):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    page.locator(f"#runs tbody tr[data-commit='{tips['deep']}']").click()
    assert page.locator("#runs tbody tr.selected").count() == 2
    page.click("#go-curves")
    page.wait_for_url(re.compile(r".*/curves\?runs="))
    ready(page)
    curves = page.evaluate("window.stockUI.curves")
    assert curves["metric"] == "loss" and {s["run"] for s in curves["series"]} == {"wide", "cnn"}
    data_ = page.evaluate("window.stockUI.chart.data.map(a => Array.from(a))")
    assert len(data_) == 3  # the x axis and one series per run
    labels = page.evaluate("window.stockUI.chart.series.slice(1).map(s => s.label)")
    by_run = dict(zip(labels, data_[1:], strict=True))
    # Tags per commit keep every point, at their own x, beside the downsampled run.
    wide = [(x, v) for x, v in zip(data_[0], by_run["wide"], strict=True) if v is not None]
    assert wide == [(1, 1.0), (2, 0.8), (3, 0.7), (4, 0.4)]  # step 0: `stock init`, no tags
    # The run: 5,000 logged steps, min/max-downsampled to the chart's width; each value drawn is
    # a logged one (at about its step), the spike and the last minimum stay.
    assert {s["run"]: s["points"] for s in curves["series"]}["cnn"] == STEPS
    cnn = [(x, v) for x, v in zip(data_[0], by_run["cnn"], strict=True) if v is not None]
    assert 100 < len(cnn) < STEPS
    logged = {cnn_loss(i): i for i in range(STEPS)}
    assert all(v in logged and abs(logged[v] - x) <= STEPS / len(cnn) * 2 for x, v in cnn)
    assert max(v for _, v in cnn) == cnn_loss(SPIKE) and min(v for _, v in cnn) == cnn_loss(STEPS - 1)
    assert cnn[0][1] == 1.0
    # The numbers behind the chart, as text.
    numbers = page.inner_text("#numbers table")
    assert "0.4" in numbers and "5000" in numbers
    shot(page, "curves", docs="ui-curves.png")
    # Smoothing and log scale redraw the same runs.
    page.check("#log")
    assert page.evaluate("window.stockUI.chart.scales.y.distr") == 3
    page.locator("#alpha").fill("0.5")
    smoothed = page.evaluate("Array.from(window.stockUI.chart.data[1])")
    assert [v for v in smoothed if v is not None] != [v for v in data_[1] if v is not None]


@browser_needed
def test_curves_of_a_run_are_exact_when_they_fit(page: Page, served: Served) -> None:
    """Asked for as many points as it has, the run's series is what it logged, step by step."""
    page.goto(served.base + "/curves?runs=cnn&metric=acc")
    ready(page)
    doc = page.evaluate("fetch('/api/curves?metric=loss&runs=cnn&points=5000').then(r => r.json())")
    assert doc["exact"] and data.from_f64(doc["x"]) == list(range(STEPS))
    assert data.from_f64(doc["series"][0]["y"]) == [cnn_loss(i) for i in range(STEPS)]
    acc = [v for v in page.evaluate("Array.from(window.stockUI.chart.data[1])") if v is not None]
    assert acc[0] == 0 and acc[-1] == (STEPS - 1) / STEPS
    assert "tags per commit" in (page.text_content("#runlist") or "")  # the branches without run metrics


@browser_needed
def test_compare_two_checkpoints(page: Page, served: Served) -> None:
    page.goto(served.base + "/compare?a=cnn@999&b=cnn@2999")
    ready(page)
    doc = page.evaluate("window.stockUI.compare")
    tags = {t["key"]: t for t in doc["tags"]}
    assert tags["run.cnn.step"]["old"] == 999 and tags["run.cnn.step"]["new"] == 2999
    assert {m["model"]: m["status"] for m in doc["models"]} == {"net": "unchanged", "run.cnn": "changed"}


@browser_needed
def test_parallel_coordinates(page: Page, served: Served) -> None:
    page.goto(served.base + "/parallel")
    ready(page)
    info = page.evaluate("window.stockUI.parallel")
    assert {"loss", "lr", "loss:last"} <= set(info["axes"])
    # 6 tagged commits of the branches, the commit recording cnn@4999, 2 checkpoints
    assert info["lines"] == 9
    assert page.locator("#pc polyline").count() == 9
    shot(page, "parallel")


@browser_needed
def test_compare_shows_changed_layer(page: Page, served: Served) -> None:
    page.goto(served.base + "/compare?a=main&b=wide")
    ready(page)
    doc = page.evaluate("window.stockUI.compare")
    layers = {x["name"]: x for x in doc["models"][0]["layers"]}
    assert layers["fc.weight"]["status"] == "changed" and layers["fc.weight"]["rel_l2"] == pytest.approx(0.5)
    assert layers["fc.bias"]["status"] == "unchanged"
    assert page.locator("svg.layers rect[data-layer='fc.weight']").count() == 1
    text = page.inner_text("main")
    assert "fc.weight" in text and "0.5" in text and "loss" in text
    shot(page, "compare")


@browser_needed
def test_data_page_shows_images(page: Page, served: Served) -> None:
    page.goto(served.base + "/data?rev=main")
    ready(page)
    imgs = page.locator("img[alt*='of images']")
    assert imgs.count() == 4
    assert page.evaluate(
        "Array.from(document.querySelectorAll('img')).every(i => i.complete && i.naturalWidth === 32)"
    )
    assert "int64" in page.inner_text("main")  # labels: numbers, not images
    shot(page, "data")


# ---------------------------------------------------------------- export
@browser_needed
def test_export_opens_offline(browser: Any, repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    path, env = repo
    out = tmp_path / "site"
    assert STOCK is not None
    proc = subprocess.run(
        (STOCK, "ui", "--export", str(out)), cwd=path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    requests: list[str] = []
    ctx.on("request", lambda r: requests.append(r.url))
    pg = ctx.new_page()
    pg.goto((out / "index.html").as_uri())
    ready(pg)
    assert {"main", "wide", "deep"} <= set(row_values(pg, "branch"))
    shot(pg, "export-experiments")
    tips = dict(pg.evaluate("window.stockUI.table.branches.map(b => [b.name, b.commit])"))
    for name in ("wide", "main"):
        pg.locator(f"#runs tbody tr[data-commit='{tips[name]}']").click()
    pg.click("#go-curves")
    pg.wait_for_url(re.compile(r".*curves\.html\?runs="))
    ready(pg)
    assert {s["run"] for s in pg.evaluate("window.stockUI.curves")["series"]} == {"wide", "main"}
    assert len(pg.evaluate("window.stockUI.chart.data")) == 3
    shot(pg, "export-curves")
    pg.goto((out / "compare.html").as_uri())
    ready(pg)
    pg.select_option("#pair", label="HEAD → wide")
    assert pg.locator("svg.layers rect[data-layer='fc.weight']").count() == 1
    pg.goto((out / "data.html").as_uri())
    ready(pg)
    assert pg.locator("img[alt*='of images']").count() == 4
    pg.goto((out / "parallel.html").as_uri())
    ready(pg)
    assert pg.evaluate("window.stockUI.parallel.lines") == 9
    assert all(u.startswith("file://") for u in requests), [
        u for u in requests if not u.startswith("file://")
    ]
    ctx.close()


# ----------------------------------------------------------- live update
@browser_needed
def test_live_update_shows_a_new_commit(
    page: Page, served: Served, repo: tuple[Path, dict[str, str]]
) -> None:
    """Last in the module: it adds a commit to the shared repository."""
    path, env = repo
    page.goto(served.base + "/curves?runs=main")
    ready(page)
    before = [v for v in page.evaluate("Array.from(window.stockUI.chart.data[1])") if v is not None]
    script = (
        "import subprocess, stockroom\n"
        "with stockroom.StockRoom() as s:\n"
        "    s.tag['loss'] = 0.3; s.commit('main: again')\n"
        "subprocess.run(['git', 'commit', '-qam', 'main: again'], check=True)\n"
    )
    subprocess.run((sys.executable, "-c", script), cwd=path, env=env, check=True, timeout=60)
    # head.stock moves first (one update), then the git commit (another): wait for the point.
    page.wait_for_function("() => Array.from(window.stockUI.chart.data[1]).includes(0.3)", timeout=15000)
    assert page.evaluate("window.stockUI.updates") >= 1
    after = [v for v in page.evaluate("Array.from(window.stockUI.chart.data[1])") if v is not None]
    assert after == [*before, 0.3]


@browser_needed
def test_live_curves_while_a_run_trains(
    page: Page, served: Served, repo: tuple[Path, dict[str, str]]
) -> None:
    """A training process logs and flushes: the open Curves page redraws with the new steps."""
    path, env = repo
    go = path.parent / "go-on"
    script = (
        "import pathlib, time, stockroom\n"
        "with stockroom.StockRoom() as s:\n"
        "    run = s.run('live')\n"
        "    for i in range(10): run.log(i, loss=1.0 / (i + 1))\n"
        "    run.flush(); print('flushed', flush=True)\n"
        f"    while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
        "    for i in range(10, 20): run.log(i, loss=1.0 / (i + 1))\n"
        "    run.flush(); print('flushed', flush=True)\n"
        f"    while pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
        "    run.close()\n"
    )
    proc = subprocess.Popen(
        (sys.executable, "-c", script), cwd=path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
        page.goto(served.base + "/curves?runs=live&metric=loss")
        ready(page)
        first = [v for v in page.evaluate("Array.from(window.stockUI.chart.data[1])") if v is not None]
        assert first == [1.0 / (i + 1) for i in range(10)]
        go.write_text("")
        assert proc.stdout.readline().strip() == "flushed"
        page.wait_for_function(
            "() => window.stockUI.chart.data[1].filter(v => v !== null).length === 20", timeout=15000
        )
        after = [v for v in page.evaluate("Array.from(window.stockUI.chart.data[1])") if v is not None]
        assert after == [1.0 / (i + 1) for i in range(20)]
    finally:
        if not go.exists():
            proc.kill()  # never told to go on, it would wait for ever
        go.unlink(missing_ok=True)
        proc.wait(30)
