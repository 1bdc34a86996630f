"""hwlib: the helper package of the EECS 545 HW4 course kit.

Layers (`hwlib.layers`, `hwlib.rnn_layers`), optimizers and the Solver (`hwlib.optim`,
`hwlib.solver`), models (`hwlib.classifiers`, `hwlib.captioning`), transfer learning
(`hwlib.transfer`), data loaders (`hwlib.data`), plots, numerical gradients
(`hwlib.gradient_check`), and the public checks of Q1-Q5 (`hwlib.check`: `check("fc")` in a
notebook, `python -m hwlib.check` in a terminal).

Nothing here seeds a random generator or changes plotting settings on import. The one
process-wide setting made on import is glibc's allocator keeping freed memory for reuse
(`hwlib.allocator`: it halves the time of a ConvNet training step and changes no result).
"""

from .allocator import keep_freed_memory

__version__ = "0.1.0"

keep_freed_memory()
