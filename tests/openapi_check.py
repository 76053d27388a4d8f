"""Checks Hivemind's OpenAPI document with a real validator, then every response a test
received against the schema the document gives it (JSON Schema 2020-12, as OpenAPI 3.1).

usage: python3 openapi_check.py DOCUMENT.json SAMPLES.json
SAMPLES is a list of {"method", "path" (the route's template), "status", "body"}.
Prints one line per problem and exits 1 if there is any.
"""
import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate


def problems(doc, samples):
    for s in samples:
        where = f"{s['method']} {s['path']} -> {s['status']}"
        operation = doc["paths"].get(s["path"], {}).get(s["method"].lower())
        if operation is None:
            yield f"{where}: the route is not in the document"
            continue
        status = str(s["status"])
        response = operation["responses"].get(status) or operation["responses"].get(status[0] + "XX")
        if response is None:
            yield f"{where}: the status is not documented"
            continue
        content = response.get("content", {})
        if s["body"] is None:
            if content:
                yield f"{where}: no body came, but the document says {sorted(content)}"
            continue
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            yield f"{where}: a JSON body came, but the document gives it no JSON schema"
            continue
        # The schema's $refs point into the document's components.
        root = dict(schema, components=doc["components"])
        for error in Draft202012Validator(root).iter_errors(s["body"]):
            path = "/".join(str(p) for p in error.absolute_path)
            yield f"{where}: at /{path}: {error.message[:300]}"


def main():
    doc = json.load(open(sys.argv[1]))
    validate(doc)
    samples = json.load(open(sys.argv[2]))
    found = list(problems(doc, samples))
    for p in found:
        print(p)
    print(f"checked the document and {len(samples)} responses: {len(found)} problems")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
