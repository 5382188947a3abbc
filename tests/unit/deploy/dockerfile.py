"""compose/Dockerfile read as Docker reads it (the subset it uses), so the tests can check the image's
settings and tests/integration/test_container_steps.py can run its build steps without Docker."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from tests.unit.deploy.chart import REPO

DOCKERFILE = REPO / "compose" / "Dockerfile"


@dataclasses.dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [arg for name, arg in self.instructions if name == instruction]

    def env(self) -> dict[str, str]:
        """ENV and LABEL take ``KEY=VALUE ...`` (quoted values allowed); the last one wins."""
        return _pairs(self.all("ENV"))

    def labels(self) -> dict[str, str]:
        return _pairs(self.all("LABEL"))

    def exec_form(self, instruction: str) -> list[str]:
        (arg,) = self.all(instruction)[-1:]
        value = json.loads(arg)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


def _pairs(args: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for arg in args:
        for word in shlex.split(arg):
            key, _, value = word.partition("=")
            pairs[key] = value
    return pairs


def stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The stages in order; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    found: list[Stage] = []
    for line in logical:
        instruction, _, arg = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arg.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            found.append(Stage(name, words[0]))
        elif found:
            found[-1].instructions.append((instruction, arg.strip()))
    return found
