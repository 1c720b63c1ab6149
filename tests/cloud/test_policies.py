"""The cloud's policy registry: every name the config accepts builds a policy, and an unknown
one is refused at cloud start as a config problem naming the field."""

from __future__ import annotations

import typing

import pytest

from cloud.engine.scheduler import FCFS
from cloud.policies import POLICIES, check_config, make_policy
from cloud.tempo.policy import Tempo
from edgeweave.config import CloudServerConfig, EngineOptions
from edgeweave.errors import ConfigError


def test_every_configurable_name_builds_its_policy() -> None:
    names = typing.get_args(EngineOptions.model_fields["policy"].annotation)
    assert set(names) <= set(POLICIES)
    for name in names:
        assert make_policy(EngineOptions(policy=name)).name == name
    assert isinstance(make_policy(EngineOptions()), Tempo)
    assert isinstance(make_policy(EngineOptions(policy="fcfs")), FCFS)


def test_an_unknown_policy_is_a_config_error_naming_the_field() -> None:
    cfg = CloudServerConfig.model_validate({"model": "weave-home-cloud"})
    check_config(cfg)
    bad = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"policy": "round-robin"})})
    with pytest.raises(ConfigError, match=r"cloud\.engine\.policy: unknown policy 'round-robin' \(known: edf, fcfs"):
        check_config(bad)
