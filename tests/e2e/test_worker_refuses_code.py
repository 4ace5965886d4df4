"""A malicious artifact is refused at registration by name, and one that got past
registration (stored before types were checked there) reaches a real worker process,
which refuses to load it and runs none of its code."""

import pickle

import pytest
import requests

from ..test_security import SENTINEL_ENV, Booby, evil_pipeline, store_unchecked
from .browser import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_refuses_artifacts_that_would_run_code(
    live_server, worker, people, ml_model, probe, tmp_path, monkeypatch
):
    import skops.io as sio
    from rest_framework.authtoken.models import Token

    from probes.models import ProbeRun
    from registry.models import ModelVersion

    sentinel = tmp_path / "executed.txt"
    monkeypatch.setenv(SENTINEL_ENV, str(sentinel))  # inherited by the worker process
    worker.start()
    headers = {"Authorization": f"Token {Token.objects.create(user=people['maintainer']).key}"}

    def upload(version, blob, name):
        return requests.post(
            f"{live_server.url}/api/v1/model-versions/",
            headers=headers,
            data={"ml_model": ml_model.pk, "version": version},
            files={"artifact": (name, blob)},
            timeout=60,
        )

    # A pickle never gets as far as the worker.
    refused = upload("pickled", pickle.dumps(Booby()), "model.skops")
    assert refused.status_code == 400 and "Pickle/joblib artifacts are refused" in refused.text
    assert not ModelVersion.objects.filter(version="pickled").exists()

    # A skops file with untrusted types is refused at registration, by name.
    evil = evil_pipeline(command=f"touch {sentinel}")
    refused = upload("evil", sio.dumps(evil), "model.skops")
    assert refused.status_code == 400 and "untrusted types" in refused.text
    assert "touch_sentinel" in refused.text
    assert not ModelVersion.objects.filter(version="evil").exists()

    # One that got past registration: the worker refuses to load it.
    stored = store_unchecked(ml_model, sio.dumps(evil), "evil-stored")
    run = ProbeRun.objects.get(model_version=stored, probe=probe)
    wait_for(
        lambda: ProbeRun.objects.get(pk=run.pk).status not in ("queued", "running"),
        90,
        "the worker to finish the run",
    )
    run.refresh_from_db()
    assert run.status == "error", worker.output()
    assert "untrusted types" in run.error and "touch_sentinel" in run.error
    assert "posix.system" in run.error or "os.system" in run.error, run.error
    assert not sentinel.exists(), "the artifact's code ran in the worker"
    assert "processing" in worker.output()
