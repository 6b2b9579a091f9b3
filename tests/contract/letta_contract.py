"""Holds the requests the backend sent to Letta to the hosted Letta API's contract.

    letta_contract.py REQUESTS.jsonl

Each line of REQUESTS.jsonl is one request: {"method", "path", "query": {name: value},
"body": JSON or null}. The contract is the official client, letta-client (PyPI, 1.12.x): for
every endpoint its resources call, the HTTP method, the path template, the keys it puts in the
body and in the query, and their request types (TypedDicts). A request fails the check when its
endpoint is not one of them, when a body field or query parameter is not one the client sends,
has the wrong type, is missing though required, or is marked deprecated in the client's
docstrings. `/v1/providers` is absent from the client; its bodies are held to what letta-code
sends (`src/backend/api/providers.ts`). Every problem names the endpoint and the field; the exit
status is 1 when there is one.
"""

from __future__ import annotations

import ast
import collections.abc
import datetime
import functools
import importlib
import inspect
import json
import pathlib
import re
import sys
import typing

import typing_extensions

import letta_client
from letta_client import _types

HTTP_VERBS = {"_get": "GET", "_get_api_list": "GET", "_post": "POST", "_patch": "PATCH",
              "_put": "PUT", "_delete": "DELETE"}


class Endpoint(typing.NamedTuple):
    method: str
    template: str
    pattern: re.Pattern
    body_keys: frozenset | None
    body_type: type | None
    query_keys: frozenset | None
    query_type: type | None
    origin: str


# `/v1/providers` as letta-code drives it (letta-ai/letta-code, src/backend/api/providers.ts:
# createProvider, updateProvider, deleteProvider; listProviders reads the whole list).
class ProviderCreate(typing_extensions.TypedDict, total=False):
    name: typing_extensions.Required[str]
    provider_type: typing_extensions.Required[str]
    api_key: typing_extensions.Required[str]
    access_key: str
    region: str
    profile: str
    base_url: str


class ProviderUpdate(typing_extensions.TypedDict, total=False):
    api_key: typing_extensions.Required[str]
    access_key: str
    region: str
    profile: str
    base_url: str


def letta_code_endpoints() -> list[Endpoint]:
    def endpoint(method, template, body_type):
        keys = frozenset(typing.get_type_hints(body_type)) if body_type else None
        return Endpoint(method, template, pattern_of(template), keys, body_type, None, None,
                        "letta-code src/backend/api/providers.ts")
    return [
        endpoint("GET", "/v1/providers", None),
        endpoint("POST", "/v1/providers", ProviderCreate),
        endpoint("PATCH", "/v1/providers/{provider_id}", ProviderUpdate),
        endpoint("DELETE", "/v1/providers/{provider_id}", None),
    ]


def pattern_of(template: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", template.rstrip("/"))
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}/?$")


def client_endpoints() -> list[Endpoint]:
    """Every endpoint the client's synchronous resources call, read from their source."""
    root = pathlib.Path(letta_client.__file__).parent / "resources"
    found = []
    for path in sorted(root.rglob("*.py")):
        module_name = "letta_client." + ".".join(path.relative_to(root.parent).with_suffix("").parts)
        module = importlib.import_module(module_name)
        tree = ast.parse(path.read_text())
        for cls in tree.body:
            if isinstance(cls, ast.ClassDef) and not cls.name.startswith("Async"):
                for node in ast.walk(cls):
                    endpoint = endpoint_of(node, module, f"{module_name}.{cls.name}")
                    if endpoint:
                        found.append(endpoint)
    return found


def endpoint_of(node: ast.AST, module, origin: str) -> Endpoint | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in HTTP_VERBS and node.args):
        return None
    template = template_of(node.args[0])
    if template is None:
        return None
    kwargs = {k.arg: k.value for k in node.keywords}
    body_keys, body_type = transformed(kwargs.get("body"), module)
    query_keys, query_type = None, None
    options = kwargs.get("options")
    if isinstance(options, ast.Call):
        query = {k.arg: k.value for k in options.keywords}.get("query")
        query_keys, query_type = transformed(query, module)
    return Endpoint(HTTP_VERBS[node.func.attr], template, pattern_of(template), body_keys,
                    body_type, query_keys, query_type, origin)


def template_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "path_template":
        return template_of(node.args[0])
    return None


def transformed(node: ast.AST | None, module) -> tuple[frozenset | None, type | None]:
    """`maybe_transform({"key": value, …}, params_module.Params)`: its keys and type."""
    if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "maybe_transform"):
        return None, None
    data, kind = node.args[0], node.args[1]
    keys = frozenset(k.value for k in data.keys if isinstance(k, ast.Constant)) \
        if isinstance(data, ast.Dict) else None
    if isinstance(kind, ast.IfExp):
        # `A if stream else B`: the streaming variant, which carries every field of both.
        kind = kind.body
    params_module = getattr(module, kind.value.id)
    return keys, getattr(params_module, kind.attr)


def find(endpoints: list[Endpoint], method: str, path: str) -> Endpoint | None:
    matches = [e for e in endpoints if e.method == method and e.pattern.match(path)]
    # The most literal template wins (`…/archival-memory/search` over `…/archival-memory/{id}`).
    return max(matches, key=lambda e: len(re.sub(r"\{[^}]+\}", "", e.template)), default=None)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a TypedDict (where deprecation is written)."""
    docs = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(inspect.getsource(sys.modules[klass.__module__]))
        except (OSError, TypeError, KeyError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == klass.__name__:
                body = node.body
                for i, item in enumerate(body):
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        nxt = body[i + 1] if i + 1 < len(body) else None
                        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                            docs[item.target.id] = str(nxt.value.value)
    return docs


def deprecated(doc: str | None) -> str | None:
    if doc and re.search(r"deprecat", doc, re.IGNORECASE):
        return " ".join(doc.split())[:120]
    return None


def strip(tp):
    while True:
        origin = typing.get_origin(tp)
        if origin in (typing.Annotated, typing_extensions.Annotated):
            tp = typing.get_args(tp)[0]
        elif origin in (typing_extensions.Required, typing_extensions.NotRequired,
                        typing.Required, typing.NotRequired):
            tp = typing.get_args(tp)[0]
        else:
            return tp


def check(value, tp, where: str) -> list[str]:
    """What is wrong with `value` as a `tp`, each naming the field (`where`)."""
    tp = strip(tp)
    origin = typing.get_origin(tp)
    if tp in (typing.Any, object):
        return []
    if origin is typing.Union or (origin is not None and origin.__name__ == "UnionType"):
        results = [check(value, arm, where) for arm in typing.get_args(tp)]
        if any(not r for r in results):
            return []
        return min(results, key=len)
    if tp is type(None):
        return [] if value is None else [f"{where}: expected null, got {value!r:.60}"]
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        return [] if value in allowed else [f"{where}: {value!r} is not one of {allowed}"]
    if typing_extensions.is_typeddict(tp):
        return check_object(value, tp, where, None)
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        args = typing.get_args(tp)
        return [p for k, v in value.items() for p in (check(v, args[1], f"{where}.{k}") if args else [])]
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) or \
            tp is _types.SequenceNotStr or origin is _types.SequenceNotStr:
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        args = typing.get_args(tp)
        return [p for i, v in enumerate(value) for p in (check(v, args[0], f"{where}[{i}]") if args else [])]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: expected an integer"]
    if tp is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{where}: expected a number"]
    if tp is str or tp in (datetime.datetime, datetime.date):
        return [] if isinstance(value, str) else [f"{where}: expected a string"]
    return [f"{where}: cannot check type {tp!r}"]


def check_object(value, cls: type, where: str, keys: frozenset | None) -> list[str]:
    """A TypedDict: no unknown, deprecated or missing field, each field of its type. `keys`
    narrows the fields to those the client puts in this part of the request (the rest of the
    params type are path or query parameters)."""
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {value!r:.60}"]
    hints = typing.get_type_hints(cls, include_extras=True)
    allowed = set(hints) if keys is None else set(hints) & keys
    docs = field_docs(cls)
    problems = []
    for name in sorted(set(getattr(cls, "__required_keys__", ())) & allowed - set(value)):
        problems.append(f"{where}.{name}: required by {cls.__name__} but missing")
    for name, item in value.items():
        if name not in allowed:
            problems.append(f"{where}.{name}: not a field of {cls.__name__}")
            continue
        why = deprecated(docs.get(name))
        if why:
            problems.append(f"{where}.{name}: deprecated in {cls.__name__} ({why})")
        problems.extend(check(item, hints[name], f"{where}.{name}"))
    why = deprecated(cls.__doc__) if cls.__module__.startswith("letta_client") else None
    if why:
        problems.append(f"{where}: {cls.__name__} is deprecated ({why})")
    return problems


def check_request(request: dict, endpoints: list[Endpoint]) -> list[str]:
    method, path = request["method"], request["path"]
    name = f"{method} {path}"
    endpoint = find(endpoints, method, path)
    if endpoint is None:
        return [f"{name}: not an endpoint of letta-client {letta_client.__version__}"]
    name = f"{method} {endpoint.template}"
    problems = []
    body = request.get("body")
    if body is not None:
        if endpoint.body_type is None:
            problems.append(f"{name}: sends a body, which {endpoint.origin} does not")
        else:
            problems.extend(check_object(body, endpoint.body_type, f"{name} body", endpoint.body_keys))
    query = request.get("query") or {}
    if query and endpoint.query_type is None and endpoint.origin.startswith("letta_client"):
        problems.append(f"{name}: query {sorted(query)} where {endpoint.origin} sends none")
    elif query and endpoint.query_type is not None:
        hints = typing.get_type_hints(endpoint.query_type, include_extras=True)
        docs = field_docs(endpoint.query_type)
        for key in sorted(query):
            if key not in hints or (endpoint.query_keys is not None and key not in endpoint.query_keys):
                problems.append(f"{name} query {key}: not a parameter of {endpoint.query_type.__name__}")
            elif deprecated(docs.get(key)):
                problems.append(f"{name} query {key}: deprecated in {endpoint.query_type.__name__}")
    return problems


def main(path: str) -> int:
    endpoints = client_endpoints() + letta_code_endpoints()
    requests = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    problems: dict[str, None] = {}
    seen = set()
    for request in requests:
        endpoint = find(endpoints, request["method"], request["path"])
        seen.add(f"{request['method']} {endpoint.template if endpoint else request['path']}")
        for problem in check_request(request, endpoints):
            problems.setdefault(problem)
    for problem in problems:
        print(problem)
    print(f"{len(requests)} requests to {len(seen)} endpoints checked against letta-client "
          f"{letta_client.__version__} ({len(endpoints)} endpoints): {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
