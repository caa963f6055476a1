"""Misalignment directions and steering (see docs/steering.md): extract a cell's direction from its own judged
answers (`directions`), add it to or ablate it from another cell's residual stream while that cell answers
(`hooks`, `steer`), and tabulate the effects and the directions' similarity (`matrix`)."""
