"""The plugin manager: loads plugins and collects the components they contribute.

Plugins come from the ``loangate`` entry-point group (first-party ones too) and,
for tests and embedding, from objects handed to :func:`gateway.create_app`.

Environment switches (pytest's model):

- ``LOANGATE_DISABLE_PLUGIN_AUTOLOAD=1``: load nothing from entry points;
- ``LOANGATE_BLOCK_PLUGINS=a,b``: never load the plugins with these entry-point names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from gateway import hookspecs
from gateway.components import COMPONENT_KINDS, Component
from gateway.errors import ConfigError

GROUP = "loangate"
AUTOLOAD_SWITCH = "LOANGATE_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_SWITCH = "LOANGATE_BLOCK_PLUGINS"

#: Registration hook per component kind.
REGISTRATION_HOOKS: dict[str, str] = {
    "adapter": "register_adapters",
    "validator": "register_validators",
    "enricher": "register_enrichers",
    "scorer": "register_scorers",
    "explainer": "register_explainers",
    "policy": "register_policies",
}


@dataclass(frozen=True)
class ComponentEntry:
    """A component class and the plugin that contributed it."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str


def make_plugin_manager(
    extra_plugins: Iterable[object] = (), environ: Mapping[str, str] | None = None
) -> pluggy.PluginManager:
    """A plugin manager with entry-point plugins (unless disabled) and ``extra_plugins``."""
    environ = os.environ if environ is None else environ
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in environ.get(BLOCK_SWITCH, "").split(","))):
        pm.set_blocked(name)
    if environ.get(AUTOLOAD_SWITCH, "").lower() not in {"1", "true", "yes"}:
        pm.load_setuptools_entrypoints(GROUP)
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if pm.get_plugin(name) is not None:
            name = f"{name}-{id(plugin):x}"
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def collect_components(pm: pluggy.PluginManager) -> dict[str, dict[str, ComponentEntry]]:
    """Every contributed component, by kind and name; a name clash refuses to start."""
    catalog: dict[str, dict[str, ComponentEntry]] = {kind: {} for kind in REGISTRATION_HOOKS}
    for kind, hook_name in REGISTRATION_HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            for cls in impl.function() or ():
                _check_component(cls, kind, plugin_name)
                known = catalog[kind].get(cls.name)
                if known is not None and known.cls is not cls:
                    raise ConfigError(
                        f"{kind} {cls.name!r} is contributed by both plugin "
                        f"{known.plugin!r} and plugin {plugin_name!r}"
                    )
                catalog[kind][cls.name] = ComponentEntry(kind, cls.name, cls, plugin_name)
    return catalog


def _check_component(cls: Any, kind: str, plugin: str) -> None:
    base = COMPONENT_KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)) or not cls.name:
        raise ConfigError(
            f"plugin {plugin!r} registered {cls!r} as a {kind}: it must be a named "
            f"subclass of gateway.components.{base.__name__}"
        )


def describe_plugins(
    pm: pluggy.PluginManager, catalog: Mapping[str, Mapping[str, ComponentEntry]]
) -> list[dict[str, Any]]:
    """Plugins, their distribution and version, and what each contributes."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:  # blocked
            continue
        dist = dists.get(id(plugin))
        components = [
            {"kind": entry.kind, "name": entry.name}
            for by_name in catalog.values()
            for entry in by_name.values()
            if entry.plugin == name
        ]
        out.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "distribution": dist.project_name if dist else None,
                "version": dist.version if dist else None,
                "components": sorted(components, key=lambda c: (c["kind"], c["name"])),
            }
        )
    return out
