"""``docs/levels.md`` from the level registry (``python -m gmsdask.levels.docs > docs/levels.md``); a test keeps
the file equal to what the registry says."""

from __future__ import annotations

from .registry import LevelRegistry, default_registry

__all__ = ["levels_markdown"]


def levels_markdown(registry: LevelRegistry | None = None) -> str:
    """The processing levels as a Markdown document: one table row per level, then one section per level."""
    registry = registry or default_registry()
    lines = ["# Processing levels", "",
             "Generated from the level registry (`gmsdask/levels/registry.py`) by "
             "`python -m gmsdask.levels.docs > docs/levels.md`; a test keeps it current.", "",
             "| level | what it does | version | options | accuracy layers |", "|---|---|---|---|---|"]
    for level in registry:
        options = ", ".join(f"`{o}`" for o in level.options) or "-"
        layers = ", ".join(f"`{a}`" for a in level.accuracy_layers) or "-"
        available = level.version if level.version != "0" else "0 (not available yet: recorded as skipped)"
        lines.append(f"| {level.name} | {level.title} | {available} | {options} | {layers} |")
    for level in registry:
        lines += ["", f"## {level.name}: {level.title}", "",
                  f"- reads: {', '.join(level.reads) or '-'}",
                  f"- adds: {', '.join(level.adds) or '-'}",
                  f"- run flag: `exec_{level.name}P` = [run, write, delete]"
                  + ("" if level.writes_scene else " (its outputs are the datacubes, not a scene product)")]
        if level.reference_level:
            lines.append(f"- needs other scenes: chosen for the whole job before it runs; they must have completed "
                         f"{level.reference_level} first")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(levels_markdown(), end="")
