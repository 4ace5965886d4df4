import operator

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

from boundary import slices
from core.api.serializers import ModelCleanMixin, TransitionSerializer

from ..models import Finding, Tag


class TagNamesField(serializers.ListField):
    """Tags are written and read as a list of names."""

    child = serializers.CharField(max_length=60)

    def get_attribute(self, instance):
        # The tags prefetched with the rows, read as they are (no manager per row).
        cached = getattr(instance, "_prefetched_objects_cache", {}).get(self.source)
        return cached if cached is not None else super().get_attribute(instance)

    def to_representation(self, value):
        tags = value.all() if isinstance(value, models.Manager) else value
        return sorted(tag.name for tag in tags)


class SliceTextField(serializers.CharField):
    """`slice_text`: the slice as text, `age < 22 AND region in ("north", "south")`
    (slices.describe) when read; when written, the slice itself (slices.parse), as an
    alternative to the JSON `slice`."""

    def __init__(self, **kwargs):
        kwargs.update(source="*", required=False, allow_blank=True, max_length=100_000)
        kwargs.setdefault(
            "help_text",
            'The slice as text, e.g. age < 22 AND region in ("north", "south"); '
            "give it or `slice`, not both.",
        )
        super().__init__(**kwargs)

    def to_representation(self, instance):
        try:
            return slices.describe(instance.slice)
        except (slices.ProbeDefinitionError, KeyError, TypeError, IndexError):
            return ""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return {"slice": slices.parse(text)}
        except slices.SliceSyntaxError as exc:
            raise serializers.ValidationError(str(exc)) from exc


def refuse_two_slices(serializer):
    """A request gives the slice as `slice` or as `slice_text`; both only when they say
    the same (as a PUT of what a GET answered does)."""
    data = getattr(serializer, "initial_data", None)
    if not (hasattr(data, "keys") and "slice" in data and "slice_text" in data):
        return
    try:
        same = slices.parse(data["slice_text"]) == data["slice"]
    except (slices.SliceSyntaxError, TypeError):
        same = False
    if not same:
        raise serializers.ValidationError(
            {"slice_text": ["Give the slice as slice or as slice_text, not both."]}
        )


def _generic_reader(field):
    """DRF's own reading of one field (Serializer.to_representation, one iteration)."""

    def read(instance):
        attribute = field.get_attribute(instance)
        check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
        return None if check_for_none is None else field.to_representation(attribute)

    return read


def _column_reader(field, get):
    convert = str if type(field) is serializers.CharField else field.to_representation

    def read(instance):
        value = get(instance)
        return None if value is None else convert(value)

    return read


def _datetime_reader(field, get):
    """DateTimeField.to_representation with its time zone looked up once per list
    rather than once per value (ISO 8601, "Z" for UTC); anything unusual goes through the
    field itself."""
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()

    def read(instance):
        value = get(instance)
        if value is None:
            return None
        if (
            zone is None
            or not isinstance(output_format, str)
            or output_format.lower() != ISO_8601
            or isinstance(value, str)
            or not timezone.is_aware(value)
        ):
            return field.to_representation(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return field.to_representation(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return read


def _reader_factory(field, model):
    """A function that makes the reader of `field` of a `model` instance: the same result
    as DRF's get_attribute + to_representation, minus the per-row machinery when the
    field is a plain column of the model (a related field that shows the pk reads the
    column, `ml_model_id`; a text field is str() of the column; any other calls the
    field's own to_representation on the column)."""
    attrs = getattr(field, "source_attrs", None) or []
    try:
        model_field = model._meta.get_field(attrs[0]) if len(attrs) == 1 else None
    except FieldDoesNotExist:
        model_field = None
    if model_field is None or not model_field.concrete or model_field.many_to_many:
        return lambda: _generic_reader(field)
    get = operator.attrgetter(model_field.attname)
    if isinstance(field, serializers.PrimaryKeyRelatedField):
        if not (model_field.is_relation and field.use_pk_only_optimization()) or field.pk_field:
            return lambda: _generic_reader(field)
        return lambda: get
    if model_field.is_relation or type(field).get_attribute is not serializers.Field.get_attribute:
        return lambda: _generic_reader(field)
    if type(field) is serializers.DateTimeField:
        return lambda: _datetime_reader(field, get)
    return lambda: _column_reader(field, get)


class RowsSerializer(serializers.ListSerializer):
    """A list of instances, each represented exactly as its serializer does it, with the
    plan of how to read each field made once instead of once per row and field (a page
    of findings holds 26 fields per row).

    When every field is of a kind that reads nothing but the instance (no request, no
    context), the plan is kept for the serializer class, so that a list does not build
    the serializer's fields at all; a serializer that opts in (Meta.list_serializer_class)
    must therefore not vary its fields by request."""

    _plans: dict = {}

    def plan(self):
        child = self.child
        key = type(child)
        plan = self._plans.get(key)
        if plan is None:
            model = child.Meta.model
            fields = list(child._readable_fields)
            plan = [(f.field_name, _reader_factory(f, model)) for f in fields]
            if all(type(f) in _CONTEXT_FREE for f in fields):
                self._plans[key] = plan
        return plan

    def to_representation(self, data):
        rows = data.all() if isinstance(data, models.manager.BaseManager) else data
        readers = [(name, make()) for name, make in self.plan()]
        out = []
        for instance in rows:
            row = {}
            for name, read in readers:
                try:
                    row[name] = read(instance)
                except SkipField:
                    continue
            out.append(row)
        return out


# Field kinds whose reading depends on the instance alone (RowsSerializer keeps their plan).
_CONTEXT_FREE = frozenset(
    {
        serializers.BigIntegerField,
        serializers.IntegerField,
        serializers.CharField,
        serializers.BooleanField,
        serializers.ChoiceField,
        serializers.JSONField,
        serializers.DateField,
        serializers.DateTimeField,
        serializers.PrimaryKeyRelatedField,
        TagNamesField,
        SliceTextField,
    }
)


class FindingSerializer(ModelCleanMixin, serializers.ModelSerializer):
    tags = TagNamesField(required=False, default=list)
    slice_text = SliceTextField()
    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Finding
        list_serializer_class = RowsSerializer
        fields = [
            "id",
            "title",
            "summary",
            "description",
            "ml_model",
            "model_version",
            "dataset",
            "slice",
            "slice_text",
            "evidence",
            "severity",
            "risk_category",
            "status",
            "status_note",
            "harms",
            "affected_stakeholders",
            "policy_reference",
            "lesson",
            "remaining_gaps",
            "accepted_until",
            "tags",
            "owner",
            "reporter",
            "is_key_lesson",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "status_note",
            "accepted_until",
            "reporter",
            "is_key_lesson",
            "created_at",
            "updated_at",
        ]

    def validate_evidence(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Evidence must be a JSON object.")
        return value

    def validate_slice(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("A slice is a list of predicates.")
        return value

    def validate(self, attrs):
        refuse_two_slices(self)
        ml_model = attrs.get("ml_model") or getattr(self.instance, "ml_model", None)
        if ml_model is not None and attrs.get("dataset") is not None:
            try:
                ml_model.check_owns(attrs["dataset"], field="dataset")
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from exc
        return super().validate(attrs)

    @transaction.atomic
    def create(self, validated):
        names = validated.pop("tags", [])
        finding = Finding.objects.create(reporter=self.context["request"].user, **validated)
        finding.tags.set(Tag.from_names(names))
        return finding

    @transaction.atomic
    def update(self, instance, validated):
        names = validated.pop("tags", None)
        finding = super().update(instance, validated)
        if names is not None:
            finding.tags.set(Tag.from_names(names))
        return finding


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "slug"]
        read_only_fields = ["slug"]


class FindingTransitionSerializer(TransitionSerializer):
    expires_on = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="Accepting a risk: the date the acceptance expires (YYYY-MM-DD), at most "
        "RISK_ACCEPTANCE_MAX_DAYS (default 180) days ahead.",
    )


class KeyLessonSerializer(serializers.Serializer):
    is_key_lesson = serializers.BooleanField(default=True)
