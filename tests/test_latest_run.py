"""The latest run of a probe on a version has one definition (ProbeRunQuerySet.latest_runs):
the newest FINISHED run by `finished_at`, then by `id`. Every surface that shows or uses a
probe's standing picks the same run, on runs whose creation order, finish order and ids
disagree; and no other module orders probe runs by time to pick one (a source check, also
run on planted second definitions so that it is known to fire)."""

import ast
import csv
import io
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from probes.evaluation import baseline_values
from probes.models import ProbeRun, Rerun
from remediation import followup, reports
from remediation.models import RemediationAction

from .factories import api_for, client_for
from .sources import offenders, string_constants

T0 = timezone.now().replace(microsecond=0)


def add_run(probe, version, status, *, finished=None, created=None, value=None):
    rerun = Rerun.objects.create(model_version=version, trigger="manual")
    return ProbeRun.objects.create(
        probe=probe,
        model_version=version,
        rerun=rerun,
        trigger="manual",
        status=status,
        value=value,
        finished_at=finished,
        created_at=created or T0,
    )


@pytest.fixture
def runs(probe, version):
    """Six runs of one probe on one version (made in this order, so ids ascend):

    run  created    finished   status
    a    T0 - 50m   T0 + 10m   passed
    b    T0         T0 + 5m    passed
    d    T0 - 100m  T0 + 10m   failed    the latest: ties a on finished_at, higher id
    e    T0 + 1m    (none)     error     finished without a time: behind every timed run
    c    T0 + 2m    -          running   not finished
    f    T0 + 3m    -          queued    not finished; the newest by id and by creation
    """
    return {
        "a": add_run(
            probe,
            version,
            "passed",
            created=T0 - timedelta(minutes=50),
            finished=T0 + timedelta(minutes=10),
            value=0.05,
        ),
        "b": add_run(
            probe, version, "passed", created=T0, finished=T0 + timedelta(minutes=5), value=0.1
        ),
        "d": add_run(
            probe,
            version,
            "failed",
            created=T0 - timedelta(minutes=100),
            finished=T0 + timedelta(minutes=10),
            value=0.7,
        ),
        "e": add_run(probe, version, "error", created=T0 + timedelta(minutes=1)),
        "c": add_run(probe, version, "running", created=T0 + timedelta(minutes=2)),
        "f": add_run(probe, version, "queued", created=T0 + timedelta(minutes=3)),
    }


def test_the_queryset_method_picks_the_newest_finished_run_then_the_highest_id(
    runs, probe, version
):
    assert list(ProbeRun.objects.latest_runs()) == [runs["d"]]
    assert ProbeRun.objects.matrix([probe], [version]) == {(probe.pk, version.pk): runs["d"]}


def test_a_filter_on_the_runs_narrows_the_answer_not_which_run_is_latest(runs):
    assert list(ProbeRun.objects.filter(status="passed").latest_runs()) == []


def test_follow_up_and_regression_logic_read_the_same_run(runs, finding, probe, version):
    standing = followup.standing_on(finding, version)
    assert standing == {probe.pk: runs["d"]}
    assert followup.verdict(finding, standing)[0] == "regressed"


def test_the_baseline_is_the_latest_run_on_the_discovery_version(runs, probe):
    assert baseline_values([probe], probe.dataset) == {probe.pk: 0.7}


def test_the_story_counts_the_latest_run(runs, people, finding, version):
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    story = html[html.index('id="timeline"') : html.index('id="similar"')]
    assert f"Its probes so far: on {version}, 0 of 1 pass." in story


def test_an_error_after_a_pass_is_where_the_probe_stands(people, finding, probe, version):
    """An error or inconclusive run is a finished run: the latest one, not skipped."""
    add_run(probe, version, "passed", finished=T0, value=0.1)
    latest = add_run(probe, version, "error", finished=T0 + timedelta(minutes=1))
    assert followup.standing_on(finding, version) == {probe.pk: latest}
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    assert f"Its probes so far: on {version}, 0 of 1 pass." in html


def test_the_finding_page_probes_table_shows_the_latest_run(runs, people, finding):
    html = client_for(people["viewer"]).get(finding.get_absolute_url()).content.decode()
    table = html[html.index('id="probes"') :]
    table = table[: table.index("</table>")]
    assert '<span class="badge run-failed"' in table and "0.7000" in table
    assert "0.0500" not in table and "0.1000" not in table


def test_the_version_page_marks_the_latest_run(runs, people, version):
    html = client_for(people["viewer"]).get(version.get_absolute_url()).content.decode()
    rows = html[html.index("<h2>Probe runs</h2>") :].split("<tr>")
    marked = [row for row in rows if '<small class="muted">latest</small>' in row]
    assert len(marked) == 1 and "run-failed" in marked[0] and "0.7000" in marked[0]


def test_the_api_lists_the_latest_run(runs, people, probe):
    api = api_for(people["viewer"])
    body = api.get(f"/api/v1/probe-runs/?probe={probe.pk}&latest=true").json()
    assert [r["id"] for r in body["results"]] == [runs["d"].pk]
    body = api.get(f"/api/v1/probe-runs/?probe={probe.pk}&latest=false").json()
    assert body["count"] == len(runs)


def test_the_reports_read_the_latest_run(runs, people, finding, version):
    action = RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain",
        status="implemented",
        fixed_in_version=version,
    )
    # the board: where the fix's probes stand on the version that carries it
    [column] = [
        c for c in reports.board([action], people["reviewer"]) if c["status"] == "implemented"
    ]
    assert column["actions"][0].standing == {"passed": 0, "all": 1}
    # the review pack: each followed finding's probes on the newest version
    today = timezone.localdate()
    standing = reports.review_pack(today, today)["probe_standing"]
    assert standing["run"].tolist() == [runs["d"].pk]
    assert standing["status"].tolist() == ["failed"]
    # the evidence pack: the standing table and the chart points
    archive = zipfile.ZipFile(io.BytesIO(reports.evidence_pack(finding)))
    rows = list(csv.DictReader(io.StringIO(archive.read("standing.csv").decode())))
    assert [(r["run"], r["status"]) for r in rows] == [(str(runs["d"].pk), "failed")]


def test_the_board_page_shows_the_standing_of_a_fix(runs, people, finding, version):
    RemediationAction.objects.create(
        finding=finding,
        kind="retrain",
        title="Retrain",
        status="implemented",
        fixed_in_version=version,
    )
    html = client_for(people["viewer"]).get("/review/").content.decode()
    assert "probes passing there: 0 of 1" in html


# -- one definition ---------------------------------------------------------------------

TIME_FIELDS = {"finished_at", "created_at"}
PICKERS = {"order_by", "latest", "earliest", "annotate", "aggregate", "alias"}


def _is_time_key(text):
    return text.lstrip("-").split("__")[-1] in TIME_FIELDS


def runs_ordered_by_time(tree):
    """Lines where rows are ordered (or max/min-ed) by when they finished (any queryset),
    or probe runs by when they were created (the receiver names ProbeRun or runs, or the
    key goes through `runs__`), or a Python sort/max/min is keyed on finished_at."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in PICKERS:
            receiver = ast.unparse(func.value)
            on_runs = "ProbeRun" in receiver or "runs" in receiver
            keys = [
                s
                for arg in [*node.args, *(k.value for k in node.keywords)]
                for s in string_constants(arg)
                if _is_time_key(s)
            ]
            if any(key.endswith("finished_at") or on_runs or "runs__" in key for key in keys):
                lines.append(node.lineno)
        elif (
            isinstance(func, ast.Name)
            and func.id in ("sorted", "max", "min")
            or isinstance(func, ast.Attribute)
            and func.attr == "sort"
        ):
            key = next((k.value for k in node.keywords if k.arg == "key"), None)
            if key is not None and "finished_at" in ast.unparse(key):
                lines.append(node.lineno)
    return lines


def test_only_the_probe_run_queryset_orders_runs_by_time():
    found = offenders(runs_ordered_by_time)
    assert set(found) == {"probes/models.py"}, found


@pytest.mark.parametrize(
    "planted",
    [
        # the follow-up's old definition
        "def latest_runs(finding, version):\n"
        "    qs = ProbeRun.objects.filter(probe__finding=finding, model_version=version)"
        ".order_by('-finished_at', '-pk')\n"
        "    return {r.probe_id: r for r in reversed(qs)}\n",
        # the story's old definition: ascending, the last one wins
        "runs = ProbeRun.objects.filter(status__in=['passed', 'failed'])"
        ".order_by('model_version__registered_at', 'finished_at', 'pk')\n",
        # by creation, through a reverse relation
        "def last(probe):\n    return probe.runs.latest('created_at')\n",
        # in Python
        "def last(runs):\n    return max(runs, key=lambda r: (r.finished_at, r.pk))\n",
        # through a relation from another model
        "q = Probe.objects.annotate(last=Max('runs__finished_at'))\n",
        # a copy of the one definition, elsewhere
        "newest = ProbeRun.objects.finished().filter(probe=OuterRef('probe'))"
        ".order_by(F('finished_at').desc(nulls_last=True), F('pk').desc())\n",
    ],
    ids=[
        "followup-order-by",
        "story-ascending",
        "latest-created-at",
        "python-max",
        "annotate-through-runs",
        "copy-of-the-definition",
    ],
)
def test_a_second_definition_is_found(planted):
    assert list(offenders(runs_ordered_by_time, [("ledger/planted.py", planted)])) == [
        "ledger/planted.py"
    ]
