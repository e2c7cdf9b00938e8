"""Checks of Ray cluster launcher configs (``ray up`` files): Ray's own offline steps, then ours."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from taso_tune.cluster.rules import (
    DASHBOARD_EXPOSED,
    DASHBOARD_HOST,
    HEAD_OFFERS_NOTHING,
    LOCAL_HOSTS,
    OPEN_PORT,
    PIP_INSTALL,
    RAY_PORTS,
    RAY_SPEC,
    RAY_START,
    SETUP_FIELDS,
    STORAGE_ASSIGN,
    STORAGE_UNSET,
    TOKEN_PATH,
    WORKER_GPUS_UNKNOWN,
    Problem,
    check_auth_mode,
    check_nvidia_driver,
    key_path,
    ray_version,
    storage_problem,
)
from taso_tune.spaces.values import is_int


@contextlib.contextmanager
def _quiet_ray() -> Iterator[None]:
    """Ray's config code prints notes and warnings meant for ``ray up``; keep them off our output."""
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        ray_logger.setLevel(level)


def _ray_checks(config: dict[str, Any]) -> tuple[dict | None, dict | None, list[Problem]]:
    """Ray's own offline steps: ``(defaults-filled config, prepared config, problems)``."""
    import jsonschema
    from ray.autoscaler._private.util import fillout_defaults, prepare_config, validate_config

    def schema_problem(err: jsonschema.ValidationError) -> Problem:
        parts = list(err.absolute_path)
        named = re.match(r"'([^']+)' is a required property", err.message) or re.search(
            r"\('([^']+)'.* unexpected\)", err.message
        )
        if named:
            parts.append(named.group(1))
        value = None if named else err.instance
        return key_path(*parts), value, f"Ray's cluster schema: {err.message}"

    provider = config.get("provider")
    with _quiet_ray():
        if not isinstance(provider, dict) or "type" not in provider:
            try:  # prepare_config would fail with a KeyError; the schema says what is missing
                validate_config(config)
            except jsonschema.ValidationError as err:
                return None, None, [schema_problem(err)]
            return None, None, [("provider.type", None, "is required by Ray's cluster launcher")]
        try:
            filled = fillout_defaults(copy.deepcopy(config))
        except NotImplementedError as err:
            return (
                None,
                None,
                [("provider.type", provider["type"], f"Ray's cluster launcher: {err}")],
            )
        try:
            prepared = prepare_config(copy.deepcopy(config))
            validate_config(prepared)
        except jsonschema.ValidationError as err:
            return filled, None, [schema_problem(err)]
        except Exception as err:  # ValueError, RuntimeError, AssertionError, click's exceptions
            named = re.match(r"`(\w+)`", str(err))
            return (
                filled,
                None,
                [(named.group(1) if named else "", None, f"Ray's config check: {err}")],
            )
    return filled, prepared, []


def check_launcher(config: dict[str, Any]) -> list[Problem]:
    own: list[Problem] = _check_node_types(config)
    filled, prepared, ray_problems = _ray_checks(config)
    reported = {key for key, _, _ in own}
    own += [p for p in ray_problems if p[0] not in reported]
    if filled is None:
        return own
    if "available_node_types" not in config and config["provider"]["type"] != "local":
        own += _check_node_types(filled)  # the provider's default node types
    max_workers = (prepared or filled).get("max_workers")
    num_nodes = 1 + (max_workers if is_int(max_workers) else 1)  # unknown: take it as several
    return own + (
        _check_ray_pinned(config, filled)
        + _check_start_commands(config, filled, num_nodes)
        + _check_token_mount(filled)
        + _check_security_group(filled)
        + check_auth_mode(filled)
        + check_nvidia_driver(filled)
    )


def _check_node_types(config: dict[str, Any]) -> list[Problem]:
    types = config.get("available_node_types")
    if not isinstance(types, dict):
        return []  # the local provider makes its own; Ray's checks cover the rest
    head = config.get("head_node_type")
    problems: list[Problem] = []
    if head not in types:
        problems.append(
            ("head_node_type", head, f"must be one of available_node_types ({', '.join(types)})")
        )
        head = None  # which type is a worker is unknown, so only the integer rule applies
    for name, node in types.items():
        resources = node.get("resources") if isinstance(node, dict) else None
        if not isinstance(resources, dict):
            continue  # Ray's schema reports the missing field
        at = key_path("available_node_types", name, "resources")
        for resource, amount in resources.items():
            if not is_int(amount):
                problems.append((key_path(at, resource), amount, "must be an integer"))
        gpus = resources.get("GPU")
        if name == head:
            for resource in ("CPU", "GPU"):
                if resources.get(resource) != 0:
                    problems.append(
                        (key_path(at, resource), resources.get(resource), HEAD_OFFERS_NOTHING)
                    )
        elif head is None:
            continue
        elif gpus is None:
            problems.append((key_path(at, "GPU"), None, WORKER_GPUS_UNKNOWN))
        elif is_int(gpus) and gpus < 1:
            problems.append(
                (key_path(at, "GPU"), gpus, "a worker node type must offer at least 1 GPU")
            )
    return problems


def _from_defaults(config: dict[str, Any], field: str) -> str:
    return "" if field in config else f" (Ray's default: the file does not set {field})"


def _check_ray_pinned(config: dict[str, Any], filled: dict[str, Any]) -> list[Problem]:
    version = ray_version()
    want = f'"ray[default,tune]=={version}"'
    problems: list[Problem] = []
    pinned = False
    for field in SETUP_FIELDS:
        for i, command in enumerate(filled.get(field) or []):
            for install in PIP_INSTALL.finditer(command):
                for spec in RAY_SPEC.finditer(install.group("args")):
                    pin = (spec.group("pin") or "").strip()
                    if pin.startswith("==") and pin[2:].strip() == version:
                        pinned = True
                        continue
                    how = (
                        "unpinned"
                        if not pin
                        else "from a URL"
                        if pin[0] == "@"
                        else pin.replace(" ", "")
                    )
                    why = f"installs Ray {how}; pin pip install {want}, the version taso-tune runs"
                    problems.append(
                        (key_path(field, i), command, why + _from_defaults(config, field))
                    )
    if not pinned and not problems:
        problems.append(
            (
                "setup_commands",
                filled.get("setup_commands"),
                f"must pip install {want} on every node",
            )
        )
    return problems


def _check_start_commands(
    config: dict[str, Any], filled: dict[str, Any], num_nodes: int
) -> list[Problem]:
    problems: list[Problem] = []
    storage_found = False
    for field in ("head_start_ray_commands", "worker_start_ray_commands"):
        note = _from_defaults(config, field)
        for i, command in enumerate(filled.get(field) or []):
            for host in DASHBOARD_HOST.findall(command):
                if host not in LOCAL_HOSTS:
                    problems.append(
                        (
                            key_path(field, i),
                            command,
                            f"--dashboard-host={host} {DASHBOARD_EXPOSED}{note}",
                        )
                    )
            if not RAY_START.search(command):
                continue
            if "RAY_AUTH_MODE=token" not in command:
                problems.append(
                    (key_path(field, i), command, f"must start Ray with RAY_AUTH_MODE=token{note}")
                )
            if field == "head_start_ray_commands":
                for storage in STORAGE_ASSIGN.findall(command):
                    storage_found = True
                    problems += storage_problem(key_path(field, i), storage, num_nodes)
    if not storage_found:
        problems.append(
            ("head_start_ray_commands", None, f"the `ray start --head` command {STORAGE_UNSET}")
        )
    return problems


def _check_token_mount(filled: dict[str, Any]) -> list[Problem]:
    mounts = filled.get("file_mounts") or {}
    if any(os.path.normpath(remote).endswith("/.ray/auth_token") for remote in mounts):
        return []
    return [
        (
            "file_mounts",
            mounts,
            f'must copy the Ray token to every node: "{TOKEN_PATH}": "{TOKEN_PATH}"',
        )
    ]


def _covers_ray_port(rule: dict[str, Any]) -> int | None:
    if str(rule.get("IpProtocol", "")) in ("-1", "all"):
        return RAY_PORTS[0]
    low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
    if low == -1:
        return RAY_PORTS[0]
    return next((port for port in RAY_PORTS if low <= port <= high), None)


def _check_security_group(filled: dict[str, Any]) -> list[Problem]:
    rules = ((filled.get("provider") or {}).get("security_group") or {}).get("IpPermissions") or []
    problems: list[Problem] = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        world = [
            r.get("CidrIp") for r in rule.get("IpRanges", []) if r.get("CidrIp") == "0.0.0.0/0"
        ]
        world += [
            r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", []) if r.get("CidrIpv6") == "::/0"
        ]
        port = _covers_ray_port(rule)
        if world and port is not None:
            at = key_path("provider", "security_group", "IpPermissions", i)
            problems.append((at, rule, f"opens Ray port {port} to {world[0]}; {OPEN_PORT}"))
    return problems
