"""Architecture specs, named search spaces and the reference networks of the seed papers.

Nothing here imports torch: specs are plain data that cross process boundaries.
"""

from space import spec as _spec
from space.spec import *  # noqa: F401,F403 - the spec's public names are the package's

__all__ = list(_spec.__all__)
