"""What the api and the workers share.

Importing it installs the torchvision import hook (torch-free), so that every process of
the service can import PyPI's torchvision beside the CPU torch: see torchvision_compat.
"""

from core import torchvision_compat as _torchvision_compat

_torchvision_compat.install()
