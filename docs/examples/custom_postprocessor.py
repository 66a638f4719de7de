"""A study that reads its outputs with the custom postprocessor of components.py.

Run by tests/test_docs.py (docs/postprocessors.md).
"""

import os
import tempfile

from profit import Study

here = os.path.dirname(os.path.abspath(__file__))
folder = tempfile.mkdtemp()
with open(os.path.join(folder, "profit.yaml"), "w") as file:
    file.write(f"""
ntrain: 4
variables:
  u: Uniform(0, 1)
  f: Output
  g: Output
include: [{os.path.join(here, "components.py")}]
run:
  command: printf 'starting\\n1.5 2.5\\n' > out.log
  post: {{class: lastline, path: out.log}}
""")
study = Study.load(folder)
study.run()
results = study.results()
assert list(results["f"]) == [1.5] * 4 and list(results["g"]) == [2.5] * 4, results
