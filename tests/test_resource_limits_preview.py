"""Pages never re-read a dataset file (DESIGN.md, "Data profiles and drift"): the dataset
page shows the first rows stored at upload, as it wrote them when it read the file for every
view, without the sensitive columns; a dataset stored before reads its file once."""

import io

import numpy as np
import pandas as pd
import pytest
from django.core.files.base import ContentFile
from django.template import Context, Template

from registry.models import Dataset

from .factories import client_for, csv_upload, toy_frame

pytestmark = pytest.mark.django_db


def upload(people, content, **kwargs):
    return Dataset.create_from_upload(
        content, name="preview", target_column="y", by=people["contributor"], **kwargs
    )


def mixed_frame():
    return pd.DataFrame(
        {
            "x": [0.1, 1e-05, np.nan, 12345.678, -0.0],
            "n": np.array([1, 2, 3, 4, 5], dtype=np.int64),
            "flag": [True, False, True, True, False],
            "when": pd.to_datetime(
                [
                    "2024-01-02 03:04:05",
                    "2024-02-03 00:00:00",
                    None,
                    "2024-03-04 00:00:00",
                    "2024-05-06 07:08:00",
                ]
            ),
            "name": ["<b>al</b>", "bo", None, "cy", "dee"],
            "salary": [50001.5, 50002.5, 50003.5, 50004.5, 50005.5],
            "y": [0, 1, 0, 1, 1],
        }
    )


def shown_cells(frame):
    """The cells as the page wrote them when it read the file for each view (the rule
    before previews were stored): ``{{ v }}`` of each value, "" for a missing one."""
    shown = frame.astype(object).where(frame.notna(), "")
    template = Template("{% for v in row %}<td>{{ v }}</td>{% endfor %}")
    return [template.render(Context({"row": row})) for row in shown.values.tolist()]


def parquet_upload(frame):
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return ContentFile(buffer.getvalue(), name="mixed.parquet")


def test_the_page_shows_the_first_rows_with_the_file_gone(people):
    frame = mixed_frame()
    dataset = upload(people, parquet_upload(frame), sensitive_columns=["salary"])
    dataset.file.storage.delete(dataset.file.name)
    response = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    for row in shown_cells(frame.drop(columns="salary")):
        assert row in page, row
    assert "50001.5" not in page and "Sensitive columns are not shown row by row: salary." in (page)
    assert "&lt;b&gt;al&lt;/b&gt;" in page and "<b>al</b>" not in page


def test_the_page_shows_only_the_first_rows_of_a_csv(people):
    frame = toy_frame(n=50)
    dataset = upload(people, csv_upload(frame), sensitive_columns=["x2"])
    dataset.file.storage.delete(dataset.file.name)
    page = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    read_back = pd.read_csv(io.BytesIO(frame.to_csv(index=False).encode()))
    for row in shown_cells(read_back.drop(columns="x2").head(20)):
        assert row in page
    assert shown_cells(read_back.drop(columns="x2").iloc[20:21])[0] not in page
    assert dataset.preview["columns"] == ["x1", "color", "y"]
    assert len(dataset.preview["rows"]) == 20


def test_a_dataset_stored_before_previews_reads_its_file_once(people, monkeypatch):
    dataset = upload(people, parquet_upload(mixed_frame()), sensitive_columns=["salary"])
    stored = dataset.preview
    Dataset.objects.filter(pk=dataset.pk).update(preview=None)
    reads = []
    real_read = Dataset.read
    monkeypatch.setattr(Dataset, "read", lambda self: reads.append(self.pk) or real_read(self))
    viewer = client_for(people["viewer"])
    first = viewer.get(f"/datasets/{dataset.pk}/").content.decode()
    assert reads == [dataset.pk]
    assert Dataset.objects.get(pk=dataset.pk).preview == stored
    dataset.file.storage.delete(dataset.file.name)
    second = viewer.get(f"/datasets/{dataset.pk}/").content.decode()
    assert reads == [dataset.pk]
    for row in shown_cells(mixed_frame().drop(columns="salary")):
        assert row in first and row in second


def test_an_older_dataset_with_its_file_gone_says_so(people):
    dataset = upload(people, csv_upload(toy_frame(n=30)))
    Dataset.objects.filter(pk=dataset.pk).update(preview=None)
    dataset.file.storage.delete(dataset.file.name)
    response = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/")
    assert response.status_code == 200
    assert "No such file" in response.content.decode()
    assert Dataset.objects.get(pk=dataset.pk).preview is None


def test_the_audit_trail_keeps_no_rows_of_the_table(people):
    from core.models import AuditEvent

    frame = toy_frame(n=30)
    dataset = upload(people, csv_upload(frame))
    dataset.file.storage.delete(dataset.file.name)
    page = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    first = f"<td>{frame['color'].iloc[0]}</td>"
    assert first in page
    [created] = AuditEvent.objects.for_object(dataset)
    assert created.verb == "create" and "preview" not in created.after
    assert str(frame["x1"].iloc[0]) not in str(created.after)


def test_a_column_marked_sensitive_later_leaves_the_stored_rows(people):
    frame = toy_frame(n=30)
    dataset = upload(people, csv_upload(frame))
    assert "x2" in dataset.preview["columns"]
    response = client_for(people["contributor"]).post(
        f"/datasets/{dataset.pk}/sensitive/", {"sensitive_columns": ["x2"]}
    )
    assert response.status_code == 302
    dataset.file.storage.delete(dataset.file.name)
    page = client_for(people["viewer"]).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Sensitive columns are not shown row by row: x2." in page
    assert f"<td>{frame['color'].iloc[0]}</td>" in page
    stored = Dataset.objects.get(pk=dataset.pk).preview
    assert stored["columns"] == ["x1", "color", "y"] and stored["hidden"] == ["x2"]
    assert all(len(row) == 3 for row in stored["rows"])
    assert str(frame["x2"].iloc[0]) not in str(stored)
