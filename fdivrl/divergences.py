"""The documented entry `fdivrl.divergences` (optimal_ratio, get, the registry), kept where users
import it from; the module itself is fdivrl.core.divergences."""

from fdivrl.core.divergences import *  # noqa: F403
from fdivrl.core.divergences import __all__  # noqa: F401
