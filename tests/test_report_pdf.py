"""`edgeguard report` end to end: a generated month in a real store, the command's PDF rendered
by pdftoppm (pages exist and are not blank), its Chinese headings found by pdftotext, the fonts
embedded (pdffonts), the HTML folder, the JSON, and bad input refused with a clear message."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from edgeguard.cli import main
from edgeguard.lab.month_gen import generate_month, write_lab_config
from edgeguard.reports.month import report_month, time_zone

ZONE = "Asia/Shanghai"
POPPLER = all(shutil.which(tool) for tool in ("pdftoppm", "pdftotext", "pdffonts"))
needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils is not installed")
HEADINGS_ZH = (
    "医院安全防范月报",
    "本月概况",
    "报警分布",
    "报警响应时间",
    "重点部位视频覆盖",
    "需要处理的事项",
)
HEADINGS_EN = ("Monthly security report", "The month at a glance", "Response times")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    window = report_month("2026-11", time_zone(ZONE))
    generate_month(folder, window.start, window.end, seed=5, busy=3.0, motion_rows=500)
    return write_lab_config(folder)


def _report(config: Path, *args: str) -> int:
    return main(["report", "-c", str(config), "--month", "2026-11", "--tz", ZONE, *args])


def _pages(pdf: Path, folder: Path) -> list[Path]:
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(folder / "p")], check=True)
    return sorted(folder.glob("p-*.png"))


def _inked(png: Path) -> float:
    """The share of the page that is not white."""
    image = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return float((image < 200).mean())


@needs_poppler
def test_the_pdf_has_five_inked_pages_with_chinese_headings(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = tmp_path / "report.pdf"
    assert _report(site, "--pdf", str(pdf)) == 0
    out = capsys.readouterr().out
    assert f"wrote {pdf}" in out
    assert "lab-hospital 2026-11" in out
    pages = _pages(pdf, tmp_path)
    assert len(pages) == 5
    for page in pages:
        assert _inked(page) > 0.01, page
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    for heading in HEADINGS_ZH:
        assert heading in text.stdout, heading
    assert "实验医院（市第二人民医院）" in text.stdout
    assert "急诊分诊台" in text.stdout  # a location's label, in the slowest alarms
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    noto = [line for line in fonts.stdout.splitlines() if "NotoSansCJK" in line]
    assert noto
    assert all(" yes " in line for line in noto), fonts.stdout  # embedded


@needs_poppler
def test_english_is_selectable(site: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "report-en.pdf"
    assert _report(site, "--pdf", str(pdf), "--language", "en") == 0
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    for heading in HEADINGS_EN:
        assert heading in text.stdout, heading
    assert "医院安全防范月报" not in text.stdout


def test_html_folder(site: Path, tmp_path: Path) -> None:
    folder = tmp_path / "html"
    assert _report(site, "--html", str(folder)) == 0
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in index
    for number in range(1, 6):
        assert f'src="page-{number}.png"' in index
        assert _inked(folder / f"page-{number}.png") > 0.01


def test_json_figures(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _report(site, "--json") == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["site"] == "lab-hospital"
    assert figures["time_zone"] == ZONE
    assert figures["from"] == "2026-10-31T16:00:00.000Z"
    assert figures["security_alarms"] > 0
    assert set(figures["stages_s"]) == {"delivered", "received", "acknowledged", "dispatched",
                                        "reset"}  # fmt: skip
    assert figures["availability"]["uplink-primary"]["role"] == "police_link"
    assert 0.9 < figures["coverage"]["ER"]["covered"] < 1.0
    assert sum(map(sum, figures["heatmap"])) == figures["security_alarms"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "not YYYY-MM"),
        (["--month", "2099-01"], "has not begun"),
        (["--month", "2026-11", "--tz", "Nowhere/City"], "unknown time zone"),
    ],
)
def test_bad_input_is_a_clear_error(
    site: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "-c", str(site), *args]) == 1
    assert message in capsys.readouterr().err


def test_a_missing_store_is_a_clear_error(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    assert _report(site, "--db", str(missing)) == 1
    assert f"{missing}: no such database" in capsys.readouterr().err
