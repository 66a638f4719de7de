"""Sphinx configuration of the profit documentation (make docs)."""

import os
import sys

# The package from the source tree, whether it is installed or not.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))

project = "profit.run"
author = "the profit developers"
copyright = "2026, the profit developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# Markdown: headings get anchors (links like page.md#a-heading), ::: fences for directives.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: members in source order; signatures with names and defaults, the types beside each
# parameter's description (as proFit's reference shows them); base classes by their full names.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "fully-qualified"
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "profit.run"
html_static_path: list[str] = []

# profit's docstrings are Google style ("Args:", "Returns:", "Raises:"). The first line of a
# property's docstring is text, never "type: description" (napoleon's reading of attributes):
# "What a Worker needs: the label and ..." must not become a type.
from sphinx.ext.napoleon.docstring import GoogleDocstring  # noqa: E402


def _attribute_text(self: GoogleDocstring) -> list[str]:
    return self._consume_to_end()


GoogleDocstring._parse_attribute_docstring = _attribute_text  # type: ignore[method-assign]

# References that name a documented object by a shorter or a re-exported name (:class:`Runner`,
# :meth:`spawn_array`, profit.run.Executor): resolved to the one documented object whose full name
# ends with them, if there is exactly one. Anything else stays unresolved (and fails the nitpicky build).
def _resolve_short(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    from sphinx.util.nodes import make_refnode

    domain = env.get_domain("py")
    targets = {name: (entry.docname, entry.node_id) for name, entry in domain.objects.items()}
    targets.update({name: (entry.docname, entry.node_id) for name, entry in domain.modules.items()})
    parts = node["reftarget"].lstrip("~.").split(".")
    for start in range(len(parts)):
        suffix = ".".join(parts[start:])
        found = [name for name in targets if name == suffix or name.endswith("." + suffix)]
        if len(found) == 1:
            docname, node_id = targets[found[0]]
            return make_refnode(app.builder, node["refdoc"], docname, node_id, contnode, found[0])
        if found:
            return None  # ambiguous
    return None


def setup(app):
    app.connect("missing-reference", _resolve_short)


# Names of the standard library and numpy in signatures (no intersphinx: the build needs no
# network), and internal objects that docstrings mention but the reference does not document.
nitpick_ignore = [
    ("py:class", name)
    for name in (
        "collections.abc.Callable",
        "collections.abc.Iterable",
        "collections.abc.Iterator",
        "collections.abc.Mapping",
        "collections.abc.Sequence",
        "concurrent.futures.Executor",
        "concurrent.futures.Future",
        "logging.FileHandler",
        "logging.Logger",
        "numpy.ndarray",
        "np.ndarray",
        "os.PathLike",
    )
]
nitpick_ignore_regex = [
    (r"py:.*", r"profit\.(store|studyfile\..*|study\.RunReport)"),
    (r"py:.*", r"profit\.run\.(lanes|handles|tracking\..*|runfork|_\w+(\..*)?|config\..*)"),
    (r"py:.*", r"RunReport|StudyFile|Record|SlurmCommands|_proc\..*|_start_batch|execute"),
    (r"py:.*", r"call_signature|function_reference|result"),
    (r"py:attr", r"worker_config|next_run_id|config"),
]
