"""The test tiers, applied from this one table (``tests/conftest.py`` imports the hooks).

- ``unit``: values, protocol, hook names, codec, session, views' data, hostile inputs: the inner loop.
- ``engine``: equivalence with references, architectures, interventions, patching, backends, reliability, SmolLM2.
- ``e2e``: JupyterLab, Notebook 7 and marimo in Chromium, and the shipped notebooks.

``bash scripts/test.sh unit`` runs one (``-m unit``); ``bash scripts/test.sh`` runs them all. A ``test_browser_*``
file is e2e; any other file missing from the table is engine (add it to ``unit`` if it is quick).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: each test file's tier
FILES = {
    "unit": [
        "test_analyses.py", "test_charts.py", "test_cli_demo.py", "test_codec_and_placement.py", "test_datasets.py",
        "test_demo.py",
        "test_depth.py", "test_exercises.py", "test_export.py", "test_geometry.py", "test_hostile_files.py",
        "test_hostile_errors.py", "test_hostile_inputs.py",
        "test_lens.py", "test_loading.py", "test_magics.py", "test_probes.py", "test_projector.py",
        "test_prompts.py", "test_safety.py", "test_session.py", "test_tokens.py", "test_views.py",
        "test_views_continuation.py", "test_views_graph.py", "test_views_panels.py", "test_views_textviews.py",
        "test_views_graph_nodes.py",
        "test_views_workshop.py", "test_views_vit.py",
        "test_house.py", "test_top_examples.py", "test_steering_dataset.py", "test_tuned_lens.py", "test_qk.py",
        "test_linked_examples.py", "test_sparse_multiclass.py", "test_image_explorer.py",
    ],
    "engine": [
        "test_architectures.py", "test_attribution.py", "test_cli_and_notebooks.py", "test_device_map.py",
        "test_equivalence.py", "test_generation.py", "test_interventions.py", "test_nnsight_backend.py",
        "test_nnsight_remote.py", "test_patching.py", "test_real_model.py", "test_reliability.py",
        "test_remote_safety.py", "test_sae.py", "test_skip.py", "test_steering.py", "test_caches.py",
        "test_vision.py", "test_vision_architectures.py",
        "test_mlp_hook_in.py", "test_graphs.py", "test_tcav.py", "test_transcoders.py", "test_transcoder_training.py",
        "test_graphs_clt.py", "test_graph_circuits.py",
        "test_workshop_notebooks.py", "test_exercises_advanced.py", "test_circuit_tracer_compat.py",
    ],
    "e2e": [
        "test_browser_continuation.py", "test_browser_explorer.py", "test_browser_hosts.py", "test_browser_layout.py",
        "test_browser_charts.py",
        "test_browser_nnsight.py", "test_browser_notebooks.py", "test_browser_projector.py",
        "test_browser_quickstart.py", "test_browser_saved_state.py", "test_browser_textviews.py",
        "test_browser_images.py",
    ],
}  # fmt: skip
#: single tests in another tier than their file's: pages opened in Chromium
TESTS = {
    "test_export.py::test_saved_page_renders_offline_in_chromium": "e2e",
    "test_tokens.py::test_a_saved_page_shows_bytes_bos_and_special_tokens_in_chromium": "e2e",
}
TIER_OF_FILE = {name: tier for tier, names in FILES.items() for name in names}
#: the xdist group of the e2e tests on the session's JupyterLab: one worker, one JupyterLab and one Chromium
E2E_GROUP = "e2e"
#: e2e tests that start their own server (Notebook 7, marimo) or open a saved page: they need not wait for the Lab's
#: worker, so the other worker takes them (and its own Chromium)
OWN_SERVER = {"test_browser_hosts.py", *(test.split("::")[0] for test in TESTS)}


def tier(item: pytest.Item) -> str:
    """``item``'s tier: its own entry, else ``engine`` for a SmolLM2 test in a unit file, else its file's."""
    name = Path(str(item.path)).name
    own = TESTS.get(f"{name}::{item.originalname}")
    if own:
        return own
    return "engine" if file_tier(name) == "unit" and item.get_closest_marker("real_model") else file_tier(name)


def file_tier(name: str) -> str:
    return TIER_OF_FILE.get(name) or ("e2e" if name.startswith("test_browser_") else "engine")


def nodeid_tier_is_e2e(nodeid: str) -> bool:
    """Whether the test ``nodeid`` is e2e, from its name alone (the xdist controller has no items)."""
    path, _, test = nodeid.partition("::")
    name = path.rsplit("/", 1)[-1]
    own = TESTS.get(f"{name}::{test.split('[')[0]}")
    return (own or file_tier(name)) == "e2e"


def on_the_lab(nodeid: str) -> bool:
    """Whether the test ``nodeid`` runs on the session's JupyterLab (so on the Lab's worker)."""
    return nodeid_tier_is_e2e(nodeid) and nodeid.split("::")[0].rsplit("/", 1)[-1] not in OWN_SERVER


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Every e2e test on the session's JupyterLab on one worker (one JupyterLab, one Chromium; they are sent first,
    being the largest unit), the others (the other hosts' and saved pages' e2e tests too) spread test by test.
    (xdist's own ``xdist_group`` does nothing under pytest 9.2: it renames ``item._nodeid``, which pytest no longer
    reads.)"""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None  # another --dist asked for
    from xdist.scheduler import LoadScopeScheduling

    class E2EOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return E2E_GROUP if on_the_lab(nodeid) else nodeid

    return E2EOnOneWorker(config, log)


def is_e2e(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("e2e") is not None


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one torch thread each
        import torch

        torch.set_num_threads(1)


#: how much a worker that is not serving the JupyterLab yields the CPU to the one that is (``os.nice``)
YIELD = 5
_yielded = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """On xdist, a worker starting a test that is not on the session's JupyterLab lowers its priority once: the Lab's
    tests (one worker, one after another, their kernels and Chromium beside them) are the whole run's critical path,
    the other worker's tests are not, so where the two compete for the cores, the Lab's go first."""
    global _yielded
    if not _yielded and os.environ.get("PYTEST_XDIST_WORKER") and not on_the_lab(item.nodeid):
        os.nice(YIELD)
        _yielded = True


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier (e2e ones also with their xdist group) and run the e2e tests last, together: one
    JupyterLab and one Chromium serve them, and the Chromium is closed when they end (``browser.SHARED``)."""
    for item in items:
        kind = tier(item)
        item.add_marker(getattr(pytest.mark, kind))
        if kind == "e2e":
            item.add_marker(pytest.mark.xdist_group(E2E_GROUP))
    items.sort(key=is_e2e)  # stable: the order within each part is kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Close the shared Chromium when the e2e tests end (before any other test needs ``asyncio.run``)."""
    yield
    browser = sys.modules.get("browser")
    if browser is not None and not is_e2e(nextitem):
        browser.SHARED.close()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--durations-file", help="write every test's setup, call and teardown times there, slowest first")


_TIMES: list[tuple[float, str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _TIMES.append((report.duration, report.when, report.nodeid))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """``--durations-file``: the times of every phase of every test, and each file's total (the controller writes
    it when the tests ran on xdist workers)."""
    path = session.config.getoption("--durations-file", None)
    if not path or hasattr(session.config, "workerinput"):
        return
    files: dict[str, float] = {}
    for seconds, _, nodeid in _TIMES:
        files[nodeid.split("::")[0]] = files.get(nodeid.split("::")[0], 0.0) + seconds
    lines = [f"# {len(_TIMES)} test phases, {sum(t for t, _, _ in _TIMES):.1f} s in all", "# per file"]
    lines += [f"{seconds:9.2f}s {name}" for name, seconds in sorted(files.items(), key=lambda f: -f[1])]
    lines += ["# per test phase"] + [f"{t:9.2f}s {when:<8} {node}" for t, when, node in sorted(_TIMES, reverse=True)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def paths(kind: str) -> list[str]:
    """The test files that hold tests of tier ``kind`` (``-m kind`` then picks them): collecting only these is what
    makes ``scripts/test.sh unit`` quick."""
    tiers = {kind, "unit"} if kind == "engine" else {kind}  # engine: with the SmolLM2 tests of unit files
    chosen = {test.split("::")[0] for test, tier in TESTS.items() if tier == kind}
    return [f"tests/{p.name}" for p in sorted(HERE.glob("test_*.py")) if file_tier(p.name) in tiers or p.name in chosen]


if __name__ == "__main__":  # scripts/test.sh: the files of a tier
    print(" ".join(paths(sys.argv[1])))
