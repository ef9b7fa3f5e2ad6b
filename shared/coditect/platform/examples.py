"""Examples for every component schema of the OpenAPI document, made from the schema itself.

Example-based testing (schemathesis' `examples` phase) and generated clients' docs need a value
for every body and answer. A model may give its own (`json_schema_extra={"examples": [...]}`);
every other schema gets one built here from its type, format, bounds and field names. Only what
the contract's schemas use is handled: objects, arrays, strings (formats, lengths, the few
patterns below), integers, numbers, booleans, enums, consts, `anyOf`/`oneOf` and `$ref`s.
"""

from __future__ import annotations

from typing import Any

_FORMATS = {
    "uuid": "0b5c1b9e-3f1e-4c4e-9a57-2f1d0c8e6a41",
    "date-time": "2026-01-15T09:30:00Z",
    "email": "ada@example.com",
    "uri": "https://coditect.local/",
    "binary": "",
}
# Example strings by property name, where a generic "string" would not be a realistic value.
_BY_NAME = {
    "email": "ada@example.com",
    "password": "correct horse battery staple 42",
    "current_password": "correct horse battery staple 42",
    "new_password": "a different long passphrase 7",
    "name": "Ada Lovelace",
    "tenant_name": "Analytical Engines",
    "path": "src/main.py",
    "from": "src/old.py",
    "to": "src/new.py",
    "prefix": "src",
    "key": "editor.theme",
    "title": "Refactor the parser",
    "role": "member",
    "content": "Hello!",
}
_PATTERNS = {"^[a-z0-9._-]{1,128}$": "editor.theme"}
_MAX_DEPTH = 6


def add_examples(components: dict[str, Any]) -> None:
    """Give every schema of `components` (name → schema) an `examples` list, in place."""
    for schema in components.values():
        if "examples" not in schema:
            schema["examples"] = [example(schema, components)]


def example(schema: dict[str, Any], components: dict[str, Any], name: str = "", depth: int = 0) -> Any:
    """A value valid against `schema` (refs resolved in `components`)."""
    if schema.get("examples"):
        return schema["examples"][0]
    if "$ref" in schema:
        target = components[schema["$ref"].rsplit("/", 1)[-1]]
        return example(target, components, name, depth + 1) if depth < _MAX_DEPTH else {}
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if options:
            return example(options[0], components, name, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {}) if depth < _MAX_DEPTH else {}
        return {key: example(sub, components, key, depth + 1) for key, sub in props.items()}
    if kind == "array":
        items = schema.get("items", {})
        count = max(1, schema.get("minItems", 0)) if depth < _MAX_DEPTH else schema.get("minItems", 0)
        return [example(items, components, name, depth + 1) for _ in range(count)]
    return _scalar(schema, kind, name)


def _scalar(schema: dict[str, Any], kind: str | None, name: str) -> Any:
    if kind == "integer":
        return max(schema.get("minimum", 1), 1) if "maximum" not in schema else schema.get("minimum", 0)
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return False
    if kind == "string" or (kind is None and name):
        return _string(schema, name)
    return {}


def _string(schema: dict[str, Any], name: str) -> str:
    text = _FORMATS.get(schema.get("format", ""))
    if text is None:
        text = _PATTERNS.get(schema.get("pattern", ""), _BY_NAME.get(name, "text"))
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if high is not None and len(text) > high:
        text = text[:high]
    return text
