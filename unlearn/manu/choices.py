"""MANU's choices by name, apart from its method module and callbacks (Lightning): the checks before a run read
them without it (unlearn/before_run.py)."""

SELECTIONS = ("project", "official")  # manu.selection
NEURONS = ("input", "output")  # manu.neuron
OFFICIAL_UNITS = ("output", "intermediate")  # manu.official.unit: the hooked Linears' outputs (theirs), or inputs
