"""Sphinx configuration of libkp's documentation site.

Sources: the Markdown pages of docs/ (MyST), pykp's docstrings (autodoc,
NumPy style through napoleon), and two pages generated at build time into
docs/_gen/ by _ext/gen_pages.py: the C API (include/kp.h, its comments and
declarations in order) and the examples (each file's opening comment).
Build: scripts/build_docs.sh (warnings are errors). pykp is imported for its
docstrings, so LIBKP_PATH must name a built libkp.so (the script does that).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "bindings", "python"))
sys.path.insert(0, os.path.join(HERE, "_ext"))

import gen_pages  # noqa: E402

gen_pages.write_all(REPO, os.path.join(HERE, "_gen"))

project = "libkp"
author = "the libkp developers"
with open(os.path.join(REPO, "bindings", "python", "pykp", "_version.py")) as f:
    release = version = f.read().split('"')[1]

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "_ext"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# The pages link to source files of the repository (../src/..., ../tests/...),
# which are not pages of the site: those links stay plain links, not errors.
suppress_warnings = ["myst.xref_missing"]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
html_theme = "alabaster"
html_title = "libkp %s" % release
