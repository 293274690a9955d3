"""The gallery examples, run as scripts, leave their figures on disk.

Every example ends with the same block, hidden from the gallery: run as a
script (``python examples/plot_x.py``, where ``__file__`` is defined) it saves
each open figure in the working directory and prints where; inside
sphinx-gallery, which defines no ``__file__`` and collects the figures
itself, it does nothing. The fastest examples run here as scripts; all of
them run in the documentation build (``make -C doc html``).
"""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("plot_*.py"))

#: Examples that finish in seconds; the others train for a minute or more.
FAST = ["plot_concept_drift.py", "plot_online_forecasting.py"]

SAVE_FIGURES = """# sphinx_gallery_start_ignore
# Run as a script, the example saves its figures in the working directory; the
# gallery collects them by itself (and defines no __file__).
if "__file__" in globals():
    from pathlib import Path

    for number in plt.get_fignums():
        path = Path(f"{Path(__file__).stem}_{number}.png").resolve()
        plt.figure(number).savefig(path, dpi=100)
        print(f"Saved figure {number} to {path}")
# sphinx_gallery_end_ignore
plt.show()
"""

pytestmark = pytest.mark.skipif(
    not EXAMPLES, reason="the examples are not in this installation"
)


def test_examples_are_found():
    assert len(EXAMPLES) >= 8
    assert {e.name for e in EXAMPLES} >= set(FAST)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_ends_its_figures_with_the_save_block(path):
    source = path.read_text(encoding="utf-8")
    assert source.count(SAVE_FIGURES) == 1, f"{path.name} lacks the save block"
    # The block runs once every figure is drawn: the one plt.show() is its end.
    assert source.count("plt.show()") == 1
    assert source.count("savefig") == 1


def test_save_block_saves_only_when_run_as_a_script(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    plt.close("all")
    try:
        plt.subplots()
        plt.subplots()
        # As sphinx-gallery runs an example: no __file__, no file, no output.
        exec(SAVE_FIGURES, {"plt": plt, "__name__": "__main__"})
        assert not list(tmp_path.iterdir())
        assert capsys.readouterr().out == ""
        exec(SAVE_FIGURES, {"plt": plt, "__file__": str(tmp_path / "plot_x.py")})
    finally:
        plt.close("all")
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["plot_x_1.png", "plot_x_2.png"]
    out = capsys.readouterr().out
    assert f"Saved figure 2 to {(tmp_path / 'plot_x_2.png').resolve()}" in out


@pytest.mark.parametrize("name", FAST)
def test_fast_examples_run_as_scripts_leave_their_figures(name, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = sorted(tmp_path.glob(f"{Path(name).stem}_*.png"))
    assert saved, f"{name} saved no figure; it printed:\n{result.stdout[-2000:]}"
    for png in saved:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000  # a drawn figure, not an empty one
        assert f"to {png.resolve()}" in result.stdout
