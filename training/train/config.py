"""YAML run configs for `lightlip-train`: defaults per recipe, a user file on top, then command-line
overrides; the effective config is what gets saved next to the run."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import yaml

from lightlip_ros.atomic_files import atomic_write_text
from lightlip_ros.errors import LightLipError, first_line

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(LightLipError, ValueError):
    """A config file or override the user gave is invalid (reported as one line)."""


def default_config(recipe: str) -> dict:
    """The defaults of one recipe (`training/train/configs/<recipe>.yaml`)."""
    return read_yaml(CONFIG_DIR / f"{recipe}.yaml")


def read_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({first_line(error)})") from error
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return dict(data)


def merge(base: Mapping, update: Mapping, where: str = "") -> dict:
    """`base` with the keys of `update` replaced; every key of `update` must exist in `base`, so a typo
    fails loudly instead of being ignored."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        name = f"{where}{key}"
        if key not in merged:
            known = ", ".join(sorted(map(str, merged)))
            raise ConfigError(f"unknown config key '{name}' (known here: {known})")
        if isinstance(merged[key], Mapping) and isinstance(value, Mapping):
            merged[key] = merge(merged[key], value, f"{name}.")
        elif isinstance(merged[key], Mapping) and value is not None:
            raise ConfigError(f"config key '{name}' is a section, cannot set it to {value!r}")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> dict:
    """'train.lr=3e-4' -> {'train': {'lr': 0.0003}}; the value is parsed as YAML (numbers, null, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' must look like section.key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override '{text}': value is not valid YAML") from error
    nested = parsed
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def set_key(config: dict, dotted: str, value) -> dict:
    """Override one dotted key (used for the CLI's named flags)."""
    nested = value
    for part in reversed(dotted.split(".")):
        nested = {part: nested}
    return merge(config, nested)


def build_config(recipe: str, config_file=None, overrides=(), flag_values: Mapping = ()) -> dict:
    """Defaults <- config file <- `--set` overrides <- named flags (those not left at None)."""
    config = default_config(recipe)
    if config_file is not None:
        config = merge(config, read_yaml(config_file))
    for text in overrides:
        config = merge(config, parse_override(text))
    for dotted, value in dict(flag_values).items():
        if value is not None:
            config = set_key(config, dotted, value)
    return config


def write_config(config: Mapping, path) -> None:
    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))
