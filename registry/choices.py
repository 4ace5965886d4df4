from django.db import models


class Task(models.TextChoices):
    BINARY = "binary", "Binary classification"
    MULTICLASS = "multiclass", "Multiclass classification"


class ArtifactFormat(models.TextChoices):
    SKOPS = "skops", "skops"
    PICKLE = "pickle", "pickle / joblib"


class FileFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"
