"""Maps the top-level source folders onto one import package, `flowmason`.

pyproject.toml holds the metadata; this file only computes the package list,
because setuptools cannot discover sub-packages under a `package-dir` mapping
by itself. `operator/` becomes `flowmason.operator` (a top-level `operator`
would shadow the standard library).
"""
import os

from setuptools import find_packages, setup

ROOTS = {
    "flowmason": "sdk",
    "flowmason.kernel": "kernel",
    "flowmason.plugins": "plugins",
    "flowmason.functions": "functions",
    "flowmason.edge": "edge",
    "flowmason.operator": "operator",
}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        continue  # a top-level folder not filled yet
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
