"""The first study (docs/first-study.md): examples/external run from Python, in a copy.

Run by tests/test_docs.py. ``profit run examples/external`` does the same from the shell.
"""

import os
import shutil
import tempfile

from profit import Study

repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
folder = os.path.join(tempfile.mkdtemp(), "external")
shutil.copytree(os.path.join(repo, "examples", "external"), folder, ignore=shutil.ignore_patterns("study"))

# A smaller study to begin with: 10 runs instead of 60.
study_file = os.path.join(folder, "profit.yaml")
with open(study_file) as file:
    text = file.read()
with open(study_file, "w") as file:
    file.write(text.replace("ntrain: 60", "ntrain: 10"))

study = Study.load(folder)  # reads and checks profit.yaml; nothing is written yet
study.run()  # 10 runs of ./simulation; run it again to continue after a crash
study.extend(5)  # 5 more sampled runs (as raising ntrain to 15 would add)
study.run()  # runs only those 5
status = study.status()
print(f"{status.total} runs: {status.done} done, {status.failed} failed")

results = study.results()  # one row per run, in run order
print(results.dtype.names)
print("run 0:", results["omega"][0], results["zeta"][0], "->", results["amplitude"][0], results["x"][0])

assert status.total == 15 and status.done == 15
assert results["x"].shape == (15, 5)  # x: Output(t), over the 5 values of t
assert os.path.exists(os.path.join(folder, "study", "output.txt"))  # files.output
