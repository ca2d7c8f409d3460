"""The code the pages show, and the helpers pages, examples and tests share.

One idea per module, no side effects on import. Pages include parts of these
files with pymdownx.snippets sections (`# --8<-- [start:name]` ...
`# --8<-- [end:name]`).
"""
