"""Request and response models generated from a model version's :class:`~mlplug.schema.Schema`.

They serve two purposes: validating requests (every field typed by its column's role, extra
fields refused, numbers finite) and documenting the API, so that ``/docs`` shows the real
feature names and types of the served model. A record validates into one *row*: the
feature values in schema order, normalised as :meth:`Schema.validate` would, which is what
:class:`mlplug.task.RowModel` models score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, create_model

from mlplug.schema import Column, Role, Schema

#: What each role accepts, as told in validation errors and in /docs.
EXPECTED = {
    Role.NUMERIC: "a finite number",
    Role.CATEGORICAL: "a string",
    Role.TEXT: "a string",
    Role.BOOLEAN: "a boolean (true/false or 0/1)",
}

_FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: JSON true/false, or 0/1 as many clients encode flags.
_Flag = StrictBool | Literal[0, 1]
_Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class RequestError(Exception):
    """A request that cannot be served as sent; becomes a 422 listing every problem."""

    def __init__(self, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or []

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"error": self.message}
        if self.detail:
            body["detail"] = self.detail
        return orjson.dumps(body)


class ErrorResponse(BaseModel):
    error: str
    detail: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class ParsedRequest:
    rows: list[list[Any]]
    #: The id column's value per row (``None`` where not given), or ``None`` without one.
    ids: list[Any] | None
    batch: bool


def _field_type(column: Column) -> Any:
    base: Any = {
        Role.NUMERIC: _FiniteFloat,
        Role.CATEGORICAL: str,
        Role.TEXT: str,
        Role.BOOLEAN: _Flag,
    }[column.role]
    return base | None if column.nullable else base


def _field(column: Column) -> tuple[Any, Any]:
    description = " ".join(
        filter(None, [column.description, f"({column.role.value}: {EXPECTED[column.role]})"])
    )
    default = None if column.nullable else ...
    return _field_type(column), Field(default, alias=column.name, description=description)


def _converter(column: Column) -> Callable[[Any], Any] | None:
    """How a validated value becomes what :meth:`Schema.validate` would have made of it."""
    if column.role is Role.BOOLEAN:
        return (lambda v: math.nan if v is None else float(v)) if column.nullable else float
    if column.role is Role.NUMERIC:
        return (lambda v: math.nan if v is None else v) if column.nullable else None
    return (lambda v: "" if v is None else v) if column.nullable else None


@dataclass(frozen=True)
class RequestContract:
    """The API of one served schema: pydantic models plus the record -> row conversion."""

    schema: Schema
    record: type[BaseModel]
    predict_batch: type[BaseModel]
    explain_batch: type[BaseModel]
    prediction: type[BaseModel]
    single_response: type[BaseModel]
    batch_response: type[BaseModel]
    explanation: type[BaseModel]
    max_batch: int
    max_explain_rows: int
    #: (attribute name, converter or None) per feature, in schema order.
    plan: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    id_attr: str | None

    def parse(self, body: bytes, *, explain: bool = False) -> ParsedRequest:
        """Validate a request body (one record, or ``{"records": [...]}``) into rows."""
        if not body.strip():
            raise RequestError('the request body is empty; send one JSON record or {"records": [...]}')
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                f"the request body is not valid JSON: {exc}",
                [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}],
            ) from None
        records = data.get("records") if isinstance(data, dict) else None
        if isinstance(records, list):
            limit = self.max_explain_rows if explain else self.max_batch
            if len(records) > limit:
                what = "MLPLUG_MAX_EXPLAIN_ROWS" if explain else "MLPLUG_MAX_BATCH"
                raise RequestError(
                    f"the batch has {len(records)} records; at most {limit} are allowed ({what})",
                    [{"loc": ["body", "records"], "msg": f"at most {limit} records", "type": "too_long"}],
                )
            model = self.explain_batch if explain else self.predict_batch
            validated = self._validate(model, data)
            instances = validated.records  # type: ignore[attr-defined]
            batch = True
        else:
            instances = [self._validate(self.record, data)]
            batch = False
        plan = self.plan
        rows = []
        for inst in instances:
            values = inst.__dict__
            rows.append([values[attr] if conv is None else conv(values[attr]) for attr, conv in plan])
        ids = [inst.__dict__[self.id_attr] for inst in instances] if self.id_attr else None
        return ParsedRequest(rows=rows, ids=ids, batch=batch)

    def _validate(self, model: type[BaseModel], data: Any) -> BaseModel:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestError(_summary(exc, self.schema), _details(exc, self.schema)) from None


def _details(exc: ValidationError, schema: Schema) -> list[dict[str, Any]]:
    """One item per offending field: where it is, what is wrong, what its column expects."""
    roles = {c.name: c.role for c in schema.features}
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc, field = _field_loc(err["loc"])
        if loc in seen:  # a union (true/false or 0/1) reports one error per alternative
            continue
        seen.add(loc)
        item: dict[str, Any] = {"loc": ["body", *loc], "msg": err["msg"], "type": err["type"]}
        if field is not None:
            item["field"] = field
            if field in roles:
                item["expected"] = EXPECTED[roles[field]]
                if roles[field] is Role.BOOLEAN:
                    item["msg"] = "Input should be true/false or 0/1"
        out.append(item)
    return out


def _field_loc(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], str | None]:
    """The location up to the field name (dropping union branch tags), and the field."""
    start = 2 if len(loc) > 2 and loc[0] == "records" and isinstance(loc[1], int) else 0
    if start < len(loc) and isinstance(loc[start], str):
        return tuple(loc[: start + 1]), str(loc[start])
    return tuple(loc), None


def _summary(exc: ValidationError, schema: Schema) -> str:
    parts = []
    for item in _details(exc, schema)[:5]:
        where = ".".join(str(p) for p in item["loc"][1:]) or "body"
        expected = f" (expected {item['expected']})" if "expected" in item else ""
        parts.append(f"{where}: {item['msg']}{expected}")
    more = len(_details(exc, schema)) - len(parts)
    return "invalid request: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def build_contract(
    schema: Schema, *, max_batch: int, max_explain_rows: int, example: Mapping[str, Any] | None = None
) -> RequestContract:
    """Pydantic models for ``schema``. Python attribute names are ``f0, f1, ...`` with the
    column names as aliases, so that any column name (spaces, keywords) is a valid field."""
    fields: dict[str, Any] = {}
    plan = []
    for i, column in enumerate(schema.features):
        attr = f"f{i}"
        fields[attr] = _field(column)
        plan.append((attr, _converter(column)))
    id_attr = None
    feature_names = set(schema.feature_names)
    if schema.id_column and schema.id_column not in feature_names:
        id_attr = "row_id"
        fields[id_attr] = (
            str | int | None,
            Field(None, alias=schema.id_column, description="Echoed in the prediction; not a feature."),
        )
    if (
        schema.time_column
        and schema.time_column not in feature_names
        and schema.time_column != schema.id_column
    ):
        fields["event_time"] = (
            str | None,
            Field(None, alias=schema.time_column, description="Accepted for the record; not a feature."),
        )
    extra = {"examples": [dict(example)]} if example else None
    record = create_model(  # type: ignore[call-overload]
        "Record",
        # Strict: a request must match the published schema (no "12" for a number, no 7 for
        # a category), so what /docs promises is exactly what is accepted.
        __config__=ConfigDict(
            extra="forbid", strict=True, populate_by_name=False, json_schema_extra=extra, title="Record"
        ),
        **fields,
    )

    def batch(name: str, limit: int) -> type[BaseModel]:
        return create_model(  # type: ignore[call-overload]
            name,
            __config__=ConfigDict(extra="forbid", strict=True),
            records=(list[record], Field(..., min_length=1, max_length=limit)),  # type: ignore[valid-type]
        )

    labels = tuple(schema.classes)
    pred_fields: dict[str, Any] = {}
    if id_attr:
        pred_fields[id_attr] = (str | int | None, Field(None, alias=schema.id_column))
    pred_fields["prediction"] = (Literal[labels], ...)  # type: ignore[valid-type]
    probability_doc = f"P({labels[1]})" if schema.is_binary else "probability of the predicted class"
    pred_fields["probability"] = (_Probability, Field(..., description=probability_doc))
    if not schema.is_binary:
        pred_fields["probabilities"] = (dict[str, _Probability], Field(..., description="per class"))
    prediction = create_model("Prediction", **pred_fields)  # type: ignore[call-overload]
    single = create_model(  # type: ignore[call-overload]
        "PredictionResponse", __base__=prediction, model_version=(int, ...)
    )
    batch_response = create_model(  # type: ignore[call-overload]
        "BatchPredictionResponse",
        model_version=(int, ...),
        predictions=(list[prediction], ...),  # type: ignore[valid-type]
    )
    explanation = create_model(  # type: ignore[call-overload]
        "ExplanationResponse",
        model_version=(int, ...),
        kind=(str, ...),
        global_importance=(dict[str, float], ...),
        per_row=(list[dict[str, float]], ...),
    )
    return RequestContract(
        schema=schema,
        record=record,
        predict_batch=batch("PredictBatch", max_batch),
        explain_batch=batch("ExplainBatch", max_explain_rows),
        prediction=prediction,
        single_response=single,
        batch_response=batch_response,
        explanation=explanation,
        max_batch=max_batch,
        max_explain_rows=max_explain_rows,
        plan=tuple(plan),
        id_attr=id_attr,
    )


def example_record(schema: Schema, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-able request example from one validated data row (``None`` if it does not fit)."""
    if row is None or any(name not in row for name in schema.feature_names):
        return None
    out: dict[str, Any] = {}
    for column in schema.features:
        value = row[column.name]
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif column.role is Role.BOOLEAN:
            value = bool(value)
        elif column.role is Role.NUMERIC:
            value = float(value)
        else:
            value = str(value)
        if value is None and not column.nullable:
            return None
        out[column.name] = value
    return out


def same_features(a: Schema, b: Schema) -> bool:
    """True when both schemas take the same request (names, roles, nullability, order)."""
    key = lambda s: [(c.name, c.role, c.nullable) for c in s.features]  # noqa: E731
    return key(a) == key(b) and tuple(a.classes) == tuple(b.classes) and a.id_column == b.id_column


def openapi_body(*models: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a body read by hand (the fast path) but documented as models."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    schema: dict[str, Any] = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def component_schemas(models: Sequence[type[BaseModel]]) -> dict[str, Any]:
    """JSON schemas of ``models`` and everything they reference, for OpenAPI components."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    return dict(top.get("$defs", {}))
