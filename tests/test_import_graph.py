"""The package's import graph: no cycles (function-level imports included) and no library module
importing the CLI or the demos. Built from the source with ``ast``: an import inside a function,
which runs only when that function does, counts the same as one at the top of a file; imports
under ``if TYPE_CHECKING:`` never run and do not count."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "genforget"
ENTRY_ROOMS = (
    "genforget.cli",
    "genforget.demos",
    "genforget.__main__",
)  # may import anything; nothing may import them


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Import nodes of ``tree``, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def import_graph(root: Path = PKG) -> dict[str, set[str]]:
    """``module -> modules of the package it imports`` (``from a import b``: ``a.b`` when ``b`` is
    a module, else ``a``)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" for a in node.names] or [mod]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _entry(mod: str) -> bool:
    return any(mod == r or mod.startswith(r + ".") for r in ENTRY_ROOMS)


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (break each with a module both sides can import):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_library_code_never_imports_the_cli_or_the_demos():
    graph = import_graph()
    bad = sorted(f"{m} -> {d}" for m, deps in graph.items() if not _entry(m) for d in deps if _entry(d))
    assert not bad, "library modules importing entry points:\n" + "\n".join(bad)


def test_a_planted_cycle_is_found(tmp_path):
    # The checker itself must be able to fail: two modules importing each other, one of them only
    # inside a function; and a TYPE_CHECKING-only import, which must not count.
    pkg = tmp_path / "genforget"
    (pkg / "lm").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "lm" / "__init__.py").write_text("")
    (pkg / "config.py").write_text("from genforget.lm.trainer import unlearn\n")
    (pkg / "lm" / "trainer.py").write_text("def unlearn():\n    from genforget import config\n")
    (pkg / "scores.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from genforget.config import X\n"
    )
    graph = import_graph(pkg)
    assert cycles(graph) == [["genforget.config", "genforget.lm.trainer"]]
    assert graph["genforget.scores"] == set()


def _loaded_after(code: str) -> list[str]:
    """Which of torch, transformers and diffusers a fresh interpreter holds after ``code``."""
    probe = "\nprint(sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code + probe], capture_output=True, text=True, check=True
    )
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_import_genforget_is_light():
    # `import genforget` must not pull in torch or transformers (the CLI's --help stays fast).
    assert _loaded_after("import genforget") == []


def test_the_cli_help_is_light():
    # `genforget --help` lists the verbs without loading torch (each verb imports what it needs).
    code = "from genforget.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == []


def test_the_demo_options_are_light():
    # Every demo's options (genforget demo <name> --help, a bad flag) come from one module that
    # loads no model stack; the diffusion tables it reads keep torch for their functions.
    assert _loaded_after("import genforget.demos.options") == []
    assert _loaded_after("import genforget.diffusion.shapes, genforget.diffusion.works") == []
    # the diffusion package's names still resolve, on first use, to the modules' own objects
    code = "from genforget.diffusion import build_class_unet as a\nfrom genforget.diffusion.models import build_class_unet as b\nassert a is b"
    assert "diffusers" in _loaded_after(code)
    import genforget.diffusion

    assert set(genforget.diffusion.__all__) <= set(dir(genforget.diffusion))
    assert all(getattr(genforget.diffusion, n) is not None for n in genforget.diffusion.__all__)


def test_a_demos_help_loads_neither_transformers_nor_diffusers():
    # the unlearning config of the default method lives beside its loss, so torch comes with it
    for name in ("copyright", "bias", "diffusion-sd"):
        code = f"from genforget.cli.demos import demo_main\ntry:\n    demo_main([{name!r}, '--help'])\nexcept SystemExit:\n    pass"
        assert _loaded_after(code) == ["torch"], name
