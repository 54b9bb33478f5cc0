"""MkDocs hooks: the pages of the site that are generated, not written (mkdocs.yml names this file).

- ``index.md`` is the README, its links rewritten for the site (``docs/x.md`` -> ``x.md``), so the
  door a newcomer sees on GitHub and the site's home are one text.
- ``commands/NAME.md``: one page per ``imgcls`` command, from the command line's own parser (every
  option with its default and help, exactly what ``imgcls NAME --help`` says), so the reference can
  never drift from the program.
- ``benchmarks/NAME.md``: the tables the scripts in ``benchmarks/`` write beside their JSON, each page
  headed by the command that regenerates it; the documents link to them as ``../benchmarks/NAME.md``
  (right on GitHub too) and the links are rewritten for the site.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).parents[1]
# the guide page that explains each command (the reference page links to it)
GUIDES = {
    "models": "models.md", "train": "training.md", "eval": "evaluation.md", "predict": "evaluation.md",
    "finetune": "transfer.md", "tune": "tune.md", "features": "transfer.md", "export": "export.md",
    "serve": "serving.md", "bench": "bench.md", "weights": "transfer.md", "data": "data.md",
}  # fmt: skip


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.option_strings and action.nargs != 0:
            name += f" `{action.metavar or action.dest.upper()}`"
        default = action.default
        shown = "" if default in (None, argparse.SUPPRESS, False) or action.nargs == 0 else f"`{default}`"
        helptext = (action.help or "").replace("%(default)s", str(default))
        rows.append(f"| {_cell(name)} | {_cell(shown)} | {_cell(helptext)} |")
    return rows


def command_page(name: str, parser: argparse.ArgumentParser) -> str:
    guide = GUIDES.get(name)
    lines = [f"# imgcls {name}", "", parser.description or "", ""]
    if guide:
        lines += [f"How to use it, with examples: [{guide.removesuffix('.md')}](../{guide}).", ""]
    actions = _subcommands(parser)
    lines += ["```text", parser.format_usage().strip(), "```", "", *_options(parser), ""]
    for action, sub in actions.items():
        lines += [f"## imgcls {name} {action}", "", sub.description or "", "", "```text",
                  sub.format_usage().strip(), "```", "", *_options(sub), ""]  # fmt: skip
    return "\n".join(lines)


def site_links(markdown: str, in_docs: bool) -> str:
    """Links as written for GitHub, rewritten for the site's layout."""
    if in_docs:  # a page of docs/: the benchmark tables are pages of the site
        return markdown.replace("](../benchmarks/", "](benchmarks/")
    markdown = re.sub(r"\]\(docs/", "](", markdown)  # the README, as the home page
    return markdown


def benchmark_page(path: Path) -> str:
    script = path.with_suffix(".py")
    text = path.read_text().replace("](../docs/", "](../")  # written for GitHub, beside the script
    if script.is_file():
        text += f"\n\nRegenerate: `.venv/bin/python benchmarks/{script.name}` (see its docstring for the options).\n"
    return text


def on_files(files: Files, config: Any) -> Files:
    from imgcls.cli import build_parser

    files.append(
        File.generated(config, "index.md", content=site_links((ROOT / "README.md").read_text(), False))
    )
    for name, parser in _subcommands(build_parser()).items():
        files.append(File.generated(config, f"commands/{name}.md", content=command_page(name, parser)))
    for path in sorted((ROOT / "benchmarks").glob("*.md")):
        files.append(File.generated(config, f"benchmarks/{path.name}", content=benchmark_page(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == "index.md" or page.file.src_uri.startswith(("commands/", "benchmarks/")):
        return markdown
    return site_links(markdown, True)
