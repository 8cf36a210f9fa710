"""Build hook: the language reference ships inside the package.

`docs/reference/*.md` is the single source of the reference. `build_py` copies those pages into
the built package as `nda/mcp/reference/`, where the MCP server serves them as resources
(`nda.mcp.teach`); a source checkout or editable install reads `docs/reference/` directly.
Everything else is configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

REFERENCE = Path(__file__).resolve().parent / "docs" / "reference"


class build_py_with_reference(build_py):
    def run(self):
        super().run()
        if self.dry_run:
            return
        pages = sorted(REFERENCE.glob("*.md"))
        if not pages:
            raise SystemExit(f"docs/reference has no pages; the MCP server needs them")
        target = Path(self.build_lib) / "nda" / "mcp" / "reference"
        target.mkdir(parents=True, exist_ok=True)
        for page in pages:
            self.copy_file(str(page), str(target / page.name))


setup(cmdclass={"build_py": build_py_with_reference})
