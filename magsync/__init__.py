"""magsync: batch sync of Magento 1.x / OpenMage customers, addresses and groups.

The code lives in the project's top-level folders (flows/, extract/, transform/, load/,
magento/, expectations/); pyproject.toml installs them as subpackages of this one name, so
that `magsync.load` never collides with another distribution's `load`.
"""
