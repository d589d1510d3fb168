"""pandas 2 stays covered while the suite runs under pandas 3 (and pyarrow, which changes what pandas 3
infers): the pure results tests, which summarize, read back and word fixed rows and run no sweep, run
again in a venv holding pandas < 3 from PyPI. The venv is made as tests/test_install.py makes its own, a
.pth file listing this interpreter's package folders, so torch and the rest are reused and only pandas 2
(and pytz, which it needs) is downloaded. About 25 s on the 2-core VM: 10 s of pip, 15 s of tests."""

from __future__ import annotations

import subprocess

import pytest
from test_install import _clean_env, _run, _venv

# results tests that need no subprocess sweep: the summarizer, the tables read back (an old sweep's too), the
# confirmation's verdict, efficiency's precision, the unit
RESULTS_TESTS = (
    "tests/test_summarize.py",
    "tests/test_old_sweeps.py",
    "tests/test_confirm.py",
    "tests/test_precision_words.py",
    "tests/test_units.py",
)
# the inner pytest in the process that imported pandas: its version is the one the tests ran under
RUN = "import pandas, pytest, sys; print('pandas', pandas.__version__, flush=True); sys.exit(pytest.main(sys.argv[1:]))"


@pytest.mark.slow
def test_the_results_tests_pass_under_pandas_2(repo_root, tmp_path):
    env = _clean_env()
    env.pop("PINSWEEP_SUITE_LOCK", None)  # its own suite lock: waiting on ours, held by this test, would hang
    bin_dir = _venv(tmp_path, "pandas2", repo_root, env)
    # into the venv (pip leaves this interpreter's pandas 3 where it is), with pandas 2's own requirements that
    # pandas 3 dropped; numpy and dateutil are reused. --no-deps: no resolver round trips, 6 s of 16
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps", "--only-binary", ":all:"]
    _run([*pip, "pandas<3", "pytz", "tzdata"], tmp_path, env)
    command = [str(bin_dir / "python"), "-c", RUN, "-n", "0", "-p", "no:cacheprovider", "-q", *RESULTS_TESTS]
    result = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=240)
    output = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert result.stdout.startswith("pandas 2."), output
    assert " passed" in result.stdout and "failed" not in result.stdout and "error" not in result.stdout, output
