"""A custom postprocessor (docs/postprocessors.md): an include file of a study.

Used by custom_postprocessor.py, which the test suite runs.
"""

from profit.run import Postprocessor


@Postprocessor.wrap("lastline", config={"path": "log.txt"})
def lastline(self, data):
    """The last line of the file holds the outputs, in order, separated by spaces."""
    with open(self.path) as file:
        values = file.read().splitlines()[-1].split()
    for name, value in zip(data.dtype.names, values):
        data[name] = float(value)
