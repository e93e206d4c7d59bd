"""Function lengths and module sizes of the production code, from its syntax tree.

Production code is the four services, ``shared/`` and ``ops/``; the simulator,
the demo, the benchmarks, the migrations and the tests are tools around it.
A function's length is its body's lines, from its first statement to its last
(decorators, signature and docstring left out). Usage::

    python bench/code_size.py [--over 250]
"""

from __future__ import annotations

import argparse
import ast
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("selector", "publisher", "webhook_gateway", "ingestor", "shared", "ops")


def production_modules() -> list[Path]:
    return sorted(p for top in PRODUCTION for p in (ROOT / top).rglob("*.py"))


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:] or body  # a docstring is not code
    return body[-1].end_lineno - body[0].lineno + 1


def functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((body_lines(node), f"{path.relative_to(ROOT)}:{node.name}"))
    return found


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--over", type=int, default=250, help="list modules longer than this")
    parser.add_argument("--longest", type=int, default=10, help="list this many longest functions")
    args = parser.parse_args()
    modules = production_modules()
    found = [f for path in modules for f in functions(path)]
    lengths = [n for n, _ in found]
    print(f"production functions: {len(lengths)} in {len(modules)} modules")
    print(
        f"function lines: median {statistics.median(lengths):g}, "
        f"p90 {percentile(lengths, 0.9)}, max {max(lengths)}, "
        f"over 30: {sum(n > 30 for n in lengths)}, over 40: {sum(n > 40 for n in lengths)}"
    )
    for n, name in sorted(found, reverse=True)[: args.longest]:
        print(f"  {n:4d}  {name}")
    sizes = sorted(((len(p.read_text().splitlines()), p) for p in modules), reverse=True)
    print(f"modules over {args.over} lines:")
    for n, path in sizes:
        if n > args.over:
            print(f"  {n:4d}  {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
