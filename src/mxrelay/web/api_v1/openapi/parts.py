"""The pieces the operations of the OpenAPI document share: references, bodies, the common
parameters and answers. Plain dictionaries, as the document is JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Json = dict[str, Any]

TEXT = "text/plain; charset=utf-8"


def ref(kind: str, name: str) -> Json:
    """A reference to a component: `ref("schemas", "Message")`."""
    return {"$ref": f"#/components/{kind}/{name}"}


def schema(name: str) -> Json:
    return ref("schemas", name)


def json_body(body_schema: Json) -> Json:
    return {"application/json": {"schema": body_schema}}


def answer(description: str, content: Json | None = None, headers: Json | None = None) -> Json:
    """One response object."""
    found: Json = {"description": description}
    if content is not None:
        found["content"] = content
    if headers is not None:
        found["headers"] = headers
    return found


def json_answer(description: str, body_schema: Json) -> Json:
    return answer(description, json_body(body_schema))


def text_answer(description: str) -> Json:
    return answer(description, {"text/plain": {"schema": {"type": "string"}}})


def obj(properties: Mapping[str, Json], *, required: Iterable[str] | None = None) -> Json:
    """A closed object: exactly these keys (all of them unless `required` says otherwise).

    Mailpit's objects are closed: strict clients compare key sets, so a key too many is a bug the
    schema check should catch.
    """
    keys = list(properties) if required is None else list(required)
    return {
        "type": "object",
        "properties": dict(properties),
        "required": keys,
        "additionalProperties": False,
    }


def request_obj(properties: Mapping[str, Json], *, required: Iterable[str] = ()) -> Json:
    """A request body object: these keys, others ignored (as Go's JSON decoder ignores them)."""
    found: Json = {"type": "object", "properties": dict(properties)}
    if keys := list(required):
        found["required"] = keys
    return found


def array(items: Json) -> Json:
    return {"type": "array", "items": items}


STRING: Json = {"type": "string"}
BOOLEAN: Json = {"type": "boolean"}
COUNT: Json = {"type": "integer", "minimum": 0}
TIMESTAMP: Json = {"type": "string", "format": "date-time"}
STRINGS: Json = array(STRING)


def described(base: Json, description: str) -> Json:
    return {**base, "description": description}


def nullable(base: Json) -> Json:
    """`base` or JSON null (OpenAPI 3.1: a type list)."""
    return {**base, "type": [base["type"], "null"]}


def path_parameter(name: str, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": STRING,
    }


def query_parameter(
    name: str, description: str, value: Json = STRING, *, required: bool = False
) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": value,
    }


def operation(
    operation_id: str,
    summary: str,
    description: str,
    *,
    tag: str,
    answers: Mapping[str, Json],
    parameters: Iterable[Json] = (),
    body: Json | None = None,
    body_required: bool = False,
) -> Json:
    """One operation. Every one may meet the refusals every route shares: 400 for a `Host` the
    relay does not answer to, 401 without valid credentials (when the relay has users), 403 for a
    viewer acting or a request from another site, 429 past the failed-login budget."""
    responses: Json = {**answers}
    responses.setdefault("400", ref("responses", "Error"))
    responses["401"] = ref("responses", "Unauthorized")
    responses["403"] = ref("responses", "Forbidden")
    responses["429"] = ref("responses", "TooManyFailures")
    found: Json = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "responses": responses,
    }
    if params := list(parameters):
        found["parameters"] = params
    if body is not None:
        found["requestBody"] = {"required": body_required, "content": json_body(body)}
    return found
