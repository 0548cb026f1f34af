"""Finding reward functions: by registry name, `package.module:callable`, or `path/to/file.py:callable`."""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from rlhf_ads.rewards.protocol import RewardError
from rlhf_ads.rewards.registry import SHIPPED

# Registry name -> "module:callable" of a shipped reward (imported lazily), or an object registered in-process.
REGISTRY: dict[str, Any] = {name: entry.target for name, entry in SHIPPED.items()}


def register_reward(name: str) -> Callable:
    """Decorator: make a reward (function or class) available by `name` in recipes."""
    def decorate(obj):
        REGISTRY[name] = obj
        return obj
    return decorate


def resolve_reward(spec: str, kwargs: dict[str, Any] | None = None) -> Callable:
    """Resolve `spec` to a reward callable. A class is instantiated with `kwargs`; a function gets
    them bound with functools.partial."""
    kwargs = kwargs or {}
    target = _load(spec)
    if inspect.isclass(target):
        try:
            return target(**kwargs)
        except TypeError as exc:
            raise RewardError(f"reward '{spec}': cannot construct {target.__name__} with {kwargs}: {exc}") from None
    if not callable(target):
        raise RewardError(f"reward '{spec}' is a {type(target).__name__}, not a callable")
    if kwargs:
        _check_kwargs(spec, target, kwargs)
        return functools.partial(target, **kwargs)
    return target


def _load(spec: str) -> Any:
    entry = REGISTRY.get(spec)
    if entry is not None and not isinstance(entry, str):
        return entry  # registered in-process with @register_reward
    target = entry or spec
    if ":" not in target:
        close = difflib.get_close_matches(spec, list(REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise RewardError(f"unknown reward '{spec}': {hint}use a registry name ({', '.join(sorted(REGISTRY))}), "
                          "'package.module:callable' or 'path/to/file.py:callable'")
    module_part, attr = target.rsplit(":", 1)
    module = _import_file(spec, module_part) if module_part.endswith(".py") else _import_module(spec, module_part)
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise RewardError(f"reward '{spec}': '{module_part}' has no attribute '{attr}'{hint}") from None


def _import_module(spec: str, name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise RewardError(f"reward '{spec}': cannot import module '{name}' ({type(exc).__name__}: {exc})") from None


def _import_file(spec: str, path_text: str):
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise RewardError(f"reward '{spec}': file '{path_text}' not found")
    module_name = f"rlhf_ads_user_reward_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        raise RewardError(f"reward '{spec}': importing '{path_text}' failed ({type(exc).__name__}: {exc})") from None
    sys.modules[module_name] = module
    return module


def _check_kwargs(spec: str, fn: Callable, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return  # a function with **columns accepts any keyword
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise RewardError(f"reward '{spec}' takes no argument '{unknown[0]}'; "
                          f"its arguments: {', '.join(p for p in params if p not in ('completions', 'prompts'))}")
