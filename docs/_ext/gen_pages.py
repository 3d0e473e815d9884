"""
gen_pages.py -- pages of the documentation site made from the sources:

- _gen/c_api.md: include/kp.h read top to bottom. Its block comments become
  paragraphs, its declarations C code blocks, and its section rulers
  ("/* ----- plans */") headings, so the page says what the header says, in
  its order, and cannot drift from it.
- _gen/examples.md: one section per example (examples/**), with the file's
  opening comment or docstring and how to run it.

Run by docs/conf.py at every build; also `python gen_pages.py REPO OUTDIR`.
"""
import ast
import os
import re
import sys

_RULER = re.compile(r"^/\*\s*-{6,}\s*(.*?)\s*\*/\s*$")


def _comment_text(block):
    """The text of a /* ... */ block: delimiters and leading ' * ' removed."""
    lines = block.strip()[2:-2].splitlines()
    out = []
    for line in lines:
        s = line.strip()
        if s.startswith("*"):
            s = s[1:]
            if s.startswith(" "):
                s = s[1:]
        out.append(s.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def _comment_markdown(lines):
    """Comment lines as Markdown: indented runs (examples, lists) become
    preformatted blocks, the rest plain paragraphs."""
    md = []
    code = []

    def flush():
        if code:
            md.extend(["", "```text"] + [c[4:] if c.startswith("    ") else c.lstrip() for c in code] + ["```", ""])
            code.clear()

    for line in lines:
        if line.startswith("    ") and line.strip():
            code.append(line)
        else:
            flush()
            md.append(line)
    flush()
    return md


def c_api_markdown(header_text):
    """Markdown of kp.h (see the module's docstring)."""
    md = ["# The C API (`include/kp.h`)", "",
          "Generated from `include/kp.h` at build time: its comments and declarations, in order.", ""]
    code = []

    def flush_code():
        while code and not code[-1].strip():
            code.pop()
        while code and not code[0].strip():
            code.pop(0)
        if code:
            md.extend(["```c"] + code + ["```", ""])
        code.clear()

    lines = header_text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        m = _RULER.match(s)
        if m:
            flush_code()
            md.extend(["## %s" % (m.group(1) or "section").strip().capitalize(), ""])
            i += 1
            continue
        if s.startswith("/*") and not line.startswith((" ", "\t")):
            j = i
            while "*/" not in lines[j]:
                j += 1
            block = "\n".join(lines[i : j + 1])
            after = lines[j].split("*/", 1)[1].strip()
            if after or (j == i and not s.endswith("*/")):
                code.append(line)  # a comment sharing its line with code: keep it in the code
                i += 1
                continue
            flush_code()
            md.extend(_comment_markdown(_comment_text(block)) + [""])
            i = j + 1
            continue
        if s.startswith("#ifndef KP_H") or s.startswith("#define KP_H") or s.startswith("#endif"):
            i += 1
            continue
        if s in ('extern "C" {', "}", "#ifdef __cplusplus"):
            i += 1
            continue
        code.append(line)
        i += 1
    flush_code()
    return "\n".join(md) + "\n"


def _opening_comment(path):
    """An example's opening docstring (Python) or block comment (C)."""
    text = open(path, encoding="utf-8").read()
    if path.endswith(".py"):
        try:
            doc = ast.get_docstring(ast.parse(text))
        except SyntaxError:
            doc = None
        return (doc or "").strip()
    m = re.match(r"\s*/\*(.*?)\*/", text, re.S)
    return "\n".join(_comment_text("/*%s*/" % m.group(1))) if m else ""


def examples_markdown(repo):
    md = ["# Examples", "", "The programs of `examples/`, each with its opening comment.", ""]
    root = os.path.join(repo, "examples")
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith((".py", ".c")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, repo)
            md.extend(["## `%s`" % rel, ""])
            doc = _opening_comment(path)
            md.extend(["```text", doc, "```"] if doc else ["(no opening comment)"])
            if name.endswith(".py"):
                md.extend(["", "Run: `python %s --help`" % rel])
            md.append("")
    return "\n".join(md) + "\n"


def _write_if_changed(path, text):
    """Keeps the file's time when nothing changed (Sphinx rebuilds less)."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_all(repo, outdir):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(repo, "include", "kp.h"), encoding="utf-8") as f:
        _write_if_changed(os.path.join(outdir, "c_api.md"), c_api_markdown(f.read()))
    _write_if_changed(os.path.join(outdir, "examples.md"), examples_markdown(repo))


if __name__ == "__main__":
    write_all(sys.argv[1], sys.argv[2])
