"""Nothing in app/ patches or reaches into another library's internals (issue 11).

The data path used to be httpx, httpcore and h11 patched from outside: about 20 private names, process-wide, pinned to
versions that stopped getting releases. Libraries are used through their public API or the code is our own. An AST
scan of every module under app/ enforces it, for every library (the standard library included):

* no import of a private module or name (``import h11._connection``, ``from httpcore import _async``);
* no private segment in an attribute chain that starts at an imported name (``httpcore._async.http11``);
* no assignment into an imported module or class (``SomeClass.READ_NUM_BYTES = …``: a process-wide patch);
* no ``getattr``/``setattr``/``hasattr``/``delattr`` of a literal private name on anything but ``self``/``cls``
  (``getattr(client, "_transport")``);
* no class based on a private class of a library.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
#: Underscored names that are documented public API.
DOCUMENTED = frozenset({"os._exit"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ours(module: str | None, level: int) -> bool:
    return level > 0 or module is None or module == "app" or module.startswith("app.")


def _chain(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None when it does not start at a plain name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def scan(source: str, path: str) -> list[Finding]:
    tree = ast.parse(source, path)
    found: list[Finding] = []
    foreign: set[str] = set()  # names bound to another library's modules, classes, functions

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name, 0):
                    continue
                if any(_private(p) for p in alias.name.split(".")):
                    found.append(Finding(path, node.lineno, f"imports the private module {alias.name}"))
                foreign.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if _ours(node.module, node.level):
                continue
            assert node.module is not None
            if any(_private(p) for p in node.module.split(".")):
                found.append(Finding(path, node.lineno, f"imports from the private module {node.module}"))
            for alias in node.names:
                if _private(alias.name):
                    found.append(Finding(path, node.lineno, f"imports the private name {node.module}.{alias.name}"))
                foreign.add(alias.asname or alias.name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = _chain(node)
            if chain and chain[0] in foreign and any(_private(p) for p in chain[1:]) and \
                    ".".join(chain) not in DOCUMENTED:
                found.append(Finding(path, node.lineno, f"reaches into {'.'.join(chain)}"))
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            chain = _chain(target) if isinstance(target, ast.Attribute) else None
            if chain and chain[0] in foreign:
                found.append(Finding(path, node.lineno, f"assigns into another library: {'.'.join(chain)}"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2:
            obj, name = node.args[0], node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _private(name.value) and \
                    not (isinstance(obj, ast.Name) and obj.id in ("self", "cls")):
                found.append(Finding(path, node.lineno, f"{node.func.id}(…, {name.value!r}) on another object"))
            if node.func.id in ("setattr", "delattr"):
                chain = _chain(obj) if isinstance(obj, ast.Attribute | ast.Name) else None
                if chain and chain[0] in foreign:
                    found.append(Finding(path, node.lineno, f"{node.func.id} on another library: {'.'.join(chain)}"))
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                chain = _chain(base)
                if chain and chain[0] in foreign and any(_private(p) for p in chain):
                    found.append(Finding(path, node.lineno, f"subclasses the private {'.'.join(chain)}"))
    return found


def test_nothing_in_app_reaches_into_another_librarys_internals() -> None:
    findings = [f for path in sorted(APP.rglob("*.py"))
                for f in scan(path.read_text(encoding="utf-8"), str(path.relative_to(APP.parent)))]
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize("source, what", [
    ("from httpcore._async.http11 import AsyncHTTP11Connection\n", "private module"),
    ("import h11._connection\n", "private module"),
    ("from httpx import _transports\n", "private name"),
    ("import h11\nh11._connection.ReceiveBuffer = object\n", "reaches into"),
    ("from httpcore import AsyncConnectionPool\nAsyncConnectionPool.READ_NUM_BYTES = 1 << 20\n", "assigns into"),
    ("def f(client):\n    return getattr(client, '_transport', None)\n", "getattr"),
    ("import httpx\nsetattr(httpx, 'AsyncClient', object)\n", "setattr on another library"),
    ("import h11\nclass B(h11._receivebuffer.ReceiveBuffer):\n    pass\n", "subclasses the private"),
])
def test_the_scan_finds_each_kind_of_reaching_in(source: str, what: str) -> None:
    """Each rule catches what it names (the removed nettune.py did all of these)."""
    assert any(what in f.what for f in scan(source, "x.py")), scan(source, "x.py")


def test_the_scan_leaves_our_own_private_names_and_public_use_alone() -> None:
    source = ("import httpx\nfrom app.engine import wire\n\nclass T(httpx.AsyncBaseTransport):\n"
              "    def f(self):\n        self._x = wire._private_helper\n        return getattr(self, '_x')\n")
    assert scan(source, "ok.py") == []
