"""The template syntax, as the template preprocessor fills a file (docs/templates.md).

Run by tests/test_docs.py: every claim of the page's examples is checked here.
"""

from profit.run.command import substitute

values = {"u": 0.4213782651309484, "n": 7, "v": 2.5e-3}

# Single braces: {name} and {name:spec}; floats are written exactly (repr), others with str.
assert substitute("u = {u}", values) == "u = 0.4213782651309484"
assert substitute("u = {u:.3f}, n = {n:03d}", values) == "u = 0.421, n = 007"
assert substitute("u = {u:.2e}", values) == "u = 4.21e-01"

# Braces that are not placeholders of inputs stay as they are: nothing needs escaping.
text = "x = {x}; f = {}; home = ${HOME}; \\frac{1}{2}; int main() { return 0; }"
assert substitute(text, values) == text

# A file that contains "{{" uses {{name}} instead (spaces inside are allowed), and
# its single braces, placeholders included, stay as they are.
json_text = '{"u": {{u}}, "v": {{ v:.6e }}, "raw": "{u}", "options": {"steps": 100}}'
assert substitute(json_text, values) == (
    '{"u": 0.4213782651309484, "v": 2.500000e-03, "raw": "{u}", "options": {"steps": 100}}'
)

# The spec must suit the value: a float with an integer format fails the run.
try:
    substitute("{u:d}", values)
except ValueError as error:
    print("fails as it should:", error)
else:
    raise AssertionError("{u:d} of a float was filled")
