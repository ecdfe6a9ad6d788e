#!/usr/bin/env python3
"""Lists the public declarations of the client-facing modules that have no `///` doc comment.

A declaration is public when it says `public` or `open`, or when it sits directly in the body of a public
protocol (requirements), a public enum (cases) or a `public extension` without an access modifier of its
own that narrows it. Attribute lines (`@inlinable`, `@frozen`, ...) may sit between the comment and
the declaration. Prints `path:line: declaration` for each one missing and exits 1 if there are any.
"""

import re
import sys
from pathlib import Path

DECL_KEYWORDS = (
    "func", "var", "let", "init", "subscript", "struct", "class", "enum", "protocol", "typealias",
    "associatedtype", "actor", "case", "macro",
)
TYPE_KEYWORDS = ("struct", "class", "enum", "protocol", "actor")
MODIFIERS = {
    "public", "open", "package", "internal", "private", "fileprivate", "static", "final", "override",
    "mutating", "nonmutating", "convenience", "required", "indirect", "lazy", "weak", "unowned", "nonisolated",
    "dynamic", "consuming", "borrowing", "__consuming", "optional", "isolated", "distributed", "prefix",
    "postfix", "infix",
}
NARROWING = {"package", "internal", "private", "fileprivate"}

STRING = re.compile(r'"(?:\\.|[^"\\])*"')
ATTRIBUTE = re.compile(r"@\w+(\([^()]*(\([^()]*\))*[^()]*\))?\s*")


def code_of(line: str) -> str:
    """The line without string literals and `//` comments, for brace counting and parsing."""
    line = STRING.sub('""', line)
    index = line.find("//")
    return line if index < 0 else line[:index]


def parse_declaration(text: str):
    """(modifiers, keyword, name) of a declaration line, or None."""
    text = text.strip()
    while text.startswith("@"):
        match = ATTRIBUTE.match(text)
        if not match:
            return None
        text = text[match.end():]
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\([a-z]+\))?|\S", text)
    modifiers = []
    for i, word in enumerate(words):
        base = word.split("(")[0]
        if base in MODIFIERS:
            modifiers.append(base)
            continue
        if base == "extension":
            name = words[i + 1] if i + 1 < len(words) else ""
            return modifiers, "extension", name
        if base in DECL_KEYWORDS:
            name = words[i + 1] if i + 1 < len(words) else ""
            return modifiers, base, name
        return None
    return None


def public_type_names(files):
    names = set()
    for path in files:
        for line in path.read_text().splitlines():
            parsed = parse_declaration(code_of(line))
            if parsed and parsed[1] in TYPE_KEYWORDS and ({"public", "open"} & set(parsed[0])):
                names.add(parsed[2])
    return names


def is_attribute_only(text: str) -> bool:
    while text.startswith("@"):
        match = ATTRIBUTE.match(text)
        if not match:
            return False
        text = text[match.end():]
    return text == ""


def documented(lines, index) -> bool:
    """Whether a `///` (or `/** */`) comment ends right above line `index`, attribute lines allowed between."""
    i = index - 1
    while i >= 0:
        text = lines[i].strip()
        if is_attribute_only(text) or text.startswith(("#if", "#else", "#elseif", "#endif")):
            i -= 1
            continue
        return text.startswith("///") or text.endswith("*/")
    return False


def check(path: Path, public_types, problems):
    lines = path.read_text().splitlines()
    # Each open brace: the kind of body it opens ("public-protocol", "public-enum", "public-type",
    # "public-extension", "other"), so members are judged by the scope they sit in.
    stack = []
    in_block_comment = False
    for number, raw in enumerate(lines):
        line = raw
        if in_block_comment:
            if "*/" in line:
                in_block_comment = False
                line = line[line.index("*/") + 2:]
            else:
                continue
        if line.strip().startswith("/*") and "*/" not in line:
            in_block_comment = True
            continue
        code = code_of(line)
        parsed = parse_declaration(code)
        scope = stack[-1] if stack else "file"
        opens = "other"
        if parsed:
            modifiers, keyword, name = parsed
            explicit_public = bool({"public", "open"} & set(modifiers))
            narrowed = bool(NARROWING & set(modifiers))
            is_public = False
            if keyword == "extension":
                if explicit_public:
                    opens = "public-extension"  # members are public unless they say otherwise
                elif name.split(".")[-1].split("<")[0] in public_types:
                    opens = "public-type"  # members are public only if they say so
            elif scope in ("file", "public-type", "public-extension"):
                is_public = explicit_public or (scope == "public-extension" and not narrowed and keyword != "case")
                if scope == "public-type" and keyword == "case":
                    is_public = False
            elif scope == "public-protocol":
                is_public = True
            elif scope == "public-enum":
                is_public = explicit_public or keyword == "case"
            if keyword in TYPE_KEYWORDS and (is_public or (scope == "public-extension" and not narrowed)):
                opens = {"protocol": "public-protocol", "enum": "public-enum"}.get(keyword, "public-type")
            if is_public and not documented(lines, number):
                problems.append(f"{path}:{number + 1}: {raw.strip()}")
        for character in code:
            if character == "{":
                stack.append(opens)
                opens = "other"
            elif character == "}":
                if stack:
                    stack.pop()


def main(argv):
    roots = [Path(arg) for arg in argv] or [
        Path("Sources/Ringport"), Path("Sources/RingportMiniport"), Path("Sources/RingportCore"),
    ]
    files = sorted(f for root in roots for f in root.rglob("*.swift"))
    public_types = public_type_names(files)
    problems = []
    for path in files:
        check(path, public_types, problems)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-docs: {len(problems)} public declarations without a /// doc comment", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
