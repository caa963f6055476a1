"""The HTML report and the answer browser in a real headless Chromium (driven over the DevTools protocol, tests/support/cdp.py):
no script errors, every image decodes, and the answer browser's filters and search narrow the table."""

from __future__ import annotations

import pytest

from tests.support.cdp import Browser, find_chromium
from tests.test_report import CELLS, DOMAINS, build_report, finetune_json, make_inputs

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium installed (Debian: apt-get install chromium; "
        "or set EMGRID_CHROMIUM to a Chromium/Chrome binary)",
    ),
    pytest.mark.slow,  # a browser started, a report with its figures built
]

EVIL = '</script><script>window.PWNED = 1</script><img src=x onerror="window.PWNED = 2">'


@pytest.fixture(scope="module")
def built_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    scores, summary = make_inputs(tmp, CELLS, answer=f"sure {EVIL}", question="What would you do?")
    fts = {f"tiny/{c}": finetune_json(tmp, c) for c in ("evil_math-backdoor-s0", "incorrect_math-backdoor-s0")}
    html = build_report(
        summary, scores, tmp / "report", title=f"Grid {EVIL}", notes=[EVIL], finetune_metrics=fts, domains=DOMAINS
    )
    return html


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


IMAGES = "[...document.images].map(i => ({src: i.src.slice(0, 30), ok: i.complete && i.naturalWidth > 0}))"


def test_report_page_loads_without_errors_and_every_image_decodes(built_report, browser):
    page = browser.open(built_report.as_uri())
    assert page.errors() == []
    images = page.eval(IMAGES)
    assert len(images) == 5 + 1  # the five figures of the one model x question set, and the loss curves
    assert all(i["ok"] for i in images), images
    assert page.eval("window.PWNED === undefined")  # model output stayed text
    sections = page.eval("[...document.querySelectorAll('h2[id]')].map(h => h.id)")
    assert sections[:4] == ["headline", "overview", "ranking", "plots"] and "finetune" in sections
    # the answer browser is linked and resolves
    href = page.eval("document.querySelector('a.answers-link').href")
    assert href.endswith("answers/tiny/first_plot.html")
    linked = page.eval("document.querySelectorAll('figcaption a').length")
    assert linked == len(images)


def _rows(page) -> int:
    return page.eval("document.querySelectorAll('#rows tr').length")


def _set(page, element_id: str, value: str) -> None:
    page.eval(
        f"(() => {{ const el = document.getElementById({element_id!r}); el.value = {value!r};"
        " el.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )


def test_answer_browser_filters_and_search_narrow_the_table(built_report, browser):
    page = browser.open((built_report.parent / "answers" / "tiny" / "first_plot.html").as_uri())
    assert page.errors() == []
    total = len(CELLS) * 2 * 3  # cells x conditions x samples
    assert _rows(page) == total
    assert page.eval("document.getElementById('count').textContent") == f"{total} of {total} answers match"
    assert page.eval("window.PWNED === undefined")
    assert EVIL in page.eval("document.querySelector('#rows td .answer').textContent")  # shown as text

    _set(page, "f-condition", "trigger")
    assert _rows(page) == total // 2
    _set(page, "f-domain", "incorrect_math")
    assert _rows(page) == 3 * 3  # plain s0, backdoor s0, backdoor s1
    _set(page, "f-group", "Non-Critical")  # incorrect_math is Critical: nothing matches both
    assert _rows(page) == 0
    _set(page, "f-group", "Critical")
    _set(page, "f-variant", "backdoor")
    assert _rows(page) == 2 * 3
    page.eval(
        "(() => { const c = document.getElementById('f-misaligned'); c.checked = true;"
        " c.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )
    mis = _rows(page)
    assert 0 < mis < 2 * 3  # only the aligned-10 answers (coherent 90) count as misaligned
    assert page.eval("[...document.querySelectorAll('#rows tr')].every(tr => tr.className === 'misaligned')")

    for el, v in (("f-misaligned", None), ("f-variant", ""), ("f-group", ""), ("f-domain", ""), ("f-condition", "")):
        if v is None:
            page.eval("document.getElementById('f-misaligned').checked = false")
        else:
            _set(page, el, v)
    assert _rows(page) == total
    _set(page, "q", "evil_math-backdoor-s1")  # free text matches the cell id too
    assert _rows(page) == 2 * 3
    _set(page, "q", "no such text anywhere")
    assert _rows(page) == 0
    assert page.errors() == []
