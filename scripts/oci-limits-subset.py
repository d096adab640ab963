#!/usr/bin/env python3
"""Extracts the OCI Limits API subset kasm-autoscale's OCI `preflight` uses from Oracle's official
Python SDK into tests/oci/limits-subset.json, shaped like the OCI spec the rest of the OCI provider
was checked against (`oci-sdk-api.json`: clients, operations, models).

Usage:
  pip download oci==2.189.0 --no-deps -d /tmp/ociwheel
  python3 scripts/oci-limits-subset.py /tmp/ociwheel/oci-2.189.0-py3-none-any.whl > tests/oci/limits-subset.json

Only facts are taken, never code: `oci/limits/limits_client.py` and `oci/limits/models/*.py` are read
from the wheel (a zip) as Python syntax (`ast`, never executed):
- the client: `LimitsClient.__init__`'s `base_client_init_kwargs` (`base_path`,
  `service_endpoint_template`);
- each operation we call (a method of `LimitsClient`): `resource_path`, `method`, `api_reference_link`,
  `required_arguments`, the keys of the `path_params`, `query_params` and `header_params` dict
  literals (a header whose value is a string literal is `{"fixed": value}`, any other
  `{"required": false}`; a path or query parameter is required when `required_arguments` names it),
  the `<param>_allowed_values` lists, and `response_type` of the `call_api` call;
- each model we read: `swagger_types` and `attribute_map` of `__init__` (wire names), `**[Required]**`
  in a property's getter docstring, `allowed_values` in its setter (an enum), the base class.
Output is deterministic (sorted keys) and records the wheel's name and sha256.
Python 3 standard library only.
"""

import ast
import hashlib
import json
import sys
import zipfile

WHEEL = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ociwheel/oci-2.189.0-py3-none-any.whl"
CLIENT_FILE = "oci/limits/limits_client.py"
CLIENT = "LimitsClient"
# The operations preflight calls.
OPERATIONS = ["get_resource_availability", "list_limit_definitions"]
# The models they answer (file name under oci/limits/models/, class name).
MODELS = [("resource_availability.py", "ResourceAvailability"), ("limit_definition_summary.py", "LimitDefinitionSummary")]


def literal(node):
    return ast.literal_eval(node)


def dict_keys_and_values(node):
    return [(literal(k), v) for k, v in zip(node.keys, node.values)]


def first_assign(body, name):
    """The value node of the first `name = ...` among `body`'s statements (not nested)."""
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return stmt.value
    return None


def client_info(tree):
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == CLIENT)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    kwargs = None
    for stmt in ast.walk(init):
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "base_client_init_kwargs" for t in stmt.targets
        ):
            kwargs = stmt.value
            break
    if kwargs is None:
        sys.exit("LimitsClient.__init__ has no base_client_init_kwargs")
    out = {}
    for k, v in dict_keys_and_values(kwargs):
        if k in ("base_path", "service_endpoint_template"):
            out[k] = literal(v)
    out["file"] = CLIENT_FILE
    return cls, out


def operation(cls, name):
    fn = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if fn is None:
        sys.exit(f"{CLIENT}.{name} not found")
    body = fn.body
    required = set(literal(first_assign(body, "required_arguments")))
    op = {
        "method": literal(first_assign(body, "method")),
        "resource_path": literal(first_assign(body, "resource_path")),
        "api_reference_link": literal(first_assign(body, "api_reference_link")),
    }
    for kind in ("path_params", "query_params"):
        node = first_assign(body, kind)
        if node is not None:
            op[kind] = {k: {"required": k in required} for k, _ in dict_keys_and_values(node)}
    headers = {}
    for k, v in dict_keys_and_values(first_assign(body, "header_params")):
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            headers[k] = {"fixed": v.value}
        else:
            headers[k] = {"required": False}
    op["header_params"] = headers
    allowed = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id.endswith("_allowed_values"):
                    allowed[t.id[: -len("_allowed_values")]] = literal(node.value)
    if allowed:
        op["allowed_values"] = allowed
    response_types = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "response_type":
                    response_types.add(literal(kw.value))
    if len(response_types) != 1:
        sys.exit(f"{CLIENT}.{name}: expected one response_type, found {sorted(response_types)}")
    op["response_type"] = response_types.pop()
    return op


def model(tree, class_name):
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    base = None
    if cls.bases and not (isinstance(cls.bases[0], ast.Name) and cls.bases[0].id == "object"):
        base = ast.unparse(cls.bases[0])
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    types, wire = {}, {}
    for stmt in init.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute):
            attr = stmt.targets[0].attr
            if attr == "swagger_types":
                types = {k: literal(v) for k, v in dict_keys_and_values(stmt.value)}
            elif attr == "attribute_map":
                wire = {k: literal(v) for k, v in dict_keys_and_values(stmt.value)}
    fields = {}
    for py, ty in types.items():
        f = {"type": ty}
        for fn in cls.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name == py):
                continue
            is_setter = any(ast.unparse(d).endswith(".setter") for d in fn.decorator_list)
            doc = ast.get_docstring(fn) or ""
            if not is_setter and "**[Required]**" in doc:
                f["required"] = True
            if is_setter:
                values = first_assign(fn.body, "allowed_values")
                if values is not None:
                    f["enum"] = literal(values)
        fields[wire[py]] = f
    return {"base": base, "fields": fields}


def main():
    data = open(WHEEL, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(WHEEL) as z:
        version = next(
            line.split(":", 1)[1].strip()
            for n in z.namelist()
            if n.endswith(".dist-info/METADATA")
            for line in z.read(n).decode().splitlines()
            if line.startswith("Version:")
        )
        tree = ast.parse(z.read(CLIENT_FILE).decode())
        cls, client = client_info(tree)
        operations = {f"{CLIENT}.{name}": operation(cls, name) for name in OPERATIONS}
        models = {}
        for file, name in MODELS:
            models[name] = model(ast.parse(z.read(f"oci/limits/models/{file}").decode()), name)
    out = {
        "SOURCE": (
            f"Extracted by scripts/oci-limits-subset.py from Oracle's Python SDK, PyPI wheel "
            f"{WHEEL.rsplit('/', 1)[-1]} (oci {version}, UPL-1.0 or Apache-2.0): {CLIENT_FILE} "
            f"({CLIENT}: base_client_init_kwargs; {', '.join(OPERATIONS)}) and oci/limits/models/"
            f"{{{', '.join(f for f, _ in MODELS)}}} (swagger_types, attribute_map, **[Required]**, allowed_values). "
            "Same layout as oci-sdk-api.json (clients, operations, models). Facts only."
        ),
        "wheel": WHEEL.rsplit("/", 1)[-1],
        "wheel_sha256": sha,
        "sdk_version": version,
        "clients": {CLIENT: client},
        "operations": operations,
        "models": {"limits": models},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


main()
