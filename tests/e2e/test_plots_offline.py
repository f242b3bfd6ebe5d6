"""`dvc plots show` writes a page that renders with no network (vega, vega-lite, vega-embed
inline from .dvc/plots/offline/template.html), shown in a real headless Chromium."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest
from tests.conftest import REPO, run

OFFLINE = REPO / ".dvc" / "plots" / "offline"
CHROMIUM = Path("/usr/bin/chromium")
# DVC's own page loads these from a CDN; the offline page must not reference any.
REMOTE_SCRIPT = re.compile(r"<script[^>]+src=|cdn\.|jsdelivr", re.IGNORECASE)


def readme_versions() -> dict[str, str]:
    rows = re.findall(
        r"^\| \[([\w-]+)\]\([^)]*\) \| ([\d.]+) \|", (OFFLINE / "README.md").read_text(), re.M
    )
    return dict(rows)


def test_template_inlines_the_pinned_builds_and_dvc_uses_it() -> None:
    page = (OFFLINE / "template.html").read_text()
    versions = readme_versions()
    assert versions.keys() == {"vega", "vega-lite", "vega-embed"}, versions
    build = (OFFLINE / "build.sh").read_text()
    for name, version in versions.items():
        assert f"<script>/* {name}@{version}," in page  # the build that is inline
        assert f"{name.upper().replace('-', '_')}={version}" in build  # and what rebuilds it
    assert f'version="{versions["vega"]}"' in page  # vega's own version constant agrees
    assert "{plot_divs}" in page and "{scripts}" not in page  # no slot for DVC's CDN tags
    assert not REMOTE_SCRIPT.search(page)
    assert "Redistribution and use in source and binary forms" in (OFFLINE / "LICENSE").read_text()
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert (REPO / ".dvc" / config["plots"]["html_template"]).resolve() == (
        OFFLINE / "template.html"
    ).resolve()


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with every route out closed: no DNS, a dead proxy, no updates."""
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=20000",  # lets vega-embed finish before the dump/shot
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def non_white_fraction(png: Path) -> float:
    from PIL import Image

    with Image.open(png) as img:
        histogram = img.convert("L").histogram()  # pixel counts per gray level, 0 = black
    return sum(histogram[:240]) / sum(histogram)


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium); .ci/run installs it"
)
def test_dvc_plots_page_renders_offline_in_chromium(pipeline_done: Path, tmp_path: Path) -> None:
    out = tmp_path / "dvc_plots"
    run(pipeline_done, "dvc", "plots", "show", "-o", str(out))
    page = out / "index.html"
    assert not REMOTE_SCRIPT.search(page.read_text())
    url = page.as_uri()

    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    embeds = len(re.findall(r'class="vega-embed', dom.stdout))
    drawn = len(re.findall(r"<canvas|<svg[^>]*class=\"marks\"", dom.stdout))
    assert embeds == 5, dom.stdout[:2000]  # loss history + the classifier's four test plots
    assert drawn >= embeds  # each embed drew its chart (canvas or marks svg)

    shot = tmp_path / "plots.png"
    taken = chromium(
        "--window-size=1280,1800",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        url,
        profile=tmp_path / "profile-shot",
    )
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    # Axes, lines and the confusion heat map; a page whose scripts did not load is all white.
    assert non_white_fraction(shot) > 0.02
