"""The messages of docs/troubleshooting.md, produced by the study files that cause them.

Run by tests/test_docs.py: each case checks a study file with ``profit.Study`` as
``profit run`` does before anything is written, and expects the message the page shows.
"""

import os
import tempfile

from profit import Study
from profit.run.errors import ConfigError

GOOD = "ntrain: 3\nvariables:\n  u: Uniform(0, 1)\n  f: Output\nrun:\n  command: echo 1\n"

CASES = [
    ("ntrian: 3\nvariables:\n  u: Uniform(0, 1)\n  f: Output\n", "unknown key 'ntrian'; did you mean 'ntrain'?"),
    (GOOD + "  runer: pool\n", "unknown key 'run.runer'; did you mean 'runner'?"),
    (
        GOOD.replace("run:\n", "run:\n  runner: {class: fork, parralel: 2}\n"),
        "run.runner: runner 'fork' has no option 'parralel'; did you mean 'parallel'?",
    ),
    (
        GOOD + "  post: {class: json, file: out.json}\n",
        "postprocessor 'json' has no option 'file'; its options are 'path'",
    ),
    (GOOD.replace("run:\n", "run:\n  runner: slurmm\n"), "unknown Runner label 'slurmm'; known labels:"),
    ("variables:\n  u: uniform(0, 1)\n  f: Output\n", "unknown kind 'uniform'; did you mean 'Uniform'?"),
    ("variables:\n  u: Uniform(1, 0)\n  f: Output\n", "Uniform needs low <= high, got '1, 0'; swap them"),
    ("variables:\n  u: Uniform(0, 1)\n", "'variables' has no output (e.g. 'f: Output')"),
    ("variables:\n  u: Uniform(0, 1)\n  g: Output(t)\n", "variable 'g' is Output(t), but 't' is not an Independent"),
    ("variables:\n  u: Uniform(0, 1)\n f: Output\n", "profit.yaml line 3: not valid YAML"),
    ("variables:\n  u: Uniform(0, 1)\n  u: Uniform(0, 2)\n  f: Output\n", "key 'u' is given twice (first on line 2)"),
    ("ntrain: 5\nvariables:\n  u: Input\n  f: Output\n", "ntrain is 5, but the inputs u are Input"),
    (GOOD.replace("run:\n", "run:\n  worker: function\n"), "run.command is for the command worker"),
    (
        "variables:\n  u: Uniform(0, 1)\n  f: Output\nrun:\n  command: ./simulation\n",
        "run.pre.path: the template directory template does not exist",
    ),
    (
        "variables:\n  u: Uniform(0, 1)\n  f: Output\n  g: Output\nrun:\n  command: echo 1\n"
        "  post: {class: numpytxt, names: [f]}\n",
        "run.post.names: the output 'g' of the study is not among the columns [f]",
    ),
    (GOOD + "  timeout: -1\n", "timeout must be a number of seconds > 0"),
]

for text, message in CASES:
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "profit.yaml"), "w") as file:
        file.write(text)
    try:
        Study.load(folder).run()  # every mistake is refused before anything is written or run
    except ConfigError as error:
        assert message in str(error), f"expected {message!r}, got {str(error)!r}"
        print(error)
    else:
        raise AssertionError(f"no error for {text!r}")
