"""The command blocks of README.md and docs/*.md, as docs/architecture.md defines them: a
```console fence of `$ ` lines, with a `<!-- docs-test: ... -->` marker on the line above."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import REPO_ROOT

MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<text>.*?)\s*-->$")
FENCE = "```"
PROMPT = "$ "


@dataclass(frozen=True)
class Block:
    """One ```console block: where it is, its marker (None when missing), its lines."""

    path: Path
    line: int
    marker: str | None
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        return (self.marker or "").split(" ", 1)[0]

    @property
    def argument(self) -> str:
        parts = (self.marker or "").split(" ", 1)
        return parts[1].strip() if len(parts) > 1 else ""

    @property
    def commands(self) -> list[str]:
        return [line[len(PROMPT) :] for line in self.lines if line.startswith(PROMPT)]


def documents() -> list[Path]:
    """README.md first, then docs/*.md in name order."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def console_blocks(path: Path) -> list[Block]:
    """Every ```console block of one Markdown file, in document order."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    previous = ""
    while index < len(lines):
        line = lines[index]
        if line.startswith(FENCE):
            language = line[len(FENCE) :].strip()
            end = index + 1
            while end < len(lines) and not lines[end].startswith(FENCE):
                end += 1
            if language == "console":
                match = MARKER.match(previous.strip())
                marker = match.group("text") if match else None
                found.append(Block(path, index + 1, marker, tuple(lines[index + 1 : end])))
            index = end + 1
            previous = ""
            continue
        if line.strip():
            previous = line
        index += 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in console_blocks(path)]
