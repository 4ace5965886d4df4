from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from ...models import Dataset, MLModel, ModelVersion


class Command(BaseCommand):
    help = (
        "Register a trained artifact as a new version of an ML model; its probes are "
        "rerun by the workers."
    )

    def add_arguments(self, parser):
        parser.add_argument("ml_model", help="The ML model's slug or name.")
        parser.add_argument("version")
        parser.add_argument("artifact", help="Path to a skops file.")
        parser.add_argument("--dataset", help="Training dataset: name (latest version) or id.")
        parser.add_argument("--notes", default="")
        parser.add_argument("--user", help="Register as this user (for the audit trail).")

    def handle(
        self, *args, ml_model, version, artifact, dataset=None, notes="", user=None, **options
    ):
        from django.contrib.auth import get_user_model

        model = MLModel.objects.filter(Q(slug=ml_model) | Q(name=ml_model)).first()
        if model is None:
            raise CommandError(f"No ML model named '{ml_model}'.")
        training = None
        if dataset:
            query = Q(name=dataset) | (Q(pk=int(dataset)) if dataset.isdigit() else Q())
            training = Dataset.objects.filter(query).order_by("-created_at").first()
            if training is None:
                raise CommandError(f"No dataset named '{dataset}'.")
        by = None
        if user:
            by = get_user_model().objects.filter(username=user).first()
            if by is None:
                raise CommandError(f"No user named '{user}'.")
        path = Path(artifact)
        if not path.is_file():
            raise CommandError(f"No file at {path}.")
        try:
            with path.open("rb") as handle:
                mv = ModelVersion.register(
                    ml_model=model,
                    version=version,
                    artifact=File(handle, name=path.name),
                    training_dataset=training,
                    notes=notes,
                    by=by,
                )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        runs = mv.runs.count()
        self.stdout.write(
            f"Registered {mv} (id {mv.pk}, sha256 {mv.artifact_sha256}); "
            f"{runs} probe run(s) queued."
        )
