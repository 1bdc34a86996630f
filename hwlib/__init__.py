"""hwlib: the helper package of the EECS 545 HW4 course kit.

Layers (`hwlib.layers`), gradient checks (`hwlib.gradient_check`), public checks
(`python -m hwlib.check`), and -- as the later questions land -- optimizers, the Solver,
models, RNN layers, data loaders and transfer learning.

Nothing here seeds a random generator or changes plotting settings on import.
"""

__version__ = "0.1.0"
