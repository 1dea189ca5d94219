"""MLflow's scoring server serving the demo model's scikit-learn pipeline, for comparison.

MLflow is never a dependency of loangate: this module installs a pinned ``mlflow-skinny``
(the scoring server and the sklearn flavour, without the tracking server and UI) in its
own virtualenv, ``bench/.mlflow-venv`` (git-ignored), beside the same scikit-learn, pandas
and numpy versions as the project's, so the pickled pipeline loads as it was trained.

1. :func:`ensure_venv` creates the virtualenv once (a stamp file names what it holds);
2. :func:`save_model` trains the demo pipeline here (``gateway.training.train``, the same
   data, seed and pipeline the gateway registers), hands it to the virtualenv's Python,
   which writes an MLflow model with ``mlflow.sklearn.save_model``;
3. :func:`start` runs ``mlflow models serve -w 2 --env-manager local`` with the
   virtualenv first on ``PATH`` (no conda, no environment built at start-up) on a free
   loopback port, until the context exits;
4. :func:`invocation_body` is the ``/invocations`` JSON (``dataframe_split``) of one
   applicant: German credit row 1, the row the gateway's benchmarks post, with the derived
   feature the model reads, since MLflow runs the bare pipeline.

The comparison itself (wrk, interleaved with the gateway) is ``bench/rest_vs_echo.py
--mlflow``. Standalone check: ``.venv/bin/python bench/mlflow_serve.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".mlflow-venv"
#: The MLflow release compared against (pinned: figures are for this version).
MLFLOW_VERSION = "3.18.0"
MLFLOW_PACKAGE = f"mlflow-skinny=={MLFLOW_VERSION}"
#: Packages the pipeline needs (and skops, MLflow's default format for it), at the versions
#: installed in the project's venv.
SHARED_PACKAGES = ("scikit-learn", "scipy", "numpy", "pandas", "joblib", "threadpoolctl", "skops")
INVOCATIONS_PATH = "/invocations"
WORKERS = 2

SAVE_SCRIPT = """\
import sys
import joblib
import mlflow.sklearn

# Probabilities, as the gateway's scorer computes, not the 0/1 of ``predict``.
mlflow.sklearn.save_model(
    joblib.load(sys.argv[1]), sys.argv[2], pyfunc_predict_fn="predict_proba"
)
"""


def requirements() -> list[str]:
    """What the virtualenv holds: pinned MLflow and the project's own model stack."""
    return [MLFLOW_PACKAGE, *(f"{name}=={metadata.version(name)}" for name in SHARED_PACKAGES)]


def base_python() -> str:
    """The interpreter the project's venv was made from (a venv of a venv is fragile)."""
    for name in ("python3", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return sys.executable


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


def ensure_venv() -> Path:
    """Create (or update) ``bench/.mlflow-venv``; its path."""
    wanted = "\n".join(requirements()) + "\n"
    stamp = VENV / "bench-requirements.txt"
    if stamp.exists() and stamp.read_text() == wanted and Path(venv_bin("mlflow")).exists():
        return VENV
    print(f"installing {MLFLOW_PACKAGE} in {VENV} (once)", flush=True)
    if not Path(venv_bin("python")).exists():
        subprocess.run([base_python(), "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [venv_bin("python"), "-m", "pip", "install", "--quiet", *requirements()], check=True
    )
    stamp.write_text(wanted)
    return VENV


def save_model(dest: Path) -> Path:
    """Train the demo pipeline and save it as an MLflow model at ``dest``; ``dest``."""
    import joblib

    from gateway.training import train

    ensure_venv()
    trained = train()  # the gateway's own trainer: same data, seed and pipeline
    with tempfile.TemporaryDirectory(prefix="loangate-mlflow-") as tmp:
        pickled = Path(tmp) / "pipeline.joblib"
        joblib.dump(trained.estimator, pickled)
        subprocess.run(
            [venv_bin("python"), "-c", SAVE_SCRIPT, str(pickled), str(dest)],
            check=True,
            env=venv_env(),
        )
    return dest


def venv_env() -> dict[str, str]:
    """The environment for the virtualenv's commands: its ``bin`` first on ``PATH``."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    env["MLFLOW_TRACKING_URI"] = "file:///dev/null"  # serving needs no tracking store
    return env


def invocation_body() -> str:
    """``/invocations`` JSON for German credit row 1 (with its derived features)."""
    from gateway.training import load_training_data

    data = load_training_data()
    row = data.X(data.frame.index[1:2])
    return json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})


def start(stack: ExitStack, model_dir: Path, log: Path) -> str:
    """``mlflow models serve`` on a free loopback port, stopped when ``stack`` closes; the
    ``/invocations`` URL."""
    import rest_vs_echo as rve  # the sibling bench module (servers, ports, readiness)

    port = rve.free_port()
    cmd = [
        venv_bin("mlflow"), "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1",
        "-p", str(port), "-w", str(WORKERS), "--env-manager", "local",
    ]  # fmt: skip
    proc = stack.enter_context(rve.server(cmd, venv_env(), log))
    base = f"http://127.0.0.1:{port}"
    body = invocation_body()
    headers = {"Content-Type": "application/json"}
    rve.wait_ready(
        proc,
        lambda: requests.post(base + INVOCATIONS_PATH, data=body, headers=headers, timeout=5).ok,
        log,
        timeout=180,
    )
    return base + INVOCATIONS_PATH


def main() -> int:
    """Install, save, serve and score the applicant once; print the answer."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    with tempfile.TemporaryDirectory(prefix="loangate-mlflow-") as tmp, ExitStack() as stack:
        model = save_model(Path(tmp) / "model")
        url = start(stack, model, Path(tmp) / "mlflow.log")
        answer = requests.post(
            url, data=invocation_body(), headers={"Content-Type": "application/json"}, timeout=10
        )
        print(url, answer.status_code, answer.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
