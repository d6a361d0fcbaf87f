"""Package attributes that import their module on first use (PEP 562).

A package's `__init__` lists its public names and where each lives; `import avatarkit` or
`import avatarkit.build` then costs nothing until a name is used (the build pulls in
mediapipe and OpenCV, the listener a phone model).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str],
                 namespace: dict[str, Any]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: name -> `getattr(import_module(exports[name]),
    name)`, stored in `namespace` (the package's globals) so later lookups skip it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
