import subprocess
import sys


def test_import_prints_nothing_and_sets_no_plotting_backend():
    code = "import sys, tirg, tirg.plots, tirg.demo; assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
