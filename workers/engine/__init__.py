"""The ML engine; usable on its own, so it installs the torchvision hook too."""

from core import torchvision_compat as _torchvision_compat

_torchvision_compat.install()
