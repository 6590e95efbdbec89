"""`bertx report`: one self-contained HTML page per run kind; rendered in a real headless browser
(Debian's chromium) with no console errors and every figure drawn at a non-zero size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import bertx
from bertx.cli import main
from tests.conftest import tiny_config

ARTEFACTS = Path(os.environ.get("BERTX_TEST_ARTEFACTS", Path(__file__).resolve().parents[2] / "test-artefacts"))


@pytest.fixture(scope="module")
def classifier(tiny_bert, tmp_path_factory):
    from tests.conftest import write_toy_classification

    tmp = tmp_path_factory.mktemp("report")
    train = write_toy_classification(tmp / "train.tsv", 240, 1)
    dev = write_toy_classification(tmp / "dev.tsv", 80, 2)
    bertx.finetune(tiny_config(tiny_bert, str(train), str(dev), str(tmp / "run"), epochs=2, eval_steps=10, logging_steps=5), show_progress=False)
    return tmp / "run"


def test_classification_report_has_curves_confusion_matrix_and_mistakes(classifier):
    assert main(["report", str(classifier)]) == 0
    page = (classifier / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3  # learning curves, dev metrics, confusion matrix
    assert "confusion matrix" in page and "Per class" in page and "most confident mistakes" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch: opens offline


def test_ner_and_qa_reports(tiny_bert, tmp_path):
    from tests.recipes.test_token_tasks import config, write_conll

    train, dev = write_conll(tmp_path / "train.txt", 120, 1), write_conll(tmp_path / "dev.txt", 30, 2)
    bertx.finetune(config(tiny_bert, "ner", train, dev, tmp_path / "ner"), show_progress=False)
    out = tmp_path / "ner.html"
    assert main(["report", str(tmp_path / "ner"), "--output", str(out)]) == 0
    page = out.read_text()
    assert "Per type" in page and "entity F1" in page


def test_not_a_run_folder_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a bertx run folder" in capsys.readouterr().err


def test_the_page_renders_in_a_headless_browser(classifier, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium)")
    main(["report", str(classifier), "--output", str(tmp_path / "r.html")])
    # A script in a copy of the page reports console errors and figure sizes into the DOM, which
    # --dump-dom prints after the page has loaded.
    probe = """<script>window.__errors=[];window.addEventListener('error',e=>window.__errors.push(String(e.message)));
    window.addEventListener('load',()=>{const s=[...document.images].map(i=>[i.naturalWidth,i.naturalHeight,i.width,i.height]);
    const d=document.createElement('pre');d.id='probe';d.textContent=JSON.stringify({errors:window.__errors,images:s});
    document.body.appendChild(d);});</script>"""
    page = (tmp_path / "r.html").read_text().replace("<head>", "<head>" + probe, 1)
    (tmp_path / "probe.html").write_text(page)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--allow-file-access-from-files"]
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", (tmp_path / "probe.html").as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    found = json.loads(dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert found["errors"] == []
    assert found["images"] and all(w > 0 and h > 0 for w, h, _, _ in found["images"])
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,2400", f"--screenshot={shot}", (tmp_path / "r.html").as_uri()], capture_output=True, timeout=120
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
